//! The meta server process: one port serving the client-facing meta RPCs (exact Pegasus
//! encodings), the Raft RPCs between meta servers and the replica-server protocol; a leader
//! loop that detects dead nodes and drives PacificA reconfiguration with the guardian.
//!
//! # Leases and failure detection (the safety argument)
//! A replica server's beacon carries its send time `s` (its clock). Meta acks it only after
//! confirming with a Raft quorum that it is still the leader, and the ack grants a lease
//! until `s + fd_lease_ms` on the replica's clock. Meta declares the node dead only when no
//! beacon *arrived* for `fd_grace_ms > fd_lease_ms + margin`, counting from the later of the
//! last arrival and the moment this meta became leader. Arrival is after sending, so by the
//! time meta declares the node dead — and only then replaces a primary — the old primary's
//! lease has run out and it has stopped serving reads and writes. A deposed meta leader
//! cannot extend leases: its quorum check fails, and any ack it sent before was for a beacon
//! sent before the new leader's election, whose grace period starts after it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ServerState, SnapshotPolicy};
use pegasus_core::config::{ConfigType, NodeId, PartitionConfig};
use pegasus_core::ids::Gpid;
use pegasus_core::time::{Clock, SystemClock};
use pegasus_proto::codec::WireEnum;
use pegasus_proto::frame::{RequestFrame, ResponseFrame};
use pegasus_proto::meta::{
    AppEnvOperation, AppInfo, AppStatus as WireAppStatus, ClusterInfoResponse, CreateAppResponse,
    DropAppResponse, GetMaxReplicaCountResponse, ListAppsRequest, ListAppsResponse,
    ListNodesResponse, MetaControlResponse, MetaFunctionLevel, NodeInfo, NodeStatus,
    PartitionConfiguration, PatternMatchType, QueryCfgRequest, QueryCfgResponse, RecallAppResponse,
    SetMaxReplicaCountResponse, UpdateAppEnvRequest, UpdateAppEnvResponse,
};
use pegasus_proto::rpc::{parse_request, ParsedRequest};
use pegasus_proto::{ErrorCode, MetaRequest, MetaResponse, Request, RpcAddress};
use pegasus_rpc::http::{query_param, CommonEndpoints, HttpResponse, HttpService};
use pegasus_rpc::internal::{self, InternalCall};
use pegasus_rpc::{Handler, NetworkConfig, ServerOptions, Session, SessionPool};
use tokio::task::JoinHandle;

use crate::config::MetaServerConfig;
use crate::detector::FailureDetector;
use crate::envs;
use crate::guardian::{self, ClusterView, GuardianOptions, ReplicaInfo};
use crate::pass::{self, Action, NodesView, PartitionView, Proposals};
use crate::protocol::{
    addr_of, names, AppSummary, Beacon, BeaconAck, ConfigSyncRequest, ConfigSyncResponse,
    DiskReport, FailureDetectorConfig, Proposal, ReplicaReport, SyncedPartition,
    UpdateConfigRequest, UpdateConfigResponse,
};
use crate::raft::{rpc_names, LogStore, Network, Raft, RaftNodeId, StateMachine};
use crate::state::{
    check_level_request, App, AppStatus, Command, EnvOp, MetaError, MetaState, Outcome, Reply,
    LEVEL_FREEZED, LEVEL_STEADY,
};

/// How long the same proposal is not re-sent for the same partition, ms.
const PROPOSAL_RESEND_MS: u64 = 3_000;
/// Timeout of meta → replica sends.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a partition kept short of copies for lack of disk is logged, at most, ms.
const SHORT_OF_DISK_LOG_MS: u64 = 60_000;

/// A client meta request a follower passes on to the leader.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Forwarded {
    name: String,
    args: Vec<u8>,
}

/// Why the meta server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// Disk or socket trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// openraft refused to start.
    #[error("raft: {0}")]
    Raft(String),
}

/// Everything a meta server needs to start.
#[derive(Debug, Clone)]
pub struct MetaOptions {
    /// `[meta_server]`.
    pub config: MetaServerConfig,
    /// `[replication]` failure detection.
    pub fd: FailureDetectorConfig,
    /// This server's address (must be in `server_list`).
    pub listen: SocketAddr,
    /// HTTP admin endpoints on the same port (version, config, metrics); defaults if none.
    pub admin: Option<CommonEndpoints>,
    /// `[network]`: connection caps, timeouts and the request-byte budget of the port.
    pub network: NetworkConfig,
}

#[derive(Debug)]
struct NodeStart {
    start_ms: u64,
    last_change: Instant,
    unstable: u32,
}

#[derive(Debug, Default)]
struct Fd {
    /// Beacons, the alive and the dead (ms since the server's `epoch`).
    detector: FailureDetector,
    reports: HashMap<NodeId, Vec<ReplicaReport>>,
    starts: HashMap<NodeId, NodeStart>,
    /// Proposals sent (re-sent only when due).
    proposals: Proposals,
    registering: HashSet<NodeId>,
    /// Each node's last disk report (forgotten when it is declared dead or restarts).
    disks: HashMap<NodeId, DiskReport>,
    /// When each partition short of copies for lack of disk was last logged.
    short_of_disk_logged: HashMap<Gpid, Instant>,
}

/// A running meta server.
pub struct MetaServer {
    id: RaftNodeId,
    addr: SocketAddr,
    servers: Vec<SocketAddr>,
    raft: Raft,
    state: Arc<RwLock<MetaState>>,
    config: MetaServerConfig,
    fd_config: FailureDetectorConfig,
    fd: Mutex<Fd>,
    /// Time zero of the failure detector's milliseconds.
    epoch: Instant,
    sessions: SessionPool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for MetaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaServer")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Wall-clock time for the stamps in commands (create / drop / expire times).
fn now_ms() -> u64 {
    SystemClock.now_micros() / 1000
}

impl Fd {
    fn new(grace_ms: u64) -> Self {
        Self {
            detector: FailureDetector::new(grace_ms),
            proposals: Proposals::new(PROPOSAL_RESEND_MS),
            ..Self::default()
        }
    }
}

fn elapsed_ms(since: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(since).as_millis()).unwrap_or(u64::MAX)
}

/// Maps a command error to its Pegasus error code.
pub fn error_code(e: &MetaError) -> ErrorCode {
    match e {
        MetaError::AppExist(_) => ErrorCode::AppExist,
        MetaError::AppNotExist(_) => ErrorCode::AppNotExist,
        MetaError::InvalidParameters(_) | MetaError::NotEnoughNodes(_) => {
            ErrorCode::InvalidParameters
        }
        MetaError::InvalidVersion(_) => ErrorCode::InvalidVersion,
        MetaError::Freezed(_) => ErrorCode::StateFreezed,
    }
}

/// Why a Raft write did not produce an outcome.
#[derive(Debug)]
enum WriteError {
    NotLeader(Option<SocketAddr>),
    Raft(String),
}

impl WriteError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::NotLeader(_) => ErrorCode::ForwardToOthers,
            Self::Raft(why) => {
                tracing::warn!("raft write failed: {why}");
                ErrorCode::TryAgain
            }
        }
    }
}

fn wire_address(node: Option<NodeId>) -> RpcAddress {
    node.map_or(RpcAddress::INVALID, |n| RpcAddress::from_raw(n.0))
}

/// A partition configuration as clients see it (no `hp_*` fields).
pub fn wire_partition(pc: &PartitionConfig) -> PartitionConfiguration {
    PartitionConfiguration {
        pid: pc.gpid,
        ballot: pc.ballot,
        max_replica_count: i32::try_from(pc.max_replica_count).unwrap_or(i32::MAX),
        primary: wire_address(pc.primary),
        secondaries: pc
            .secondaries
            .iter()
            .map(|n| wire_address(Some(*n)))
            .collect(),
        last_drops: pc
            .last_drops
            .iter()
            .map(|n| wire_address(Some(*n)))
            .collect(),
        last_committed_decree: pc.last_committed_decree,
        partition_flags: 0,
    }
}

fn secs(ms: u64) -> i64 {
    i64::try_from(ms / 1000).unwrap_or(i64::MAX)
}

/// A table as clients see it.
pub fn wire_app(app: &App) -> AppInfo {
    AppInfo {
        status: match app.status {
            AppStatus::Available => WireAppStatus::Available,
            AppStatus::Dropped => WireAppStatus::Dropped,
        },
        app_type: app.app_type.clone(),
        app_name: app.name.clone(),
        app_id: app.id,
        partition_count: app.partition_count,
        envs: app.envs.clone(),
        is_stateful: true,
        max_replica_count: app.max_replica_count,
        expire_second: secs(app.expire_ms),
        create_second: secs(app.create_ms),
        drop_second: secs(app.drop_ms),
        duplicating: Some(false),
        init_partition_count: app.partition_count,
        is_bulk_loading: Some(false),
        atomic_idempotent: Some(false),
    }
}

fn summary(app: &App) -> AppSummary {
    AppSummary {
        app_id: app.id,
        name: app.name.clone(),
        partition_count: app.partition_count,
        envs: app.envs.clone(),
        dropped: app.status == AppStatus::Dropped,
    }
}

fn level_name(level: i32) -> &'static str {
    match level {
        100 => "fl_stopped",
        200 => "fl_blind",
        300 => "fl_freezed",
        400 => "fl_steady",
        500 => "fl_lively",
        _ => "fl_invalid",
    }
}

fn name_matches(name: &str, req: &ListAppsRequest) -> Result<bool, String> {
    let Some(pattern) = req.app_name_pattern.as_deref() else {
        return Ok(true);
    };
    Ok(match req.match_type.unwrap_or(PatternMatchType::MatchAll) {
        PatternMatchType::MatchAll | PatternMatchType::Invalid => true,
        PatternMatchType::MatchExact => name == pattern,
        PatternMatchType::MatchAnywhere => name.contains(pattern),
        PatternMatchType::MatchPrefix => name.starts_with(pattern),
        PatternMatchType::MatchPostfix => name.ends_with(pattern),
        other => return Err(format!("match type {other:?} is not supported")),
    })
}

impl MetaServer {
    /// Starts a meta server: opens its Raft state, joins (or forms) the meta group, serves
    /// on `opts.listen`. Returns once the port is open.
    pub async fn start(opts: MetaOptions) -> Result<Arc<Self>, StartError> {
        opts.config.validate().map_err(StartError::Config)?;
        opts.fd.validate().map_err(StartError::Config)?;
        let servers = opts.config.servers().map_err(StartError::Config)?;
        let index = servers
            .iter()
            .position(|a| *a == opts.listen)
            .ok_or_else(|| {
                StartError::Config(format!(
                    "listen address {} is not in server_list {}",
                    opts.listen, opts.config.server_list
                ))
            })?;
        let id = index as RaftNodeId + 1;
        let listener = pegasus_rpc::listen(opts.listen).await?;
        let dir = opts.config.data_dir.join("raft");
        let log = LogStore::open(&dir)?;
        let sm = StateMachine::open(&dir)?;
        let state = sm.state();
        let hb = opts.config.raft_heartbeat_interval_ms;
        let et = opts.config.raft_election_timeout_ms;
        let raft_config = openraft::Config {
            cluster_name: "pegasus-meta".into(),
            heartbeat_interval: hb,
            election_timeout_min: et,
            election_timeout_max: et * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(opts.config.raft_snapshot_every_entries),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let raft = Raft::new(id, Arc::new(raft_config), Network::default(), log, sm)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        let members: BTreeMap<RaftNodeId, BasicNode> = servers
            .iter()
            .enumerate()
            .map(|(i, a)| (i as RaftNodeId + 1, BasicNode::new(a.to_string())))
            .collect();
        if !raft
            .is_initialized()
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?
        {
            // Every meta initialises with the same membership; openraft makes that safe,
            // and an "already initialised" answer is the goal anyway.
            if let Err(e) = raft.initialize(members).await {
                tracing::debug!("raft initialize: {e}");
            }
        }
        // Counters that only move on rare events exist from the start (dashboards, alerts).
        metrics::counter!("pegasus_meta_failovers_total").increment(0);
        metrics::counter!("pegasus_meta_dead_nodes_total").increment(0);
        let server = Arc::new(Self {
            id,
            addr: opts.listen,
            servers,
            raft,
            state,
            config: opts.config,
            fd_config: opts.fd,
            fd: Mutex::new(Fd::new(opts.fd.fd_grace_ms)),
            epoch: Instant::now(),
            sessions: SessionPool::new(pegasus_proto::DEFAULT_MAX_FRAME),
            tasks: Mutex::new(Vec::new()),
        });
        let admin = opts
            .admin
            .clone()
            .unwrap_or_else(|| CommonEndpoints::bare("meta", env!("CARGO_PKG_VERSION")));
        let http: Arc<dyn HttpService> = Arc::new(MetaHttp {
            server: Arc::downgrade(&server),
            common: admin,
        });
        let serve = tokio::spawn(pegasus_rpc::serve(
            listener,
            server.clone(),
            ServerOptions {
                http: Some(http),
                network: opts.network.clone(),
                ..ServerOptions::default()
            },
        ));
        let leader_loop = tokio::spawn(leader_loop(Arc::downgrade(&server)));
        if let Ok(mut t) = server.tasks.lock() {
            t.push(serve);
            t.push(leader_loop);
        }
        tracing::info!("meta server {id} serving on {}", server.addr);
        Ok(server)
    }

    /// Stops serving and shuts Raft down.
    pub async fn shutdown(&self) {
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        for t in tasks {
            t.abort();
        }
        let _ = self.raft.shutdown().await;
    }

    /// This server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A copy of the applied state.
    pub fn state(&self) -> MetaState {
        self.state.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// The leader's address, if known.
    pub fn leader(&self) -> Option<SocketAddr> {
        let id = self.raft.metrics().borrow().current_leader?;
        self.servers
            .get(usize::try_from(id).ok()?.checked_sub(1)?)
            .copied()
    }

    /// Whether this meta is the leader and has applied every entry of earlier terms (so its
    /// state is up to date for reads).
    pub fn is_ready_leader(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.state == ServerState::Leader
            && m.current_leader == Some(self.id)
            && m.last_applied.map(|l| l.leader_id.term) == Some(m.current_term)
    }

    async fn write(&self, cmd: Command) -> Result<Outcome, WriteError> {
        match self.raft.client_write(cmd).await {
            Ok(resp) => Ok(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                let leader = f
                    .leader_id
                    .and_then(|id| usize::try_from(id).ok()?.checked_sub(1))
                    .and_then(|i| self.servers.get(i).copied());
                Err(WriteError::NotLeader(leader))
            }
            Err(e) => Err(WriteError::Raft(e.to_string())),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&MetaState) -> T) -> T {
        match self.state.read() {
            Ok(s) => f(&s),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn fd(&self) -> std::sync::MutexGuard<'_, Fd> {
        match self.fd.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// `t` as the failure detector's milliseconds.
    fn ms(&self, t: Instant) -> u64 {
        elapsed_ms(self.epoch, t)
    }

    /// Nodes that beaconed this leader within the grace period and are not held back.
    fn alive_nodes(&self, now: Instant) -> BTreeSet<NodeId> {
        self.fd().detector.alive(self.ms(now))
    }

    /// Alive nodes whose last disk report says insufficient.
    fn disk_insufficient(&self, now: Instant) -> BTreeSet<NodeId> {
        let alive = self.alive_nodes(now);
        let fd = self.fd();
        fd.disks
            .iter()
            .filter(|(n, d)| d.insufficient && alive.contains(n))
            .map(|(n, _)| *n)
            .collect()
    }

    /// Partitions kept short of copies because only nodes short of disk could take one,
    /// with those nodes (leader only: empty elsewhere).
    fn partitions_short_of_disk(&self, now: Instant) -> BTreeMap<Gpid, Vec<NodeId>> {
        let view = ClusterView {
            alive: self.alive_nodes(now),
            disk_insufficient: self.disk_insufficient(now),
            ..ClusterView::default()
        };
        if view.disk_insufficient.is_empty() {
            return BTreeMap::new();
        }
        self.read(|s| {
            s.apps
                .values()
                .filter(|a| a.status == AppStatus::Available)
                .flat_map(|a| a.partitions.iter())
                .filter_map(|p| {
                    let nodes = guardian::short_of_disk(&p.config, &view);
                    (!nodes.is_empty()).then_some((p.config.gpid, nodes))
                })
                .collect()
        })
    }

    /// The function level in force: the stored one, capped at `freezed` when too few
    /// replica servers are alive.
    fn effective_level(&self, now: Instant) -> i32 {
        let (level, known) = self.read(|s| (s.function_level, s.nodes.len()));
        let alive = self.alive_nodes(now).len();
        let frozen = alive < self.config.min_live_node_count_for_unfreeze
            || alive * 100 < self.config.node_live_percentage_threshold_for_update * known;
        if frozen {
            level.min(LEVEL_FREEZED)
        } else {
            level
        }
    }

    fn session(&self, addr: SocketAddr) -> Session {
        self.sessions.get(addr)
    }

    /// Sends a one-way message to a replica server without waiting.
    fn send_to_node<T: serde::Serialize + Send + Sync + 'static>(
        &self,
        node: NodeId,
        name: &'static str,
        msg: T,
    ) {
        let Some(addr) = addr_of(node) else { return };
        let session = self.session(addr);
        tokio::spawn(async move {
            let sent =
                tokio::time::timeout(SEND_TIMEOUT, internal::send(&session, name, &msg)).await;
            if !matches!(sent, Ok(Ok(()))) {
                tracing::debug!("send {name} to {addr} failed");
            }
        });
    }

    fn push_config(&self, pc: &PartitionConfig, to: impl IntoIterator<Item = NodeId>) {
        let Some(app) = self.read(|s| s.apps.get(&pc.gpid.app_id).map(summary)) else {
            return;
        };
        for n in to {
            self.send_to_node(
                n,
                names::CONFIG_PUSH,
                SyncedPartition {
                    config: pc.clone(),
                    app: app.clone(),
                },
            );
        }
    }

    fn not_leader_code(&self) -> ErrorCode {
        if self.leader().is_some() {
            ErrorCode::ForwardToOthers
        } else {
            ErrorCode::ServiceNotActive
        }
    }

    // ------------------------------------------------------------ client-facing meta RPCs

    async fn on_meta(&self, req: MetaRequest) -> MetaResponse {
        if let MetaRequest::QueryConfig(q) = req {
            return MetaResponse::QueryConfig(self.query_config(&q));
        }
        if !self.is_ready_leader() {
            return self.not_leader_response(req);
        }
        let now = Instant::now();
        match req {
            MetaRequest::QueryConfig(q) => MetaResponse::QueryConfig(self.query_config(&q)),
            MetaRequest::CreateApp(c) => {
                let o = &c.options;
                let is_new = || self.read(|s| s.app_by_name(&c.app_name).is_none());
                // The envs of a new table are refused as `set_app_envs` refuses them. The
                // response has no hint field, so the reason goes to the log.
                let bad_env = o
                    .envs
                    .iter()
                    .find_map(|(k, v)| envs::check_set(k, v).err())
                    .filter(|_| is_new());
                let check = if let Some(hint) = bad_env {
                    tracing::warn!("create table {:?} refused: {hint}", c.app_name);
                    Err(ErrorCode::InvalidParameters)
                } else if self.effective_level(now) < LEVEL_STEADY {
                    Err(ErrorCode::StateFreezed)
                } else if usize::try_from(o.replica_count).unwrap_or(0)
                    > self.alive_nodes(now).len()
                    && is_new()
                {
                    Err(ErrorCode::InvalidParameters)
                } else {
                    Ok(())
                };
                let result = match check {
                    Err(code) => Err(code),
                    Ok(()) => {
                        self.outcome(Command::CreateApp {
                            name: c.app_name.clone(),
                            partition_count: o.partition_count,
                            replica_count: o.replica_count,
                            envs: o.envs.clone(),
                            success_if_exist: o.success_if_exist,
                            now_ms: now_ms(),
                        })
                        .await
                    }
                };
                MetaResponse::CreateApp(match result {
                    Ok(Reply::AppId(id)) => CreateAppResponse {
                        err: ErrorCode::Ok,
                        appid: id,
                    },
                    Ok(_) => CreateAppResponse {
                        err: ErrorCode::Ok,
                        appid: 0,
                    },
                    Err(err) => CreateAppResponse { err, appid: 0 },
                })
            }
            MetaRequest::DropApp(d) => {
                let reserve = d
                    .options
                    .reserve_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .filter(|s| *s > 0)
                    .unwrap_or(self.config.hold_seconds_for_dropped_app);
                let r = self
                    .outcome(Command::DropApp {
                        name: d.app_name.clone(),
                        success_if_not_exist: d.options.success_if_not_exist,
                        reserve_seconds: reserve,
                        now_ms: now_ms(),
                    })
                    .await;
                MetaResponse::DropApp(DropAppResponse {
                    err: r.err().unwrap_or(ErrorCode::Ok),
                })
            }
            MetaRequest::RecallApp(r) => {
                let out = self
                    .outcome(Command::RecallApp {
                        app_id: r.app_id,
                        new_name: r.new_app_name.clone(),
                        now_ms: now_ms(),
                    })
                    .await;
                MetaResponse::RecallApp(match out {
                    Ok(_) => RecallAppResponse {
                        err: ErrorCode::Ok,
                        info: self
                            .read(|s| s.apps.get(&r.app_id).map(wire_app))
                            .unwrap_or_default(),
                    },
                    Err(err) => RecallAppResponse {
                        err,
                        info: AppInfo::default(),
                    },
                })
            }
            MetaRequest::ListApps(l) => MetaResponse::ListApps(self.list_apps(&l)),
            MetaRequest::ListNodes(l) => {
                let alive = self.alive_nodes(now);
                let infos = self.read(|s| {
                    s.nodes
                        .iter()
                        .map(|n| NodeInfo {
                            status: if alive.contains(n) {
                                NodeStatus::Alive
                            } else {
                                NodeStatus::Unalive
                            },
                            node: RpcAddress::from_raw(n.0),
                        })
                        .filter(|i| l.status == NodeStatus::Invalid || i.status == l.status)
                        .collect()
                });
                MetaResponse::ListNodes(ListNodesResponse {
                    err: ErrorCode::Ok,
                    infos,
                })
            }
            MetaRequest::ClusterInfo(_) => MetaResponse::ClusterInfo(self.cluster_info(now)),
            MetaRequest::UpdateAppEnv(u) => MetaResponse::UpdateAppEnv(self.update_envs(&u).await),
            MetaRequest::ControlMeta(c) => {
                let old = self.read(|s| s.function_level);
                let err = if c.level == MetaFunctionLevel::Invalid {
                    ErrorCode::Ok
                } else if let Err(e) = check_level_request(c.level.to_wire()) {
                    // The response has no hint field, so the reason goes to the log.
                    tracing::warn!("set meta level {:?} refused: {e}", c.level);
                    error_code(&e)
                } else {
                    self.outcome(Command::SetFunctionLevel(c.level.to_wire()))
                        .await
                        .err()
                        .unwrap_or(ErrorCode::Ok)
                };
                MetaResponse::ControlMeta(MetaControlResponse {
                    err,
                    old_level: MetaFunctionLevel::from_wire(old),
                })
            }
            MetaRequest::GetMaxReplicaCount(g) => {
                let count = self.read(|s| s.app_by_name(&g.app_name).map(|a| a.max_replica_count));
                MetaResponse::GetMaxReplicaCount(match count {
                    Some(n) => GetMaxReplicaCountResponse {
                        err: ErrorCode::Ok,
                        max_replica_count: n,
                        hint_message: String::new(),
                    },
                    None => GetMaxReplicaCountResponse {
                        err: ErrorCode::AppNotExist,
                        max_replica_count: 0,
                        hint_message: format!("table {:?} does not exist", g.app_name),
                    },
                })
            }
            MetaRequest::SetMaxReplicaCount(s) => {
                let alive = self.alive_nodes(now).len();
                let (err, old, hint) = if self.effective_level(now) < LEVEL_STEADY {
                    (ErrorCode::StateFreezed, 0, "meta is freezed".to_string())
                } else if usize::try_from(s.max_replica_count).unwrap_or(usize::MAX) > alive {
                    (
                        ErrorCode::InvalidParameters,
                        0,
                        format!(
                            "{} replicas wanted, {alive} replica servers alive",
                            s.max_replica_count
                        ),
                    )
                } else {
                    match self
                        .write(Command::SetMaxReplicaCount {
                            name: s.app_name.clone(),
                            count: s.max_replica_count,
                        })
                        .await
                    {
                        Ok(Ok(Reply::Old(old))) => (ErrorCode::Ok, old, String::new()),
                        Ok(Ok(_)) => (ErrorCode::Ok, 0, String::new()),
                        Ok(Err(e)) => (error_code(&e), 0, e.to_string()),
                        Err(e) => (e.code(), 0, format!("{e:?}")),
                    }
                };
                MetaResponse::SetMaxReplicaCount(SetMaxReplicaCountResponse {
                    err,
                    old_max_replica_count: old,
                    hint_message: hint,
                })
            }
        }
    }

    /// A follower passes a client's DDL request to the leader (Pegasus's meta forwards too)
    /// and relays the encoded answer. `None`: answer locally (leader, query, no leader
    /// known, or the leader did not answer — the client then retries).
    async fn forward(&self, req: &MetaRequest) -> Option<bytes::Bytes> {
        if matches!(req, MetaRequest::QueryConfig(_)) || self.is_ready_leader() {
            return None;
        }
        let leader = self.leader().filter(|l| *l != self.addr)?;
        let fwd = Forwarded {
            name: req.name().to_string(),
            args: req.encode_args().to_vec(),
        };
        let answer: Result<Vec<u8>, _> = internal::call(
            &self.session(leader),
            names::META_FORWARD,
            &fwd,
            Duration::from_secs(10),
        )
        .await;
        answer.ok().map(bytes::Bytes::from)
    }

    /// Runs a command; `Err` is the error code to answer.
    async fn outcome(&self, cmd: Command) -> Result<Reply, ErrorCode> {
        match self.write(cmd).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(error_code(&e)),
            Err(e) => Err(e.code()),
        }
    }

    fn not_leader_response(&self, req: MetaRequest) -> MetaResponse {
        let err = self.not_leader_code();
        match req {
            MetaRequest::QueryConfig(q) => MetaResponse::QueryConfig(self.query_config(&q)),
            MetaRequest::CreateApp(_) => {
                MetaResponse::CreateApp(CreateAppResponse { err, appid: 0 })
            }
            MetaRequest::DropApp(_) => MetaResponse::DropApp(DropAppResponse { err }),
            MetaRequest::RecallApp(_) => MetaResponse::RecallApp(RecallAppResponse {
                err,
                info: AppInfo::default(),
            }),
            MetaRequest::ListApps(_) => MetaResponse::ListApps(ListAppsResponse {
                err,
                infos: Vec::new(),
                hint_message: None,
            }),
            MetaRequest::ListNodes(_) => MetaResponse::ListNodes(ListNodesResponse {
                err,
                infos: Vec::new(),
            }),
            MetaRequest::ClusterInfo(_) => MetaResponse::ClusterInfo(ClusterInfoResponse {
                err,
                keys: Vec::new(),
                values: Vec::new(),
            }),
            MetaRequest::UpdateAppEnv(_) => MetaResponse::UpdateAppEnv(UpdateAppEnvResponse {
                err,
                hint_message: String::new(),
            }),
            MetaRequest::ControlMeta(_) => MetaResponse::ControlMeta(MetaControlResponse {
                err,
                old_level: MetaFunctionLevel::Invalid,
            }),
            MetaRequest::GetMaxReplicaCount(_) => {
                MetaResponse::GetMaxReplicaCount(GetMaxReplicaCountResponse {
                    err,
                    max_replica_count: 0,
                    hint_message: String::new(),
                })
            }
            MetaRequest::SetMaxReplicaCount(_) => {
                MetaResponse::SetMaxReplicaCount(SetMaxReplicaCountResponse {
                    err,
                    old_max_replica_count: 0,
                    hint_message: String::new(),
                })
            }
        }
    }

    /// `RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX`, with the error inside the body as clients
    /// expect; a follower names the leader in `partitions[0].primary`.
    pub fn query_config(&self, q: &QueryCfgRequest) -> QueryCfgResponse {
        if !self.is_ready_leader() {
            let err = self.not_leader_code();
            let partitions = self
                .leader()
                .filter(|_| err == ErrorCode::ForwardToOthers)
                .map(|l| {
                    vec![PartitionConfiguration {
                        primary: RpcAddress::from_socket_addr(l),
                        ..PartitionConfiguration::default()
                    }]
                })
                .unwrap_or_default();
            return QueryCfgResponse {
                err,
                partitions,
                ..QueryCfgResponse::default()
            };
        }
        self.read(|s| match s.app_by_name(&q.app_name) {
            None => QueryCfgResponse {
                err: ErrorCode::ObjectNotFound,
                ..QueryCfgResponse::default()
            },
            Some(app) => {
                let partitions = if q.partition_indices.is_empty() {
                    app.partitions
                        .iter()
                        .map(|p| wire_partition(&p.config))
                        .collect()
                } else {
                    q.partition_indices
                        .iter()
                        .filter_map(|i| app.partitions.get(usize::try_from(*i).ok()?))
                        .map(|p| wire_partition(&p.config))
                        .collect()
                };
                QueryCfgResponse {
                    err: ErrorCode::Ok,
                    app_id: app.id,
                    partition_count: app.partition_count,
                    is_stateful: true,
                    partitions,
                }
            }
        })
    }

    fn list_apps(&self, l: &ListAppsRequest) -> ListAppsResponse {
        let result: Result<Vec<AppInfo>, String> = self.read(|s| {
            let mut out = Vec::new();
            for app in s.apps.values() {
                let info = wire_app(app);
                if l.status != WireAppStatus::Invalid && info.status != l.status {
                    continue;
                }
                if name_matches(&app.name, l)? {
                    out.push(info);
                }
            }
            Ok(out)
        });
        match result {
            Ok(infos) => ListAppsResponse {
                err: ErrorCode::Ok,
                infos,
                hint_message: None,
            },
            Err(hint) => ListAppsResponse {
                err: ErrorCode::InvalidParameters,
                infos: Vec::new(),
                hint_message: Some(hint),
            },
        }
    }

    fn cluster_info(&self, now: Instant) -> ClusterInfoResponse {
        let alive = self.alive_nodes(now).len();
        let m = self.raft.metrics().borrow().clone();
        let (level, nodes, tables) = self.read(|s| {
            (
                s.function_level,
                s.nodes.len(),
                s.apps
                    .values()
                    .filter(|a| a.status == AppStatus::Available)
                    .count(),
            )
        });
        let servers: Vec<String> = self.servers.iter().map(ToString::to_string).collect();
        let pairs = [
            ("meta_servers", servers.join(",")),
            ("primary_meta_server", self.addr.to_string()),
            ("meta_state_service", "raft (openraft)".to_string()),
            ("raft_term", m.current_term.to_string()),
            (
                "raft_last_applied",
                m.last_applied.map_or(0, |l| l.index).to_string(),
            ),
            ("meta_function_level", level_name(level).to_string()),
            (
                "effective_function_level",
                level_name(self.effective_level(now)).to_string(),
            ),
            ("alive_nodes", alive.to_string()),
            ("unalive_nodes", nodes.saturating_sub(alive).to_string()),
            (
                "disk_insufficient_nodes",
                self.disk_insufficient(now)
                    .into_iter()
                    .map(addr_text)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "partitions_short_of_disk",
                self.partitions_short_of_disk(now).len().to_string(),
            ),
            ("available_tables", tables.to_string()),
        ];
        ClusterInfoResponse {
            err: ErrorCode::Ok,
            keys: pairs.iter().map(|(k, _)| (*k).to_string()).collect(),
            values: pairs.into_iter().map(|(_, v)| v).collect(),
        }
    }

    async fn update_envs(&self, u: &UpdateAppEnvRequest) -> UpdateAppEnvResponse {
        let op = match u.op {
            AppEnvOperation::Set => {
                let keys = u.keys.clone().unwrap_or_default();
                let values = u.values.clone().unwrap_or_default();
                if keys.is_empty() || keys.len() != values.len() {
                    return UpdateAppEnvResponse {
                        err: ErrorCode::InvalidParameters,
                        hint_message: "set needs as many values as keys, at least one".into(),
                    };
                }
                // Only envs pegasus-rs acts on may be set (`envs::ENVS`); del and clear
                // work for every key.
                if let Some(hint) = keys
                    .iter()
                    .zip(&values)
                    .find_map(|(k, v)| envs::check_set(k, v).err())
                {
                    return UpdateAppEnvResponse {
                        err: ErrorCode::InvalidParameters,
                        hint_message: hint,
                    };
                }
                EnvOp::Set(keys.into_iter().zip(values).collect())
            }
            AppEnvOperation::Del => EnvOp::Del(u.keys.clone().unwrap_or_default()),
            AppEnvOperation::Clear => EnvOp::Clear(u.clear_prefix.clone().unwrap_or_default()),
            _ => {
                return UpdateAppEnvResponse {
                    err: ErrorCode::InvalidParameters,
                    hint_message: "unknown env operation".into(),
                }
            }
        };
        match self
            .write(Command::UpdateEnvs {
                name: u.app_name.clone(),
                op,
            })
            .await
        {
            Ok(Ok(_)) => UpdateAppEnvResponse {
                err: ErrorCode::Ok,
                hint_message: String::new(),
            },
            Ok(Err(e)) => UpdateAppEnvResponse {
                err: error_code(&e),
                hint_message: e.to_string(),
            },
            Err(e) => UpdateAppEnvResponse {
                err: e.code(),
                hint_message: format!("{e:?}"),
            },
        }
    }

    // ------------------------------------------------------------ replica-server protocol

    async fn on_beacon(&self, b: Beacon) -> BeaconAck {
        let arrived = Instant::now();
        metrics::counter!("pegasus_meta_beacons_total").increment(1);
        let not_leader = BeaconAck {
            sent_ms: b.sent_ms,
            is_leader: false,
            leader: self.leader(),
            lease_ms: 0,
            disk_insufficient: Vec::new(),
        };
        if !self.is_ready_leader() {
            return not_leader;
        }
        let held_back = {
            let mut fd = self.fd();
            let stable_ms = self
                .config
                .stable_rs_min_running_seconds
                .saturating_mul(1000);
            let entry = fd.starts.entry(b.node).or_insert(NodeStart {
                start_ms: b.start_ms,
                last_change: arrived,
                unstable: 0,
            });
            let restarted = entry.start_ms != b.start_ms;
            if restarted {
                if elapsed_ms(entry.last_change, arrived) < stable_ms {
                    entry.unstable += 1;
                } else {
                    entry.unstable = 0;
                }
                entry.start_ms = b.start_ms;
                entry.last_change = arrived;
            }
            if entry.unstable >= self.config.max_succssive_unstable_restart
                && elapsed_ms(entry.last_change, arrived) >= stable_ms
            {
                entry.unstable = 0;
            }
            let held_back = entry.unstable >= self.config.max_succssive_unstable_restart;
            if restarted {
                // What the previous process saw of its disk says nothing about this one.
                fd.disks.remove(&b.node);
            }
            held_back
        };
        if held_back {
            tracing::warn!(
                "{:?} restarts too often: its beacons are not acked",
                addr_of(b.node)
            );
            return BeaconAck {
                is_leader: true,
                leader: Some(self.addr),
                ..not_leader
            };
        }
        // Grant a lease only as a leader confirmed by a quorum after the beacon arrived.
        if self.raft.ensure_linearizable().await.is_err() {
            return not_leader;
        }
        let register = {
            let mut fd = self.fd();
            fd.detector.beacon(b.node, self.ms(arrived));
            fd.reports.insert(b.node, b.replicas);
            fd.disks.insert(b.node, b.disk);
            let known = self.read(|s| s.nodes.contains(&b.node));
            !known && fd.registering.insert(b.node)
        };
        if register {
            let _ = self.write(Command::RegisterNode(b.node)).await;
            self.fd().registering.remove(&b.node);
        }
        BeaconAck {
            sent_ms: b.sent_ms,
            is_leader: true,
            leader: Some(self.addr),
            lease_ms: self.fd_config.fd_lease_ms,
            disk_insufficient: self.disk_insufficient(arrived).into_iter().collect(),
        }
    }

    fn on_config_sync(&self, req: &ConfigSyncRequest) -> Option<ConfigSyncResponse> {
        if !self.is_ready_leader() {
            return None;
        }
        let reported: BTreeSet<Gpid> = req.replicas.iter().map(|r| r.gpid).collect();
        Some(self.read(|s| {
            let mut partitions = Vec::new();
            for app in s.apps.values() {
                for p in &app.partitions {
                    if p.config.is_member(req.node) || reported.contains(&p.config.gpid) {
                        partitions.push(SyncedPartition {
                            config: p.config.clone(),
                            app: summary(app),
                        });
                    }
                }
            }
            let gc = reported
                .iter()
                .filter(|g| !s.apps.contains_key(&g.app_id))
                .copied()
                .collect();
            ConfigSyncResponse { partitions, gc }
        }))
    }

    async fn on_update_config(&self, req: UpdateConfigRequest) -> UpdateConfigResponse {
        let now = Instant::now();
        let reply =
            |err: ErrorCode, config: Option<PartitionConfig>, leader| UpdateConfigResponse {
                err: err.name().to_string(),
                config,
                leader,
            };
        if !self.is_ready_leader() {
            return reply(self.not_leader_code(), None, self.leader());
        }
        if self.effective_level(now) < LEVEL_STEADY {
            return reply(ErrorCode::StateFreezed, None, None);
        }
        let gpid = req.update.config.gpid;
        let before = self.read(|s| s.partition(gpid).map(|p| p.config.clone()));
        match self
            .write(Command::UpdatePartition {
                update: req.update,
                now_ms: now_ms(),
            })
            .await
        {
            Ok(Ok(Reply::Partition(pc))) => {
                let mut to: BTreeSet<NodeId> = pc.members().into_iter().collect();
                if let Some(b) = &before {
                    to.extend(b.members());
                }
                self.push_config(&pc, to);
                reply(ErrorCode::Ok, Some(pc), None)
            }
            Ok(Ok(_)) => reply(ErrorCode::Ok, None, None),
            Ok(Err(e)) => {
                let current = self.read(|s| s.partition(gpid).map(|p| p.config.clone()));
                reply(error_code(&e), current, None)
            }
            Err(WriteError::NotLeader(l)) => reply(ErrorCode::ForwardToOthers, None, l),
            Err(e) => reply(e.code(), None, None),
        }
    }

    async fn on_internal(&self, call: InternalCall) -> Option<ResponseFrame> {
        macro_rules! decode {
            ($t:ty) => {
                match call.decode::<$t>() {
                    Ok(v) => v,
                    Err(_) => return Some(call.error(ErrorCode::InvalidParameters)),
                }
            };
        }
        let name = call.message.name.as_str();
        Some(match name {
            rpc_names::APPEND => {
                let req = decode!(openraft::raft::AppendEntriesRequest<crate::raft::TypeConfig>);
                call.reply(&self.raft.append_entries(req).await)
            }
            rpc_names::VOTE => {
                let req = decode!(openraft::raft::VoteRequest<RaftNodeId>);
                call.reply(&self.raft.vote(req).await)
            }
            rpc_names::SNAPSHOT => {
                let req = decode!(openraft::raft::InstallSnapshotRequest<crate::raft::TypeConfig>);
                call.reply(&self.raft.install_snapshot(req).await)
            }
            names::BEACON => {
                let b = decode!(Beacon);
                call.reply(&self.on_beacon(b).await)
            }
            names::CONFIG_SYNC => {
                let req = decode!(ConfigSyncRequest);
                match self.on_config_sync(&req) {
                    Some(resp) => call.reply(&resp),
                    None => call.error(self.not_leader_code()),
                }
            }
            names::UPDATE_CONFIG => {
                let req = decode!(UpdateConfigRequest);
                call.reply(&self.on_update_config(req).await)
            }
            names::META_FORWARD => {
                let fwd = decode!(Forwarded);
                let mut r = pegasus_proto::thrift::Reader::new(bytes::Bytes::from(fwd.args));
                match MetaRequest::decode(&fwd.name, &mut r) {
                    // Answered here, never forwarded again (no forwarding loops).
                    Ok(Some(req)) => call.reply(&self.on_meta(req).await.encode().to_vec()),
                    _ => call.error(ErrorCode::InvalidParameters),
                }
            }
            _ => call.error(ErrorCode::HandlerNotFound),
        })
    }

    // ------------------------------------------------------------ the leader loop

    /// One round of failure detection and curing (leader only).
    async fn tick(&self) {
        let now = Instant::now();
        self.fd().detector.start_term(self.ms(now));
        // Purge dropped tables past their reserve time.
        let wall = now_ms();
        let expired: Vec<i32> = self.read(|s| {
            s.apps
                .values()
                .filter(|a| a.status == AppStatus::Dropped && wall > a.expire_ms)
                .map(|a| a.id)
                .collect()
        });
        for app_id in expired {
            let _ = self
                .write(Command::PurgeApp {
                    app_id,
                    now_ms: wall,
                })
                .await;
        }
        // Failure detection: no beacon within the grace period since this leader started.
        let newly_dead: Vec<NodeId> = {
            let nodes = self.read(|s| s.nodes.clone());
            let now_ms = self.ms(now);
            let mut fd = self.fd();
            let dead = fd.detector.check(nodes, now_ms);
            for n in &dead {
                fd.disks.remove(n);
            }
            dead
        };
        metrics::counter!("pegasus_meta_dead_nodes_total").increment(newly_dead.len() as u64);
        for n in &newly_dead {
            tracing::warn!(
                "replica server {:?} is dead (no beacon for {} ms)",
                addr_of(*n),
                self.fd_config.fd_grace_ms
            );
        }
        self.record_health(now);
        let level = self.effective_level(now);
        if level >= LEVEL_FREEZED {
            self.handle_dead_members(now).await;
        }
        if level >= LEVEL_STEADY {
            self.cure_all(now).await;
        }
    }

    /// Partition health and node gauges (leader only).
    fn record_health(&self, now: Instant) {
        let min = self.config.mutation_2pc_min_replica_count;
        let (mut healthy, mut ill, mut unwritable, mut unreadable) = (0u64, 0u64, 0u64, 0u64);
        self.read(|s| {
            for app in s.apps.values().filter(|a| a.status == AppStatus::Available) {
                for p in &app.partitions {
                    let members = p.config.members().len();
                    if p.config.primary.is_none() {
                        unreadable += 1;
                    } else if members < min {
                        unwritable += 1;
                    } else if p.config.is_healthy() {
                        healthy += 1;
                    } else {
                        ill += 1;
                    }
                }
            }
        });
        for (health, n) in [
            ("healthy", healthy),
            ("writable_ill", ill),
            ("unwritable", unwritable),
            ("unreadable", unreadable),
        ] {
            metrics::gauge!("pegasus_meta_partitions", "health" => health).set(n as f64);
        }
        metrics::gauge!("pegasus_meta_alive_nodes").set(self.alive_nodes(now).len() as f64);
        metrics::gauge!("pegasus_meta_nodes_disk_insufficient")
            .set(self.disk_insufficient(now).len() as f64);
        let short = self.partitions_short_of_disk(now);
        metrics::gauge!("pegasus_meta_partitions_short_of_disk").set(short.len() as f64);
        let to_log: Vec<(Gpid, Vec<NodeId>)> = {
            let mut fd = self.fd();
            fd.short_of_disk_logged
                .retain(|_, at| elapsed_ms(*at, now) < SHORT_OF_DISK_LOG_MS);
            short
                .into_iter()
                .filter(|(g, _)| {
                    let fresh = !fd.short_of_disk_logged.contains_key(g);
                    if fresh {
                        fd.short_of_disk_logged.insert(*g, now);
                    }
                    fresh
                })
                .collect()
        };
        for (gpid, nodes) in to_log {
            let nodes: Vec<String> = nodes.into_iter().map(addr_text).collect();
            tracing::warn!(
                "partition {gpid:?} stays short of copies: only {} could take one, and their disk \
                 is insufficient",
                nodes.join(", ")
            );
        }
    }

    /// Drops dead primaries (meta writes the change itself) and asks primaries to drop dead
    /// secondaries. Level-triggered: runs every tick until the configuration reflects it.
    async fn handle_dead_members(&self, now: Instant) {
        let dead = self.fd().detector.dead().clone();
        if dead.is_empty() {
            return;
        }
        let affected: Vec<PartitionConfig> = self.read(|s| {
            s.apps
                .values()
                .filter(|a| a.status == AppStatus::Available)
                .flat_map(|a| a.partitions.iter().map(|p| p.config.clone()))
                .filter(|pc| pc.members().iter().any(|m| dead.contains(m)))
                .collect()
        });
        for action in pass::dead_members(&affected, &dead) {
            self.carry_out(action, now).await;
        }
    }

    /// Carries out one decision of the guardian pass.
    async fn carry_out(&self, action: Action, now: Instant) {
        match action {
            Action::Write {
                expected_ballot,
                next,
                notify,
            } => {
                match self
                    .write(Command::WritePartition {
                        expected_ballot,
                        next,
                        now_ms: now_ms(),
                    })
                    .await
                {
                    Ok(Ok(Reply::Partition(written))) => {
                        metrics::counter!("pegasus_meta_failovers_total").increment(1);
                        tracing::info!(
                            "partition {:?}: dead primary dropped, ballot {}",
                            written.gpid,
                            written.ballot
                        );
                        self.push_config(&written, notify);
                    }
                    other => tracing::debug!("dropping a dead primary: {other:?}"),
                }
            }
            Action::Propose {
                config,
                target,
                kind,
                node,
            } => self.propose(&config, target, kind, node, now),
            Action::NeedOperator { gpid, why } => tracing::warn!("partition {gpid:?}: {why}"),
        }
    }

    fn propose(
        &self,
        pc: &PartitionConfig,
        target: NodeId,
        kind: ConfigType,
        node: NodeId,
        now: Instant,
    ) {
        let now_ms = self.ms(now);
        if !self.fd().proposals.admit(pc, kind, node, now_ms) {
            return;
        }
        let Some(app) = self.read(|s| s.apps.get(&pc.gpid.app_id).map(summary)) else {
            return;
        };
        tracing::debug!(
            "propose {kind:?} of {node} to {target} for {:?} at ballot {}",
            pc.gpid,
            pc.ballot
        );
        self.send_to_node(
            target,
            names::PROPOSAL,
            Proposal {
                kind,
                node,
                config: pc.clone(),
                app,
            },
        );
    }

    async fn cure_all(&self, now: Instant) {
        // One snapshot of the reports: which nodes reported, and what each holds.
        let (reported, reports) = {
            let fd = self.fd();
            let reported = fd.reports.keys().copied().collect();
            let held = fd
                .reports
                .iter()
                .flat_map(|(n, rs)| {
                    rs.iter().map(|r| {
                        (
                            (r.gpid, *n),
                            ReplicaInfo {
                                ballot: r.ballot,
                                last_committed: r.last_committed,
                                last_prepared: r.last_prepared,
                            },
                        )
                    })
                })
                .collect();
            (reported, held)
        };
        let nodes = NodesView {
            alive: self.alive_nodes(now),
            reported,
            reports,
            disk_insufficient: self.disk_insufficient(now),
            now_ms: now_ms(),
        };
        let partitions: Vec<PartitionView> = self.read(|s| {
            s.apps
                .values()
                .filter(|a| a.status == AppStatus::Available)
                .flat_map(|a| {
                    a.partitions.iter().map(|p| PartitionView {
                        config: p.config.clone(),
                        drop_ms: p.drop_ms.clone(),
                    })
                })
                .collect()
        });
        let opts = GuardianOptions {
            min_2pc_replicas: self.config.mutation_2pc_min_replica_count,
            dropout_delay_ms: self.config.replica_assign_delay_ms_for_dropouts,
        };
        for action in pass::cure_all(&partitions, &nodes, &opts) {
            self.carry_out(action, now).await;
        }
    }
}

async fn leader_loop(server: std::sync::Weak<MetaServer>) {
    loop {
        let Some(s) = server.upgrade() else { return };
        let interval = Duration::from_millis(s.fd_config.fd_check_interval_ms);
        metrics::gauge!("pegasus_meta_is_leader").set(if s.is_ready_leader() { 1.0 } else { 0.0 });
        if s.is_ready_leader() {
            s.tick().await;
        } else {
            let mut fd = s.fd();
            if fd.detector.in_term() {
                // Lost leadership: forget the soft state; the next term starts afresh.
                *fd = Fd::new(s.fd_config.fd_grace_ms);
            }
        }
        drop(s);
        tokio::time::sleep(interval).await;
    }
}

/// The meta server's HTTP endpoints (on its RPC port).
struct MetaHttp {
    server: std::sync::Weak<MetaServer>,
    common: CommonEndpoints,
}

fn addr_text(n: NodeId) -> String {
    addr_of(n).map_or_else(|| format!("{n}"), |a| a.to_string())
}

impl HttpService for MetaHttp {
    fn get(&self, path: &str, query: &str) -> HttpResponse {
        const PATHS: &[&str] = &[
            "/meta/cluster",
            "/meta/apps",
            "/meta/app?name=",
            "/meta/nodes",
        ];
        if let Some(r) = self.common.get(path, PATHS) {
            return r;
        }
        let Some(s) = self.server.upgrade() else {
            return HttpResponse::error(503, "stopping");
        };
        let now = Instant::now();
        // Liveness is the leader's knowledge: followers redirect there.
        if path == "/meta/nodes" && !s.is_ready_leader() {
            return match s.leader().filter(|l| *l != s.addr) {
                Some(l) => HttpResponse::redirect(format!("http://{l}{path}")),
                None => HttpResponse::error(503, "no meta leader yet"),
            };
        }
        let body = match path {
            "/meta/cluster" => {
                let info = s.cluster_info(now);
                let map: serde_json::Map<String, serde_json::Value> = info
                    .keys
                    .into_iter()
                    .zip(info.values)
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect();
                serde_json::json!({
                    "is_leader": s.is_ready_leader(),
                    "leader": s.leader().map(|l| l.to_string()),
                    "info": map,
                })
            }
            "/meta/apps" => s.read(|st| {
                serde_json::Value::Array(
                    st.apps
                        .values()
                        .map(|a| {
                            serde_json::json!({
                                "app_id": a.id,
                                "name": a.name,
                                "status": format!("{:?}", a.status),
                                "partition_count": a.partition_count,
                                "max_replica_count": a.max_replica_count,
                                "envs": a.envs,
                                "healthy_partitions": a.partitions.iter().filter(|p| p.config.is_healthy()).count(),
                            })
                        })
                        .collect(),
                )
            }),
            "/meta/app" => {
                let Some(name) = query_param(query, "name") else {
                    return HttpResponse::error(400, "missing ?name=<table>");
                };
                // Disk shortage is the leader's knowledge: null on a follower.
                let leader = s.is_ready_leader();
                let short = s.partitions_short_of_disk(now);
                let app = s.read(|st| {
                    st.app_by_name(name).map(|a| {
                        serde_json::json!({
                            "app_id": a.id,
                            "name": a.name,
                            "partitions": a.partitions.iter().map(|p| serde_json::json!({
                                "pidx": p.config.gpid.pidx,
                                "ballot": p.config.ballot,
                                "primary": p.config.primary.map(addr_text),
                                "secondaries": p.config.secondaries.iter().map(|n| addr_text(*n)).collect::<Vec<_>>(),
                                "last_drops": p.config.last_drops.iter().map(|n| addr_text(*n)).collect::<Vec<_>>(),
                                "short_of_disk": leader.then(|| short.contains_key(&p.config.gpid)),
                            })).collect::<Vec<_>>(),
                        })
                    })
                });
                match app {
                    Some(v) => v,
                    None => return HttpResponse::error(404, "no such table"),
                }
            }
            "/meta/nodes" => {
                let alive = s.alive_nodes(now);
                let disks = s.fd().disks.clone();
                s.read(|st| {
                    serde_json::Value::Array(
                        st.nodes
                            .iter()
                            .map(|n| {
                                // The last disk report of an alive node; null when none.
                                let disk = disks.get(n).filter(|_| alive.contains(n));
                                serde_json::json!({
                                    "address": addr_text(*n),
                                    "status": if alive.contains(n) { "ALIVE" } else { "UNALIVE" },
                                    "disk_available_bytes": disk.map(|d| d.available_bytes),
                                    "disk_capacity_bytes": disk.map(|d| d.capacity_bytes),
                                    "disk_insufficient": disk.map(|d| d.insufficient),
                                })
                            })
                            .collect(),
                    )
                })
            }
            _ => return HttpResponse::error(404, "not found; GET / lists the paths"),
        };
        HttpResponse::json(body.to_string())
    }
}

impl Handler for MetaServer {
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
        let parsed = parse_request(frame.body).ok()?;
        match parsed {
            ParsedRequest::Known {
                message,
                request: Request::Meta(req),
            } => {
                let result = match self.forward(&req).await {
                    Some(bytes) => bytes,
                    None => self.on_meta(req).await.encode(),
                };
                Some(ResponseFrame::ok_to(&message, result))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_partition_has_no_primary_as_zero_address() {
        let pc = PartitionConfig {
            gpid: Gpid::new(3, 1),
            ballot: 4,
            max_replica_count: 3,
            primary: None,
            secondaries: vec![NodeId(
                RpcAddress::from_socket_addr("127.0.0.1:34801".parse().unwrap()).raw(),
            )],
            ..PartitionConfig::default()
        };
        let w = wire_partition(&pc);
        assert_eq!(w.primary, RpcAddress::INVALID);
        assert_eq!(
            w.secondaries[0].to_socket_addr(),
            Some("127.0.0.1:34801".parse().unwrap())
        );
        assert_eq!(w.ballot, 4);
    }

    #[test]
    fn every_meta_error_maps_to_a_pegasus_code() {
        assert_eq!(
            error_code(&MetaError::AppExist("t".into())),
            ErrorCode::AppExist
        );
        assert_eq!(
            error_code(&MetaError::AppNotExist("t".into())),
            ErrorCode::AppNotExist
        );
        assert_eq!(
            error_code(&MetaError::InvalidParameters("x".into())),
            ErrorCode::InvalidParameters
        );
        assert_eq!(
            error_code(&MetaError::InvalidVersion("x".into())),
            ErrorCode::InvalidVersion
        );
        assert_eq!(
            error_code(&MetaError::Freezed("x".into())),
            ErrorCode::StateFreezed
        );
    }
}
