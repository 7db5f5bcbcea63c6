//! Hundreds of mostly idle partitions (#28): an idle replica costs no rounds, idle
//! partitions fail over as fast as busy ones, and faults among them break nothing.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::collections::BTreeMap;

use pegasus_core::ids::Gpid;
use pegasus_sim::{Sim, SimOptions};

/// 288 partitions, 864 replicas on 5 nodes; the clients' 36 keys touch at most 36
/// partitions, so at least 252 stay idle.
fn many_tables() -> Vec<u32> {
    vec![64, 64, 64, 64, 32]
}

#[test]
fn idle_partitions_cost_almost_no_rounds_and_fail_over_as_fast_as_busy_ones() {
    let mut sim = Sim::new(SimOptions {
        seed: 28,
        tables: many_tables(),
        faults: false,
        fault_ms: 0,
        heal_ms: 1_000_000,
        ..SimOptions::default()
    });
    sim.start();
    sim.run_until(15_000);
    let busy = sim.client_partitions();
    let all: Vec<Gpid> = sim.configs().map(|c| c.gpid).collect();
    assert!(sim.configs().all(|c| c.is_healthy()), "not healthy at 15 s");
    let idle: Vec<Gpid> = all.iter().copied().filter(|g| !busy.contains(g)).collect();
    assert!(idle.len() >= 250, "{} idle partitions", idle.len());

    // Cost while idle: 10 virtual seconds.
    let before: BTreeMap<Gpid, u64> = all.iter().map(|g| (*g, sim.rounds_of(*g))).collect();
    sim.run_until(25_000);
    let idle_rounds: u64 = idle.iter().map(|g| sim.rounds_of(*g) - before[g]).sum();
    let busy_rounds: u64 = busy.iter().map(|g| sim.rounds_of(*g) - before[g]).sum();
    let per_idle_replica_s = idle_rounds as f64 / (idle.len() * 3) as f64 / 10.0;
    println!(
        "rounds over 10 s: idle partitions {idle_rounds} ({per_idle_replica_s:.3} per replica per s), \
         busy partitions {busy_rounds} ({:.1} per replica per s)",
        busy_rounds as f64 / (busy.len() * 3) as f64 / 10.0
    );
    // A ticking replica ran 20 rounds a second. An idle one runs a round for its flush timer
    // (every second in the simulator) and for each configuration sync meta sends it (on one
    // beacon in five, every 300 ms: 0.67 a second), and for nothing else.
    assert!(
        per_idle_replica_s <= 2.0,
        "idle replicas ran {per_idle_replica_s:.3} rounds per second each"
    );

    // Crash the node leading the most partitions; time each partition's failover until a
    // new primary may serve reads.
    let mut leading: BTreeMap<_, Vec<Gpid>> = BTreeMap::new();
    for c in sim.configs() {
        leading.entry(c.primary.unwrap()).or_default().push(c.gpid);
    }
    let (victim, led) = leading.into_iter().max_by_key(|(_, v)| v.len()).unwrap();
    let crashed_at = sim.now();
    sim.crash(victim);
    let mut failover: BTreeMap<Gpid, u64> = BTreeMap::new();
    while failover.len() < led.len() && sim.now() < crashed_at + 30_000 {
        sim.run_until(sim.now() + 50);
        for g in &led {
            if !failover.contains_key(g) && sim.readable_primary(*g).is_some_and(|p| p != victim) {
                failover.insert(*g, sim.now() - crashed_at);
            }
        }
    }
    assert_eq!(
        failover.len(),
        led.len(),
        "partitions still without a primary after 30 s"
    );
    let worst = |busy_side: bool| {
        failover
            .iter()
            .filter(|(g, _)| busy.contains(g) == busy_side)
            .map(|(_, t)| *t)
            .max()
    };
    let (idle_worst, busy_worst) = (worst(false).unwrap(), worst(true));
    println!(
        "node {victim:?} led {} partitions: worst failover idle {idle_worst} ms, busy {busy_worst:?} ms",
        led.len()
    );
    // Meta's grace (3 s) plus a few beacon and meta-tick periods.
    assert!(
        idle_worst <= 8_000,
        "an idle partition took {idle_worst} ms to fail over"
    );
    if let Some(b) = busy_worst {
        assert!(
            idle_worst <= b + 1_000,
            "idle partitions fail over slower ({idle_worst} ms) than busy ones ({b} ms)"
        );
    }
}

#[test]
fn hundreds_of_mostly_idle_partitions_keep_every_invariant_under_faults() {
    for seed in 1..=5 {
        let report = Sim::new(SimOptions {
            seed,
            tables: many_tables(),
            ..SimOptions::default()
        })
        .run();
        println!(
            "seed {seed}: {} ops, {} ok, {} rounds, {} checkpoints installed",
            report.ops, report.ok, report.rounds, report.checkpoints_installed
        );
        assert!(
            report.failures.is_empty(),
            "seed {seed}: {:#?}",
            report.failures
        );
        assert!(
            report.ok > 500,
            "seed {seed}: only {} ops acknowledged",
            report.ok
        );
    }
}
