//! Every rrdb operation through the Rust client against a real onebox (3 metas, 3 replica
//! servers, separate processes, RocksDB, TCP on 127.0.0.1), a test per operation on one
//! shared onebox; bad frames and drop + recall on their own oneboxes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod onebox;

use std::time::Duration;

use bytes::Bytes;
use onebox::{rt, serial, wait_until_async, Onebox};
use pegasus_client::{
    CasCheckType, CheckAndSetOptions, MultiGetOptions, Mutate, MutateOperation, ScanOptions,
};
use pegasus_proto::meta::{DropAppOptions, DropAppRequest, RecallAppRequest};
use pegasus_proto::{ErrorCode, MetaRequest, MetaResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs `f` against the table `temp` of the onebox shared by this file's tests.
fn with_table<F, Fut>(f: F)
where
    F: FnOnce(pegasus_client::Table) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let ob = Onebox::shared();
    rt().block_on(async {
        let t = ob.client().open_table("temp").await.unwrap();
        f(t).await;
    });
}

#[test]
fn set_and_get_round_trip() {
    with_table(|t| async move {
        t.set(b"op_get", b"sk", b"v1", None).await.unwrap();
        assert_eq!(
            t.get(b"op_get", b"sk").await.unwrap(),
            Some(Bytes::from_static(b"v1"))
        );
        t.set(b"op_get", b"sk", b"v2", None).await.unwrap();
        assert_eq!(
            t.get(b"op_get", b"sk").await.unwrap(),
            Some(Bytes::from_static(b"v2"))
        );
        assert_eq!(t.get(b"op_get", b"none").await.unwrap(), None);
        // Binary keys and an empty sort key.
        t.set(b"op\x00get", b"", b"\xff\x00", None).await.unwrap();
        assert_eq!(
            t.get(b"op\x00get", b"").await.unwrap(),
            Some(Bytes::from_static(b"\xff\x00"))
        );
    });
}

#[test]
fn del_removes_a_record() {
    with_table(|t| async move {
        t.set(b"op_del", b"sk", b"v", None).await.unwrap();
        t.del(b"op_del", b"sk").await.unwrap();
        assert_eq!(t.get(b"op_del", b"sk").await.unwrap(), None);
        t.del(b"op_del", b"never").await.unwrap();
    });
}

#[test]
fn exist_tells_present_from_absent() {
    with_table(|t| async move {
        t.set(b"op_exist", b"sk", b"v", None).await.unwrap();
        assert!(t.exist(b"op_exist", b"sk").await.unwrap());
        assert!(!t.exist(b"op_exist", b"other").await.unwrap());
    });
}

#[test]
fn ttl_reports_and_expires_records() {
    with_table(|t| async move {
        t.set(b"op_ttl", b"none", b"x", None).await.unwrap();
        assert_eq!(t.ttl(b"op_ttl", b"none").await.unwrap(), Some(-1));
        t.set(b"op_ttl", b"long", b"x", Some(Duration::from_secs(100)))
            .await
            .unwrap();
        let ttl = t.ttl(b"op_ttl", b"long").await.unwrap().unwrap();
        assert!((95..=100).contains(&ttl), "ttl {ttl}");
        assert_eq!(t.ttl(b"op_ttl", b"absent").await.unwrap(), None);
        t.set(b"op_ttl", b"short", b"x", Some(Duration::from_secs(1)))
            .await
            .unwrap();
        wait_until_async(
            "the 1 s record expired",
            Duration::from_secs(30),
            async || match t.get(b"op_ttl", b"short").await.unwrap() {
                None => Ok(()),
                Some(v) => Err(format!("get returns {v:?}")),
            },
        )
        .await;
        assert_eq!(t.get(b"op_ttl", b"short").await.unwrap(), None, "expired");
        assert!(!t.exist(b"op_ttl", b"short").await.unwrap());
    });
}

#[test]
fn incr_adds_and_refuses_non_integers() {
    with_table(|t| async move {
        assert_eq!(t.incr(b"op_incr", b"c", 5, None).await.unwrap(), 5);
        assert_eq!(t.incr(b"op_incr", b"c", -2, None).await.unwrap(), 3);
        assert_eq!(
            t.get(b"op_incr", b"c").await.unwrap(),
            Some(Bytes::from_static(b"3"))
        );
        t.set(b"op_incr", b"bad", b"abc", None).await.unwrap();
        assert!(
            t.incr(b"op_incr", b"bad", 1, None).await.is_err(),
            "incr on a non-integer"
        );
        assert_eq!(
            t.get(b"op_incr", b"bad").await.unwrap(),
            Some(Bytes::from_static(b"abc"))
        );
    });
}

fn twenty() -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..20)
        .map(|i| {
            (
                format!("s{i:02}").into_bytes(),
                format!("v{i}").into_bytes(),
            )
        })
        .collect()
}

async fn fill(t: &pegasus_client::Table, hk: &[u8]) {
    let kvs = twenty();
    let refs: Vec<(&[u8], &[u8])> = kvs
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    t.multi_set(hk, &refs, None).await.unwrap();
}

#[test]
fn multi_set_and_multi_get_by_keys() {
    with_table(|t| async move {
        fill(&t, b"op_mget").await;
        let all = t.multi_get(b"op_mget", &[]).await.unwrap();
        assert_eq!(all.kvs.len(), 20);
        assert!(all.all_fetched);
        let some = t
            .multi_get(b"op_mget", &[b"s03", b"s07", b"nope"])
            .await
            .unwrap();
        assert_eq!(
            some.kvs,
            vec![
                (Bytes::from_static(b"s03"), Bytes::from_static(b"v3")),
                (Bytes::from_static(b"s07"), Bytes::from_static(b"v7"))
            ]
        );
    });
}

#[test]
fn multi_get_range_respects_bounds() {
    with_table(|t| async move {
        fill(&t, b"op_range").await;
        let range = t
            .multi_get_range(
                b"op_range",
                b"s05",
                b"s10",
                &MultiGetOptions {
                    start_inclusive: true,
                    stop_inclusive: false,
                    ..MultiGetOptions::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            range.kvs.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            (5..10)
                .map(|i| Bytes::from(format!("s{i:02}")))
                .collect::<Vec<_>>()
        );
    });
}

#[test]
fn multi_del_and_sortkey_count() {
    with_table(|t| async move {
        fill(&t, b"op_mdel").await;
        assert_eq!(t.sortkey_count(b"op_mdel").await.unwrap(), 20);
        assert_eq!(
            t.multi_del(b"op_mdel", &[b"s00", b"s01", b"zz"])
                .await
                .unwrap(),
            3
        );
        assert_eq!(t.sortkey_count(b"op_mdel").await.unwrap(), 18);
        assert_eq!(t.sortkey_count(b"op_mdel_empty").await.unwrap(), 0);
    });
}

#[test]
fn check_and_set_sets_only_when_the_check_passes() {
    with_table(|t| async move {
        let r = t
            .check_and_set(
                b"op_cas",
                b"k",
                CasCheckType::ValueNotExist,
                b"",
                b"first",
                &CheckAndSetOptions::default(),
            )
            .await
            .unwrap();
        assert!(r.set_succeed);
        let r = t
            .check_and_set(
                b"op_cas",
                b"k",
                CasCheckType::ValueNotExist,
                b"",
                b"second",
                &CheckAndSetOptions {
                    return_check_value: true,
                    ..CheckAndSetOptions::default()
                },
            )
            .await
            .unwrap();
        assert!(!r.set_succeed);
        assert_eq!(r.check_value, Some(Bytes::from_static(b"first")));
        assert_eq!(
            t.get(b"op_cas", b"k").await.unwrap(),
            Some(Bytes::from_static(b"first"))
        );
    });
}

#[test]
fn check_and_mutate_applies_all_mutations_atomically() {
    with_table(|t| async move {
        t.set(b"op_cam", b"k", b"first", None).await.unwrap();
        let r = t
            .check_and_mutate(
                b"op_cam",
                b"k",
                CasCheckType::ValueBytesEqual,
                b"first",
                vec![
                    Mutate {
                        operation: MutateOperation::Put,
                        sort_key: Bytes::from_static(b"k2"),
                        value: Bytes::from_static(b"m"),
                        set_expire_ts_seconds: 0,
                    },
                    Mutate {
                        operation: MutateOperation::Delete,
                        sort_key: Bytes::from_static(b"k"),
                        value: Bytes::new(),
                        set_expire_ts_seconds: 0,
                    },
                ],
                false,
            )
            .await
            .unwrap();
        assert!(r.set_succeed);
        assert_eq!(t.get(b"op_cam", b"k").await.unwrap(), None);
        assert_eq!(
            t.get(b"op_cam", b"k2").await.unwrap(),
            Some(Bytes::from_static(b"m"))
        );
    });
}

#[test]
fn batch_get_reads_across_partitions() {
    with_table(|t| async move {
        for i in 0..30 {
            t.set(
                format!("op_batch{i}").as_bytes(),
                b"s",
                format!("{i}").as_bytes(),
                None,
            )
            .await
            .unwrap();
        }
        let keys: Vec<(Vec<u8>, Vec<u8>)> = (0..31)
            .map(|i| (format!("op_batch{i}").into_bytes(), b"s".to_vec()))
            .collect();
        let krefs: Vec<(&[u8], &[u8])> = keys
            .iter()
            .map(|(h, s)| (h.as_slice(), s.as_slice()))
            .collect();
        let got = t.batch_get(&krefs).await.unwrap();
        for (i, v) in got.iter().enumerate().take(30) {
            assert_eq!(v.as_deref(), Some(format!("{i}").as_bytes()));
        }
        assert_eq!(got[30], None);
    });
}

#[test]
fn ordered_scanner_walks_one_hash_key_in_batches() {
    with_table(|t| async move {
        fill(&t, b"op_scan").await;
        let mut sc = t
            .get_scanner(
                b"op_scan",
                b"",
                b"",
                ScanOptions {
                    batch_size: 4,
                    ..ScanOptions::default()
                },
            )
            .await
            .unwrap();
        let mut seen = Vec::new();
        while let Some((hk, sk, _v)) = sc.next().await.unwrap() {
            assert_eq!(hk, Bytes::from_static(b"op_scan"));
            seen.push(sk);
        }
        assert_eq!(seen.len(), 20);
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "ordered");
        sc.close().await;
    });
}

#[test]
fn unordered_scanners_cover_the_table_once() {
    with_table(|t| async move {
        for i in 0..30 {
            t.set(format!("op_uscan{i}").as_bytes(), b"s", b"x", None)
                .await
                .unwrap();
        }
        let scanners = t
            .get_unordered_scanners(
                3,
                ScanOptions {
                    batch_size: 7,
                    ..ScanOptions::default()
                },
            )
            .await
            .unwrap();
        let mut hks = Vec::new();
        for mut s in scanners {
            while let Some((hk, _, _)) = s.next().await.unwrap() {
                if hk.starts_with(b"op_uscan") {
                    hks.push(hk);
                }
            }
        }
        hks.sort();
        let mut want: Vec<Bytes> = (0..30)
            .map(|i| Bytes::from(format!("op_uscan{i}")))
            .collect();
        want.sort();
        assert_eq!(hks, want);
    });
}

#[test]
fn del_range_deletes_a_sort_key_range() {
    with_table(|t| async move {
        fill(&t, b"op_delrange").await;
        assert_eq!(t.del_range(b"op_delrange", b"s10", b"").await.unwrap(), 10);
        assert_eq!(t.sortkey_count(b"op_delrange").await.unwrap(), 10);
    });
}

#[test]
fn writes_over_one_mib_are_refused_with_err_invalid_data() {
    with_table(|t| async move {
        let big = vec![7u8; (1 << 20) + 10];
        let err = t.set(b"op_big", b"v", &big, None).await.unwrap_err();
        assert!(format!("{err}").contains("ERR_INVALID_DATA"), "{err}");
        assert_eq!(t.get(b"op_big", b"v").await.unwrap(), None);
    });
}

#[test]
fn garbage_and_huge_frames_disconnect_only_that_client() {
    let _g = serial();
    let ob = Onebox::start(3, 4);
    rt().block_on(async {
        let client = ob.client();
        let t = client.open_table("temp").await.unwrap();
        t.set(b"a", b"b", b"c", None).await.unwrap();
        for target in ob.replicas.iter().chain(ob.metas.iter()) {
            let mut garbage = tokio::net::TcpStream::connect(target).await.unwrap();
            garbage
                .write_all(b"\x01\x02\x03\x04 definitely not thrift")
                .await
                .unwrap();
            let mut buf = [0u8; 16];
            let n = tokio::time::timeout(Duration::from_secs(5), garbage.read(&mut buf)).await;
            assert!(
                matches!(n, Ok(Ok(0)) | Ok(Err(_))),
                "{target} closes a garbage connection"
            );

            let mut huge = tokio::net::TcpStream::connect(target).await.unwrap();
            let mut hdr = b"THFT".to_vec();
            hdr.extend_from_slice(&0u32.to_be_bytes());
            hdr.extend_from_slice(&48u32.to_be_bytes());
            hdr.extend_from_slice(&0u32.to_be_bytes());
            hdr.extend_from_slice(&u32::MAX.to_be_bytes());
            hdr.resize(48, 0);
            huge.write_all(&hdr).await.unwrap();
            let n = tokio::time::timeout(Duration::from_secs(5), huge.read(&mut buf)).await;
            assert!(
                matches!(n, Ok(Ok(0)) | Ok(Err(_))),
                "{target} refuses a 4 GiB frame"
            );
        }
        // A v1-header request (what the Java client sends) is served like a v0 one.
        let key = bytes::Bytes::from(pegasus_core::key::encode_key(b"a", b"b").unwrap());
        let hash = pegasus_core::key::key_hash(b"a", b"b");
        let cfg = client.query_config("temp").await.unwrap();
        let pidx = (hash % cfg.partition_count as u64) as usize;
        let primary = cfg.partitions[pidx].primary.to_socket_addr().unwrap();
        let req = pegasus_proto::RrdbRequest::Get(key);
        let out = pegasus_proto::frame::OutgoingRequest {
            header: pegasus_proto::frame::RequestHeader {
                version: 1,
                app_id: cfg.app_id,
                partition_index: pidx as i32,
                client_timeout_ms: 5000,
                partition_hash: hash,
                is_backup_request: false,
            },
            name: req.name(),
            seqid: 77,
            args: req.encode_args(),
        };
        let mut buf = bytes::BytesMut::new();
        pegasus_proto::frame::encode_request_v1(&out, &mut buf);
        let mut conn = tokio::net::TcpStream::connect(primary).await.unwrap();
        conn.write_all(&buf).await.unwrap();
        let mut framed =
            tokio_util::codec::FramedRead::new(conn, pegasus_proto::ClientCodec::default());
        let reply = futures::StreamExt::next(&mut framed)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((reply.error, reply.message.seqid), (ErrorCode::Ok, 77));
        match pegasus_proto::RrdbResponse::decode(req.name(), &reply)
            .unwrap()
            .unwrap()
        {
            pegasus_proto::RrdbResponse::Get(r) => {
                assert_eq!((r.error, r.value.as_ref()), (0, &b"c"[..]))
            }
            other => panic!("{other:?}"),
        }

        // Everyone keeps serving the well-behaved client.
        assert_eq!(
            t.get(b"a", b"b").await.unwrap(),
            Some(Bytes::from_static(b"c"))
        );
        t.set(b"a", b"b", b"d", None).await.unwrap();
        assert_eq!(
            t.get(b"a", b"b").await.unwrap(),
            Some(Bytes::from_static(b"d"))
        );
    });
}

#[test]
fn dropped_table_comes_back_with_its_data_when_recalled() {
    let _g = serial();
    let ob = Onebox::start(3, 4);
    rt().block_on(async {
        let client = ob.client();
        let t = client.open_table("temp").await.unwrap();
        for i in 0..50 {
            t.set(
                format!("k{i}").as_bytes(),
                b"s",
                format!("v{i}").as_bytes(),
                None,
            )
            .await
            .unwrap();
        }
        let app_id = client.query_config("temp").await.unwrap().app_id;
        match client
            .meta(MetaRequest::DropApp(DropAppRequest {
                app_name: "temp".into(),
                options: DropAppOptions::default(),
            }))
            .await
            .unwrap()
        {
            MetaResponse::DropApp(r) => assert_eq!(r.err, ErrorCode::Ok),
            other => panic!("{other:?}"),
        }
        let dropped_at = std::time::Instant::now();
        assert_eq!(
            client.query_config("temp").await.unwrap().err,
            ErrorCode::ObjectNotFound
        );
        // The replica servers close the dropped table's replicas at their next config sync
        // (every 5 s); from then on a read fails (after the client's retries).
        wait_until_async(
            "a dropped table serves nothing",
            Duration::from_secs(60),
            async || match t.get(b"k1", b"s").await {
                Err(_) => Ok(()),
                Ok(v) => Err(format!("get k1 still answers {v:?}")),
            },
        )
        .await;
        // The recall is to find every server's copies closed, and no server says when it
        // closed them: let one whole config sync interval pass since the drop (usually
        // over by now: the failing read above waits out the client's timeout).
        tokio::time::sleep_until((dropped_at + Duration::from_secs(6)).into()).await;
        match client
            .meta(MetaRequest::RecallApp(RecallAppRequest {
                app_id,
                new_app_name: String::new(),
            }))
            .await
            .unwrap()
        {
            MetaResponse::RecallApp(r) => assert_eq!(r.err, ErrorCode::Ok),
            other => panic!("{other:?}"),
        }
        let t = client.open_table("temp").await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        for i in 0..50 {
            loop {
                match t.get(format!("k{i}").as_bytes(), b"s").await {
                    Ok(v) => {
                        assert_eq!(v, Some(Bytes::from(format!("v{i}"))), "k{i} after recall");
                        break;
                    }
                    Err(e) if std::time::Instant::now() < deadline => {
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => panic!("k{i} unreadable after recall: {e}\n{}", ob.logs()),
                }
            }
        }
    });
}

#[test]
fn replica_servers_answer_pegasus_frame_errors() {
    use pegasus_proto::frame::RequestHeader;
    use pegasus_proto::RrdbRequest;
    let ob = Onebox::shared();
    rt().block_on(async {
        let client = ob.client();
        let t = client.open_table("temp").await.unwrap();
        t.set(b"op_frame", b"s", b"v", None).await.unwrap();
        let cfg = client.query_config("temp").await.unwrap();
        let hash = pegasus_core::key::key_hash(b"op_frame", b"s");
        let pidx = (hash % cfg.partition_count as u64) as usize;
        let part = &cfg.partitions[pidx];
        let key = Bytes::from(pegasus_core::key::encode_key(b"op_frame", b"s").unwrap());
        let call = |addr: std::net::SocketAddr, app_id: i32, req: RrdbRequest| async move {
            let s = pegasus_rpc::Session::new(addr, 1 << 20);
            let header = RequestHeader {
                app_id,
                partition_index: pidx as i32,
                client_timeout_ms: 5000,
                partition_hash: hash,
                ..RequestHeader::default()
            };
            s.call(header, req.name(), req.encode_args())
                .await
                .unwrap()
                .error
        };
        let primary = part.primary.to_socket_addr().unwrap();
        let secondary = part.secondaries[0].to_socket_addr().unwrap();
        assert_eq!(
            call(primary, cfg.app_id, RrdbRequest::Get(key.clone())).await,
            ErrorCode::Ok
        );
        // A secondary neither reads nor writes for clients.
        assert_eq!(
            call(secondary, cfg.app_id, RrdbRequest::Get(key.clone())).await,
            ErrorCode::InvalidState
        );
        let put = RrdbRequest::Put(pegasus_core::rrdb::UpdateRequest {
            key: key.clone(),
            value: Bytes::from_static(b"x"),
            expire_ts_seconds: 0,
        });
        assert_eq!(
            call(secondary, cfg.app_id, put).await,
            ErrorCode::InvalidState
        );
        // A partition the server does not host.
        assert_eq!(
            call(primary, 9999, RrdbRequest::Get(key.clone())).await,
            ErrorCode::ObjectNotFound
        );
        assert_eq!(
            t.get(b"op_frame", b"s").await.unwrap(),
            Some(Bytes::from_static(b"v"))
        );
    });
}

/// `pegasus bench run` against the shared onebox: a load writes every record exactly as
/// the workload defines it, and YCSB-C afterwards finds every record it reads.
#[test]
fn bench_load_writes_every_record_and_ycsb_c_finds_them() {
    let ob = Onebox::shared();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("runs.json");
    let metas: Vec<String> = ob.metas.iter().map(ToString::to_string).collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pegasus"))
        .args(["bench", "run", "--workload", "load,c", "--records", "2000"])
        .args(["--concurrency", "8", "--duration", "2", "--seed", "9"])
        .arg("--target")
        .arg(format!("pegasus://{}/temp", metas.join(",")))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["workload"], "load");
    assert_eq!(runs[0]["ops"], 2000);
    assert_eq!(runs[0]["errors"], 0);
    assert_eq!(runs[0]["per_op"]["insert"]["count"], 2000);
    assert_eq!(runs[1]["workload"], "c");
    assert!(runs[1]["ops"].as_u64().unwrap() > 100);
    assert_eq!(runs[1]["not_found"], 0);
    assert_eq!(runs[1]["errors"], 0);
    // Record 1999 is hash key "0000000000001999", sort key "0000000000000000", 100 bytes.
    rt().block_on(async {
        let t = ob.client().open_table("temp").await.unwrap();
        let v = t
            .get(b"0000000000001999", b"0000000000000000")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v.len(), 100);
        assert_eq!(
            t.get(b"0000000000002000", b"0000000000000000")
                .await
                .unwrap(),
            None
        );
    });
}
