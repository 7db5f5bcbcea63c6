//! The cluster under test: a `pegasus onebox` child process (every meta and replica server
//! a process of its own), and the signals the nemeses send to its instances.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ChaosError, Result};

/// How to start the cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The `pegasus` binary.
    pub exe: PathBuf,
    /// Onebox directory (data, logs, pid files).
    pub dir: PathBuf,
    /// Replica servers.
    pub replicas: u16,
    /// Partitions of table `temp`.
    pub partitions: i32,
    /// First meta port.
    pub base_port: u16,
    /// First replica port (default: `base_port + 10`).
    pub replica_port: Option<u16>,
    /// TOML merged into the generated configuration.
    pub extra_config: Option<String>,
    /// Every instance on its own loopback address (needed by the partition nemeses).
    pub ip_per_instance: bool,
    /// Put `replica1`'s data directory on a tmpfs of this many MiB (the disk-full nemesis
    /// fills it). Needs root, as mounting does.
    pub tmpfs_replica1_mib: Option<u64>,
    /// Also run a Redis proxy on this port.
    pub redis_port: Option<u16>,
    /// `RLIMIT_NOFILE` (soft and hard) of every process, for tests that exhaust it.
    pub nofile: Option<u64>,
    /// `RUST_LOG` of every instance (default: inherited).
    pub log_filter: Option<String>,
}

impl ClusterOptions {
    /// Three replica servers, 8 partitions, meta ports from `base_port`, replica ports from
    /// `base_port + 10`, nothing else.
    pub fn new(exe: PathBuf, dir: PathBuf, base_port: u16) -> Self {
        Self {
            exe,
            dir,
            replicas: 3,
            partitions: 8,
            base_port,
            replica_port: None,
            extra_config: None,
            ip_per_instance: false,
            tmpfs_replica1_mib: None,
            redis_port: None,
            nofile: None,
            log_filter: None,
        }
    }
}

/// The addresses part of the onebox's `onebox.json`.
#[derive(Debug, serde::Deserialize)]
struct Layout {
    metas: Vec<SocketAddr>,
    replicas: Vec<SocketAddr>,
}

/// A running onebox: the one launcher of test clusters, used by the chaos harness, the
/// bench suite and the integration tests.
#[derive(Debug)]
pub struct Cluster {
    opts: ClusterOptions,
    dir: PathBuf,
    exe: PathBuf,
    child: Option<Child>,
    tmpfs: Option<PathBuf>,
    /// Environment each restart of an instance gets (a clock skew stays for the run).
    env: std::sync::Mutex<std::collections::BTreeMap<String, Vec<String>>>,
    /// Meta server addresses (`meta1`, `meta2`, ... in order).
    pub metas: Vec<SocketAddr>,
    /// Replica server addresses (`replica1`, ... in order).
    pub replicas: Vec<SocketAddr>,
}

impl Cluster {
    /// Starts the onebox on a clean directory and waits until it reports ready (at most
    /// 180 s).
    pub fn start(opts: &ClusterOptions) -> Result<Self> {
        let mut tmpfs = None;
        if let Some(mib) = opts.tmpfs_replica1_mib {
            // A fresh directory with replica1's data dir mounted inside (`--clean` would try
            // to remove the mount point).
            let _ = std::fs::remove_dir_all(&opts.dir);
            let mount = opts.dir.join("replica1");
            std::fs::create_dir_all(&mount)?;
            run_checked(
                Command::new("mount")
                    .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
                    .arg(&mount),
            )?;
            tmpfs = Some(mount);
        }
        std::fs::create_dir_all(&opts.dir)?;
        let mut cluster = Self {
            opts: opts.clone(),
            dir: opts.dir.clone(),
            exe: opts.exe.clone(),
            child: None,
            env: std::sync::Mutex::new(std::collections::BTreeMap::new()),
            metas: Vec::new(),
            replicas: Vec::new(),
            tmpfs: None,
        };
        let clean = tmpfs.is_none();
        cluster.tmpfs = tmpfs;
        cluster.launch(clean)?;
        Ok(cluster)
    }

    /// Stops the whole onebox and starts it again on the same data.
    pub fn relaunch(&mut self) -> Result<()> {
        self.stop_child();
        self.launch(false)
    }

    /// Spawns `pegasus onebox` and waits for it to report ready.
    fn launch(&mut self, clean: bool) -> Result<()> {
        let opts = &self.opts;
        let mut cmd = match opts.nofile {
            // Set in a shell that then becomes onebox: every instance inherits it.
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(&opts.exe);
                c
            }
            None => Command::new(&opts.exe),
        };
        cmd.arg("onebox").arg("--dir").arg(&opts.dir);
        if clean {
            cmd.arg("--clean");
        }
        if opts.ip_per_instance {
            cmd.arg("--ip-per-instance");
        }
        cmd.arg("--stop-on-stdin-eof")
            .arg("--replicas")
            .arg(opts.replicas.to_string())
            .arg("--partitions")
            .arg(opts.partitions.to_string())
            .arg("--meta-port")
            .arg(opts.base_port.to_string())
            .arg("--replica-port")
            .arg(opts.replica_port.unwrap_or(opts.base_port + 10).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(port) = opts.redis_port {
            cmd.arg("--redis-port").arg(port.to_string());
        }
        if let Some(filter) = &opts.log_filter {
            cmd.env("RUST_LOG", filter);
        }
        if let Some(extra) = &opts.extra_config {
            // Next to the onebox directory, named after it: two clusters never share it.
            let parent = opts.dir.parent().unwrap_or(Path::new("."));
            let name = opts
                .dir
                .file_name()
                .map_or_else(|| "onebox".into(), |n| n.to_string_lossy().into_owned());
            let path = parent.join(format!("{name}-extra.toml"));
            std::fs::write(&path, extra)?;
            cmd.arg("--extra-config").arg(path);
        }
        let mut child = cmd.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| ChaosError::Cluster("onebox has no stdout".into()))?;
        self.child = Some(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout)
                .lines()
                .map_while(std::io::Result::ok)
            {
                if line.starts_with("onebox ready") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(180)).is_err() {
            self.stop();
            return Err(ChaosError::Cluster(format!(
                "onebox not ready within 180 s; logs in {}",
                self.dir.display()
            )));
        }
        let layout: Layout = std::fs::read(self.dir.join("onebox.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| ChaosError::Cluster("onebox.json unreadable".into()))?;
        self.metas = layout.metas;
        self.replicas = layout.replicas;
        Ok(())
    }

    /// The onebox directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The address of an instance (`meta2`, `replica1`, ...).
    pub fn addr_of(&self, instance: &str) -> Option<SocketAddr> {
        let index = |prefix: &str| -> Option<usize> {
            instance
                .strip_prefix(prefix)?
                .parse::<usize>()
                .ok()?
                .checked_sub(1)
        };
        if let Some(i) = index("replica") {
            return self.replicas.get(i).copied();
        }
        index("meta").and_then(|i| self.metas.get(i).copied())
    }

    /// An instance's data directory.
    pub fn data_dir(&self, instance: &str) -> PathBuf {
        self.dir.join(instance)
    }

    /// The tmpfs mount holding `replica1`'s data, if the run asked for one.
    pub fn tmpfs(&self) -> Option<&Path> {
        self.tmpfs.as_deref()
    }

    /// Lines of all instance logs containing `needle` (recovery paths a fault should
    /// have taken, e.g. a torn tail cut).
    pub fn count_in_logs(&self, needle: &str) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .map(|text| text.lines().filter(|l| l.contains(needle)).count())
            .sum()
    }

    /// Lines of all instance logs containing any of `needles` (each line counted once).
    pub fn count_lines_in_logs(&self, needles: &[&str]) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .map(|text| {
                text.lines()
                    .filter(|l| needles.iter().any(|n| l.contains(n)))
                    .count()
            })
            .sum()
    }

    /// Failed replica copies kept on disk (`<data>/replica/*.err`), over every replica
    /// server. A server keeps only the newest failed copy of each partition, so this is a
    /// lower bound of the copies ever moved aside.
    pub fn count_err_dirs(&self) -> usize {
        (1..=self.replicas.len())
            .filter_map(|i| {
                std::fs::read_dir(self.data_dir(&format!("replica{i}")).join("replica")).ok()
            })
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".err"))
                    .count()
            })
            .sum()
    }

    /// The pid of a running instance, from the onebox's `<instance>.pid`.
    pub fn pid_of(&self, instance: &str) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.dir.join(format!("{instance}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// The instance name serving `addr`.
    pub fn instance_of(&self, addr: SocketAddr) -> Option<String> {
        let find = |list: &[SocketAddr], role: &str| {
            list.iter()
                .position(|a| *a == addr)
                .map(|i| format!("{role}{}", i + 1))
        };
        find(&self.replicas, "replica").or_else(|| find(&self.metas, "meta"))
    }

    /// `kill -9` of one instance; it stays down until [`Cluster::restart`].
    pub fn kill(&self, instance: &str) -> Result<()> {
        self.onebox_action("kill", instance)
    }

    /// Starts an instance again (its data directory is kept), with the environment
    /// [`Cluster::set_env`] gave it.
    pub fn restart(&self, instance: &str) -> Result<()> {
        let env = self
            .env
            .lock()
            .ok()
            .and_then(|m| m.get(instance).cloned())
            .unwrap_or_default();
        let mut cmd = self.onebox_command("restart", instance);
        for kv in env {
            cmd.arg("--env").arg(kv);
        }
        run_checked(&mut cmd)
    }

    /// Extra environment (`KEY=VALUE`) for every later start of `instance`.
    pub fn set_env(&self, instance: &str, env: Vec<String>) {
        if let Ok(mut m) = self.env.lock() {
            m.insert(instance.to_string(), env);
        }
    }

    fn onebox_command(&self, action: &str, instance: &str) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("onebox")
            .arg(action)
            .arg(instance)
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null());
        cmd
    }

    fn onebox_action(&self, action: &str, instance: &str) -> Result<()> {
        run_checked(&mut self.onebox_command(action, instance))
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) to an instance.
    pub fn pause(&self, instance: &str, stop: bool) -> Result<()> {
        self.onebox_action(if stop { "pause" } else { "resume" }, instance)
    }

    /// The meta server that says it leads (from its `/metrics`), if any answers.
    pub fn meta_leader(&self) -> Option<String> {
        self.metas.iter().find_map(|addr| {
            let text = http_get(*addr, "/metrics")?;
            text.lines()
                .any(|l| l.trim() == "pegasus_meta_is_leader 1")
                .then(|| self.instance_of(*addr))
                .flatten()
        })
    }

    /// Resumes every instance (a paused process cannot stop), then stops the onebox and
    /// waits for it; unmounts the tmpfs, if any.
    pub fn stop(&mut self) {
        self.stop_child();
        if let Some(mount) = self.tmpfs.take() {
            let _ = Command::new("umount").arg("-l").arg(&mount).status();
        }
    }

    fn stop_child(&mut self) {
        if self.child.is_none() {
            return;
        }
        let names = (1..=self.replicas.len())
            .map(|i| format!("replica{i}"))
            .chain((1..=self.metas.len()).map(|i| format!("meta{i}")));
        for name in names {
            // Not running (killed and not restarted) is fine here.
            let _ = self.pause(&name, false);
        }
        if let Some(mut child) = self.child.take() {
            // The onebox stops its instances on SIGTERM, as on Ctrl-C.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && !matches!(child.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if !matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Copies the tmpfs-held data of `replica1` next to it (`replica1.tmpfs`), so a failed
    /// run keeps it after the unmount.
    pub fn save_tmpfs(&self) {
        if let Some(mount) = &self.tmpfs {
            let _ = Command::new("cp")
                .arg("-a")
                .arg(mount)
                .arg(self.dir.join("replica1.tmpfs"))
                .status();
        }
    }
}

/// Runs a command; its stderr becomes the error when it fails.
pub(crate) fn run_checked(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .map_err(|e| ChaosError::Cluster(format!("{cmd:?}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ChaosError::Cluster(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A bounded HTTP GET on loopback (the servers' admin endpoints).
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    http_request(addr, "GET", path)
}

/// A bounded HTTP request on loopback; the whole answer, status line included.
pub fn http_request(addr: SocketAddr, method: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "{method} {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut body = Vec::new();
    s.take(4 << 20).read_to_end(&mut body).ok()?;
    Some(String::from_utf8_lossy(&body).into_owned())
}
