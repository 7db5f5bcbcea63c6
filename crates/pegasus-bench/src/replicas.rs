//! `pegasus bench replicas`: what hosting many replicas costs a replica server (#28). For
//! each N, a fresh onebox (3 replica servers, RF=3, the 8-partition table `temp`) gets N
//! extra empty partitions (so N extra replicas per server), then: the time to create them,
//! each server's idle CPU, RSS, threads and descriptors (from `/proc`), and YCSB load, A
//! and C on `temp` — all in one run, N = 0 first as the baseline.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use pegasus_chaos::idle::{create_idle_tables, wait_tables_healthy};
use pegasus_client::{Client, ClientConfig};

use crate::command::{connect, run_one, WorkloadOptions};
use crate::error::{BenchError, Result};
use crate::report::text;
use crate::{TargetSpec, WorkloadName};

/// What `pegasus bench replicas` runs.
#[derive(Debug, Clone)]
pub struct ReplicasOptions {
    /// Extra empty replicas per server, one onebox each (0 is the baseline).
    pub counts: Vec<u32>,
    /// Most partitions per extra table (each table a power of two).
    pub table_partitions: u32,
    /// Seconds of idling measured.
    pub idle_seconds: u64,
    /// Seconds per YCSB workload (the load stops when every record is in).
    pub seconds: u64,
    /// Closed-loop concurrency of the workloads.
    pub concurrency: usize,
    /// Working directory (a onebox per N under it).
    pub dir: PathBuf,
    /// First port of the oneboxes.
    pub base_port: u16,
    /// Markdown file whose `bench-replicas` section is rewritten (none: print only).
    pub markdown: Option<PathBuf>,
    /// Workload parameters.
    pub workload_options: WorkloadOptions,
}

/// One server's figures while idle.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct Idle {
    cpu_percent: f64,
    rss_mb: f64,
    threads: u64,
    fds: u64,
}

/// The figures at one N.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct Point {
    extra_replicas_per_server: u32,
    create_seconds: f64,
    /// Each replica server's figures.
    idle: Vec<Idle>,
    /// Workload name → ops/s.
    throughput: BTreeMap<String, f64>,
    /// Workload name → P99 µs.
    p99_us: BTreeMap<String, f64>,
}

const WORKLOADS: [WorkloadName; 3] = [WorkloadName::Load, WorkloadName::A, WorkloadName::C];

/// Runs `pegasus bench replicas`.
pub fn run_replicas(args: ReplicasOptions) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.dir).map_err(BenchError::Local)?;
    let rt = args.workload_options.runtime()?;
    let mut points = Vec::new();
    for &n in &args.counts {
        let dir = args.dir.join(format!("n{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        let cluster =
            pegasus_chaos::cluster::Cluster::start(&pegasus_chaos::cluster::ClusterOptions {
                ..pegasus_chaos::cluster::ClusterOptions::new(
                    std::env::current_exe().map_err(BenchError::Local)?,
                    dir,
                    args.base_port,
                )
            })?;
        let metas = cluster.metas.clone();
        let point = rt.block_on(async {
            let client = Client::new(ClientConfig::new(metas.clone()));
            let created = Instant::now();
            let tables = create_idle_tables(&client, n, args.table_partitions)
                .await
                .map_err(BenchError::Setup)?;
            if !wait_tables_healthy(&client, &tables, Duration::from_secs(600)).await {
                return Err(BenchError::Setup(format!(
                    "{n} extra partitions not healthy within 600 s"
                )));
            }
            let create_seconds = created.elapsed().as_secs_f64();
            println!("N={n}: {n} extra partitions healthy in {create_seconds:.1} s");
            // Let creation's learning and flushes settle before measuring the idle cost.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let pids: Vec<u32> = (1..=3)
                .filter_map(|i| cluster.pid_of(&format!("replica{i}")))
                .collect();
            let idle = measure_idle(&pids, Duration::from_secs(args.idle_seconds)).await;
            for (i, f) in idle.iter().enumerate() {
                println!(
                    "N={n}: replica{}: idle CPU {:.1} %, RSS {:.0} MB, {} threads, {} fds",
                    i + 1,
                    f.cpu_percent,
                    f.rss_mb,
                    f.threads,
                    f.fds
                );
            }
            let mut point = Point {
                extra_replicas_per_server: n,
                create_seconds,
                idle,
                ..Point::default()
            };
            let spec_target = TargetSpec::Pegasus {
                metas,
                table: "temp".into(),
            };
            let target = connect(&spec_target).await?;
            for w in WORKLOADS {
                let spec = args.workload_options.spec(w, None);
                let opts = args
                    .workload_options
                    .closed(w, args.concurrency, args.seconds);
                let r = run_one(
                    &target,
                    &format!("N={n} {w} c={}", args.concurrency),
                    &spec,
                    &opts,
                )
                .await?;
                print!("{}", text(&r));
                point.throughput.insert(w.name().into(), r.throughput);
                point.p99_us.insert(w.name().into(), r.overall.p99_us);
            }
            Ok::<_, BenchError>(point)
        })?;
        drop(cluster);
        points.push(point);
    }
    drop(rt);
    std::fs::write(
        args.dir.join("replicas.json"),
        serde_json::to_string_pretty(&points)?,
    )
    .map_err(BenchError::Local)?;
    let md = markdown(&args, &points);
    println!("\n{md}");
    if let Some(path) = &args.markdown {
        crate::suite::write_named_section(path, "bench-replicas", &md)?;
        println!("wrote the bench-replicas section of {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// CPU ticks (user + system) of a process, from `/proc/<pid>/stat`.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields count from after its closing parenthesis.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `/proc/<pid>/status` field's number (`VmRSS` in kB, `Threads`).
fn status_field(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn fd_count(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// Each process's CPU over `window` (percent of one core; Linux's USER_HZ is 100), and its
/// RSS, threads and descriptors at the end.
async fn measure_idle(pids: &[u32], window: Duration) -> Vec<Idle> {
    let before: Vec<Option<u64>> = pids.iter().map(|p| cpu_ticks(*p)).collect();
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let secs = started.elapsed().as_secs_f64().max(0.001);
    pids.iter()
        .zip(before)
        .map(|(&pid, b)| {
            let ticks = match (b, cpu_ticks(pid)) {
                (Some(b), Some(a)) => a.saturating_sub(b),
                _ => 0,
            };
            Idle {
                cpu_percent: ticks as f64 / secs,
                rss_mb: status_field(pid, "VmRSS").unwrap_or(0) as f64 / 1024.0,
                threads: status_field(pid, "Threads").unwrap_or(0),
                fds: fd_count(pid),
            }
        })
        .collect()
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn markdown(args: &ReplicasOptions, points: &[Point]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Measured by `pegasus bench replicas --counts {}` (one onebox per N: 3 replica \
         servers, RF=3; N extra empty partitions, so N extra replicas per server; idle \
         figures are the mean of the three servers over {} s; YCSB on the 8-partition table \
         `temp`, c={}, {} records of {} B).\n",
        args.counts
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        args.idle_seconds,
        args.concurrency,
        args.workload_options.records,
        args.workload_options.value_size,
    );
    md.push_str(
        "| extra replicas per server | create (s) | idle CPU (% of a core) | RSS (MB) | threads | fds | load ops/s | A ops/s | C ops/s | A vs N=0 | C vs N=0 |\n",
    );
    md.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let base = points.iter().find(|p| p.extra_replicas_per_server == 0);
    let ratio = |p: &Point, w: &str| -> String {
        match (base.and_then(|b| b.throughput.get(w)), p.throughput.get(w)) {
            (Some(b), Some(v)) if *b > 0.0 => format!("{:.0} %", v / b * 100.0),
            _ => "n/a".into(),
        }
    };
    for p in points {
        let t = |w: &str| {
            p.throughput
                .get(w)
                .map_or("n/a".into(), |v| format!("{v:.0}"))
        };
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} |",
            p.extra_replicas_per_server,
            p.create_seconds,
            mean(p.idle.iter().map(|i| i.cpu_percent)),
            mean(p.idle.iter().map(|i| i.rss_mb)),
            mean(p.idle.iter().map(|i| i.threads as f64)),
            mean(p.idle.iter().map(|i| i.fds as f64)),
            t("load"),
            t("a"),
            t("c"),
            ratio(p, "a"),
            ratio(p, "c"),
        );
    }
    md
}
