//! The client-facing requests and responses of Pegasus's `rrdb` service, as plain data.
//!
//! Field names and meanings follow `idl/rrdb.thrift`. Blobs are [`Bytes`] so that decoders
//! can hand out slices of a received frame without copying. Enums keep values they do not
//! know (`Unknown(i32)`), because the server must answer an unknown check type with
//! "invalid argument" rather than fail to decode the request.
//!
//! The `app_id`, `partition_index`, `decree` and `server` fields of responses are filled in
//! by the replica layer; the storage layer fills `error` and the data.

use bytes::Bytes;

/// A thrift `dsn.blob`.
pub type Blob = Bytes;

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $val:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            $($(#[$vm])* $variant,)*
            /// A value this version does not know.
            Unknown(i32),
        }

        impl $name {
            /// The wire value.
            pub const fn to_i32(self) -> i32 {
                match self {
                    $(Self::$variant => $val,)*
                    Self::Unknown(v) => v,
                }
            }

            /// From the wire value; unknown values are kept.
            pub const fn from_i32(v: i32) -> Self {
                match v {
                    $($val => Self::$variant,)*
                    other => Self::Unknown(other),
                }
            }
        }
    };
}

wire_enum!(
    /// How a hash-key or sort-key filter pattern is matched.
    FilterType {
        /// No filter.
        #[default]
        NoFilter = 0,
        /// The pattern appears anywhere.
        MatchAnywhere = 1,
        /// The key starts with the pattern.
        MatchPrefix = 2,
        /// The key ends with the pattern.
        MatchPostfix = 3,
    }
);

wire_enum!(
    /// The check of check_and_set / check_and_mutate.
    CasCheckType {
        /// Always passes.
        #[default]
        NoCheck = 0,
        /// Passes when the record is absent (or expired).
        ValueNotExist = 1,
        /// Passes when absent or empty.
        ValueNotExistOrEmpty = 2,
        /// Passes when present.
        ValueExist = 3,
        /// Passes when present and not empty.
        ValueNotEmpty = 4,
        /// Present and contains the operand.
        ValueMatchAnywhere = 5,
        /// Present and starts with the operand.
        ValueMatchPrefix = 6,
        /// Present and ends with the operand.
        ValueMatchPostfix = 7,
        /// Present and bytewise `value < operand`.
        ValueBytesLess = 8,
        /// Present and bytewise `value <= operand`.
        ValueBytesLessOrEqual = 9,
        /// Present and bytewise `value == operand`.
        ValueBytesEqual = 10,
        /// Present and bytewise `value >= operand`.
        ValueBytesGreaterOrEqual = 11,
        /// Present and bytewise `value > operand`.
        ValueBytesGreater = 12,
        /// Present and as int64 `value < operand`.
        ValueIntLess = 13,
        /// Present and as int64 `value <= operand`.
        ValueIntLessOrEqual = 14,
        /// Present and as int64 `value == operand`.
        ValueIntEqual = 15,
        /// Present and as int64 `value >= operand`.
        ValueIntGreaterOrEqual = 16,
        /// Present and as int64 `value > operand`.
        ValueIntGreater = 17,
    }
);

wire_enum!(
    /// One operation of check_and_mutate.
    MutateOperation {
        /// Put the value.
        #[default]
        Put = 0,
        /// Delete the sort key.
        Delete = 1,
    }
);

/// A sort key (or full key, in scans) with its value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyValue {
    /// Sort key (multi_get) or full encoded key (scan).
    pub key: Blob,
    /// The value (empty with `no_value`).
    pub value: Blob,
    /// Absolute expiry, set only when a scan asked for `return_expire_ts`.
    pub expire_ts_seconds: Option<i32>,
}

/// `update_request`: put.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateRequest {
    /// Encoded key.
    pub key: Blob,
    /// Value.
    pub value: Blob,
    /// Absolute expiry (Pegasus-epoch seconds), 0 = none.
    pub expire_ts_seconds: i32,
}

/// `update_response`: put, remove, multi_put.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateResponse {
    /// Storage status.
    pub error: i32,
    /// Table id.
    pub app_id: i32,
    /// Partition index.
    pub partition_index: i32,
    /// The decree the write was committed at.
    pub decree: i64,
    /// Address of the replica that served it.
    pub server: String,
}

/// `read_response`: get.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadResponse {
    /// Storage status: 0 found, 1 not found or expired.
    pub error: i32,
    /// The value.
    pub value: Blob,
    /// Table id.
    pub app_id: i32,
    /// Partition index.
    pub partition_index: i32,
    /// Server address.
    pub server: String,
}

/// `ttl_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TtlResponse {
    /// Storage status: 0 found, 1 not found or expired.
    pub error: i32,
    /// Seconds left, or -1 when the record has no TTL.
    pub ttl_seconds: i32,
    /// Table id.
    pub app_id: i32,
    /// Partition index.
    pub partition_index: i32,
    /// Server address.
    pub server: String,
}

/// `count_response`: sortkey_count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CountResponse {
    /// Storage status.
    pub error: i32,
    /// Number of live records, or -1 when the iteration time limit was hit.
    pub count: i64,
    /// Table id.
    pub app_id: i32,
    /// Partition index.
    pub partition_index: i32,
    /// Server address.
    pub server: String,
}

/// `multi_put_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiPutRequest {
    /// Hash key shared by all records.
    pub hash_key: Blob,
    /// Sort keys and values (the per-kv expiry is ignored).
    pub kvs: Vec<KeyValue>,
    /// Expiry for every record, 0 = none.
    pub expire_ts_seconds: i32,
}

/// `multi_remove_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiRemoveRequest {
    /// Hash key.
    pub hash_key: Blob,
    /// Sort keys to delete.
    pub sort_keys: Vec<Blob>,
    /// Deprecated; ignored.
    pub max_count: i64,
}

/// `multi_remove_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiRemoveResponse {
    /// Storage status.
    pub error: i32,
    /// Number of sort keys in the request.
    pub count: i64,
    /// Table id.
    pub app_id: i32,
    /// Partition index.
    pub partition_index: i32,
    /// Commit decree.
    pub decree: i64,
    /// Server address.
    pub server: String,
}

/// `multi_get_request`: list mode when `sort_keys` is non-empty, range mode otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiGetRequest {
    /// Hash key.
    pub hash_key: Blob,
    /// Sort keys to read (list mode).
    pub sort_keys: Vec<Blob>,
    /// Most records to return; <= 0 means no limit of the request's own.
    pub max_kv_count: i32,
    /// Most bytes to return; <= 0 means no limit of the request's own.
    pub max_kv_size: i32,
    /// Return keys only.
    pub no_value: bool,
    /// Range start sort key.
    pub start_sortkey: Blob,
    /// Range stop sort key; empty = to the end of the hash key.
    pub stop_sortkey: Blob,
    /// Whether the start is included.
    pub start_inclusive: bool,
    /// Whether the stop is included.
    pub stop_inclusive: bool,
    /// Sort-key filter type.
    pub sort_key_filter_type: FilterType,
    /// Sort-key filter pattern.
    pub sort_key_filter_pattern: Blob,
    /// Iterate from the stop end (results are still ascending).
    pub reverse: bool,
}

/// `multi_get_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiGetResponse {
    /// 0 complete, 7 incomplete, or an engine error.
    pub error: i32,
    /// Sort keys and values.
    pub kvs: Vec<KeyValue>,
    /// Table id.
    pub app_id: i32,
    /// Partition index.
    pub partition_index: i32,
    /// Server address.
    pub server: String,
}

/// `full_key`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FullKey {
    /// Hash key.
    pub hash_key: Blob,
    /// Sort key.
    pub sort_key: Blob,
}

/// `batch_get_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchGetRequest {
    /// Keys, all in one partition.
    pub keys: Vec<FullKey>,
}

/// `full_data`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FullData {
    /// Hash key.
    pub hash_key: Blob,
    /// Sort key.
    pub sort_key: Blob,
    /// Value.
    pub value: Blob,
}

/// `batch_get_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchGetResponse {
    /// Storage status.
    pub error: i32,
    /// Found records only.
    pub data: Vec<FullData>,
    /// Table id.
    pub app_id: i32,
    /// Partition index.
    pub partition_index: i32,
    /// Server address.
    pub server: String,
}

/// `incr_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IncrRequest {
    /// Encoded key.
    pub key: Blob,
    /// Amount to add.
    pub increment: i64,
    /// 0 keeps the old TTL, > 0 sets this absolute expiry, < 0 clears the TTL.
    pub expire_ts_seconds: i32,
}

/// `incr_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IncrResponse {
    /// Storage status.
    pub error: i32,
    /// The value after the increment (the old value on overflow).
    pub new_value: i64,
    /// Table id.
    pub app_id: i32,
    /// Partition index.
    pub partition_index: i32,
    /// Commit decree.
    pub decree: i64,
    /// Server address.
    pub server: String,
}

/// `check_and_set_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckAndSetRequest {
    /// Hash key.
    pub hash_key: Blob,
    /// Sort key whose value is checked.
    pub check_sort_key: Blob,
    /// The check.
    pub check_type: CasCheckType,
    /// The check's operand.
    pub check_operand: Blob,
    /// Set `set_sort_key` instead of `check_sort_key`.
    pub set_diff_sort_key: bool,
    /// Sort key to set when `set_diff_sort_key`.
    pub set_sort_key: Blob,
    /// Value to set.
    pub set_value: Blob,
    /// Absolute expiry of the set value, 0 = none.
    pub set_expire_ts_seconds: i32,
    /// Return the checked value.
    pub return_check_value: bool,
}

/// `check_and_set_response` (also used for check_and_mutate).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckAndSetResponse {
    /// 0 done, 13 check failed, 4 invalid argument.
    pub error: i32,
    /// Whether the check value fields are filled.
    pub check_value_returned: bool,
    /// Whether the checked record existed.
    pub check_value_exist: bool,
    /// The checked record's value.
    pub check_value: Blob,
    /// Table id.
    pub app_id: i32,
    /// Partition index.
    pub partition_index: i32,
    /// Commit decree.
    pub decree: i64,
    /// Server address.
    pub server: String,
}

/// `check_and_mutate_response`: identical fields to check_and_set's.
pub type CheckAndMutateResponse = CheckAndSetResponse;

/// `mutate`: one step of check_and_mutate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mutate {
    /// Put or delete.
    pub operation: MutateOperation,
    /// Sort key.
    pub sort_key: Blob,
    /// Value (puts).
    pub value: Blob,
    /// Absolute expiry (puts), 0 = none.
    pub set_expire_ts_seconds: i32,
}

/// `check_and_mutate_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckAndMutateRequest {
    /// Hash key.
    pub hash_key: Blob,
    /// Sort key whose value is checked.
    pub check_sort_key: Blob,
    /// The check.
    pub check_type: CasCheckType,
    /// The check's operand.
    pub check_operand: Blob,
    /// Mutations applied atomically when the check passes.
    pub mutate_list: Vec<Mutate>,
    /// Return the checked value.
    pub return_check_value: bool,
}

/// `get_scanner_request`. Missing fields decode as thrift defaults (false / 0 / empty).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetScannerRequest {
    /// Encoded start key.
    pub start_key: Blob,
    /// Encoded stop key. Note that an empty stop key makes an empty range (unless the
    /// start is empty too and both ends are inclusive): clients always send one.
    pub stop_key: Blob,
    /// Whether the start is included.
    pub start_inclusive: bool,
    /// Whether the stop is included.
    pub stop_inclusive: bool,
    /// Records per batch; <= 0 means the server's limit.
    pub batch_size: i32,
    /// Return keys only.
    pub no_value: bool,
    /// Hash-key filter type.
    pub hash_key_filter_type: FilterType,
    /// Hash-key filter pattern.
    pub hash_key_filter_pattern: Blob,
    /// Sort-key filter type.
    pub sort_key_filter_type: FilterType,
    /// Sort-key filter pattern.
    pub sort_key_filter_pattern: Blob,
    /// Drop keys that do not hash to this partition (only with the split env set).
    pub validate_partition_hash: Option<bool>,
    /// Fill `expire_ts_seconds` of each key_value.
    pub return_expire_ts: Option<bool>,
    /// Full-table scan (total-order seek).
    pub full_scan: Option<bool>,
    /// Count only; return no kvs.
    pub only_return_count: bool,
}

/// `scan_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanRequest {
    /// Context id returned by get_scanner or a previous scan.
    pub context_id: i64,
}

/// Scan context id meaning "the scan is complete".
pub const SCAN_CONTEXT_ID_COMPLETED: i64 = -1;

/// `scan_response` (get_scanner and scan).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanResponse {
    /// Storage status.
    pub error: i32,
    /// Full encoded keys and values.
    pub kvs: Vec<KeyValue>,
    /// -1 when complete, otherwise the id to pass to scan.
    pub context_id: i64,
    /// Table id.
    pub app_id: i32,
    /// Partition index.
    pub partition_index: i32,
    /// Server address.
    pub server: String,
    /// Record count, set with `only_return_count`.
    pub kv_count: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_enums_keep_unknown_values() {
        assert_eq!(CasCheckType::from_i32(10), CasCheckType::ValueBytesEqual);
        assert_eq!(CasCheckType::from_i32(17), CasCheckType::ValueIntGreater);
        assert_eq!(CasCheckType::from_i32(18), CasCheckType::Unknown(18));
        assert_eq!(CasCheckType::Unknown(18).to_i32(), 18);
        for v in 0..18 {
            assert_eq!(CasCheckType::from_i32(v).to_i32(), v);
        }
        assert_eq!(FilterType::from_i32(2), FilterType::MatchPrefix);
        assert_eq!(MutateOperation::from_i32(1), MutateOperation::Delete);
        assert_eq!(MutateOperation::from_i32(-1), MutateOperation::Unknown(-1));
    }
}
