//! Pegasus's client-facing wire protocol, sans-IO.
//!
//! * [`thrift`]: the thrift binary protocol with bounds on every length and on nesting.
//! * [`codec`]: per-field codecs and `thrift_struct!`, which describes each struct once.
//! * [`rrdb`] and [`meta`]: encodings of every data and meta message a client or admin tool
//!   sends or receives (the data structs themselves live in `pegasus_core::rrdb`).
//! * [`frame`]: THFT request framing (v0 and v1 headers), response framing, `tokio_util`
//!   codecs for both ends, with a maximum frame size checked before any allocation.
//! * [`rpc`]: RPC names and typed request/response enums.
//! * [`error`]: frame error codes, limited to names the official clients know.
//! * [`address`]: the packed `rpc_address`.
//!
//! No sockets, no files, no clocks: decoding is a pure function of bytes, so it can be
//! fuzzed and tested byte for byte.
#![warn(missing_docs)]

pub mod address;
pub mod codec;
pub mod error;
pub mod frame;
pub mod fuzzing;
pub mod meta;
pub mod rpc;
pub mod rrdb;
pub mod thrift;

#[cfg(test)]
mod roundtrip_tests;
#[cfg(test)]
#[doc(hidden)]
#[allow(
    missing_docs,
    missing_debug_implementations,
    reason = "test-only helper"
)]
pub mod testgen;

pub use address::RpcAddress;
pub use codec::ThriftStruct;
pub use error::ErrorCode;
pub use frame::{ClientCodec, ServerCodec, DEFAULT_MAX_FRAME};
pub use rpc::{MetaRequest, MetaResponse, Request, RrdbRequest, RrdbResponse};
