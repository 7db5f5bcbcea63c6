//! The meta server.
//!
//! * [`guardian`]: partition configuration logic, sans-IO: the ballot CAS that accepts
//!   replica-initiated updates, the reaction to dead nodes, and the cure rules that decide the
//!   next configuration change of an unhealthy partition. The simulator and the real meta
//!   server run the same code.
#![warn(missing_docs)]

pub mod guardian;
