//! Storage status codes: the `error` field of every rrdb response.
//!
//! Pegasus sends RocksDB's `Status::Code` numbers; clients map them to their own errors.

/// A RocksDB-style status code as carried in `response.error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum StorageStatus {
    /// Success.
    Ok = 0,
    /// The record does not exist or has expired.
    NotFound = 1,
    /// Stored data is corrupt.
    Corruption = 2,
    /// The operation is not supported.
    NotSupported = 3,
    /// An argument is invalid (e.g. a hash key too long, an empty batch, a non-integer for incr).
    InvalidArgument = 4,
    /// An I/O error in the engine.
    IoError = 5,
    /// A merge is in progress.
    MergeInProgress = 6,
    /// A limit was reached before the whole range was read; more data remains.
    Incomplete = 7,
    /// The engine is shutting down.
    ShutdownInProgress = 8,
    /// An operation timed out.
    TimedOut = 9,
    /// An operation was aborted.
    Aborted = 10,
    /// The engine is busy.
    Busy = 11,
    /// Expired.
    Expired = 12,
    /// A check-and-set check failed; the caller may try again.
    TryAgain = 13,
}

impl StorageStatus {
    /// The wire number.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The status for a wire number, if known.
    pub const fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            0 => Self::Ok,
            1 => Self::NotFound,
            2 => Self::Corruption,
            3 => Self::NotSupported,
            4 => Self::InvalidArgument,
            5 => Self::IoError,
            6 => Self::MergeInProgress,
            7 => Self::Incomplete,
            8 => Self::ShutdownInProgress,
            9 => Self::TimedOut,
            10 => Self::Aborted,
            11 => Self::Busy,
            12 => Self::Expired,
            13 => Self::TryAgain,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_match_rocksdb_numbers() {
        assert_eq!(StorageStatus::Ok.code(), 0);
        assert_eq!(StorageStatus::NotFound.code(), 1);
        assert_eq!(StorageStatus::InvalidArgument.code(), 4);
        assert_eq!(StorageStatus::Incomplete.code(), 7);
        assert_eq!(StorageStatus::TryAgain.code(), 13);
        for c in 0..14 {
            assert_eq!(
                StorageStatus::from_code(c).map(StorageStatus::code),
                Some(c)
            );
        }
        assert_eq!(StorageStatus::from_code(14), None);
    }
}
