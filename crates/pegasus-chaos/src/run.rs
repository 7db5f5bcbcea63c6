//! The run: what to run ([`ChaosOptions`]), the onebox started and stopped around it, and
//! the run loop — warm-up, clock skew under libfaketime, the seeded fault schedule
//! (install, hold, heal), liveness after heal, final reads, the check, and the numbers of
//! the [`Report`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pegasus_client::{Client, ClientConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::cluster::{self, Cluster, ClusterOptions};
use crate::liveness::{ballot_sum, wait_healthy, write_each_partition};
use crate::nemesis::{self, Nemesis};
use crate::net;
use crate::probe::stale_read_probe;
use crate::report::{percentiles, Report, ScheduleEntry};
use crate::workload::{self, NoLoss, Recorder, RegisterOptions};
use crate::{ChaosError, Result};

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// The `pegasus` binary.
    pub exe: PathBuf,
    /// Run directory: the onebox, `report.jsonl`, `report.md`, `history.json`.
    pub dir: PathBuf,
    /// Faults to draw from.
    pub nemeses: Vec<Nemesis>,
    /// Time with faults (warm-up and recovery come on top).
    pub duration: Duration,
    /// Seed of the schedule and the workload.
    pub seed: u64,
    /// Replica servers.
    pub replicas: u16,
    /// Partitions.
    pub partitions: i32,
    /// Registers.
    pub keys: u64,
    /// Register client tasks (each with its own client).
    pub clients: u64,
    /// Kill-test writer tasks.
    pub writers: u64,
    /// First port.
    pub base_port: u16,
    /// Plant the "primaries ignore their lease" bug (to show the checker catches it).
    pub planted_ignore_lease: bool,
    /// Search steps per key for the checker.
    pub check_budget: u64,
    /// Instances run under libfaketime for the whole run: `(instance, FAKETIME)`.
    pub skews: Vec<(String, String)>,
    /// Keep the onebox's data and logs even when the run passes.
    pub keep: bool,
    /// Empty partitions created beside `temp` before the faults (tables of 32), so each
    /// replica server hosts that many more replicas; after healing they must be healthy
    /// too (#28).
    pub idle_partitions: u32,
    /// The replica servers run with a node log (`node_log = true`, #18); `torn-tail` then
    /// also tears node logs.
    pub node_log: bool,
}

/// The failure detector's grace period of the onebox (`[replication]` defaults).
const GRACE: Duration = Duration::from_millis(3_500);

/// Size of the tmpfs holding `replica1`'s data in disk-full runs, MiB.
const TMPFS_MIB: u64 = 256;

/// libfaketime's library for multi-threaded programs, where Debian's `faketime` package
/// puts it.
fn libfaketime() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Log lines of a replica copy moved aside to be rebuilt (each event logs one of them).
const MOVED_ASIDE: [&str; 4] = [
    "is in error",
    "will be rebuilt",
    "set aside and rebuilt",
    "moving it aside",
];

/// Runs one chaos run.
pub fn run(opts: &ChaosOptions) -> Result<Report> {
    // Room for the workload's connections and a `conn-flood` (the servers raise theirs).
    let fds = pegasus_rpc::limits::raise_fd_limit();
    tracing::info!("chaos: descriptor limit {} (was {})", fds.now, fds.before);
    let _ = std::fs::remove_dir_all(&opts.dir);
    std::fs::create_dir_all(&opts.dir)?;
    // The harness restarts nodes far more often than Pegasus's flapping guard allows (5
    // restarts, each within 600 s of the last, and the node is ignored for 600 s — the
    // kill test spaces kills 300 s apart): raise it, or the guard, not the fault, decides
    // liveness.
    let mut extra =
        String::from("[meta_server]\nmax_succssive_unstable_restart = 1000000\n[replica_server]\n");
    if opts.planted_ignore_lease {
        extra.push_str("planted_bug_ignore_lease = true\n");
    }
    if opts.node_log {
        extra.push_str("node_log = true\n");
    }
    if opts.nemeses.iter().any(|n| n.arms_fail_points()) {
        extra.push_str("enable_fail_points = true\n");
    }
    let extra = Some(extra);
    let mut cluster = Cluster::start(&ClusterOptions {
        replicas: opts.replicas,
        partitions: opts.partitions,
        extra_config: extra,
        // Always: every run has the same shape, partitions or not.
        ip_per_instance: true,
        tmpfs_replica1_mib: opts
            .nemeses
            .contains(&Nemesis::DiskFull)
            .then_some(TMPFS_MIB),
        ..ClusterOptions::new(opts.exe.clone(), opts.dir.join("onebox"), opts.base_port)
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(drive(opts, &cluster));
    if opts.keep || !report.as_ref().is_ok_and(Report::passed) {
        cluster.save_tmpfs();
    }
    cluster.stop();
    let report = report?;
    let json = serde_json::to_string(&report).unwrap_or_default();
    std::fs::write(opts.dir.join("report.jsonl"), format!("{json}\n"))?;
    std::fs::write(opts.dir.join("report.md"), report.markdown())?;
    if report.passed() && !opts.keep {
        // Keep history and data only when something was found (or when asked).
        let _ = std::fs::remove_dir_all(opts.dir.join("onebox"));
    }
    Ok(report)
}

async fn drive(opts: &ChaosOptions, cluster: &Cluster) -> Result<Report> {
    let admin = Client::new(ClientConfig::new(cluster.metas.clone()));
    if !wait_healthy(&admin, Duration::from_secs(60)).await {
        return Err(ChaosError::Cluster(
            "the onebox never became healthy".into(),
        ));
    }
    // Clock skew for the whole run: restart the instances under libfaketime.
    if !opts.skews.is_empty() {
        let lib = libfaketime().ok_or_else(|| {
            ChaosError::Cluster("--skew needs libfaketime (apt-get install faketime)".into())
        })?;
        for (instance, spec) in &opts.skews {
            cluster.set_env(
                instance,
                vec![
                    format!("LD_PRELOAD={}", lib.display()),
                    format!("FAKETIME={spec}"),
                ],
            );
            cluster.restart(instance)?;
        }
        if !wait_healthy(&admin, Duration::from_secs(60)).await {
            return Err(ChaosError::Cluster(
                "the onebox never became healthy after the clock skew".into(),
            ));
        }
    }
    let idle_tables = if opts.idle_partitions > 0 {
        let started = Instant::now();
        let tables = crate::idle::create_idle_tables(&admin, opts.idle_partitions, 32)
            .await
            .map_err(ChaosError::Cluster)?;
        if !crate::idle::wait_tables_healthy(&admin, &tables, Duration::from_secs(600)).await {
            return Err(ChaosError::Cluster(format!(
                "{} idle partitions not healthy within 600 s",
                opts.idle_partitions
            )));
        }
        tracing::info!(
            "chaos: {} idle partitions healthy in {:.1} s",
            opts.idle_partitions,
            started.elapsed().as_secs_f64()
        );
        tables
    } else {
        Vec::new()
    };
    let ballots_before = ballot_sum(&admin).await;
    let mut firewall = net::Firewall::new(opts.base_port);
    firewall.reset();
    let rec = Recorder::new();
    let no_loss = Arc::new(NoLoss::default());
    let registers = tokio::spawn(workload::registers(
        cluster.metas.clone(),
        RegisterOptions {
            keys: opts.keys,
            clients: opts.clients,
            op_timeout: Duration::from_secs(2),
            seed: opts.seed,
        },
        rec.clone(),
    ));
    let kill_table = admin
        .open_table("temp")
        .await?
        .with_timeout(Duration::from_secs(5));
    let verifier = tokio::spawn(workload::no_loss(
        kill_table.clone(),
        opts.writers,
        no_loss.clone(),
        rec.clone(),
        opts.seed,
    ));

    // Warm-up: the baseline latency.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let faults_from_ms = rec.now_us() / 1000;
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let mut schedule = Vec::new();
    let started = Instant::now();
    let mut all_healed = true;
    while started.elapsed() < opts.duration && !opts.nemeses.is_empty() {
        let nemesis = opts
            .nemeses
            .get(rng.random_range(0..opts.nemeses.len()))
            .copied()
            .unwrap_or(Nemesis::Kill);
        let at_ms = rec.now_us() / 1000;
        // A client whose routing is taken before the fault: it still points at the old
        // primary afterwards, as an application's cache would.
        let stale = Client::new(ClientConfig::new(cluster.metas.clone()));
        let stale_table = stale.open_table("temp").await.ok();
        let mut fault =
            match nemesis::install(nemesis, cluster, &admin, &mut firewall, &mut rng).await {
                Ok(f) => f,
                Err(e) => nemesis::Fault::Skipped(e.to_string()),
            };
        let hold = nemesis::hold(nemesis, GRACE, &mut rng);
        let hold_until = Instant::now() + hold;
        let probe = match (fault.isolated_primary(), stale_table) {
            (Some(pidx), Some(stale_table)) => Some(tokio::spawn(stale_read_probe(
                admin.clone(),
                stale_table,
                pidx,
                opts.keys,
                opts.partitions,
                hold_until,
                rec.clone(),
            ))),
            _ => None,
        };
        nemesis::hold_until(&fault, &mut firewall, hold_until, &mut rng).await;
        let healed = match nemesis::heal(&mut fault, cluster, &mut firewall).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("chaos: healing {} failed: {e}", fault.describe());
                false
            }
        };
        if let Some(p) = probe {
            let _ = p.await;
        }
        all_healed &= healed;
        tracing::info!("chaos: {nemesis}: {} for {hold:?}", fault.describe());
        schedule.push(ScheduleEntry {
            at_ms,
            nemesis,
            fault: fault.describe(),
            held_ms: u64::try_from(hold.as_millis()).unwrap_or(u64::MAX),
            healed,
        });
        // Quiet time between faults, inside the fault window.
        tokio::time::sleep(Duration::from_millis(rng.random_range(2_000..5_000))).await;
    }
    let faults_until_ms = rec.now_us() / 1000;
    // Whatever happened above, no rule outlives the fault window.
    all_healed &= firewall.heal().is_ok();

    // Liveness: back to full replication, and a write accepted by every partition.
    let heal_at = Instant::now();
    let healthy = wait_healthy(&admin, Duration::from_secs(120)).await
        && crate::idle::wait_tables_healthy(&admin, &idle_tables, Duration::from_secs(120)).await;
    if !healthy {
        // What meta shows, for whoever reads the failed run.
        let shown = match admin.query_config("temp").await {
            Ok(cfg) => cfg
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    format!(
                        "partition {i}: ballot {} primary {:?} secondaries {:?}",
                        p.ballot,
                        p.primary.to_socket_addr(),
                        p.secondaries
                            .iter()
                            .map(|s| s.to_socket_addr())
                            .collect::<Vec<_>>()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => format!("query_config failed: {e}"),
        };
        tracing::error!("chaos: not healthy 120 s after the faults:\n{shown}");
        let _ = std::fs::write(opts.dir.join("unhealthy.txt"), format!("{shown}\n"));
        for (i, addr) in cluster.replicas.iter().enumerate() {
            let replicas = cluster::http_request(*addr, "GET", "/replica/replicas")
                .unwrap_or_else(|| "no answer".into());
            let _ = std::fs::write(
                opts.dir.join(format!("replica{}-replicas.txt", i + 1)),
                replicas,
            );
        }
    }
    let recovery_ms =
        healthy.then(|| u64::try_from(heal_at.elapsed().as_millis()).unwrap_or(u64::MAX));
    let writable = healthy && write_each_partition(&admin, opts.partitions).await;
    let ballots_after = ballot_sum(&admin).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    rec.stop();
    let _ = tokio::time::timeout(Duration::from_secs(60), registers).await;
    let _ = tokio::time::timeout(Duration::from_secs(60), verifier).await;

    // Final read of every register, after everything else: part of the checked history.
    let table = admin
        .open_table("temp")
        .await?
        .with_timeout(Duration::from_secs(5));
    for k in 0..opts.keys {
        let invoke = rec.now_us();
        if let Ok(v) = table.get(&workload::register_key(k), b"").await {
            rec.push_op(
                k,
                pegasus_check::OpKind::Get,
                invoke,
                Some((
                    rec.now_us(),
                    pegasus_check::OpResult::Read(workload::read_value(v)),
                )),
            );
        }
    }
    // Bounded: a partition left unavailable must not stretch the read-back to hours.
    let verified = workload::verify_all(&kill_table, &no_loss, Duration::from_secs(300)).await;
    let lost_final = verified.lost;
    let lost_during = no_loss.lost_during.lock().map(|l| l.len()).unwrap_or(0);
    let acked_writes = no_loss.acked.lock().map(|a| a.len() as u64).unwrap_or(0);

    // Check, key by key.
    let check_started = Instant::now();
    let history = rec.history.lock().map(|h| h.clone()).unwrap_or_default();
    let mut by_key: BTreeMap<u64, Vec<pegasus_check::Op>> = BTreeMap::new();
    for op in &history {
        by_key.entry(op.key).or_default().push(op.clone());
    }
    let mut violating_keys = Vec::new();
    let mut unknown = 0u64;
    for (key, ops) in &by_key {
        match pegasus_check::linearizable(ops, opts.check_budget) {
            pegasus_check::Verdict::Linearizable => {}
            pegasus_check::Verdict::Violation(_) => violating_keys.push(*key),
            pegasus_check::Verdict::Unknown { .. } => unknown += 1,
        }
    }
    let stale_reads = pegasus_check::stale_reads(&history) as u64;
    let check_ms = u64::try_from(check_started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if !violating_keys.is_empty() || unknown > 0 {
        let json = serde_json::to_string(
            &history
                .iter()
                .filter(|o| violating_keys.contains(&o.key))
                .map(|o| format!("{o:?}"))
                .collect::<Vec<_>>(),
        )
        .unwrap_or_default();
        let _ = std::fs::write(opts.dir.join("violations.json"), json);
    }

    // Latency and availability from the successful register operations.
    let lat = rec.latencies.lock().map(|l| l.clone()).unwrap_or_default();
    let baseline: Vec<u64> = lat
        .iter()
        .filter(|(t, _)| *t < faults_from_ms)
        .map(|(_, l)| *l)
        .collect();
    let under: Vec<u64> = lat
        .iter()
        .filter(|(t, _)| *t >= faults_from_ms && *t < faults_until_ms)
        .map(|(_, l)| *l)
        .collect();
    let mut done_at: Vec<u64> = lat.iter().map(|(t, _)| *t).collect();
    done_at.sort_unstable();
    let (longest_unavailable_ms, longest_unavailable_from_ms) = done_at
        .iter()
        .zip(done_at.iter().skip(1))
        .map(|(a, b)| (b - a, *a))
        .max()
        .unwrap_or((0, 0));

    let c = &rec.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    Ok(Report {
        seed: opts.seed,
        nemeses: opts.nemeses.clone(),
        planted_ignore_lease: opts.planted_ignore_lease,
        skews: opts.skews.clone(),
        schedule,
        ops_invoked: load(&c.invoked),
        ops_ok: load(&c.ok),
        ops_fail: load(&c.fail),
        ops_info: load(&c.info),
        acked_writes,
        acked_writes_lost: (lost_final.len() + lost_during) as u64,
        acked_writes_unverified: verified.unverified,
        lin_violations: violating_keys.len() as u64,
        lin_unknown: unknown,
        violating_keys,
        stale_reads,
        stale_read_probes: rec.stale_probes.load(std::sync::atomic::Ordering::Relaxed),
        liveness: healthy && writable && all_healed,
        recovery_ms,
        longest_unavailable_ms,
        longest_unavailable_from_ms,
        latency_baseline: percentiles(baseline),
        latency_under_fault: percentiles(under),
        check_ms,
        torn_tails_cut: cluster.count_in_logs("torn mutation-log tail") as u64,
        replicas_set_aside: cluster.count_in_logs("does not open") as u64,
        replicas_moved_aside: cluster
            .count_lines_in_logs(&MOVED_ASIDE)
            .max(cluster.count_err_dirs()) as u64,
        nodes_declared_dead: cluster.count_in_logs("is dead (no beacon") as u64,
        ballots_raised: ballots_before.zip(ballots_after).map(|(b, a)| a - b),
        dir: opts.dir.clone(),
    })
}
