//! The suite's Redis baselines: a redis-server child process on 127.0.0.1 (no persistence,
//! or `appendfsync always`), stopped when its guard is dropped.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::SuiteOptions;
use crate::error::{BenchError, Result};

/// A redis-server child process, stopped when dropped.
pub(super) struct Guard {
    name: String,
    child: Child,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // redis-server exits on SIGTERM.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn start_redis(
    args: &SuiteOptions,
    port: u16,
    name: &str,
    fsync_always: bool,
) -> Result<Guard> {
    let dir = args.dir.join(name);
    std::fs::create_dir_all(&dir).map_err(BenchError::Local)?;
    let mut cmd = Command::new(&args.redis_server);
    cmd.arg("--port")
        .arg(port.to_string())
        .arg("--bind")
        .arg("127.0.0.1")
        .arg("--dir")
        .arg(&dir)
        .arg("--save")
        .arg("")
        .arg("--daemonize")
        .arg("no");
    if fsync_always {
        cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
    } else {
        cmd.args(["--appendonly", "no"]);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| BenchError::StartRedis {
            program: args.redis_server.clone(),
            source,
        })?;
    let guard = Guard {
        name: name.to_string(),
        child,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(guard);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(BenchError::RedisNotListening {
        name: name.to_string(),
        addr,
    })
}
