//! Errors of the storage layer.

use pegasus_core::ids::Decree;
use pegasus_core::status::StorageStatus;

/// A failure of the storage engine or of the partition store.
///
/// Logical outcomes of operations (not found, check failed, invalid argument) are *not*
/// errors: they are status codes inside the responses. An `Err(StorageError)` means the
/// engine itself could not do its job. The replica that owns it must stop serving: after a
/// [transient](StorageError::is_transient) resource error it is closed and reopened in
/// place, after anything else it is set aside and re-learned (ARCHITECTURE.md, "which local
/// errors do what").
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

// Linux's errno values (`asm-generic/errno-base.h`; the BSDs and macOS use the same four
// numbers). The crate does not depend on `libc` for four constants.
/// Too many open files (this process's descriptor limit).
pub const EMFILE: i32 = 24;
/// Too many open files in the system.
pub const ENFILE: i32 = 23;
/// Out of memory.
pub const ENOMEM: i32 = 12;
/// No space left on device.
pub const ENOSPC: i32 = 28;

/// The `strerror` texts of those four errors. RocksDB's C API hands us only a status kind
/// (`IOError` for all of them) and a message, which ends with the OS's text, e.g. `IO error:
/// While open a file for appending: …/000012.sst: Too many open files`. (ENFILE's text, "Too
/// many open files in system", contains EMFILE's.)
const RESOURCE_EXHAUSTION_TEXTS: [&str; 3] = [
    "Too many open files",
    "No space left on device",
    "Cannot allocate memory",
];

/// Whether an I/O error is the system running out of a resource — descriptors (`EMFILE`,
/// `ENFILE`), memory (`ENOMEM`) or disk space (`ENOSPC`) — rather than a broken disk or
/// broken data: the same operation may succeed once the resource is back.
pub fn is_resource_exhaustion(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOMEM | ENOSPC))
}

/// Whether an error's text says the disk is out of space (`ENOSPC`, as the OS words it;
/// RocksDB's messages and our own reasons carry it the same way).
pub fn names_disk_full(message: &str) -> bool {
    message.contains("No space left on device")
}

/// Whether an engine message names one of the resource exhaustion errors.
pub fn names_resource_exhaustion(message: &str) -> bool {
    RESOURCE_EXHAUSTION_TEXTS
        .iter()
        .any(|text| message.contains(text))
}

impl StorageError {
    /// Whether this error is a transient lack of a resource (descriptors, memory, disk
    /// space) rather than corruption or a failing disk: the replica may be closed and
    /// reopened from its own directory instead of being rebuilt from another copy.
    ///
    /// RocksDB's C API gives only a status kind and a message, so an engine error is
    /// classified by the `strerror` text in its message. Everything that is not such a
    /// resource error (corruption, EIO, a decree out of order, undecodable data) is not
    /// transient.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Io(e) => is_resource_exhaustion(e),
            Self::Engine { message, .. } => names_resource_exhaustion(message),
            Self::Corruption(_) | Self::DecreeOutOfOrder { .. } | Self::NotSupported(_) => false,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_exhaustion_is_told_by_the_os_error_number() {
        for code in [EMFILE, ENFILE, ENOMEM, ENOSPC] {
            assert!(
                is_resource_exhaustion(&std::io::Error::from_raw_os_error(code)),
                "errno {code}"
            );
        }
        // EIO, EACCES, ENOENT: a broken disk or a broken layout, not a lack of resources.
        for code in [5, 13, 2] {
            assert!(!is_resource_exhaustion(&std::io::Error::from_raw_os_error(
                code
            )));
        }
        // An error without an OS number is never transient, whatever it says.
        assert!(!is_resource_exhaustion(&std::io::Error::other(
            "Too many open files"
        )));
    }

    #[test]
    fn the_os_error_numbers_are_the_ones_the_os_reports() {
        // The named constants must be what this OS's error texts say they are.
        let text = |code| std::io::Error::from_raw_os_error(code).to_string();
        assert!(
            text(EMFILE).contains("Too many open files"),
            "{}",
            text(EMFILE)
        );
        assert!(text(ENFILE).contains("Too many open files in system"));
        assert!(text(ENOMEM).contains("Cannot allocate memory"));
        assert!(text(ENOSPC).contains("No space left on device"));
    }

    #[test]
    fn only_resource_errors_are_transient() {
        let engine = |message: &str| StorageError::Engine {
            status: StorageStatus::IoError,
            message: message.into(),
        };
        assert!(engine(
            "IO error: While open a file for appending: /d/000012.sst: Too many open files"
        )
        .is_transient());
        assert!(engine("IO error: No space left on device While appending to file").is_transient());
        assert!(engine("IO error: Cannot allocate memory").is_transient());
        assert!(StorageError::Io(std::io::Error::from_raw_os_error(EMFILE)).is_transient());
        assert!(StorageError::Io(std::io::Error::from_raw_os_error(ENOSPC)).is_transient());

        assert!(!engine("IO error: Input/output error").is_transient());
        assert!(!engine("Corruption: block checksum mismatch").is_transient());
        assert!(!StorageError::Io(std::io::Error::from_raw_os_error(5)).is_transient());
        assert!(!StorageError::Corruption("fail point storage_write".into()).is_transient());
        assert!(!StorageError::DecreeOutOfOrder {
            last_applied: 3,
            got: 5
        }
        .is_transient());
        assert!(!StorageError::NotSupported("checkpoint").is_transient());
    }
}
