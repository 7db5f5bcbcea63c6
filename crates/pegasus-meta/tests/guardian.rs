//! Table-driven tests of the meta-side PacificA logic: the ballot CAS, dead nodes, and the
//! guardian's cure rules.

#![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]

use std::collections::{BTreeMap, BTreeSet};

use pegasus_core::config::{ConfigType, NodeId, PartitionConfig};
use pegasus_core::ids::Gpid;
use pegasus_meta::guardian::*;

fn n(i: u64) -> NodeId {
    NodeId(i)
}

fn pc(ballot: i64, primary: Option<u64>, secondaries: &[u64], drops: &[u64]) -> PartitionConfig {
    PartitionConfig {
        gpid: Gpid::new(1, 0),
        ballot,
        max_replica_count: 3,
        primary: primary.map(NodeId),
        secondaries: secondaries.iter().copied().map(NodeId).collect(),
        last_drops: drops.iter().copied().map(NodeId).collect(),
        last_committed_decree: 10,
    }
}

fn view(alive: &[u64]) -> ClusterView {
    ClusterView {
        alive: alive.iter().copied().map(NodeId).collect::<BTreeSet<_>>(),
        now_ms: 1_000_000,
        ..ClusterView::default()
    }
}

#[test]
fn updates_need_exactly_the_next_ballot() {
    let cur = pc(4, Some(1), &[2, 3], &[]);
    let mut want = pc(6, Some(1), &[2], &[]);
    let req = |c: PartitionConfig| ConfigUpdate {
        kind: ConfigType::DowngradeToInactive,
        node: n(3),
        config: c,
    };
    assert_eq!(
        apply_update(&cur, &req(want.clone())),
        Err(UpdateError::InvalidVersion { current: 4, got: 6 })
    );
    want.ballot = 4;
    assert!(matches!(
        apply_update(&cur, &req(want.clone())),
        Err(UpdateError::InvalidVersion { .. })
    ));
    want.ballot = 5;
    let UpdateOutcome::Applied(next) = apply_update(&cur, &req(want)).unwrap() else {
        panic!()
    };
    assert_eq!(next.ballot, 5);
    assert_eq!(next.secondaries, vec![n(2)]);
    assert_eq!(next.last_drops, vec![n(3)]);
}

#[test]
fn a_retried_update_is_acknowledged_without_change() {
    let cur = pc(5, Some(1), &[2], &[3]);
    let retry = ConfigUpdate {
        kind: ConfigType::DowngradeToInactive,
        node: n(3),
        config: pc(5, Some(1), &[2], &[]),
    };
    assert_eq!(
        apply_update(&cur, &retry),
        Ok(UpdateOutcome::AlreadyApplied)
    );
}

#[test]
fn each_kind_allows_only_its_own_membership_change() {
    // (current, kind, node, requested membership, accepted?)
    let cases: Vec<(PartitionConfig, ConfigType, u64, PartitionConfig, bool)> = vec![
        (
            pc(1, None, &[2, 3], &[1]),
            ConfigType::UpgradeToPrimary,
            2,
            pc(2, Some(2), &[3], &[]),
            true,
        ),
        (
            pc(1, None, &[2, 3], &[1]),
            ConfigType::UpgradeToPrimary,
            4,
            pc(2, Some(4), &[2, 3], &[]),
            false,
        ),
        (
            pc(1, Some(1), &[2, 3], &[]),
            ConfigType::UpgradeToPrimary,
            2,
            pc(2, Some(2), &[3], &[]),
            false,
        ),
        (
            pc(0, None, &[], &[]),
            ConfigType::AssignPrimary,
            1,
            pc(1, Some(1), &[], &[]),
            true,
        ),
        (
            pc(1, Some(1), &[], &[]),
            ConfigType::AssignPrimary,
            2,
            pc(2, Some(2), &[], &[]),
            false,
        ),
        (
            pc(2, Some(1), &[2], &[]),
            ConfigType::UpgradeToSecondary,
            3,
            pc(3, Some(1), &[2, 3], &[]),
            true,
        ),
        (
            pc(2, Some(1), &[2], &[]),
            ConfigType::UpgradeToSecondary,
            2,
            pc(3, Some(1), &[2, 2], &[]),
            false,
        ),
        (
            pc(2, Some(1), &[2], &[]),
            ConfigType::UpgradeToSecondary,
            3,
            pc(3, Some(1), &[2], &[]),
            false,
        ),
        (
            pc(2, Some(1), &[2, 3], &[]),
            ConfigType::Remove,
            3,
            pc(3, Some(1), &[2], &[]),
            true,
        ),
        (
            pc(2, Some(1), &[2, 3], &[]),
            ConfigType::Remove,
            1,
            pc(3, None, &[2, 3], &[]),
            false,
        ),
        (
            pc(2, Some(1), &[2, 3], &[]),
            ConfigType::DowngradeToInactive,
            1,
            pc(3, None, &[2, 3], &[]),
            true,
        ),
        (
            pc(2, Some(1), &[2, 3], &[]),
            ConfigType::DowngradeToSecondary,
            1,
            pc(3, None, &[1, 2, 3], &[]),
            true,
        ),
        (
            pc(2, Some(1), &[2, 3], &[]),
            ConfigType::PrimaryForceUpdateBallot,
            1,
            pc(3, Some(1), &[3, 2], &[]),
            true,
        ),
        (
            pc(2, Some(1), &[2, 3], &[]),
            ConfigType::PrimaryForceUpdateBallot,
            2,
            pc(3, Some(1), &[2, 3], &[]),
            false,
        ),
    ];
    for (i, (cur, kind, node, want, ok)) in cases.into_iter().enumerate() {
        let r = apply_update(
            &cur,
            &ConfigUpdate {
                kind,
                node: n(node),
                config: want,
            },
        );
        assert_eq!(
            matches!(r, Ok(UpdateOutcome::Applied(_))),
            ok,
            "case {i}: {kind:?} {node}: {r:?}"
        );
    }
}

#[test]
fn meta_keeps_the_committed_decree_and_caps_the_drop_history() {
    let mut cur = pc(7, Some(1), &[2, 3], &[4, 5, 6]);
    cur.last_committed_decree = 50;
    let mut want = pc(8, Some(1), &[2], &[]);
    want.last_committed_decree = 40;
    let UpdateOutcome::Applied(next) = apply_update(
        &cur,
        &ConfigUpdate {
            kind: ConfigType::Remove,
            node: n(3),
            config: want,
        },
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(next.last_committed_decree, 50);
    assert_eq!(next.last_drops, vec![n(5), n(6), n(3)]);
}

#[test]
fn a_dead_primary_is_removed_by_meta_and_a_dead_secondary_by_the_primary() {
    let cur = pc(3, Some(1), &[2, 3], &[]);
    let DeadNodeAction::Write(next) = on_node_dead(&cur, n(1)) else {
        panic!()
    };
    assert_eq!(
        (next.ballot, next.primary, next.last_drops.clone()),
        (4, None, vec![n(1)])
    );
    assert_eq!(next.secondaries, vec![n(2), n(3)]);
    assert_eq!(
        on_node_dead(&cur, n(3)),
        DeadNodeAction::Propose {
            target: n(1),
            node: n(3)
        }
    );
    assert_eq!(on_node_dead(&cur, n(9)), DeadNodeAction::Nothing);
    let headless = pc(4, None, &[2, 3], &[1]);
    let DeadNodeAction::Write(next) = on_node_dead(&headless, n(2)) else {
        panic!()
    };
    assert_eq!((next.ballot, next.secondaries.clone()), (5, vec![n(3)]));
}

fn propose(target: u64, kind: ConfigType, node: u64) -> Cure {
    Cure::Propose {
        target: n(target),
        kind,
        node: n(node),
    }
}

#[test]
fn cure_rules() {
    let opts = GuardianOptions::default();
    let mut loaded = view(&[1, 2, 3, 4]);
    loaded.primaries = BTreeMap::from([(n(1), 5), (n(2), 1), (n(3), 3), (n(4), 0)]);
    loaded.replicas = BTreeMap::from([(n(1), 9), (n(2), 9), (n(3), 9), (n(4), 2)]);
    let mut recent_drop = view(&[1, 2]);
    recent_drop.drop_time_ms.insert(n(3), 999_000);
    let mut recent_drop_back = recent_drop.clone();
    recent_drop_back.alive.insert(n(3));
    let mut old_drop = view(&[1, 2, 4]);
    old_drop.drop_time_ms.insert(n(3), 1_000);
    // (name, config, view, expected)
    let cases: Vec<(&str, PartitionConfig, ClusterView, Cure)> = vec![
        (
            "healthy partition needs nothing",
            pc(3, Some(1), &[2, 3], &[]),
            view(&[1, 2, 3]),
            Cure::Nothing,
        ),
        (
            "never-used partition gets the least loaded primary",
            pc(0, None, &[], &[]),
            loaded.clone(),
            propose(4, ConfigType::AssignPrimary, 4),
        ),
        (
            "no primary: promote the alive secondary with fewest primaries",
            pc(4, None, &[1, 2, 3], &[]),
            loaded.clone(),
            propose(2, ConfigType::UpgradeToPrimary, 2),
        ),
        (
            "no primary: dead secondaries are not promoted",
            pc(4, None, &[5, 3], &[]),
            loaded.clone(),
            propose(3, ConfigType::UpgradeToPrimary, 3),
        ),
        (
            "below 2 members is an emergency: add the least loaded node",
            pc(5, Some(1), &[], &[9]),
            loaded.clone(),
            propose(1, ConfigType::AddSecondary, 4),
        ),
        (
            "a recently dropped member is waited for",
            pc(5, Some(1), &[2], &[3]),
            recent_drop,
            Cure::Nothing,
        ),
        (
            "a recently dropped member that is back is re-added",
            pc(5, Some(1), &[2], &[3]),
            recent_drop_back,
            propose(1, ConfigType::AddSecondary, 3),
        ),
        (
            "after the dropout delay another node is added",
            pc(5, Some(1), &[2], &[3]),
            old_drop,
            propose(1, ConfigType::AddSecondary, 4),
        ),
        (
            "no drop history: add at once",
            pc(5, Some(1), &[2], &[]),
            view(&[1, 2, 3]),
            propose(1, ConfigType::AddSecondary, 3),
        ),
        (
            "extra secondary is removed",
            pc(5, Some(1), &[2, 3, 4], &[]),
            loaded.clone(),
            propose(1, ConfigType::Remove, 3),
        ),
    ];
    for (name, config, v, expected) in cases {
        assert_eq!(cure(&config, &v, &opts), expected, "{name}");
    }
}

fn info(ballot: i64, last_committed: i64, last_prepared: i64) -> ReplicaInfo {
    ReplicaInfo {
        ballot,
        last_committed,
        last_prepared,
        fresh: false,
    }
}

#[test]
fn all_dead_rule_picks_the_most_advanced_of_the_last_two() {
    let opts = GuardianOptions::default();
    let dead = pc(9, None, &[], &[1, 2, 3]);
    let with = |infos: &[(u64, ReplicaInfo)], alive: &[u64]| {
        let mut v = view(alive);
        v.replica_info = infos.iter().map(|(k, i)| (n(*k), *i)).collect();
        v
    };
    let cases: Vec<(&str, PartitionConfig, ClusterView, Cure)> = vec![
        (
            "higher ballot wins",
            dead.clone(),
            with(&[(2, info(8, 10, 10)), (3, info(7, 12, 12))], &[2, 3]),
            propose(2, ConfigType::AssignPrimary, 2),
        ),
        (
            "then higher committed decree",
            dead.clone(),
            with(&[(2, info(8, 10, 11)), (3, info(8, 11, 11))], &[2, 3]),
            propose(3, ConfigType::AssignPrimary, 3),
        ),
        (
            "then higher prepared decree",
            dead.clone(),
            with(&[(2, info(8, 10, 13)), (3, info(8, 10, 12))], &[2, 3]),
            propose(2, ConfigType::AssignPrimary, 2),
        ),
        (
            "both of the last two must be back",
            dead.clone(),
            with(&[(2, info(8, 10, 13)), (3, info(8, 10, 12))], &[3]),
            Cure::Nothing,
        ),
        (
            "both must have reported",
            dead.clone(),
            with(&[(3, info(8, 10, 12))], &[2, 3]),
            Cure::Nothing,
        ),
        (
            "one that reported without a copy (set aside after a failure) counts as empty",
            dead.clone(),
            {
                let mut v = with(&[(2, info(8, 10, 12))], &[2, 3]);
                v.reported = [n(2), n(3)].into_iter().collect();
                v
            },
            propose(2, ConfigType::AssignPrimary, 2),
        ),
        (
            "and two without copies still need an operator",
            dead.clone(),
            {
                let mut v = with(&[], &[2, 3]);
                v.reported = [n(2), n(3)].into_iter().collect();
                v
            },
            Cure::NeedOperator("n3 holds decrees up to 0, but 10 were committed".into()),
        ),
        (
            "a candidate missing committed decrees needs an operator",
            dead.clone(),
            with(&[(2, info(8, 5, 6)), (3, info(8, 5, 7))], &[2, 3]),
            Cure::NeedOperator("n3 holds decrees up to 7, but 10 were committed".into()),
        ),
        (
            "one drop: pick it if it reported",
            pc(9, None, &[], &[2]),
            with(&[(2, info(9, 10, 10))], &[2]),
            propose(2, ConfigType::AssignPrimary, 2),
        ),
        (
            "an empty replica never becomes primary when ballot > 0",
            pc(9, None, &[], &[2]),
            with(&[(2, info(0, 0, 0))], &[2]),
            Cure::NeedOperator("n2 holds decrees up to 0, but 10 were committed".into()),
        ),
        (
            "a dead secondary still listed may hold more: wait for it",
            pc(9, None, &[3], &[1, 2]),
            with(&[(1, info(8, 10, 10)), (2, info(8, 10, 10))], &[1, 2]),
            Cure::Nothing,
        ),
        (
            "no history at all needs an operator",
            pc(9, None, &[], &[]),
            view(&[1]),
            Cure::NeedOperator("no members and no drop history".into()),
        ),
    ];
    for (name, config, v, expected) in cases {
        assert_eq!(cure(&config, &v, &opts), expected, "{name}");
    }
    // An empty replica is refused even when the committed decree meta knows is 0 but the
    // partition had data (ballot > 0 and data committed): covered by the prepared check.
    let mut zero = pc(9, None, &[], &[2]);
    zero.last_committed_decree = 3;
    let v = with(&[(2, info(0, 0, 0))], &[2]);
    assert!(matches!(cure(&zero, &v, &opts), Cure::NeedOperator(_)));
}

// ------------------------------------------------------------------ disk rules

fn short(mut v: ClusterView, full: &[u64]) -> ClusterView {
    v.disk_insufficient = full.iter().copied().map(NodeId).collect();
    v
}

#[test]
fn a_node_with_an_insufficient_disk_is_never_added_as_a_secondary() {
    let opts = GuardianOptions::default();
    // Emergency (below min_2pc): the least loaded node is full, the next one is taken.
    let mut v = short(view(&[1, 2, 3, 4]), &[4]);
    v.replicas = BTreeMap::from([(n(1), 9), (n(2), 9), (n(3), 5), (n(4), 0)]);
    assert_eq!(
        cure(&pc(5, Some(1), &[], &[9]), &v, &opts),
        propose(1, ConfigType::AddSecondary, 3)
    );
    // A dropped member that is back but full is not re-added; after the dropout delay a
    // node with space is.
    let mut back = short(view(&[1, 2, 3, 4]), &[3]);
    back.drop_time_ms.insert(n(3), 999_000);
    assert_eq!(
        cure(&pc(5, Some(1), &[2], &[3]), &back, &opts),
        Cure::Nothing,
        "waits: the full node may get space back within the delay"
    );
    back.drop_time_ms.insert(n(3), 1_000);
    assert_eq!(
        cure(&pc(5, Some(1), &[2], &[3]), &back, &opts),
        propose(1, ConfigType::AddSecondary, 4)
    );
    // An older drop with space is preferred to a full returning one.
    let mut two_back = short(view(&[1, 2, 3, 4]), &[4]);
    two_back.drop_time_ms.insert(n(4), 1_000);
    assert_eq!(
        cure(&pc(5, Some(1), &[2], &[3, 4]), &two_back, &opts),
        propose(1, ConfigType::AddSecondary, 3)
    );
    // When its space returns it is re-added at once, as any returning member.
    let mut healed = back.clone();
    healed.disk_insufficient.clear();
    healed.drop_time_ms.insert(n(3), 999_000);
    assert_eq!(
        cure(&pc(5, Some(1), &[2], &[3]), &healed, &opts),
        propose(1, ConfigType::AddSecondary, 3)
    );
}

#[test]
fn with_every_candidate_short_of_disk_the_partition_stays_at_two_copies() {
    let opts = GuardianOptions::default();
    let two = pc(5, Some(1), &[2], &[3]);
    let mut v = short(view(&[1, 2, 3]), &[3]);
    v.drop_time_ms.insert(n(3), 1_000);
    assert_eq!(cure(&two, &v, &opts), Cure::Nothing);
    assert_eq!(short_of_disk(&two, &v), vec![n(3)]);
    // Never assigned (no drop history): the same.
    let fresh = pc(2, Some(1), &[2], &[]);
    assert_eq!(cure(&fresh, &v, &opts), Cure::Nothing);
    assert_eq!(short_of_disk(&fresh, &v), vec![n(3)]);
    // Not short of disk: a node with space could take it (even if not yet, while the
    // dropout delay runs), or no other node is alive at all, or nothing is missing.
    let spare = short(view(&[1, 2, 3, 4]), &[3]);
    assert!(short_of_disk(&two, &spare).is_empty());
    assert!(short_of_disk(&two, &short(view(&[1, 2]), &[])).is_empty());
    assert!(short_of_disk(&pc(5, Some(1), &[2, 3], &[]), &v).is_empty());
    assert!(short_of_disk(&pc(5, None, &[2], &[1]), &v).is_empty());
    // Space returns: the copy is made again.
    let mut healed = v.clone();
    healed.disk_insufficient.clear();
    assert_eq!(
        cure(&two, &healed, &opts),
        propose(1, ConfigType::AddSecondary, 3)
    );
    assert!(short_of_disk(&two, &healed).is_empty());
}

#[test]
fn promotion_prefers_a_secondary_with_disk_space() {
    let opts = GuardianOptions::default();
    let mut v = short(view(&[1, 2, 3]), &[2]);
    v.primaries = BTreeMap::from([(n(1), 5), (n(2), 0), (n(3), 3)]);
    assert_eq!(
        cure(&pc(4, None, &[1, 2, 3], &[]), &v, &opts),
        propose(3, ConfigType::UpgradeToPrimary, 3),
        "the fewest primaries among those with space"
    );
    // Only full ones alive: a primary on a full disk beats no primary.
    let all_full = short(view(&[1, 2, 3]), &[2, 3]);
    assert_eq!(
        cure(&pc(4, None, &[2, 3], &[]), &all_full, &opts),
        propose(2, ConfigType::UpgradeToPrimary, 2)
    );
}

#[test]
fn a_new_partition_prefers_a_primary_with_disk_space() {
    let opts = GuardianOptions::default();
    let mut v = short(view(&[1, 2, 3]), &[2]);
    v.primaries = BTreeMap::from([(n(1), 5), (n(2), 0), (n(3), 3)]);
    assert_eq!(
        cure(&pc(0, None, &[], &[]), &v, &opts),
        propose(3, ConfigType::AssignPrimary, 3)
    );
    assert_eq!(
        cure(
            &pc(0, None, &[], &[]),
            &short(view(&[1, 2]), &[1, 2]),
            &opts
        ),
        propose(1, ConfigType::AssignPrimary, 1),
        "with every node full, still a primary"
    );
}

#[test]
fn a_primary_on_an_insufficient_disk_hands_its_role_to_a_healthy_secondary() {
    let opts = GuardianOptions::default();
    let v = short(view(&[1, 2, 3]), &[1, 2]);
    let start = pc(5, Some(1), &[2, 3], &[]);
    assert_eq!(
        cure(&start, &v, &opts),
        propose(1, ConfigType::DowngradeToSecondary, 1)
    );
    // The primary's request is what meta accepts for that proposal.
    let mut want = transform(&start, ConfigType::DowngradeToSecondary, n(1)).unwrap();
    want.ballot = 6;
    let req = ConfigUpdate {
        kind: ConfigType::DowngradeToSecondary,
        node: n(1),
        config: want,
    };
    let UpdateOutcome::Applied(next) = apply_update(&start, &req).unwrap() else {
        panic!()
    };
    assert_eq!(next.primary, None);
    assert_eq!(next.members().len(), 3, "no copy is lost");
    // Then the secondary with space is promoted, and nothing more happens.
    assert_eq!(
        cure(&next, &v, &opts),
        propose(3, ConfigType::UpgradeToPrimary, 3)
    );
    let mut promoted = transform(&next, ConfigType::UpgradeToPrimary, n(3)).unwrap();
    promoted.ballot = 7;
    assert_eq!(cure(&promoted, &v, &opts), Cure::Nothing);
}

#[test]
fn a_primary_on_a_full_disk_stays_when_no_healthy_copy_can_take_over() {
    let opts = GuardianOptions::default();
    // Every secondary is full too.
    assert_eq!(
        cure(
            &pc(5, Some(1), &[2, 3], &[]),
            &short(view(&[1, 2, 3]), &[1, 2, 3]),
            &opts
        ),
        Cure::Nothing
    );
    // The only secondary with space is dead.
    let dead_spare = short(view(&[1, 2]), &[1, 2]);
    assert_eq!(
        cure(&pc(5, Some(1), &[2, 3], &[]), &dead_spare, &opts),
        Cure::Nothing
    );
    // Below min_2pc_replicas the group is already degraded: its writes are not put at
    // risk for a disk reason. (Here the missing copy cannot be added either: 2 is full.)
    let strict = GuardianOptions {
        min_2pc_replicas: 3,
        ..opts
    };
    let v = short(view(&[1, 2, 3]), &[1, 2]);
    assert_eq!(
        cure(&pc(5, Some(1), &[3], &[2]), &v, &strict),
        Cure::Nothing
    );
}

#[test]
fn an_extra_copy_on_an_insufficient_disk_is_removed_first() {
    let opts = GuardianOptions::default();
    let mut v = short(view(&[1, 2, 3, 4]), &[2]);
    v.replicas = BTreeMap::from([(n(1), 9), (n(2), 1), (n(3), 9), (n(4), 9)]);
    assert_eq!(
        cure(&pc(5, Some(1), &[2, 3, 4], &[]), &v, &opts),
        propose(1, ConfigType::Remove, 2)
    );
}

/// Carries out every cure at once, as replicas would, until the guardian has nothing more
/// to do; returns the changes made.
fn settle(
    mut config: PartitionConfig,
    v: &ClusterView,
) -> (PartitionConfig, Vec<(ConfigType, u64)>) {
    let opts = GuardianOptions::default();
    let mut done = Vec::new();
    for _ in 0..20 {
        match cure(&config, v, &opts) {
            Cure::Propose { kind, node, .. } => {
                let kind = match kind {
                    ConfigType::AddSecondary => ConfigType::UpgradeToSecondary,
                    k => k,
                };
                let mut next = transform(&config, kind, node).unwrap();
                next.ballot = config.ballot + 1;
                config = next;
                done.push((kind, node.0));
            }
            Cure::Nothing => return (config, done),
            Cure::NeedOperator(why) => panic!("{why}"),
        }
    }
    panic!("no fixed point after 20 changes: {done:?}");
}

#[test]
fn a_full_node_costs_each_partition_at_most_one_copy_and_no_churn() {
    // Node 3 is full. A group with its primary there moves the role and keeps three copies;
    // one that already lost the copy on 3 stays at two, without re-adding it.
    let v = short(view(&[1, 2, 3]), &[3]);
    let (after, changes) = settle(pc(5, Some(3), &[1, 2], &[]), &v);
    assert_eq!(
        changes,
        vec![
            (ConfigType::DowngradeToSecondary, 3),
            (ConfigType::UpgradeToPrimary, 1)
        ]
    );
    assert_eq!(after.members().len(), 3);
    let (after, changes) = settle(pc(6, Some(1), &[2], &[3]), &v);
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(short_of_disk(&after, &v), vec![n(3)]);
    // Space returns: the node fills again by itself.
    let healed = view(&[1, 2, 3]);
    let (after, changes) = settle(after, &healed);
    assert_eq!(changes, vec![(ConfigType::UpgradeToSecondary, 3)]);
    assert_eq!(after.members().len(), 3);
}

#[test]
fn when_nothing_was_ever_written_a_copy_that_held_the_partition_beats_a_recreated_one() {
    // Every member dropped; nothing was ever committed, so both last drops hold no data.
    // Node 4 was added, caught up, then reopened from an init file that still said fresh
    // (its write failed): it refuses to lead. Node 1 led the group.
    let config = PartitionConfig {
        last_committed_decree: 0,
        ..pc(8, None, &[], &[2, 1, 4])
    };
    let mut v = view(&[1, 2, 3, 4]);
    v.reported = [n(1), n(2), n(3), n(4)].into();
    v.replica_info = BTreeMap::from([
        (n(1), info(0, 0, 0)),
        (
            n(4),
            ReplicaInfo {
                ballot: 0,
                last_committed: 0,
                last_prepared: 0,
                fresh: true,
            },
        ),
    ]);
    assert_eq!(
        cure(&config, &v, &GuardianOptions::default()),
        propose(1, ConfigType::AssignPrimary, 1)
    );
}

#[test]
fn a_secondary_without_its_copy_is_never_promoted_and_the_last_drops_decide() {
    // Primary 2 died; its only secondary 1 lost its copy. Nodes 3 and 2 were dropped last.
    let config = pc(5, None, &[1], &[3, 2]);
    let mut v = view(&[1, 2, 3]);
    v.reported = [n(1), n(2), n(3)].into();
    v.replica_info = BTreeMap::from([(n(2), info(4, 10, 12)), (n(3), info(3, 8, 9))]);
    // Reported without the partition: its copy was set aside.
    assert_eq!(
        cure(&config, &v, &GuardianOptions::default()),
        propose(2, ConfigType::AssignPrimary, 2)
    );
    // Recreated empty since (it reports a fresh copy): the same.
    v.replica_info.insert(
        n(1),
        ReplicaInfo {
            ballot: 5,
            last_committed: 0,
            last_prepared: 0,
            fresh: true,
        },
    );
    assert_eq!(
        cure(&config, &v, &GuardianOptions::default()),
        propose(2, ConfigType::AssignPrimary, 2)
    );
    // A secondary that holds its copy is promoted as before.
    v.replica_info.insert(n(1), info(5, 10, 12));
    assert_eq!(
        cure(&config, &v, &GuardianOptions::default()),
        propose(1, ConfigType::UpgradeToPrimary, 1)
    );
}
