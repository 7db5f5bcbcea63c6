//! `pegasus`: the one binary of a Pegasus-compatible key-value store.
//!
//! Each role is a subcommand: `meta`, `replica`, `onebox` (a whole local cluster), `shell`,
//! `bench`, `redis-proxy`, `sim` (deterministic simulation) and `chaos` (fault injection).
//! Roles that are not built yet say so and exit with status 2.

mod bench;
mod config;
mod onebox;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Parser)]
#[command(
    name = "pegasus",
    version,
    about = "A Pegasus-compatible distributed key-value store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (`info`, `debug`, `pegasus_replica=debug,info`, ...); `RUST_LOG` also works.
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Append logs to this file instead of standard error.
    #[arg(long, global = true)]
    log_file: Option<PathBuf>,
}

/// `pegasus chaos` arguments.
#[derive(Debug, Args)]
struct ChaosArgs {
    /// Faults to draw from: none, kill, kill-primary, kill-meta, kill-all, pause-primary,
    /// partition-primary-meta, partition-secondary, partition-metas, isolate-node,
    /// disk-full, torn-tail, corrupt-log, fail-point, net-drop, net-delay, net-flap,
    /// conn-flood.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kill,kill-primary,pause-primary"
    )]
    nemesis: Vec<pegasus_chaos::nemesis::Nemesis>,
    /// Seconds of faults (warm-up, recovery and checking come on top).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Seed of the schedule and the workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run directory (replaced): onebox data and logs, report.jsonl, report.md.
    #[arg(long, default_value = "./chaos-run")]
    dir: PathBuf,
    /// Replica servers.
    #[arg(long, default_value_t = 3)]
    replicas: u16,
    /// Partitions.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Registers of the linearizability workload.
    #[arg(long, default_value_t = 40)]
    keys: u64,
    /// Register clients (each with its own routing cache).
    #[arg(long, default_value_t = 6)]
    clients: u64,
    /// Kill-test writers.
    #[arg(long, default_value_t = 2)]
    writers: u64,
    /// First port (metas; replicas from +10). Keep it below Linux's ephemeral range
    /// (32768-60999): outgoing connections and their TIME_WAIT take ports there, and a
    /// connect to a port in that range nobody listens on can even connect to itself.
    #[arg(long, default_value_t = 27601)]
    base_port: u16,
    /// Plant a bug the run must catch: `ignore-lease` (primaries ignore their lease).
    #[arg(long)]
    planted_bug: Option<String>,
    /// Checker search steps per key before it answers "unknown".
    #[arg(long, default_value_t = 5_000_000)]
    check_budget: u64,
    /// Run an instance under libfaketime for the whole run, `INSTANCE=FAKETIME`
    /// (e.g. `replica1=+0 x0.8`, `meta2=+1d`); repeatable.
    #[arg(long)]
    skew: Vec<String>,
    /// Keep the onebox's data and logs even when the run passes.
    #[arg(long)]
    keep: bool,
    /// Empty partitions created beside `temp` before the faults (tables of 32): each
    /// replica server hosts that many more replicas, and they must be healthy after the
    /// faults too.
    #[arg(long, default_value_t = 0)]
    idle_partitions: u32,
    /// Replica servers with a node log (`node_log = true`); `torn-tail` then also tears
    /// the node logs' last batches.
    #[arg(long)]
    node_log: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a meta server.
    Meta(ServerArgs),
    /// Run a replica server.
    Replica(ServerArgs),
    /// Start a whole local cluster (3 metas, 3 replica servers) in the foreground.
    Onebox(onebox::OneboxArgs),
    /// The admin shell (interactive, or `-e` commands for scripts).
    Shell(ShellArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        which: bench::BenchCommand,
    },
    /// A Redis-protocol proxy in front of one table.
    RedisProxy(RedisProxyArgs),
    /// Deterministic simulation of a whole cluster (or one replica group) under faults.
    Sim(SimArgs),
    /// Fault injection against a real cluster, with every operation checked.
    Chaos(ChaosArgs),
    /// Parse and validate a configuration file, then print the effective configuration.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
struct RedisProxyArgs {
    /// Address to serve RESP on.
    #[arg(long, default_value = "127.0.0.1:6379")]
    listen: std::net::SocketAddr,
    /// Meta servers, `host:port,host:port,...`.
    #[arg(
        long,
        default_value = "127.0.0.1:34601,127.0.0.1:34602,127.0.0.1:34603"
    )]
    meta: String,
    /// The table Redis keys live in.
    #[arg(long, default_value = "temp")]
    table: String,
    /// Redis's `maxclients`: client connections held at once; over it a client gets
    /// `max number of clients reached` and is closed. Lowered to fit the descriptor limit.
    #[arg(long, default_value_t = pegasus_redis::proxy::DEFAULT_MAXCLIENTS)]
    maxclients: u32,
}

#[derive(Debug, Args)]
struct ShellArgs {
    /// Meta servers, `host:port,host:port,...`.
    #[arg(
        long,
        default_value = "127.0.0.1:34601,127.0.0.1:34602,127.0.0.1:34603"
    )]
    meta: String,
    /// Run these commands in order (one session: `-e "use temp" -e "get a b"`) and exit;
    /// the exit status is non-zero if any failed.
    #[arg(short = 'e', long = "exec")]
    exec: Vec<String>,
}

#[derive(Debug, Args)]
struct SimArgs {
    /// A range of seeds, `A..B` (B excluded).
    #[arg(long)]
    seeds: Option<String>,
    /// One seed (with --trace, prints its full event trace).
    #[arg(long)]
    seed: Option<u64>,
    /// Print the event trace of a failing (or the single) seed.
    #[arg(long)]
    trace: bool,
    /// Virtual milliseconds of faults per seed.
    #[arg(long, default_value_t = 20_000)]
    fault_ms: u64,
    /// Virtual milliseconds of healing before the final checks.
    #[arg(long, default_value_t = 15_000)]
    heal_ms: u64,
    /// Plant a bug the checks must catch: `reads-without-lease`, `uptime-as-wall-clock`,
    /// `node-log-forgets-unsynced` (with `--node-log`).
    #[arg(long)]
    plant: Option<String>,
    /// One replica group alone (four nodes, one partition, three keys, three clients) instead
    /// of the whole cluster.
    #[arg(long)]
    one_partition: bool,
    /// Replica servers (default: 5, or 4 with --one-partition).
    #[arg(long)]
    nodes: Option<u64>,
    /// The tables by partition count, comma-separated powers of two (default: 4,8).
    #[arg(long, value_delimiter = ',')]
    tables: Option<Vec<u32>>,
    /// Keys the clients use, spread over the tables (default: 36, or 3).
    #[arg(long)]
    keys: Option<u64>,
    /// Concurrent clients (default: 12, or 3).
    #[arg(long)]
    clients: Option<u64>,
    /// Seeds run at once, one thread each (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Some crashes are power losses of every node at once (unsynced bytes lost or torn).
    #[arg(long)]
    power_loss: bool,
    /// The mutation log does not fsync (Pegasus's `plog_force_flush = false`), to measure
    /// what a power loss then loses.
    #[arg(long)]
    async_log: bool,
    /// Each node has a node log (`node_log = true`): replicas write their own logs without
    /// syncing, and one sync per node acknowledges every partition's appends.
    #[arg(long)]
    node_log: bool,
}

#[derive(Debug, Args)]
struct ServerArgs {
    /// Configuration file (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The address to serve on (a meta server's must be in `server_list`).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Overrides the data directory of the configuration.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides `[meta_server] server_list` (`host:port,host:port,...`).
    #[arg(long)]
    meta: Option<String>,
    /// Bind outgoing connections to the `--listen` address, so peers and packet filters
    /// tell this node apart from others on the same host (`onebox --ip-per-instance`).
    #[arg(long)]
    bind_outgoing: bool,
}

fn chaos(args: ChaosArgs) -> anyhow::Result<ExitCode> {
    let planted = match args.planted_bug.as_deref() {
        None => false,
        Some("ignore-lease") => true,
        Some(other) => anyhow::bail!("unknown planted bug {other:?} (ignore-lease)"),
    };
    let opts = pegasus_chaos::ChaosOptions {
        exe: std::env::current_exe()?,
        dir: args.dir,
        nemeses: args.nemesis,
        duration: std::time::Duration::from_secs(args.duration),
        seed: args.seed,
        replicas: args.replicas,
        partitions: args.partitions,
        keys: args.keys,
        clients: args.clients,
        writers: args.writers,
        base_port: args.base_port,
        planted_ignore_lease: planted,
        check_budget: args.check_budget,
        skews: args
            .skew
            .iter()
            .map(|s| {
                s.split_once('=')
                    .map(|(i, f)| (i.to_string(), f.to_string()))
                    .ok_or_else(|| anyhow::anyhow!("--skew wants INSTANCE=FAKETIME, not {s:?}"))
            })
            .collect::<anyhow::Result<_>>()?,
        keep: args.keep,
        idle_partitions: args.idle_partitions,
        node_log: args.node_log,
    };
    let report = pegasus_chaos::run(&opts)?;
    print!("{}", report.markdown());
    println!("report: {}", opts.dir.join("report.md").display());
    println!("{}", report.summary_line());
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn sim(args: SimArgs) -> anyhow::Result<ExitCode> {
    use pegasus_sim::{run_seed, PlantedBug, SimOptions};
    use std::sync::atomic::{AtomicU64, Ordering};
    let planted = match args.plant.as_deref() {
        None => None,
        Some("reads-without-lease") => Some(PlantedBug::ReadsWithoutLease),
        Some("uptime-as-wall-clock") => Some(PlantedBug::UptimeAsWallClock),
        Some("node-log-forgets-unsynced") => Some(PlantedBug::NodeLogForgetsUnsynced),
        Some(other) => anyhow::bail!("unknown planted bug {other:?}"),
    };
    let (from, to) = match (&args.seeds, args.seed) {
        (Some(range), _) => {
            let (a, b) = range
                .split_once("..")
                .ok_or_else(|| anyhow::anyhow!("--seeds takes A..B"))?;
            (a.parse::<u64>()?, b.parse::<u64>()?)
        }
        (None, Some(s)) => (s, s + 1),
        (None, None) => (1, 101),
    };
    let base = if args.one_partition {
        SimOptions::one_partition()
    } else {
        SimOptions::default()
    };
    let tables = args.tables.clone().unwrap_or(base.tables.clone());
    if let Some(bad) = tables.iter().find(|c| !c.is_power_of_two()) {
        anyhow::bail!("--tables: a partition count must be a power of two, not {bad}");
    }
    let template = SimOptions {
        fault_ms: args.fault_ms,
        heal_ms: args.heal_ms,
        planted,
        trace: args.trace,
        nodes: args.nodes.unwrap_or(base.nodes),
        keys: args.keys.unwrap_or(base.keys),
        clients: args.clients.unwrap_or(base.clients),
        tables,
        power_loss: args.power_loss,
        async_log: args.async_log,
        node_log: args.node_log,
        ..base
    };
    // How to replay a seed: the same flags with --seed S --trace.
    let mut flags = String::new();
    if args.one_partition {
        flags.push_str(" --one-partition");
    }
    if args.power_loss {
        flags.push_str(" --power-loss");
    }
    if args.async_log {
        flags.push_str(" --async-log");
    }
    if args.node_log {
        flags.push_str(" --node-log");
    }
    if let Some(p) = &args.plant {
        flags.push_str(&format!(" --plant {p}"));
    }
    let total = to.saturating_sub(from);
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("seeds [{bar:40}] {pos}/{len} {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let next = AtomicU64::new(from);
    let failures = AtomicU64::new(0);
    let (ops, ok, unknown) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 64);
    let (partitions, max_per_node) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= to {
                    return;
                }
                let r = run_seed(SimOptions {
                    seed,
                    ..template.clone()
                });
                ops.fetch_add(r.ops, Ordering::Relaxed);
                ok.fetch_add(r.ok, Ordering::Relaxed);
                unknown.fetch_add(r.unknown, Ordering::Relaxed);
                partitions.store(r.partitions, Ordering::Relaxed);
                max_per_node.fetch_max(r.max_replicas_per_node, Ordering::Relaxed);
                if !r.failures.is_empty() {
                    let n = failures.fetch_add(1, Ordering::Relaxed) + 1;
                    bar.suspend(|| {
                        println!(
                            "seed {seed} FAILED (replay: pegasus sim{flags} --seed {seed} --trace)"
                        );
                        for f in &r.failures {
                            println!("  {f}");
                        }
                        if args.trace {
                            for line in &r.trace {
                                println!("{line}");
                            }
                        }
                    });
                    bar.set_message(format!("failures={n}"));
                } else if args.trace && total == 1 {
                    for line in &r.trace {
                        println!("{line}");
                    }
                }
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    let failures = failures.into_inner();
    println!(
        "ops={} acked={} unknown={} time={:.1}s jobs={jobs}",
        ops.into_inner(),
        ok.into_inner(),
        unknown.into_inner(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "nodes={} partitions={} max_replicas_per_node={}",
        template.nodes,
        partitions.into_inner(),
        max_per_node.into_inner()
    );
    println!("seeds={total} failures={failures}");
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Meta,
    Replica,
}

fn load_config(args: &ServerArgs, role: Role) -> anyhow::Result<config::Config> {
    let mut config = match &args.config {
        Some(path) => config::Config::load(path)?,
        None => config::Config::default(),
    };
    if let Some(list) = &args.meta {
        config.meta_server.server_list = list.clone();
    }
    if let Some(dir) = &args.data_dir {
        match role {
            Role::Meta => config.meta_server.data_dir = dir.clone(),
            Role::Replica => config.replica_server.data_dir = dir.clone(),
        }
    }
    config.validate()?;
    Ok(config)
}

/// Waits for Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Installs the process-wide Prometheus recorder and describes the admin endpoints.
fn admin(
    role: &'static str,
    config: &config::Config,
) -> anyhow::Result<pegasus_rpc::http::CommonEndpoints> {
    let metrics = if config.metrics.enabled {
        Some(install_metrics_recorder()?)
    } else {
        None
    };
    Ok(pegasus_rpc::http::CommonEndpoints {
        role,
        version: env!("CARGO_PKG_VERSION"),
        config_json: serde_json::to_string(config)?,
        metrics,
    })
}

/// Installs the process-wide Prometheus recorder; returns its renderer.
pub(crate) fn install_metrics_recorder() -> anyhow::Result<pegasus_rpc::http::MetricsRender> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let seconds = [
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        0.5, 1.0, 2.5, 10.0,
    ];
    let counts = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)?
        .set_buckets_for_metric(Matcher::Suffix("_mutations".into()), &counts)?
        .install_recorder()?;
    let upkeep = handle.clone();
    // Histograms need periodic upkeep when nothing scrapes for a long time.
    std::thread::spawn(move || loop {
        std::thread::sleep(std::time::Duration::from_secs(5));
        upkeep.run_upkeep();
    });
    Ok(std::sync::Arc::new(move || handle.render()))
}

fn run_meta(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args, Role::Meta)?;
    let servers = config
        .meta_server
        .servers()
        .map_err(|e| anyhow::anyhow!(e))?;
    let listen = match (args.listen, servers.as_slice()) {
        (Some(l), _) => l,
        (None, [only]) => *only,
        (None, _) => anyhow::bail!("--listen is required when server_list names several metas"),
    };
    if args.bind_outgoing {
        pegasus_rpc::bind_outgoing_to(listen.ip());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = pegasus_meta::server::MetaServer::start(pegasus_meta::server::MetaOptions {
            config: config.meta_server.clone(),
            fd: config.replication,
            listen,
            admin: Some(admin("meta", &config)?),
            network: config.network.clone(),
        })
        .await?;
        println!("meta server listening on {listen}");
        shutdown_signal().await;
        tracing::info!("meta server {listen} stopping");
        server.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

fn run_replica(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args, Role::Replica)?;
    let metas = config
        .meta_server
        .servers()
        .map_err(|e| anyhow::anyhow!(e))?;
    let listen = args
        .listen
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 34801)));
    if args.bind_outgoing {
        pegasus_rpc::bind_outgoing_to(listen.ip());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = pegasus_replica::server::ReplicaServer::start(
            pegasus_replica::server::ReplicaServerOptions {
                config: config.replica_server.clone(),
                storage: config.pegasus.server.clone(),
                fd: config.replication,
                metas,
                listen,
                admin: Some(admin("replica", &config)?),
                network: config.network.clone(),
            },
        )
        .await?;
        println!("replica server listening on {listen}");
        shutdown_signal().await;
        tracing::info!("replica server {listen} stopping");
        server.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

fn parse_metas(list: &str) -> anyhow::Result<Vec<std::net::SocketAddr>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|e| anyhow::anyhow!("--meta {s:?}: {e}")))
        .collect()
}

fn run_redis_proxy(args: RedisProxyArgs) -> anyhow::Result<ExitCode> {
    let metas = parse_metas(&args.meta)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = pegasus_client::Client::new(pegasus_client::ClientConfig::new(metas));
        // The table must exist; keep trying while the cluster comes up.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let table = loop {
            match client.open_table(&args.table).await {
                Ok(t) => break t,
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::info!("waiting for table {}: {e}", args.table);
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(e) => anyhow::bail!("cannot open table {}: {e}", args.table),
            }
        };
        let listener = pegasus_rpc::listen(args.listen).await?;
        println!(
            "redis proxy listening on {} for table {}",
            args.listen, args.table
        );
        let proxy =
            std::sync::Arc::new(pegasus_redis::Proxy::new(table).with_maxclients(args.maxclients));
        tokio::select! {
            () = proxy.serve(listener) => {}
            () = shutdown_signal() => {}
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn run_shell(args: ShellArgs) -> anyhow::Result<ExitCode> {
    let metas = parse_metas(&args.meta)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut shell = pegasus_shell::Shell::new(pegasus_client::Client::new(
        pegasus_client::ClientConfig::new(metas),
    ));
    if !args.exec.is_empty() {
        let mut failed = false;
        for cmd in &args.exec {
            match runtime.block_on(shell.execute(cmd)) {
                Ok(out) => print!("{out}"),
                Err(e) => {
                    eprintln!("ERROR: {cmd}: {e}");
                    failed = true;
                }
            }
        }
        return Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let mut editor = rustyline::DefaultEditor::new()?;
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pegasus_shell_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!("Pegasus shell; `help` lists the commands, `exit` leaves.");
    loop {
        let prompt = match shell.current_table() {
            Some(t) => format!("{t} >>> "),
            None => ">>> ".to_string(),
        };
        let line = match editor.readline(&prompt) {
            Ok(l) => l,
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(trimmed);
        if matches!(trimmed, "exit" | "quit") {
            break;
        }
        match runtime.block_on(shell.execute(trimmed)) {
            Ok(out) => print!("{out}"),
            Err(e) => eprintln!("ERROR: {e}"),
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(ExitCode::SUCCESS)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Meta(args) => run_meta(args),
        Command::Replica(args) => run_replica(args),
        Command::Onebox(args) => onebox::run(args),
        Command::Shell(args) => run_shell(args),
        Command::RedisProxy(args) => run_redis_proxy(args),
        Command::Sim(args) => sim(args),
        Command::Chaos(args) => chaos(args),
        Command::Bench { which } => bench::run(which),
        Command::CheckConfig { file } => {
            let config = config::Config::load(&file)?;
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init_logs(cli: &Cli) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let filter = match &cli.log_level {
        Some(level) => tracing_subscriber::EnvFilter::try_new(level)
            .map_err(|e| anyhow::anyhow!("--log-level {level:?}: {e}"))?,
        None => tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            // The simulator runs the replica server's own driver for thousands of seeds:
            // its per-replica logs would drown the report (`--trace` shows what happened).
            let default = if matches!(cli.command, Command::Sim(_)) {
                "error,pegasus_replica=off"
            } else {
                "info,openraft=warn"
            };
            tracing_subscriber::EnvFilter::new(default)
        }),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match &cli.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("--log-file {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init(),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logs(&cli) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
