//! `pegasus bench`: the subcommands' flags; the benchmarks themselves (storage and log
//! micro-benchmarks, `run` against Pegasus or Redis, the side-by-side `suite` that writes
//! BENCHMARKS.md) live in `pegasus-bench`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use pegasus_bench::keys::Distribution;
use pegasus_bench::{
    ReplicasOptions, RunCommandOptions, SuiteOptions, WorkloadName, WorkloadOptions,
};

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
    /// What hosting many replicas costs a replica server: per N, a onebox with N extra
    /// empty replicas per server — creation time, idle CPU, RSS, threads, descriptors — and
    /// YCSB load, A and C on one table beside N = 0.
    Replicas(ReplicasArgs),
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
    fn options(self) -> WorkloadOptions {
        WorkloadOptions {
            records: self.records,
            value_size: self.value_size,
            sortkeys_per_hashkey: self.sortkeys_per_hashkey,
            batch: self.batch,
            threads: self.threads,
            seed: self.seed,
        }
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
    /// NOT DURABLE, for the ceiling only: the onebox's replicas do not fsync their logs
    /// (`plog_force_flush = false`). The report says so everywhere, writes the markdown
    /// section `bench-suite-not-durable` instead and skips the plot.
    #[arg(long)]
    not_durable: bool,
    /// TOML merged into the onebox's configuration (e.g. `[replica_server] node_log =
    /// false`), quoted in the report; the markdown then goes to `--section`.
    #[arg(long)]
    extra_config: Option<PathBuf>,
    /// The BENCHMARKS.md section rewritten (default `bench-suite`, or
    /// `bench-suite-not-durable` with `--not-durable`); the plot is drawn only for the
    /// default section.
    #[arg(long)]
    section: Option<String>,
    #[command(flatten)]
    workload_args: WorkloadArgs,
}

/// `pegasus bench replicas` arguments.
#[derive(Debug, Args)]
pub struct ReplicasArgs {
    /// Extra empty replicas per server, one onebox each (0 is the baseline).
    #[arg(long, default_value = "0,100,1000,3000,10000", value_delimiter = ',')]
    counts: Vec<u32>,
    /// Most partitions per extra table (each table a power of two; 32 as in the issue's
    /// measurement: 24 tables of 32).
    #[arg(long, default_value_t = 32)]
    table_partitions: u32,
    /// Seconds of idling measured.
    #[arg(long, default_value_t = 20)]
    idle_seconds: u64,
    /// Seconds per YCSB workload (the load stops when every record is in).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Closed-loop concurrency of the workloads.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Working directory (a onebox per N under it).
    #[arg(long, default_value = "./bench-replicas")]
    dir: PathBuf,
    /// First port of the oneboxes (below Linux's ephemeral range).
    #[arg(long, default_value_t = 26601)]
    base_port: u16,
    /// Markdown file whose `bench-replicas` section is rewritten.
    #[arg(long, default_value = "BENCHMARKS.md")]
    markdown: Option<PathBuf>,
    /// Do not touch the markdown file.
    #[arg(long)]
    no_markdown: bool,
    #[command(flatten)]
    workload_args: WorkloadArgs,
}

/// Runs a `pegasus bench` subcommand.
pub fn run(which: BenchCommand) -> anyhow::Result<ExitCode> {
    Ok(match which {
        BenchCommand::Storage {
            records,
            value_size,
            dir,
        } => pegasus_bench::micro::bench_storage(records, value_size, dir)?,
        BenchCommand::Log {
            seconds,
            value_size,
            dir,
        } => pegasus_bench::micro::bench_log(seconds, value_size, dir)?,
        BenchCommand::Run(args) => pegasus_bench::run_command(RunCommandOptions {
            target: args.target.parse()?,
            workload: args.workload,
            distribution: args.distribution,
            concurrency: args.concurrency,
            rate: args.rate,
            max_inflight: args.max_inflight,
            duration: args.duration,
            ops: args.ops,
            json: args.json,
            workload_options: args.workload_args.options(),
        })?,
        BenchCommand::Suite(args) => pegasus_bench::run_suite(SuiteOptions {
            dir: args.dir,
            concurrency: args.concurrency,
            seconds: args.seconds,
            sweep: args.sweep,
            sweep_seconds: args.sweep_seconds,
            partitions: args.partitions,
            base_port: args.base_port,
            redis_server: args.redis_server,
            markdown: args.markdown.filter(|_| !args.no_markdown),
            plot: args.plot,
            not_durable: args.not_durable,
            extra_config: args.extra_config.map(std::fs::read_to_string).transpose()?,
            section: args.section,
            workload_options: args.workload_args.options(),
        })?,
        BenchCommand::Replicas(args) => pegasus_bench::run_replicas(ReplicasOptions {
            counts: args.counts,
            table_partitions: args.table_partitions,
            idle_seconds: args.idle_seconds,
            seconds: args.seconds,
            concurrency: args.concurrency,
            dir: args.dir,
            base_port: args.base_port,
            markdown: args.markdown.filter(|_| !args.no_markdown),
            workload_options: args.workload_args.options(),
        })?,
        BenchCommand::Metrics { iterations } => {
            pegasus_bench::micro::bench_metrics(iterations, || {
                crate::install_metrics_recorder().map_err(Into::into)
            })?
        }
    })
}
