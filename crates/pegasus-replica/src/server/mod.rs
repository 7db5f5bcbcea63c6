//! The replica server: hosts many partition replicas, serves the rrdb RPCs on its client
//! port (THFT v0/v1, exact Pegasus encodings and frame errors), replicates between servers,
//! beacons the meta leader for its lease and syncs configurations.
//!
//! Threads: the async runtime handles sockets, reads (straight from the shared store, after
//! checking the replica's published read deadline) and talks to meta and peers; each
//! replica has its own thread for the state machine, RocksDB writes and log fsyncs
//! ([`partition`]).

pub mod disk;
pub mod layout;
pub mod partition;
mod reopen;

use reopen::Reopens;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pegasus_control::ConfigUpdate;
use pegasus_control::{
    names as meta_names, node_of, AppSummary, Beacon, BeaconAck, ConfigSyncRequest,
    ConfigSyncResponse, FailureDetectorConfig, Proposal, SyncedPartition, UpdateConfigRequest,
    UpdateConfigResponse,
};
use pegasus_core::config::{ConfigType, NodeId, PartitionConfig};
use pegasus_core::ids::Gpid;
use pegasus_core::rrdb::{CheckAndSetResponse, UpdateResponse};
use pegasus_core::time::{Clock, SystemClock};
use pegasus_proto::frame::{RequestFrame, RequestHeader, ResponseFrame};
use pegasus_proto::rpc::{parse_request, ParsedRequest};
use pegasus_proto::{ErrorCode, Request, RrdbRequest, RrdbResponse};
use pegasus_rpc::http::{query_param, CommonEndpoints, HttpResponse, HttpService};
use pegasus_rpc::internal::{self, InternalCall};
use pegasus_rpc::{Handler, NetworkConfig, RpcError, ServerOptions, Session, SessionPool};
use pegasus_storage::{ReadLimits, RocksEnv, StorageConfig, WriteRequest, WriteResponse};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::core::{Checkpoint, Event, PeerMessage, ReplicaOptions, Status};
use crate::update::encode_write;
use partition::{Exit, Input, Shared};

/// A peer message not handed to the connection within this is dropped (PacificA resends).
const PEER_SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest frame between servers and from clients: a mutation batches up to
/// `max_mutation_batch` writes of up to `max_write_bytes` each.
const MAX_FRAME: usize = 128 << 20;

/// Internal RPC names between replica servers.
pub mod names {
    /// A PacificA message for one partition (one-way).
    pub const PEER: &str = "RPC_PEGASUS_RS_REPLICA_PEER";
    /// A chunk of a checkpoint file a learner fetches.
    pub const LEARN_FILE: &str = "RPC_PEGASUS_RS_LEARN_FILE";
}

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
    /// The replica state machine's clock tick, ms.
    pub tick_ms: u64,
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
        if self.log_segment_bytes < 4096 {
            return Err("log_segment_bytes must be at least 4096".into());
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

/// Where a learner fetches a checkpoint from (postcard inside [`Checkpoint::data`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointHandle {
    /// The primary's server.
    pub server: SocketAddr,
    /// The partition.
    pub gpid: Gpid,
    /// The checkpoint directory's name under the replica's `learn/`.
    pub name: String,
    /// Files and sizes.
    pub files: Vec<(String, u64)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PeerEnvelope {
    gpid: Gpid,
    from: NodeId,
    msg: PeerMessage,
}

#[derive(Debug, Serialize, Deserialize)]
struct LearnFileRequest {
    gpid: Gpid,
    name: String,
    file: String,
    offset: u64,
    len: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct LearnFileResponse {
    data: Bytes,
}

/// The meta servers, with the leader remembered.
#[derive(Debug)]
struct MetaLink {
    metas: Vec<SocketAddr>,
    leader: Mutex<Option<SocketAddr>>,
    next: Mutex<usize>,
}

impl MetaLink {
    fn target(&self) -> Option<SocketAddr> {
        if let Some(l) = self.leader.lock().ok().and_then(|l| *l) {
            return Some(l);
        }
        let mut n = self.next.lock().ok()?;
        let t = self.metas.get(*n % self.metas.len().max(1)).copied();
        *n += 1;
        t
    }

    fn set_leader(&self, leader: Option<SocketAddr>) {
        if let Ok(mut l) = self.leader.lock() {
            *l = leader;
        }
    }
}

/// What every replica thread shares.
pub struct Ctx {
    me: NodeId,
    addr: SocketAddr,
    root: PathBuf,
    env: RocksEnv,
    clock: Arc<dyn Clock>,
    limits: ReadLimits,
    opts: ReplicaOptions,
    cfg: ReplicaServerConfig,
    fd: FailureDetectorConfig,
    rt: tokio::runtime::Handle,
    started: Instant,
    start_ms: u64,
    sessions: SessionPool,
    meta: MetaLink,
    /// The latest lease meta granted this node: (beacon sent, until), local ms.
    lease: Mutex<Option<(u64, u64)>>,
    /// Wakes the config sync loop before its interval (a reopened replica wants meta's
    /// configuration now: until then a primary does not serve).
    sync_now: tokio::sync::Notify,
    /// The data disk's free space, and the cluster's nodes short of it.
    disk: disk::DiskState,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn addr_of(node: NodeId) -> Option<SocketAddr> {
    pegasus_control::addr_of(node)
}

impl Ctx {
    /// Monotonic ms since the server started: the clock of ticks, beacons and leases.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Wall-clock time (Unix µs): what mutations are stamped with, never used for leases.
    pub fn wall_us(&self) -> u64 {
        self.clock.now_micros()
    }

    fn session(&self, addr: SocketAddr) -> Session {
        self.sessions.get(addr)
    }

    fn send_peer(&self, to: NodeId, gpid: Gpid, msg: PeerMessage) {
        let Some(addr) = addr_of(to) else { return };
        let session = self.session(addr);
        let env = PeerEnvelope {
            gpid,
            from: self.me,
            msg,
        };
        self.rt.spawn(async move {
            match tokio::time::timeout(
                PEER_SEND_TIMEOUT,
                internal::send(&session, names::PEER, &env),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!("peer message to {addr}: {e}"),
                Err(_) => tracing::debug!("peer message to {addr}: timed out"),
            }
        });
    }

    /// Calls the meta leader, following hints, a few times.
    async fn meta_call<Req: Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        name: &'static str,
        req: &Req,
    ) -> Result<Resp, RpcError> {
        let mut last = RpcError::Transport("no meta server".into());
        for _ in 0..(self.meta.metas.len() * 2).max(2) {
            let Some(target) = self.meta.target() else {
                break;
            };
            match internal::call(&self.session(target), name, req, Duration::from_secs(3)).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    self.meta.set_leader(None);
                    last = e;
                }
            }
        }
        Err(last)
    }

    fn request_config(
        self: &Arc<Self>,
        shared: Arc<Shared>,
        kind: ConfigType,
        node: NodeId,
        config: PartitionConfig,
    ) {
        let ctx = self.clone();
        self.rt.spawn(async move {
            let req = UpdateConfigRequest {
                update: ConfigUpdate { kind, node, config },
            };
            for _ in 0..3 {
                let resp: Result<UpdateConfigResponse, _> =
                    ctx.meta_call(meta_names::UPDATE_CONFIG, &req).await;
                match resp {
                    Ok(r) if r.err == "ERR_OK" => {
                        if let Some(c) = r.config {
                            shared.send(Input::Core(Event::Config(c)));
                        }
                        return;
                    }
                    Ok(r) if r.err == "ERR_FORWARD_TO_OTHERS" => {
                        ctx.meta.set_leader(r.leader);
                    }
                    Ok(r)
                        if r.err == "ERR_INVALID_VERSION" || r.err == "ERR_INVALID_PARAMETERS" =>
                    {
                        shared.send(Input::Core(Event::ConfigRejected));
                        if let Some(c) = r.config {
                            shared.send(Input::Core(Event::Config(c)));
                        }
                        return;
                    }
                    // Freezed, not active, transport: the core retries on its own timer.
                    _ => return,
                }
            }
        });
    }

    fn fetch_checkpoint(self: &Arc<Self>, shared: Arc<Shared>, cp: Checkpoint) {
        let ctx = self.clone();
        self.rt.spawn(async move {
            let input = match fetch(&ctx, &shared, &cp).await {
                Ok(dir) => Input::CheckpointFetched {
                    decree: cp.decree,
                    staged: dir,
                },
                Err(e) => Input::CheckpointFailed(e),
            };
            shared.send(input);
        });
    }
}

fn plain_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\'])
}

/// Fetches a checkpoint's files in chunks into `<replica>/learn.tmp/`. Runs on the async
/// runtime, one chunk in flight, so a large transfer never holds up control messages.
async fn fetch(ctx: &Ctx, shared: &Shared, cp: &Checkpoint) -> Result<PathBuf, String> {
    if crate::failpoint::fire(crate::failpoint::FailPoint::LearnFetch) {
        return Err("fail point learn_fetch".into());
    }
    let handle: CheckpointHandle =
        postcard::from_bytes(&cp.data).map_err(|e| format!("bad checkpoint handle: {e}"))?;
    let dir = shared.dir.join("learn.tmp");
    let _ = tokio::fs::remove_dir_all(&dir).await;
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| e.to_string())?;
    let session = ctx.session(handle.server);
    for (file, size) in &handle.files {
        if !plain_name(file) {
            return Err(format!("bad file name {file:?}"));
        }
        let mut out = Vec::with_capacity(usize::try_from(*size).unwrap_or(0).min(64 << 20));
        while (out.len() as u64) < *size {
            let req = LearnFileRequest {
                gpid: handle.gpid,
                name: handle.name.clone(),
                file: file.clone(),
                offset: out.len() as u64,
                len: ctx.cfg.learn_chunk_bytes,
            };
            let chunk: LearnFileResponse =
                internal::call(&session, names::LEARN_FILE, &req, Duration::from_secs(30))
                    .await
                    .map_err(|e| e.to_string())?;
            if chunk.data.is_empty() {
                return Err(format!("{file}: short read at {}", out.len()));
            }
            out.extend_from_slice(&chunk.data);
        }
        let path = dir.join(file);
        tokio::fs::write(&path, &out)
            .await
            .map_err(|e| e.to_string())?;
        let f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| e.to_string())?;
        f.sync_all().await.map_err(|e| e.to_string())?;
    }
    Ok(dir)
}

/// A running replica server.
pub struct ReplicaServer {
    ctx: Arc<Ctx>,
    replicas: Arc<Mutex<BTreeMap<Gpid, Arc<Shared>>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    reopens: Mutex<Reopens>,
    /// Set by `shutdown`: no replica is reopened after it.
    stopping: AtomicBool,
}

impl std::fmt::Debug for ReplicaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaServer")
            .field("addr", &self.ctx.addr)
            .finish_non_exhaustive()
    }
}

/// Why a replica server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// Disk or socket trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs blocking file work from async code: on a multi-threaded runtime the worker hands
/// its other tasks to the rest first (`block_in_place`); elsewhere it just runs.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

pub(crate) fn wall_ms() -> u64 {
    SystemClock.now_micros() / 1000
}

impl ReplicaServer {
    /// Opens every replica under the data directory and starts serving.
    pub async fn start(opts: ReplicaServerOptions) -> Result<Arc<Self>, StartError> {
        opts.config.validate().map_err(StartError::Config)?;
        opts.fd.validate().map_err(StartError::Config)?;
        opts.storage
            .validate()
            .map_err(|e| StartError::Config(e.to_string()))?;
        let me = node_of(opts.listen)
            .ok_or_else(|| StartError::Config(format!("{} is not an IPv4 address", opts.listen)))?;
        if opts.metas.is_empty() {
            return Err(StartError::Config("no meta servers".into()));
        }
        let listener = pegasus_rpc::listen(opts.listen).await?;
        let root = opts.config.data_dir.clone();
        std::fs::create_dir_all(root.join("replica"))?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ctx = Arc::new(Ctx {
            me,
            addr: opts.listen,
            root: root.clone(),
            env: RocksEnv::new(opts.storage.clone(), clock.clone()),
            clock,
            limits: ReadLimits::from(&opts.storage),
            opts: ReplicaOptions {
                staleness_for_commit: opts.config.staleness_for_commit,
                max_batch: opts.config.max_mutation_batch,
                prepare_timeout_ms: opts.config.prepare_timeout_ms,
                group_check_interval_ms: opts.config.group_check_interval_ms,
                min_2pc_replicas: opts.config.mutation_2pc_min_replica_count,
                planted_ignore_lease: opts.config.planted_bug_ignore_lease,
                ..ReplicaOptions::default()
            },
            cfg: opts.config.clone(),
            fd: opts.fd,
            rt: tokio::runtime::Handle::current(),
            started: Instant::now(),
            start_ms: wall_ms(),
            sessions: SessionPool::new(MAX_FRAME),
            meta: MetaLink {
                metas: opts.metas.clone(),
                leader: Mutex::new(None),
                next: Mutex::new(0),
            },
            lease: Mutex::new(None),
            sync_now: tokio::sync::Notify::new(),
            disk: disk::DiskState::default(),
        });
        if opts.config.enable_fail_points {
            crate::failpoint::GLOBAL.enable();
        }
        // Counters that only move on rare events exist from the start (dashboards, alerts).
        metrics::counter!("pegasus_replica_learn_bytes_total").increment(0);
        metrics::counter!("pegasus_replica_learn_checkpoints_total").increment(0);
        metrics::counter!("pegasus_replica_committed_mutations_total").increment(0);
        metrics::counter!("pegasus_replica_reopens_total").increment(0);
        for op in TRANSIENT_OPS {
            metrics::counter!("pegasus_replica_transient_errors_total", "op" => op).increment(0);
        }
        let server = Arc::new(Self {
            ctx,
            replicas: Arc::new(Mutex::new(BTreeMap::new())),
            tasks: Mutex::new(Vec::new()),
            reopens: Mutex::new(Reopens::default()),
            stopping: AtomicBool::new(false),
        });
        // Reopen every replica found on disk.
        for entry in std::fs::read_dir(root.join("replica"))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(gpid) = layout::parse_replica_dir(&name) else {
                continue;
            };
            if let Err(e) = server.open_replica(gpid, None) {
                // Out of descriptors, memory or space at start: the copy is not at fault.
                if partition::is_transient_io(&e) {
                    metrics::counter!("pegasus_replica_transient_errors_total", "op" => "reopen")
                        .increment(1);
                    if server.schedule_reopen(gpid, format!("open: {e}")) {
                        continue;
                    }
                }
                tracing::error!("replica {gpid:?} does not open ({e}): moving it aside");
                let _ = layout::retire(&root, gpid, "err", wall_ms());
            }
        }
        let admin = opts
            .admin
            .clone()
            .unwrap_or_else(|| CommonEndpoints::bare("replica", env!("CARGO_PKG_VERSION")));
        let http: Arc<dyn HttpService> = Arc::new(ReplicaHttp {
            server: Arc::downgrade(&server),
            common: admin,
        });
        let serve = tokio::spawn(pegasus_rpc::serve(
            listener,
            server.clone(),
            ServerOptions {
                http: Some(http),
                max_frame: MAX_FRAME,
                network: opts.network.clone(),
            },
        ));
        let beacons = tokio::spawn(beacon_loop(Arc::downgrade(&server)));
        let disk = tokio::spawn(disk_loop(Arc::downgrade(&server)));
        let sync = tokio::spawn(config_sync_loop(Arc::downgrade(&server)));
        if let Ok(mut t) = server.tasks.lock() {
            t.extend([serve, beacons, sync, disk]);
        }
        tracing::info!(
            "replica server {} serving {} replicas",
            opts.listen,
            server.replica_list().len()
        );
        Ok(server)
    }

    /// Stops serving and closes every replica (flushing them).
    pub async fn shutdown(&self) {
        // Before listing the replicas: a reopen either sees this or is in the list.
        self.stopping.store(true, Ordering::SeqCst);
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        for t in tasks {
            t.abort();
        }
        let replicas: Vec<Arc<Shared>> = self.replica_list();
        for r in &replicas {
            r.send(Input::Close);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while replicas.iter().any(|r| !r.is_closed()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// This server's address.
    pub fn addr(&self) -> SocketAddr {
        self.ctx.addr
    }

    fn replica_list(&self) -> Vec<Arc<Shared>> {
        self.replicas
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    fn replica(&self, gpid: Gpid) -> Option<Arc<Shared>> {
        self.replicas.lock().ok()?.get(&gpid).cloned()
    }

    /// Statuses of the hosted replicas (tests, admin).
    pub fn statuses(&self) -> BTreeMap<Gpid, Status> {
        self.replica_list()
            .iter()
            .map(|r| (r.gpid, r.report().0))
            .collect()
    }

    fn open_replica(
        self: &Arc<Self>,
        gpid: Gpid,
        create_with: Option<(PartitionConfig, AppSummary)>,
    ) -> std::io::Result<Arc<Shared>> {
        if self.is_pending_reopen(gpid) {
            return Err(std::io::Error::other(
                "closed after a transient error; it is reopened after its backoff",
            ));
        }
        self.open_replica_now(gpid, create_with)
    }

    fn open_replica_now(
        self: &Arc<Self>,
        gpid: Gpid,
        create_with: Option<(PartitionConfig, AppSummary)>,
    ) -> std::io::Result<Arc<Shared>> {
        if let Some(r) = self.replica(gpid) {
            return Ok(r);
        }
        let weak = Arc::downgrade(self);
        let ctx = self.ctx.clone();
        // Opening replays the log and opens RocksDB: blocking work, kept off the async
        // workers' queue so beacons keep flowing.
        let shared = blocking(|| {
            partition::open(&ctx, gpid, create_with, move |gpid, exit| {
                let Some(server) = weak.upgrade() else { return };
                server.on_replica_exit(gpid, exit);
            })
        })?;
        // The node's lease covers replicas created after the last beacon ack too: without
        // it a new primary would step down at its first tick.
        let lease = self.ctx.lease.lock().ok().and_then(|l| *l);
        if let Some((sent_ms, until_ms)) = lease {
            shared.send(Input::Core(Event::Lease {
                sent_ms,
                until_ms,
                now_ms: self.ctx.now_ms(),
            }));
        }
        shared.send(Input::Core(Event::Tick {
            now_ms: self.ctx.now_ms(),
            wall_us: self.ctx.wall_us(),
        }));
        if let Ok(mut m) = self.replicas.lock() {
            m.insert(gpid, shared.clone());
        }
        Ok(shared)
    }

    /// Delivers meta's view of a partition: opens the replica if this node is a member
    /// (creating it empty if it has no copy), updates table facts, delivers the config.
    fn on_partition(self: &Arc<Self>, p: SyncedPartition) {
        let gpid = p.config.gpid;
        if p.app.dropped {
            if let Some(r) = self.replica(gpid) {
                r.send(Input::Close);
            }
            return;
        }
        let member = p.config.is_member(self.ctx.me);
        let replica = match self.replica(gpid) {
            Some(r) => Some(r),
            None if member => self
                .open_replica(gpid, Some((p.config.clone(), p.app.clone())))
                .map_err(|e| tracing::warn!("replica {gpid:?}: cannot open: {e}"))
                .ok(),
            None => None,
        };
        if let Some(r) = replica {
            if r.app() != p.app {
                r.send(Input::App(p.app.clone()));
            }
            r.send(Input::Core(Event::Config(p.config)));
        }
    }

    async fn on_internal(self: &Arc<Self>, call: InternalCall) -> Option<ResponseFrame> {
        match call.message.name.as_str() {
            names::PEER => {
                let env: PeerEnvelope = call.decode().ok()?;
                let replica = match self.replica(env.gpid) {
                    Some(r) => Some(r),
                    // A primary invites this node to learn a partition it does not hold.
                    None => match &env.msg {
                        PeerMessage::AddLearner { config, .. } => self
                            .open_replica(env.gpid, Some((config.clone(), app_hint(env.gpid))))
                            .map_err(|e| {
                                tracing::warn!("replica {:?}: cannot open to learn: {e}", env.gpid)
                            })
                            .ok(),
                        _ => None,
                    },
                };
                if let Some(r) = replica {
                    r.send(Input::Core(Event::Message {
                        from: env.from,
                        msg: env.msg,
                    }));
                }
                None
            }
            meta_names::PROPOSAL => {
                let p: Proposal = call.decode().ok()?;
                let gpid = p.config.gpid;
                let replica = match self.replica(gpid) {
                    Some(r) => Some(r),
                    None if p.node == self.ctx.me
                        && matches!(p.kind, ConfigType::AssignPrimary) =>
                    {
                        self.open_replica(gpid, Some((p.config.clone(), p.app.clone())))
                            .ok()
                    }
                    None => None,
                };
                if let Some(r) = replica {
                    if r.app() != p.app {
                        r.send(Input::App(p.app.clone()));
                    }
                    r.send(Input::Proposal {
                        config: p.config,
                        kind: p.kind,
                        node: p.node,
                    });
                }
                None
            }
            meta_names::CONFIG_PUSH => {
                let p: SyncedPartition = call.decode().ok()?;
                self.on_partition(p);
                None
            }
            names::LEARN_FILE => {
                let req: LearnFileRequest = match call.decode() {
                    Ok(r) => r,
                    Err(_) => return Some(call.error(ErrorCode::InvalidParameters)),
                };
                Some(match blocking(|| self.read_learn_file(&req)) {
                    Ok(data) => call.reply(&LearnFileResponse { data }),
                    Err(code) => call.error(code),
                })
            }
            _ => Some(call.error(ErrorCode::HandlerNotFound)),
        }
    }

    fn read_learn_file(&self, req: &LearnFileRequest) -> Result<Bytes, ErrorCode> {
        if !plain_name(&req.name) || !plain_name(&req.file) {
            return Err(ErrorCode::InvalidParameters);
        }
        let path = layout::replica_dir(&self.ctx.root, req.gpid)
            .join("learn")
            .join(&req.name)
            .join(&req.file);
        let len = req.len.min(self.ctx.cfg.learn_chunk_bytes) as usize;
        let read = || -> std::io::Result<Vec<u8>> {
            use std::io::{Read, Seek, SeekFrom};
            let mut f = std::fs::File::open(&path)?;
            f.seek(SeekFrom::Start(req.offset))?;
            let mut buf = vec![0u8; len];
            let mut got = 0;
            while got < len {
                let n = f.read(buf.get_mut(got..).unwrap_or_default())?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            buf.truncate(got);
            Ok(buf)
        };
        read()
            .map(Bytes::from)
            .map_err(|_| ErrorCode::ObjectNotFound)
    }

    async fn on_rrdb(
        self: &Arc<Self>,
        header: RequestHeader,
        req: RrdbRequest,
    ) -> Result<RrdbResponse, ErrorCode> {
        let gpid = Gpid::new(header.app_id, header.partition_index);
        let replica = self.replica(gpid).ok_or(ErrorCode::ObjectNotFound)?;
        if req.is_write() {
            return self.write(&replica, req).await;
        }
        let store = replica
            .readable_store(self.ctx.now_ms())
            .ok_or(ErrorCode::InvalidState)?;
        let app_id = gpid.app_id;
        let pidx = gpid.pidx;
        let server = self.ctx.addr.to_string();
        // Every read response names the partition and the server that answered.
        macro_rules! answered {
            ($variant:ident, $resp:expr) => {{
                let mut r = $resp;
                r.app_id = app_id;
                r.partition_index = pidx;
                r.server = server;
                RrdbResponse::$variant(r)
            }};
        }
        let serve = move |req: RrdbRequest| match req {
            RrdbRequest::Get(key) => answered!(Get, store.get(&key)),
            RrdbRequest::MultiGet(m) => answered!(MultiGet, store.multi_get(&m)),
            RrdbRequest::BatchGet(b) => answered!(BatchGet, store.batch_get(&b)),
            RrdbRequest::SortkeyCount(hk) => answered!(SortkeyCount, store.sortkey_count(&hk)),
            RrdbRequest::Ttl(key) => answered!(Ttl, store.ttl(&key)),
            RrdbRequest::GetScanner(g) => RrdbResponse::GetScanner(store.get_scanner(&g)),
            RrdbRequest::Scan(s) => RrdbResponse::Scan(store.scan(&s)),
            RrdbRequest::ClearScanner(id) => {
                store.clear_scanner(id);
                RrdbResponse::ClearScanner(UpdateResponse::default())
            }
            // Writes were handled above.
            other => RrdbResponse::Put(UpdateResponse {
                error: 4,
                app_id,
                partition_index: pidx,
                server: format!("unexpected {}", other.name()),
                ..UpdateResponse::default()
            }),
        };
        // Point reads run inline: a hop to the blocking pool costs more than a RocksDB get
        // (profiled in BENCHMARKS.md). Reads that iterate go to the blocking pool, off
        // the async workers.
        if matches!(req, RrdbRequest::Get(_) | RrdbRequest::Ttl(_)) {
            return Ok(serve(req));
        }
        let resp = tokio::task::spawn_blocking(move || serve(req))
            .await
            .map_err(|_| ErrorCode::Unknown)?;
        Ok(resp)
    }

    async fn write(&self, replica: &Shared, req: RrdbRequest) -> Result<RrdbResponse, ErrorCode> {
        let name = req.name();
        let write = match req {
            RrdbRequest::Put(r) => WriteRequest::Put(r),
            RrdbRequest::MultiPut(r) => WriteRequest::MultiPut(r),
            RrdbRequest::Remove(k) => WriteRequest::Remove(k),
            RrdbRequest::MultiRemove(r) => WriteRequest::MultiRemove(r),
            RrdbRequest::Incr(r) => WriteRequest::Incr(r),
            RrdbRequest::CheckAndSet(r) => WriteRequest::CheckAndSet(r),
            RrdbRequest::CheckAndMutate(r) => WriteRequest::CheckAndMutate(r),
            _ => return Err(ErrorCode::InvalidParameters),
        };
        let update = encode_write(&write);
        if update.len() > self.ctx.cfg.max_write_bytes {
            return Err(ErrorCode::InvalidData);
        }
        // Backpressure: a replica that cannot keep up answers ERR_BUSY (clients back off)
        // instead of queueing without bound.
        let pending = &replica.pending_writes;
        if pending.fetch_add(1, std::sync::atomic::Ordering::AcqRel)
            >= self.ctx.cfg.max_pending_writes
        {
            pending.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            return Err(ErrorCode::Busy);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = replica.send(Input::Write { update, reply: tx });
        let resp = if sent {
            // Dropped unanswered: the replica went away, perhaps after proposing it — an
            // unknown outcome, not a refusal the client would retry.
            rx.await.map_err(|_| ErrorCode::Timeout)
        } else {
            Err(ErrorCode::InvalidState)
        };
        pending.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        let resp = resp??;
        let gpid = replica.gpid;
        let server = self.ctx.addr.to_string();
        let fill = |mut u: UpdateResponse| {
            u.app_id = gpid.app_id;
            u.partition_index = gpid.pidx;
            u.server = server.clone();
            u
        };
        Ok(match (name, resp) {
            ("RPC_RRDB_RRDB_PUT", WriteResponse::Update(u)) => RrdbResponse::Put(fill(u)),
            ("RPC_RRDB_RRDB_MULTI_PUT", WriteResponse::Update(u)) => {
                RrdbResponse::MultiPut(fill(u))
            }
            (_, WriteResponse::Update(u)) => RrdbResponse::Remove(fill(u)),
            (_, WriteResponse::MultiRemove(mut r)) => {
                r.app_id = gpid.app_id;
                r.partition_index = gpid.pidx;
                r.server = server;
                RrdbResponse::MultiRemove(r)
            }
            (_, WriteResponse::Incr(mut r)) => {
                r.app_id = gpid.app_id;
                r.partition_index = gpid.pidx;
                r.server = server;
                RrdbResponse::Incr(r)
            }
            (_, WriteResponse::CheckAndSet(r)) => {
                RrdbResponse::CheckAndSet(fill_cas(r, gpid, server))
            }
            (_, WriteResponse::CheckAndMutate(r)) => {
                RrdbResponse::CheckAndMutate(fill_cas(r, gpid, server))
            }
            (_, WriteResponse::SetDefaultTtl) => RrdbResponse::Put(UpdateResponse::default()),
        })
    }
}

/// Table facts for a replica created by a learner invitation (meta fills in the rest at the
/// next config sync).
fn app_hint(gpid: Gpid) -> AppSummary {
    AppSummary {
        app_id: gpid.app_id,
        name: String::new(),
        partition_count: 0,
        envs: BTreeMap::new(),
        dropped: false,
    }
}

fn fill_cas(mut r: CheckAndSetResponse, gpid: Gpid, server: String) -> CheckAndSetResponse {
    r.app_id = gpid.app_id;
    r.partition_index = gpid.pidx;
    r.server = server;
    r
}

impl Handler for ReplicaServer {
    async fn handle(
        self: Arc<Self>,
        _peer: SocketAddr,
        frame: RequestFrame,
    ) -> Option<ResponseFrame> {
        match internal::parse(&frame.body) {
            Ok(Some(call)) => return self.on_internal(call).await,
            Ok(None) => {}
            Err(_) => return None,
        }
        let header = frame.header;
        let parsed = parse_request(frame.body).ok()?;
        match parsed {
            ParsedRequest::Known {
                message,
                request: Request::Rrdb(req),
            } => {
                let one_way = req.is_one_way();
                let op = op_label(req.name());
                let started = Instant::now();
                let result = self.on_rrdb(header, req).await;
                let took = started.elapsed();
                let slow = self.ctx.cfg.slow_request_ms;
                if slow > 0 && took >= Duration::from_millis(slow) {
                    tracing::warn!(
                        "slow request: {op} on {}.{} took {} ms ({})",
                        header.app_id,
                        header.partition_index,
                        took.as_millis(),
                        match &result {
                            Ok(_) => "ok".to_string(),
                            Err(code) => code.name().to_string(),
                        }
                    );
                }
                record_request(op, header.app_id, took, result.as_ref().err().copied());
                if one_way {
                    return None;
                }
                Some(match result {
                    Ok(resp) => ResponseFrame::ok_to(&message, resp.encode()),
                    Err(code) => ResponseFrame::error_to(&message, code),
                })
            }
            other => {
                if let ParsedRequest::Malformed { message, error } = &other {
                    tracing::debug!("{}: args do not decode: {error}", message.name);
                }
                Some(other.refusal())
            }
        }
    }
}

/// `RPC_RRDB_RRDB_MULTI_GET` → `multi_get`.
fn op_label(rpc: &'static str) -> &'static str {
    match rpc {
        "RPC_RRDB_RRDB_PUT" => "put",
        "RPC_RRDB_RRDB_MULTI_PUT" => "multi_put",
        "RPC_RRDB_RRDB_REMOVE" => "remove",
        "RPC_RRDB_RRDB_MULTI_REMOVE" => "multi_remove",
        "RPC_RRDB_RRDB_INCR" => "incr",
        "RPC_RRDB_RRDB_CHECK_AND_SET" => "check_and_set",
        "RPC_RRDB_RRDB_CHECK_AND_MUTATE" => "check_and_mutate",
        "RPC_RRDB_RRDB_GET" => "get",
        "RPC_RRDB_RRDB_MULTI_GET" => "multi_get",
        "RPC_RRDB_RRDB_BATCH_GET" => "batch_get",
        "RPC_RRDB_RRDB_SORTKEY_COUNT" => "sortkey_count",
        "RPC_RRDB_RRDB_TTL" => "ttl",
        "RPC_RRDB_RRDB_GET_SCANNER" => "get_scanner",
        "RPC_RRDB_RRDB_SCAN" => "scan",
        "RPC_RRDB_RRDB_CLEAR_SCANNER" => "clear_scanner",
        _ => "other",
    }
}

/// The replica server's HTTP endpoints (on its client port).
struct ReplicaHttp {
    server: std::sync::Weak<ReplicaServer>,
    common: CommonEndpoints,
}

impl HttpService for ReplicaHttp {
    fn get(&self, path: &str, _query: &str) -> HttpResponse {
        if let Some(r) = self.common.get(path, &["/replica/replicas"]) {
            return r;
        }
        let Some(s) = self.server.upgrade() else {
            return HttpResponse::error(503, "stopping");
        };
        match path {
            "/replica/replicas" => {
                let list: Vec<serde_json::Value> = s
                    .replica_list()
                    .iter()
                    .map(|r| {
                        let (status, rep) = r.report();
                        serde_json::json!({
                            "app_id": r.gpid.app_id,
                            "partition_index": r.gpid.pidx,
                            "table": r.app().name,
                            "status": format!("{status:?}"),
                            "ballot": rep.ballot,
                            "last_committed_decree": rep.last_committed,
                            "last_prepared_decree": rep.last_prepared,
                            "last_timestamp_us": r.last_timestamp_us(),
                        })
                    })
                    .chain(s.pending_reopens_json())
                    .collect();
                HttpResponse::json(serde_json::Value::Array(list).to_string())
            }
            "/failpoint" => HttpResponse::json(crate::failpoint::GLOBAL.status_json()),
            _ => HttpResponse::error(404, "not found; GET / lists the paths"),
        }
    }

    /// `POST /failpoint?name=<point>&times=<n>` arms a fail point (`name=off` disarms all);
    /// refused unless the server runs with `enable_fail_points`.
    fn post(&self, path: &str, query: &str) -> HttpResponse {
        use crate::failpoint::{FailPoint, GLOBAL};
        if path != "/failpoint" {
            return HttpResponse::error(405, "only /failpoint takes POST");
        }
        let name = query_param(query, "name").unwrap_or_default();
        if name == "off" {
            GLOBAL.disarm_all();
            pegasus_rpc::set_send_delay(0, 0);
            return HttpResponse::json(GLOBAL.status_json());
        }
        let number = |key: &str, default: u32| match query_param(query, key) {
            None => Ok(default),
            Some(v) => v
                .parse::<u32>()
                .map_err(|_| HttpResponse::error(400, &format!("{key} must be a number"))),
        };
        if name == "net_delay" {
            if !GLOBAL.enabled() {
                return HttpResponse::error(403, "fail points are off");
            }
            return match (number("ms", 75), number("jitter", 0)) {
                (Ok(ms), Ok(jitter)) => {
                    pegasus_rpc::set_send_delay(ms, jitter);
                    HttpResponse::json(format!("{{\"net_delay_ms\":{ms},\"jitter_ms\":{jitter}}}"))
                }
                (Err(e), _) | (_, Err(e)) => e,
            };
        }
        let point = match name.parse::<FailPoint>() {
            Ok(p) => p,
            Err(e) => return HttpResponse::error(400, &e),
        };
        let times = match number("times", 1) {
            Ok(n) => n,
            Err(e) => return e,
        };
        match GLOBAL.arm(point, times) {
            Ok(()) => HttpResponse::json(GLOBAL.status_json()),
            Err(e) => HttpResponse::error(403, &e),
        }
    }
}

fn reports(server: &ReplicaServer) -> Vec<pegasus_control::ReplicaReport> {
    server
        .replica_list()
        .iter()
        .filter(|r| !r.is_closed())
        .map(|r| r.report().1)
        .collect()
}

async fn beacon_loop(server: std::sync::Weak<ReplicaServer>) {
    loop {
        let Some(s) = server.upgrade() else { return };
        let ctx = s.ctx.clone();
        let interval = Duration::from_millis(ctx.fd.fd_beacon_interval_ms);
        let sent_ms = ctx.now_ms();
        let mut by_status: BTreeMap<&'static str, u64> = BTreeMap::new();
        for r in s.replica_list() {
            let name = match r.report().0 {
                Status::Primary => "primary",
                Status::Secondary => "secondary",
                Status::PotentialSecondary => "potential_secondary",
                Status::Inactive => "inactive",
                Status::Error => "error",
            };
            *by_status.entry(name).or_default() += 1;
        }
        by_status.insert("reopening", s.pending_reopen_count() as u64);
        for status in [
            "primary",
            "secondary",
            "potential_secondary",
            "inactive",
            "error",
            "reopening",
        ] {
            let n = by_status.get(status).copied().unwrap_or(0);
            metrics::gauge!("pegasus_replica_replicas", "status" => status).set(n as f64);
        }
        let beacon = Beacon {
            node: ctx.me,
            sent_ms,
            start_ms: ctx.start_ms,
            replicas: reports(&s),
            disk: ctx.disk.report(),
        };
        drop(s);
        if let Some(target) = ctx.meta.target() {
            let ack: Result<BeaconAck, _> = internal::call(
                &ctx.session(target),
                meta_names::BEACON,
                &beacon,
                Duration::from_millis(ctx.fd.fd_beacon_interval_ms.max(500) * 2),
            )
            .await;
            match ack {
                Ok(a) if a.is_leader && a.lease_ms > 0 => {
                    ctx.meta.set_leader(Some(target));
                    ctx.disk.set_cluster(a.disk_insufficient);
                    let until_ms = a.sent_ms.saturating_add(a.lease_ms);
                    if let Ok(mut l) = ctx.lease.lock() {
                        if l.is_none_or(|(_, u)| u < until_ms) {
                            *l = Some((a.sent_ms, until_ms));
                        }
                    }
                    let lease = Event::Lease {
                        sent_ms: a.sent_ms,
                        until_ms,
                        now_ms: ctx.now_ms(),
                    };
                    if let Some(s) = server.upgrade() {
                        for r in s.replica_list() {
                            r.send(Input::Core(lease.clone()));
                        }
                    }
                }
                Ok(a) => ctx.meta.set_leader(a.leader.filter(|l| *l != target)),
                Err(_) => ctx.meta.set_leader(None),
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// Checks the data disk every `disk_stat_interval_ms`: the figures go to meta with the next
/// beacon and to metrics; while the disk is insufficient, set-aside copies are removed.
async fn disk_loop(server: std::sync::Weak<ReplicaServer>) {
    loop {
        let Some(s) = server.upgrade() else { return };
        let ctx = s.ctx.clone();
        drop(s);
        let ratio = ctx.cfg.disk_min_available_space_ratio;
        let checked = if crate::failpoint::fire(crate::failpoint::FailPoint::DiskFull) {
            // Test-only: a full disk, as statvfs would report it.
            let capacity = ctx.disk.report().capacity_bytes.max(1 << 30);
            Ok(disk::report(capacity, 0, ratio.max(1)))
        } else {
            let root = ctx.root.clone();
            tokio::task::spawn_blocking(move || disk::check(&root, ratio))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        };
        match checked {
            Ok(report) => {
                let was = ctx.disk.insufficient();
                ctx.disk.set(report);
                metrics::gauge!("pegasus_replica_disk_capacity_bytes")
                    .set(report.capacity_bytes as f64);
                metrics::gauge!("pegasus_replica_disk_available_bytes")
                    .set(report.available_bytes as f64);
                metrics::gauge!("pegasus_replica_disk_insufficient").set(if report.insufficient {
                    1.0
                } else {
                    0.0
                });
                if report.insufficient != was {
                    if report.insufficient {
                        tracing::warn!(
                            "data disk insufficient: {} of {} bytes available, below \
                             disk_min_available_space_ratio = {ratio}%: no new replicas here, \
                             primaries move to copies with room",
                            report.available_bytes,
                            report.capacity_bytes
                        );
                    } else {
                        tracing::info!(
                            "data disk has room again: {} of {} bytes available",
                            report.available_bytes,
                            report.capacity_bytes
                        );
                    }
                }
                if report.insufficient {
                    let root = ctx.root.clone();
                    let removed =
                        tokio::task::spawn_blocking(move || disk::collect_failed_copies(&root))
                            .await
                            .unwrap_or(0);
                    if removed > 0 {
                        tracing::warn!(
                            "removed {removed} set-aside copies of failed replicas: the disk \
                             is short of space"
                        );
                    }
                }
            }
            Err(e) => tracing::warn!("cannot check the data disk: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(ctx.cfg.disk_stat_interval_ms)).await;
    }
}

async fn config_sync_loop(server: std::sync::Weak<ReplicaServer>) {
    loop {
        let Some(s) = server.upgrade() else { return };
        let ctx = s.ctx.clone();
        let req = ConfigSyncRequest {
            node: ctx.me,
            replicas: reports(&s),
        };
        drop(s);
        let resp: Result<ConfigSyncResponse, _> =
            ctx.meta_call(meta_names::CONFIG_SYNC, &req).await;
        let mut interval = Duration::from_millis(ctx.cfg.config_sync_interval_ms);
        match resp {
            Ok(r) => {
                let Some(s) = server.upgrade() else { return };
                for p in r.partitions {
                    s.on_partition(p);
                }
                for gpid in r.gc {
                    if let Some(rep) = s.replica(gpid) {
                        rep.send(Input::Close);
                        let deadline = Instant::now() + Duration::from_secs(10);
                        while !rep.is_closed() && Instant::now() < deadline {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    tracing::info!("replica {gpid:?}: table purged, moving it to garbage");
                    let _ = blocking(|| layout::retire(&ctx.root, gpid, "gar", wall_ms()));
                }
            }
            // Meta not reachable or not leading yet: try again soon.
            Err(_) => interval = Duration::from_millis(500),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = ctx.sync_now.notified() => {}
        }
    }
}

/// The `op` label values of `pegasus_replica_transient_errors_total`: where a local
/// operation ran out of a resource.
const TRANSIENT_OPS: [&str; 6] = [
    "log_flush",
    "apply",
    "rocksdb_flush",
    "init",
    "checkpoint_install",
    "reopen",
];

/// Helper for tests and tools: the directory a server keeps a replica in.
pub fn replica_path(root: &Path, gpid: Gpid) -> PathBuf {
    layout::replica_dir(root, gpid)
}

/// Request count and latency handles of one (operation, table).
type RequestHandles = HashMap<(&'static str, i32), (metrics::Counter, metrics::Histogram)>;

thread_local! {
    /// Metric handles per (operation, table), registered once per worker thread: a lookup
    /// here costs less than building the label set for every request.
    static REQUEST_METRICS: std::cell::RefCell<RequestHandles> =
        std::cell::RefCell::new(HashMap::new());
}

/// Records one served request: its count and latency per table, and its error code if it
/// failed. Public so `pegasus bench metrics` can time exactly what every request pays.
/// Handles are cached per thread, so the recorder must be installed before a thread
/// records (the servers install it at start-up).
pub fn record_request(op: &'static str, app_id: i32, took: Duration, error: Option<ErrorCode>) {
    REQUEST_METRICS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let (count, latency) = cache.entry((op, app_id)).or_insert_with(|| {
            // Per table (its id); per-partition detail is in the JSON view and the
            // RocksDB gauges, keeping request series few.
            let app = app_id.to_string();
            (
                metrics::counter!("pegasus_replica_requests_total", "op" => op, "app_id" => app.clone()),
                metrics::histogram!("pegasus_replica_request_duration_seconds", "op" => op, "app_id" => app),
            )
        });
        count.increment(1);
        latency.record(took.as_secs_f64());
    });
    if let Some(code) = error {
        metrics::counter!(
            "pegasus_replica_request_errors_total",
            "op" => op,
            "code" => code.name()
        )
        .increment(1);
    }
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
