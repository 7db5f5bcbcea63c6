//! `pegasus bench`: the load generator behind every published figure of this project.
//!
//! One workload model ([`workload`]: YCSB A–F and Pegasus's own bench names), one runner
//! ([`run`]: closed loop with a concurrency sweep, or open loop at a target rate measured
//! from the scheduled send time), and two targets driven by the same code ([`target`]: a
//! Pegasus table through `pegasus-client`, or redis-server over plain RESP). Latencies go
//! into HDR histograms; [`report`] prints them, renders markdown tables, and [`plot`] draws
//! throughput and P99 against concurrency as a PNG. The `pegasus bench` subcommands live here
//! too, the binary only parses their flags: [`command`] (`bench run`), [`suite`] (`bench
//! suite`: a onebox and two redis-servers side by side, BENCHMARKS.md), [`replicas`]
//! (`bench replicas`: what many replicas per server cost) and [`micro`]
//! (`bench storage`, `bench log`, `bench metrics`). [`error`] holds the crate's error type.

#![warn(missing_docs)]

pub mod command;
pub mod error;
pub mod keys;
pub mod micro;
pub mod plot;
pub mod replicas;
pub mod report;
pub mod run;
pub mod suite;
pub mod target;
pub mod workload;

pub use command::{run_command, RunCommandOptions, WorkloadOptions};
pub use error::{BenchError, Result};
pub use replicas::{run_replicas, ReplicasOptions};
pub use run::{run, LatencySummary, Mode, RunOptions, RunReport};
pub use suite::{run_suite, SuiteOptions};
pub use target::{Target, TargetSpec};
pub use workload::{OpKind, WorkloadName, WorkloadSpec};
