//! PacificA replication for Pegasus partitions.
//!
//! * [`core`]: the replica state machine (events in, actions out).
//! * [`driver`]: the one interpreter of the core's actions — a replica's core, store and log
//!   run in rounds (group commit, failure handling), behind a `Host` trait.
//! * [`mutation`]: one decree of a partition's write sequence.
//! * [`log`]: the durable mutation log (segments, checksums, group commit, torn-tail repair).
//! * [`nodelog`]: one write-ahead log per server shared by its replicas (group commit
//!   across partitions); recovery into the replicas' logs.
//! * [`bench`]: `pegasus bench log`, group commit against raw `fdatasync`.
//! * [`failpoint`]: test-only fail points (log append/fsync EIO, store corruption).
//! * [`fs`]: the file-system seam (`pegasus-fs`) with the log's fail points laid over it.
//! * [`update`]: client writes encoded as mutation updates and back.
//! * [`server`]: the replica server process — hosts many replicas (a driver over RocksDB on
//!   a thread each), serves the rrdb RPCs, replicates between servers, beacons
//!   and syncs configuration with meta.
#![warn(missing_docs)]

pub mod bench;
pub mod core;
pub mod driver;
pub mod failpoint;
pub mod fs;
pub mod fuzzing;
pub mod log;
pub mod mutation;
pub mod nodelog;
pub mod server;
pub mod update;

pub use log::{LogError, LogOptions, MutationLog};
pub use mutation::Mutation;
