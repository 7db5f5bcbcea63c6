//! One hosted replica on the real server: its [`PartitionDriver`] over RocksDB and the real
//! file system, run by the replication workers ([`super::workers`]) when it has input or a
//! timer is due. Blocking I/O (RocksDB writes, fsync) happens on a worker, never on the
//! async runtime. Everything queued while the replica was busy is one round of the driver:
//! group commit falls out of the loop.
//!
//! Reads do not go through the thread: the driver publishes the read grant (primary,
//! re-proposals committed, under which epoch of the node's lease) after every event, and
//! readers check it against the node's lease and use the shared store directly.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use bytes::Bytes;
use pegasus_control::{AppSummary, ReplicaReport};
use pegasus_core::config::{ConfigType, NodeId, PartitionConfig};
use pegasus_core::ids::{Decree, Gpid};
use pegasus_storage::error::is_resource_exhaustion;
use pegasus_storage::{PartitionStore, RocksEngine, StorageEngine, StorageError};
use tokio::sync::oneshot;

use super::layout::{self, InitInfo};
use super::workers::{Handle, Task};
use super::Ctx;
use crate::core::{Checkpoint, NodeLease, PeerMessage, ReadGrant, Status};
use crate::driver::{self, DriverConfig, Host, LogFailure, PartitionDriver, View};
use crate::fs::{StdFs, WithFailPoints};
use crate::log::{LogError, LogOptions, MutationLog, ReplayReport};
use crate::nodelog::{PlogFile, ReplicaKey};

pub use crate::driver::{Exit, WriteResult};

/// The storage a replica serves from.
pub type Store = PartitionStore<RocksEngine>;

/// What the replica thread is told: a driver input whose writes are answered over a
/// oneshot channel and whose fetched checkpoints are staged in a directory.
pub type Input = driver::Input<oneshot::Sender<WriteResult>, PathBuf>;

/// What the server sees of a replica.
#[derive(Debug)]
pub struct Shared {
    /// The partition.
    pub gpid: Gpid,
    /// Its directory.
    pub dir: PathBuf,
    /// The store reads are served from; taken out when the thread ends, so that RocksDB
    /// closes as soon as the last reader is done.
    store: RwLock<Option<Arc<Store>>>,
    /// The store last served, without keeping it open.
    last_store: Mutex<Weak<Store>>,
    /// The read grant the driver published ([`ReadGrant::to_bits`]).
    read_grant: AtomicU64,
    last_timestamp_us: AtomicU64,
    report: Mutex<(Status, ReplicaReport)>,
    /// Its mailbox on the replication workers (set once it is spawned).
    handle: OnceLock<Handle<PartitionTask>>,
    closed: AtomicBool,
    app: Mutex<AppSummary>,
    /// Client writes handed to the thread and not answered yet.
    pub pending_writes: std::sync::atomic::AtomicUsize,
}

impl Shared {
    /// The store, if reads may be served at `now_ms` under the node's `lease`.
    pub fn readable_store(&self, lease: NodeLease, now_ms: u64) -> Option<Arc<Store>> {
        let grant = ReadGrant::from_bits(self.read_grant.load(Ordering::Acquire));
        if !lease.allows(grant, now_ms) {
            return None;
        }
        self.store.read().ok().and_then(|s| s.clone())
    }

    fn set_store(&self, store: &Arc<Store>) {
        if let Ok(mut s) = self.store.write() {
            *s = Some(store.clone());
        }
        if let Ok(mut w) = self.last_store.lock() {
            *w = Arc::downgrade(store);
        }
    }

    fn release_store(&self) {
        let released = self.store.write().ok().and_then(|mut s| s.take());
        drop(released);
    }

    /// The store this replica served last, without keeping it open: while it is still
    /// alive (a reader or a background compaction holds it), RocksDB holds its directory
    /// and refuses to open it again in this process.
    pub fn store_handle(&self) -> Weak<Store> {
        match self.last_store.lock() {
            Ok(w) => w.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Sends an input to the replica (false if it stopped).
    pub fn send(&self, input: Input) -> bool {
        self.handle.get().is_some_and(|h| h.post(input))
    }

    /// Status and what the replica reports to meta.
    pub fn report(&self) -> (Status, ReplicaReport) {
        match self.report.lock() {
            Ok(r) => *r,
            Err(p) => *p.into_inner(),
        }
    }

    /// The largest mutation timestamp the replica holds (Unix µs).
    pub fn last_timestamp_us(&self) -> u64 {
        self.last_timestamp_us.load(Ordering::Acquire)
    }

    /// Whether the replica has stopped.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The table facts.
    pub fn app(&self) -> AppSummary {
        match self.app.lock() {
            Ok(a) => a.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// A storage error as an I/O error, keeping what classifies it: an OS error stays itself
/// (its number), anything else is wrapped whole (see [`is_transient_io`]).
fn storage_error(e: StorageError) -> std::io::Error {
    match e {
        StorageError::Io(e) => e,
        other => std::io::Error::other(other),
    }
}

/// A mutation-log error as an I/O error, the same way.
fn log_error(e: LogError) -> std::io::Error {
    match e {
        LogError::Io(e) => e,
        other => std::io::Error::other(other),
    }
}

/// Whether an error of [`open`] (or of any local file operation) is a transient lack of a
/// resource: an OS error EMFILE, ENFILE, ENOMEM or ENOSPC, or a storage error that says so.
pub fn is_transient_io(e: &std::io::Error) -> bool {
    is_resource_exhaustion(e)
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<StorageError>())
            .is_some_and(StorageError::is_transient)
}

/// What may have been lost from the replica's log tail: its own log's cut at open, or,
/// for a replica whose node-log records recovery merged at start (its own cut then
/// happened there), what that recovery found.
fn torn_tail_bytes(ctx: &Ctx, gpid: Gpid, own_cut: u64) -> u64 {
    let torn_at_start = ctx
        .torn_at_start
        .lock()
        .map(|mut t| t.remove(&gpid))
        .unwrap_or(false);
    if torn_at_start {
        own_cut.max(1)
    } else {
        own_cut
    }
}

/// The replica's own log settings.
pub(super) fn log_options(cfg: &super::ReplicaServerConfig) -> LogOptions {
    LogOptions {
        segment_bytes: cfg.log_segment_bytes,
        sync: cfg.plog_force_flush,
    }
}

/// A copy's incarnation: unique on this node (the wall clock in µs, made strictly
/// increasing within the process; a node restarts later than it last created a copy).
fn new_incarnation(wall_us: u64) -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = wall_us.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => prev = seen,
        }
    }
}

/// Opens (or creates) the replica of `gpid` and hands it to the replication workers. `fresh_config` is used
/// when the directory does not exist yet (the replica is created empty).
pub fn open(
    ctx: &Arc<Ctx>,
    gpid: Gpid,
    create_with: Option<(PartitionConfig, AppSummary)>,
    on_exit: impl FnOnce(Gpid, Exit) + Send + 'static,
) -> std::io::Result<Arc<Shared>> {
    let dir = layout::replica_dir(&ctx.root, gpid);
    let existed = dir.join("init.json").exists();
    let init = if existed {
        layout::read_init(&dir)?
    } else {
        let Some((config, app)) = create_with else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no replica {gpid:?} here"),
            ));
        };
        std::fs::create_dir_all(&dir)?;
        let info = InitInfo {
            config: PartitionConfig {
                gpid,
                ballot: 0,
                max_replica_count: config.max_replica_count,
                ..PartitionConfig::default()
            },
            fresh: true,
            app,
            // A name of its own, not `data`: RocksDB refuses to open a path this process
            // still holds open, and the failed copy this one replaces may still be closing
            // (readers, a learner task) under the same path, now moved aside.
            data: format!("data.0.{}", super::wall_ms()),
            incarnation: new_incarnation(ctx.wall_us()),
        };
        layout::write_init(&dir, &info)?;
        info
    };
    // Leftovers: copies replaced by a learned checkpoint, half-fetched checkpoints,
    // checkpoints made for learners.
    for entry in std::fs::read_dir(&dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if (name.starts_with("data") && name != init.data) || name == "learn" || name == "learn.tmp"
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let engine = RocksEngine::open(&ctx.env, &dir.join(&init.data)).map_err(storage_error)?;
    let store = Arc::new(PartitionStore::new(engine, ctx.clock.clone(), ctx.limits));
    let fs: Arc<dyn crate::fs::FileSystem> = Arc::new(WithFailPoints(StdFs));
    let (log, replayed, report) =
        MutationLog::open(fs, &dir.join("plog"), log_options(&ctx.cfg)).map_err(log_error)?;
    let core = driver::open_core(
        ctx.me,
        ctx.opts,
        &init,
        &store,
        replayed,
        &ReplayReport {
            truncated_bytes: torn_tail_bytes(ctx, gpid, report.truncated_bytes),
            ..report
        },
    );
    let shared = Arc::new(Shared {
        gpid,
        dir: dir.clone(),
        store: RwLock::new(Some(store.clone())),
        last_store: Mutex::new(Arc::downgrade(&store)),
        read_grant: AtomicU64::new(0),
        last_timestamp_us: AtomicU64::new(core.last_timestamp_us()),
        report: Mutex::new((
            core.status(),
            ReplicaReport {
                gpid,
                ballot: core.data_ballot(),
                last_committed: core.last_committed(),
                last_prepared: core.last_prepared(),
                fresh: core.is_fresh(),
            },
        )),
        handle: OnceLock::new(),
        closed: AtomicBool::new(false),
        app: Mutex::new(init.app.clone()),
        pending_writes: std::sync::atomic::AtomicUsize::new(0),
    });
    let host = ServerHost {
        ctx: ctx.clone(),
        shared: shared.clone(),
        learn_dirs: Vec::new(),
        manual_compact: ManualCompact::default(),
        retired: Vec::new(),
        checkpoints_made: 0,
        incarnation: init.incarnation,
    };
    let cfg = DriverConfig {
        tick_ms: ctx.cfg.tick_ms,
        checkpoint_interval_ms: ctx.cfg.checkpoint_interval_ms,
        log_retain_decrees: ctx.cfg.log_retain_decrees,
        plant_uptime_as_wall_clock: false,
        node_log: ctx.nodelog.is_some(),
    };
    let driver = PartitionDriver::new(host, cfg, core, store, log, init);
    let task = PartitionTask {
        driver: Some(driver),
        on_exit: Some(Box::new(on_exit)),
    };
    let handle = ctx.workers.spawn(task, Vec::new());
    let _ = shared.handle.set(handle);
    Ok(shared)
}

/// A replica as the replication workers run it.
#[allow(
    missing_debug_implementations,
    reason = "holds the driver and a callback; the replica's `Shared` is the debug view"
)]
pub struct PartitionTask {
    driver: Option<PartitionDriver<ServerHost>>,
    on_exit: Option<Box<dyn FnOnce(Gpid, Exit) + Send>>,
}

impl Task for PartitionTask {
    type Input = Input;

    /// One round; then the driver's next wake-up, or `None` once it stopped.
    fn round(&mut self, inputs: Vec<Input>) -> Option<u64> {
        let driver = self.driver.as_mut()?;
        // A panic (a bug) fails this replica over exactly like an I/O error: it must never
        // leave the partition wedged with its status still reported as healthy.
        let exit =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| driver.round(inputs))) {
                Ok(None) => return Some(driver.next_wake_ms()),
                Ok(Some(exit)) => exit,
                Err(panic) => {
                    driver.after_panic(&panic_message(panic.as_ref()));
                    Exit::Failed
                }
            };
        let driver = self.driver.take()?;
        let shared = driver.host().shared.clone();
        // Close RocksDB and the log before the directory may be moved aside (or opened
        // again): RocksDB closes once the last reader lets go of the store.
        drop(driver);
        shared.release_store();
        shared.closed.store(true, Ordering::Release);
        shared.read_grant.store(0, Ordering::Release);
        if let Some(on_exit) = self.on_exit.take() {
            on_exit(shared.gpid, exit);
        }
        None
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into())
}

/// Pegasus's `manual_compact.once.trigger_time` env: a Unix time in seconds; every replica
/// of the table flushes and fully compacts its store once the time has come, once per
/// trigger value. Compaction drops expired records (the TTL filter) and deleted ones.
pub const MANUAL_COMPACT_ONCE_TRIGGER_TIME: &str = "manual_compact.once.trigger_time";

/// A replica's manual compaction: the trigger it last started, and whether one runs.
#[derive(Debug, Default)]
struct ManualCompact {
    started_for: u64,
    running: Arc<AtomicBool>,
}

/// The replica server's side of a driver: the shared view readers and the server use, the
/// network and meta through [`Ctx`], RocksDB checkpoint directories for learners, and the
/// stores a learned checkpoint replaced.
struct ServerHost {
    ctx: Arc<Ctx>,
    shared: Arc<Shared>,
    learn_dirs: Vec<PathBuf>,
    manual_compact: ManualCompact,
    /// Stores replaced by a learned checkpoint, removed once no reader holds them.
    retired: Vec<(Arc<Store>, PathBuf)>,
    /// Checkpoints made for learners (names them uniquely).
    checkpoints_made: u64,
    /// Which copy this is (`init.json`), its key in the node log.
    incarnation: u64,
}

impl Host for ServerHost {
    type Engine = RocksEngine;
    type Reply = oneshot::Sender<WriteResult>;
    type Staged = PathBuf;

    fn gpid(&self) -> Gpid {
        self.shared.gpid
    }

    fn now_ms(&self) -> u64 {
        self.ctx.now_ms()
    }

    fn node_lease(&self) -> NodeLease {
        self.ctx.lease.get()
    }

    fn wall_us(&self) -> u64 {
        self.ctx.wall_us()
    }

    fn send(&mut self, to: NodeId, msg: PeerMessage) {
        self.ctx.send_peer(to, self.shared.gpid, msg);
    }

    fn request_config(&mut self, kind: ConfigType, node: NodeId, config: PartitionConfig) {
        self.ctx
            .request_config(self.shared.clone(), kind, node, config);
    }

    fn reply(&mut self, to: Self::Reply, result: WriteResult) {
        let _ = to.send(result);
    }

    fn log_submit(
        &mut self,
        plog: PlogFile,
        records: Vec<u8>,
        _appended: u64,
    ) -> Option<Result<(), LogFailure>> {
        let key = ReplicaKey {
            gpid: self.shared.gpid,
            incarnation: self.incarnation,
        };
        Some(match &self.ctx.nodelog {
            Some(n) => n.write(key, plog, records),
            None => Err(LogFailure {
                reason: "no node log on this server".into(),
                transient: false,
                disk_full: false,
            }),
        })
    }

    fn publish(&mut self, view: View, lower_only: bool) {
        let grant = view.read.to_bits();
        if lower_only {
            // Reads may only close: a grant that changed is withdrawn until the full view.
            if self.shared.read_grant.load(Ordering::Acquire) != grant {
                self.shared.read_grant.store(0, Ordering::Release);
            }
            return;
        }
        self.shared.read_grant.store(grant, Ordering::Release);
        self.shared
            .last_timestamp_us
            .store(view.last_timestamp_us, Ordering::Release);
        if let Ok(mut r) = self.shared.report.lock() {
            *r = (view.status, view.report);
        }
    }

    fn refuses_writes(&mut self, secondaries: &[NodeId]) -> bool {
        self.ctx.disk.refuses_writes(secondaries)
    }

    fn make_checkpoint(&mut self, store: &Store) -> std::io::Result<Checkpoint> {
        self.checkpoints_made += 1;
        let name = format!("cp-{}-{}", self.ctx.now_ms(), self.checkpoints_made);
        let learn = self.shared.dir.join("learn");
        std::fs::create_dir_all(&learn)?;
        let dir = learn.join(&name);
        let state = store.engine().checkpoint(&dir).map_err(storage_error)?;
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                files.push((
                    entry.file_name().to_string_lossy().into_owned(),
                    entry.metadata()?.len(),
                ));
            }
        }
        self.learn_dirs.push(dir);
        // Keep the last few checkpoints for learners still fetching them.
        while self.learn_dirs.len() > 3 {
            let old = self.learn_dirs.remove(0);
            let _ = std::fs::remove_dir_all(old);
        }
        let handle = super::CheckpointHandle {
            server: self.ctx.addr,
            gpid: self.shared.gpid,
            name,
            files,
        };
        let data = postcard::to_stdvec(&handle).map_err(std::io::Error::other)?;
        Ok(Checkpoint {
            decree: state.decree,
            timestamp_us: state.write_time_us,
            data: Bytes::from(data),
        })
    }

    fn fetch_checkpoint(&mut self, cp: Checkpoint) {
        self.ctx.fetch_checkpoint(self.shared.clone(), cp);
    }

    fn open_checkpoint(
        &mut self,
        decree: Decree,
        fetched: PathBuf,
    ) -> std::io::Result<(RocksEngine, String)> {
        let name = format!("data.{decree}.{}", super::wall_ms());
        let target = self.shared.dir.join(&name);
        std::fs::rename(&fetched, &target)?;
        let engine = RocksEngine::open(&self.ctx.env, &target).map_err(storage_error)?;
        Ok((engine, name))
    }

    fn store(&self, engine: RocksEngine) -> Store {
        PartitionStore::new(engine, self.ctx.clock.clone(), self.ctx.limits)
    }

    fn store_replaced(&mut self, new: &Arc<Store>, old: Arc<Store>, old_data: String) {
        self.shared.set_store(new);
        self.retired.push((old, self.shared.dir.join(old_data)));
    }

    fn write_init(&mut self, info: &InitInfo) -> std::io::Result<()> {
        layout::write_init(&self.shared.dir, info)
    }

    fn housekeeping(&mut self, store: &Arc<Store>, app: &AppSummary) {
        self.collect_retired();
        self.maybe_manual_compact(store, app);
    }

    fn app_changed(&mut self, store: &Arc<Store>, app: &AppSummary) {
        if let Ok(mut a) = self.shared.app.lock() {
            *a = app.clone();
        }
        self.maybe_manual_compact(store, app);
    }

    fn record_storage(&mut self, store: &Store) {
        let app = self.shared.gpid.app_id.to_string();
        let pidx = self.shared.gpid.pidx.to_string();
        let engine = store.engine();
        for (metric, property) in [
            (
                "pegasus_replica_rdb_memtable_bytes",
                "rocksdb.cur-size-all-mem-tables",
            ),
            (
                "pegasus_replica_rdb_sst_bytes",
                "rocksdb.total-sst-files-size",
            ),
            (
                "pegasus_replica_rdb_estimated_keys",
                "rocksdb.estimate-num-keys",
            ),
            (
                "pegasus_replica_rdb_pending_compaction_bytes",
                "rocksdb.estimate-pending-compaction-bytes",
            ),
            (
                "pegasus_replica_rdb_running_compactions",
                "rocksdb.num-running-compactions",
            ),
        ] {
            if let Ok(Some(v)) = engine.property_int(property) {
                metrics::gauge!(metric, "app_id" => app.clone(), "partition" => pidx.clone())
                    .set(v as f64);
            }
        }
        if let Some((hits, misses)) = engine.block_cache_counts() {
            metrics::counter!("pegasus_replica_rdb_block_cache_hits_total", "app_id" => app.clone(), "partition" => pidx.clone())
                .absolute(hits);
            metrics::counter!("pegasus_replica_rdb_block_cache_misses_total", "app_id" => app, "partition" => pidx)
                .absolute(misses);
        }
    }

    fn is_transient(&self, e: &std::io::Error) -> bool {
        is_transient_io(e)
    }
}

impl ServerHost {
    /// Starts the compaction `manual_compact.once.trigger_time` asks for, if its time has
    /// come and this replica has not run it for that trigger yet. It runs on a thread of its
    /// own: RocksDB compacts in the background while the replica keeps serving.
    fn maybe_manual_compact(&mut self, store: &Arc<Store>, app: &AppSummary) {
        let Some(trigger) = app
            .envs
            .get(MANUAL_COMPACT_ONCE_TRIGGER_TIME)
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            return;
        };
        let now_s = self.ctx.wall_us() / 1_000_000;
        let mc = &mut self.manual_compact;
        if trigger == 0
            || trigger <= mc.started_for
            || trigger > now_s
            || mc.running.load(Ordering::Acquire)
        {
            return;
        }
        mc.started_for = trigger;
        mc.running.store(true, Ordering::Release);
        let running = mc.running.clone();
        let store = store.clone();
        let gpid = self.shared.gpid;
        let spawned = std::thread::Builder::new()
            .name(format!("compact-{}.{}", gpid.app_id, gpid.pidx))
            .spawn(move || {
                let started = std::time::Instant::now();
                tracing::info!("replica {gpid:?}: manual compaction (trigger {trigger}) starts");
                match store.engine().compact_all() {
                    Ok(()) => {
                        metrics::counter!("pegasus_replica_manual_compactions_total").increment(1);
                        tracing::info!(
                            "replica {gpid:?}: manual compaction done in {:?}",
                            started.elapsed()
                        );
                    }
                    Err(e) => tracing::warn!("replica {gpid:?}: manual compaction failed: {e}"),
                }
                running.store(false, Ordering::Release);
            });
        if let Err(e) = spawned {
            tracing::warn!("replica {gpid:?}: cannot start a manual compaction: {e}");
            self.manual_compact.running.store(false, Ordering::Release);
        }
    }

    /// Drops replaced stores nobody reads any more and removes their directories.
    fn collect_retired(&mut self) {
        let (free, busy): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retired)
            .into_iter()
            .partition(|(store, _)| Arc::strong_count(store) == 1);
        self.retired = busy;
        for (store, dir) in free {
            drop(store);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(
                    "replica {:?}: cannot remove {}: {e}",
                    self.shared.gpid,
                    dir.display()
                );
            }
        }
    }
}
