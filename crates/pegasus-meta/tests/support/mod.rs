//! Test support: scripted replica servers that speak the replica ↔ meta protocol over real
//! TCP (beacons, config updates, proposals) but hold no data. A proposal is carried out at
//! once (an added secondary "finishes learning" immediately), which is enough to test what
//! meta decides and persists. The real replica server replaces them in end-to-end tests.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pegasus_client::Client;
use pegasus_core::config::{ConfigType, NodeId, PartitionConfig};
use pegasus_core::ids::Gpid;
use pegasus_core::time::{Clock, SystemClock};
use pegasus_meta::guardian::{transform, ConfigUpdate};
use pegasus_meta::protocol::{
    names, node_of, Beacon, BeaconAck, DiskReport, Proposal, ReplicaReport, SyncedPartition,
    UpdateConfigRequest, UpdateConfigResponse,
};
use pegasus_proto::frame::{RequestFrame, ResponseFrame};
use pegasus_proto::meta::*;
use pegasus_proto::{ErrorCode, MetaRequest, MetaResponse};
use pegasus_rpc::internal::{self, InternalCall};
use pegasus_rpc::{serve, Handler, ServerOptions, Session};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A free port on 127.0.0.1 below Linux's ephemeral range (so no outgoing connection takes
/// it between this check and the server's bind), different on every call.
pub fn free_addr() -> SocketAddr {
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    loop {
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 10_000 + (seed.wrapping_add(call.wrapping_mul(101)) % 22_000) as u16;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return l.local_addr().unwrap();
        }
    }
}

struct NodeInner {
    node: NodeId,
    metas: Vec<SocketAddr>,
    leader: Mutex<Option<SocketAddr>>,
    configs: Mutex<BTreeMap<Gpid, PartitionConfig>>,
    start_ms: u64,
    lease_until: Mutex<Option<Instant>>,
    /// What the beacons report of the disk.
    disk: Mutex<DiskReport>,
    /// The last leader ack's list of nodes short of disk.
    disk_insufficient: Mutex<Vec<NodeId>>,
}

/// A scripted replica server.
pub struct FakeNode {
    pub addr: SocketAddr,
    pub node: NodeId,
    inner: Arc<NodeInner>,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeNode {
    /// Starts serving and beaconing `metas` every `beacon_ms`.
    pub async fn start(metas: Vec<SocketAddr>, beacon_ms: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let node = node_of(addr).unwrap();
        let inner = Arc::new(NodeInner {
            node,
            metas,
            leader: Mutex::new(None),
            configs: Mutex::new(BTreeMap::new()),
            start_ms: SystemClock.now_micros() / 1000,
            lease_until: Mutex::new(None),
            disk: Mutex::new(DiskReport::default()),
            disk_insufficient: Mutex::new(Vec::new()),
        });
        let server = tokio::spawn(serve(listener, inner.clone(), ServerOptions::default()));
        let beacons = tokio::spawn(beacon_loop(inner.clone(), beacon_ms));
        Self {
            addr,
            node,
            inner,
            tasks: vec![server, beacons],
        }
    }

    /// Stops everything (as if the process died).
    pub fn kill(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }

    /// What the next beacons report of the disk.
    pub fn set_disk(&self, disk: DiskReport) {
        *self.inner.disk.lock().unwrap() = disk;
    }

    /// The nodes short of disk, as the last leader ack listed them.
    pub fn acked_disk_insufficient(&self) -> Vec<NodeId> {
        self.inner.disk_insufficient.lock().unwrap().clone()
    }

    /// Whether the node holds a lease from the meta leader now.
    pub fn has_lease(&self) -> bool {
        self.inner
            .lease_until
            .lock()
            .unwrap()
            .is_some_and(|t| Instant::now() < t)
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.kill();
    }
}

fn sessions() -> &'static Mutex<BTreeMap<SocketAddr, Session>> {
    static S: std::sync::OnceLock<Mutex<BTreeMap<SocketAddr, Session>>> =
        std::sync::OnceLock::new();
    S.get_or_init(|| Mutex::new(BTreeMap::new()))
}

fn session(addr: SocketAddr) -> Session {
    sessions()
        .lock()
        .unwrap()
        .entry(addr)
        .or_insert_with(|| Session::new(addr, 16 << 20))
        .clone()
}

async fn beacon_loop(inner: Arc<NodeInner>, beacon_ms: u64) {
    let started = Instant::now();
    let mut next_meta = 0usize;
    loop {
        let target = inner
            .leader
            .lock()
            .unwrap()
            .unwrap_or_else(|| inner.metas[next_meta % inner.metas.len()]);
        let sent = Instant::now();
        // Like a replica server, report a copy of every partition this node is a member of
        // (it holds what was committed: these fakes keep no data of their own).
        let replicas = inner
            .configs
            .lock()
            .unwrap()
            .values()
            .filter(|c| c.is_member(inner.node))
            .map(|c| ReplicaReport {
                gpid: c.gpid,
                ballot: c.ballot,
                last_committed: c.last_committed_decree,
                last_prepared: c.last_committed_decree,
                fresh: false,
            })
            .collect();
        let b = Beacon {
            node: inner.node,
            sent_ms: started.elapsed().as_millis() as u64,
            start_ms: inner.start_ms,
            replicas,
            disk: *inner.disk.lock().unwrap(),
        };
        let ack: Result<BeaconAck, _> =
            internal::call(&session(target), names::BEACON, &b, Duration::from_secs(1)).await;
        match ack {
            Ok(a) if a.is_leader && a.lease_ms > 0 => {
                *inner.leader.lock().unwrap() = Some(target);
                *inner.lease_until.lock().unwrap() = Some(sent + Duration::from_millis(a.lease_ms));
                *inner.disk_insufficient.lock().unwrap() = a.disk_insufficient;
            }
            Ok(a) => {
                *inner.leader.lock().unwrap() = a.leader.filter(|l| *l != target);
                next_meta += 1;
            }
            Err(_) => {
                *inner.leader.lock().unwrap() = None;
                next_meta += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(beacon_ms)).await;
    }
}

/// Sends a configuration change to the meta leader (following hints), like a replica does.
async fn request_update(
    inner: &NodeInner,
    kind: ConfigType,
    node: NodeId,
    current: &PartitionConfig,
) {
    let Ok(mut next) = transform(current, kind, node) else {
        return;
    };
    next.ballot = current.ballot + 1;
    let req = UpdateConfigRequest {
        update: ConfigUpdate {
            kind,
            node,
            config: next,
        },
    };
    for attempt in 0..10 {
        let target = inner
            .leader
            .lock()
            .unwrap()
            .unwrap_or(inner.metas[attempt % inner.metas.len()]);
        let resp: Result<UpdateConfigResponse, _> = internal::call(
            &session(target),
            names::UPDATE_CONFIG,
            &req,
            Duration::from_secs(2),
        )
        .await;
        match resp {
            Ok(r) if r.err == "ERR_FORWARD_TO_OTHERS" => {
                *inner.leader.lock().unwrap() = r.leader;
            }
            Ok(r) => {
                if let Some(c) = r.config {
                    inner.configs.lock().unwrap().insert(c.gpid, c);
                }
                return;
            }
            Err(_) => {
                *inner.leader.lock().unwrap() = None;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Handler for NodeInner {
    async fn handle(
        self: Arc<Self>,
        _peer: SocketAddr,
        frame: RequestFrame,
    ) -> Option<ResponseFrame> {
        let call: InternalCall = internal::parse(&frame.body).ok()??;
        match call.message.name.as_str() {
            names::PROPOSAL => {
                let p: Proposal = call.decode().ok()?;
                self.configs
                    .lock()
                    .unwrap()
                    .insert(p.config.gpid, p.config.clone());
                let kind = match p.kind {
                    // A primary told to add a secondary reports it caught up at once.
                    ConfigType::AddSecondary => ConfigType::UpgradeToSecondary,
                    k => k,
                };
                request_update(&self, kind, p.node, &p.config).await;
                None
            }
            names::CONFIG_PUSH => {
                let s: SyncedPartition = call.decode().ok()?;
                self.configs.lock().unwrap().insert(s.config.gpid, s.config);
                None
            }
            _ => None,
        }
    }
}

/// Waits for a state instead of sleeping and hoping it has come: calls `check` every 50 ms
/// until it returns `Ok`, for at most `within`, then fails with `what` and what the last
/// check saw (its `Err`).
pub async fn wait_until<T>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(seen) if Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Waits until meta lists `n` replica servers alive.
pub async fn wait_alive(client: &Client, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(MetaResponse::ListNodes(r)) = client
            .meta(MetaRequest::ListNodes(ListNodesRequest {
                status: NodeStatus::Alive,
            }))
            .await
        {
            if r.infos.len() >= n {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{n} nodes not alive within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates a table.
pub async fn create(
    client: &Client,
    name: &str,
    partitions: i32,
    replicas: i32,
) -> CreateAppResponse {
    match client
        .meta(MetaRequest::CreateApp(CreateAppRequest {
            app_name: name.into(),
            options: CreateAppOptions {
                partition_count: partitions,
                replica_count: replicas,
                app_type: "pegasus".into(),
                is_stateful: true,
                ..CreateAppOptions::default()
            },
        }))
        .await
        .unwrap()
    {
        MetaResponse::CreateApp(r) => r,
        other => panic!("{other:?}"),
    }
}

/// Lists tables with `status` (`Invalid` = all).
pub async fn list(client: &Client, status: AppStatus) -> Vec<AppInfo> {
    match client
        .meta(MetaRequest::ListApps(ListAppsRequest {
            status,
            ..ListAppsRequest::default()
        }))
        .await
        .unwrap()
    {
        MetaResponse::ListApps(r) => {
            assert_eq!(r.err, ErrorCode::Ok);
            r.infos
        }
        other => panic!("{other:?}"),
    }
}
