//! The report of a run: the fault schedule, latency percentiles, what the checks found, the
//! verdict ([`Report::passed`]), the summary line and the markdown summary.

use std::path::PathBuf;

use serde::Serialize;

use crate::nemesis::Nemesis;

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

pub(crate) fn percentiles(mut v: Vec<u64>) -> Latency {
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
}
