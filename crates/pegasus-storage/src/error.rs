//! Errors of the storage layer.

use pegasus_core::ids::Decree;
use pegasus_core::status::StorageStatus;

/// A failure of the storage engine or of the partition store.
///
/// Logical outcomes of operations (not found, check failed, invalid argument) are *not*
/// errors: they are status codes inside the responses. An `Err(StorageError)` means the
/// engine itself could not do its job; the replica that owns it must stop serving and
/// re-learn (see ARCHITECTURE.md, "a local I/O error poisons one replica").
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB (or the file system under it) reported an error.
    #[error("engine error ({status:?}): {message}")]
    Engine {
        /// The closest storage status code.
        status: StorageStatus,
        /// The engine's message.
        message: String,
    },
    /// File system error outside the engine (checkpoint directories, snapshots).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Stored bytes do not decode (a value shorter than its header, a bad meta record).
    #[error("corruption: {0}")]
    Corruption(String),
    /// A write batch's decree does not follow the last applied decree.
    #[error("decree {got} cannot be applied after {last_applied}; expected {}", last_applied + 1)]
    DecreeOutOfOrder {
        /// The decree last applied.
        last_applied: Decree,
        /// The decree of the rejected batch.
        got: Decree,
    },
    /// The engine was asked to do something it does not support.
    #[error("not supported: {0}")]
    NotSupported(&'static str),
}

impl StorageError {
    /// The storage status code a client sees for this error.
    pub fn status(&self) -> StorageStatus {
        match self {
            Self::Engine { status, .. } => *status,
            Self::Io(_) => StorageStatus::IoError,
            Self::Corruption(_) => StorageStatus::Corruption,
            Self::DecreeOutOfOrder { .. } => StorageStatus::Aborted,
            Self::NotSupported(_) => StorageStatus::NotSupported,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
