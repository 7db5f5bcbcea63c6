//! Storage for Pegasus partitions.
//!
//! * [`engine`]: the [`StorageEngine`] trait, an ordered key-value store with a data column
//!   family, atomic decree-tagged batches, iterators and checkpoints.
//! * [`rocks`]: the RocksDB implementation (the only module that names RocksDB types).
//! * [`memory`]: an in-memory implementation with crash semantics, for the simulator.
//! * [`store`]: [`PartitionStore`], every Pegasus data operation with Pegasus's semantics
//!   (key/value schema, TTL, limits, check-and-set, scanners) on top of any engine.
//! * [`bench`]: the storage benchmark against raw RocksDB.
//!
//! Nothing here knows about replication: the replica layer decides what to apply and when.
#![warn(missing_docs)]

pub mod bench;
pub mod config;
pub mod engine;
pub mod error;
pub mod memory;
pub mod rocks;
pub mod store;
pub mod ttl;

pub use config::StorageConfig;
pub use engine::{EngineFactory, EngineIterator, IterOptions, StorageEngine, WriteBatch};
pub use error::{Result, StorageError};
pub use memory::{MemoryDisk, MemoryEngine, MemoryEngineFactory};
pub use rocks::{RocksEngine, RocksEngineFactory, RocksEnv};
pub use store::{PartitionStore, ReadLimits, WriteRequest, WriteResponse};
pub use ttl::TtlPolicy;
