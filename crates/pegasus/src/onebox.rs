//! `pegasus onebox`: a whole cluster on 127.0.0.1 — metas and replica servers as separate
//! processes of this binary — with table `temp` created, in the foreground. Ctrl-C or
//! SIGTERM stops every instance.
//!
//! State lives in the onebox directory: `pegasus.toml` (the shared configuration),
//! `onebox.json` (each instance's command line), `<instance>.pid` and `<instance>.log`, and
//! each instance's data directory. `pegasus onebox kill <instance>` and `pegasus onebox
//! restart <instance>` act on one instance of a running onebox, so tests can crash and
//! restart nodes.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use pegasus_client::{Client, ClientConfig};
use pegasus_proto::meta::{CreateAppOptions, CreateAppRequest};
use pegasus_proto::{ErrorCode, MetaRequest, MetaResponse};
use serde::{Deserialize, Serialize};

/// `pegasus onebox` arguments.
#[derive(Debug, Args)]
pub struct OneboxArgs {
    /// Act on one instance of a running onebox instead of starting one.
    #[command(subcommand)]
    pub action: Option<OneboxAction>,
    /// Where the onebox keeps configuration, logs and data.
    #[arg(long, default_value = "./onebox", global = true)]
    pub dir: PathBuf,
    /// Meta servers.
    #[arg(long, default_value_t = 3)]
    pub metas: u16,
    /// Replica servers.
    #[arg(long, default_value_t = 3)]
    pub replicas: u16,
    /// First meta port (Pegasus's onebox: 34601, 34602, ...).
    #[arg(long, default_value_t = 34601)]
    pub meta_port: u16,
    /// First replica port (Pegasus's onebox: 34801, 34802, ...).
    #[arg(long, default_value_t = 34801)]
    pub replica_port: u16,
    /// Partitions of table `temp`.
    #[arg(long, default_value_t = 8)]
    pub partitions: i32,
    /// Remove the onebox directory first (all data is lost).
    #[arg(long)]
    pub clean: bool,
    /// Also start a Redis proxy for table `temp` on this port.
    #[arg(long)]
    pub redis_port: Option<u16>,
    /// Also stop when standard input reaches end of file (a parent test process that holds
    /// the pipe has exited).
    #[arg(long)]
    pub stop_on_stdin_eof: bool,
    /// TOML merged into the generated configuration, key by key (e.g. `[replica_server]`
    /// tuning, or `[pegasus.server]` RocksDB options).
    #[arg(long)]
    pub extra_config: Option<PathBuf>,
    /// Give every instance its own loopback address (metas on 127.0.1.N, replica servers on
    /// 127.0.2.N) and bind its outgoing connections to it, so packet filters can cut the
    /// links between two nodes (`pegasus chaos` partitions).
    #[arg(long)]
    pub ip_per_instance: bool,
}

/// One-instance actions.
#[derive(Debug, Subcommand)]
pub enum OneboxAction {
    /// SIGKILL one instance (`meta1`, `replica2`, ...), as `kill -9`.
    Kill {
        /// Instance name.
        instance: String,
    },
    /// Start one instance again (killing it first if it runs).
    Restart {
        /// Instance name.
        instance: String,
        /// Extra environment of the new process, `KEY=VALUE` (repeatable; e.g. libfaketime's
        /// `LD_PRELOAD` and `FAKETIME` for a clock-skew test).
        #[arg(long = "env")]
        env: Vec<String>,
    },
    /// SIGSTOP one instance (it stays in memory, frozen, until `resume`).
    Pause {
        /// Instance name.
        instance: String,
    },
    /// SIGCONT one instance.
    Resume {
        /// Instance name.
        instance: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Instance {
    name: String,
    args: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Layout {
    metas: Vec<SocketAddr>,
    replicas: Vec<SocketAddr>,
    instances: Vec<Instance>,
}

fn pid_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.pid"))
}

fn read_pid(dir: &Path, name: &str) -> Option<u32> {
    std::fs::read_to_string(pid_file(dir, name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Starts one instance as a detached process (its own process group, output to its log).
fn spawn(dir: &Path, inst: &Instance, env: &[(String, String)]) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("cannot find the pegasus binary")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{}.log", inst.name)))?;
    let child = Command::new(exe)
        .args(&inst.args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", inst.name))?;
    let pid = child.id();
    std::fs::write(pid_file(dir, &inst.name), pid.to_string())?;
    // Dropping the handle neither waits for nor kills the child; it is stopped by pid.
    drop(child);
    Ok(pid)
}

fn kill(dir: &Path, name: &str) {
    if let Some(pid) = read_pid(dir, name) {
        signal(pid, "KILL");
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(pid_file(dir, name));
    }
}

fn stop_all(dir: &Path, layout: &Layout) {
    let pids: Vec<u32> = layout
        .instances
        .iter()
        .filter_map(|i| read_pid(dir, &i.name))
        .collect();
    for pid in &pids {
        signal(*pid, "TERM");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in pids.iter().filter(|p| alive(**p)) {
        signal(*pid, "KILL");
    }
    for i in &layout.instances {
        let _ = std::fs::remove_file(pid_file(dir, &i.name));
    }
}

fn read_layout(dir: &Path) -> anyhow::Result<Layout> {
    let text = std::fs::read_to_string(dir.join("onebox.json"))
        .with_context(|| format!("no onebox in {}", dir.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Runs `pegasus onebox`.
pub fn run(args: OneboxArgs) -> anyhow::Result<ExitCode> {
    if let Some(action) = &args.action {
        let layout = read_layout(&args.dir)?;
        let name = match action {
            OneboxAction::Kill { instance }
            | OneboxAction::Restart { instance, .. }
            | OneboxAction::Pause { instance }
            | OneboxAction::Resume { instance } => instance,
        };
        let Some(inst) = layout.instances.iter().find(|i| &i.name == name) else {
            bail!(
                "no instance {name:?}; instances: {:?}",
                layout.instances.iter().map(|i| &i.name).collect::<Vec<_>>()
            );
        };
        match action {
            OneboxAction::Kill { .. } => {
                kill(&args.dir, name);
                println!("{name} killed");
            }
            OneboxAction::Restart { env, .. } => {
                let env = env
                    .iter()
                    .map(|kv| match kv.split_once('=') {
                        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                        _ => Err(anyhow::anyhow!("--env wants KEY=VALUE, not {kv:?}")),
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                kill(&args.dir, name);
                let pid = spawn(&args.dir, inst, &env)?;
                println!("{name} restarted (pid {pid})");
            }
            OneboxAction::Pause { .. } | OneboxAction::Resume { .. } => {
                let Some(pid) = read_pid(&args.dir, name).filter(|p| alive(*p)) else {
                    bail!("{name} is not running");
                };
                let stop = matches!(action, OneboxAction::Pause { .. });
                signal(pid, if stop { "STOP" } else { "CONT" });
                println!("{name} {}", if stop { "paused" } else { "resumed" });
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.metas == 0 || args.replicas == 0 {
        bail!("a onebox needs at least one meta and one replica server");
    }
    if args.clean && args.dir.exists() {
        if let Ok(old) = read_layout(&args.dir) {
            stop_all(&args.dir, &old);
        }
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("cannot remove {}", args.dir.display()))?;
    }
    std::fs::create_dir_all(&args.dir)?;
    let dir = args.dir.canonicalize()?;
    if let Ok(old) = read_layout(&dir) {
        // A previous onebox that was not stopped cleanly.
        stop_all(&dir, &old);
    }
    let ip_per_instance = args.ip_per_instance;
    let port = |base: u16, i: u16, subnet: u8| -> anyhow::Result<SocketAddr> {
        let p = base.checked_add(i).context("port out of range")?;
        let ip = if ip_per_instance {
            let host = u8::try_from(i + 1)
                .ok()
                .filter(|h| *h < 255)
                .context("at most 254 instances of a role with --ip-per-instance")?;
            [127, 0, subnet, host]
        } else {
            [127, 0, 0, 1]
        };
        Ok(SocketAddr::from((ip, p)))
    };
    let metas: Vec<SocketAddr> = (0..args.metas)
        .map(|i| port(args.meta_port, i, 1))
        .collect::<anyhow::Result<_>>()?;
    let replicas: Vec<SocketAddr> = (0..args.replicas)
        .map(|i| port(args.replica_port, i, 2))
        .collect::<anyhow::Result<_>>()?;
    let meta_list = metas
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let config = dir.join("pegasus.toml");
    let mut table: toml::Table = toml::from_str(&format!(
        "[meta_server]\nserver_list = \"{meta_list}\"\nmin_live_node_count_for_unfreeze = 1\n\
         [pegasus.server]\nrocksdb_block_cache_capacity = 67108864\n\
         rocksdb_write_buffer_size = 16777216\n"
    ))?;
    if let Some(extra) = &args.extra_config {
        let text = std::fs::read_to_string(extra)
            .with_context(|| format!("cannot read {}", extra.display()))?;
        let extra_table: toml::Table =
            toml::from_str(&text).with_context(|| format!("in {}", extra.display()))?;
        merge_toml(&mut table, extra_table);
    }
    std::fs::write(
        &config,
        format!(
            "# Written by `pegasus onebox`.\n{}",
            toml::to_string(&table)?
        ),
    )?;
    let cfg = config.to_string_lossy().into_owned();
    let server = |role: &str, i: usize, addr: &SocketAddr| {
        let name = format!("{role}{}", i + 1);
        let mut args = vec![
            role.into(),
            "--config".into(),
            cfg.clone(),
            "--listen".into(),
            addr.to_string(),
            "--data-dir".into(),
            dir.join(&name).to_string_lossy().into_owned(),
        ];
        if ip_per_instance {
            args.push("--bind-outgoing".into());
        }
        Instance { args, name }
    };
    let mut instances: Vec<Instance> = metas
        .iter()
        .enumerate()
        .map(|(i, a)| server("meta", i, a))
        .chain(
            replicas
                .iter()
                .enumerate()
                .map(|(i, a)| server("replica", i, a)),
        )
        .collect();
    if let Some(port) = args.redis_port {
        instances.push(Instance {
            name: "redis-proxy".into(),
            args: vec![
                "redis-proxy".into(),
                "--listen".into(),
                SocketAddr::from(([127, 0, 0, 1], port)).to_string(),
                "--meta".into(),
                meta_list.clone(),
                "--table".into(),
                "temp".into(),
            ],
        });
    }
    let layout = Layout {
        metas: metas.clone(),
        replicas: replicas.clone(),
        instances,
    };
    std::fs::write(dir.join("onebox.json"), serde_json::to_vec_pretty(&layout)?)?;
    for inst in &layout.instances {
        spawn(&dir, inst, &[])?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let replica_count = i32::from(args.replicas.min(3));
    let (eof_tx, eof_rx) = tokio::sync::watch::channel(false);
    if args.stop_on_stdin_eof {
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            let _ = eof_tx.send(true);
        });
    }
    let stop = || {
        let mut eof = eof_rx.clone();
        async move {
            tokio::select! {
                _ = crate::shutdown_signal() => {}
                _ = eof.wait_for(|e| *e) => {}
            }
        }
    };
    let ready = runtime.block_on(async {
        tokio::select! {
            r = bring_up(&metas, args.partitions, replica_count, args.redis_port, || check_instances(&dir, &layout)) => r.map(Some),
            _ = stop() => Ok(None),
        }
    });
    match ready {
        Ok(Some(())) => {
            let list = |v: &[SocketAddr]| {
                v.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let redis = args
                .redis_port
                .map(|p| format!(" redis=127.0.0.1:{p}"))
                .unwrap_or_default();
            println!(
                "onebox ready: meta={} replica={}{redis} table=temp partitions={} dir={}",
                list(&metas),
                list(&replicas),
                args.partitions,
                dir.display()
            );
            let _ = std::io::stdout().flush();
            runtime.block_on(stop());
            eprintln!("onebox: stopping");
            stop_all(&dir, &layout);
            Ok(ExitCode::SUCCESS)
        }
        Ok(None) => {
            stop_all(&dir, &layout);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            stop_all(&dir, &layout);
            Err(e.context(format!("onebox did not come up; logs in {}", dir.display())))
        }
    }
}

/// Creates `temp` (if missing) and waits until every partition has a primary and its
/// secondaries.
/// Fails if an instance has exited (e.g. its port was taken), quoting its log's last line.
fn check_instances(dir: &Path, layout: &Layout) -> anyhow::Result<()> {
    for inst in &layout.instances {
        if let Some(pid) = read_pid(dir, &inst.name) {
            if !alive(pid) {
                let log = std::fs::read_to_string(dir.join(format!("{}.log", inst.name)))
                    .unwrap_or_default();
                let last = log.lines().last().unwrap_or("(empty log)").to_string();
                bail!("{} exited: {last}", inst.name);
            }
        }
    }
    Ok(())
}

async fn bring_up(
    metas: &[SocketAddr],
    partitions: i32,
    replicas: i32,
    redis_port: Option<u16>,
    check: impl Fn() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut cc = ClientConfig::new(metas.iter().copied());
    cc.meta_query_timeout = Duration::from_secs(5);
    let client = Client::new(cc);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        check()?;
        let resp = client
            .meta(MetaRequest::CreateApp(CreateAppRequest {
                app_name: "temp".into(),
                options: CreateAppOptions {
                    partition_count: partitions,
                    replica_count: replicas,
                    success_if_exist: true,
                    app_type: "pegasus".into(),
                    is_stateful: true,
                    envs: BTreeMap::new(),
                    ..CreateAppOptions::default()
                },
            }))
            .await;
        match resp {
            Ok(MetaResponse::CreateApp(r)) if r.err == ErrorCode::Ok => break,
            // Replica servers not registered yet (too few alive, or freezed): wait.
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(300)).await,
            other => bail!("cannot create table temp: {other:?}"),
        }
    }
    loop {
        check()?;
        if let Ok(r) = client.query_config("temp").await {
            let healthy = r.err == ErrorCode::Ok
                && r.partitions.len() == usize::try_from(partitions).unwrap_or(0)
                && r.partitions.iter().all(|p| {
                    p.primary.is_valid()
                        && p.secondaries.len() + 1 == usize::try_from(replicas).unwrap_or(0)
                });
            if healthy {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!("table temp not healthy within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Some(port) = redis_port {
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("redis proxy not listening on {port} within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Merges `extra` into `base`: tables merge key by key, anything else in `extra` wins.
fn merge_toml(base: &mut toml::Table, extra: toml::Table) {
    for (key, value) in extra {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(e)) => merge_toml(b, e),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn extra_config_merges_into_the_generated_sections() {
        let mut base: toml::Table =
            toml::from_str("[meta_server]\nserver_list = \"a\"\n[pegasus.server]\nx = 1\ny = 2\n")
                .unwrap();
        let extra: toml::Table =
            toml::from_str("[pegasus.server]\ny = 3\n[metrics]\nenabled = false\n").unwrap();
        merge_toml(&mut base, extra);
        let server = &base["pegasus"]["server"];
        assert_eq!(server["x"].as_integer(), Some(1));
        assert_eq!(server["y"].as_integer(), Some(3));
        assert_eq!(base["metrics"]["enabled"].as_bool(), Some(false));
        assert_eq!(base["meta_server"]["server_list"].as_str(), Some("a"));
    }
}
