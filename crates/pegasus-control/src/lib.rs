//! What replica servers and meta servers say to each other (internal RPCs, serde payloads in
//! THFT frames), and the failure-detector settings both sides share.
//!
//! A replica server is named by its client address: [`NodeId`] is the packed `rpc_address`
//! (IPv4 + port) of the server's port, so meta needs no separate id table and the address it
//! puts in a partition configuration is exactly what clients connect to.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use pegasus_core::config::{ConfigType, NodeId, PartitionConfig};
use pegasus_core::ids::{Ballot, Decree, Gpid};
use pegasus_proto::RpcAddress;
use serde::{Deserialize, Serialize};

/// A configuration change a replica asks for: the whole new configuration, at `ballot + 1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigUpdate {
    /// What changes.
    pub kind: ConfigType,
    /// The node the change is about.
    pub node: NodeId,
    /// The configuration the requester wants.
    pub config: PartitionConfig,
}

/// Internal RPC names.
pub mod names {
    /// Replica → meta: beacon (failure detection and lease).
    pub const BEACON: &str = "RPC_PEGASUS_RS_FD_BEACON";
    /// Replica → meta: the node's replicas; meta answers their configurations.
    pub const CONFIG_SYNC: &str = "RPC_PEGASUS_RS_CONFIG_SYNC";
    /// Replica → meta: a configuration change at `ballot + 1`.
    pub const UPDATE_CONFIG: &str = "RPC_PEGASUS_RS_UPDATE_PARTITION_CONFIG";
    /// Meta → replica (one-way): do a configuration change (assign, add secondary, …).
    pub const PROPOSAL: &str = "RPC_PEGASUS_RS_CONFIG_PROPOSAL";
    /// Meta follower → meta leader: a client's meta request, answered by the leader.
    pub const META_FORWARD: &str = "RPC_PEGASUS_RS_META_FORWARD";
    /// Meta → replica (one-way): a partition's new configuration.
    pub const CONFIG_PUSH: &str = "RPC_PEGASUS_RS_CONFIG_PUSH";
}

/// The node id of a replica server listening on `addr` (IPv4 only, like Pegasus).
pub fn node_of(addr: SocketAddr) -> Option<NodeId> {
    let a = RpcAddress::from_socket_addr(addr);
    a.is_valid().then(|| NodeId(a.raw()))
}

/// The address of a node.
pub fn addr_of(node: NodeId) -> Option<SocketAddr> {
    RpcAddress::from_raw(node.0).to_socket_addr()
}

/// Failure detection and leases, shared by meta and replica servers (`[replication]`).
///
/// Pegasus's keys are whole seconds (`fd_lease_seconds` = 20, `fd_grace_seconds` = 22);
/// ours are milliseconds so that a killed primary is replaced within 5 s on one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailureDetectorConfig {
    /// How often a replica server beacons the meta leader, ms.
    pub fd_beacon_interval_ms: u64,
    /// How often meta checks for dead nodes and cures partitions, ms.
    pub fd_check_interval_ms: u64,
    /// The lease a beacon ack grants, counted from the beacon's send time on the replica's
    /// clock, ms. A primary that cannot renew it stops serving when it runs out.
    pub fd_lease_ms: u64,
    /// Meta declares a node dead when no beacon arrived for this long, ms. Must exceed the
    /// lease by a margin for clock-rate drift and the beacon's flight time.
    pub fd_grace_ms: u64,
}

impl Default for FailureDetectorConfig {
    fn default() -> Self {
        Self {
            fd_beacon_interval_ms: 500,
            fd_check_interval_ms: 250,
            fd_lease_ms: 2_500,
            fd_grace_ms: 3_500,
        }
    }
}

impl FailureDetectorConfig {
    /// Checks the ordering the protocol's safety rests on.
    pub fn validate(&self) -> Result<(), String> {
        if self.fd_beacon_interval_ms == 0 || self.fd_check_interval_ms == 0 {
            return Err("fd_beacon_interval_ms and fd_check_interval_ms must be > 0".into());
        }
        if self.fd_lease_ms < 2 * self.fd_beacon_interval_ms {
            return Err(format!(
                "fd_lease_ms ({}) must be at least twice fd_beacon_interval_ms ({}), or one lost beacon drops the lease",
                self.fd_lease_ms, self.fd_beacon_interval_ms
            ));
        }
        // 10 % for clock-rate drift between the two machines, at least 500 ms.
        let margin = (self.fd_lease_ms / 10).max(500);
        if self.fd_grace_ms < self.fd_lease_ms + margin {
            return Err(format!(
                "fd_grace_ms ({}) must exceed fd_lease_ms ({}) by at least {margin} ms: meta may \
                 only declare a primary dead after that primary's lease has run out",
                self.fd_grace_ms, self.fd_lease_ms
            ));
        }
        Ok(())
    }
}

/// What a replica server reports about one of its replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaReport {
    /// The partition.
    pub gpid: Gpid,
    /// Its ballot.
    pub ballot: Ballot,
    /// Its committed decree.
    pub last_committed: Decree,
    /// Its largest prepared (logged) decree.
    pub last_prepared: Decree,
    /// Created empty and not yet filled by learning: it holds nothing the group committed,
    /// so meta must never make it primary (it would refuse anyway).
    #[serde(default)]
    pub fresh: bool,
}

/// Replica → meta beacon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beacon {
    /// The sender (its client address).
    pub node: NodeId,
    /// Send time on the sender's clock, ms; echoed in the ack, the lease counts from it.
    pub sent_ms: u64,
    /// When the sender's process started (its clock, ms): a change means a restart.
    pub start_ms: u64,
    /// The sender's replicas (for the all-dead rule and balancing).
    pub replicas: Vec<ReplicaReport>,
    /// The sender's data disk.
    pub disk: DiskReport,
}

/// A replica server's data disk, as its last check found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DiskReport {
    /// Size of the file system holding the data directory, bytes.
    pub capacity_bytes: u64,
    /// Bytes available to the server there.
    pub available_bytes: u64,
    /// Available space is below `disk_min_available_space_ratio` (Pegasus's name): the node
    /// takes no new replica or learner, and its primaries move to healthy copies.
    pub insufficient: bool,
}

/// Meta → replica beacon ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeaconAck {
    /// Echo of [`Beacon::sent_ms`].
    pub sent_ms: u64,
    /// Whether the answering meta is the leader (only a leader's ack grants a lease).
    pub is_leader: bool,
    /// The leader's address, if known (a follower's hint).
    pub leader: Option<SocketAddr>,
    /// The lease granted from `sent_ms`, ms (0 = none: not the leader, or held back).
    pub lease_ms: u64,
    /// Nodes whose disk is insufficient (the leader's view): a primary on such a disk
    /// refuses writes with `ERR_DISK_INSUFFICIENT` only when no secondary is off this list.
    pub disk_insufficient: Vec<NodeId>,
}

/// Table facts a replica needs with its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSummary {
    /// Table id.
    pub app_id: i32,
    /// Name.
    pub name: String,
    /// Partition count.
    pub partition_count: i32,
    /// Envs.
    pub envs: BTreeMap<String, String>,
    /// Dropped (close the replica, keep its data until it is collected).
    pub dropped: bool,
}

/// Replica → meta config sync: the replicas the node holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSyncRequest {
    /// The sender.
    pub node: NodeId,
    /// Its replicas.
    pub replicas: Vec<ReplicaReport>,
}

/// One partition in a config sync answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncedPartition {
    /// The configuration.
    pub config: PartitionConfig,
    /// Its table.
    pub app: AppSummary,
}

/// Meta → replica config sync answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSyncResponse {
    /// Every partition the node is a member of, or reported.
    pub partitions: Vec<SyncedPartition>,
    /// Replicas to garbage-collect: their table is gone (dropped past its reserve time).
    pub gc: Vec<Gpid>,
}

/// Replica → meta configuration change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateConfigRequest {
    /// The change.
    pub update: ConfigUpdate,
}

/// Meta's answer to a configuration change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateConfigResponse {
    /// `ERR_OK`, `ERR_INVALID_VERSION`, `ERR_STATE_FREEZED`, `ERR_FORWARD_TO_OTHERS`, ….
    pub err: String,
    /// Meta's configuration of the partition after the request (when known).
    pub config: Option<PartitionConfig>,
    /// The leader, when this meta is not it.
    pub leader: Option<SocketAddr>,
}

/// Meta → replica: perform a configuration change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The change.
    pub kind: ConfigType,
    /// The node it is about.
    pub node: NodeId,
    /// Meta's current configuration of the partition.
    pub config: PartitionConfig,
    /// Its table.
    pub app: AppSummary,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_lease_and_grace_keep_the_safety_ordering() {
        assert_eq!(FailureDetectorConfig::default().validate(), Ok(()));
    }

    #[test]
    fn grace_not_above_lease_is_refused() {
        let c = FailureDetectorConfig {
            fd_grace_ms: 2_600,
            ..FailureDetectorConfig::default()
        };
        assert!(c.validate().unwrap_err().contains("fd_grace_ms"));
    }

    #[test]
    fn node_ids_are_client_addresses() {
        let a: SocketAddr = "127.0.0.1:34801".parse().unwrap();
        let n = node_of(a).unwrap();
        assert_eq!(addr_of(n), Some(a));
        assert!(node_of("[::1]:1".parse().unwrap()).is_none());
    }
}
