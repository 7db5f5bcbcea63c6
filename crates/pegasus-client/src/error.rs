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
    /// A connection failed after the request was sent or queued: its outcome is unknown.
    #[error("transport: {0}")]
    Transport(String),
    /// The request was never sent (no connection).
    #[error("not sent: {0}")]
    NotSent(String),
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
            Self::Transport(_) | Self::NotSent(_) => true,
            Self::Server(code) => refused_before_proposal(*code) || *code == ErrorCode::Timeout,
            _ => false,
        }
    }

    /// Whether a write may be retried: only when it certainly was not applied — never
    /// sent, or refused before it was proposed. A write that timed out, was aborted by a
    /// primary change (ERR_TIMEOUT) or lost its connection after sending may still commit;
    /// sending it again could apply it twice (a set reappearing after a later write, an
    /// incr counted twice, a check_and_set reporting failure for its own success), so that
    /// error goes back to the caller as an unknown outcome.
    pub fn is_retryable_write(&self) -> bool {
        match self {
            Self::NotSent(_) => true,
            Self::Server(code) => refused_before_proposal(*code),
            _ => false,
        }
    }
}

/// Codes a server answers before a write is proposed (wrong server, not primary, too few
/// members, overloaded, ...): the request had no effect, and the official clients refresh
/// the partition configuration and retry.
fn refused_before_proposal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::ObjectNotFound
            | ErrorCode::InvalidState
            | ErrorCode::InactiveState
            | ErrorCode::NotEnoughMember
            | ErrorCode::ParentPartitionMisused
            | ErrorCode::Splitting
            | ErrorCode::ForwardToOthers
            | ErrorCode::Busy
    )
}

/// Result alias.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

impl From<pegasus_rpc::RpcError> for ClientError {
    fn from(e: pegasus_rpc::RpcError) -> Self {
        match e {
            pegasus_rpc::RpcError::Transport(m) => Self::Transport(m),
            pegasus_rpc::RpcError::NotSent(m) => Self::NotSent(m),
            pegasus_rpc::RpcError::Timeout => Self::Transport("rpc timed out".into()),
            pegasus_rpc::RpcError::Remote(code) => Self::Server(code),
            pegasus_rpc::RpcError::Decode(m) => Self::BadReply(m),
        }
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    #[test]
    fn writes_are_retried_only_when_certainly_not_applied() {
        // Never sent, or refused before being proposed: safe to send again.
        for e in [
            ClientError::NotSent("connect refused".into()),
            ClientError::Server(ErrorCode::InvalidState),
            ClientError::Server(ErrorCode::ObjectNotFound),
            ClientError::Server(ErrorCode::NotEnoughMember),
            ClientError::Server(ErrorCode::Busy),
        ] {
            assert!(e.is_retryable_write(), "{e}");
            assert!(e.is_retryable(), "{e}");
        }
        // Sent, outcome unknown: a read may retry, a write must not.
        for e in [
            ClientError::Transport("connection reset".into()),
            ClientError::Server(ErrorCode::Timeout),
        ] {
            assert!(!e.is_retryable_write(), "{e}");
            assert!(e.is_retryable(), "{e}");
        }
    }
}
