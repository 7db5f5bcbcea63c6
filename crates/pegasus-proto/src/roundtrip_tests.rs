//! Every struct survives encode → decode unchanged, and re-encodes to the same bytes.

use pegasus_core::rrdb::*;
use proptest::prelude::*;

use crate::codec::ThriftStruct;
use crate::meta::*;
use crate::testgen::Gen;

fn check<T: ThriftStruct + PartialEq + std::fmt::Debug>(seed: u64) -> Result<(), TestCaseError> {
    let mut g = Gen::new(seed);
    let v = T::random(&mut g);
    let bytes = v.to_bytes();
    let back = T::from_bytes(bytes.clone()).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert_eq!(&back, &v);
    prop_assert_eq!(back.to_bytes(), bytes.clone());
    // Any strict prefix is an error, never a panic.
    for cut in [0, bytes.len() / 2, bytes.len().saturating_sub(1)] {
        if cut < bytes.len() {
            prop_assert!(T::from_bytes(bytes.slice(..cut)).is_err());
        }
    }
    Ok(())
}

macro_rules! all_structs {
    ($seed:expr, $($t:ty),* $(,)?) => {{ $( check::<$t>($seed)?; )* }};
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_struct_round_trips(seed in any::<u64>()) {
        all_structs!(seed,
            UpdateRequest, UpdateResponse, ReadResponse, TtlResponse, CountResponse, KeyValue,
            MultiPutRequest, MultiRemoveRequest, MultiRemoveResponse, MultiGetRequest,
            MultiGetResponse, FullKey, BatchGetRequest, FullData, BatchGetResponse, IncrRequest,
            IncrResponse, CheckAndSetRequest, CheckAndSetResponse, Mutate, CheckAndMutateRequest,
            GetScannerRequest, ScanRequest, ScanResponse,
            PartitionConfiguration, QueryCfgRequest, QueryCfgResponse, AppInfo, CreateAppOptions,
            CreateAppRequest, CreateAppResponse, DropAppOptions, DropAppRequest, DropAppResponse,
            RecallAppRequest, RecallAppResponse, ListAppsRequest, ListAppsResponse, NodeInfo,
            ListNodesRequest, ListNodesResponse, ClusterInfoRequest, ClusterInfoResponse,
            UpdateAppEnvRequest, UpdateAppEnvResponse, MetaControlRequest, MetaControlResponse,
            GetMaxReplicaCountRequest, GetMaxReplicaCountResponse, SetMaxReplicaCountRequest,
            SetMaxReplicaCountResponse,
        );
    }
}

#[test]
fn missing_fields_take_their_defaults() {
    // An empty struct (just STOP) decodes to the defaults, as Java and Python omit null fields.
    let v = CheckAndSetRequest::from_bytes(bytes::Bytes::from_static(&[0])).unwrap_or_default();
    assert_eq!(v, CheckAndSetRequest::default());
    let info = AppInfo::from_bytes(bytes::Bytes::from_static(&[0])).unwrap_or_default();
    assert_eq!(info.init_partition_count, -1);
}

#[test]
fn placeholder_fields_use_the_struct_type_byte() {
    let req = UpdateRequest {
        key: bytes::Bytes::from_static(b"k"),
        value: bytes::Bytes::new(),
        expire_ts_seconds: 0,
    };
    let b = req.to_bytes();
    assert_eq!(&b[..8], &[12, 0, 1, 0, 0, 0, 1, b'k']);
    // A gpid is an i64 inside a STRUCT-typed field, app id in the low half.
    let pc = PartitionConfiguration {
        pid: pegasus_core::ids::Gpid::new(1, 3),
        ..Default::default()
    };
    let b = pc.to_bytes();
    assert_eq!(&b[..11], &[12, 0, 1, 0, 0, 0, 3, 0, 0, 0, 1]);
}

#[test]
fn partition_configuration_never_carries_host_port_fields() {
    let pc = PartitionConfiguration {
        pid: pegasus_core::ids::Gpid::new(2, 1),
        ballot: 3,
        max_replica_count: 3,
        ..Default::default()
    };
    let mut expected = vec![12, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2]; // 1: gpid as i64
    expected.extend([10, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3]); // 2: ballot
    expected.extend([8, 0, 3, 0, 0, 0, 3]); // 3: max_replica_count
    expected.extend([12, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0]); // 4: primary (invalid)
    expected.extend([15, 0, 5, 12, 0, 0, 0, 0]); // 5: secondaries
    expected.extend([15, 0, 6, 12, 0, 0, 0, 0]); // 6: last_drops
    expected.extend([10, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0]); // 7: last_committed_decree
    expected.extend([8, 0, 8, 0, 0, 0, 0]); // 8: partition_flags
    expected.push(0); // STOP: no hp_* fields 9-11
    assert_eq!(pc.to_bytes().to_vec(), expected);
}
