//! Unit tests of the replica state machine: each rule a review or the fuzzer found missing
//! is pinned by one test.

#![allow(clippy::arithmetic_side_effects, reason = "test code")]

use super::*;
use pegasus_core::ids::Gpid;

mod lease;
mod recovery;

const ME: NodeId = NodeId(1);
const S: NodeId = NodeId(2);
/// 2026-01-01, Unix µs.
const WALL: u64 = 1_767_225_600_000_000;

fn config(ballot: Ballot, secondaries: &[NodeId]) -> PartitionConfig {
    PartitionConfig {
        gpid: Gpid::new(1, 0),
        ballot,
        max_replica_count: 3,
        primary: Some(ME),
        secondaries: secondaries.to_vec(),
        ..PartitionConfig::default()
    }
}

/// A replica created on a node with no data for the partition.
fn fresh() -> Replica {
    let mut r = Replica::new(
        ME,
        ReplicaOptions::default(),
        PartitionConfig::default(),
        0,
        Vec::new(),
    );
    r.mark_fresh();
    r.handle(Event::Tick {
        now_ms: 0,
        wall_us: WALL,
    });
    r
}

/// A primary at ballot 2 with secondary S.
fn primary() -> Replica {
    let mut r = fresh();
    // The node holds a lease from its beacons before meta gives it any role.
    r.handle(Event::Lease {
        epoch: 1,
        until_ms: 1_000,
    });
    let out = r.handle(Event::Proposal {
        kind: ConfigType::AssignPrimary,
        node: ME,
    });
    assert!(matches!(
        out.as_slice(),
        [Action::RequestConfig {
            kind: ConfigType::AssignPrimary,
            ..
        }]
    ));
    r.handle(Event::Config(config(1, &[])));
    assert_eq!(r.status(), Status::Primary);
    r.handle(Event::Config(config(2, &[S])));
    assert_eq!(r.status(), Status::Primary);
    r
}

/// A restarted replica that meta still lists as primary (with secondary S) takes over:
/// it asks for a new ballot (2), then gets it (3). Returns what the last step did.
fn take_over_after_restart(r: &mut Replica, wall_us: u64) -> Vec<Action> {
    r.handle(Event::Tick { now_ms: 0, wall_us });
    r.handle(Event::Lease {
        epoch: 1,
        until_ms: 1_000,
    });
    let mut cfg = config(2, &[S]);
    cfg.primary = Some(ME);
    r.handle(Event::Config(cfg.clone()));
    cfg.ballot = 3;
    r.handle(Event::Config(cfg))
}

/// A replica whose storage holds `applied`, invited to learn by primary P at ballot 2 (with
/// secondary S), with signature 7; and P's configuration.
fn invited_learner(applied: Decree) -> (Replica, PartitionConfig) {
    const P: NodeId = NodeId(3);
    let cfg = PartitionConfig {
        gpid: Gpid::new(1, 0),
        ballot: 2,
        max_replica_count: 3,
        primary: Some(P),
        secondaries: vec![S],
        ..PartitionConfig::default()
    };
    let mut r = Replica::new(
        ME,
        ReplicaOptions::default(),
        config(1, &[]),
        applied,
        Vec::new(),
    );
    r.handle(Event::Message {
        from: P,
        msg: PeerMessage::AddLearner {
            config: cfg.clone(),
            signature: 7,
        },
    });
    (r, cfg)
}

fn commits(actions: &[Action]) -> Vec<Decree> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Commit { mutation, .. } => Some(mutation.decree),
            _ => None,
        })
        .collect()
}

#[test]
fn writes_that_arrive_together_share_one_mutation_and_one_prepare() {
    let mut r = primary();
    let writes: Vec<(u64, Bytes)> = (10..15)
        .map(|id| (id, Bytes::from(format!("w{id}"))))
        .collect();
    let out = r.handle(Event::ClientWrites(writes));
    let prepares: Vec<&Mutation> = out
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                to,
                msg: PeerMessage::Prepare { mutation, .. },
            } if *to == S => Some(mutation),
            _ => None,
        })
        .collect();
    assert_eq!(prepares.len(), 1, "{out:?}");
    assert_eq!(prepares[0].updates.len(), 5);
    assert_eq!(prepares[0].updates[4], Bytes::from_static(b"w14"));
    r.handle(Event::LogFlushed { appended: 1 });
    let out = r.handle(Event::Message {
        from: S,
        msg: PeerMessage::PrepareAck {
            ballot: 2,
            decree: 1,
            ok: true,
        },
    });
    let committed: Vec<&Vec<u64>> = out
        .iter()
        .filter_map(|a| match a {
            Action::Commit { clients, .. } => Some(clients),
            _ => None,
        })
        .collect();
    assert_eq!(committed, vec![&vec![10, 11, 12, 13, 14]]);
}

#[test]
fn a_batch_sent_to_a_secondary_is_refused_whole() {
    let mut r = primary();
    r.handle(Event::Config(config(3, &[])));
    let mut c = config(4, &[]);
    c.primary = Some(S);
    c.secondaries = vec![ME];
    r.handle(Event::Config(c));
    let out = r.handle(Event::ClientWrites(vec![
        (1, Bytes::from_static(b"a")),
        (2, Bytes::from_static(b"b")),
    ]));
    assert!(
        out.iter().any(|a| matches!(a, Action::Refuse { clients, reason: Refusal::NotPrimary } if clients == &vec![1, 2])),
        "{out:?}"
    );
}

#[test]
fn an_acknowledgement_for_an_older_ballot_does_not_count() {
    let mut r = primary();
    r.handle(Event::ClientWrite {
        id: 7,
        update: Bytes::from_static(b"w"),
    });
    r.handle(Event::LogFlushed { appended: 1 });
    let out = r.handle(Event::Message {
        from: S,
        msg: PeerMessage::PrepareAck {
            ballot: 1,
            decree: 1,
            ok: true,
        },
    });
    assert!(
        commits(&out).is_empty(),
        "an older proposal's ack must not commit decree 1"
    );
    let out = r.handle(Event::Message {
        from: S,
        msg: PeerMessage::PrepareAck {
            ballot: 2,
            decree: 1,
            ok: true,
        },
    });
    assert_eq!(commits(&out), vec![1]);
}

/// The signature of the learning round `r` starts for a new node.
fn learner_signature(r: &mut Replica) -> u64 {
    let out = r.handle(Event::Proposal {
        kind: ConfigType::AddSecondary,
        node: NodeId(9),
    });
    let signatures: Vec<u64> = out
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                msg: PeerMessage::AddLearner { signature, .. },
                ..
            } => Some(*signature),
            _ => None,
        })
        .collect();
    assert_eq!(signatures.len(), 1, "{out:?}");
    signatures.first().copied().unwrap_or_default()
}

#[test]
fn a_learner_commits_nothing_onto_the_old_store_while_a_checkpoint_installs() {
    const P: NodeId = NodeId(3);
    let cfg = PartitionConfig {
        gpid: Gpid::new(1, 0),
        ballot: 2,
        max_replica_count: 3,
        primary: Some(P),
        secondaries: vec![S],
        ..PartitionConfig::default()
    };
    let mut r = fresh();
    let out = r.handle(Event::Message {
        from: P,
        msg: PeerMessage::AddLearner {
            config: cfg.clone(),
            signature: 7,
        },
    });
    assert!(
        out.iter().any(|a| matches!(
            a,
            Action::Send {
                msg: PeerMessage::Learn { signature: 7, .. },
                ..
            }
        )),
        "{out:?}"
    );
    let m11 = Mutation {
        ballot: 2,
        decree: 11,
        last_committed: 10,
        timestamp_us: 0,
        updates: Vec::new(),
    };
    let mut seen = r.handle(Event::Message {
        from: P,
        msg: PeerMessage::LearnResponse(LearnResponse {
            signature: 7,
            config: cfg,
            checkpoint: Some(Checkpoint {
                decree: 10,
                timestamp_us: 0,
                data: Bytes::new(),
            }),
            mutations: vec![m11],
            committed: 11,
            retry: false,
        }),
    });
    assert!(seen
        .iter()
        .any(|a| matches!(a, Action::InstallCheckpoint(c) if c.decree == 10)));
    // The mutation after the checkpoint becomes durable while the install runs.
    seen.extend(r.handle(Event::LogFlushed { appended: 1 }));
    assert!(
        commits(&seen).is_empty(),
        "nothing applied to the store being replaced"
    );
    let out = r.handle(Event::CheckpointInstalled { decree: 10 });
    assert_eq!(commits(&out), vec![11], "committed right after the install");
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Send {
            msg: PeerMessage::LearnCompleted { signature: 7 },
            ..
        }
    )));
}

#[test]
fn a_restarted_primary_never_reuses_a_learning_signature() {
    let first = learner_signature(&mut primary());
    // The same node after a restart, made primary again at a higher ballot.
    let mut r = Replica::new(
        ME,
        ReplicaOptions::default(),
        config(2, &[S]),
        0,
        Vec::new(),
    );
    // Meta still lists it as primary: it asks meta to bump the ballot before leading.
    let out = r.handle(Event::Config(config(3, &[S])));
    assert!(
        out.iter().any(|a| matches!(
            a,
            Action::RequestConfig {
                kind: ConfigType::PrimaryForceUpdateBallot,
                ..
            }
        )),
        "{out:?}"
    );
    r.handle(Event::Config(config(4, &[S])));
    assert_eq!(r.status(), Status::Primary);
    let second = learner_signature(&mut r);
    assert_ne!(
        first, second,
        "a learner that finished round {first} must not take it for the new one"
    );
}

#[test]
fn a_restarted_primary_that_cut_a_torn_log_tail_asks_to_be_dropped_not_reinstated() {
    let mut r = Replica::new(
        ME,
        ReplicaOptions::default(),
        config(2, &[S]),
        0,
        Vec::new(),
    );
    r.mark_torn_tail();
    let out = r.handle(Event::Config(config(3, &[S])));
    let kinds: Vec<ConfigType> = out
        .iter()
        .filter_map(|a| match a {
            Action::RequestConfig { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec![ConfigType::DowngradeToInactive], "{out:?}");
    assert_ne!(r.status(), Status::Primary);
}

#[test]
fn a_primary_told_to_step_down_asks_to_become_a_secondary_and_then_is_one() {
    let mut r = primary();
    let out = r.handle(Event::Proposal {
        kind: ConfigType::DowngradeToSecondary,
        node: ME,
    });
    let wanted = match out.as_slice() {
        [Action::RequestConfig {
            kind: ConfigType::DowngradeToSecondary,
            node: ME,
            config,
        }] => config.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(wanted.primary, None);
    assert_eq!(wanted.ballot, 3);
    assert!(wanted.secondaries.contains(&ME) && wanted.secondaries.contains(&S));
    r.handle(Event::Config(wanted));
    assert_eq!(r.status(), Status::Secondary);
    // A proposal about another node, or to a non-primary, changes nothing.
    let out = r.handle(Event::Proposal {
        kind: ConfigType::DowngradeToSecondary,
        node: ME,
    });
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn a_fresh_replica_never_becomes_primary_of_a_partition_with_history() {
    let mut r = fresh();
    r.handle(Event::Config(PartitionConfig {
        primary: None,
        secondaries: vec![ME],
        ..config(5, &[])
    }));
    let out = r.handle(Event::Proposal {
        kind: ConfigType::UpgradeToPrimary,
        node: ME,
    });
    assert!(out.is_empty(), "{out:?}");
    // Listed as primary (e.g. before it was rebuilt): it asks to be removed instead.
    let out = r.handle(Event::Config(config(6, &[S])));
    assert!(
        matches!(
            out.as_slice(),
            [Action::RequestConfig {
                kind: ConfigType::DowngradeToInactive,
                ..
            }]
        ),
        "{out:?}"
    );
    assert_eq!(r.status(), Status::Inactive);
}

#[test]
fn a_learner_never_moves_its_committed_decree_back_for_an_older_checkpoint() {
    const P: NodeId = NodeId(3);
    // Storage applied decree 5 before the node restarted.
    let (mut r, cfg) = invited_learner(5);
    let m = |decree| Mutation {
        ballot: 2,
        decree,
        last_committed: 3,
        timestamp_us: 0,
        updates: Vec::new(),
    };
    let out = r.handle(Event::Message {
        from: P,
        msg: PeerMessage::LearnResponse(LearnResponse {
            signature: 7,
            config: cfg,
            checkpoint: Some(Checkpoint {
                decree: 3,
                timestamp_us: 0,
                data: Bytes::new(),
            }),
            mutations: vec![m(4), m(5), m(6)],
            committed: 6,
            retry: false,
        }),
    });
    assert!(
        !out.iter()
            .any(|a| matches!(a, Action::InstallCheckpoint(_))),
        "{out:?}"
    );
    assert_eq!(r.last_committed(), 5);
    assert_eq!(
        appended(&out).iter().map(|m| m.decree).collect::<Vec<_>>(),
        vec![6]
    );
    let out = r.handle(Event::LogFlushed { appended: 1 });
    assert_eq!(commits(&out), vec![6]);
}

#[test]
fn a_learner_reports_completion_only_once_what_it_learned_is_durable() {
    // Found by the cluster simulator (seed 42308): the primary sends no prepare at or below
    // the last decree of its response, and may commit those decrees without the learner.
    // A learner that said "completed" before its log flushed them, then lost them to a
    // failed flush, became a secondary without a committed decree.
    const P: NodeId = NodeId(3);
    let (mut r, cfg) = invited_learner(0);
    let m = |decree| Mutation {
        ballot: 2,
        decree,
        last_committed: decree - 1,
        timestamp_us: 0,
        updates: Vec::new(),
    };
    let completed = |out: &[Action]| {
        out.iter().any(|a| {
            matches!(
                a,
                Action::Send {
                    msg: PeerMessage::LearnCompleted { .. },
                    ..
                }
            )
        })
    };
    // Decree 1 committed, decree 2 prepared but not yet committed at the primary.
    let out = r.handle(Event::Message {
        from: P,
        msg: PeerMessage::LearnResponse(LearnResponse {
            signature: 7,
            config: cfg,
            checkpoint: None,
            mutations: vec![m(1), m(2)],
            committed: 1,
            retry: false,
        }),
    });
    assert_eq!(appended(&out).len(), 2);
    assert!(
        !completed(&out),
        "completion before anything is durable: {out:?}"
    );
    // Only the first append is durable: decree 1 commits, but decree 2 is not yet logged.
    let out = r.handle(Event::LogFlushed { appended: 1 });
    assert_eq!(commits(&out), vec![1]);
    assert!(
        !completed(&out),
        "completion before decree 2 is durable: {out:?}"
    );
    let out = r.handle(Event::LogFlushed { appended: 2 });
    assert!(completed(&out), "{out:?}");
}

#[test]
fn a_timestamp_near_u64_max_from_the_wire_is_ignored_so_stamps_keep_increasing() {
    // A primary demoted to secondary of S.
    let mut r = primary();
    let mut cfg = config(3, &[ME]);
    cfg.primary = Some(S);
    r.handle(Event::Config(cfg.clone()));
    assert_eq!(r.status(), Status::Secondary);
    let held = r.last_timestamp_us();
    let mut m = Mutation {
        ballot: 3,
        decree: 1,
        last_committed: 0,
        timestamp_us: u64::MAX,
        updates: Vec::new(),
    };
    for ts in [u64::MAX, MAX_TIMESTAMP_US + 1] {
        m.timestamp_us = ts;
        let out = r.handle(Event::Message {
            from: S,
            msg: PeerMessage::Prepare {
                config: cfg.clone(),
                mutation: m.clone(),
            },
        });
        assert!(out.is_empty(), "{out:?}");
    }
    assert_eq!(r.last_timestamp_us(), held);
    m.timestamp_us = MAX_TIMESTAMP_US;
    let out = r.handle(Event::Message {
        from: S,
        msg: PeerMessage::Prepare {
            config: cfg,
            mutation: m,
        },
    });
    assert!(matches!(out.as_slice(), [Action::AppendLog(_)]), "{out:?}");
    assert_eq!(r.last_timestamp_us(), MAX_TIMESTAMP_US);
}

#[test]
fn a_new_primary_filling_a_hole_keeps_timestamps_increasing_along_decrees() {
    // Decree 4 never arrived; decree 5 did, stamped by the old primary.
    let m5 = Mutation {
        ballot: 1,
        decree: 5,
        last_committed: 3,
        timestamp_us: 5_000,
        updates: vec![Bytes::from_static(b"w")],
    };
    let mut r = Replica::new(ME, ReplicaOptions::default(), config(1, &[S]), 3, vec![m5]);
    r.handle(Event::Config(config(2, &[S])));
    let out = r.handle(Event::Config(config(3, &[S])));
    assert_eq!(r.status(), Status::Primary, "{out:?}");
    let appended: Vec<(Decree, u64)> = out
        .iter()
        .filter_map(|a| match a {
            Action::AppendLog(m) => Some((m.decree, m.timestamp_us)),
            _ => None,
        })
        .collect();
    assert_eq!(appended.iter().map(|a| a.0).collect::<Vec<_>>(), vec![4, 5]);
    assert!(
        appended.windows(2).all(|w| w[0].1 < w[1].1),
        "timestamps go back along the decrees: {appended:?}"
    );
}

#[test]
fn a_new_primary_restamps_a_stale_entry_stamped_equal_to_the_decree_before_it() {
    // Decree 8 came from the primary of ballot 9; decree 9 is this node's own proposal
    // from ballot 7, stamped the same microsecond on another clock, never committed.
    let m = |ballot, decree, ts| Mutation {
        ballot,
        decree,
        last_committed: 7,
        timestamp_us: ts,
        updates: vec![Bytes::from_static(b"w")],
    };
    let mut r = Replica::new(
        ME,
        ReplicaOptions::default(),
        config(9, &[S]),
        7,
        vec![m(7, 9, 300), m(9, 8, 300)],
    );
    r.observe_timestamp(100);
    r.handle(Event::Config(config(10, &[S])));
    let out = r.handle(Event::Config(config(11, &[S])));
    assert_eq!(r.status(), Status::Primary, "{out:?}");
    let stamps: Vec<(Decree, u64)> = appended(&out)
        .iter()
        .map(|m| (m.decree, m.timestamp_us))
        .collect();
    assert_eq!(stamps, vec![(8, 300), (9, 301)]);
}

#[test]
fn messages_in_error_state_change_nothing_and_never_panic() {
    let mut r = primary();
    r.handle(Event::LocalError);
    assert_eq!(r.status(), Status::Error);
    let out = r.handle(Event::ClientWrite {
        id: 1,
        update: Bytes::new(),
    });
    assert!(matches!(
        out.as_slice(),
        [Action::Refuse {
            reason: Refusal::NotPrimary,
            ..
        }]
    ));
    let out = r.handle(Event::Config(config(9, &[S])));
    assert!(out.is_empty());
    assert_eq!(r.status(), Status::Error);
}

fn appended(actions: &[Action]) -> Vec<&Mutation> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::AppendLog(m) => Some(m),
            _ => None,
        })
        .collect()
}

#[test]
fn a_primary_stamps_wall_time_but_never_at_or_below_a_timestamp_it_holds() {
    let mut r = primary();
    let out = r.handle(Event::ClientWrite {
        id: 1,
        update: Bytes::from_static(b"a"),
    });
    assert_eq!(appended(&out)[0].timestamp_us, WALL);
    // Its clock steps back (a new primary whose clock is behind the old one's).
    r.handle(Event::Tick {
        now_ms: 20,
        wall_us: WALL - 86_400_000_000,
    });
    let out = r.handle(Event::ClientWrite {
        id: 2,
        update: Bytes::from_static(b"b"),
    });
    assert_eq!(appended(&out)[0].timestamp_us, WALL + 1);
    // A replica that restarts from storage alone stamps above what storage applied.
    let mut r = Replica::new(ME, ReplicaOptions::default(), config(1, &[]), 5, Vec::new());
    r.observe_timestamp(WALL + 500);
    assert_eq!(r.last_timestamp_us(), WALL + 500);
}

#[test]
fn a_primary_proposes_nothing_before_its_first_tick_brings_the_wall_clock() {
    let mut r = Replica::new(
        ME,
        ReplicaOptions::default(),
        PartitionConfig::default(),
        0,
        Vec::new(),
    );
    r.handle(Event::Lease {
        epoch: 1,
        until_ms: 1_000,
    });
    r.handle(Event::Proposal {
        kind: ConfigType::AssignPrimary,
        node: ME,
    });
    r.handle(Event::Config(config(1, &[])));
    r.handle(Event::Config(config(2, &[S])));
    assert_eq!(r.status(), Status::Primary);
    let out = r.handle(Event::ClientWrite {
        id: 1,
        update: Bytes::from_static(b"a"),
    });
    assert!(appended(&out).is_empty(), "{out:?}");
    let out = r.handle(Event::Tick {
        now_ms: 20,
        wall_us: WALL,
    });
    assert_eq!(appended(&out)[0].timestamp_us, WALL);
}

fn secondary() -> Replica {
    let mut r = fresh();
    let mut cfg = config(3, &[ME]);
    cfg.primary = Some(S);
    r.handle(Event::Config(cfg));
    r
}

fn prepare(ballot: Ballot, decree: Decree) -> Event {
    let mut cfg = config(ballot, &[ME]);
    cfg.primary = Some(S);
    Event::Message {
        from: S,
        msg: PeerMessage::Prepare {
            config: cfg,
            mutation: Mutation {
                ballot,
                decree,
                last_committed: 0,
                timestamp_us: WALL,
                updates: Vec::new(),
            },
        },
    }
}

#[test]
fn out_of_range_ballots_and_decrees_from_the_wire_are_ignored() {
    for (ballot, decree) in [
        (MAX_BALLOT + 1, 1),
        (i64::MAX, 1),
        (-1, 1),
        (3, MAX_DECREE + 1),
        (3, i64::MAX),
        (3, 0),
        (3, -5),
    ] {
        let mut r = fresh();
        let before = r.config().clone();
        let out = r.handle(prepare(ballot, decree));
        assert!(out.is_empty(), "ballot {ballot} decree {decree}: {out:?}");
        assert_eq!(r.config(), &before);
    }
}

#[test]
fn a_secondary_whose_log_disk_is_full_refuses_its_primary_at_once() {
    let mut r = secondary();
    r.status = Status::Secondary;
    let before = r.config().clone();
    let out = r.handle(Event::LogFull);
    assert_eq!(
        out,
        vec![Action::Send {
            to: S,
            msg: PeerMessage::PrepareAck {
                ballot: 3,
                decree: 1,
                ok: false,
            },
        }]
    );
    assert_eq!(r.status, Status::Secondary, "the copy itself is intact");
    assert_eq!(r.config(), &before);
    // A primary (or a replica out of any group) has nobody to refuse.
    let mut p = primary();
    assert!(p.handle(Event::LogFull).is_empty());
    assert!(fresh().handle(Event::LogFull).is_empty());
}

#[test]
fn a_primary_refused_by_a_full_secondary_asks_meta_to_remove_it() {
    let mut r = primary();
    r.handle(Event::ClientWrite {
        id: 7,
        update: Bytes::from_static(b"w"),
    });
    let out = r.handle(Event::Message {
        from: S,
        msg: PeerMessage::PrepareAck {
            ballot: 2,
            decree: 1,
            ok: false,
        },
    });
    assert!(
        out.iter().any(|a| matches!(
            a,
            Action::RequestConfig { kind: ConfigType::DowngradeToInactive, node, config }
                if *node == S && config.secondaries.is_empty()
        )),
        "{out:?}"
    );
}

#[test]
fn a_prepare_far_past_what_a_secondary_holds_is_refused_not_logged() {
    let mut r = secondary();
    r.status = Status::Secondary;
    let gap = ReplicaOptions::default().max_prepare_gap;
    let out = r.handle(prepare(3, gap + 1));
    assert!(appended(&out).is_empty(), "{out:?}");
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Send {
            msg: PeerMessage::PrepareAck { ok: false, .. },
            ..
        }
    )));
    assert_eq!(r.last_prepared(), 0);
    let out = r.handle(prepare(3, gap));
    assert_eq!(appended(&out).len(), 1);
}

#[test]
fn a_replica_holding_more_uncommitted_decrees_than_any_primary_allows_refuses_to_lead() {
    let far = ReplicaOptions::default().max_prepare_gap + 10;
    let logged = vec![Mutation {
        ballot: 1,
        decree: far,
        last_committed: 0,
        timestamp_us: WALL,
        updates: Vec::new(),
    }];
    let mut r = Replica::new(ME, ReplicaOptions::default(), config(1, &[]), 0, logged);
    let out = take_over_after_restart(&mut r, WALL);
    assert!(out.len() < 10, "no hole filling: {} actions", out.len());
    assert_eq!(r.status(), Status::Error);
}
