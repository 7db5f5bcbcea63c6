//! An in-memory [`StorageEngine`] for the simulator and unit tests.
//!
//! It models the one durability property replicas rely on: like RocksDB with its WAL off,
//! applied batches are lost on a crash until [`StorageEngine::flush`] has run. A
//! [`MemoryDisk`] plays the part of the engine's directory: it survives the engine, holds
//! what was flushed, and a new engine opened on it starts from there. Dropping an engine is
//! a clean close (it flushes); [`MemoryEngine::crash`] drops without flushing.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use pegasus_core::ids::Decree;
use pegasus_core::time::{unix_micros_to_pegasus_secs, Clock};
use pegasus_core::value::decode_expire_ts;

use crate::engine::{
    AppliedState, BatchOp, EngineFactory, EngineIterator, IterOptions, StorageEngine, WriteBatch,
};
use crate::error::{Result, StorageError};
use crate::ttl::TtlPolicy;

/// Everything an engine holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Image {
    data: BTreeMap<Vec<u8>, Vec<u8>>,
    applied: AppliedState,
    ttl: TtlPolicy,
}

/// The durable location of a memory engine: what survives a crash.
#[derive(Debug, Clone, Default)]
pub struct MemoryDisk {
    image: Arc<Mutex<Image>>,
}

impl MemoryDisk {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    fn load(&self) -> Image {
        self.image.lock().map(|g| g.clone()).unwrap_or_default()
    }

    fn store(&self, image: Image) {
        if let Ok(mut g) = self.image.lock() {
            *g = image;
        }
    }
}

/// The in-memory engine.
#[derive(Debug)]
pub struct MemoryEngine {
    disk: MemoryDisk,
    state: RwLock<Image>,
    clock: Arc<dyn Clock>,
    crashed: bool,
}

impl MemoryEngine {
    /// Opens an engine on `disk`, starting from what was last flushed there.
    pub fn open(disk: MemoryDisk, clock: Arc<dyn Clock>) -> Self {
        let image = disk.load();
        Self {
            disk,
            state: RwLock::new(image),
            clock,
            crashed: false,
        }
    }

    /// Drops the engine as a crash would: changes applied since the last flush are lost.
    pub fn crash(mut self) {
        self.crashed = true;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Image> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_lock(&self) -> std::sync::RwLockWriteGuard<'_, Image> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The engine's whole state as bytes (a checkpoint without files, for the simulator).
    pub fn export_image(&self) -> Vec<u8> {
        encode_image(&self.read())
    }

    /// A disk holding an image from [`MemoryEngine::export_image`].
    pub fn import_image(raw: &[u8]) -> Result<MemoryDisk> {
        let disk = MemoryDisk::new();
        disk.store(decode_image(raw)?);
        Ok(disk)
    }

    /// Loads a checkpoint written by [`StorageEngine::checkpoint`] onto a new disk.
    pub fn load_checkpoint(dir: &Path) -> Result<MemoryDisk> {
        let raw = std::fs::read(dir.join(SNAPSHOT_FILE))?;
        let image = decode_image(&raw)?;
        let disk = MemoryDisk::new();
        disk.store(image);
        Ok(disk)
    }
}

impl Drop for MemoryEngine {
    fn drop(&mut self) {
        if !self.crashed {
            let image = self.read().clone();
            self.disk.store(image);
        }
    }
}

impl StorageEngine for MemoryEngine {
    type Iter<'a> = MemoryIter<'a>;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.read().data.get(key).cloned())
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        let mut state = self.write_lock();
        if batch.decree != state.applied.decree + 1 {
            return Err(StorageError::DecreeOutOfOrder {
                last_applied: state.applied.decree,
                got: batch.decree,
            });
        }
        for op in &batch.ops {
            match op {
                BatchOp::Put { key, value } => {
                    state.data.insert(key.clone(), value.clone());
                }
                BatchOp::Delete { key } => {
                    state.data.remove(key);
                }
            }
        }
        state.applied = AppliedState {
            decree: batch.decree,
            write_time_us: batch.write_time_us,
        };
        if let Some(policy) = batch.new_ttl_policy {
            state.ttl = policy;
        }
        Ok(())
    }

    fn iter(&self, opts: IterOptions) -> MemoryIter<'_> {
        MemoryIter {
            engine: self,
            opts,
            current: None,
        }
    }

    fn applied_state(&self) -> AppliedState {
        self.read().applied
    }

    fn durable_decree(&self) -> Result<Decree> {
        Ok(self.disk.load().applied.decree)
    }

    fn flush(&self) -> Result<()> {
        let image = self.read().clone();
        self.disk.store(image);
        Ok(())
    }

    fn checkpoint(&self, dir: &Path) -> Result<AppliedState> {
        let image = self.read().clone();
        if dir.exists() {
            return Err(StorageError::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("checkpoint directory {} already exists", dir.display()),
            )));
        }
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(SNAPSHOT_FILE), encode_image(&image))?;
        Ok(image.applied)
    }

    fn ttl_policy(&self) -> TtlPolicy {
        self.read().ttl
    }

    fn set_ttl_policy(&self, policy: TtlPolicy) -> Result<()> {
        self.write_lock().ttl = policy;
        Ok(())
    }

    fn compact_all(&self) -> Result<()> {
        let wall = self.clock.pegasus_now();
        let mut state = self.write_lock();
        let now = wall.min(unix_micros_to_pegasus_secs(state.applied.write_time_us));
        let policy = state.ttl;
        state.data.retain(|key, value| {
            key.len() < 2 || decode_expire_ts(value).map_or(true, |ts| !policy.is_expired(ts, now))
        });
        Ok(())
    }
}

/// Iterator over a [`MemoryEngine`]. Each step looks the next key up under the read lock,
/// so it sees writes made after it was created (the partition store never relies on
/// snapshot isolation for iterators).
#[derive(Debug)]
pub struct MemoryIter<'a> {
    engine: &'a MemoryEngine,
    opts: IterOptions,
    current: Option<(Vec<u8>, Vec<u8>)>,
}

impl MemoryIter<'_> {
    fn lower_bound(&self) -> Bound<&[u8]> {
        self.opts
            .lower
            .as_deref()
            .map_or(Bound::Unbounded, Bound::Included)
    }

    fn upper_bound(&self) -> Bound<&[u8]> {
        self.opts
            .upper
            .as_deref()
            .map_or(Bound::Unbounded, Bound::Excluded)
    }

    /// The first entry in the range.
    fn first_in(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Option<(Vec<u8>, Vec<u8>)> {
        if bounds_empty(lo, hi) {
            return None;
        }
        let state = self.engine.read();
        let mut range = state.data.range::<[u8], _>((lo, hi));
        range.next().map(|(k, v)| (k.clone(), v.clone()))
    }

    /// The last entry in the range.
    fn last_in(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Option<(Vec<u8>, Vec<u8>)> {
        if bounds_empty(lo, hi) {
            return None;
        }
        let state = self.engine.read();
        let mut range = state.data.range::<[u8], _>((lo, hi));
        range.next_back().map(|(k, v)| (k.clone(), v.clone()))
    }
}

/// Whether a range is empty (`BTreeMap::range` panics on inverted bounds).
fn bounds_empty(lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b))
        | (Bound::Excluded(a), Bound::Excluded(b)) => a >= b,
        _ => false,
    }
}

fn max_lower<'k>(a: Bound<&'k [u8]>, b: Bound<&'k [u8]>) -> Bound<&'k [u8]> {
    match (a, b) {
        (Bound::Unbounded, x) | (x, Bound::Unbounded) => x,
        (Bound::Included(x), Bound::Included(y)) => Bound::Included(x.max(y)),
        (Bound::Excluded(x), Bound::Excluded(y)) => Bound::Excluded(x.max(y)),
        (Bound::Included(i), Bound::Excluded(e)) | (Bound::Excluded(e), Bound::Included(i)) => {
            if i > e {
                Bound::Included(i)
            } else {
                Bound::Excluded(e)
            }
        }
    }
}

fn min_upper<'k>(a: Bound<&'k [u8]>, b: Bound<&'k [u8]>) -> Bound<&'k [u8]> {
    match (a, b) {
        (Bound::Unbounded, x) | (x, Bound::Unbounded) => x,
        (Bound::Included(x), Bound::Included(y)) => Bound::Included(x.min(y)),
        (Bound::Excluded(x), Bound::Excluded(y)) => Bound::Excluded(x.min(y)),
        (Bound::Included(i), Bound::Excluded(e)) | (Bound::Excluded(e), Bound::Included(i)) => {
            if i < e {
                Bound::Included(i)
            } else {
                Bound::Excluded(e)
            }
        }
    }
}

impl EngineIterator for MemoryIter<'_> {
    fn seek(&mut self, key: &[u8]) {
        self.current = self.first_in(
            max_lower(self.lower_bound(), Bound::Included(key)),
            self.upper_bound(),
        );
    }

    fn seek_for_prev(&mut self, key: &[u8]) {
        self.current = self.last_in(
            self.lower_bound(),
            min_upper(self.upper_bound(), Bound::Included(key)),
        );
    }

    fn seek_to_first(&mut self) {
        self.current = self.first_in(self.lower_bound(), self.upper_bound());
    }

    fn seek_to_last(&mut self) {
        self.current = self.last_in(self.lower_bound(), self.upper_bound());
    }

    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn key(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |(k, _)| k.as_slice())
    }

    fn value(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |(_, v)| v.as_slice())
    }

    fn next(&mut self) {
        if let Some((cur, _)) = self.current.take() {
            self.current = self.first_in(Bound::Excluded(cur.as_slice()), self.upper_bound());
        }
    }

    fn prev(&mut self) {
        if let Some((cur, _)) = self.current.take() {
            self.current = self.last_in(self.lower_bound(), Bound::Excluded(cur.as_slice()));
        }
    }

    fn status(&self) -> Result<()> {
        Ok(())
    }
}

/// Opens memory engines by path: each path names its own [`MemoryDisk`], kept for as long
/// as the factory lives, so close-and-reopen works as it does on a real disk.
#[derive(Debug, Clone)]
pub struct MemoryEngineFactory {
    disks: Arc<Mutex<HashMap<PathBuf, MemoryDisk>>>,
    clock: Arc<dyn Clock>,
}

impl MemoryEngineFactory {
    /// A factory whose engines read time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            disks: Arc::default(),
            clock,
        }
    }

    /// The disk behind `path` (created empty on first use).
    pub fn disk(&self, path: &Path) -> MemoryDisk {
        let mut disks = self.disks.lock().unwrap_or_else(|e| e.into_inner());
        disks.entry(path.to_path_buf()).or_default().clone()
    }
}

impl EngineFactory for MemoryEngineFactory {
    type Engine = MemoryEngine;

    fn open(&self, path: &Path) -> Result<MemoryEngine> {
        // A directory holding a checkpoint opens as that checkpoint, as RocksDB would.
        let snapshot = path.join(SNAPSHOT_FILE);
        if snapshot.is_file() {
            let mut disks = self.disks.lock().unwrap_or_else(|e| e.into_inner());
            if !disks.contains_key(path) {
                disks.insert(path.to_path_buf(), MemoryEngine::load_checkpoint(path)?);
            }
        }
        Ok(MemoryEngine::open(self.disk(path), self.clock.clone()))
    }
}

const SNAPSHOT_FILE: &str = "memory-engine.snapshot";
const SNAPSHOT_MAGIC: &[u8; 8] = b"PGMEMSN1";

fn encode_image(image: &Image) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&image.applied.decree.to_be_bytes());
    out.extend_from_slice(&image.applied.write_time_us.to_be_bytes());
    out.extend_from_slice(&image.ttl.default_ttl.to_be_bytes());
    out.extend_from_slice(&image.ttl.since.to_be_bytes());
    out.extend_from_slice(&(image.data.len() as u64).to_be_bytes());
    for (k, v) in &image.data {
        out.extend_from_slice(&(k.len() as u64).to_be_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u64).to_be_bytes());
        out.extend_from_slice(v);
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(StorageError::Corruption("truncated memory snapshot".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes(b.try_into().unwrap_or([0; 4])))
    }

    fn len(&mut self) -> Result<usize> {
        let n = self.u64()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.0.len())
            .ok_or_else(|| StorageError::Corruption("bad length in memory snapshot".into()))
    }
}

fn decode_image(raw: &[u8]) -> Result<Image> {
    let mut r = Reader(raw);
    if r.take(8)? != SNAPSHOT_MAGIC {
        return Err(StorageError::Corruption(
            "not a memory-engine snapshot".into(),
        ));
    }
    let decree = r.u64()? as i64;
    let write_time_us = r.u64()?;
    let ttl = TtlPolicy {
        default_ttl: r.u32()?,
        since: r.u32()?,
    };
    let count = r.u64()?;
    let mut data = BTreeMap::new();
    for _ in 0..count {
        let klen = r.len()?;
        let k = r.take(klen)?.to_vec();
        let vlen = r.len()?;
        let v = r.take(vlen)?.to_vec();
        data.insert(k, v);
    }
    Ok(Image {
        data,
        applied: AppliedState {
            decree,
            write_time_us,
        },
        ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_decoder_rejects_garbage_without_panicking() {
        assert!(decode_image(b"").is_err());
        assert!(decode_image(b"PGMEMSN1").is_err());
        let mut img = Image::default();
        img.data.insert(b"k".to_vec(), b"v".to_vec());
        let enc = encode_image(&img);
        assert_eq!(decode_image(&enc).unwrap(), img);
        for cut in 0..enc.len() {
            assert!(decode_image(&enc[..cut]).is_err());
        }
    }

    #[test]
    fn crash_loses_batches_applied_after_the_last_flush() {
        let clock: Arc<dyn Clock> = Arc::new(pegasus_core::time::ManualClock::new(0));
        let disk = MemoryDisk::new();
        let e = MemoryEngine::open(disk.clone(), clock.clone());
        let b = |decree: i64, k: &[u8]| WriteBatch {
            decree,
            write_time_us: 0,
            ops: vec![BatchOp::Put {
                key: k.to_vec(),
                value: b"v".to_vec(),
            }],
            ..WriteBatch::default()
        };
        e.write(&b(1, b"a")).unwrap();
        e.flush().unwrap();
        e.write(&b(2, b"b")).unwrap();
        e.crash();
        let e = MemoryEngine::open(disk, clock);
        assert_eq!(e.applied_state().decree, 1);
        assert!(e.get(b"a").unwrap().is_some());
        assert!(e.get(b"b").unwrap().is_none());
    }

    #[test]
    fn inverted_bounds_are_empty() {
        assert!(bounds_empty(Bound::Included(b"b"), Bound::Excluded(b"a")));
        assert!(bounds_empty(Bound::Included(b"a"), Bound::Excluded(b"a")));
        assert!(!bounds_empty(Bound::Included(b"a"), Bound::Included(b"a")));
    }
}
