//! One guardian pass over every partition of the cluster, sans-IO: dead members dropped
//! (primaries, by meta itself) or proposed for removal (secondaries), each partition cured
//! with the cluster's load counted as the pass goes, and proposals de-duplicated until they
//! are due again. The meta server's leader loop and the simulator's meta run this code; only
//! how an [`Action`] is carried out (a Raft write, an RPC) differs.

use std::collections::{BTreeMap, BTreeSet};

use pegasus_core::config::{ConfigType, NodeId, PartitionConfig};
use pegasus_core::ids::{Ballot, Gpid};

use crate::guardian::{self, ClusterView, Cure, DeadNodeAction, GuardianOptions, ReplicaInfo};

/// A partition as the pass sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// Meta's configuration.
    pub config: PartitionConfig,
    /// When each of `config.last_drops` was dropped (meta's clock, ms).
    pub drop_ms: BTreeMap<NodeId, u64>,
}

/// What the pass sees of the cluster besides the partitions.
#[derive(Debug, Clone, Default)]
pub struct NodesView {
    /// Nodes alive now.
    pub alive: BTreeSet<NodeId>,
    /// Nodes whose full list of replicas meta holds.
    pub reported: BTreeSet<NodeId>,
    /// What each node reports about each copy it holds.
    pub reports: BTreeMap<(Gpid, NodeId), ReplicaInfo>,
    /// Alive nodes short of disk.
    pub disk_insufficient: BTreeSet<NodeId>,
    /// Now on the clock of `PartitionView::drop_ms`, ms.
    pub now_ms: u64,
}

/// What the pass decided; the caller carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Meta writes this configuration itself (a dead primary dropped), if the partition is
    /// still at `expected_ballot`; then pushes it to `notify`.
    Write {
        /// The ballot the write compares with.
        expected_ballot: Ballot,
        /// The next configuration.
        next: PartitionConfig,
        /// The surviving members of the old configuration, to be told.
        notify: Vec<NodeId>,
    },
    /// Send a proposal about `config` to `target`.
    Propose {
        /// Meta's configuration the proposal is made against.
        config: PartitionConfig,
        /// The node that receives it.
        target: NodeId,
        /// The change.
        kind: ConfigType,
        /// The node the change is about.
        node: NodeId,
    },
    /// Nothing safe can be done without an operator.
    NeedOperator {
        /// The partition.
        gpid: Gpid,
        /// Why.
        why: String,
    },
}

/// The reaction to dead nodes, for every partition with a dead member (level-triggered: run
/// every pass until the configurations reflect it). One dead member per partition per pass.
pub fn dead_members<'a>(
    partitions: impl IntoIterator<Item = &'a PartitionConfig>,
    dead: &BTreeSet<NodeId>,
) -> Vec<Action> {
    let mut out = Vec::new();
    for pc in partitions {
        let Some(node) = pc.members().into_iter().find(|m| dead.contains(m)) else {
            continue;
        };
        match guardian::on_node_dead(pc, node) {
            DeadNodeAction::Write(next) => out.push(Action::Write {
                expected_ballot: pc.ballot,
                next,
                notify: pc
                    .members()
                    .into_iter()
                    .filter(|n| !dead.contains(n))
                    .collect(),
            }),
            DeadNodeAction::Propose { target, node } => out.push(Action::Propose {
                config: pc.clone(),
                target,
                kind: ConfigType::DowngradeToInactive,
                node,
            }),
            DeadNodeAction::Nothing => {}
        }
    }
    out
}

/// The guardian's cure for every partition, in order. The load of each node (primaries and
/// replicas) is counted over all partitions first, and every proposal that adds a primary
/// or a copy counts at once, so the next partitions spread over other nodes.
pub fn cure_all(
    partitions: &[PartitionView],
    nodes: &NodesView,
    opts: &GuardianOptions,
) -> Vec<Action> {
    let mut primaries: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut replicas: BTreeMap<NodeId, usize> = BTreeMap::new();
    for p in partitions {
        if let Some(n) = p.config.primary {
            *primaries.entry(n).or_default() += 1;
        }
        for m in p.config.members() {
            *replicas.entry(m).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    for p in partitions {
        let gpid = p.config.gpid;
        let view = ClusterView {
            alive: nodes.alive.clone(),
            primaries: primaries.clone(),
            replicas: replicas.clone(),
            now_ms: nodes.now_ms,
            drop_time_ms: p.drop_ms.clone(),
            reported: nodes.reported.clone(),
            disk_insufficient: nodes.disk_insufficient.clone(),
            replica_info: nodes
                .reports
                .range((gpid, NodeId(0))..=(gpid, NodeId(u64::MAX)))
                .map(|((_, n), i)| (*n, *i))
                .collect(),
        };
        match guardian::cure(&p.config, &view, opts) {
            Cure::Propose { target, kind, node } => {
                if matches!(
                    kind,
                    ConfigType::AssignPrimary | ConfigType::UpgradeToPrimary
                ) {
                    *primaries.entry(node).or_default() += 1;
                }
                if matches!(kind, ConfigType::AssignPrimary | ConfigType::AddSecondary) {
                    *replicas.entry(node).or_default() += 1;
                }
                out.push(Action::Propose {
                    config: p.config.clone(),
                    target,
                    kind,
                    node,
                });
            }
            Cure::NeedOperator(why) => out.push(Action::NeedOperator { gpid, why }),
            Cure::Nothing => {}
        }
    }
    out
}

/// The proposals sent, so the same one is not sent again every pass: a proposal is re-sent
/// only when `resend_ms` passed since it was sent for the same ballot, change and node.
#[derive(Debug, Clone, Default)]
pub struct Proposals {
    resend_ms: u64,
    sent: BTreeMap<Gpid, (Ballot, ConfigType, NodeId, u64)>,
}

impl Proposals {
    /// Proposals re-sent after `resend_ms` without an effect.
    pub fn new(resend_ms: u64) -> Self {
        Self {
            resend_ms,
            sent: BTreeMap::new(),
        }
    }

    /// Whether to send `kind` of `node` for `pc` now (and records it if so).
    pub fn admit(
        &mut self,
        pc: &PartitionConfig,
        kind: ConfigType,
        node: NodeId,
        now_ms: u64,
    ) -> bool {
        if let Some((ballot, k, n, at)) = self.sent.get(&pc.gpid) {
            if *ballot == pc.ballot
                && *k == kind
                && *n == node
                && now_ms.saturating_sub(*at) < self.resend_ms
            {
                return false;
            }
        }
        self.sent.insert(pc.gpid, (pc.ballot, kind, node, now_ms));
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::panic,
        reason = "test code"
    )]

    use super::*;

    fn empty(app: i32, pidx: i32) -> PartitionView {
        PartitionView {
            config: PartitionConfig {
                gpid: Gpid::new(app, pidx),
                max_replica_count: 3,
                ..PartitionConfig::default()
            },
            drop_ms: BTreeMap::new(),
        }
    }

    #[test]
    fn new_partitions_spread_their_primaries_over_the_alive_nodes() {
        let parts: Vec<PartitionView> = (0..6).map(|i| empty(1, i)).collect();
        let nodes = NodesView {
            alive: (1..=3).map(NodeId).collect(),
            ..NodesView::default()
        };
        let actions = cure_all(&parts, &nodes, &GuardianOptions::default());
        let mut per_node: BTreeMap<NodeId, usize> = BTreeMap::new();
        for a in &actions {
            let Action::Propose { kind, node, .. } = a else {
                panic!("{a:?}")
            };
            assert_eq!(*kind, ConfigType::AssignPrimary);
            *per_node.entry(*node).or_default() += 1;
        }
        assert_eq!(
            per_node.values().copied().collect::<Vec<_>>(),
            vec![2, 2, 2]
        );
    }

    #[test]
    fn a_dead_primary_is_written_out_and_a_dead_secondary_is_proposed_for_removal() {
        let mut a = empty(1, 0).config;
        a.ballot = 3;
        a.primary = Some(NodeId(1));
        a.secondaries = vec![NodeId(2), NodeId(3)];
        let mut b = a.clone();
        b.gpid = Gpid::new(1, 1);
        b.primary = Some(NodeId(2));
        b.secondaries = vec![NodeId(1), NodeId(3)];
        let dead: BTreeSet<NodeId> = [NodeId(1)].into();
        let actions = dead_members([&a, &b], &dead);
        assert!(matches!(
            &actions[0],
            Action::Write { expected_ballot: 3, next, notify }
                if next.primary.is_none() && notify == &vec![NodeId(2), NodeId(3)]
        ));
        assert!(matches!(
            &actions[1],
            Action::Propose {
                target: NodeId(2),
                kind: ConfigType::DowngradeToInactive,
                node: NodeId(1),
                ..
            }
        ));
    }

    #[test]
    fn a_proposal_is_sent_again_only_when_due_or_changed() {
        let pc = empty(1, 0).config;
        let mut p = Proposals::new(3_000);
        assert!(p.admit(&pc, ConfigType::AssignPrimary, NodeId(1), 0));
        assert!(!p.admit(&pc, ConfigType::AssignPrimary, NodeId(1), 2_999));
        assert!(p.admit(&pc, ConfigType::AssignPrimary, NodeId(2), 2_999));
        assert!(p.admit(&pc, ConfigType::AssignPrimary, NodeId(2), 6_000));
    }
}
