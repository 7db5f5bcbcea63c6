//! The storage benchmark: single puts and gets through the [`PartitionStore`] on RocksDB,
//! next to raw RocksDB with the same options, keys and values, in the same run.
//!
//! Each store put is one mutation (its own decree, its own engine batch with the decree in
//! the meta column family), which is what a replica does for an unbatched client write.
//! The raw baseline writes the same encoded key and the bare value with the WAL off.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use pegasus_core::key::encode_key;
use pegasus_core::rrdb::UpdateRequest;
use pegasus_core::time::{Clock, SystemClock};
use pegasus_core::Bytes;

use crate::config::StorageConfig;
use crate::error::{Result, StorageError};
use crate::rocks::{raw, RocksEngine, RocksEnv};
use crate::store::{PartitionStore, ReadLimits, WriteRequest};

/// Benchmark parameters.
#[derive(Debug, Clone)]
pub struct StorageBenchOptions {
    /// Records written (and then read).
    pub records: u64,
    /// Hash key length, bytes.
    pub hash_key_len: usize,
    /// Sort key length, bytes.
    pub sort_key_len: usize,
    /// Value length, bytes.
    pub value_len: usize,
    /// Rounds; each runs raw then store on fresh databases, and the report takes the
    /// median of each phase (the machine is noisy: background compactions, 2 cores).
    pub rounds: usize,
}

impl Default for StorageBenchOptions {
    fn default() -> Self {
        Self {
            records: 200_000,
            hash_key_len: 16,
            sort_key_len: 16,
            value_len: 100,
            rounds: 3,
        }
    }
}

/// Throughput of one phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Phase {
    /// Operations done.
    pub ops: u64,
    /// Seconds taken.
    pub secs: f64,
}

impl Phase {
    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.ops as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// Results of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StorageBenchReport {
    /// Raw RocksDB puts.
    pub raw_put: Phase,
    /// Raw RocksDB gets.
    pub raw_get: Phase,
    /// Partition-store puts (one mutation each).
    pub store_put: Phase,
    /// Partition-store gets.
    pub store_get: Phase,
}

impl StorageBenchReport {
    /// Store put throughput as a fraction of raw RocksDB's.
    pub fn put_ratio(&self) -> f64 {
        ratio(self.store_put.ops_per_sec(), self.raw_put.ops_per_sec())
    }

    /// Store get throughput as a fraction of raw RocksDB's.
    pub fn get_ratio(&self) -> f64 {
        ratio(self.store_get.ops_per_sec(), self.raw_get.ops_per_sec())
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// A fixed-width key part from a counter: deterministic, spread over the key space.
fn key_part(i: u64, len: usize, salt: u64) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        out.push(b'a' + (x % 26) as u8);
    }
    out
}

/// Runs `op` on every item, timing it; every call must report success.
fn timed<T>(
    phase: &str,
    items: &[T],
    progress: &mut dyn FnMut(&str, u64, u64),
    mut op: impl FnMut(u64, &T) -> Result<bool>,
) -> Result<Phase> {
    let n = items.len() as u64;
    let tick = (n / 100).max(1);
    let start = Instant::now();
    for (i, item) in (0u64..).zip(items) {
        if !op(i, item)? {
            return Err(StorageError::Corruption(format!(
                "{phase}: operation {i} failed"
            )));
        }
        if i.is_multiple_of(tick) {
            progress(phase, i, n);
        }
    }
    Ok(Phase {
        ops: n,
        secs: start.elapsed().as_secs_f64(),
    })
}

/// Runs the benchmark in `dir` (two databases are created there). `progress` is called
/// with a phase name and the fraction done, for progress bars.
pub fn run_storage_bench(
    dir: &Path,
    opts: &StorageBenchOptions,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<StorageBenchReport> {
    let env = RocksEnv::new(StorageConfig::default(), Arc::new(SystemClock));
    let n = opts.records;
    let keys: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
        .map(|i| {
            (
                key_part(i, opts.hash_key_len, 1),
                key_part(i, opts.sort_key_len, 2),
            )
        })
        .collect();
    let encoded: Vec<Vec<u8>> = keys
        .iter()
        .map(|(h, s)| encode_key(h, s))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| StorageError::Corruption(e.to_string()))?;
    let value = Bytes::from(vec![b'v'; opts.value_len]);
    // Reads go in a different order than writes: multiplying by a prime modulo n is a
    // permutation of 0..n.
    let read_keys: Vec<&[u8]> = (0..n)
        .filter_map(|i| encoded.get((i.wrapping_mul(2_654_435_761) % n.max(1)) as usize))
        .map(Vec::as_slice)
        .collect();
    let requests: Vec<WriteRequest> = encoded
        .iter()
        .map(|k| {
            WriteRequest::Put(UpdateRequest {
                key: Bytes::copy_from_slice(k),
                value: value.clone(),
                expire_ts_seconds: 0,
            })
        })
        .collect();
    let mut rounds = Vec::new();
    for round in 0..opts.rounds.max(1) {
        let raw_db = raw::open(&env, &dir.join(format!("raw-{round}")))?;
        let raw_put = timed("raw put", &encoded, progress, |_, k| {
            raw_db.put(k, &value)?;
            Ok(true)
        })?;
        let raw_get = timed("raw get", &read_keys, progress, |_, k| {
            Ok(raw_db.get(k)?.is_some())
        })?;
        drop(raw_db);

        let engine = RocksEngine::open(&env, &dir.join(format!("store-{round}")))?;
        let store = PartitionStore::new(engine, Arc::new(SystemClock), ReadLimits::default());
        let store_put = timed("store put", &requests, progress, |i, req| {
            let decree = i as i64 + 1;
            let resp = store.apply(decree, SystemClock.now_micros(), std::slice::from_ref(req))?;
            Ok(resp.first().is_some_and(|r| r.error() == 0))
        })?;
        let store_get = timed("store get", &read_keys, progress, |_, k| {
            Ok(store.get(k).error == 0)
        })?;
        rounds.push(StorageBenchReport {
            raw_put,
            raw_get,
            store_put,
            store_get,
        });
    }
    progress("done", n, n);
    let median = |f: fn(&StorageBenchReport) -> Phase| {
        let mut phases: Vec<Phase> = rounds.iter().map(f).collect();
        phases.sort_by(|a, b| a.ops_per_sec().total_cmp(&b.ops_per_sec()));
        phases
            .get(phases.len() / 2)
            .copied()
            .unwrap_or(Phase { ops: 0, secs: 0.0 })
    };
    Ok(StorageBenchReport {
        raw_put: median(|r| r.raw_put),
        raw_get: median(|r| r.raw_get),
        store_put: median(|r| r.store_put),
        store_get: median(|r| r.store_get),
    })
}
