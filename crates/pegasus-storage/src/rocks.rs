//! The RocksDB [`StorageEngine`]. This module is the only place RocksDB types appear.
//!
//! Layout of one replica's database:
//! * column family `default` holds the data, keyed by the Pegasus key schema;
//! * column family `pegasus_meta_cf` holds progress markers: the last applied decree
//!   (`pegasus_last_flushed_decree`), its timestamp, the data version and the TTL policy.
//!
//! Every batch writes its data and its decree in one RocksDB write batch with the WAL off:
//! the replication log is the write-ahead log. After a crash the database holds a prefix of
//! the applied decrees up to [`StorageEngine::durable_decree`] (flushed to SST files), and
//! the replica replays its log from there.

use std::ffi::CStr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use pegasus_core::ids::Decree;
use pegasus_core::key::decode_key;
use pegasus_core::status::StorageStatus;
use pegasus_core::time::{unix_micros_to_pegasus_secs, Clock};
use pegasus_core::value::decode_expire_ts;
use rocksdb::checkpoint::Checkpoint;
use rocksdb::compaction_filter::{CompactionFilter, Decision};
use rocksdb::compaction_filter_factory::{CompactionFilterContext, CompactionFilterFactory};
use rocksdb::{
    BlockBasedOptions, BottommostLevelCompaction, Cache, ColumnFamily, ColumnFamilyDescriptor,
    CompactOptions, DBCompressionType, DBRawIteratorWithThreadMode, FlushOptions, Options,
    ReadOptions, ReadTier, SliceTransform, WriteOptions, DB,
};

use crate::config::StorageConfig;
use crate::engine::{
    AppliedState, BatchOp, EngineFactory, EngineIterator, IterOptions, StorageEngine, WriteBatch,
};
use crate::error::{Result, StorageError};
use crate::ttl::TtlPolicy;

const DATA_CF: &str = "default";
const META_CF: &str = "pegasus_meta_cf";
/// Decree and timestamp of an applied batch: 16 bytes, `i64 BE decree ++ u64 BE time`.
const KEY_APPLIED: &[u8] = b"pegasus_last_flushed_decree";
/// A run of blind batches records its decree once every this many decrees. Every other
/// batch, and every flush, records it at once. Recording it on every batch would double
/// the memtable work of a small put (measured: 70% of raw RocksDB instead of 85-90%).
const MARKER_INTERVAL: i64 = 32;
const KEY_DATA_VERSION: &[u8] = b"pegasus_data_version";
const KEY_TTL_POLICY: &[u8] = b"pegasus_ttl_policy";
const DATA_VERSION: &[u8] = b"1";

fn engine_err(e: rocksdb::Error) -> StorageError {
    use rocksdb::ErrorKind as K;
    let status = match e.kind() {
        K::NotFound => StorageStatus::NotFound,
        K::Corruption => StorageStatus::Corruption,
        K::NotSupported => StorageStatus::NotSupported,
        K::InvalidArgument => StorageStatus::InvalidArgument,
        K::IOError => StorageStatus::IoError,
        K::MergeInProgress => StorageStatus::MergeInProgress,
        K::Incomplete => StorageStatus::Incomplete,
        K::ShutdownInProgress => StorageStatus::ShutdownInProgress,
        K::TimedOut => StorageStatus::TimedOut,
        K::Aborted => StorageStatus::Aborted,
        K::Busy => StorageStatus::Busy,
        K::Expired => StorageStatus::Expired,
        K::TryAgain => StorageStatus::TryAgain,
        K::CompactionTooLarge | K::ColumnFamilyDropped | K::Unknown => StorageStatus::IoError,
    };
    StorageError::Engine {
        status,
        message: e.into_string(),
    }
}

/// The hash-key prefix of an encoded key: `[len][hash_key]`. Keys that do not decode are
/// their own prefix (they are outside the domain anyway).
fn hash_key_prefix_of(key: &[u8]) -> &[u8] {
    match decode_key(key) {
        Ok((hk, _)) => key.get(..2 + hk.len()).unwrap_or(key),
        Err(_) => key,
    }
}

fn in_hash_key_domain(key: &[u8]) -> bool {
    decode_key(key).is_ok()
}

/// Shared, process-wide resources of RocksDB engines: configuration, block cache, clock.
#[derive(Clone)]
pub struct RocksEnv {
    config: StorageConfig,
    cache: Option<Cache>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RocksEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEnv")
            .field("config", &self.config)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl RocksEnv {
    /// Creates the shared resources for a process.
    pub fn new(config: StorageConfig, clock: Arc<dyn Clock>) -> Self {
        let cache = usize::try_from(config.rocksdb_block_cache_capacity)
            .ok()
            .filter(|&c| c > 0)
            .map(Cache::new_lru_cache);
        Self {
            config,
            cache,
            clock,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    fn data_cf_options(&self, shared: &Arc<Shared>) -> Options {
        let c = &self.config;
        let mut opts = Options::default();
        opts.set_write_buffer_size(
            usize::try_from(c.rocksdb_write_buffer_size).unwrap_or(64 << 20),
        );
        opts.set_max_write_buffer_number(c.rocksdb_max_write_buffer_number);
        opts.set_level_zero_file_num_compaction_trigger(
            c.rocksdb_level0_file_num_compaction_trigger,
        );
        opts.set_level_zero_slowdown_writes_trigger(c.rocksdb_level0_slowdown_writes_trigger);
        opts.set_level_zero_stop_writes_trigger(c.rocksdb_level0_stop_writes_trigger);
        opts.set_num_levels(c.rocksdb_num_levels);
        opts.set_target_file_size_base(c.rocksdb_target_file_size_base);
        opts.set_max_bytes_for_level_base(c.rocksdb_max_bytes_for_level_base);
        opts.set_compression_type(if c.rocksdb_compression_type == "lz4" {
            DBCompressionType::Lz4
        } else {
            DBCompressionType::None
        });
        opts.set_prefix_extractor(SliceTransform::create(
            "pegasus.HashkeyTransform",
            hash_key_prefix_of,
            Some(in_hash_key_domain),
        ));
        opts.set_memtable_prefix_bloom_ratio(c.rocksdb_memtable_prefix_bloom_size_ratio);
        let mut table = BlockBasedOptions::default();
        if let Some(cache) = &self.cache {
            table.set_block_cache(cache);
        }
        if c.rocksdb_bloom_filter_bits_per_key > 0.0 {
            table.set_bloom_filter(c.rocksdb_bloom_filter_bits_per_key, false);
        }
        opts.set_block_based_table_factory(&table);
        opts.set_compaction_filter_factory(TtlFilterFactory {
            shared: shared.clone(),
        });
        opts
    }
}

/// State shared between the engine and its compaction filters.
#[derive(Debug)]
struct Shared {
    ttl: RwLock<TtlPolicy>,
    last_write_time_us: AtomicU64,
    clock: Arc<dyn Clock>,
}

struct TtlFilterFactory {
    shared: Arc<Shared>,
}

impl CompactionFilterFactory for TtlFilterFactory {
    type Filter = TtlFilter;

    fn create(&mut self, _context: CompactionFilterContext) -> TtlFilter {
        // Compaction drops a record only if it is expired at the timestamp of the last
        // applied mutation (never later than the wall clock). Mutation timestamps never go
        // backwards, so every later mutation also sees the record as expired: replicas that
        // compact at different times still apply incr/CAS identically.
        let wall = self.shared.clock.pegasus_now();
        let applied =
            unix_micros_to_pegasus_secs(self.shared.last_write_time_us.load(Ordering::Acquire));
        TtlFilter {
            policy: self.shared.ttl.read().map(|p| *p).unwrap_or_default(),
            now: wall.min(applied),
        }
    }

    fn name(&self) -> &CStr {
        c"pegasus.TtlFilterFactory"
    }
}

struct TtlFilter {
    policy: TtlPolicy,
    now: u32,
}

impl CompactionFilter for TtlFilter {
    fn filter(&mut self, _level: u32, key: &[u8], value: &[u8]) -> Decision {
        if key.len() < 2 {
            return Decision::Keep;
        }
        match decode_expire_ts(value) {
            Ok(ts) if self.policy.is_expired(ts, self.now) => Decision::Remove,
            _ => Decision::Keep,
        }
    }

    fn name(&self) -> &CStr {
        c"pegasus.TtlFilter"
    }
}

/// A replica's RocksDB database.
pub struct RocksEngine {
    db: DB,
    shared: Arc<Shared>,
    applied: Mutex<AppliedState>,
    write_opts: WriteOptions,
    crashed: bool,
    /// The database options when statistics are on: they hold its ticker counters.
    stats: Option<Options>,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine")
            .field("path", &self.db.path())
            .field("applied", &self.applied_state())
            .finish_non_exhaustive()
    }
}

fn encode_applied(a: AppliedState) -> [u8; 16] {
    let mut out = [0u8; 16];
    let (d, t) = out.split_at_mut(8);
    d.copy_from_slice(&a.decree.to_be_bytes());
    t.copy_from_slice(&a.write_time_us.to_be_bytes());
    out
}

fn decode_applied(raw: Option<Vec<u8>>) -> Result<AppliedState> {
    let Some(raw) = raw else {
        return Ok(AppliedState::default());
    };
    let bytes: [u8; 16] = raw
        .as_slice()
        .try_into()
        .map_err(|_| StorageError::Corruption("bad applied state in meta column family".into()))?;
    let (d, t) = bytes.split_at(8);
    Ok(AppliedState {
        decree: i64::from_be_bytes(d.try_into().unwrap_or_default()),
        write_time_us: u64::from_be_bytes(t.try_into().unwrap_or_default()),
    })
}

impl RocksEngine {
    /// Opens (creating if missing) the database at `path`.
    pub fn open(env: &RocksEnv, path: &Path) -> Result<Self> {
        let shared = Arc::new(Shared {
            ttl: RwLock::new(TtlPolicy::default()),
            last_write_time_us: AtomicU64::new(0),
            clock: env.clock.clone(),
        });
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_atomic_flush(true);
        db_opts.set_max_background_jobs(env.config.rocksdb_max_background_jobs);
        db_opts.set_max_open_files(-1);
        // RocksDB must not flush on its own at close: `Drop` flushes (recording the applied
        // state first) for a clean close, and `crash` must be able to skip it.
        let mut db_opts = db_opts
            .get_options_from_string("avoid_flush_during_shutdown=true")
            .map_err(engine_err)?;
        if env.config.rocksdb_statistics {
            db_opts.enable_statistics();
            db_opts.set_statistics_level(rocksdb::statistics::StatsLevel::ExceptHistogramOrTimers);
        }
        let mut meta_opts = Options::default();
        meta_opts.set_level_zero_file_num_compaction_trigger(10);
        let cfs = vec![
            ColumnFamilyDescriptor::new(DATA_CF, env.data_cf_options(&shared)),
            ColumnFamilyDescriptor::new(META_CF, meta_opts),
        ];
        let db = DB::open_cf_descriptors(&db_opts, path, cfs).map_err(engine_err)?;
        let mut write_opts = WriteOptions::default();
        write_opts.disable_wal(true);
        let engine = Self {
            db,
            shared,
            applied: Mutex::new(AppliedState::default()),
            write_opts,
            crashed: false,
            stats: env.config.rocksdb_statistics.then(|| db_opts.clone()),
        };
        let meta = engine.meta_cf()?;
        let applied = decode_applied(engine.db.get_cf(meta, KEY_APPLIED).map_err(engine_err)?)?;
        if let Some(raw) = engine.db.get_cf(meta, KEY_TTL_POLICY).map_err(engine_err)? {
            let policy = TtlPolicy::decode(&raw).ok_or_else(|| {
                StorageError::Corruption("bad TTL policy in meta column family".into())
            })?;
            *engine.shared.ttl.write().unwrap_or_else(|e| e.into_inner()) = policy;
        }
        match engine
            .db
            .get_cf(meta, KEY_DATA_VERSION)
            .map_err(engine_err)?
        {
            None => engine
                .db
                .put_cf_opt(meta, KEY_DATA_VERSION, DATA_VERSION, &engine.write_opts)
                .map_err(engine_err)?,
            Some(v) if v == DATA_VERSION => {}
            Some(v) => {
                return Err(StorageError::Corruption(format!(
                    "unsupported data version {:?}",
                    String::from_utf8_lossy(&v)
                )))
            }
        }
        engine
            .shared
            .last_write_time_us
            .store(applied.write_time_us, Ordering::Release);
        *engine.lock_applied() = applied;
        Ok(engine)
    }

    fn data_cf(&self) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(DATA_CF)
            .ok_or_else(|| StorageError::Corruption("data column family missing".into()))
    }

    fn meta_cf(&self) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(META_CF)
            .ok_or_else(|| StorageError::Corruption("meta column family missing".into()))
    }

    fn lock_applied(&self) -> std::sync::MutexGuard<'_, AppliedState> {
        self.applied.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the applied state, then flushes both column families together.
    fn flush_locked(&self, applied: AppliedState) -> Result<()> {
        self.db
            .put_cf_opt(
                self.meta_cf()?,
                KEY_APPLIED,
                encode_applied(applied),
                &self.write_opts,
            )
            .map_err(engine_err)?;
        self.flush_memtables()
    }

    fn flush_memtables(&self) -> Result<()> {
        let mut fo = FlushOptions::default();
        fo.set_wait(true);
        let data = self.data_cf()?;
        let meta = self.meta_cf()?;
        self.db
            .flush_cfs_opt(&[data, meta], &fo)
            .map_err(engine_err)
    }

    /// Block cache hits and misses since the database opened (`None` when
    /// `rocksdb_statistics` is off).
    pub fn block_cache_counts(&self) -> Option<(u64, u64)> {
        use rocksdb::statistics::Ticker;
        let s = self.stats.as_ref()?;
        Some((
            s.get_ticker_count(Ticker::BlockCacheHit),
            s.get_ticker_count(Ticker::BlockCacheMiss),
        ))
    }

    /// A RocksDB property of the data column family (e.g. `rocksdb.estimate-num-keys`).
    pub fn property_int(&self, name: &str) -> Result<Option<u64>> {
        self.db
            .property_int_value_cf(self.data_cf()?, name)
            .map_err(engine_err)
    }
}

impl RocksEngine {
    /// Closes the database as a crash would: nothing more is flushed, so changes still in
    /// memtables are lost (the WAL is off). For crash tests.
    pub fn crash(mut self) {
        self.crashed = true;
    }

    /// Flushes the memtables without recording the applied state first: what RocksDB's own
    /// background flush does when a memtable fills. For crash tests.
    pub fn flush_like_background(&self) -> Result<()> {
        let _applied = self.lock_applied();
        self.flush_memtables()
    }
}

impl Drop for RocksEngine {
    fn drop(&mut self) {
        if self.crashed {
            return;
        }
        // A clean close makes everything durable, so a restart need not replay the log.
        let applied = *self.lock_applied();
        if let Err(e) = self.flush_locked(applied) {
            tracing::warn!(error = %e, "flush on close failed");
        }
    }
}

impl StorageEngine for RocksEngine {
    type Iter<'a> = RocksIter<'a>;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.data_cf()?, key).map_err(engine_err)
    }

    fn multi_get(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let cf = self.data_cf()?;
        self.db
            .batched_multi_get_cf(cf, keys.iter().copied(), false)
            .into_iter()
            .map(|r| r.map(|v| v.map(|s| s.to_vec())).map_err(engine_err))
            .collect()
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        let mut applied = self.lock_applied();
        if batch.decree != applied.decree + 1 {
            return Err(StorageError::DecreeOutOfOrder {
                last_applied: applied.decree,
                got: batch.decree,
            });
        }
        let data = self.data_cf()?;
        let meta = self.meta_cf()?;
        let mut wb = rocksdb::WriteBatch::default();
        for op in &batch.ops {
            match op {
                BatchOp::Put { key, value } => wb.put_cf(data, key, value),
                BatchOp::Delete { key } => wb.delete_cf(data, key),
            }
        }
        let new_state = AppliedState {
            decree: batch.decree,
            write_time_us: batch.write_time_us,
        };
        if let Some(policy) = batch.new_ttl_policy {
            wb.put_cf(meta, KEY_TTL_POLICY, policy.encode());
        }
        // Invariant behind `durable_decree`: every batch after the last recorded marker is
        // blind, so whatever prefix of them a flush persists, replaying them from the
        // marker reproduces the same state.
        if !batch.blind || batch.new_ttl_policy.is_some() || batch.decree % MARKER_INTERVAL == 0 {
            wb.put_cf(meta, KEY_APPLIED, encode_applied(new_state));
        }
        self.db
            .write_opt(wb, &self.write_opts)
            .map_err(engine_err)?;
        *applied = new_state;
        if let Some(policy) = batch.new_ttl_policy {
            *self.shared.ttl.write().unwrap_or_else(|e| e.into_inner()) = policy;
        }
        self.shared
            .last_write_time_us
            .store(batch.write_time_us, Ordering::Release);
        Ok(())
    }

    fn iter(&self, opts: IterOptions) -> RocksIter<'_> {
        let mut ro = ReadOptions::default();
        if let Some(lower) = opts.lower {
            ro.set_iterate_lower_bound(lower);
        }
        if let Some(upper) = opts.upper {
            ro.set_iterate_upper_bound(upper);
        }
        if opts.within_hash_key {
            ro.set_prefix_same_as_start(true);
        } else {
            ro.set_total_order_seek(true);
        }
        match self.data_cf() {
            Ok(cf) => RocksIter {
                inner: Some(self.db.raw_iterator_cf_opt(cf, ro)),
            },
            Err(_) => RocksIter { inner: None },
        }
    }

    fn applied_state(&self) -> AppliedState {
        *self.lock_applied()
    }

    fn durable_decree(&self) -> Result<Decree> {
        let mut ro = ReadOptions::default();
        ro.set_read_tier(ReadTier::Persisted);
        let raw = self
            .db
            .get_cf_opt(self.meta_cf()?, KEY_APPLIED, &ro)
            .map_err(engine_err)?;
        Ok(decode_applied(raw)?.decree)
    }

    fn flush(&self) -> Result<()> {
        let applied = self.lock_applied();
        self.flush_locked(*applied)
    }

    fn checkpoint(&self, dir: &Path) -> Result<AppliedState> {
        // Hold the write lock so the checkpoint holds exactly `applied`.
        let applied = self.lock_applied();
        self.flush_locked(*applied)?;
        Checkpoint::new(&self.db)
            .and_then(|c| c.create_checkpoint(dir))
            .map_err(engine_err)?;
        Ok(*applied)
    }

    fn ttl_policy(&self) -> TtlPolicy {
        self.shared.ttl.read().map(|p| *p).unwrap_or_default()
    }

    fn set_ttl_policy(&self, policy: TtlPolicy) -> Result<()> {
        self.db
            .put_cf_opt(
                self.meta_cf()?,
                KEY_TTL_POLICY,
                policy.encode(),
                &self.write_opts,
            )
            .map_err(engine_err)?;
        *self.shared.ttl.write().unwrap_or_else(|e| e.into_inner()) = policy;
        Ok(())
    }

    fn compact_all(&self) -> Result<()> {
        self.flush()?;
        let mut co = CompactOptions::default();
        co.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        self.db
            .compact_range_cf_opt(self.data_cf()?, None::<&[u8]>, None::<&[u8]>, &co);
        Ok(())
    }
}

/// Iterator over a [`RocksEngine`].
pub struct RocksIter<'a> {
    inner: Option<DBRawIteratorWithThreadMode<'a, DB>>,
}

impl std::fmt::Debug for RocksIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksIter")
            .field("valid", &self.valid())
            .finish()
    }
}

impl EngineIterator for RocksIter<'_> {
    fn seek(&mut self, key: &[u8]) {
        if let Some(it) = &mut self.inner {
            it.seek(key);
        }
    }

    fn seek_for_prev(&mut self, key: &[u8]) {
        if let Some(it) = &mut self.inner {
            it.seek_for_prev(key);
        }
    }

    fn seek_to_first(&mut self) {
        if let Some(it) = &mut self.inner {
            it.seek_to_first();
        }
    }

    fn seek_to_last(&mut self) {
        if let Some(it) = &mut self.inner {
            it.seek_to_last();
        }
    }

    fn valid(&self) -> bool {
        self.inner.as_ref().is_some_and(|it| it.valid())
    }

    fn key(&self) -> &[u8] {
        self.inner.as_ref().and_then(|it| it.key()).unwrap_or(&[])
    }

    fn value(&self) -> &[u8] {
        self.inner.as_ref().and_then(|it| it.value()).unwrap_or(&[])
    }

    fn next(&mut self) {
        if let Some(it) = &mut self.inner {
            it.next();
        }
    }

    fn prev(&mut self) {
        if let Some(it) = &mut self.inner {
            it.prev();
        }
    }

    fn status(&self) -> Result<()> {
        match &self.inner {
            Some(it) => it.status().map_err(engine_err),
            None => Err(StorageError::Corruption(
                "data column family missing".into(),
            )),
        }
    }
}

/// Opens RocksDB engines sharing one [`RocksEnv`].
#[derive(Debug, Clone)]
pub struct RocksEngineFactory {
    env: RocksEnv,
}

impl RocksEngineFactory {
    /// A factory over `env`.
    pub fn new(env: RocksEnv) -> Self {
        Self { env }
    }
}

impl EngineFactory for RocksEngineFactory {
    type Engine = RocksEngine;

    fn open(&self, path: &Path) -> Result<RocksEngine> {
        RocksEngine::open(&self.env, path)
    }
}

/// Raw RocksDB access with the same options the engine uses, for the storage benchmark's
/// baseline (so it measures the engine, not a differently tuned database).
pub(crate) mod raw {
    use super::*;

    /// A bare RocksDB handle: data CF only, WAL off, same tuning.
    pub(crate) struct RawDb {
        pub(crate) db: DB,
        pub(crate) write_opts: WriteOptions,
    }

    pub(crate) fn open(env: &RocksEnv, path: &Path) -> Result<RawDb> {
        let shared = Arc::new(Shared {
            ttl: RwLock::new(TtlPolicy::default()),
            last_write_time_us: AtomicU64::new(0),
            clock: env.clock.clone(),
        });
        let mut opts = env.data_cf_options(&shared);
        opts.create_if_missing(true);
        opts.set_max_background_jobs(env.config.rocksdb_max_background_jobs);
        let db = DB::open(&opts, path).map_err(engine_err)?;
        let mut write_opts = WriteOptions::default();
        write_opts.disable_wal(true);
        Ok(RawDb { db, write_opts })
    }

    impl RawDb {
        pub(crate) fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
            self.db
                .put_opt(key, value, &self.write_opts)
                .map_err(engine_err)
        }

        pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.db.get(key).map_err(engine_err)
        }
    }
}
