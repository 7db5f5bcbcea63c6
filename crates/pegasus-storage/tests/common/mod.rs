//! Shared helpers for the storage integration tests: one harness per engine kind, so every
//! suite runs against RocksDB and the in-memory engine alike.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use pegasus_core::time::{ManualClock, PEGASUS_EPOCH_UNIX_SECS};
use pegasus_storage::{
    EngineFactory, MemoryEngineFactory, RocksEngineFactory, RocksEnv, StorageConfig,
};

/// Pegasus-epoch second the tests' clocks start at (2026-ish).
pub const T0: u32 = 320_000_000;

pub fn clock() -> ManualClock {
    ManualClock::at_pegasus_secs(T0)
}

/// Unix microseconds of a Pegasus-epoch second.
pub fn us(pegasus_secs: u32) -> u64 {
    (PEGASUS_EPOCH_UNIX_SECS + u64::from(pegasus_secs)) * 1_000_000
}

#[derive(Debug)]
pub struct Harness<F> {
    pub factory: F,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
}

impl<F: EngineFactory> Harness<F> {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn open(&self, name: &str) -> F::Engine {
        self.factory.open(&self.path(name)).unwrap()
    }
}

pub fn small_config() -> StorageConfig {
    StorageConfig {
        rocksdb_block_cache_capacity: 8 << 20,
        rocksdb_write_buffer_size: 4 << 20,
        rocksdb_max_background_jobs: 2,
        ..StorageConfig::default()
    }
}

pub fn rocks() -> Harness<RocksEngineFactory> {
    rocks_with(small_config())
}

pub fn rocks_with(config: StorageConfig) -> Harness<RocksEngineFactory> {
    let clock = clock();
    Harness {
        factory: RocksEngineFactory::new(RocksEnv::new(config, Arc::new(clock.clone()))),
        clock,
        dir: tempfile::tempdir().unwrap(),
    }
}

pub fn memory() -> Harness<MemoryEngineFactory> {
    let clock = clock();
    Harness {
        factory: MemoryEngineFactory::new(Arc::new(clock.clone())),
        clock,
        dir: tempfile::tempdir().unwrap(),
    }
}

/// Declares one `#[test]` per listed case for each engine: `mod rocksdb { fn case() }` and
/// `mod memory { fn case() }`, each calling `cases::case(&harness)`.
#[macro_export]
macro_rules! for_each_engine {
    ($($case:ident),* $(,)?) => {
        mod rocksdb_engine {
            $( #[test] fn $case() { super::cases::$case(&$crate::common::rocks()); } )*
        }
        mod memory_engine {
            $( #[test] fn $case() { super::cases::$case(&$crate::common::memory()); } )*
        }
    };
}
