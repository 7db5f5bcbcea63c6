//! What tests and tools may read of a running simulation: time, meta's configurations,
//! replica statuses, which replica may serve reads, and what the replicas cost in rounds.

use std::collections::BTreeSet;

use pegasus_core::config::{NodeId, PartitionConfig};
use pegasus_core::ids::{Decree, Gpid};
use pegasus_replica::core::Status;
use pegasus_replica::driver::PartitionDriver;

use crate::host::SimHost;
use crate::{Sim, FIRST};

impl Sim {
    /// Virtual time, ms.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Meta's configuration of the first table's first partition (the one-partition
    /// scenarios' group).
    pub fn config(&self) -> &PartitionConfig {
        self.config_of(FIRST)
    }

    /// Meta's configuration of `gpid`.
    ///
    /// # Panics
    /// If the cluster has no such partition.
    #[allow(
        clippy::panic,
        reason = "a caller's mistake, in tests of the simulator"
    )]
    pub fn config_of(&self, gpid: Gpid) -> &PartitionConfig {
        self.meta
            .configs
            .get(&gpid)
            .unwrap_or_else(|| panic!("no partition {gpid:?}"))
    }

    /// Every partition's configuration, as meta holds it.
    pub fn configs(&self) -> impl Iterator<Item = &PartitionConfig> {
        self.meta.configs.values()
    }

    /// The node whose replica of `gpid` may serve a read now (its published read grant
    /// under its node's lease, as a read would check), if any.
    pub fn readable_primary(&self, gpid: Gpid) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.up && n.paused_until <= self.now)
            .find(|(id, n)| {
                self.driver(**id, gpid)
                    .is_some_and(|d| n.lease.allows(d.host().view.read, self.local_time(**id)))
            })
            .map(|(id, _)| *id)
    }

    /// Driver rounds run so far.
    pub fn rounds(&self) -> u64 {
        self.report.rounds
    }

    /// Driver rounds run so far by the replicas of `gpid`.
    pub fn rounds_of(&self, gpid: Gpid) -> u64 {
        self.rounds_by_gpid.get(&gpid).copied().unwrap_or(0)
    }

    /// The partitions the clients' keys live in (the others are never written or read).
    pub fn client_partitions(&self) -> BTreeSet<Gpid> {
        self.key_gpid.iter().copied().collect()
    }

    pub(crate) fn driver(&self, node: NodeId, gpid: Gpid) -> Option<&PartitionDriver<SimHost>> {
        self.nodes.get(&node)?.replicas.get(&gpid)?.driver.as_ref()
    }

    /// A node's replica status of the first partition (None while it is closed).
    pub fn status_of(&self, node: NodeId) -> Option<Status> {
        self.driver(node, FIRST).map(|d| d.core().status())
    }

    /// A node's committed decree of the first partition.
    pub fn committed_of(&self, node: NodeId) -> Option<Decree> {
        self.driver(node, FIRST).map(|d| d.core().last_committed())
    }
}
