//! Client behaviour against scripted in-process servers on 127.0.0.1: routing, configuration
//! refresh and retry, leader forwarding, timeouts, pipelining, scanners.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use pegasus_client::{Client, ClientConfig, ClientError, ScanOptions};
use pegasus_core::crc64::crc64;
use pegasus_core::ids::Gpid;
use pegasus_core::rrdb::*;
use pegasus_proto::frame::{RequestHeader, ResponseFrame};
use pegasus_proto::meta::{PartitionConfiguration, QueryCfgResponse};
use pegasus_proto::rpc::{ack_name, parse_request, ParsedRequest, Request};
use pegasus_proto::{
    ErrorCode, MetaRequest, MetaResponse, RpcAddress, RrdbRequest, RrdbResponse, ServerCodec,
};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

enum Action {
    Rrdb(RrdbResponse),
    Meta(MetaResponse),
    Error(ErrorCode),
    Silent,
}

type Handler = Arc<dyn Fn(&RequestHeader, &Request) -> Action + Send + Sync>;

struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<(RequestHeader, Request)>>>,
    connections: Arc<AtomicUsize>,
}

impl Server {
    fn requests(&self) -> Vec<(RequestHeader, Request)> {
        self.log.lock().unwrap().clone()
    }

    fn count(&self, f: impl Fn(&Request) -> bool) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, r)| f(r))
            .count()
    }
}

async fn serve(
    handler: impl Fn(&RequestHeader, &Request) -> Action + Send + Sync + 'static,
) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let handler: Handler = Arc::new(handler);
    let (log2, conns2) = (log.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            conns2.fetch_add(1, Ordering::SeqCst);
            let (handler, log) = (handler.clone(), log2.clone());
            tokio::spawn(async move {
                let mut framed = Framed::new(stream, ServerCodec::default());
                while let Some(Ok(frame)) = framed.next().await {
                    let Ok(ParsedRequest::Known { message, request }) = parse_request(frame.body)
                    else {
                        return;
                    };
                    log.lock().unwrap().push((frame.header, request.clone()));
                    let (error, result) = match handler(&frame.header, &request) {
                        Action::Rrdb(r) => (ErrorCode::Ok, Some(r.encode())),
                        Action::Meta(r) => (ErrorCode::Ok, Some(r.encode())),
                        Action::Error(e) => (e, None),
                        Action::Silent => continue,
                    };
                    let reply = ResponseFrame {
                        error,
                        name: ack_name(&message.name),
                        seqid: message.seqid,
                        result,
                    };
                    if framed.send(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Server {
        addr,
        log,
        connections,
    }
}

fn config(app_id: i32, primaries: &[SocketAddr]) -> Action {
    Action::Meta(MetaResponse::QueryConfig(QueryCfgResponse {
        err: ErrorCode::Ok,
        app_id,
        partition_count: primaries.len() as i32,
        is_stateful: true,
        partitions: primaries
            .iter()
            .enumerate()
            .map(|(i, p)| PartitionConfiguration {
                pid: Gpid::new(app_id, i as i32),
                ballot: 1,
                max_replica_count: 3,
                primary: RpcAddress::from_socket_addr(*p),
                ..Default::default()
            })
            .collect(),
    }))
}

fn client(metas: &[SocketAddr], timeout_ms: u64) -> Client {
    let mut c = ClientConfig::new(metas.iter().copied());
    c.operation_timeout = Duration::from_millis(timeout_ms);
    c.meta_query_timeout = Duration::from_millis(timeout_ms.max(500));
    Client::new(c)
}

fn read(value: &str) -> Action {
    Action::Rrdb(RrdbResponse::Get(ReadResponse {
        error: 0,
        value: Bytes::copy_from_slice(value.as_bytes()),
        ..Default::default()
    }))
}

/// A server that is both meta (one table, `partitions` partitions, all on itself) and
/// replica; gets answer with the partition index the request was routed to.
async fn echo_cluster(partitions: usize) -> Server {
    let me = Arc::new(Mutex::new(None::<SocketAddr>));
    let me2 = me.clone();
    let s = serve(move |h, req| match req {
        Request::Meta(MetaRequest::QueryConfig(_)) => {
            let addr = me2.lock().unwrap().expect("address set");
            config(7, &vec![addr; partitions])
        }
        Request::Rrdb(RrdbRequest::Get(k)) => read(&format!(
            "{}:{}",
            h.partition_index,
            String::from_utf8_lossy(k)
        )),
        _ => Action::Error(ErrorCode::HandlerNotFound),
    })
    .await;
    *me.lock().unwrap() = Some(s.addr);
    s
}

#[tokio::test]
async fn requests_route_to_the_crc64_partition_of_the_hash_key() {
    let s = echo_cluster(4).await;
    let table = client(&[s.addr], 2000).open_table("t").await.unwrap();
    // crc64("hk") % 4 == 3, crc64("a") % 4 == 0.
    let v = table.get(b"hk", b"sk").await.unwrap().unwrap();
    assert!(v.starts_with(b"3:"), "{v:?}");
    let v = table.get(b"a", b"x").await.unwrap().unwrap();
    assert!(v.starts_with(b"0:"), "{v:?}");
    // An empty hash key routes by the sort key.
    let v = table.get(b"", b"hk").await.unwrap().unwrap();
    assert!(v.starts_with(b"3:"), "{v:?}");
    let gets: Vec<RequestHeader> = s
        .requests()
        .into_iter()
        .filter(|(_, r)| matches!(r, Request::Rrdb(_)))
        .map(|(h, _)| h)
        .collect();
    assert_eq!(gets[0].app_id, 7);
    assert_eq!(gets[0].partition_hash, crc64(b"hk"));
    assert_eq!(gets[2].partition_hash, crc64(b"hk"));
}

#[tokio::test]
async fn stale_configuration_is_refreshed_and_the_request_retried() {
    let new_primary = serve(|_, req| match req {
        Request::Rrdb(RrdbRequest::Get(_)) => read("from new primary"),
        _ => Action::Error(ErrorCode::HandlerNotFound),
    })
    .await;
    let old_primary = serve(|_, _| Action::Error(ErrorCode::ObjectNotFound)).await;
    let (old, new) = (old_primary.addr, new_primary.addr);
    let queries = Arc::new(AtomicUsize::new(0));
    let q = queries.clone();
    let meta = serve(move |_, req| match req {
        Request::Meta(MetaRequest::QueryConfig(_)) => {
            let n = q.fetch_add(1, Ordering::SeqCst);
            config(1, &[if n == 0 { old } else { new }])
        }
        _ => Action::Error(ErrorCode::HandlerNotFound),
    })
    .await;
    let table = client(&[meta.addr], 3000).open_table("t").await.unwrap();
    let v = table.get(b"hk", b"sk").await.unwrap();
    assert_eq!(v.as_deref(), Some(&b"from new primary"[..]));
    assert_eq!(old_primary.requests().len(), 1);
    assert_eq!(queries.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn follower_meta_points_the_client_to_the_leader() {
    let s = echo_cluster(2).await;
    let leader = s.addr;
    let follower = serve(move |_, req| match req {
        Request::Meta(MetaRequest::QueryConfig(_)) => {
            Action::Meta(MetaResponse::QueryConfig(QueryCfgResponse {
                err: ErrorCode::ForwardToOthers,
                partitions: vec![PartitionConfiguration {
                    primary: RpcAddress::from_socket_addr(leader),
                    ..Default::default()
                }],
                ..Default::default()
            }))
        }
        _ => Action::Error(ErrorCode::HandlerNotFound),
    })
    .await;
    let table = client(&[follower.addr], 2000)
        .open_table("t")
        .await
        .unwrap();
    assert_eq!(table.partition_count().await, 2);
    assert!(table.get(b"k", b"s").await.unwrap().is_some());
    assert_eq!(follower.requests().len(), 1);
}

#[tokio::test]
async fn an_unreachable_meta_server_is_skipped() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let s = echo_cluster(1).await;
    let table = client(&[dead, s.addr], 2000).open_table("t").await.unwrap();
    assert!(table.get(b"k", b"s").await.unwrap().is_some());
}

#[tokio::test]
async fn unknown_table_is_reported_with_the_meta_error() {
    let meta = serve(|_, _| {
        Action::Meta(MetaResponse::QueryConfig(QueryCfgResponse {
            err: ErrorCode::ObjectNotFound,
            ..Default::default()
        }))
    })
    .await;
    let err = client(&[meta.addr], 1000)
        .open_table("nope")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Table {
                err: ErrorCode::ObjectNotFound,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn an_operation_times_out_when_the_server_never_answers() {
    let replica = serve(|_, _| Action::Silent).await;
    let r = replica.addr;
    let meta = serve(move |_, _| config(1, &[r])).await;
    let table = client(&[meta.addr], 300).open_table("t").await.unwrap();
    let start = std::time::Instant::now();
    let err = table.get(b"k", b"s").await.unwrap_err();
    let elapsed = start.elapsed();
    eprintln!("a 300 ms operation timeout fired after {elapsed:?}");
    assert!(matches!(err, ClientError::Timeout(_)), "{err}");
    // Not before the timeout; after it, a 10x margin for a loaded machine.
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn many_requests_share_one_pipelined_connection() {
    let s = echo_cluster(4).await;
    let table = client(&[s.addr], 5000).open_table("t").await.unwrap();
    let calls = (0..200).map(|i| {
        let t = table.clone();
        async move {
            let hk = format!("h{i}");
            let v = t.get(hk.as_bytes(), b"s").await.unwrap().unwrap();
            assert!(v.ends_with(&pegasus_core::key::encode_key(hk.as_bytes(), b"s").unwrap()));
        }
    });
    futures::future::join_all(calls).await;
    assert_eq!(s.count(|r| matches!(r, Request::Rrdb(_))), 200);
    assert_eq!(
        s.connections.load(Ordering::SeqCst),
        1,
        "meta and data calls share one connection"
    );
}

#[tokio::test]
async fn storage_errors_are_returned_without_retry() {
    let s = {
        let me = Arc::new(Mutex::new(None::<SocketAddr>));
        let me2 = me.clone();
        let s = serve(move |_, req| match req {
            Request::Meta(_) => config(1, &[me2.lock().unwrap().unwrap()]),
            _ => Action::Rrdb(RrdbResponse::Put(UpdateResponse {
                error: 4,
                ..Default::default()
            })),
        })
        .await;
        *me.lock().unwrap() = Some(s.addr);
        s
    };
    let table = client(&[s.addr], 1000).open_table("t").await.unwrap();
    let err = table.set(b"h", b"s", b"v", None).await.unwrap_err();
    assert!(matches!(err, ClientError::Storage(4)), "{err}");
    assert_eq!(s.count(|r| matches!(r, Request::Rrdb(_))), 1);
    // Invalid arguments are refused before anything is sent.
    assert!(matches!(
        table.multi_set(b"", &[(b"a", b"b")], None).await,
        Err(ClientError::InvalidArgument(_))
    ));
    assert!(matches!(
        table.multi_set(b"h", &[], None).await,
        Err(ClientError::InvalidArgument(_))
    ));
    let long = vec![b'x'; 70_000];
    assert!(matches!(
        table.get(&long, b"").await,
        Err(ClientError::InvalidArgument(_))
    ));
    assert_eq!(s.count(|r| matches!(r, Request::Rrdb(_))), 1);
}

fn scan_reply(kvs: &[(&str, &str)], context_id: i64) -> Action {
    Action::Rrdb(RrdbResponse::GetScanner(ScanResponse {
        error: 0,
        kvs: kvs
            .iter()
            .map(|(sk, v)| KeyValue {
                key: Bytes::from(pegasus_core::key::encode_key(b"hk", sk.as_bytes()).unwrap()),
                value: Bytes::copy_from_slice(v.as_bytes()),
                expire_ts_seconds: None,
            })
            .collect(),
        context_id,
        ..Default::default()
    }))
}

#[tokio::test]
async fn scanner_resumes_after_the_server_drops_its_context() {
    let me = Arc::new(Mutex::new(None::<SocketAddr>));
    let me2 = me.clone();
    let s = serve(move |_, req| match req {
        Request::Meta(_) => config(1, &[me2.lock().unwrap().unwrap()]),
        Request::Rrdb(RrdbRequest::GetScanner(g)) if g.start_inclusive => {
            scan_reply(&[("a", "1"), ("b", "2")], 5)
        }
        Request::Rrdb(RrdbRequest::GetScanner(_)) => scan_reply(&[("c", "3")], -1),
        Request::Rrdb(RrdbRequest::Scan(_)) => Action::Rrdb(RrdbResponse::Scan(ScanResponse {
            error: 1,
            context_id: -1,
            ..Default::default()
        })),
        _ => Action::Error(ErrorCode::HandlerNotFound),
    })
    .await;
    *me.lock().unwrap() = Some(s.addr);
    let table = client(&[s.addr], 2000).open_table("t").await.unwrap();
    let mut scanner = table
        .get_scanner(b"hk", b"", b"", ScanOptions::default())
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some((hk, sk, v)) = scanner.next().await.unwrap() {
        assert_eq!(hk, Bytes::from_static(b"hk"));
        got.push((
            String::from_utf8(sk.to_vec()).unwrap(),
            String::from_utf8(v.to_vec()).unwrap(),
        ));
    }
    assert_eq!(
        got,
        vec![
            ("a".into(), "1".into()),
            ("b".into(), "2".into()),
            ("c".into(), "3".into())
        ]
    );
    let restarts: Vec<GetScannerRequest> = s
        .requests()
        .into_iter()
        .filter_map(|(_, r)| match r {
            Request::Rrdb(RrdbRequest::GetScanner(g)) => Some(g),
            _ => None,
        })
        .collect();
    assert_eq!(restarts.len(), 2);
    assert_eq!(
        restarts[1].start_key,
        Bytes::from(pegasus_core::key::encode_key(b"hk", b"b").unwrap())
    );
    assert!(!restarts[1].start_inclusive);
    // The stop of an open-ended ordered scan is the end of the hash key.
    assert_eq!(
        restarts[0].stop_key,
        Bytes::from(pegasus_core::key::next_prefix(b"\x00\x02hk").unwrap())
    );
}

#[tokio::test]
async fn unordered_scanners_cover_every_partition_once() {
    let me = Arc::new(Mutex::new(None::<SocketAddr>));
    let me2 = me.clone();
    let s = serve(move |h, req| match req {
        Request::Meta(_) => config(1, &[me2.lock().unwrap().unwrap(); 4]),
        Request::Rrdb(RrdbRequest::GetScanner(g)) => {
            assert_eq!(g.full_scan, Some(true));
            assert_eq!(g.validate_partition_hash, Some(true));
            assert_eq!(h.partition_hash, h.partition_index as u64);
            scan_reply(&[(&format!("p{}", h.partition_index), "v")], -1)
        }
        _ => Action::Error(ErrorCode::HandlerNotFound),
    })
    .await;
    *me.lock().unwrap() = Some(s.addr);
    let table = client(&[s.addr], 2000).open_table("t").await.unwrap();
    let scanners = table
        .get_unordered_scanners(3, ScanOptions::default())
        .await
        .unwrap();
    assert_eq!(scanners.len(), 3);
    let mut seen = Vec::new();
    for mut sc in scanners {
        while let Some((_, sk, _)) = sc.next().await.unwrap() {
            seen.push(String::from_utf8(sk.to_vec()).unwrap());
        }
    }
    seen.sort();
    assert_eq!(seen, vec!["p0", "p1", "p2", "p3"]);
}

#[tokio::test]
async fn a_per_handle_timeout_overrides_the_client_default() {
    let replica = serve(|_, _| Action::Silent).await;
    let r = replica.addr;
    let meta = serve(move |_, _| config(1, &[r])).await;
    let table = client(&[meta.addr], 5000).open_table("t").await.unwrap();
    let quick = table.with_timeout(Duration::from_millis(200));
    let start = std::time::Instant::now();
    assert!(matches!(
        quick.get(b"k", b"s").await,
        Err(ClientError::Timeout(_))
    ));
    let elapsed = start.elapsed();
    eprintln!("a 200 ms per-handle timeout fired after {elapsed:?}");
    // A 10x margin for a loaded machine, still well short of the 5 s client default.
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn batch_writes_report_one_result_per_record() {
    let me = Arc::new(Mutex::new(None::<SocketAddr>));
    let me2 = me.clone();
    let s = serve(move |_, req| match req {
        Request::Meta(_) => config(1, &[me2.lock().unwrap().unwrap(); 2]),
        Request::Rrdb(RrdbRequest::Put(p)) => {
            let error = if p.value.as_ref() == b"bad" { 4 } else { 0 };
            Action::Rrdb(RrdbResponse::Put(UpdateResponse {
                error,
                ..Default::default()
            }))
        }
        Request::Rrdb(RrdbRequest::Remove(_)) => {
            Action::Rrdb(RrdbResponse::Remove(UpdateResponse::default()))
        }
        _ => Action::Error(ErrorCode::HandlerNotFound),
    })
    .await;
    *me.lock().unwrap() = Some(s.addr);
    let table = client(&[s.addr], 2000).open_table("t").await.unwrap();
    let results = table
        .batch_set(
            &[
                (b"a", b"1", b"ok"),
                (b"b", b"2", b"bad"),
                (b"c", b"3", b"ok"),
            ],
            None,
        )
        .await;
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(ClientError::Storage(4))));
    assert!(results[2].is_ok());
    let results = table.batch_del(&[(b"a", b"1"), (b"b", b"2")]).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(s.count(|r| matches!(r, Request::Rrdb(_))), 5);
}

#[tokio::test]
async fn batch_get_sends_one_rpc_per_partition_and_keeps_request_order() {
    let me = Arc::new(Mutex::new(None::<SocketAddr>));
    let me2 = me.clone();
    let s = serve(move |h, req| match req {
        Request::Meta(_) => config(1, &[me2.lock().unwrap().unwrap(); 4]),
        Request::Rrdb(RrdbRequest::BatchGet(b)) => {
            // Every key of one RPC must belong to the partition it was sent to.
            for k in &b.keys {
                assert_eq!(crc64(&k.hash_key) % 4, h.partition_index as u64);
            }
            Action::Rrdb(RrdbResponse::BatchGet(BatchGetResponse {
                error: 0,
                data: b
                    .keys
                    .iter()
                    .filter(|k| k.sort_key.as_ref() != b"missing")
                    .map(|k| FullData {
                        hash_key: k.hash_key.clone(),
                        sort_key: k.sort_key.clone(),
                        value: k.hash_key.clone(),
                    })
                    .collect(),
                ..Default::default()
            }))
        }
        _ => Action::Error(ErrorCode::HandlerNotFound),
    })
    .await;
    *me.lock().unwrap() = Some(s.addr);
    let table = client(&[s.addr], 2000).open_table("t").await.unwrap();
    let hks: Vec<String> = (0..12).map(|i| format!("user{i}")).collect();
    let mut keys: Vec<(&[u8], &[u8])> = hks.iter().map(|h| (h.as_bytes(), &b"s"[..])).collect();
    keys.push((b"user3", b"missing"));
    let got = table.batch_get(&keys).await.unwrap();
    assert_eq!(got.len(), 13);
    for (i, h) in hks.iter().enumerate() {
        assert_eq!(got[i].as_deref(), Some(h.as_bytes()));
    }
    assert_eq!(got[12], None);
    let partitions: std::collections::BTreeSet<u64> =
        hks.iter().map(|h| crc64(h.as_bytes()) % 4).collect();
    assert_eq!(
        s.count(|r| matches!(r, Request::Rrdb(RrdbRequest::BatchGet(_)))),
        partitions.len()
    );
}

#[tokio::test]
async fn del_range_scans_keys_only_and_deletes_them_in_batches_of_100() {
    let me = Arc::new(Mutex::new(None::<SocketAddr>));
    let me2 = me.clone();
    let s = serve(move |_, req| match req {
        Request::Meta(_) => config(1, &[me2.lock().unwrap().unwrap()]),
        Request::Rrdb(RrdbRequest::GetScanner(g)) => {
            assert!(g.no_value);
            let names: Vec<String> = (0..250).map(|i| format!("{i:03}")).collect();
            let refs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "")).collect();
            scan_reply(&refs, -1)
        }
        Request::Rrdb(RrdbRequest::MultiRemove(m)) => {
            assert!(m.sort_keys.len() <= 100);
            Action::Rrdb(RrdbResponse::MultiRemove(MultiRemoveResponse {
                error: 0,
                count: m.sort_keys.len() as i64,
                ..Default::default()
            }))
        }
        _ => Action::Error(ErrorCode::HandlerNotFound),
    })
    .await;
    *me.lock().unwrap() = Some(s.addr);
    let table = client(&[s.addr], 2000).open_table("t").await.unwrap();
    assert_eq!(table.del_range(b"hk", b"", b"").await.unwrap(), 250);
    assert_eq!(
        s.count(|r| matches!(r, Request::Rrdb(RrdbRequest::MultiRemove(_)))),
        3
    );
}

#[tokio::test]
async fn check_and_set_reports_success_failure_and_the_checked_value() {
    let me = Arc::new(Mutex::new(None::<SocketAddr>));
    let me2 = me.clone();
    let s = serve(move |_, req| match req {
        Request::Meta(_) => config(1, &[me2.lock().unwrap().unwrap()]),
        Request::Rrdb(RrdbRequest::CheckAndSet(c)) => {
            let passed = c.check_operand.as_ref() == b"old";
            Action::Rrdb(RrdbResponse::CheckAndSet(CheckAndSetResponse {
                error: if passed { 0 } else { 13 },
                check_value_returned: c.return_check_value,
                check_value_exist: true,
                check_value: Bytes::from_static(b"old"),
                ..Default::default()
            }))
        }
        _ => Action::Error(ErrorCode::HandlerNotFound),
    })
    .await;
    *me.lock().unwrap() = Some(s.addr);
    let table = client(&[s.addr], 2000).open_table("t").await.unwrap();
    let opts = pegasus_client::CheckAndSetOptions {
        return_check_value: true,
        ..Default::default()
    };
    let ok = table
        .check_and_set(
            b"h",
            b"s",
            CasCheckType::ValueBytesEqual,
            b"old",
            b"new",
            &opts,
        )
        .await
        .unwrap();
    assert!(ok.set_succeed);
    assert_eq!(ok.check_value.as_deref(), Some(&b"old"[..]));
    let no = table
        .check_and_set(
            b"h",
            b"s",
            CasCheckType::ValueBytesEqual,
            b"other",
            b"new",
            &opts,
        )
        .await
        .unwrap();
    assert!(!no.set_succeed);
}
