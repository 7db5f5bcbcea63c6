//! Faults against a real onebox (separate processes, SIGKILL): a replica server, a
//! partition's primary, the meta leader, and the whole cluster restarting. No acknowledged
//! write may be lost, and the cluster must heal back to three replicas per partition.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod onebox;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use onebox::{rt, serial, Onebox};
use pegasus_client::{Client, Table};
use pegasus_proto::meta::ClusterInfoRequest;
use pegasus_proto::{MetaRequest, MetaResponse};

/// Writers that each write `w<id>-<n>` for n = 0, 1, 2, … retrying every key until it is
/// acknowledged (Pegasus's kill_test), until stopped. Returns the acknowledged keys.
struct Writers {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    handles: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Writers {
    fn start(t: &Table, n: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let handles = (0..n)
            .map(|w| {
                let t = t.clone();
                let stop = stop.clone();
                let acked = acked.clone();
                tokio::spawn(async move {
                    let mut done = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("w{w}-{i}");
                        let started = Instant::now();
                        loop {
                            match t.set(key.as_bytes(), b"s", key.as_bytes(), None).await {
                                Ok(()) => {
                                    done.push(key);
                                    acked.fetch_add(1, Ordering::Relaxed);
                                    break;
                                }
                                Err(_) if started.elapsed() < Duration::from_secs(60) => {
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                }
                                Err(e) => panic!("{key} not written within 60 s: {e}"),
                            }
                        }
                        i += 1;
                    }
                    done
                })
            })
            .collect();
        Self {
            stop,
            acked,
            handles,
        }
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for h in self.handles {
            all.extend(h.await.unwrap());
        }
        all
    }
}

async fn wait_acked_beyond(w: &Writers, n: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while w.acked() < n {
        assert!(
            Instant::now() < deadline,
            "writes stalled at {} acked (want {n})",
            w.acked()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn verify_all(t: &Table, keys: &[String]) {
    for k in keys {
        let v = t.get(k.as_bytes(), b"s").await.unwrap();
        assert_eq!(
            v,
            Some(Bytes::from(k.clone())),
            "acknowledged write {k} lost"
        );
    }
}

#[test]
fn killed_replica_server_loses_no_acknowledged_write_and_rejoins() {
    let _g = serial();
    let ob = Onebox::start(3, 4);
    rt().block_on(async {
        let client = ob.client();
        let t = client.open_table("temp").await.unwrap();
        let w = Writers::start(&t, 4);
        wait_acked_beyond(&w, 100, Duration::from_secs(30)).await;
        ob.kill("replica2");
        let at_kill = w.acked();
        // Writes resume: every partition that lost its primary gets a new one.
        wait_acked_beyond(&w, at_kill + 200, Duration::from_secs(30)).await;
        ob.restart("replica2");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let keys = w.stop().await;
        // The node rejoins and learns: three replicas everywhere again.
        assert!(
            pegasus_chaos::wait_healthy(&client, Duration::from_secs(60)).await,
            "not back to 3 replicas within 60 s"
        );
        verify_all(&t, &keys).await;
        eprintln!(
            "{} writes acknowledged, {at_kill} before the kill",
            keys.len()
        );
    });
}

#[test]
fn killed_primary_is_replaced_within_five_seconds() {
    let _g = serial();
    let ob = Onebox::start(3, 4);
    rt().block_on(async {
        let client = ob.client();
        let t = client.open_table("temp").await.unwrap();
        t.set(b"before", b"s", b"1", None).await.unwrap();
        let cfg = client.query_config("temp").await.unwrap();
        let old = cfg.partitions[0].primary;
        let victim: SocketAddr = old.to_socket_addr().unwrap();
        ob.kill(&ob.replica_name(victim));
        let killed = Instant::now();
        let took = loop {
            let r = client.query_config("temp").await.unwrap();
            let p = &r.partitions[0];
            if p.primary.is_valid() && p.primary != old {
                break killed.elapsed();
            }
            assert!(killed.elapsed() < Duration::from_secs(15), "no new primary");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(took <= Duration::from_secs(5), "failover took {took:?}");
        eprintln!("new primary after {took:?}");
        // The partition serves again through the new primary.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match t.set(b"after", b"s", b"2", None).await {
                Ok(()) => break,
                Err(e) => assert!(Instant::now() < deadline, "writes did not resume: {e}"),
            }
        }
        assert_eq!(
            t.get(b"before", b"s").await.unwrap(),
            Some(Bytes::from_static(b"1"))
        );
        assert_eq!(
            t.get(b"after", b"s").await.unwrap(),
            Some(Bytes::from_static(b"2"))
        );
    });
}

async fn meta_leader(client: &Client) -> SocketAddr {
    match client
        .meta(MetaRequest::ClusterInfo(ClusterInfoRequest {}))
        .await
        .unwrap()
    {
        MetaResponse::ClusterInfo(r) => {
            let i = r
                .keys
                .iter()
                .position(|k| k == "primary_meta_server")
                .unwrap();
            r.values[i].parse().unwrap()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn meta_leader_kill_is_transparent_and_a_full_restart_keeps_every_write() {
    let _g = serial();
    let mut ob = Onebox::start(3, 4);
    let keys = rt().block_on(async {
        let client = ob.client();
        let t = client.open_table("temp").await.unwrap();
        let w = Writers::start(&t, 2);
        wait_acked_beyond(&w, 50, Duration::from_secs(30)).await;
        let leader = meta_leader(&client).await;
        let i = ob.metas.iter().position(|m| *m == leader).unwrap();
        ob.kill(&format!("meta{}", i + 1));
        let at_kill = w.acked();
        // Data traffic goes to replica servers: it keeps flowing without a meta leader.
        wait_acked_beyond(&w, at_kill + 100, Duration::from_secs(20)).await;
        assert_ne!(meta_leader(&client).await, leader, "another meta leads");
        // A fresh client still finds the table through the surviving metas.
        let fresh = ob.client();
        let t2 = fresh.open_table("temp").await.unwrap();
        t2.set(b"fresh", b"s", b"client", None).await.unwrap();
        ob.restart(&format!("meta{}", i + 1));
        let mut keys = w.stop().await;
        keys.push("fresh".into());
        t.set(b"fresh", b"s", b"fresh", None).await.unwrap();
        verify_all(&t, &keys).await;
        keys
    });
    ob.restart_all();
    rt().block_on(async {
        let client = ob.client();
        let t = client.open_table("temp").await.unwrap();
        verify_all(&t, &keys).await;
        eprintln!("{} writes read back after a full restart", keys.len());
    });
}

/// `POST /failpoint?<query>` to a replica server; the status line of its answer.
fn post_failpoint(addr: SocketAddr, query: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "POST /failpoint?{query} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    c.read_to_string(&mut raw).unwrap();
    raw.lines().next().unwrap_or_default().to_string()
}

#[test]
fn a_panicking_replica_fails_over_and_is_rebuilt_like_after_an_io_error() {
    let _g = serial();
    let ob = Onebox::start_with(3, 1, "[replica_server]\nenable_fail_points = true\n");
    rt().block_on(async {
        let client = ob.client();
        let t = client.open_table("temp").await.unwrap();
        let w = Writers::start(&t, 4);
        wait_acked_beyond(&w, 50, Duration::from_secs(30)).await;
        let cfg = client.query_config("temp").await.unwrap();
        let old = cfg.partitions[0].primary;
        let victim: SocketAddr = old.to_socket_addr().unwrap();
        let armed = post_failpoint(victim, "name=replica_panic&times=1");
        assert!(armed.contains(" 200"), "arming refused: {armed}");
        // The primary's thread panics at its next commit. Meta must replace it, and writes
        // must go on through the new primary.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let p = client.query_config("temp").await.unwrap().partitions[0].clone();
            if p.primary.is_valid() && p.primary != old {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the panicked primary was not replaced within 30 s\n{}",
                ob.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let at_failover = w.acked();
        wait_acked_beyond(&w, at_failover + 100, Duration::from_secs(30)).await;
        // Its copy was moved aside and it re-learns: three replicas again.
        assert!(
            pegasus_chaos::wait_healthy(&client, Duration::from_secs(60)).await,
            "not back to 3 replicas within 60 s"
        );
        let keys = w.stop().await;
        verify_all(&t, &keys).await;
        let metrics = http_get(victim, "/metrics");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("pegasus_replica_panics_total") && l.ends_with(" 1")),
            "one panic counted"
        );
        let err_copies = std::fs::read_dir(ob.path())
            .unwrap()
            .flatten()
            .flat_map(|d| walk(&d.path(), 4))
            .filter(|p| p.to_string_lossy().ends_with(".err"))
            .count();
        assert!(err_copies >= 1, "the failed copy was moved aside");
    });
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    onebox::http_get(addr, path).1
}

/// Directories under `dir`, `depth` levels deep at most.
fn walk(dir: &std::path::Path, depth: usize) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if depth == 0 || !dir.is_dir() {
        return out;
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path(), depth - 1));
        }
    }
    out
}
