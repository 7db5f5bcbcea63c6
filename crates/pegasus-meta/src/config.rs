//! `[meta_server]`: the meta server's settings, with Pegasus's key names where Pegasus has the
//! same setting.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[meta_server]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetaServerConfig {
    /// Every meta server, `host:port,host:port,...` (Pegasus's `server_list`). Their order
    /// is their Raft id (1-based); every meta and every replica server uses the same list.
    pub server_list: String,
    /// Where this meta keeps its Raft log, vote and snapshots.
    pub data_dir: PathBuf,
    /// Fewer live replica servers than this freezes meta: no table creation, no cure
    /// (Pegasus: 3; onebox: 1).
    pub min_live_node_count_for_unfreeze: usize,
    /// Live replica servers below this percentage of known ones also freezes meta.
    pub node_live_percentage_threshold_for_update: usize,
    /// How long a dropped table stays recallable, seconds (7 days).
    pub hold_seconds_for_dropped_app: u64,
    /// How long to wait for a dropped member to come back before adding another node, ms.
    pub replica_assign_delay_ms_for_dropouts: u64,
    /// Fewest members that may commit (`mutation_2pc_min_replica_count`).
    pub mutation_2pc_min_replica_count: usize,
    /// A replica server that restarts after running less than this is "unstable", seconds.
    pub stable_rs_min_running_seconds: u64,
    /// After this many unstable restarts in a row, meta stops acking the node's beacons
    /// (it stays dead) until it has been quiet for `stable_rs_min_running_seconds`.
    pub max_succssive_unstable_restart: u32,
    /// Raft heartbeat between meta servers, ms.
    pub raft_heartbeat_interval_ms: u64,
    /// Raft election timeout (randomised between this and twice this), ms.
    pub raft_election_timeout_ms: u64,
    /// Raft log entries between snapshots.
    pub raft_snapshot_every_entries: u64,
}

impl Default for MetaServerConfig {
    fn default() -> Self {
        Self {
            server_list: "127.0.0.1:34601".into(),
            data_dir: PathBuf::from("./meta"),
            min_live_node_count_for_unfreeze: 3,
            node_live_percentage_threshold_for_update: 65,
            hold_seconds_for_dropped_app: 604_800,
            replica_assign_delay_ms_for_dropouts: 300_000,
            mutation_2pc_min_replica_count: 2,
            stable_rs_min_running_seconds: 600,
            max_succssive_unstable_restart: 5,
            raft_heartbeat_interval_ms: 200,
            raft_election_timeout_ms: 1_000,
            raft_snapshot_every_entries: 1_000,
        }
    }
}

impl MetaServerConfig {
    /// The meta server addresses, in Raft-id order.
    pub fn servers(&self) -> Result<Vec<std::net::SocketAddr>, String> {
        let list: Result<Vec<_>, _> = self
            .server_list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<std::net::SocketAddr>()
                    .map_err(|e| format!("server_list entry {s:?}: {e}"))
            })
            .collect();
        let list = list?;
        if list.is_empty() {
            return Err("server_list names no meta server".into());
        }
        Ok(list)
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        self.servers()?;
        if self.node_live_percentage_threshold_for_update > 100 {
            return Err("node_live_percentage_threshold_for_update must be <= 100".into());
        }
        if self.mutation_2pc_min_replica_count == 0 {
            return Err("mutation_2pc_min_replica_count must be >= 1".into());
        }
        if self.raft_heartbeat_interval_ms == 0
            || self.raft_election_timeout_ms < 3 * self.raft_heartbeat_interval_ms
        {
            return Err(
                "raft_election_timeout_ms must be at least 3 × raft_heartbeat_interval_ms (> 0)"
                    .into(),
            );
        }
        if self.raft_snapshot_every_entries == 0 {
            return Err("raft_snapshot_every_entries must be > 0".into());
        }
        Ok(())
    }
}
