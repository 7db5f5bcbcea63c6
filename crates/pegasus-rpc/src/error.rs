//! RPC errors.

use pegasus_proto::ErrorCode;

/// Why an RPC failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The request was never sent: the connection could not be made, or had closed
    /// before the request was queued on it. Retrying cannot apply anything twice.
    #[error("not sent: {0}")]
    NotSent(String),
    /// The connection failed or closed after the request was queued: the server may or
    /// may not have received it.
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
