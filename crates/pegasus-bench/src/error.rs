//! The crate's error type: what a benchmark run, the suite or a micro-benchmark can fail on.

use std::net::SocketAddr;
use std::path::PathBuf;

use pegasus_client::ClientError;
use pegasus_redis::resp::RespError;

use crate::target::TargetSpec;

/// A benchmark failure.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The target string is not understood.
    #[error(
        "invalid target {0:?}: expected pegasus://META[,META...][/TABLE] or redis://HOST:PORT"
    )]
    InvalidTarget(String),
    /// The Pegasus client failed.
    #[error("pegasus: {0}")]
    Pegasus(#[from] ClientError),
    /// Redis answered with an error or broke the protocol.
    #[error("redis: {0}")]
    Redis(String),
    /// A socket failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The target cannot run this operation.
    #[error("{target} cannot run {op}")]
    Unsupported {
        /// Target kind.
        target: &'static str,
        /// Operation.
        op: &'static str,
    },
    /// Connecting to a target failed.
    #[error("connecting to {target}")]
    Connect {
        /// The target.
        target: TargetSpec,
        /// Why.
        #[source]
        source: Box<BenchError>,
    },
    /// A local file, directory, child process or runtime could not be set up (shown as is;
    /// socket failures during a run are [`BenchError::Io`]).
    #[error(transparent)]
    Local(std::io::Error),
    /// A report file could not be written.
    #[error("writing {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A report could not be serialised.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The suite's onebox failed to start.
    #[error(transparent)]
    Onebox(#[from] pegasus_chaos::ChaosError),
    /// A benchmark's cluster could not be set up (tables not created or never healthy).
    #[error("setup: {0}")]
    Setup(String),
    /// A redis-server could not be started.
    #[error("starting {program} (install redis-server)")]
    StartRedis {
        /// The redis-server program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A redis-server started but never listened.
    #[error("{name} did not listen on {addr}")]
    RedisNotListening {
        /// Its label.
        name: String,
        /// Its address.
        addr: SocketAddr,
    },
    /// The storage micro-benchmark failed.
    #[error(transparent)]
    Storage(#[from] pegasus_storage::StorageError),
    /// The mutation-log micro-benchmark failed.
    #[error(transparent)]
    Log(#[from] pegasus_replica::LogError),
    /// The metrics recorder could not be installed.
    #[error(transparent)]
    MetricsRecorder(Box<dyn std::error::Error + Send + Sync>),
    /// A timing thread of the metrics micro-benchmark panicked.
    #[error("timing thread panicked")]
    TimingThreadPanicked,
    /// The metrics recorder missed calls.
    #[error("the recorder did not count every call: expected `{expected}`")]
    RecorderMissedCalls {
        /// The line the rendered metrics should contain.
        expected: String,
    },
}

impl From<RespError> for BenchError {
    fn from(e: RespError) -> Self {
        Self::Redis(e.to_string())
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, BenchError>;
