//! Client errors.

use pegasus_proto::ErrorCode;

/// Why a client call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The call did not finish within its timeout (retries included).
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// A server answered with a frame error that is not retried.
    #[error("server error {0}")]
    Server(ErrorCode),
    /// The storage layer answered with a status code (e.g. 4 invalid argument).
    #[error("storage status {0}")]
    Storage(i32),
    /// The table does not exist (or is being created / dropped).
    #[error("table {name:?}: {err}")]
    Table {
        /// Table name.
        name: String,
        /// The meta server's answer.
        err: ErrorCode,
    },
    /// No meta server could be reached.
    #[error("no meta server reachable: {0}")]
    MetaUnreachable(String),
    /// A connection failed.
    #[error("transport: {0}")]
    Transport(String),
    /// A reply did not decode.
    #[error("bad reply: {0}")]
    BadReply(String),
    /// The arguments are invalid before anything is sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl ClientError {
    /// Whether the official clients refresh the partition configuration and retry on this.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Server(code) => matches!(
                code,
                ErrorCode::ObjectNotFound
                    | ErrorCode::InvalidState
                    | ErrorCode::InactiveState
                    | ErrorCode::NotEnoughMember
                    | ErrorCode::ParentPartitionMisused
                    | ErrorCode::Splitting
                    | ErrorCode::ForwardToOthers
                    | ErrorCode::Busy
                    | ErrorCode::Timeout
            ),
            _ => false,
        }
    }
}

/// Result alias.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

impl From<pegasus_rpc::RpcError> for ClientError {
    fn from(e: pegasus_rpc::RpcError) -> Self {
        match e {
            pegasus_rpc::RpcError::Transport(m) => Self::Transport(m),
            pegasus_rpc::RpcError::Timeout => Self::Transport("rpc timed out".into()),
            pegasus_rpc::RpcError::Remote(code) => Self::Server(code),
            pegasus_rpc::RpcError::Decode(m) => Self::BadReply(m),
        }
    }
}
