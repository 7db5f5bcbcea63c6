//! Writes the seed corpus of the fuzz targets: one valid encoding of each message, framed and
//! unframed, into `fuzz/corpus/<target>/`. Run from the workspace root:
//! `cargo run -p pegasus-proto --example fuzz_seeds`.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use pegasus_core::ids::Gpid;
use pegasus_core::rrdb::*;
use pegasus_proto::frame::{
    encode_request_v0, encode_request_v1, write_message_begin, OutgoingRequest, RequestHeader,
    ResponseFrame,
};
use pegasus_proto::meta::*;
use pegasus_proto::thrift::Writer;
use pegasus_proto::{ErrorCode, MetaRequest, RrdbRequest, ServerCodec, ThriftStruct};
use tokio_util::codec::Encoder;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn write(dir: &Path, target: &str, name: &str, data: &[u8]) -> std::io::Result<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join(format!("seed-{name}")), data)
}

fn main() -> std::io::Result<()> {
    let dir = Path::new("fuzz/corpus");
    let rrdb = vec![
        RrdbRequest::Put(UpdateRequest {
            key: b("\x00\x02hksk"),
            value: b("v"),
            expire_ts_seconds: 5,
        }),
        RrdbRequest::Get(b("\x00\x02hksk")),
        RrdbRequest::Remove(b("\x00\x02hksk")),
        RrdbRequest::Ttl(b("\x00\x02hksk")),
        RrdbRequest::SortkeyCount(b("hk")),
        RrdbRequest::ClearScanner(7),
        RrdbRequest::MultiPut(MultiPutRequest {
            hash_key: b("hk"),
            kvs: vec![KeyValue {
                key: b("a"),
                value: b("1"),
                expire_ts_seconds: Some(3),
            }],
            expire_ts_seconds: 0,
        }),
        RrdbRequest::MultiRemove(MultiRemoveRequest {
            hash_key: b("hk"),
            sort_keys: vec![b("a"), b("b")],
            max_count: 0,
        }),
        RrdbRequest::Incr(IncrRequest {
            key: b("\x00\x02hkn"),
            increment: -3,
            expire_ts_seconds: -1,
        }),
        RrdbRequest::CheckAndSet(CheckAndSetRequest {
            hash_key: b("hk"),
            check_sort_key: b("c"),
            check_type: CasCheckType::ValueIntLess,
            check_operand: b("10"),
            set_diff_sort_key: true,
            set_sort_key: b("d"),
            set_value: b("x"),
            set_expire_ts_seconds: 0,
            return_check_value: true,
        }),
        RrdbRequest::CheckAndMutate(CheckAndMutateRequest {
            hash_key: b("hk"),
            check_sort_key: b("c"),
            check_type: CasCheckType::ValueExist,
            check_operand: Bytes::new(),
            mutate_list: vec![Mutate {
                operation: MutateOperation::Delete,
                sort_key: b("e"),
                value: Bytes::new(),
                set_expire_ts_seconds: 0,
            }],
            return_check_value: false,
        }),
        RrdbRequest::MultiGet(MultiGetRequest {
            hash_key: b("hk"),
            sort_keys: vec![b("a")],
            max_kv_count: 100,
            max_kv_size: 1000,
            start_inclusive: true,
            sort_key_filter_type: FilterType::MatchPrefix,
            sort_key_filter_pattern: b("a"),
            reverse: true,
            ..Default::default()
        }),
        RrdbRequest::BatchGet(BatchGetRequest {
            keys: vec![FullKey {
                hash_key: b("h"),
                sort_key: b("s"),
            }],
        }),
        RrdbRequest::GetScanner(GetScannerRequest {
            start_key: b("\x00\x00"),
            stop_key: Bytes::from_static(&[0xff, 0xff]),
            start_inclusive: true,
            batch_size: 10,
            validate_partition_hash: Some(true),
            return_expire_ts: Some(true),
            full_scan: Some(true),
            only_return_count: true,
            ..Default::default()
        }),
        RrdbRequest::Scan(ScanRequest { context_id: 3 }),
    ];
    let meta = vec![
        MetaRequest::QueryConfig(QueryCfgRequest {
            app_name: "temp".into(),
            partition_indices: vec![],
        }),
        MetaRequest::CreateApp(CreateAppRequest {
            app_name: "t".into(),
            options: CreateAppOptions {
                partition_count: 8,
                replica_count: 3,
                app_type: "pegasus".into(),
                is_stateful: true,
                envs: [("default_ttl".to_string(), "60".to_string())].into(),
                ..Default::default()
            },
        }),
        MetaRequest::DropApp(DropAppRequest {
            app_name: "t".into(),
            options: DropAppOptions {
                success_if_not_exist: true,
                reserve_seconds: Some(60),
            },
        }),
        MetaRequest::RecallApp(RecallAppRequest {
            app_id: 2,
            new_app_name: "u".into(),
        }),
        MetaRequest::ListApps(ListAppsRequest {
            status: AppStatus::Available,
            app_name_pattern: Some("t".into()),
            match_type: Some(PatternMatchType::MatchPrefix),
        }),
        MetaRequest::ListNodes(ListNodesRequest {
            status: NodeStatus::Alive,
        }),
        MetaRequest::ClusterInfo(ClusterInfoRequest {}),
        MetaRequest::UpdateAppEnv(UpdateAppEnvRequest {
            app_name: "t".into(),
            op: AppEnvOperation::Set,
            keys: Some(vec!["default_ttl".into()]),
            values: Some(vec!["10".into()]),
            clear_prefix: None,
        }),
        MetaRequest::ControlMeta(MetaControlRequest {
            level: MetaFunctionLevel::Steady,
        }),
        MetaRequest::SetMaxReplicaCount(SetMaxReplicaCountRequest {
            app_name: "t".into(),
            max_replica_count: 3,
        }),
    ];
    let header = RequestHeader {
        version: 0,
        app_id: 1,
        partition_index: 3,
        client_timeout_ms: 1000,
        partition_hash: 42,
        is_backup_request: false,
    };
    let mut all: Vec<(&'static str, Bytes)> =
        rrdb.iter().map(|r| (r.name(), r.encode_args())).collect();
    all.extend(meta.iter().map(|m| (m.name(), m.encode_args())));
    for (i, (name, args)) in all.iter().enumerate() {
        let out = OutgoingRequest {
            header,
            name,
            seqid: i as i32,
            args: args.clone(),
        };
        let mut frame = BytesMut::new();
        if i % 2 == 0 {
            encode_request_v0(&out, &mut frame);
        } else {
            encode_request_v1(&out, &mut frame);
        }
        let mut with_step = vec![7u8];
        with_step.extend_from_slice(&frame);
        write(dir, "server_frames", &i.to_string(), &with_step)?;
        let mut body = Writer::new();
        write_message_begin(&mut body, name, 1, i as i32);
        body.write_raw(args);
        write(dir, "request_body", &i.to_string(), &body.into_inner())?;
    }
    let structs: Vec<(&str, Bytes)> = vec![
        (
            "update_request",
            UpdateRequest {
                key: b("\x00\x01k"),
                value: b("v"),
                expire_ts_seconds: 1,
            }
            .to_bytes(),
        ),
        (
            "multi_put_request",
            MultiPutRequest {
                hash_key: b("h"),
                kvs: vec![KeyValue::default()],
                expire_ts_seconds: 2,
            }
            .to_bytes(),
        ),
        (
            "multi_remove_request",
            MultiRemoveRequest {
                hash_key: b("h"),
                sort_keys: vec![b("s")],
                max_count: 1,
            }
            .to_bytes(),
        ),
        (
            "incr_request",
            IncrRequest {
                key: b("\x00\x01k"),
                increment: 9,
                expire_ts_seconds: 0,
            }
            .to_bytes(),
        ),
        (
            "check_and_set_request",
            CheckAndSetRequest {
                hash_key: b("h"),
                check_type: CasCheckType::ValueBytesEqual,
                ..Default::default()
            }
            .to_bytes(),
        ),
        (
            "check_and_mutate_request",
            CheckAndMutateRequest {
                hash_key: b("h"),
                mutate_list: vec![Mutate::default()],
                ..Default::default()
            }
            .to_bytes(),
        ),
        (
            "multi_get_request",
            MultiGetRequest {
                hash_key: b("h"),
                sort_keys: vec![b("a"), b("b")],
                ..Default::default()
            }
            .to_bytes(),
        ),
        (
            "batch_get_request",
            BatchGetRequest {
                keys: vec![
                    FullKey::default(),
                    FullKey {
                        hash_key: b("h"),
                        sort_key: b("s"),
                    },
                ],
            }
            .to_bytes(),
        ),
        (
            "get_scanner_request",
            GetScannerRequest {
                start_key: b("\x00\x01h"),
                stop_key: b("\x00\x01i"),
                full_scan: Some(false),
                ..Default::default()
            }
            .to_bytes(),
        ),
        ("scan_request", ScanRequest { context_id: 1 }.to_bytes()),
        (
            "query_cfg_request",
            QueryCfgRequest {
                app_name: "temp".into(),
                partition_indices: vec![0, 1],
            }
            .to_bytes(),
        ),
        (
            "create_app_request",
            CreateAppRequest {
                app_name: "t".into(),
                options: CreateAppOptions {
                    partition_count: 4,
                    ..Default::default()
                },
            }
            .to_bytes(),
        ),
        (
            "drop_app_request",
            DropAppRequest {
                app_name: "t".into(),
                options: DropAppOptions::default(),
            }
            .to_bytes(),
        ),
        (
            "recall_app_request",
            RecallAppRequest {
                app_id: 1,
                new_app_name: String::new(),
            }
            .to_bytes(),
        ),
        ("list_apps_request", ListAppsRequest::default().to_bytes()),
        (
            "list_nodes_request",
            ListNodesRequest {
                status: NodeStatus::Unalive,
            }
            .to_bytes(),
        ),
        (
            "update_app_env_request",
            UpdateAppEnvRequest {
                app_name: "t".into(),
                op: AppEnvOperation::Clear,
                clear_prefix: Some("rocksdb.".into()),
                ..Default::default()
            }
            .to_bytes(),
        ),
        (
            "meta_control_request",
            MetaControlRequest {
                level: MetaFunctionLevel::Lively,
            }
            .to_bytes(),
        ),
        (
            "max_replica_count_request",
            SetMaxReplicaCountRequest {
                app_name: "t".into(),
                max_replica_count: 5,
            }
            .to_bytes(),
        ),
    ];
    for (target, data) in structs {
        write(dir, target, "0", &data)?;
    }
    // Replies for the client codec: a data reply, an error reply, a meta reply.
    let mut replies = BytesMut::new();
    let mut codec = ServerCodec::default();
    let ok = ReadResponse {
        error: 0,
        value: b("v1"),
        app_id: 1,
        partition_index: 0,
        server: "x".into(),
    };
    let frames = [
        ResponseFrame {
            error: ErrorCode::Ok,
            name: "RPC_RRDB_RRDB_GET_ACK".into(),
            seqid: 1,
            result: Some(ok.to_bytes()),
        },
        ResponseFrame {
            error: ErrorCode::InvalidState,
            name: "RPC_RRDB_RRDB_PUT_ACK".into(),
            seqid: 2,
            result: None,
        },
        ResponseFrame {
            error: ErrorCode::Ok,
            name: "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX_ACK".into(),
            seqid: 3,
            result: Some(
                QueryCfgResponse {
                    err: ErrorCode::Ok,
                    app_id: 1,
                    partition_count: 1,
                    is_stateful: true,
                    partitions: vec![PartitionConfiguration {
                        pid: Gpid::new(1, 0),
                        ballot: 1,
                        max_replica_count: 3,
                        ..Default::default()
                    }],
                }
                .to_bytes(),
            ),
        },
    ];
    for (i, f) in frames.into_iter().enumerate() {
        let mut one = BytesMut::new();
        codec
            .encode(f.clone(), &mut one)
            .map_err(std::io::Error::other)?;
        write(dir, "client_frames", &i.to_string(), &one)?;
        codec
            .encode(f, &mut replies)
            .map_err(std::io::Error::other)?;
    }
    write(dir, "client_frames", "all", &replies)?;
    Ok(())
}
