//! `pegasus chaos`: real processes, real faults, every client operation recorded and checked.
//!
//! A run starts a onebox ([`cluster`]), runs two workloads against it ([`workload`]: per-key
//! registers with get/set/check_and_set/incr recorded for the linearizability checker of
//! `pegasus-check`, and Pegasus's kill-test verifier of acknowledged sequential writes),
//! injects faults from a seeded schedule ([`nemesis`]: install, hold, heal), heals
//! everything, checks liveness (every partition back to one primary and two secondaries and
//! a write accepted by each), reads everything back, and reports ([`Report`]).
//!
//! A clean run shows that these faults found no violation; it does not prove correctness.
//! One kernel, loopback TCP and a shared page cache: a `kill -9` does not lose what the
//! kernel already holds.
//!
//! The run itself is split in `run` ([`ChaosOptions`] and the run loop), `liveness` (what
//! meta shows after healing), `probe` (stale-read probes during primary isolation) and
//! `report` ([`Report`]: the numbers, the verdict and the summaries).

#![warn(missing_docs)]

pub mod cluster;
pub mod flood;
pub mod idle;
pub mod nemesis;
pub mod net;
pub mod tamper;
pub mod workload;

mod liveness;
mod probe;
mod report;
mod run;

pub use liveness::wait_healthy;
pub use report::{Latency, Report, ScheduleEntry};
pub use run::{run, ChaosOptions};

/// A harness failure (not a finding about the system under test).
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// Starting or controlling the cluster failed.
    #[error("cluster: {0}")]
    Cluster(String),
    /// The client failed where the harness needs it.
    #[error("client: {0}")]
    Client(#[from] pegasus_client::ClientError),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, ChaosError>;

impl From<std::io::Error> for ChaosError {
    fn from(e: std::io::Error) -> Self {
        Self::Cluster(e.to_string())
    }
}
