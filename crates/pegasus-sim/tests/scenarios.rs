//! Scripted replication scenarios, after Pegasus's simple_kv cases: each injects one fault
//! on purpose into an otherwise fault-free run, then requires the group to heal with every
//! invariant intact (one committing primary per ballot, committed decrees unchanged, a
//! linearizable history including writes whose clients timed out).

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::cell::Cell;
use std::rc::Rc;

use pegasus_core::config::NodeId;
use pegasus_sim::{Report, Sim, SimOptions};

fn scenario(seed: u64) -> Sim {
    // Three nodes: no spare can stand in, so a failed replica must come back itself.
    let mut sim = Sim::new(SimOptions {
        seed,
        nodes: 3,
        faults: false,
        fault_ms: 0,
        heal_ms: 1_000_000,
        ..SimOptions::one_partition()
    });
    sim.start();
    sim.run_until(5_000);
    assert!(
        sim.config().is_healthy(),
        "not healthy at 5 s: {:?}",
        sim.config()
    );
    sim
}

fn check(report: Report) {
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert!(report.ok > 500, "only {} ops acknowledged", report.ok);
}

fn roles(sim: &Sim) -> (NodeId, NodeId, NodeId) {
    let c = sim.config();
    (c.primary.unwrap(), c.secondaries[0], c.secondaries[1])
}

#[test]
fn dropped_prepares_to_a_secondary_get_it_removed_while_writes_commit_then_it_relearns() {
    let mut sim = scenario(11);
    let (p, s1, _) = roles(&sim);
    let ballot = sim.config().ballot;
    sim.set_drop_rule(Some(Box::new(move |from, to, kind| {
        kind == "Prepare" && from == Some(p) && to == Some(s1)
    })));
    sim.run_until(10_000);
    assert!(
        sim.config().ballot > ballot,
        "the primary must have asked meta to remove the silent secondary"
    );
    let committed = sim.committed_of(p).unwrap();
    sim.run_until(12_000);
    assert!(
        sim.committed_of(p).unwrap() > committed,
        "writes keep committing without the secondary"
    );
    sim.set_drop_rule(None);
    sim.run_until(30_000);
    assert!(sim.config().is_healthy());
    check(sim.finish());
}

#[test]
fn a_log_write_failure_on_a_secondary_puts_only_that_replica_in_error_and_it_relearns() {
    let mut sim = scenario(12);
    let (p, s1, _) = roles(&sim);
    let ballot = sim.config().ballot;
    sim.fail_log_io(s1, true);
    sim.run_until(12_000);
    // Removed (ballot + 1), then re-added after re-learning (ballot + 1 again).
    assert!(sim.config().ballot >= ballot + 2, "{:?}", sim.config());
    assert_eq!(sim.config().primary, Some(p), "the primary is unaffected");
    sim.run_until(35_000);
    assert!(sim.config().is_healthy(), "{:?}", sim.config());
    check(sim.finish());
}

#[test]
fn a_log_write_failure_on_the_primary_moves_the_group_on_and_timed_out_writes_stay_consistent() {
    let mut sim = scenario(13);
    let (p, _, _) = roles(&sim);
    sim.fail_log_io(p, true);
    sim.run_until(15_000);
    assert_ne!(sim.config().primary, Some(p), "a new primary takes over");
    assert!(sim.config().primary.is_some());
    sim.run_until(40_000);
    assert!(sim.config().is_healthy(), "{:?}", sim.config());
    check(sim.finish());
}

#[test]
fn learning_survives_lost_learn_messages() {
    let mut sim = scenario(14);
    let (_, s1, _) = roles(&sim);
    sim.crash(s1);
    sim.run_until(12_000);
    // Lose the first few learning messages of every kind.
    let lost = Rc::new(Cell::new(0u32));
    let l = lost.clone();
    sim.set_drop_rule(Some(Box::new(move |_, _, kind| {
        let learning = matches!(
            kind,
            "AddLearner" | "Learn" | "LearnResponse" | "LearnCompleted" | "GroupCheck"
        );
        if learning && l.get() < 6 {
            l.set(l.get() + 1);
            return true;
        }
        false
    })));
    sim.restart(s1);
    sim.run_until(45_000);
    assert!(
        lost.get() >= 6,
        "the scenario must actually lose messages ({})",
        lost.get()
    );
    assert!(sim.config().is_healthy(), "{:?}", sim.config());
    check(sim.finish());
}

#[test]
fn a_replica_down_long_enough_learns_from_a_checkpoint_while_writes_continue() {
    let mut sim = scenario(15);
    let (p, s1, _) = roles(&sim);
    sim.crash(s1);
    sim.run_until(25_000);
    let far_behind = sim.committed_of(p).unwrap();
    assert!(far_behind > 100, "{far_behind}");
    sim.restart(s1);
    sim.run_until(45_000);
    assert!(sim.config().is_healthy(), "{:?}", sim.config());
    assert!(
        sim.committed_of(s1).unwrap_or(0) >= far_behind,
        "the relearned replica caught up"
    );
    let report = sim.finish();
    assert!(
        report.checkpoints_installed > 0,
        "learning must have used a checkpoint"
    );
    check(report);
}

#[test]
fn all_replicas_dead_then_the_last_two_return_without_losing_acknowledged_writes() {
    let mut sim = scenario(16);
    let (p, s1, s2) = roles(&sim);
    sim.crash(s1);
    sim.run_until(9_000);
    sim.crash(s2);
    sim.run_until(13_000);
    sim.crash(p);
    sim.run_until(17_000);
    assert!(sim.config().primary.is_none(), "{:?}", sim.config());
    // The last two to drop come back; meta must pick the more advanced of them.
    sim.restart(s2);
    sim.restart(p);
    sim.run_until(40_000);
    sim.restart(s1);
    sim.run_until(70_000);
    assert!(sim.config().is_healthy(), "{:?}", sim.config());
    check(sim.finish());
}

#[test]
fn a_paused_primary_returns_stale_steps_down_and_rejoins_by_learning() {
    let mut sim = scenario(17);
    let (p, _, _) = roles(&sim);
    // Past the grace period: meta promotes a secondary while the old primary is frozen with
    // decrees it committed that the new primary has only prepared (PacificA case 603).
    sim.pause(p, 5_000);
    sim.run_until(9_000);
    let new_primary = sim.config().primary;
    assert!(
        new_primary.is_some() && new_primary != Some(p),
        "{:?}",
        sim.config()
    );
    sim.run_until(40_000);
    assert!(sim.config().is_healthy(), "{:?}", sim.config());
    assert!(
        sim.config().is_member(p),
        "the old primary re-learned and rejoined: {:?}",
        sim.config()
    );
    check(sim.finish());
}

#[test]
fn a_sole_secondary_that_lost_its_copy_is_not_promoted_and_the_last_primary_returns() {
    // Found by the cluster sweep: the primary died while its only secondary had just set
    // its copy aside; meta kept proposing that secondary, which had recreated itself empty
    // and (rightly) refused, so the partition stayed without a primary for good.
    let mut sim = scenario(18);
    let (p, s1, s2) = roles(&sim);
    sim.crash(s2);
    sim.run_until(10_000);
    assert!(!sim.config().is_member(s2), "{:?}", sim.config());
    // The secondary's next log write fails: its copy is set aside. The primary dies before
    // it can ask meta to remove it.
    sim.fail_log_io(s1, true);
    sim.run_until(10_050);
    sim.crash(p);
    sim.run_until(16_000);
    assert_eq!(sim.config().primary, None, "{:?}", sim.config());
    assert_eq!(sim.config().secondaries, vec![s1], "{:?}", sim.config());
    sim.restart(p);
    sim.restart(s2);
    sim.run_until(50_000);
    assert!(sim.config().is_healthy(), "{:?}", sim.config());
    check(sim.finish());
}
