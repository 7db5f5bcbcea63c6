//! PacificA replication for Pegasus partitions.
//!
//! * [`core`]: the replica state machine (events in, actions out).
//! * [`mutation`]: one decree of a partition's write sequence.
//! * [`log`]: the durable mutation log (segments, checksums, group commit, torn-tail repair).
//! * [`bench`]: `pegasus bench log`, group commit against raw `fdatasync`.
//! * [`failpoint`]: test-only fail points (log append/fsync EIO, store corruption).
//! * [`fs`]: the file-system surface the log uses, with an in-memory implementation that
//!   models crashes for the simulator.
//! * [`update`]: client writes encoded as mutation updates and back.
//! * [`server`]: the replica server process — hosts many replicas (core + RocksDB partition
//!   store + mutation log each), serves the rrdb RPCs, replicates between servers, beacons
//!   and syncs configuration with meta.
#![warn(missing_docs)]

pub mod bench;
pub mod core;
pub mod failpoint;
pub mod fs;
pub mod fuzzing;
pub mod log;
pub mod mutation;
pub mod server;
pub mod update;

pub use log::{LogError, LogOptions, MutationLog};
pub use mutation::Mutation;
