//! The invariants checked after every event, and tampering with messages in flight.

use std::collections::BTreeMap;

use bytes::Bytes;
use pegasus_core::ids::{Ballot, Decree};

use super::group::{Before, Node};
use super::MAX_ACTIONS;
use crate::core::{Action, Checkpoint, Event, PeerMessage, Replica, Status, MAX_BALLOT};

pub(super) fn before(r: &Replica, event: &Event, gap: i64) -> Before {
    let committed = r.last_committed();
    let prepared = r.last_prepared();
    // Only a configuration (from meta, or adopted from a primary's message) makes a replica
    // primary, and it fills holes only when at most `gap` decrees are uncommitted.
    let may_lead = match event {
        Event::Config(_) => true,
        Event::Message {
            msg: PeerMessage::Prepare { config, .. } | PeerMessage::GroupCheck { config, .. },
            ..
        } => config.ballot > r.config().ballot,
        _ => false,
    };
    let held = (may_lead && prepared.saturating_sub(committed) <= gap).then(|| {
        let mut held = Vec::new();
        let mut d = committed.saturating_add(1);
        while d <= prepared {
            held.push(r.mutation(d).is_some());
            d = d.saturating_add(1);
        }
        held
    });
    Before {
        status: r.status(),
        committed,
        prepared,
        timestamp_us: r.last_timestamp_us(),
        held,
    }
}

fn ballots(msg: &PeerMessage) -> Vec<Ballot> {
    match msg {
        PeerMessage::Prepare { config, mutation } => vec![config.ballot, mutation.ballot],
        PeerMessage::PrepareAck { ballot, .. } | PeerMessage::GroupCheckAck { ballot, .. } => {
            vec![*ballot]
        }
        PeerMessage::GroupCheck { config, .. } | PeerMessage::AddLearner { config, .. } => {
            vec![config.ballot]
        }
        PeerMessage::LearnResponse(r) => std::iter::once(r.config.ballot)
            .chain(r.mutations.iter().map(|m| m.ballot))
            .collect(),
        PeerMessage::Learn { .. } | PeerMessage::LearnCompleted { .. } => Vec::new(),
    }
}

/// The invariants of one `handle` call on node `n` (see [`replica_events`]); `agreed` is
/// given in honest runs.
///
/// [`replica_events`]: super::replica_events
pub(super) fn check(
    n: &mut Node,
    before: &Before,
    actions: &[Action],
    mut agreed: Option<&mut BTreeMap<Decree, (Vec<Bytes>, u64)>>,
) {
    let r = &n.replica;
    assert!(
        actions.len() <= MAX_ACTIONS,
        "{} actions from one event",
        actions.len()
    );
    assert!(r.last_committed() <= r.last_prepared());
    assert!(r.last_timestamp_us() >= before.timestamp_us);
    if before.status == Status::Error {
        assert!(
            actions.iter().all(|a| matches!(a, Action::Refuse { .. })),
            "a replica in Error acted: {actions:?}"
        );
    }
    let ballot_ok = |b: Ballot| (0..=MAX_BALLOT + 1).contains(&b);
    let leads = r.status() == Status::Primary;
    let mut committed = before.committed;
    let mut last_commit_us = n.last_commit_us;
    let mut floor = before.timestamp_us;
    for a in actions {
        match a {
            Action::InstallCheckpoint(cp) => {
                assert!(
                    cp.decree >= committed,
                    "a checkpoint at {} moves committed back from {committed}",
                    cp.decree
                );
                committed = cp.decree;
                last_commit_us = cp.timestamp_us;
            }
            Action::Commit { mutation, .. } => {
                assert_eq!(
                    mutation.decree,
                    committed.saturating_add(1),
                    "commit out of order"
                );
                assert_eq!(
                    n.durable.get(&mutation.decree),
                    Some(mutation),
                    "committed a mutation its log did not make durable"
                );
                committed = mutation.decree;
                if let Some(agreed) = agreed.as_deref_mut() {
                    // Safety of an honest run: every replica commits the same mutation at a
                    // decree, and timestamps increase with decrees (storage compacts expired
                    // records at the last applied timestamp, so it must never go back).
                    assert!(
                        mutation.timestamp_us > last_commit_us,
                        "decree {} committed at {} after {}",
                        mutation.decree,
                        mutation.timestamp_us,
                        last_commit_us
                    );
                    let content = (mutation.updates.clone(), mutation.timestamp_us);
                    let first = agreed.entry(mutation.decree).or_insert(content.clone());
                    assert_eq!(
                        *first, content,
                        "replicas committed different mutations at decree {}",
                        mutation.decree
                    );
                }
                last_commit_us = mutation.timestamp_us;
            }
            Action::AppendLog(m) => {
                let new_decree = m.decree > before.prepared;
                let hole = before.held.as_ref().is_some_and(|held| {
                    let k = m.decree.saturating_sub(before.committed).saturating_sub(1);
                    usize::try_from(k)
                        .ok()
                        .and_then(|k| held.get(k))
                        .is_some_and(|h| !h)
                });
                if leads && m.ballot == r.config().ballot && (new_decree || hole) {
                    assert!(
                        m.timestamp_us > floor,
                        "a primary stamped decree {} with {} <= {floor}",
                        m.decree,
                        m.timestamp_us
                    );
                }
                floor = floor.max(m.timestamp_us);
            }
            Action::Send { msg, .. } => {
                for b in ballots(msg) {
                    assert!(ballot_ok(b), "sent ballot {b}: {msg:?}");
                }
                if let PeerMessage::PrepareAck {
                    ballot,
                    decree,
                    ok: true,
                } = msg
                {
                    // Logged before acknowledged: what it holds at the decree (unless committed
                    // and dropped from memory since) is durable.
                    let durable = n.durable.get(decree);
                    assert!(
                        *decree <= before.committed
                            || (durable.is_some_and(|m| m.ballot == *ballot)
                                && r.mutation(*decree).is_none_or(|m| Some(m) == durable)),
                        "acknowledged decree {decree} at ballot {ballot} before logging it"
                    );
                }
            }
            Action::RequestConfig { config, .. } => {
                assert!(
                    ballot_ok(config.ballot),
                    "asked meta for ballot {}",
                    config.ballot
                );
            }
            Action::Refuse { .. } | Action::BuildLearnState { .. } => {}
        }
    }
    assert_eq!(r.last_committed(), committed, "committed without a Commit");
    n.last_commit_us = last_commit_us;
}

/// Replaces one field of a message in flight (`field` % 6: ballot, decree, the mutation's
/// ballot, timestamp, flag or signature, piggybacked committed decree or checkpoint).
pub(super) fn tamper(msg: &mut PeerMessage, field: u8, v: i64) {
    let u = u64::from_le_bytes(v.to_le_bytes());
    match (msg, field % 6) {
        (PeerMessage::Prepare { config, mutation }, f) => match f {
            0 => {
                config.ballot = v;
                mutation.ballot = v;
            }
            1 => mutation.decree = v,
            2 => mutation.ballot = v,
            3 => mutation.timestamp_us = u,
            4 => mutation.updates.push(Bytes::from_static(b"tampered")),
            _ => mutation.last_committed = v,
        },
        (PeerMessage::PrepareAck { ballot, decree, ok }, f) => match f {
            0 | 2 => *ballot = v,
            4 => *ok = !*ok,
            _ => *decree = v,
        },
        (
            PeerMessage::GroupCheck {
                config,
                last_committed,
            },
            f,
        ) => match f {
            0 | 2 => config.ballot = v,
            _ => *last_committed = v,
        },
        (PeerMessage::GroupCheckAck { ballot, ok }, f) => match f {
            4 => *ok = !*ok,
            _ => *ballot = v,
        },
        (PeerMessage::AddLearner { config, signature }, f) => match f {
            4 => *signature = u,
            _ => config.ballot = v,
        },
        (
            PeerMessage::Learn {
                signature,
                last_committed,
            },
            f,
        ) => match f {
            4 => *signature = u,
            _ => *last_committed = v,
        },
        (PeerMessage::LearnResponse(r), f) => match f {
            0 => r.config.ballot = v,
            1 => r.committed = v,
            2 => {
                if let Some(m) = r.mutations.first_mut() {
                    m.ballot = v;
                }
            }
            3 => {
                if let Some(m) = r.mutations.last_mut() {
                    m.timestamp_us = u;
                }
            }
            4 => r.retry = !r.retry,
            _ => {
                r.checkpoint = Some(Checkpoint {
                    decree: v,
                    timestamp_us: 0,
                    data: Bytes::new(),
                });
            }
        },
        (PeerMessage::LearnCompleted { signature }, _) => *signature = u,
    }
}
