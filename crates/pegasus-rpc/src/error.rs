//! RPC errors.

use pegasus_proto::ErrorCode;

/// Why an RPC failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The connection failed or closed before the reply.
    #[error("transport: {0}")]
    Transport(String),
    /// No reply within the caller's deadline.
    #[error("timed out")]
    Timeout,
    /// The server answered with a frame error.
    #[error("server error {0}")]
    Remote(ErrorCode),
    /// A reply or payload did not decode.
    #[error("bad payload: {0}")]
    Decode(String),
}

/// Result alias.
pub type Result<T, E = RpcError> = std::result::Result<T, E>;
