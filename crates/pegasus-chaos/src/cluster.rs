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
    /// First meta port; replica ports follow at `+10`.
    pub base_port: u16,
    /// TOML merged into the generated configuration.
    pub extra_config: Option<String>,
}

/// A running onebox.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    exe: PathBuf,
    child: Option<Child>,
    /// Meta server addresses (`meta1`, `meta2`, ... in order).
    pub metas: Vec<SocketAddr>,
    /// Replica server addresses (`replica1`, ... in order).
    pub replicas: Vec<SocketAddr>,
}

impl Cluster {
    /// Starts the onebox and waits until it reports ready (at most 180 s).
    pub fn start(opts: &ClusterOptions) -> Result<Self> {
        std::fs::create_dir_all(&opts.dir)?;
        let mut cmd = Command::new(&opts.exe);
        cmd.arg("onebox")
            .arg("--dir")
            .arg(&opts.dir)
            .arg("--clean")
            .arg("--stop-on-stdin-eof")
            .arg("--replicas")
            .arg(opts.replicas.to_string())
            .arg("--partitions")
            .arg(opts.partitions.to_string())
            .arg("--meta-port")
            .arg(opts.base_port.to_string())
            .arg("--replica-port")
            .arg((opts.base_port + 10).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(extra) = &opts.extra_config {
            let parent = opts.dir.parent().unwrap_or(Path::new("."));
            let path = parent.join("chaos-extra.toml");
            std::fs::write(&path, extra)?;
            cmd.arg("--extra-config").arg(path);
        }
        let mut child = cmd.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| ChaosError::Cluster("onebox has no stdout".into()))?;
        let mut cluster = Self {
            dir: opts.dir.clone(),
            exe: opts.exe.clone(),
            child: Some(child),
            metas: (0..3)
                .map(|i| SocketAddr::from(([127, 0, 0, 1], opts.base_port + i)))
                .collect(),
            replicas: (0..opts.replicas)
                .map(|i| SocketAddr::from(([127, 0, 0, 1], opts.base_port + 10 + i)))
                .collect(),
        };
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
            cluster.stop();
            return Err(ChaosError::Cluster(format!(
                "onebox not ready within 180 s; logs in {}",
                opts.dir.display()
            )));
        }
        Ok(cluster)
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

    /// Starts an instance again (its data directory is kept).
    pub fn restart(&self, instance: &str) -> Result<()> {
        self.onebox_action("restart", instance)
    }

    fn onebox_action(&self, action: &str, instance: &str) -> Result<()> {
        let out = Command::new(&self.exe)
            .arg("onebox")
            .arg(action)
            .arg(instance)
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ChaosError::Cluster(format!(
                "onebox {action} {instance}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
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
    /// waits for it.
    pub fn stop(&mut self) {
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
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A bounded HTTP GET on loopback (the servers' admin endpoints).
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut body = Vec::new();
    s.take(4 << 20).read_to_end(&mut body).ok()?;
    Some(String::from_utf8_lossy(&body).into_owned())
}
