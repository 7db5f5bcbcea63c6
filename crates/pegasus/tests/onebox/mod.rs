//! Test support: a `pegasus onebox` process on free ports in a temporary directory, started
//! by the chaos harness's cluster launcher, with the one-instance kill / restart commands.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

pub mod writers;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pegasus_chaos::cluster::{Cluster, ClusterOptions};
use pegasus_client::{Client, ClientConfig};

/// A two-worker runtime for driving the client in a test.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Onebox tests share two cores: run them one at a time.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// How often [`wait_until`] and [`wait_until_async`] look again.
const POLL: Duration = Duration::from_millis(50);

/// Waits for a state instead of sleeping and hoping it has come: calls `check` every 50 ms
/// until it returns `Ok`, for at most `within`, then fails with `what` and what the last
/// check saw (its `Err`).
pub fn wait_until<T>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(v) => return v,
            Err(seen) if Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}; last seen: {seen}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// [`wait_until`] with an async `check`, for tests that drive the client.
pub async fn wait_until_async<T>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(seen) if Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

fn ports_free(base: u16, n: u16) -> bool {
    (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
}

/// `n` consecutive free ports.
/// Ports are taken below Linux's ephemeral range (32768–60999), so outgoing connections
/// never occupy them, and each call in a process starts at a different place (two oneboxes
/// of one test binary may start at the same time).
pub fn free_range(n: u16) -> u16 {
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = (std::process::id() as u16)
        .wrapping_mul(31)
        .wrapping_add(call.wrapping_mul(1_009));
    for attempt in 0..1000u16 {
        let base = 10_000 + seed.wrapping_add(attempt.wrapping_mul(97)) % 22_000;
        if ports_free(base, n) {
            return base;
        }
    }
    panic!("no free port range");
}

/// A onebox for a test: the chaos harness's launcher (`pegasus_chaos::cluster::Cluster`)
/// on free ports in a temporary directory.
pub struct Onebox {
    pub dir: PathBuf,
    pub metas: Vec<SocketAddr>,
    pub replicas: Vec<SocketAddr>,
    /// The Redis proxy onebox started, if asked to.
    pub redis: Option<SocketAddr>,
    cluster: Cluster,
    _tmp: Option<tempfile::TempDir>,
}

/// What a test's onebox looks like, besides its size.
#[derive(Default)]
struct Shape<'a> {
    extra: &'a str,
    shared_dir: Option<PathBuf>,
    redis: bool,
    nofile: Option<u64>,
}

impl Onebox {
    /// Starts a onebox with 3 metas and `replicas` replica servers; waits for `onebox ready`.
    pub fn start(replicas: u16, partitions: i32) -> Self {
        Self::start_with(replicas, partitions, "")
    }

    /// Like [`Onebox::start`], with `extra` TOML appended to the configuration.
    pub fn start_with(replicas: u16, partitions: i32, extra: &str) -> Self {
        Self::launch(
            replicas,
            partitions,
            Shape {
                extra,
                ..Shape::default()
            },
        )
    }

    /// Like [`Onebox::start_with`], every process limited to `nofile` descriptors (soft and
    /// hard, so a server cannot raise it), for tests that exhaust them.
    pub fn start_with_nofile(replicas: u16, partitions: i32, extra: &str, nofile: u64) -> Self {
        Self::launch(
            replicas,
            partitions,
            Shape {
                extra,
                nofile: Some(nofile),
                ..Shape::default()
            },
        )
    }

    /// The process id of one instance (`replica1`, `meta2`, ...).
    pub fn pid(&self, name: &str) -> u32 {
        self.cluster
            .pid_of(name)
            .unwrap_or_else(|| panic!("{name} is not running"))
    }

    /// A onebox that also runs a Redis proxy (`--redis-port`).
    pub fn start_with_redis(replicas: u16, partitions: i32) -> Self {
        Self::launch(
            replicas,
            partitions,
            Shape {
                redis: true,
                ..Shape::default()
            },
        )
    }

    fn launch(replicas: u16, partitions: i32, shape: Shape<'_>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = shape
            .shared_dir
            .clone()
            .unwrap_or_else(|| tmp.path().join("onebox"));
        let meta_port = free_range(3 + replicas + 1);
        let replica_port = meta_port + 3;
        let redis = shape
            .redis
            .then(|| SocketAddr::from(([127, 0, 0, 1], replica_port + replicas)));
        let opts = ClusterOptions {
            replicas,
            partitions,
            replica_port: Some(replica_port),
            extra_config: (!shape.extra.is_empty()).then(|| shape.extra.to_string()),
            redis_port: redis.map(|r| r.port()),
            nofile: shape.nofile,
            log_filter: Some("info,openraft=warn".into()),
            ..ClusterOptions::new(env!("CARGO_BIN_EXE_pegasus").into(), dir.clone(), meta_port)
        };
        let cluster = Cluster::start(&opts).unwrap_or_else(|e| {
            panic!("{e}\n{}", tail_logs(&dir));
        });
        Self {
            dir,
            metas: cluster.metas.clone(),
            replicas: cluster.replicas.clone(),
            redis,
            cluster,
            _tmp: Some(tmp),
        }
    }

    /// One onebox shared by the tests of a test binary (3 replica servers, 8 partitions).
    /// It stops when the test process exits: it watches its stdin, which this process holds.
    pub fn shared() -> &'static Onebox {
        static SHARED: std::sync::OnceLock<Onebox> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| {
            // Statics are never dropped: use a fixed directory per test binary under the
            // target dir, cleaned when the next run starts.
            let exe = std::env::current_exe().unwrap();
            let stem = exe.file_stem().unwrap().to_string_lossy().into_owned();
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("onebox-{stem}"));
            Self::launch(
                3,
                8,
                Shape {
                    shared_dir: Some(dir),
                    ..Shape::default()
                },
            )
        })
    }

    /// Stops the onebox (SIGTERM, as Ctrl-C would) and waits for it.
    pub fn stop(&mut self) {
        self.cluster.stop();
    }

    /// Stops and starts the whole onebox on the same data.
    pub fn restart_all(&mut self) {
        if let Err(e) = self.cluster.relaunch() {
            panic!("{e}\n{}", self.logs());
        }
    }

    /// Starts one instance again with extra environment (`KEY=VALUE`, e.g. libfaketime's);
    /// later restarts of it get none.
    pub fn restart_with_env(&self, name: &str, env: &[String]) {
        self.cluster.set_env(name, env.to_vec());
        let started = self.cluster.restart(name);
        self.cluster.set_env(name, Vec::new());
        started.unwrap_or_else(|e| panic!("onebox restart {name} {env:?}: {e}"));
    }

    /// `kill -9` one instance (`meta2`, `replica3`, ...).
    pub fn kill(&self, name: &str) {
        self.cluster
            .kill(name)
            .unwrap_or_else(|e| panic!("onebox kill {name}: {e}"));
    }

    /// Starts one instance again.
    pub fn restart(&self, name: &str) {
        self.cluster
            .restart(name)
            .unwrap_or_else(|e| panic!("onebox restart {name}: {e}"));
    }

    /// The instance name of a replica server address.
    pub fn replica_name(&self, addr: SocketAddr) -> String {
        self.cluster.instance_of(addr).unwrap()
    }

    pub fn client(&self) -> Client {
        let mut c = ClientConfig::new(self.metas.clone());
        c.operation_timeout = Duration::from_secs(10);
        c.meta_query_timeout = Duration::from_secs(10);
        Client::new(c)
    }

    /// The instance logs, for failure messages.
    pub fn logs(&self) -> String {
        tail_logs(&self.dir)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// The last lines of every instance log under `dir`.
fn tail_logs(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("== {}\n", p.display()));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    out
}

impl Drop for Onebox {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The copies of failed replicas set aside (`*.err`) anywhere under the onebox.
pub fn err_copies(ob: &Onebox) -> Vec<PathBuf> {
    std::fs::read_dir(ob.path())
        .unwrap()
        .flatten()
        .flat_map(|d| walk(&d.path(), 4))
        .filter(|p| p.to_string_lossy().ends_with(".err"))
        .collect()
}

/// Directories under `dir`, `depth` levels deep at most.
fn walk(dir: &Path, depth: usize) -> Vec<PathBuf> {
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

/// `POST /failpoint?<query>` on a server's admin port: the status line of the answer.
pub fn post_failpoint(addr: SocketAddr, query: &str) -> String {
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

/// A plain HTTP GET on a server's RPC port (following one meta redirect): (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = String::new();
    c.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    if status == 307 {
        let url = head
            .lines()
            .find_map(|l| l.strip_prefix("Location: "))
            .unwrap()
            .strip_prefix("http://")
            .unwrap();
        let (host, path) = url.split_at(url.find('/').unwrap());
        return http_get(host.parse().unwrap(), path);
    }
    (status, body.to_string())
}

/// libfaketime's library for multi-threaded programs (Debian's `faketime` package).
pub fn libfaketime() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Runs `pegasus shell -e c1 -e c2 ...`; returns (success, stdout, stderr).
pub fn shell(ob: &Onebox, cmds: &[&str]) -> (bool, String, String) {
    let metas = ob
        .metas
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut c = Command::new(env!("CARGO_BIN_EXE_pegasus"));
    c.arg("shell").arg("--meta").arg(metas);
    for cmd in cmds {
        c.arg("-e").arg(cmd);
    }
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
