//! Thrift encodings of the `rrdb` service's structs (field ids from `idl/rrdb.thrift`).

use pegasus_core::rrdb::*;

use crate::codec::{BlobC, BoolC, EnumC, ListC, OptC, StringC, StructC, WireEnum, I32C, I64C};
use crate::thrift_struct;

macro_rules! wire_enum_impl {
    ($($t:ty),*) => {$(
        impl WireEnum for $t {
            fn to_wire(self) -> i32 {
                self.to_i32()
            }
            fn from_wire(v: i32) -> Self {
                <$t>::from_i32(v)
            }
        }
    )*};
}
wire_enum_impl!(FilterType, CasCheckType, MutateOperation);

thrift_struct!(UpdateRequest { 1: key: BlobC, 2: value: BlobC, 3: expire_ts_seconds: I32C });
thrift_struct!(UpdateResponse {
    1: error: I32C, 2: app_id: I32C, 3: partition_index: I32C, 4: decree: I64C, 5: server: StringC,
});
thrift_struct!(ReadResponse {
    1: error: I32C, 2: value: BlobC, 3: app_id: I32C, 4: partition_index: I32C, 6: server: StringC,
});
thrift_struct!(TtlResponse {
    1: error: I32C, 2: ttl_seconds: I32C, 3: app_id: I32C, 4: partition_index: I32C, 6: server: StringC,
});
thrift_struct!(CountResponse {
    1: error: I32C, 2: count: I64C, 3: app_id: I32C, 4: partition_index: I32C, 6: server: StringC,
});
thrift_struct!(KeyValue { 1: key: BlobC, 2: value: BlobC, 3: expire_ts_seconds: OptC<I32C> });
thrift_struct!(MultiPutRequest {
    1: hash_key: BlobC, 2: kvs: ListC<StructC<KeyValue>>, 3: expire_ts_seconds: I32C,
});
thrift_struct!(MultiRemoveRequest { 1: hash_key: BlobC, 2: sort_keys: ListC<BlobC>, 3: max_count: I64C });
thrift_struct!(MultiRemoveResponse {
    1: error: I32C, 2: count: I64C, 3: app_id: I32C, 4: partition_index: I32C, 5: decree: I64C,
    6: server: StringC,
});
thrift_struct!(MultiGetRequest {
    1: hash_key: BlobC,
    2: sort_keys: ListC<BlobC>,
    3: max_kv_count: I32C,
    4: max_kv_size: I32C,
    5: no_value: BoolC,
    6: start_sortkey: BlobC,
    7: stop_sortkey: BlobC,
    8: start_inclusive: BoolC,
    9: stop_inclusive: BoolC,
    10: sort_key_filter_type: EnumC<FilterType>,
    11: sort_key_filter_pattern: BlobC,
    12: reverse: BoolC,
});
thrift_struct!(MultiGetResponse {
    1: error: I32C, 2: kvs: ListC<StructC<KeyValue>>, 3: app_id: I32C, 4: partition_index: I32C,
    6: server: StringC,
});
thrift_struct!(FullKey { 1: hash_key: BlobC, 2: sort_key: BlobC });
thrift_struct!(BatchGetRequest { 1: keys: ListC<StructC<FullKey>> });
thrift_struct!(FullData { 1: hash_key: BlobC, 2: sort_key: BlobC, 3: value: BlobC });
thrift_struct!(BatchGetResponse {
    1: error: I32C, 2: data: ListC<StructC<FullData>>, 3: app_id: I32C, 4: partition_index: I32C,
    6: server: StringC,
});
thrift_struct!(IncrRequest { 1: key: BlobC, 2: increment: I64C, 3: expire_ts_seconds: I32C });
thrift_struct!(IncrResponse {
    1: error: I32C, 2: new_value: I64C, 3: app_id: I32C, 4: partition_index: I32C, 5: decree: I64C,
    6: server: StringC,
});
thrift_struct!(CheckAndSetRequest {
    1: hash_key: BlobC,
    2: check_sort_key: BlobC,
    3: check_type: EnumC<CasCheckType>,
    4: check_operand: BlobC,
    5: set_diff_sort_key: BoolC,
    6: set_sort_key: BlobC,
    7: set_value: BlobC,
    8: set_expire_ts_seconds: I32C,
    9: return_check_value: BoolC,
});
thrift_struct!(CheckAndSetResponse {
    1: error: I32C,
    2: check_value_returned: BoolC,
    3: check_value_exist: BoolC,
    4: check_value: BlobC,
    5: app_id: I32C,
    6: partition_index: I32C,
    7: decree: I64C,
    8: server: StringC,
});
thrift_struct!(Mutate {
    1: operation: EnumC<MutateOperation>, 2: sort_key: BlobC, 3: value: BlobC,
    4: set_expire_ts_seconds: I32C,
});
thrift_struct!(CheckAndMutateRequest {
    1: hash_key: BlobC,
    2: check_sort_key: BlobC,
    3: check_type: EnumC<CasCheckType>,
    4: check_operand: BlobC,
    5: mutate_list: ListC<StructC<Mutate>>,
    6: return_check_value: BoolC,
});
thrift_struct!(GetScannerRequest {
    1: start_key: BlobC,
    2: stop_key: BlobC,
    3: start_inclusive: BoolC,
    4: stop_inclusive: BoolC,
    5: batch_size: I32C,
    6: no_value: BoolC,
    7: hash_key_filter_type: EnumC<FilterType>,
    8: hash_key_filter_pattern: BlobC,
    9: sort_key_filter_type: EnumC<FilterType>,
    10: sort_key_filter_pattern: BlobC,
    11: validate_partition_hash: OptC<BoolC>,
    12: return_expire_ts: OptC<BoolC>,
    13: full_scan: OptC<BoolC>,
    14: only_return_count: BoolC,
});
thrift_struct!(ScanRequest { 1: context_id: I64C });
thrift_struct!(ScanResponse {
    1: error: I32C,
    2: kvs: ListC<StructC<KeyValue>>,
    3: context_id: I64C,
    4: app_id: I32C,
    5: partition_index: I32C,
    6: server: StringC,
    7: kv_count: OptC<I32C>,
});
