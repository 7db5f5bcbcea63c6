//! The THFT RPC runtime shared by servers and clients.
//!
//! - [`Session`]: one pipelined client connection (many calls in flight, replies matched by
//!   seqid). The Rust client and server-to-server calls both use it.
//! - [`serve`]: a server loop over THFT frames with a bound on calls in flight per
//!   connection. A malformed frame or an oversize frame header closes that connection only;
//!   the handler never sees it.
//! - [`internal`]: server-to-server calls (meta ↔ meta Raft, replica ↔ meta, replica ↔
//!   replica) whose payload is a serde value carried as the one binary field of a thrift
//!   args struct, so every port speaks one framing.

//! - [`http`]: HTTP admin endpoints on the same port, told apart by the first bytes.

#![warn(missing_docs)]

pub mod error;
pub mod http;
pub mod internal;
pub mod limits;
pub mod server;
pub mod session;

pub use error::{Result, RpcError};
pub use limits::NetworkConfig;
pub use server::{listen, serve, Handler, ServerOptions};
pub use session::{bind_outgoing_to, set_send_delay, Session, SessionPool};
