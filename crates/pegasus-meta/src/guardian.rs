//! The meta server's partition logic, sans-IO: accepting configuration updates (ballot CAS),
//! reacting to dead nodes, and choosing the next action for an unhealthy partition (the
//! "cure" rules of Pegasus's partition guardian, PacificA's configuration manager).

use std::collections::{BTreeMap, BTreeSet};

use pegasus_core::config::{ConfigType, NodeId, PartitionConfig};
use pegasus_core::ids::{Ballot, Decree};

/// How many dropped members a configuration remembers.
pub const MAX_LAST_DROPS: usize = 3;

pub use pegasus_control::ConfigUpdate;

/// Why an update is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// Not `current + 1` (`ERR_INVALID_VERSION`): the requester has a stale view.
    #[error("ballot {got} does not follow {current}")]
    InvalidVersion {
        /// Meta's ballot.
        current: Ballot,
        /// The request's ballot.
        got: Ballot,
    },
    /// The change does not fit the current configuration (`ERR_INVALID_PARAMETERS`).
    #[error("invalid change: {0}")]
    InvalidChange(String),
}

/// What happened to an accepted update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// The new configuration to persist (then reply ERR_OK).
    Applied(PartitionConfig),
    /// The same update was applied before (a retry): reply ERR_OK, change nothing.
    AlreadyApplied,
}

fn same_membership(a: &PartitionConfig, b: &PartitionConfig) -> bool {
    let mut sa = a.secondaries.clone();
    let mut sb = b.secondaries.clone();
    sa.sort_unstable();
    sb.sort_unstable();
    a.primary == b.primary && sa == sb
}

fn record_drop(pc: &mut PartitionConfig, node: NodeId) {
    pc.last_drops.retain(|n| *n != node);
    pc.last_drops.push(node);
    let excess = pc.last_drops.len().saturating_sub(MAX_LAST_DROPS);
    pc.last_drops.drain(..excess);
}

fn invalid(msg: String) -> UpdateError {
    UpdateError::InvalidChange(msg)
}

/// The membership `kind` makes of `current` (ballot unchanged).
pub fn transform(
    current: &PartitionConfig,
    kind: ConfigType,
    node: NodeId,
) -> Result<PartitionConfig, UpdateError> {
    let mut pc = current.clone();
    match kind {
        ConfigType::AssignPrimary => {
            if pc.primary.is_some() {
                return Err(invalid(format!(
                    "assign primary {node}: {} is primary",
                    pc.primary.map_or(0, |p| p.0)
                )));
            }
            pc.secondaries.retain(|n| *n != node);
            pc.primary = Some(node);
            pc.last_drops.retain(|n| *n != node);
        }
        ConfigType::UpgradeToPrimary => {
            if pc.primary.is_some() || !pc.secondaries.contains(&node) {
                return Err(invalid(format!(
                    "upgrade {node} to primary: not a secondary of a primary-less group"
                )));
            }
            pc.secondaries.retain(|n| *n != node);
            pc.primary = Some(node);
        }
        ConfigType::UpgradeToSecondary | ConfigType::AddSecondary => {
            if pc.primary.is_none() || pc.is_member(node) {
                return Err(invalid(format!(
                    "add secondary {node}: no primary, or already a member"
                )));
            }
            pc.secondaries.push(node);
            pc.last_drops.retain(|n| *n != node);
        }
        ConfigType::DowngradeToSecondary => {
            if pc.primary != Some(node) {
                return Err(invalid(format!(
                    "downgrade {node} to secondary: not the primary"
                )));
            }
            pc.primary = None;
            pc.secondaries.push(node);
        }
        ConfigType::DowngradeToInactive => {
            if !pc.is_member(node) {
                return Err(invalid(format!(
                    "downgrade {node} to inactive: not a member"
                )));
            }
            if pc.primary == Some(node) {
                pc.primary = None;
            }
            pc.secondaries.retain(|n| *n != node);
            record_drop(&mut pc, node);
        }
        ConfigType::Remove => {
            if !pc.secondaries.contains(&node) {
                return Err(invalid(format!("remove {node}: not a secondary")));
            }
            pc.secondaries.retain(|n| *n != node);
            record_drop(&mut pc, node);
        }
        ConfigType::PrimaryForceUpdateBallot => {
            if pc.primary != Some(node) {
                return Err(invalid(format!("force ballot by {node}: not the primary")));
            }
        }
    }
    Ok(pc)
}

/// Meta's handling of `RPC_CM_UPDATE_PARTITION_CONFIGURATION`: accepted only with
/// `ballot == current + 1` and a membership that is exactly what `kind` makes of the current
/// one. The result (with meta's own bookkeeping: drops, committed decree) is what to persist.
pub fn apply_update(
    current: &PartitionConfig,
    req: &ConfigUpdate,
) -> Result<UpdateOutcome, UpdateError> {
    if req.config.ballot == current.ballot && same_membership(&req.config, current) {
        return Ok(UpdateOutcome::AlreadyApplied);
    }
    if req.config.ballot != current.ballot + 1 {
        return Err(UpdateError::InvalidVersion {
            current: current.ballot,
            got: req.config.ballot,
        });
    }
    let mut next = transform(current, req.kind, req.node)?;
    if !same_membership(&next, &req.config) {
        return Err(invalid(format!(
            "{:?} of {} does not lead to the requested membership",
            req.kind, req.node
        )));
    }
    next.ballot = req.config.ballot;
    next.last_committed_decree = current
        .last_committed_decree
        .max(req.config.last_committed_decree);
    Ok(UpdateOutcome::Applied(next))
}

/// What meta does when a node is declared dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadNodeAction {
    /// The node served nothing here.
    Nothing,
    /// The primary died: meta writes this configuration itself (primary cleared, ballot+1).
    Write(PartitionConfig),
    /// A secondary died: ask the primary to remove it.
    Propose {
        /// The primary.
        target: NodeId,
        /// The dead secondary.
        node: NodeId,
    },
}

/// Reaction to `node` being declared dead.
pub fn on_node_dead(pc: &PartitionConfig, node: NodeId) -> DeadNodeAction {
    if pc.primary == Some(node) {
        let mut next = pc.clone();
        next.primary = None;
        next.ballot += 1;
        record_drop(&mut next, node);
        DeadNodeAction::Write(next)
    } else if pc.secondaries.contains(&node) {
        match pc.primary {
            Some(primary) => DeadNodeAction::Propose {
                target: primary,
                node,
            },
            None => {
                let mut next = pc.clone();
                next.secondaries.retain(|n| *n != node);
                next.ballot += 1;
                record_drop(&mut next, node);
                DeadNodeAction::Write(next)
            }
        }
    } else {
        DeadNodeAction::Nothing
    }
}

/// What a replica reports about its copy of a partition (collected for the all-dead rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaInfo {
    /// Its ballot.
    pub ballot: Ballot,
    /// Its committed decree.
    pub last_committed: Decree,
    /// Its largest prepared (logged) decree.
    pub last_prepared: Decree,
    /// Created empty and not yet filled by learning.
    pub fresh: bool,
}

/// The cluster as the guardian sees it when curing one partition.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// Nodes alive now.
    pub alive: BTreeSet<NodeId>,
    /// Primaries each node serves (balance when choosing).
    pub primaries: BTreeMap<NodeId, usize>,
    /// Replicas each node serves.
    pub replicas: BTreeMap<NodeId, usize>,
    /// Now, ms.
    pub now_ms: u64,
    /// When each of this partition's `last_drops` was dropped, ms.
    pub drop_time_ms: BTreeMap<NodeId, u64>,
    /// What nodes report about their copy of this partition.
    pub replica_info: BTreeMap<NodeId, ReplicaInfo>,
    /// Nodes whose current list of replicas meta holds: one of them without an entry in
    /// `replica_info` has no copy of this partition (it failed and was set aside).
    pub reported: BTreeSet<NodeId>,
    /// Alive nodes whose last report says their disk is insufficient (below
    /// `disk_min_available_space_ratio`): they take no new replica, give up their primaries
    /// to a healthy copy, and are the first extra copy removed.
    pub disk_insufficient: BTreeSet<NodeId>,
}

/// Guardian settings (`[meta_server]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardianOptions {
    /// Fewest members that may commit (`mutation_2pc_min_replica_count`).
    pub min_2pc_replicas: usize,
    /// How long to wait for a dropped member to return before adding another node
    /// (`replica_assign_delay_ms_for_dropouts`).
    pub dropout_delay_ms: u64,
}

impl Default for GuardianOptions {
    fn default() -> Self {
        Self {
            min_2pc_replicas: 2,
            dropout_delay_ms: 600_000,
        }
    }
}

/// The guardian's decision for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cure {
    /// Healthy, or waiting (e.g. for a dropped member to return).
    Nothing,
    /// Send a configuration proposal to `target`.
    Propose {
        /// The node that receives the proposal.
        target: NodeId,
        /// The change.
        kind: ConfigType,
        /// The node the change is about.
        node: NodeId,
    },
    /// Every member is dead and no candidate is safe: an operator must decide.
    NeedOperator(String),
}

fn fewest(
    candidates: impl IntoIterator<Item = NodeId>,
    load: &BTreeMap<NodeId, usize>,
) -> Option<NodeId> {
    candidates
        .into_iter()
        .min_by_key(|n| (load.get(n).copied().unwrap_or(0), *n))
}

/// The candidate with the fewest `load` among those whose disk is fine; among the others
/// only when no candidate has a fine disk (a primary on a full disk beats no primary).
fn fewest_preferring_disk(
    candidates: impl IntoIterator<Item = NodeId>,
    load: &BTreeMap<NodeId, usize>,
    view: &ClusterView,
) -> Option<NodeId> {
    let all: Vec<NodeId> = candidates.into_iter().collect();
    fewest(
        all.iter()
            .copied()
            .filter(|n| !view.disk_insufficient.contains(n)),
        load,
    )
    .or_else(|| fewest(all, load))
}

/// The guardian's cure rules for one partition.
///
/// Disk rules (`view.disk_insufficient`): a node short of disk is never added as a
/// secondary (the partition stays at fewer copies instead: see [`short_of_disk`]); it is
/// made primary only when no candidate has space; a primary on it hands its role to an
/// alive secondary with space (DowngradeToSecondary, then the promotion rule) when the
/// group has at least `min_2pc_replicas` members; and it is the first extra copy removed.
pub fn cure(pc: &PartitionConfig, view: &ClusterView, opts: &GuardianOptions) -> Cure {
    let alive = |n: &NodeId| view.alive.contains(n);
    let disk_ok = |n: &NodeId| !view.disk_insufficient.contains(n);
    let Some(primary) = pc.primary else {
        // Promote the alive secondary with the fewest primaries, one with disk space first,
        // among those that may hold the data: not one whose node reported its replicas
        // without this partition (its copy was set aside), nor one that reports an empty
        // copy recreated since (found by the cluster simulator: meta proposed such a copy
        // for good, and it refused for good). With none left, the all-dead rule decides.
        let holds_copy = |n: &NodeId| match view.replica_info.get(n) {
            Some(i) => !i.fresh,
            None => !view.reported.contains(n),
        };
        if let Some(node) = fewest_preferring_disk(
            pc.secondaries
                .iter()
                .copied()
                .filter(alive)
                .filter(holds_copy),
            &view.primaries,
            view,
        ) {
            return Cure::Propose {
                target: node,
                kind: ConfigType::UpgradeToPrimary,
                node,
            };
        }
        if pc.secondaries.is_empty() && pc.last_drops.is_empty() && pc.ballot == 0 {
            // Never had members: any alive node will do, one with disk space first.
            return match fewest_preferring_disk(view.alive.iter().copied(), &view.primaries, view) {
                Some(node) => Cure::Propose {
                    target: node,
                    kind: ConfigType::AssignPrimary,
                    node,
                },
                None => Cure::Nothing,
            };
        }
        return all_dead(pc, view);
    };
    let members = 1 + pc.secondaries.len();
    let wanted = pc.max_replica_count as usize;
    // A primary on a disk short of space hands its role to a healthy copy, unless the group
    // is already degraded (the reconfiguration would cost it writes for a disk reason).
    if alive(&primary)
        && !disk_ok(&primary)
        && members >= opts.min_2pc_replicas
        && pc.secondaries.iter().any(|s| alive(s) && disk_ok(s))
    {
        return Cure::Propose {
            target: primary,
            kind: ConfigType::DowngradeToSecondary,
            node: primary,
        };
    }
    if members < wanted {
        let last_drop = pc.last_drops.last().copied();
        let emergency = members < opts.min_2pc_replicas
            || last_drop.is_none()
            || last_drop.is_some_and(|d| {
                view.drop_time_ms
                    .get(&d)
                    .is_none_or(|t| view.now_ms.saturating_sub(*t) >= opts.dropout_delay_ms)
            });
        // Never a node short of disk: it would fail to write the copy and be dropped again.
        let can_take = |n: &NodeId| alive(n) && disk_ok(n) && !pc.is_member(*n);
        let returning = pc.last_drops.iter().rev().copied().find(can_take);
        let choice = if emergency {
            returning
                .or_else(|| fewest(view.alive.iter().copied().filter(can_take), &view.replicas))
        } else {
            last_drop.filter(can_take)
        };
        return match choice {
            Some(node) => Cure::Propose {
                target: primary,
                kind: ConfigType::AddSecondary,
                node,
            },
            None => Cure::Nothing,
        };
    }
    if members > wanted {
        // A secondary short of disk goes first, then the most loaded node.
        if let Some(node) = pc
            .secondaries
            .iter()
            .copied()
            .max_by_key(|n| (!disk_ok(n), view.replicas.get(n).copied().unwrap_or(0), *n))
        {
            return Cure::Propose {
                target: primary,
                kind: ConfigType::Remove,
                node,
            };
        }
    }
    Cure::Nothing
}

/// The alive nodes that could take a missing copy of `pc` but for their insufficient disk:
/// non-empty only when `pc` has a primary, fewer members than its replica count, and no
/// alive non-member with disk space, so that [`cure`] keeps it at fewer copies for lack of
/// disk (meta reports it: `pegasus_meta_partitions_short_of_disk`). Empty when a node with
/// space could take the copy (perhaps after the dropout delay) or no other node is alive.
pub fn short_of_disk(pc: &PartitionConfig, view: &ClusterView) -> Vec<NodeId> {
    if pc.primary.is_none() || 1 + pc.secondaries.len() >= pc.max_replica_count as usize {
        return Vec::new();
    }
    let (full, fine): (Vec<NodeId>, Vec<NodeId>) = view
        .alive
        .iter()
        .copied()
        .filter(|n| !pc.is_member(*n))
        .partition(|n| view.disk_insufficient.contains(n));
    if fine.is_empty() {
        full
    } else {
        Vec::new()
    }
}

/// Every member is dead: pick a dropped node only when it is provably up to date. Dead
/// secondaries still listed count as the most recent drops (meta may not have removed them
/// yet: their removal is proposed to a primary that may itself be gone).
fn all_dead(pc: &PartitionConfig, view: &ClusterView) -> Cure {
    let candidates: Vec<NodeId> = pc
        .last_drops
        .iter()
        .chain(pc.secondaries.iter())
        .copied()
        .collect();
    // A node that reported its replicas without this partition holds nothing of it: its
    // copy failed and was set aside, and waiting for it would wait forever. It counts as
    // an empty copy, exactly as if it had been recreated empty.
    // A copy recreated empty counts as empty, whatever ballot it adopted.
    let empty = ReplicaInfo {
        ballot: 0,
        last_committed: 0,
        last_prepared: 0,
        fresh: true,
    };
    let info = |n: &NodeId| match view.replica_info.get(n) {
        Some(i) if i.fresh => Some(empty),
        Some(i) => Some(*i),
        None => view.reported.contains(n).then_some(empty),
    };
    let safe = |n: NodeId, i: ReplicaInfo| -> Cure {
        if pc.ballot > 0 && i.last_prepared < pc.last_committed_decree {
            Cure::NeedOperator(format!(
                "{n} holds decrees up to {}, but {} were committed",
                i.last_prepared, pc.last_committed_decree
            ))
        } else if pc.ballot > 0
            && pc.last_committed_decree > 0
            && i.ballot == 0
            && i.last_prepared == 0
        {
            Cure::NeedOperator(format!(
                "{n} has an empty replica; refusing to make it primary"
            ))
        } else {
            Cure::Propose {
                target: n,
                kind: ConfigType::AssignPrimary,
                node: n,
            }
        }
    };
    match candidates.as_slice() {
        [] => Cure::NeedOperator("no members and no drop history".into()),
        [only] => match (view.alive.contains(only), info(only)) {
            (true, Some(i)) => safe(*only, i),
            _ => Cure::Nothing,
        },
        [.., a, b] => {
            let (Some(ia), Some(ib)) = (info(a), info(b)) else {
                // Wait until both of the last two dropped nodes are back and reported.
                return Cure::Nothing;
            };
            if !view.alive.contains(a) || !view.alive.contains(b) {
                return Cure::Nothing;
            }
            // A copy recreated empty loses a tie to one that held the partition: with nothing
            // ever written both look empty (data ballot 0), and the fresh one refuses to
            // lead (found by the simulator at 288 partitions: meta proposed the fresh copy
            // for good, and it refused for good).
            let key = |i: ReplicaInfo| (i.ballot, i.last_committed, i.last_prepared, !i.fresh);
            let (n, i) = if key(ib) >= key(ia) {
                (*b, ib)
            } else {
                (*a, ia)
            };
            safe(n, i)
        }
    }
}
