//! `pegasus bench`: the load generator behind every published figure of this project.
//!
//! One workload model ([`workload`]: YCSB A–F and Pegasus's own bench names), one runner
//! ([`run`]: closed loop with a concurrency sweep, or open loop at a target rate measured
//! from the scheduled send time), and two targets driven by the same code ([`target`]: a
//! Pegasus table through `pegasus-client`, or redis-server over plain RESP). Latencies go
//! into HDR histograms; [`report`] prints them, renders markdown tables, and [`plot`] draws
//! throughput and P99 against concurrency as a PNG.

#![warn(missing_docs)]

pub mod keys;
pub mod plot;
pub mod report;
pub mod run;
pub mod target;
pub mod workload;

pub use run::{run, LatencySummary, Mode, RunOptions, RunReport};
pub use target::{BenchError, Target, TargetSpec};
pub use workload::{OpKind, WorkloadName, WorkloadSpec};
