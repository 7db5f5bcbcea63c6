//! `pegasus bench`: storage and log micro-benchmarks, workload runs against Pegasus or
//! Redis (`run`), and the side-by-side suite (`suite`) that writes BENCHMARKS.md.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pegasus_bench::keys::Distribution;
use pegasus_bench::plot::{sweep_png, Series};
use pegasus_bench::report::{fmt_us, markdown_table, replace_section, text};
use pegasus_bench::{
    Mode, OpKind, RunOptions, RunReport, Target, TargetSpec, WorkloadName, WorkloadSpec,
};
use pegasus_storage::bench::{run_storage_bench, StorageBenchOptions};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Partition-store puts and gets against raw RocksDB, same keys and values, same run.
    Storage {
        /// Records to write and read.
        #[arg(long, default_value_t = 200_000)]
        records: u64,
        /// Value size in bytes.
        #[arg(long, default_value_t = 100)]
        value_size: usize,
        /// Directory for the databases (a fresh temporary one by default).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Mutation-log appends/s with fsync and group commit at 1, 8 and 64 writers, next to
    /// raw fdatasync calls/s on the same disk.
    Log {
        /// Seconds per configuration.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// Value size in bytes of each logged put.
        #[arg(long, default_value_t = 100)]
        value_size: usize,
        /// Directory on the disk to measure (default: ./bench-log, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// One workload (or a list, in order) against Pegasus or Redis: YCSB `load`, `a`..`f`,
    /// or Pegasus's `fillrandom_pegasus`, `readrandom_pegasus`, `deleterandom_pegasus`,
    /// `multi_set_pegasus`, `multi_get_pegasus`.
    Run(RunArgs),
    /// Onebox (RF=3, durable writes) and redis-server (no persistence, then appendfsync
    /// always) side by side: load + A + B + C + F, a concurrency sweep, ratios against the
    /// targets, a BENCHMARKS.md section and a PNG plot.
    Suite(SuiteArgs),
    /// What recording one request's metrics costs (the exact code every request runs),
    /// without a recorder and with the Prometheus recorder the servers install.
    Metrics {
        /// Requests recorded per measurement.
        #[arg(long, default_value_t = 2_000_000)]
        iterations: u64,
    },
}

/// Workload parameters shared by `run` and `suite`.
#[derive(Debug, Clone, Args)]
pub struct WorkloadArgs {
    /// Records loaded (the key space of reads and updates).
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Value size in bytes (Pegasus's bench default).
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Records per hash key (YCSB-E scans within one hash key).
    #[arg(long, default_value_t = 1)]
    sortkeys_per_hashkey: u64,
    /// Sort keys per multi_set / multi_get.
    #[arg(long, default_value_t = 10)]
    batch: u32,
    /// Tokio worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seed of the key choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl WorkloadArgs {
    fn spec(&self, name: WorkloadName, distribution: Option<Distribution>) -> WorkloadSpec {
        let mut spec = WorkloadSpec::new(name, self.records);
        spec.value_size = self.value_size;
        spec.sortkeys_per_hashkey = self.sortkeys_per_hashkey;
        spec.batch = self.batch;
        if let Some(d) = distribution {
            spec.distribution = d;
        }
        spec
    }

    fn runtime(&self) -> anyhow::Result<tokio::runtime::Runtime> {
        Ok(tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads.max(1))
            .enable_all()
            .build()?)
    }
}

/// `pegasus bench run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// `pegasus://META[,META...][/TABLE]` or `redis://HOST:PORT`.
    #[arg(
        long,
        default_value = "pegasus://127.0.0.1:34601,127.0.0.1:34602,127.0.0.1:34603/temp"
    )]
    target: String,
    /// Workloads to run in order, comma-separated (e.g. `load,a,c`).
    #[arg(long, default_value = "c", value_delimiter = ',')]
    workload: Vec<WorkloadName>,
    /// Key distribution (default: the workload's own; YCSB's zipfian 0.99 for A-C, E, F).
    #[arg(long)]
    distribution: Option<Distribution>,
    /// Closed loop: outstanding operations; a list sweeps (e.g. `1,4,16,64`).
    #[arg(long, default_value = "16", value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Open loop: operations per second (latency from the scheduled send time).
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Open loop: most outstanding operations.
    #[arg(long, default_value_t = 1024)]
    max_inflight: usize,
    /// Seconds per run (a load stops earlier, when every record is in).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Stop each run after this many operations.
    #[arg(long)]
    ops: Option<u64>,
    /// Write every report as a JSON array here (`-` for standard output).
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    workload_args: WorkloadArgs,
}

/// `pegasus bench suite` arguments.
#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// Working directory: onebox and Redis data, logs, `suite.json`.
    #[arg(long, default_value = "./bench-suite")]
    dir: PathBuf,
    /// Concurrency of the load + A + B + C + F table.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds per workload in that table.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrency levels of the sweep (YCSB-A and YCSB-C at each).
    #[arg(long, default_value = "1,4,16,64", value_delimiter = ',')]
    sweep: Vec<usize>,
    /// Seconds per sweep point.
    #[arg(long, default_value_t = 5)]
    sweep_seconds: u64,
    /// Partitions of the onebox table.
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// First port used (onebox metas, replicas, then the two redis-servers); below Linux's
    /// ephemeral range (32768-60999), where outgoing connections take ports.
    #[arg(long, default_value_t = 25601)]
    base_port: u16,
    /// The redis-server program.
    #[arg(long, default_value = "redis-server")]
    redis_server: String,
    /// Markdown file whose `bench-suite` section is rewritten (none: print only).
    #[arg(long, default_value = "BENCHMARKS.md")]
    markdown: Option<PathBuf>,
    /// Do not touch the markdown file.
    #[arg(long)]
    no_markdown: bool,
    /// PNG plot of the sweep.
    #[arg(long, default_value = "docs/bench-suite.png")]
    plot: PathBuf,
    #[command(flatten)]
    workload_args: WorkloadArgs,
}

/// Runs a `pegasus bench` subcommand.
pub fn run(which: BenchCommand) -> anyhow::Result<ExitCode> {
    match which {
        BenchCommand::Storage {
            records,
            value_size,
            dir,
        } => bench_storage(records, value_size, dir),
        BenchCommand::Log {
            seconds,
            value_size,
            dir,
        } => bench_log(seconds, value_size, dir),
        BenchCommand::Run(args) => bench_run(args),
        BenchCommand::Suite(args) => bench_suite(args),
        BenchCommand::Metrics { iterations } => bench_metrics(iterations),
    }
}

fn progress(label: &str, total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    let template = if total.is_some() {
        "{msg:>28} [{bar:30}] {pos}/{len} ({per_sec}, {elapsed})"
    } else {
        "{msg:>28} {spinner} {pos} ops ({per_sec}, {elapsed})"
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(label.to_string());
    bar
}

/// One run with a progress bar.
async fn run_one(
    target: &Target,
    label: &str,
    spec: &WorkloadSpec,
    opts: &RunOptions,
) -> anyhow::Result<RunReport> {
    let total = (spec.name == WorkloadName::Load).then_some(spec.records);
    let bar = progress(label, total);
    let report = pegasus_bench::run(target, spec, opts, &bar).await;
    bar.finish_and_clear();
    Ok(report?)
}

fn bench_run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let spec_target: TargetSpec = args.target.parse()?;
    let rt = args.workload_args.runtime()?;
    let reports = rt.block_on(async {
        let target = Target::connect(&spec_target)
            .await
            .with_context(|| format!("connecting to {spec_target}"))?;
        let modes: Vec<Mode> = match args.rate {
            Some(rate) => vec![Mode::Open {
                rate,
                max_inflight: args.max_inflight,
            }],
            None => args
                .concurrency
                .iter()
                .map(|&c| Mode::Closed { concurrency: c })
                .collect(),
        };
        let mut reports = Vec::new();
        for name in &args.workload {
            let spec = args.workload_args.spec(*name, args.distribution);
            // A load is one pass over the records, whatever the sweep.
            let modes = if *name == WorkloadName::Load {
                modes.get(..1).unwrap_or_default()
            } else {
                &modes[..]
            };
            for mode in modes {
                let opts = RunOptions {
                    mode: *mode,
                    duration: Duration::from_secs(if *name == WorkloadName::Load {
                        args.duration.max(3600)
                    } else {
                        args.duration
                    }),
                    max_ops: args.ops,
                    seed: args.workload_args.seed,
                };
                let r =
                    run_one(&target, &format!("{} {name}", target.kind()), &spec, &opts).await?;
                print!("{}", text(&r));
                reports.push(r);
            }
        }
        anyhow::Ok(reports)
    })?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&reports)?;
        if path.as_os_str() == "-" {
            println!("{json}");
        } else {
            std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let failed = reports.iter().any(|r| r.errors > 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A redis-server child process, stopped when dropped.
struct Guard {
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

/// The onebox under test: the same launcher the chaos harness uses (a child process that
/// stops its instances when dropped).
fn start_onebox(args: &SuiteArgs) -> anyhow::Result<pegasus_chaos::cluster::Cluster> {
    Ok(pegasus_chaos::cluster::Cluster::start(
        &pegasus_chaos::cluster::ClusterOptions {
            exe: std::env::current_exe()?,
            dir: args.dir.join("onebox"),
            replicas: 3,
            partitions: args.partitions,
            base_port: args.base_port,
            extra_config: None,
            ip_per_instance: false,
            tmpfs_replica1_mib: None,
        },
    )?)
}

fn start_redis(
    args: &SuiteArgs,
    port: u16,
    name: &str,
    fsync_always: bool,
) -> anyhow::Result<Guard> {
    let dir = args.dir.join(name);
    std::fs::create_dir_all(&dir)?;
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
        .with_context(|| format!("starting {} (install redis-server)", args.redis_server))?;
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
    bail!("{name} did not listen on {addr}")
}

fn shell_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Git revision, date and machine, for the record.
fn provenance(redis_server: &str) -> String {
    let mut sha = shell_line("git", &["rev-parse", "--short", "HEAD"]);
    if !shell_line("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty()
        && sha != "unknown"
    {
        sha.push_str("-dirty");
    }
    let date = shell_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let redis = shell_line(redis_server, &["--version"]);
    format!(
        "git {sha}, {date}; {cpu}, {cores} cores, {mem_gib:.0} GiB, Linux {}; {redis}",
        kernel.trim()
    )
}

/// The suite's labels, in table order.
const SUITE_TARGETS: [&str; 3] = ["pegasus", "redis", "redis-aof"];
const SUITE_WORKLOADS: [WorkloadName; 5] = [
    WorkloadName::Load,
    WorkloadName::A,
    WorkloadName::B,
    WorkloadName::C,
    WorkloadName::F,
];

#[derive(Debug, Default, serde::Serialize)]
struct SuiteResult {
    provenance: String,
    table: Vec<RunReport>,
    sweep: Vec<RunReport>,
}

impl SuiteResult {
    fn find<'a>(
        list: &'a [RunReport],
        target: &str,
        w: WorkloadName,
        c: Option<usize>,
    ) -> Option<&'a RunReport> {
        list.iter().find(|r| {
            r.target == target && r.workload == w.name() && (c.is_none() || r.concurrency() == c)
        })
    }

    fn table_run(&self, target: &str, w: WorkloadName) -> Option<&RunReport> {
        Self::find(&self.table, target, w, None)
    }
}

fn bench_suite(args: SuiteArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)?;
    let prov = provenance(&args.redis_server);
    println!("bench suite: {prov}");
    let onebox = start_onebox(&args)?;
    let metas = onebox.metas.clone();
    let redis = start_redis(&args, args.base_port + 20, "redis", false)?;
    let redis_aof = start_redis(&args, args.base_port + 21, "redis-aof", true)?;
    let targets = [
        TargetSpec::Pegasus {
            metas,
            table: "temp".into(),
        },
        TargetSpec::Redis(SocketAddr::from(([127, 0, 0, 1], args.base_port + 20))),
        TargetSpec::Redis(SocketAddr::from(([127, 0, 0, 1], args.base_port + 21))),
    ];
    let rt = args.workload_args.runtime()?;
    let mut result = SuiteResult {
        provenance: prov,
        ..SuiteResult::default()
    };
    rt.block_on(async {
        for (label, spec_target) in SUITE_TARGETS.iter().zip(&targets) {
            let target = Target::connect(spec_target)
                .await
                .with_context(|| format!("connecting to {spec_target}"))?;
            for w in SUITE_WORKLOADS {
                let spec = args.workload_args.spec(w, None);
                let opts = RunOptions {
                    mode: Mode::Closed {
                        concurrency: args.concurrency,
                    },
                    duration: Duration::from_secs(if w == WorkloadName::Load {
                        3600
                    } else {
                        args.seconds
                    }),
                    max_ops: None,
                    seed: args.workload_args.seed,
                };
                let mut r = run_one(
                    &target,
                    &format!("{label} {w} c={}", args.concurrency),
                    &spec,
                    &opts,
                )
                .await?;
                r.target = (*label).to_string();
                print!("{}", text(&r));
                result.table.push(r);
            }
            for &c in &args.sweep {
                for w in [WorkloadName::A, WorkloadName::C] {
                    let spec = args.workload_args.spec(w, None);
                    let opts = RunOptions {
                        mode: Mode::Closed { concurrency: c },
                        duration: Duration::from_secs(args.sweep_seconds),
                        max_ops: None,
                        seed: args.workload_args.seed,
                    };
                    let mut r =
                        run_one(&target, &format!("{label} {w} c={c}"), &spec, &opts).await?;
                    r.target = (*label).to_string();
                    print!("{}", text(&r));
                    result.sweep.push(r);
                }
            }
        }
        anyhow::Ok(())
    })?;
    drop(rt);
    drop((redis_aof, redis, onebox));

    std::fs::write(
        args.dir.join("suite.json"),
        serde_json::to_string_pretty(&result)?,
    )?;
    let md = suite_markdown(&args, &result);
    println!("\n{md}");
    if let Some(parent) = args.plot.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let series: Vec<Series> = SUITE_TARGETS
        .iter()
        .flat_map(|t| [WorkloadName::A, WorkloadName::C].map(|w| (*t, w)))
        .map(|(t, w)| Series {
            label: format!("{t} YCSB-{}", w.name().to_uppercase()),
            points: result
                .sweep
                .iter()
                .filter(|r| r.target == t && r.workload == w.name())
                .filter_map(|r| Some((r.concurrency()? as f64, r.throughput, r.overall.p99_us)))
                .collect(),
        })
        .collect();
    match sweep_png(&args.plot, "pegasus (RF=3, fsync) vs redis-server", &series) {
        Ok(()) => println!("plot: {}", args.plot.display()),
        Err(e) => eprintln!("plot not written: {e}"),
    }
    if let (Some(path), false) = (&args.markdown, args.no_markdown) {
        write_section(path, &md)?;
        println!("updated {}", path.display());
    }
    let failed = result
        .table
        .iter()
        .chain(&result.sweep)
        .any(|r| r.errors > 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn write_section(path: &Path, md: &str) -> anyhow::Result<()> {
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let mut f = std::fs::File::create(path)?;
    f.write_all(replace_section(&doc, "bench-suite", md).as_bytes())?;
    Ok(())
}

/// One goal: a measured value against a threshold.
fn goal_row(
    out: &mut String,
    what: &str,
    measured: Option<f64>,
    goal: f64,
    higher_is_better: bool,
    unit: &str,
) {
    use std::fmt::Write as _;
    let fmt = |v: f64| match unit {
        "%" => format!("{:.0} %", v * 100.0),
        _ => fmt_us(v),
    };
    let (m, status) = match measured {
        None => ("n/a".to_string(), "not measured"),
        Some(v) => {
            let met = if higher_is_better {
                v >= goal
            } else {
                v <= goal
            };
            (fmt(v), if met { "met" } else { "**not met**" })
        }
    };
    let op = if higher_is_better { "≥" } else { "≤" };
    let _ = writeln!(out, "| {what} | {m} | {op} {} | {status} |", fmt(goal));
}

fn suite_markdown(args: &SuiteArgs, r: &SuiteResult) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let w = &args.workload_args;
    let _ = writeln!(
        s,
        "Generated by `pegasus bench suite` ({}).\n",
        r.provenance
    );
    let _ = writeln!(
        s,
        "Pegasus: onebox, 3 metas + 3 replica servers, table `temp` with {} partitions × 3 replicas, \
         every write fsynced (group commit) on all three replicas before it is acknowledged. \
         Redis: `redis-server` with no persistence (`redis`) and with `appendonly yes`, \
         `appendfsync always` (`redis-aof`). One load generator process, {} tokio worker thread(s), \
         the same code for every target; {} records, 16 B hash key + 16 B sort key (Redis: the two \
         concatenated), {} B values, YCSB zipfian 0.99. YCSB-F is get + check_and_set on Pegasus and \
         GET + SET on Redis.\n",
        args.partitions, w.threads, w.records, w.value_size
    );
    let _ = writeln!(s, "Command: `pegasus bench suite --concurrency {} --seconds {} --sweep {} --sweep-seconds {} --records {}`\n",
        args.concurrency, args.seconds,
        args.sweep.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        args.sweep_seconds, w.records);
    let _ = writeln!(
        s,
        "#### Load, A, B, C, F at concurrency {}\n",
        args.concurrency
    );
    let _ = writeln!(s, "| workload | pegasus ops/s | P50 | P99 | redis ops/s | P50 | P99 | redis-aof ops/s | P50 | P99 |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for wl in SUITE_WORKLOADS {
        let mut row = format!("| {} |", wl.name());
        for t in SUITE_TARGETS {
            match r.table_run(t, wl) {
                Some(run) => {
                    let _ = write!(
                        row,
                        " {:.0} | {} | {} |",
                        run.throughput,
                        fmt_us(run.overall.p50_us),
                        fmt_us(run.overall.p99_us)
                    );
                }
                None => row.push_str(" – | – | – |"),
            }
        }
        let _ = writeln!(s, "{row}");
    }
    let ratio = |t: &str, w: WorkloadName| {
        let p = r.table_run("pegasus", w)?.throughput;
        let o = r.table_run(t, w)?.throughput;
        (o > 0.0).then_some(p / o)
    };
    let _ = writeln!(s, "\n#### Targets (issue #8)\n");
    let _ = writeln!(
        s,
        "| goal | measured | target | status |\n|---|---:|---:|---|"
    );
    goal_row(
        &mut s,
        "YCSB-C reads vs Redis GET",
        ratio("redis", WorkloadName::C),
        0.6,
        true,
        "%",
    );
    goal_row(
        &mut s,
        "Load writes vs Redis SET (no persistence)",
        ratio("redis", WorkloadName::Load),
        0.3,
        true,
        "%",
    );
    goal_row(
        &mut s,
        "YCSB-A vs Redis (no persistence)",
        ratio("redis", WorkloadName::A),
        0.3,
        true,
        "%",
    );
    goal_row(
        &mut s,
        "Load writes vs Redis appendfsync always",
        ratio("redis-aof", WorkloadName::Load),
        1.0,
        true,
        "%",
    );
    goal_row(
        &mut s,
        "YCSB-A vs Redis appendfsync always",
        ratio("redis-aof", WorkloadName::A),
        1.0,
        true,
        "%",
    );
    let idle_a = SuiteResult::find(&r.sweep, "pegasus", WorkloadName::A, Some(1));
    let idle_c = SuiteResult::find(&r.sweep, "pegasus", WorkloadName::C, Some(1));
    let idle_write = idle_a.and_then(|a| a.op(OpKind::Update));
    goal_row(
        &mut s,
        "idle write P50 (YCSB-A updates, c=1)",
        idle_write.map(|l| l.p50_us),
        250.0,
        false,
        "µs",
    );
    goal_row(
        &mut s,
        "idle write P99 (YCSB-A updates, c=1)",
        idle_write.map(|l| l.p99_us),
        1000.0,
        false,
        "µs",
    );
    goal_row(
        &mut s,
        "idle read P50 (YCSB-C, c=1)",
        idle_c.and_then(|c| c.op(OpKind::Read)).map(|l| l.p50_us),
        120.0,
        false,
        "µs",
    );
    let _ = writeln!(s, "\n#### Concurrency sweep (YCSB-A and YCSB-C)\n");
    let sweep: Vec<&RunReport> = r.sweep.iter().collect();
    s.push_str(&markdown_table(&sweep));
    let _ = writeln!(
        s,
        "\n![throughput and P99 vs concurrency]({})",
        args.plot.display()
    );
    s
}

fn bench_storage(
    records: u64,
    value_size: usize,
    dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let tmp = tempfile::tempdir()?;
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let opts = StorageBenchOptions {
        records,
        value_len: value_size,
        ..StorageBenchOptions::default()
    };
    let bar = ProgressBar::new(records);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = run_storage_bench(&dir, &opts, &mut |phase, done, _total| {
        bar.set_message(phase.to_string());
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    println!(
        "storage bench: {} records, {} B hash key, {} B sort key, {} B value, RocksDB WAL off",
        opts.records, opts.hash_key_len, opts.sort_key_len, opts.value_len
    );
    println!(
        "{:<28}{:>14}{:>14}{:>10}",
        "", "raw rocksdb", "store", "ratio"
    );
    println!(
        "{:<28}{:>14.0}{:>14.0}{:>9.1}%",
        "put ops/s (one per mutation)",
        report.raw_put.ops_per_sec(),
        report.store_put.ops_per_sec(),
        report.put_ratio() * 100.0
    );
    println!(
        "{:<28}{:>14.0}{:>14.0}{:>9.1}%",
        "get ops/s",
        report.raw_get.ops_per_sec(),
        report.store_get.ops_per_sec(),
        report.get_ratio() * 100.0
    );
    Ok(ExitCode::SUCCESS)
}

fn bench_log(seconds: u64, value_size: usize, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    use pegasus_replica::bench::{group_commit, raw_fdatasync};
    let dir = dir.unwrap_or_else(|| PathBuf::from("bench-log"));
    std::fs::create_dir_all(&dir)?;
    let d = std::time::Duration::from_secs(seconds);
    let bar = ProgressBar::new(4);
    bar.set_style(
        ProgressStyle::with_template("{msg:>24} [{bar:20}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("raw fdatasync");
    let raw = raw_fdatasync(&dir, value_size + 60, d)?;
    let mut rows = Vec::new();
    for writers in [1usize, 8, 64] {
        bar.inc(1);
        bar.set_message(format!("{writers} writers"));
        rows.push(group_commit(&dir, writers, value_size, d)?);
    }
    bar.finish_and_clear();
    let _ = std::fs::remove_dir(&dir);
    println!(
        "mutation log on {}: {value_size} B values, fsync on every batch",
        dir.display()
    );
    println!(
        "{:<22}{:>14}{:>14}{:>16}",
        "", "ops/s", "per fsync", "vs fdatasync/s"
    );
    println!(
        "{:<22}{:>14.0}{:>14.1}{:>16}",
        "raw fdatasync",
        raw.ops_per_sec(),
        1.0,
        "1.00x"
    );
    for r in rows {
        println!(
            "{:<22}{:>14.0}{:>14.1}{:>15.2}x",
            format!("log, {} writers", r.writers),
            r.ops_per_sec(),
            r.batch(),
            r.ops_per_sec() / raw.ops_per_sec().max(f64::MIN_POSITIVE)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Nanoseconds per `record_request` call, best of three runs.
fn time_recording(iterations: u64) -> f64 {
    use pegasus_replica::server::record_request;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        for i in 0..iterations {
            let took = Duration::from_nanos(50_000 + (i % 1000) * 100);
            record_request(std::hint::black_box("get"), 1, took, None);
        }
        best = best.min(started.elapsed().as_nanos() as f64 / iterations.max(1) as f64);
    }
    best
}

fn bench_metrics(iterations: u64) -> anyhow::Result<ExitCode> {
    // Each measurement on a fresh thread: `record_request` caches metric handles per thread,
    // and handles taken before the recorder exists record nothing.
    let timed = || {
        std::thread::spawn(move || time_recording(iterations))
            .join()
            .map_err(|_| anyhow::anyhow!("timing thread panicked"))
    };
    let bare = timed()?;
    let render = crate::install_metrics_recorder()?;
    let recorded = timed()?;
    // The recorder really counted them (3 timed runs).
    let text = render();
    let expected = format!(
        "pegasus_replica_requests_total{{op=\"get\",app_id=\"1\"}} {}",
        3 * iterations
    );
    if !text.contains(&expected) {
        bail!("the recorder did not count every call: expected `{expected}`");
    }
    println!("recording one request's metrics (count + latency histogram, labels op and app_id):");
    println!("  no recorder:         {bare:>8.0} ns");
    println!("  prometheus recorder: {recorded:>8.0} ns");
    println!("  cost per request:    {:>8.0} ns", recorded - bare);
    Ok(ExitCode::SUCCESS)
}
