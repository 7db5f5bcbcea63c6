//! `pegasus bench suite`: a onebox (RF=3, durable writes) and two redis-servers driven one
//! after the other with the same workloads; `suite.json`, the BENCHMARKS.md section and
//! the sweep's PNG plot.

mod markdown;
mod provenance;
mod redis;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::command::{connect, run_one, WorkloadOptions};
use crate::error::{BenchError, Result};
use crate::plot::{sweep_png, Series};
use crate::report::text;
use crate::{Mode, RunOptions, RunReport, TargetSpec, WorkloadName};

use markdown::suite_markdown;
pub(crate) use markdown::write_named_section;
use provenance::provenance;
use redis::start_redis;

/// What `pegasus bench suite` runs and where it writes.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Working directory: onebox and Redis data, logs, `suite.json`.
    pub dir: PathBuf,
    /// Concurrency of the load + A + B + C + F table.
    pub concurrency: usize,
    /// Seconds per workload in that table.
    pub seconds: u64,
    /// Concurrency levels of the sweep (YCSB-A and YCSB-C at each).
    pub sweep: Vec<usize>,
    /// Seconds per sweep point.
    pub sweep_seconds: u64,
    /// Partitions of the onebox table.
    pub partitions: i32,
    /// First port used (onebox metas, replicas, then the two redis-servers at +20, +21).
    pub base_port: u16,
    /// The redis-server program.
    pub redis_server: String,
    /// Markdown file whose `bench-suite` section is rewritten (none: print only).
    pub markdown: Option<PathBuf>,
    /// PNG plot of the sweep.
    pub plot: PathBuf,
    /// The onebox does not fsync its logs (`plog_force_flush = false`): a ceiling, not a
    /// figure users get. Labelled so in every output; its own markdown section, no plot.
    pub not_durable: bool,
    /// TOML merged into the onebox's configuration, quoted in the report.
    pub extra_config: Option<String>,
    /// The markdown section rewritten (`None`: `bench-suite`, or `bench-suite-not-durable`
    /// when not durable). The plot is drawn only for `bench-suite`.
    pub section: Option<String>,
    /// Workload parameters.
    pub workload_options: WorkloadOptions,
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

/// What the suite adds to the onebox's configuration.
fn onebox_extra_config(args: &SuiteOptions) -> Option<String> {
    let mut extra = args.extra_config.clone().unwrap_or_default();
    if args.not_durable {
        // A second table header would be a TOML error; append the key to the section.
        if extra.contains("[replica_server]") {
            extra = extra.replacen(
                "[replica_server]",
                "[replica_server]\nplog_force_flush = false",
                1,
            );
        } else {
            extra.push_str("\n[replica_server]\nplog_force_flush = false\n");
        }
    }
    (!extra.trim().is_empty()).then_some(extra)
}

/// The markdown section the run writes.
fn section_name(args: &SuiteOptions) -> &str {
    match (&args.section, args.not_durable) {
        (Some(s), _) => s,
        (None, true) => "bench-suite-not-durable",
        (None, false) => "bench-suite",
    }
}

/// The onebox under test: the same launcher the chaos harness uses (a child process that
/// stops its instances when dropped).
fn start_onebox(args: &SuiteOptions) -> Result<pegasus_chaos::cluster::Cluster> {
    Ok(pegasus_chaos::cluster::Cluster::start(
        &pegasus_chaos::cluster::ClusterOptions {
            partitions: args.partitions,
            extra_config: onebox_extra_config(args),
            ..pegasus_chaos::cluster::ClusterOptions::new(
                std::env::current_exe().map_err(BenchError::Local)?,
                args.dir.join("onebox"),
                args.base_port,
            )
        },
    )?)
}

/// Runs `pegasus bench suite`; failure if any operation failed.
pub fn run_suite(args: SuiteOptions) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.dir).map_err(BenchError::Local)?;
    let prov = provenance(&args.redis_server);
    println!("bench suite: {prov}");
    if args.not_durable {
        println!("bench suite: NOT DURABLE — the replicas do not fsync their logs (ceiling only)");
    }
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
    let rt = args.workload_options.runtime()?;
    let mut result = SuiteResult {
        provenance: prov,
        ..SuiteResult::default()
    };
    rt.block_on(async {
        for (label, spec_target) in SUITE_TARGETS.iter().zip(&targets) {
            let target = connect(spec_target).await?;
            for w in SUITE_WORKLOADS {
                let spec = args.workload_options.spec(w, None);
                let opts = args
                    .workload_options
                    .closed(w, args.concurrency, args.seconds);
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
                    let spec = args.workload_options.spec(w, None);
                    let opts = RunOptions {
                        mode: Mode::Closed { concurrency: c },
                        duration: Duration::from_secs(args.sweep_seconds),
                        max_ops: None,
                        seed: args.workload_options.seed,
                    };
                    let mut r =
                        run_one(&target, &format!("{label} {w} c={c}"), &spec, &opts).await?;
                    r.target = (*label).to_string();
                    print!("{}", text(&r));
                    result.sweep.push(r);
                }
            }
        }
        Ok::<_, BenchError>(())
    })?;
    drop(rt);
    drop((redis_aof, redis, onebox));

    std::fs::write(
        args.dir.join("suite.json"),
        serde_json::to_string_pretty(&result)?,
    )
    .map_err(BenchError::Local)?;
    let md = suite_markdown(&args, &result);
    println!("\n{md}");
    if let Some(parent) = args.plot.parent() {
        std::fs::create_dir_all(parent).map_err(BenchError::Local)?;
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
    if section_name(&args) == "bench-suite" {
        match sweep_png(&args.plot, "pegasus (RF=3, fsync) vs redis-server", &series) {
            Ok(()) => println!("plot: {}", args.plot.display()),
            Err(e) => eprintln!("plot not written: {e}"),
        }
    }
    if let Some(path) = &args.markdown {
        write_named_section(path, section_name(&args), &md)?;
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
