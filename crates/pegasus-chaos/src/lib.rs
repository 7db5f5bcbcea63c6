//! `pegasus chaos`: real processes, real faults, every client operation recorded and checked.
//!
//! A run starts a onebox ([`cluster`]), runs two workloads against it ([`workload`]: per-key
//! registers with get/set/check_and_set/incr recorded for the linearizability checker of
//! `pegasus-check`, and Pegasus's kill-test verifier of acknowledged sequential writes),
//! injects faults from a seeded schedule ([`nemesis`]: install, hold, heal), heals
//! everything, checks liveness (every partition back to one primary and two secondaries and
//! a write accepted by each), reads everything back, and reports ([`Report`]).
//!
//! A clean run shows that these faults found no violation; it does not prove correctness.
//! One kernel, loopback TCP and a shared page cache: a `kill -9` does not lose what the
//! kernel already holds.

#![warn(missing_docs)]

pub mod cluster;
pub mod flood;
pub mod nemesis;
pub mod net;
pub mod tamper;
pub mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pegasus_client::{Client, ClientConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::cluster::{Cluster, ClusterOptions};
use crate::nemesis::Nemesis;
use crate::workload::{NoLoss, Recorder, RegisterOptions};

/// A harness failure (not a finding about the system under test).
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// Starting or controlling the cluster failed.
    #[error("cluster: {0}")]
    Cluster(String),
    /// The client failed where the harness needs it.
    #[error("client: {0}")]
    Client(#[from] pegasus_client::ClientError),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, ChaosError>;

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
}

/// One fault of the schedule.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleEntry {
    /// When it was installed, ms since the run started.
    pub at_ms: u64,
    /// Which nemesis.
    pub nemesis: Nemesis,
    /// What it did.
    pub fault: String,
    /// How long it was held, ms.
    pub held_ms: u64,
    /// Whether healing succeeded.
    pub healed: bool,
}

/// Latency percentiles, µs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Operations measured.
    pub count: usize,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
}

fn percentiles(mut v: Vec<u64>) -> Latency {
    v.sort_unstable();
    let at = |q: f64| {
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i).copied().unwrap_or(0)
    };
    Latency {
        count: v.len(),
        p50_us: at(0.5),
        p99_us: at(0.99),
        p999_us: at(0.999),
    }
}

/// What a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Seed.
    pub seed: u64,
    /// Nemeses drawn from.
    pub nemeses: Vec<Nemesis>,
    /// Whether the lease bug was planted.
    pub planted_ignore_lease: bool,
    /// Instances under libfaketime: `(instance, FAKETIME)`.
    pub skews: Vec<(String, String)>,
    /// Faults in order.
    pub schedule: Vec<ScheduleEntry>,
    /// Register operations invoked.
    pub ops_invoked: u64,
    /// ... with a definite success.
    pub ops_ok: u64,
    /// ... that definitely did not take effect.
    pub ops_fail: u64,
    /// ... whose effect is unknown.
    pub ops_info: u64,
    /// Kill-test writes acknowledged.
    pub acked_writes: u64,
    /// Acknowledged kill-test writes missing or wrong (while running or at the end).
    pub acked_writes_lost: u64,
    /// Acknowledged kill-test writes the final read-back could not read (unavailable):
    /// not shown lost, not shown kept — a failure of the run.
    pub acked_writes_unverified: u64,
    /// Registers whose history is not linearizable.
    pub lin_violations: u64,
    /// Registers the checker could not decide within its budget (a failure, not a pass).
    pub lin_unknown: u64,
    /// The keys of the violations.
    pub violating_keys: Vec<u64>,
    /// Reads that returned a value an acknowledged write had replaced before the read
    /// started (a subset of the violations; `pegasus_check::stale_reads`).
    pub stale_reads: u64,
    /// Stale-read probes answered during primary pauses (each a read through a client
    /// still routed to the paused primary, after a write through the new one; a stale
    /// answer is a violation).
    pub stale_read_probes: u64,
    /// Every partition back to one primary and two secondaries, and a write accepted by
    /// each, after healing.
    pub liveness: bool,
    /// From the last heal until every partition was healthy, ms.
    pub recovery_ms: Option<u64>,
    /// Longest time without any successful register operation, ms.
    pub longest_unavailable_ms: u64,
    /// When that window began, ms since the run started (compare with the schedule).
    pub longest_unavailable_from_ms: u64,
    /// Latency before the first fault.
    pub latency_baseline: Latency,
    /// Latency while faults were being injected.
    pub latency_under_fault: Latency,
    /// Checker time, ms.
    pub check_ms: u64,
    /// Torn mutation-log tails the replica servers cut on restart (from their logs).
    pub torn_tails_cut: u64,
    /// Replica copies set aside because they would not open (corrupt log), from the logs.
    pub replicas_set_aside: u64,
    /// Replica copies moved aside to be rebuilt for any reason (in error, panicked, failed
    /// transiently too often, would not open): lines of the logs saying so, or the `.err`
    /// directories left on disk if more. A failure in a run whose every nemesis
    /// [forbids rebuilds](Nemesis::forbids_rebuilds).
    pub replicas_moved_aside: u64,
    /// Times a meta server declared a replica server dead (no beacon within the grace
    /// period), from the logs.
    pub nodes_declared_dead: u64,
    /// How far the partitions' ballots rose over the run, summed over the partitions of
    /// `temp` (each failover or membership change raises one); `None` if meta did not
    /// answer at the start or the end.
    pub ballots_raised: Option<i64>,
    /// The run directory.
    pub dir: PathBuf,
}

impl Report {
    /// Whether the run found nothing wrong.
    pub fn passed(&self) -> bool {
        self.acked_writes_lost == 0
            && self.acked_writes_unverified == 0
            && self.lin_violations == 0
            && self.lin_unknown == 0
            && self.liveness
            && !(self.rebuilds_forbidden() && self.replicas_moved_aside > 0)
    }

    /// Whether every nemesis of the run forbids rebuilds (e.g. `conn-flood`).
    pub fn rebuilds_forbidden(&self) -> bool {
        !self.nemeses.is_empty() && self.nemeses.iter().all(|n| n.forbids_rebuilds())
    }

    /// The one summary line.
    pub fn summary_line(&self) -> String {
        format!(
            "ops={} acked={} lost={} violations={} unknown={} moved_aside={}",
            self.ops_invoked,
            self.acked_writes,
            self.acked_writes_lost,
            self.lin_violations,
            self.lin_unknown,
            self.replicas_moved_aside
        )
    }

    /// A markdown summary.
    pub fn markdown(&self) -> String {
        let skews = if self.skews.is_empty() {
            "none".to_string()
        } else {
            self.skews
                .iter()
                .map(|(i, f)| format!("{i} FAKETIME={f:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = format!(
            "# pegasus chaos run\n\n- seed {} · nemeses {} · planted lease bug: {} · clock skew: {}\n- {}\n- ops ok/fail/info: {}/{}/{}; acknowledged writes not readable at the end: {}\n- liveness after heal: {} (recovery {} ms)\n- longest unavailability: {} ms (from {} ms)\n- latency baseline p50/p99/p99.9: {}/{}/{} µs; under fault: {}/{}/{} µs\n- stale reads: {} (probes answered during primary isolation: {})\n- torn log tails cut: {}; replica copies set aside: {}; moved aside to be rebuilt: {}{}\n- replica servers declared dead: {}; ballots raised over the run: {}\n- checker: {} ms\n- verdict: **{}**\n\n## Schedule\n\n| at (ms) | nemesis | fault | held (ms) | healed |\n|---:|---|---|---:|---|\n",
            self.seed,
            self.nemeses.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            self.planted_ignore_lease,
            skews,
            self.summary_line(),
            self.ops_ok,
            self.ops_fail,
            self.ops_info,
            self.acked_writes_unverified,
            self.liveness,
            self.recovery_ms.map_or("-".into(), |m| m.to_string()),
            self.longest_unavailable_ms,
            self.longest_unavailable_from_ms,
            self.latency_baseline.p50_us,
            self.latency_baseline.p99_us,
            self.latency_baseline.p999_us,
            self.latency_under_fault.p50_us,
            self.latency_under_fault.p99_us,
            self.latency_under_fault.p999_us,
            self.stale_reads,
            self.stale_read_probes,
            self.torn_tails_cut,
            self.replicas_set_aside,
            self.replicas_moved_aside,
            if self.rebuilds_forbidden() {
                " (none allowed)"
            } else {
                ""
            },
            self.nodes_declared_dead,
            self.ballots_raised.map_or("-".into(), |b| b.to_string()),
            self.check_ms,
            if self.passed() { "pass" } else { "FAIL" },
        );
        for e in &self.schedule {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                e.at_ms, e.nemesis, e.fault, e.held_ms, e.healed
            ));
        }
        s
    }
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

/// Waits until every partition of `temp` has a primary and two secondaries; false if
/// that does not happen within `within`.
pub async fn wait_healthy(client: &Client, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(r) = client.query_config("temp").await {
            if r.err == pegasus_proto::ErrorCode::Ok
                && !r.partitions.is_empty()
                && r.partitions
                    .iter()
                    .all(|p| p.primary.is_valid() && p.secondaries.len() == 2)
            {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// The sum of the ballots of `temp`'s partitions, as meta shows them.
async fn ballot_sum(client: &Client) -> Option<i64> {
    let cfg = client.query_config("temp").await.ok()?;
    (cfg.err == pegasus_proto::ErrorCode::Ok).then(|| cfg.partitions.iter().map(|p| p.ballot).sum())
}

/// One acknowledged write on every partition.
async fn write_each_partition(client: &Client, partitions: i32) -> bool {
    let Ok(table) = client.open_table("temp").await else {
        return false;
    };
    let count = u64::try_from(partitions.max(1)).unwrap_or(1);
    let mut done = std::collections::BTreeSet::new();
    for i in 0..10_000u64 {
        if done.len() as u64 == count {
            break;
        }
        let hk = format!("chaos_live_{i}");
        let p = workload::partition_of(hk.as_bytes(), partitions);
        if done.contains(&p) {
            continue;
        }
        let mut ok = false;
        for _ in 0..20 {
            if table.set(hk.as_bytes(), b"", b"alive", None).await.is_ok() {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if !ok {
            return false;
        }
        done.insert(p);
    }
    done.len() as u64 == count
}

/// While the primary of partition `pidx` is paused: once meta has moved the primary, write
/// a register of that partition through the new primary, then read it through a client
/// whose routing still names the old one. The read waits in the paused server's socket and
/// is answered when it resumes: the lease must make it refuse (the client then retries on
/// the new primary); a primary that ignores its lease answers with the value from before
/// the write — a stale read the checker reports. Both operations are recorded.
async fn stale_read_probe(
    admin: Client,
    stale: pegasus_client::Table,
    pidx: usize,
    keys: u64,
    partitions: i32,
    hold_until: Instant,
    rec: Arc<Recorder>,
) {
    let Some(key) = (0..keys)
        .find(|k| workload::partition_of(&workload::register_key(*k), partitions) == pidx as u64)
    else {
        return;
    };
    let Some(old) = stale.partition_primary(pidx).await else {
        return;
    };
    // Wait for the failover (bounded by the pause).
    let moved = loop {
        if Instant::now() + Duration::from_millis(1500) >= hold_until {
            break false;
        }
        if let Ok(cfg) = admin.query_config("temp").await {
            let now = cfg
                .partitions
                .get(pidx)
                .and_then(|p| p.primary.to_socket_addr());
            if now.is_some() && now != Some(old) {
                break true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if !moved {
        return;
    }
    let Ok(table) = admin.open_table("temp").await else {
        return;
    };
    let table = table.with_timeout(Duration::from_secs(1));
    let value = 9_000_000_000 + i64::try_from(rec.now_us()).unwrap_or(0);
    let invoke = rec.now_us();
    if table
        .set(
            &workload::register_key(key),
            b"",
            value.to_string().as_bytes(),
            None,
        )
        .await
        .is_err()
    {
        // Unknown outcome: recorded as such.
        rec.push_op(key, pegasus_check::OpKind::Set(value), invoke, None);
        return;
    }
    rec.push_op(
        key,
        pegasus_check::OpKind::Set(value),
        invoke,
        Some((rec.now_us(), pegasus_check::OpResult::Written)),
    );
    let stale = stale.with_timeout(
        hold_until.saturating_duration_since(Instant::now()) + Duration::from_secs(5),
    );
    let invoke = rec.now_us();
    if let Ok(v) = stale.get(&workload::register_key(key), b"").await {
        rec.push_op(
            key,
            pegasus_check::OpKind::Get,
            invoke,
            Some((
                rec.now_us(),
                pegasus_check::OpResult::Read(workload::read_value(v)),
            )),
        );
        rec.stale_probes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
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
    if opts.nemeses.iter().any(|n| n.arms_fail_points()) {
        extra.push_str("enable_fail_points = true\n");
    }
    let extra = Some(extra);
    let mut cluster = Cluster::start(&ClusterOptions {
        exe: opts.exe.clone(),
        dir: opts.dir.join("onebox"),
        replicas: opts.replicas,
        partitions: opts.partitions,
        base_port: opts.base_port,
        extra_config: extra,
        // Always: every run has the same shape, partitions or not.
        ip_per_instance: true,
        tmpfs_replica1_mib: opts
            .nemeses
            .contains(&Nemesis::DiskFull)
            .then_some(TMPFS_MIB),
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
    let healthy = wait_healthy(&admin, Duration::from_secs(120)).await;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn percentiles_pick_ranked_values() {
        let l = percentiles((1..=1000).rev().collect());
        assert_eq!(
            (l.count, l.p50_us, l.p99_us, l.p999_us),
            (1000, 501, 990, 999)
        );
        assert_eq!(percentiles(Vec::new()).p99_us, 0);
    }

    fn report(nemeses: &[Nemesis], moved_aside: u64) -> Report {
        Report {
            seed: 1,
            nemeses: nemeses.to_vec(),
            planted_ignore_lease: false,
            skews: Vec::new(),
            schedule: Vec::new(),
            ops_invoked: 10,
            ops_ok: 10,
            ops_fail: 0,
            ops_info: 0,
            acked_writes: 5,
            acked_writes_lost: 0,
            acked_writes_unverified: 0,
            lin_violations: 0,
            lin_unknown: 0,
            violating_keys: Vec::new(),
            stale_reads: 0,
            stale_read_probes: 0,
            liveness: true,
            recovery_ms: Some(0),
            longest_unavailable_ms: 0,
            longest_unavailable_from_ms: 0,
            latency_baseline: Latency::default(),
            latency_under_fault: Latency::default(),
            check_ms: 0,
            torn_tails_cut: 0,
            replicas_set_aside: 0,
            replicas_moved_aside: moved_aside,
            nodes_declared_dead: 0,
            ballots_raised: Some(0),
            dir: PathBuf::new(),
        }
    }

    #[test]
    fn a_rebuild_fails_a_conn_flood_run_only() {
        let flood = report(&[Nemesis::ConnFlood], 0);
        assert!(flood.passed());
        assert!(flood.summary_line().ends_with(" moved_aside=0"));
        assert!(flood
            .markdown()
            .contains("moved aside to be rebuilt: 0 (none allowed)"));
        assert!(!report(&[Nemesis::ConnFlood], 1).passed());
        // Other faults may rebuild a copy (a corrupt log must be); it is counted only.
        assert!(report(&[Nemesis::CorruptLog], 3).passed());
        assert!(report(&[Nemesis::ConnFlood, Nemesis::Kill], 1).passed());
        assert!(report(&[], 1).passed());
    }

    #[test]
    fn nemesis_names_parse() {
        for n in [
            "none",
            "kill",
            "kill-primary",
            "kill-meta",
            "kill-all",
            "pause-primary",
            "partition-primary-meta",
            "partition-secondary",
            "partition-metas",
            "isolate-node",
            "disk-full",
            "torn-tail",
            "corrupt-log",
            "fail-point",
            "net-drop",
            "net-delay",
            "net-flap",
            "conn-flood",
        ] {
            assert_eq!(n.parse::<Nemesis>().unwrap().to_string(), n);
        }
        assert!("nope".parse::<Nemesis>().is_err());
    }
}
