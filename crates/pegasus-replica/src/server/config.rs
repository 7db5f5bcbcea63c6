//! The replica server's configuration (`[replica_server]`, validated) and what it needs
//! to start.

use super::*;

/// `[replica_server]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicaServerConfig {
    /// Where replicas live (`--data-dir` overrides it).
    pub data_dir: PathBuf,
    /// How often the server sends meta the list of its replicas, ms (Pegasus: 30000).
    pub config_sync_interval_ms: u64,
    /// How often each replica flushes RocksDB and trims its mutation log, ms.
    pub checkpoint_interval_ms: u64,
    /// Decrees kept in the log below the durable one, for lagging secondaries.
    pub log_retain_decrees: i64,
    /// The replica state machine's clock tick, ms: the finest its timers go. An idle
    /// replica does not tick; it sleeps until a timer is due.
    pub tick_ms: u64,
    /// Threads that run every hosted replica's rounds (Pegasus:
    /// `[threadpool.THREAD_POOL_REPLICATION] worker_count`). A round may block on its log's
    /// fsync, so there are more workers than cores: as many fsyncs overlap as there are
    /// workers. Independent of how many replicas the node hosts.
    pub replication_worker_count: usize,
    /// Largest write request accepted (`ERR_INVALID_DATA` above it), bytes.
    pub max_write_bytes: usize,
    /// Most mutations in two-phase commit at once (`staleness_for_commit`).
    pub staleness_for_commit: i64,
    /// Most client writes batched into one mutation.
    pub max_mutation_batch: usize,
    /// A secondary that does not acknowledge a prepare within this is removed, ms.
    pub prepare_timeout_ms: u64,
    /// Group check period, ms.
    pub group_check_interval_ms: u64,
    /// Fewest members that may commit (`mutation_2pc_min_replica_count`).
    pub mutation_2pc_min_replica_count: usize,
    /// Bytes per checkpoint-file chunk a learner fetches.
    pub learn_chunk_bytes: u32,
    /// Client writes waiting for one replica beyond which new ones get `ERR_BUSY`.
    pub max_pending_writes: usize,
    /// Pegasus's `disk_min_available_space_ratio`, percent: below it the data disk is
    /// insufficient — the node takes no new replica or learner, its primaries move to
    /// secondaries with room, and a primary whose whole group is short refuses writes with
    /// `ERR_DISK_INSUFFICIENT`. 0 turns the check off.
    pub disk_min_available_space_ratio: u32,
    /// How often the data disk's free space is checked, ms (Pegasus:
    /// `disk_stat_interval_seconds` = 10).
    pub disk_stat_interval_ms: u64,
    /// Mutation-log segment size, bytes (Pegasus: `log_private_file_size_mb` = 32).
    pub log_segment_bytes: u64,
    /// fdatasync the mutation log before a mutation is acknowledged (Pegasus:
    /// `plog_force_flush`, whose default there is false). Our default is true: every
    /// acknowledged write is on disk on every replica that acknowledged it. False trades
    /// that for speed (durability then rests on the copies not all losing power at once);
    /// the benchmark's "not durable" row uses it to show what the flushes cost.
    pub plog_force_flush: bool,
    /// One write-ahead log for the whole server (`<data_dir>/nlog`), shared by every
    /// replica, with group commit across partitions: a replica writes its own log without
    /// syncing it and one fsync of the node log acknowledges the writes of all partitions.
    /// The default. False: every replica fsyncs its own log; a data directory a run with it
    /// on left a node log in is recovered into the replicas' logs first.
    pub node_log: bool,
    /// Node-log segment size, bytes: older segments are deleted once the logs of the
    /// replicas with records in them are synced.
    pub node_log_segment_bytes: u64,
    /// Requests slower than this are logged (WARN, with table, partition and time), ms;
    /// 0 turns it off.
    pub slow_request_ms: u64,
    /// A planted bug, only for showing that `pegasus chaos` catches it: primaries ignore
    /// their lease (serve reads and stay primary after it lapsed). Never set it otherwise.
    pub planted_bug_ignore_lease: bool,
    /// Test-only: allow arming fail points (log append/fsync EIO, store corruption, a
    /// panic, a RocksDB flush failing with EMFILE, a log append failing with ENOSPC) with
    /// `POST /failpoint?name=<point>&times=<n>` on the admin port (`pegasus chaos
    /// --nemesis fail-point`). Never set it otherwise.
    pub enable_fail_points: bool,
    /// A replica whose flush, apply, log write or metadata write fails for lack of a
    /// resource (EMFILE, ENFILE, ENOMEM, ENOSPC) is closed and reopened in place, after 1 s,
    /// 2 s, 4 s, … at most 30 s. After this many such failures in a row (a failure more
    /// than 10 minutes after the previous one starts a new count) it is set aside and
    /// rebuilt from another copy instead, like a corrupt one. 0 rebuilds at once.
    pub transient_error_max_retries: u32,
}

impl Default for ReplicaServerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./replica"),
            config_sync_interval_ms: 5_000,
            checkpoint_interval_ms: 60_000,
            log_retain_decrees: 10_000,
            tick_ms: 50,
            replication_worker_count: 24,
            max_write_bytes: 1 << 20,
            staleness_for_commit: 20,
            max_mutation_batch: 64,
            prepare_timeout_ms: 3_000,
            group_check_interval_ms: 5_000,
            mutation_2pc_min_replica_count: 2,
            learn_chunk_bytes: 1 << 20,
            max_pending_writes: 10_000,
            disk_min_available_space_ratio: 10,
            disk_stat_interval_ms: 5_000,
            log_segment_bytes: 32 << 20,
            plog_force_flush: true,
            node_log: true,
            node_log_segment_bytes: 64 << 20,
            slow_request_ms: 500,
            planted_bug_ignore_lease: false,
            enable_fail_points: false,
            transient_error_max_retries: 8,
        }
    }
}

impl ReplicaServerConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.tick_ms == 0 || self.config_sync_interval_ms == 0 {
            return Err("tick_ms and config_sync_interval_ms must be > 0".into());
        }
        if !(1..=1024).contains(&self.replication_worker_count) {
            return Err("replication_worker_count must be between 1 and 1024".into());
        }
        if self.disk_min_available_space_ratio >= 100 || self.disk_stat_interval_ms == 0 {
            return Err(
                "disk_min_available_space_ratio must be below 100 and disk_stat_interval_ms above 0"
                    .into(),
            );
        }
        if self.max_write_bytes == 0 || self.learn_chunk_bytes == 0 || self.max_pending_writes == 0
        {
            return Err(
                "max_write_bytes, learn_chunk_bytes and max_pending_writes must be > 0".into(),
            );
        }
        if self.staleness_for_commit < 1 || self.max_mutation_batch == 0 {
            return Err("staleness_for_commit and max_mutation_batch must be >= 1".into());
        }
        if self.mutation_2pc_min_replica_count == 0 {
            return Err("mutation_2pc_min_replica_count must be >= 1".into());
        }
        if self.log_segment_bytes < 4096 || self.node_log_segment_bytes < 4096 {
            return Err(
                "log_segment_bytes and node_log_segment_bytes must be at least 4096".into(),
            );
        }
        if self.transient_error_max_retries > MAX_TRANSIENT_RETRIES {
            return Err(format!(
                "transient_error_max_retries must be at most {MAX_TRANSIENT_RETRIES}"
            ));
        }
        Ok(())
    }
}

/// Largest `transient_error_max_retries` accepted: past it a replica that never recovers
/// would retry every 30 s for hours instead of being rebuilt.
const MAX_TRANSIENT_RETRIES: u32 = 1000;
/// Everything a replica server needs to start.
#[derive(Debug, Clone)]
pub struct ReplicaServerOptions {
    /// `[replica_server]`.
    pub config: ReplicaServerConfig,
    /// `[pegasus.server]`: RocksDB tuning and read limits.
    pub storage: StorageConfig,
    /// `[replication]`: beacons and leases.
    pub fd: FailureDetectorConfig,
    /// Meta servers.
    pub metas: Vec<SocketAddr>,
    /// The client port (also this node's identity).
    pub listen: SocketAddr,
    /// HTTP admin endpoints on the same port (version, config, metrics); defaults if none.
    pub admin: Option<CommonEndpoints>,
    /// `[network]`: connection caps, timeouts and the request-byte budget of the port.
    pub network: NetworkConfig,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_error_max_retries_is_validated() {
        let mut c = ReplicaServerConfig::default();
        assert_eq!(c.transient_error_max_retries, 8);
        c.transient_error_max_retries = 0;
        assert!(c.validate().is_ok());
        c.transient_error_max_retries = MAX_TRANSIENT_RETRIES + 1;
        assert!(c
            .validate()
            .unwrap_err()
            .contains("transient_error_max_retries"));
    }
}
