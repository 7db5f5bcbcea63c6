//! The replica server: hosts many partition replicas, serves the rrdb RPCs on its client
//! port (THFT v0/v1, exact Pegasus encodings and frame errors), replicates between servers,
//! beacons the meta leader for its lease and syncs configurations.
//!
//! Threads: the async runtime handles sockets, reads (straight from the shared store, after
//! checking the replica's published read grant against the node's lease) and talks to meta
//! and peers; a fixed pool of replication workers runs the replicas' rounds — state
//! machine, RocksDB writes, log fsyncs — when they have input or a timer is due
//! ([`partition`], `workers`): the thread count does not grow with the replica count.
//!
//! Modules: `config` (settings, validated), `rrdb` (the client service and its metrics),
//! `peer` (internal RPCs: PacificA messages, proposals, config pushes, learn files),
//! `transfer` (fetching a learned checkpoint), `meta_link` (beacons, disk reports, config
//! sync, the node's lease), [`partition`] (a replica's task and host), `workers` (the
//! replication workers and their timers), `reopen` (in-place reopen after a
//! transient error), [`disk`], [`layout`], `admin` (HTTP); this file holds the server's
//! context, start and shutdown, the replica registry and the RPC dispatch.

mod admin;
mod config;
pub mod disk;
pub mod layout;
mod meta_link;
mod nodelog;
pub mod partition;
mod peer;
mod reopen;
mod rrdb;
mod transfer;
mod workers;

pub use config::{ReplicaServerConfig, ReplicaServerOptions};
use meta_link::{beacon_loop, config_sync_loop, disk_loop};
use rrdb::op_label;
pub use rrdb::record_request;
use transfer::{fetch, plain_name};

use reopen::Reopens;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

use crate::core::{Checkpoint, Event, NodeLease, PeerMessage, ReplicaOptions, Status};
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

/// What every replica shares.
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
    /// The node's lease, renewed by beacons (see [`NodeLease`]).
    lease: meta_link::LeaseCell,
    /// The replication workers every replica runs on.
    workers: workers::Workers<partition::PartitionTask>,
    /// Wakes the config sync loop before its interval (a reopened replica wants meta's
    /// configuration now: until then a primary does not serve).
    sync_now: tokio::sync::Notify,
    /// The data disk's free space, and the cluster's nodes short of it.
    disk: disk::DiskState,
    /// The node log's syncer (`node_log = true`): every replica's log appends are made
    /// durable by its syncs.
    nodelog: Option<Arc<nodelog::NodeLogService>>,
    /// Replicas the node-log recovery at start found may have lost acknowledged records:
    /// each is marked on its first open (see `nodelog::open`).
    torn_at_start: Mutex<std::collections::BTreeSet<Gpid>>,
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

/// A running replica server.
pub struct ReplicaServer {
    ctx: Arc<Ctx>,
    replicas: Arc<Mutex<BTreeMap<Gpid, Arc<Shared>>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    reopens: Mutex<Reopens>,
    /// Set by `shutdown`: no replica is reopened after it.
    stopping: AtomicBool,
    /// One gate per partition ever opened here: opens of one partition take turns, so two
    /// callers (a primary's invitation to learn and meta's configuration, say) never open
    /// it twice — twice would mean a second RocksDB on the same directory, or two copies
    /// with different data directories of which only one is registered.
    opening: Mutex<HashMap<Gpid, Arc<Mutex<()>>>>,
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
        let started = Instant::now();
        let found: Vec<Gpid> = std::fs::read_dir(root.join("replica"))?
            .flatten()
            .filter_map(|e| layout::parse_replica_dir(&e.file_name().to_string_lossy()))
            .collect();
        let (log, torn_at_start) = blocking(|| nodelog::open(&root, &opts.config, &found))?;
        let nodelog = log.map(nodelog::NodeLogService::start).transpose()?;
        let workers =
            workers::Workers::start("replica", opts.config.replication_worker_count, started)?;
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
            started,
            start_ms: wall_ms(),
            sessions: SessionPool::new(MAX_FRAME),
            meta: MetaLink {
                metas: opts.metas.clone(),
                leader: Mutex::new(None),
                next: Mutex::new(0),
            },
            lease: meta_link::LeaseCell::default(),
            workers,
            sync_now: tokio::sync::Notify::new(),
            disk: disk::DiskState::default(),
            nodelog,
            torn_at_start: Mutex::new(torn_at_start),
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
            opening: Mutex::new(HashMap::new()),
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
        self.ctx.workers.stop();
        if let Some(n) = &self.ctx.nodelog {
            n.stop();
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
        let gate = match self.opening.lock() {
            Ok(mut g) => g.entry(gpid).or_default().clone(),
            Err(p) => p.into_inner().entry(gpid).or_default().clone(),
        };
        let weak = Arc::downgrade(self);
        let ctx = self.ctx.clone();
        // Opening replays the log and opens RocksDB: blocking work, kept off the async
        // workers' queue so beacons keep flowing. Waiting for the gate is blocking too.
        blocking(|| {
            let _turn = match gate.lock() {
                Ok(t) => t,
                Err(p) => p.into_inner(),
            };
            // Opened by whoever held the gate before us.
            if let Some(r) = self.replica(gpid) {
                return Ok(r);
            }
            let shared = partition::open(&ctx, gpid, create_with, move |gpid, exit| {
                let Some(server) = weak.upgrade() else { return };
                server.on_replica_exit(gpid, exit);
            })?;
            shared.send(Input::Core(Event::Tick {
                now_ms: self.ctx.now_ms(),
                wall_us: self.ctx.wall_us(),
            }));
            if let Ok(mut m) = self.replicas.lock() {
                m.insert(gpid, shared.clone());
            }
            Ok(shared)
        })
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

/// The replica server's HTTP endpoints (on its client port).
struct ReplicaHttp {
    server: std::sync::Weak<ReplicaServer>,
    common: CommonEndpoints,
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
