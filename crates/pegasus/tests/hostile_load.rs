//! Hostile load against a real onebox (#29): a connection flood that reaches a server's
//! descriptor limit must cost no replica its data (no ballot change, no rebuild), no writer
//! an error, and no new client a hang; the server closes silent and partial-header
//! connections within the header timeout and gets its descriptors back afterwards.

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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use onebox::writers::Writers;
use onebox::{err_copies, http_get, post_failpoint, rt, serial, Onebox};
use pegasus_client::Table;
use pegasus_proto::meta::{CreateAppOptions, CreateAppRequest};
use pegasus_proto::{MetaRequest, MetaResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every process of the onebox gets this many descriptors: a quarter (1024, the minimum
/// reserve) is kept from connections, so the flood reaches the cap at about 1024.
const NOFILE: u64 = 2048;
/// Flood connections held open at once (well above the cap).
const FLOOD: usize = 1500;
/// The default `header_timeout_ms`.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// What a flood saw.
#[derive(Debug, Default)]
struct Flood {
    /// Connections the server closed, and how long after connecting.
    closed_after: Vec<Duration>,
    /// Connects that failed outright.
    connect_errors: u64,
}

/// Holds `n` connections to `addr` until `until`: every third sends part of a THFT header,
/// the rest nothing; one the server closes is opened again at once (a persistent
/// attacker). Each connection ends by itself at `until`.
async fn flood(addr: SocketAddr, n: usize, until: Instant) -> Flood {
    let report = Arc::new(Mutex::new(Flood::default()));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let report = report.clone();
            tokio::spawn(async move {
                while Instant::now() < until {
                    let Ok(Ok(mut c)) =
                        tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
                            .await
                    else {
                        report.lock().unwrap().connect_errors += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    // From the handshake: before it, the kernel's SYN retries count, not
                    // the server.
                    let connected = Instant::now();
                    if i % 3 == 0 {
                        let _ = c.write_all(b"THFT\0\0\0\0\0\0\0\x30").await;
                    }
                    let left = until.saturating_duration_since(Instant::now());
                    let mut buf = [0u8; 16];
                    if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(left, c.read(&mut buf)).await {
                        report
                            .lock()
                            .unwrap()
                            .closed_after
                            .push(connected.elapsed());
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(report).unwrap().into_inner().unwrap()
}

/// A connection made during the flood is either served (an HTTP answer) or refused at
/// once (closed without a byte). Returns how long the TCP connect took (the kernel's
/// backlog, SYN retries when it is full) and how long the server took after it, and which.
async fn probe(addr: SocketAddr) -> (Duration, Duration, bool) {
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(8), async {
        let mut c = TcpStream::connect(addr).await.ok()?;
        let connected = started.elapsed();
        let _ = c.write_all(b"GET /version HTTP/1.1\r\n\r\n").await;
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out).await;
        Some((connected, out.starts_with(b"HTTP/1.1 200")))
    })
    .await;
    match outcome {
        Ok(Some((connected, served))) => (connected, started.elapsed() - connected, served),
        Ok(None) => (started.elapsed(), Duration::ZERO, false),
        Err(_) => panic!("a new connection hung for 8 s during the flood"),
    }
}

/// Open socket descriptors of a process (its files, e.g. new SSTs, may grow meanwhile).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

/// Writes until stopped, counting failures (no retries: every error counts).
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(t: &Table) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (t, stop, acked, errors) = (t.clone(), stop.clone(), acked.clone(), errors.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("k{i}");
                    match t.set(key.as_bytes(), b"s", &[7u8; 1024], None).await {
                        Ok(()) => {
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => errors.lock().unwrap().push(format!("{key}: {e}")),
                    }
                    i += 1;
                }
            })
        };
        Self {
            stop,
            acked,
            errors,
            task,
        }
    }

    async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let errors = self.errors.lock().unwrap().clone();
        (self.acked.load(Ordering::Relaxed), errors)
    }
}

fn ballots(cfg: &pegasus_proto::meta::QueryCfgResponse) -> Vec<i64> {
    cfg.partitions.iter().map(|p| p.ballot).collect()
}

/// The value of an unlabelled or labelled counter summed over its series, from `/metrics`.
fn counter(addr: SocketAddr, name: &str) -> f64 {
    http_get(addr, "/metrics")
        .1
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_connection_flood_at_the_descriptor_limit_costs_no_replica_and_no_write() {
    let _g = serial();
    // Checkpoints (RocksDB flushes, which open files) every 2 s: several fall in the flood.
    let ob = Onebox::start_with_nofile(
        3,
        4,
        "[replica_server]\ncheckpoint_interval_ms = 2000\n",
        NOFILE,
    );
    let victim = ob.replicas[0];
    let pid = ob.pid("replica1");
    rt().block_on(async {
        let client = ob.client();
        let t = client.open_table("temp").await.unwrap();
        t.set(b"warm", b"s", b"up", None).await.unwrap();
        let before = client.query_config("temp").await.unwrap();
        let baseline = open_fds(pid);
        let w = Writer::start(&t);

        let until = Instant::now() + Duration::from_secs(12);
        let flood = tokio::spawn(flood(victim, FLOOD, until));
        // New connections during the flood: served or refused at once, never a hang. The
        // flood builds up first (scenario time: what it reaches is asserted at the end).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut probes = Vec::new();
        while Instant::now() + Duration::from_secs(1) < until {
            probes.push(probe(victim).await);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let flood = flood.await.unwrap();
        let (acked, errors) = w.stop().await;

        assert!(errors.is_empty(), "the writer saw errors: {errors:?}");
        assert!(acked > 100, "the writer kept writing ({acked} acked)");
        let after = client.query_config("temp").await.unwrap();
        assert_eq!(
            ballots(&before),
            ballots(&after),
            "a partition changed its ballot\n{}",
            ob.logs()
        );
        println!("probes (connect, answer, served): {probes:?}");
        // Refused within 10 ms when measured; the bound tells "at once" from being held to
        // the 5 s header timeout.
        for (_, took, served) in &probes {
            assert!(
                *served || *took < Duration::from_secs(1),
                "a refused connection took {took:?} after connecting"
            );
        }
        let mut closed = flood.closed_after.clone();
        closed.sort();
        let pct = |q: f64| closed[((closed.len() - 1) as f64 * q) as usize];
        println!(
            "closed after: p50 {:?} p90 {:?} p99 {:?} max {:?}",
            pct(0.5),
            pct(0.9),
            pct(0.99),
            pct(1.0)
        );
        // Refused connections close at once; admitted ones at the header timeout, counted
        // from accept — the client's clock also counts the wait in the accept queue, which
        // grows with the machine's load, so the typical reaped one is held to the timeout
        // and the slowest only to "never a hang". (Measured: median 5.03 s, slowest 5.06 s.)
        let slowest = flood.closed_after.iter().max().copied().unwrap_or_default();
        assert!(
            slowest < 2 * HEADER_TIMEOUT + Duration::from_secs(2),
            "a flood connection was closed only after {slowest:?}"
        );
        let mut reaped: Vec<Duration> = closed
            .iter()
            .copied()
            .filter(|d| *d >= Duration::from_secs(1))
            .collect();
        reaped.sort();
        if let Some(median) = reaped.get(reaped.len() / 2) {
            println!(
                "reaped: {} flood connections, median after {median:?}",
                reaped.len()
            );
            assert!(
                *median < HEADER_TIMEOUT + Duration::from_millis(1500),
                "half the admitted flood connections stayed beyond {median:?}"
            );
        }
        assert!(
            flood.closed_after.len() > FLOOD,
            "the server closed flood connections ({} closed)",
            flood.closed_after.len()
        );
        assert!(
            counter(victim, "pegasus_rpc_connections_refused_total") > 0.0,
            "the flood reached the connection cap"
        );
        // The descriptors come back once the flood is gone.
        let deadline = Instant::now() + Duration::from_secs(20);
        while open_fds(pid) > baseline + 16 {
            assert!(
                Instant::now() < deadline,
                "{} sockets open, {baseline} before the flood",
                open_fds(pid)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let logs = std::fs::read_to_string(ob.path().join("replica1.log")).unwrap();
        assert!(
            !logs.contains("it will be rebuilt") && !logs.contains("Too many open files"),
            "the flood reached the replicas' own files\n{}",
            ob.logs()
        );
        println!(
            "flood: {} closed by the server (slowest {slowest:?}), {} connect errors; {} probes: {} served; {acked} writes, sockets {baseline} before",
            flood.closed_after.len(),
            flood.connect_errors,
            probes.len(),
            probes.iter().filter(|p| p.2).count(),
        );
    });
}

#[test]
fn a_connection_flood_on_a_meta_server_keeps_ddl_and_config_sync_working() {
    let _g = serial();
    let ob = Onebox::start_with_nofile(3, 4, "", NOFILE);
    rt().block_on(async {
        let client = ob.client();
        let t = client.open_table("temp").await.unwrap();
        t.set(b"warm", b"s", b"up", None).await.unwrap();
        let until = Instant::now() + Duration::from_secs(12);
        let floods: Vec<_> = ob
            .metas
            .iter()
            .map(|m| tokio::spawn(flood(*m, FLOOD, until)))
            .collect();
        // The floods build up first (scenario time: what they reach is asserted at the end).
        tokio::time::sleep(Duration::from_secs(3)).await;
        // DDL through the client's established meta connections.
        let created = client
            .meta(MetaRequest::CreateApp(CreateAppRequest {
                app_name: "during_flood".into(),
                options: CreateAppOptions {
                    partition_count: 4,
                    replica_count: 3,
                    success_if_exist: false,
                    app_type: "pegasus".into(),
                    is_stateful: true,
                    envs: Default::default(),
                    atomic_idempotent: None,
                },
            }))
            .await
            .unwrap();
        let MetaResponse::CreateApp(created) = created else {
            panic!("unexpected answer {created:?}")
        };
        assert!(created.err.is_ok(), "create failed: {created:?}");
        // Config sync: the new table's replicas are created and take writes.
        let t2 = client.open_table("during_flood").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while t2.set(b"h", b"s", b"v", None).await.is_err() {
            assert!(Instant::now() < deadline, "the new table took no write");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for f in floods {
            let f = f.await.unwrap();
            assert!(
                f.closed_after.len() > FLOOD,
                "the metas closed flood connections"
            );
        }
        for i in 1..=3 {
            let logs = std::fs::read_to_string(ob.path().join(format!("meta{i}.log"))).unwrap();
            assert!(
                !logs.to_lowercase().contains("storage error")
                    && !logs.contains("Too many open files"),
                "meta{i} hit a storage error\n{}",
                ob.logs()
            );
        }
        assert_eq!(
            t2.get(b"h", b"s").await.unwrap().as_deref(),
            Some(&b"v"[..])
        );
    });
}

/// Resident memory of a process, bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn an_idle_connection_costs_a_bounded_few_kilobytes_and_stays_open() {
    const IDLE: usize = 1000;
    let _g = serial();
    let ob = Onebox::start(1, 1);
    let victim = ob.replicas[0];
    let pid = ob.pid("replica1");
    rt().block_on(async {
        let before = rss(pid);
        // Connections that made one call and stay idle, like a client's pooled sessions.
        let mut sessions = Vec::new();
        for _ in 0..IDLE {
            let s = pegasus_rpc::Session::new(victim, 1 << 20);
            let answer = pegasus_rpc::internal::call::<_, i64>(
                &s,
                "RPC_PEGASUS_RS_NOPE",
                &0,
                Duration::from_secs(5),
            )
            .await;
            assert!(
                matches!(answer, Err(pegasus_rpc::RpcError::Remote(_))),
                "{answer:?}"
            );
            sessions.push(s);
        }
        let after = rss(pid);
        let per = after.saturating_sub(before) / IDLE as u64;
        println!(
            "{IDLE} idle connections: RSS {} KiB -> {} KiB, {} bytes each",
            before / 1024,
            after / 1024,
            per
        );
        assert!(per < 64 << 10, "{per} bytes of RSS per idle connection");
        // Idle beyond the header timeout: still open, still served.
        tokio::time::sleep(HEADER_TIMEOUT + Duration::from_secs(1)).await;
        for s in sessions.iter().take(10) {
            let answer = pegasus_rpc::internal::call::<_, i64>(
                s,
                "RPC_PEGASUS_RS_NOPE",
                &0,
                Duration::from_secs(5),
            )
            .await;
            assert!(
                matches!(answer, Err(pegasus_rpc::RpcError::Remote(_))),
                "an idle session was closed: {answer:?}"
            );
        }
    });
}

/// Which partitions `node` is a member of, and whether it leads any.
fn membership(cfg: &pegasus_proto::meta::QueryCfgResponse, node: SocketAddr) -> (Vec<bool>, bool) {
    let is = |a: &pegasus_proto::RpcAddress| a.to_socket_addr() == Some(node);
    let members = cfg
        .partitions
        .iter()
        .map(|p| is(&p.primary) || p.secondaries.iter().any(is))
        .collect();
    let leads = cfg.partitions.iter().any(|p| is(&p.primary));
    (members, leads)
}

#[test]
fn a_full_disk_on_one_replica_server_costs_one_removal_per_partition_and_fills_again() {
    let _g = serial();
    let ob = Onebox::start_with(
        3,
        4,
        "[replica_server]\nenable_fail_points = true\ndisk_stat_interval_ms = 300\n",
    );
    // The replica server holding the most primaries.
    rt().block_on(async {
        let client = ob.client();
        let t = client.open_table("temp").await.unwrap();
        let w = Writers::start(&t, 4);
        assert!(pegasus_chaos::wait_healthy(&client, Duration::from_secs(60)).await);
        let cfg = client.query_config("temp").await.unwrap();
        let victim = *ob
            .replicas
            .iter()
            .max_by_key(|r| {
                cfg.partitions
                    .iter()
                    .filter(|p| p.primary.to_socket_addr() == Some(**r))
                    .count()
            })
            .unwrap();
        let fault_free = w.rate(Duration::from_secs(4)).await;

        // The disk reports full: every primary there moves to a copy with room.
        assert!(post_failpoint(victim, "name=disk_full&times=1000000").contains(" 200"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, leads) = membership(&client.query_config("temp").await.unwrap(), victim);
            if !leads {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{victim} still leads a partition 20 s after its disk filled\n{}",
                ob.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Now writes there fail with ENOSPC: each copy is removed once and not re-added.
        assert!(post_failpoint(victim, "name=plog_append_enospc&times=1000000").contains(" 200"));
        let full_since = Instant::now();
        let mut removals = vec![0usize; cfg.partitions.len()];
        let mut was = membership(&client.query_config("temp").await.unwrap(), victim).0;
        let mut during = Vec::new();
        while full_since.elapsed() < Duration::from_secs(15) {
            let before = w.acked();
            tokio::time::sleep(Duration::from_millis(250)).await;
            during.push(w.acked() - before);
            let now = membership(&client.query_config("temp").await.unwrap(), victim).0;
            for (i, (a, b)) in was.iter().zip(&now).enumerate() {
                if *a && !*b {
                    removals[i] += 1;
                }
            }
            was = now;
        }
        let full_rate = during.iter().sum::<u64>() as f64 / full_since.elapsed().as_secs_f64();
        assert!(
            removals.iter().all(|r| *r <= 1),
            "a copy was removed more than once: {removals:?}\n{}",
            ob.logs()
        );
        let metrics = http_get(victim, "/metrics").1;
        assert!(
            metrics
                .lines()
                .any(|l| l == "pegasus_replica_disk_insufficient 1"),
            "the node says its disk is insufficient"
        );

        // Space returns: the node takes its replicas again by itself.
        assert!(post_failpoint(victim, "name=off").contains(" 200"));
        assert!(
            pegasus_chaos::wait_healthy(&client, Duration::from_secs(90)).await,
            "not back to three copies within 90 s of space returning\n{}",
            ob.logs()
        );
        let back = membership(&client.query_config("temp").await.unwrap(), victim).0;
        assert!(
            back.iter().all(|m| *m),
            "{victim} holds every partition again"
        );
        let (keys, errors) = w.stop().await;
        for k in &keys {
            assert_eq!(
                t.get(k.as_bytes(), b"s").await.unwrap().as_deref(),
                Some(k.as_bytes()),
                "acknowledged write {k} lost"
            );
        }
        // Clients see errors only around a primary's move, never a refusal for disk space
        // (a healthy copy could always take the writes).
        assert!(
            errors.iter().all(|(_, e)| !e.contains("DISK_INSUFFICIENT")),
            "{errors:?}"
        );
        let set_aside = err_copies(&ob);
        assert!(set_aside.is_empty(), "no copy was rebuilt: {set_aside:?}");
        let span = match (errors.first(), errors.last()) {
            (Some(a), Some(b)) => b.0 - a.0,
            _ => Duration::ZERO,
        };
        println!(
            "disk full on {victim}: {fault_free:.0} writes/s before, {full_rate:.0}/s while full \
             ({:.0} %), removals {removals:?}, {} client errors over {span:?}, {} keys verified",
            100.0 * full_rate / fault_free.max(1.0),
            errors.len(),
            keys.len()
        );
    });
}
