//! A Redis-protocol proxy in front of one Pegasus table (`pegasus redis-proxy`): Redis users
//! and tools (redis-cli, redis-benchmark) use the table directly.
//!
//! * [`resp`]: RESP2 requests and replies, sans-IO, with limits checked before allocation.
//! * [`proxy`]: the commands, over the Rust client. A Redis key is a hash key with an empty
//!   sort key. GET, SET (EX/PX, NX/XX via check_and_set), SETEX, PSETEX, DEL (several keys;
//!   counts keys that existed, decided atomically with the delete), EXISTS, TTL, PTTL,
//!   EXPIRE (compare-and-set on the current value), INCR/INCRBY/DECR/DECRBY, MGET, MSET (not
//!   atomic across keys), PING, ECHO, QUIT, SELECT 0, CONFIG GET; HELLO and COMMAND answer
//!   a clear error. Pegasus keeps TTLs in seconds, so millisecond TTLs round up.
//!   The GEO commands are not offered: Pegasus serves them from a second table indexed by
//!   S2 cells, which is a feature of its own.

#![warn(missing_docs)]

pub mod proxy;
pub mod resp;

pub use proxy::Proxy;
