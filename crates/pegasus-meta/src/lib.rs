//! The meta server.
//!
//! * [`guardian`]: partition configuration logic, sans-IO: the ballot CAS that accepts
//!   replica-initiated updates, the reaction to dead nodes, and the cure rules that decide the
//!   next configuration change of an unhealthy partition. The simulator and the real meta
//!   server run the same code.
//! * [`pass`]: one guardian pass over the whole cluster, sans-IO (dead members, the cure of
//!   every partition with load counted as it goes, proposal re-sends); the simulator runs it.
//! * [`state`]: the replicated cluster state (tables, partitions, nodes, function level) and
//!   the deterministic commands that change it.
//! * [`detector`]: failure detection from beacons, sans-IO (alive, newly dead, the grace
//!   rule); the simulator runs it too.
//! * [`envs`]: table env validation.
//! * [`raft`]: openraft glue — durable log, snapshots, the network between meta servers.
//! * [`server`]: the meta server process: the client-facing meta RPCs, failure detection
//!   from beacons, the guardian loop that drives PacificA reconfiguration.
//! * [`protocol`]: messages between replica servers and meta (`pegasus-control`, re-exported:
//!   the replica server uses that crate without depending on this one).
#![warn(missing_docs)]

pub mod config;
pub mod detector;
pub mod envs;
pub mod guardian;
pub mod pass;
pub use pegasus_control as protocol;
pub mod raft;
pub mod server;
pub mod state;
