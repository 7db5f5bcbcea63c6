//! Partition configurations: who serves a partition, at which ballot. The meta server owns
//! them; replicas propose changes with `ballot + 1` and never change membership alone.

use serde::{Deserialize, Serialize};

use crate::ids::{Ballot, Decree, Gpid};

/// A server, as the replication layer names it. The runtime maps it to a network address
/// (the packed `rpc_address` of the wire protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// One partition's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PartitionConfig {
    /// The partition.
    pub gpid: Gpid,
    /// Version: +1 on every change. 0 means "never had members".
    pub ballot: Ballot,
    /// Replicas wanted (primary included).
    pub max_replica_count: u32,
    /// The primary, if any.
    pub primary: Option<NodeId>,
    /// The secondaries.
    pub secondaries: Vec<NodeId>,
    /// Members recently removed, oldest first (candidates when every member is dead).
    pub last_drops: Vec<NodeId>,
    /// The committed decree meta last heard of.
    pub last_committed_decree: Decree,
}

impl PartitionConfig {
    /// Primary and secondaries.
    pub fn members(&self) -> Vec<NodeId> {
        self.primary
            .iter()
            .chain(self.secondaries.iter())
            .copied()
            .collect()
    }

    /// Whether `node` is the primary or a secondary.
    pub fn is_member(&self, node: NodeId) -> bool {
        self.primary == Some(node) || self.secondaries.contains(&node)
    }

    /// Whether the partition has a primary and `max_replica_count - 1` secondaries.
    pub fn is_healthy(&self) -> bool {
        self.primary.is_some() && self.secondaries.len() + 1 == self.max_replica_count as usize
    }
}

/// The kinds of configuration change (`config_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConfigType {
    /// Make a node primary of a partition that never had members.
    AssignPrimary,
    /// Promote a secondary to primary.
    UpgradeToPrimary,
    /// Ask the primary to bring in a new member (it learns first).
    AddSecondary,
    /// The primary reports that a learner caught up: it becomes a secondary.
    UpgradeToSecondary,
    /// Demote the primary to a secondary (balancing).
    DowngradeToSecondary,
    /// Remove a member that failed (primary or secondary).
    DowngradeToInactive,
    /// Remove a secondary that is not needed.
    Remove,
    /// A restarted primary that meta still lists bumps the ballot to serve again.
    PrimaryForceUpdateBallot,
}
