//! The connection flood of the `conn-flood` nemesis: one local process holding as many TCP
//! connections to one server as its descriptor limit, sending nothing useful.
//!
//! Each of `n` tasks keeps one connection open: every third sends a partial THFT frame
//! header and stalls, the rest send nothing. When the server closes one (refused over its
//! cap at once, or reaped after its header timeout), the task connects again at once, as a
//! hostile client would. Every task ends by itself at a deadline fixed at start, or when the
//! flood is stopped; every socket has a zero linger, so closing it sends a reset and leaves
//! no `TIME_WAIT` behind on either side (the next flood needs the ports again).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

/// What every third connection sends: the first 12 bytes of a THFT frame header (16 are
/// needed), so the server waits for the rest.
pub const PARTIAL_HEADER: &[u8] = b"THFT\0\0\0\0\0\0\0\x30";

/// A server close this soon after the handshake is counted as a refusal at accept (the
/// server over one of its caps); a later one as a reap (header timeout, 5 s by default).
pub const REFUSED_WITHIN: Duration = Duration::from_secs(1);

/// Connections held when the target's descriptor limit cannot be read.
pub const FALLBACK_CONNECTIONS: usize = 4000;

/// Descriptors of the chaos process never given to the flood (its workload clients, the
/// onebox's pipes, files).
pub const OWN_RESERVE: u64 = 1024;

/// One connect attempt at most this long (a full listen backlog makes the kernel retry SYNs).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections per source address. From one address, once about half of the ephemeral
/// port range is in use Linux's `connect()` scans the range for every new connection (1.8
/// ms a call was measured with 16,000 flood connections open): the flood then takes
/// minutes to build up. Spread over several loopback addresses it does not.
pub const PER_SOURCE: usize = 4096;

/// The loopback address flood connection `i` of `n` is made from: `127.0.3.1` and up,
/// [`PER_SOURCE`] connections each (the onebox's nodes are on `127.0.1.x` and `127.0.2.x`).
pub fn source_of(i: usize, n: usize) -> IpAddr {
    let sources = n.div_ceil(PER_SOURCE).clamp(1, 250);
    let k = u8::try_from(i % sources).unwrap_or(0);
    IpAddr::V4(Ipv4Addr::new(127, 0, 3, 1 + k))
}

/// A connection to `addr` from `source` (port chosen by the kernel).
async fn connect_from(source: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        // Loopback IPv6 has a single address: connect from wherever the kernel says.
        SocketAddr::V6(_) => return TcpStream::connect(addr).await,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

/// The soft "Max open files" of a `/proc/<pid>/limits` text; `None` when unlimited or
/// unreadable.
pub fn parse_nofile_soft(limits: &str) -> Option<u64> {
    let rest = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The soft descriptor limit of a running process.
pub fn nofile_soft_of(pid: u32) -> Option<u64> {
    parse_nofile_soft(&std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?)
}

/// Socket descriptors a process holds open (`None` if its `/proc` entry is unreadable).
pub fn open_sockets(pid: u32) -> Option<usize> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        entries
            .flatten()
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
            })
            .count(),
    )
}

/// How many connections to hold against a target whose soft descriptor limit is
/// `target_limit` (if known), from a process whose own limit is `own_limit`: the target's
/// whole limit, which is beyond any connection cap the server derives from it (the limit
/// minus a reserve), or [`FALLBACK_CONNECTIONS`]; never more than this process can open
/// while keeping [`OWN_RESERVE`] for itself.
pub fn connections_for(target_limit: Option<u64>, own_limit: u64) -> usize {
    let wanted = target_limit.map_or(FALLBACK_CONNECTIONS as u64, |l| l.max(1));
    let room = own_limit.saturating_sub(OWN_RESERVE);
    usize::try_from(wanted.min(room)).unwrap_or(usize::MAX)
}

/// What a flood saw, from its side of the sockets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FloodOutcome {
    /// Connections established (handshake completed), reconnections included.
    pub opened: u64,
    /// Connect attempts that failed or timed out.
    pub connect_errors: u64,
    /// Connections the server closed within [`REFUSED_WITHIN`] of the handshake.
    pub refused: u64,
    /// Connections the server closed later (reaped: silent or stalled).
    pub reaped: u64,
    /// Connections the server answered with bytes (it should not: nothing was asked).
    pub answered: u64,
    /// The longest time from a handshake to the server closing that connection, ms.
    pub slowest_close_ms: u64,
    /// Connections still open when the flood stopped (closed by the flood).
    pub open_at_stop: u64,
    /// The age of the oldest of those, ms (a server that reaps keeps this near its header
    /// timeout).
    pub oldest_open_ms: u64,
    /// Tasks that had not ended within the bound after the stop (then aborted; 1 when the
    /// flood's thread did not report back in time).
    pub not_ended: u64,
    /// From the stop until every task ended, ms.
    pub stop_ms: u64,
}

#[derive(Debug, Default)]
struct Counters {
    opened: AtomicU64,
    connect_errors: AtomicU64,
    refused: AtomicU64,
    reaped: AtomicU64,
    answered: AtomicU64,
    slowest_close_ms: AtomicU64,
    open_at_stop: AtomicU64,
    oldest_open_ms: AtomicU64,
    not_ended: AtomicU64,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A running flood; [`Flood::stop`] ends it (it also ends by itself at its deadline).
///
/// It runs on a thread and runtime of its own, so its thousands of tasks do not take turns
/// with the harness's workload: what the workload measures is the cluster, not the harness.
#[derive(Debug)]
pub struct Flood {
    stop: watch::Sender<bool>,
    done: Mutex<Option<oneshot::Receiver<()>>>,
    counters: Arc<Counters>,
}

impl Flood {
    /// Starts `n` connection tasks against `addr` on a thread of its own; each ends at
    /// `deadline` at the latest. Once stopped (or past the deadline), tasks still running
    /// after `grace` are aborted, which closes their sockets.
    pub fn start(
        addr: SocketAddr,
        n: usize,
        deadline: Instant,
        grace: Duration,
    ) -> std::io::Result<Arc<Self>> {
        let (stop, mut stopped) = watch::channel(false);
        let (done_tx, done) = oneshot::channel();
        let counters = Arc::new(Counters::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let c = counters.clone();
        std::thread::Builder::new()
            .name("chaos-flood".into())
            .spawn(move || {
                rt.block_on(async move {
                    let mut tasks = JoinSet::new();
                    for i in 0..n {
                        tasks.spawn(hold_one(
                            source_of(i, n),
                            addr,
                            i % 3 == 0,
                            deadline,
                            stopped.clone(),
                            c.clone(),
                        ));
                    }
                    ended(&mut stopped, deadline).await;
                    let all = async { while tasks.join_next().await.is_some() {} };
                    if tokio::time::timeout(grace, all).await.is_err() {
                        c.not_ended.store(tasks.len() as u64, Ordering::Relaxed);
                        tasks.abort_all();
                        while tasks.join_next().await.is_some() {}
                    }
                });
                // The runtime is gone with every socket: say so.
                drop(rt);
                let _ = done_tx.send(());
            })?;
        Ok(Arc::new(Self {
            stop,
            done: Mutex::new(Some(done)),
            counters,
        }))
    }

    /// Stops the flood and waits (at most the `grace` given at start and a second more)
    /// until every task has closed its socket. A second call waits for nothing and returns
    /// the same counts.
    pub async fn stop(&self, within: Duration) -> FloodOutcome {
        let started = Instant::now();
        let _ = self.stop.send(true);
        let done = self.done.lock().ok().and_then(|mut d| d.take());
        if let Some(done) = done {
            if tokio::time::timeout(within, done).await.is_err() {
                self.counters.not_ended.fetch_max(1, Ordering::Relaxed);
            }
        }
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FloodOutcome {
            opened: load(&c.opened),
            connect_errors: load(&c.connect_errors),
            refused: load(&c.refused),
            reaped: load(&c.reaped),
            answered: load(&c.answered),
            slowest_close_ms: load(&c.slowest_close_ms),
            open_at_stop: load(&c.open_at_stop),
            oldest_open_ms: load(&c.oldest_open_ms),
            not_ended: load(&c.not_ended),
            stop_ms: ms(started.elapsed()),
        }
    }
}

/// Resolves when the flood is stopped or its deadline passes.
async fn ended(stopped: &mut watch::Receiver<bool>, deadline: Instant) {
    tokio::select! {
        // An error means the sender is gone: stop as well.
        _ = stopped.wait_for(|s| *s) => {}
        _ = tokio::time::sleep_until(deadline.into()) => {}
    }
}

/// Keeps one connection to `addr` open until the flood ends, reconnecting whenever the
/// server closes it.
async fn hold_one(
    source: IpAddr,
    addr: SocketAddr,
    partial: bool,
    deadline: Instant,
    mut stopped: watch::Receiver<bool>,
    c: Arc<Counters>,
) {
    loop {
        let connect = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, connect_from(source, addr)) => r,
            () = ended(&mut stopped, deadline) => return,
        };
        let Ok(Ok(mut conn)) = connect else {
            c.connect_errors.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(20)) => continue,
                () = ended(&mut stopped, deadline) => return,
            }
        };
        // From the handshake: before it, the kernel's SYN retries count, not the server.
        let connected = Instant::now();
        c.opened.fetch_add(1, Ordering::Relaxed);
        // A reset on close: no TIME_WAIT on either side.
        let _ = conn.set_zero_linger();
        if partial {
            let _ = conn.write_all(PARTIAL_HEADER).await;
        }
        let mut buf = [0u8; 64];
        let closed_by_server = loop {
            tokio::select! {
                r = conn.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break true,
                    Ok(_) => {
                        c.answered.fetch_add(1, Ordering::Relaxed);
                    }
                },
                () = ended(&mut stopped, deadline) => break false,
            }
        };
        let age = ms(connected.elapsed());
        if closed_by_server {
            if connected.elapsed() < REFUSED_WITHIN {
                c.refused.fetch_add(1, Ordering::Relaxed);
            } else {
                c.reaped.fetch_add(1, Ordering::Relaxed);
            }
            c.slowest_close_ms.fetch_max(age, Ordering::Relaxed);
        } else {
            c.open_at_stop.fetch_add(1, Ordering::Relaxed);
            c.oldest_open_ms.fetch_max(age, Ordering::Relaxed);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max processes             95712                95712                processes 
Max open files            20000                1048576              files     
Max locked memory         8388608              8388608              bytes     
";

    #[test]
    fn the_soft_open_files_limit_is_read_from_proc_limits() {
        assert_eq!(parse_nofile_soft(LIMITS), Some(20000));
        assert_eq!(
            parse_nofile_soft(&LIMITS.replace("20000  ", "unlimited")),
            None
        );
        assert_eq!(parse_nofile_soft("Max processes 10 10 processes\n"), None);
        assert_eq!(parse_nofile_soft(""), None);
    }

    #[test]
    fn this_process_limits_are_readable() {
        let own = nofile_soft_of(std::process::id()).unwrap();
        assert!(own >= 16, "{own}");
    }

    #[test]
    fn flood_connections_spread_over_loopback_sources() {
        let ip = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        assert_eq!(source_of(0, 10), ip(127, 0, 3, 1));
        assert_eq!(source_of(9, 10), ip(127, 0, 3, 1));
        // 18,976 connections: 5 sources, at most 3796 each.
        let n = 18_976;
        let mut per = std::collections::BTreeMap::new();
        for i in 0..n {
            *per.entry(source_of(i, n)).or_insert(0usize) += 1;
        }
        assert_eq!(per.len(), 5);
        assert!(per.values().all(|c| *c <= PER_SOURCE), "{per:?}");
        assert_eq!(*per.keys().last().unwrap(), ip(127, 0, 3, 5));
        // Never past 127.0.3.250.
        assert_eq!(source_of(249, 1 << 30), ip(127, 0, 3, 250));
        assert_eq!(source_of(250, 1 << 30), ip(127, 0, 3, 1));
    }

    #[test]
    fn the_flood_exceeds_the_target_cap_within_its_own_room() {
        // The target's whole limit: beyond its connection cap (limit minus a reserve).
        assert_eq!(connections_for(Some(20_000), 1 << 20), 20_000);
        // Never past this process's own limit minus its reserve.
        assert_eq!(connections_for(Some(20_000), 20_000), 18_976);
        assert_eq!(connections_for(None, 1 << 20), FALLBACK_CONNECTIONS);
        assert_eq!(connections_for(None, 2048), 1024);
        assert_eq!(connections_for(Some(5000), 500), 0);
    }

    /// Against a listener that accepts and closes half the connections at once and holds
    /// the other half past the flood: the counts add up and every socket ends at the stop.
    #[tokio::test]
    async fn a_flood_counts_refusals_reconnects_and_ends_at_stop() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            let mut refused = 0u32;
            loop {
                let (s, _) = listener.accept().await.unwrap();
                // The first 4 are held (the "cap"), then 10 refusals, then everything held.
                if held.len() < 4 || refused >= 10 {
                    held.push(s);
                } else {
                    refused += 1;
                    drop(s);
                }
            }
        });
        let flood = Flood::start(
            addr,
            6,
            Instant::now() + Duration::from_secs(30),
            Duration::from_secs(5),
        )
        .unwrap();
        // Wait until the refusals have happened and every task holds a connection again.
        let waited = Instant::now();
        while flood.counters.opened.load(Ordering::Relaxed) < 16 {
            assert!(
                waited.elapsed() < Duration::from_secs(10),
                "{} connections opened in 10 s, 16 expected",
                flood.counters.opened.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A moment more, in which a wrong extra reconnect would show in the counts (time
        // passing is the point: nothing is to happen in it).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let out = flood.stop(Duration::from_secs(6)).await;
        eprintln!("{out:?}");
        server.abort();
        assert_eq!(out.refused, 10, "{out:?}");
        assert_eq!(out.reaped, 0, "{out:?}");
        assert_eq!(out.opened, 16, "{out:?}");
        assert_eq!(out.open_at_stop, 6, "{out:?}");
        assert_eq!(out.not_ended, 0, "{out:?}");
        // 0 ms when measured; past REFUSED_WITHIN (1 s) a close would not be a refusal.
        assert!(out.slowest_close_ms < 1000, "{out:?}");
        // A second stop waits for nothing.
        assert_eq!(flood.stop(Duration::from_secs(1)).await.opened, 16);
    }

    /// Every task ends by itself at the deadline, without a stop.
    #[tokio::test]
    async fn a_flood_ends_by_itself_at_its_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                held.push(listener.accept().await.unwrap().0);
            }
        });
        let flood = Flood::start(
            addr,
            3,
            Instant::now() + Duration::from_millis(300),
            Duration::from_secs(5),
        )
        .unwrap();
        // The flood's thread has finished before any stop.
        let mut done = flood.done.lock().unwrap().take().unwrap();
        let waited = Instant::now();
        while done.try_recv().is_err() {
            // About 320 ms when measured: a generous bound for a loaded machine.
            assert!(
                waited.elapsed() < Duration::from_secs(5),
                "the flood had not ended 5 s after start, its deadline was 300 ms"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "the flood ended by itself {:?} after start",
            waited.elapsed()
        );
        server.abort();
        let out = flood.stop(Duration::from_secs(1)).await;
        assert_eq!((out.opened, out.open_at_stop), (3, 3), "{out:?}");
    }
}
