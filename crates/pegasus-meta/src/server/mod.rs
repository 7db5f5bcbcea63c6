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
//!
//! Modules: `client` (the client-facing meta RPCs), `replicas` (beacons, config sync and
//! updates, internal RPCs), `leader` (the leader loop), `http`, `wire` (state to wire
//! structures); this file holds the server's state, start and shutdown, Raft writes and
//! reads, and the RPC dispatch.

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

mod client;
mod http;
mod leader;
mod replicas;
mod wire;

use http::MetaHttp;
use leader::leader_loop;
use wire::*;
pub use wire::{wire_app, wire_partition};

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
