//! The micro-benchmarks below the workload runs: the partition store against raw RocksDB
//! ([`storage`]), the mutation log's group commit ([`log`]), and the cost of recording a
//! request's metrics ([`metrics`]).

pub mod log;
pub mod metrics;
pub mod storage;

pub use log::bench_log;
pub use metrics::bench_metrics;
pub use storage::bench_storage;
