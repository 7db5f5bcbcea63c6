//! Deterministic simulation of one Pegasus partition: replica nodes running the PacificA
//! core (`pegasus-replica`) over the in-memory storage engine and a crash-modelling file
//! system, a meta server running the guardian logic (`pegasus-meta`), clients issuing get /
//! set / check_and_set / incr, and faults: message drop and delay, partitions, crashes that
//! lose unsynced data, pauses longer than the lease, clock-rate skew, duplicated and
//! reordered deliveries (random delays reorder messages), and messages that sat in a buffer
//! through a partition and arrive seconds later. Clients route by a cached configuration and
//! ask meta again only after an error or a timeout; meta piggybacks the configuration on
//! only some beacon acknowledgements, as Pegasus's periodic config sync does.
//!
//! One thread, one seeded RNG, virtual time: a seed is a complete, replayable run. Invariants
//! are checked as the run goes (one committing primary per ballot, committed decrees never
//! change) and at the end (the client history is linearizable, every acknowledged write is
//! in the final state, and the partition heals to one primary and two secondaries).
#![warn(missing_docs)]

pub mod host;
pub mod rng;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use pegasus_check::{linearizable, Op, OpKind, OpResult, Verdict};
use pegasus_core::config::{ConfigType, NodeId, PartitionConfig};
use pegasus_core::ids::{Decree, Gpid};
use pegasus_core::key::encode_key;
use pegasus_core::rrdb::{CasCheckType, CheckAndSetRequest, IncrRequest, UpdateRequest};
use pegasus_core::time::{Clock, ManualClock};
use pegasus_fs::{CrashMode, FileSystem, MemFs};
use pegasus_meta::detector::FailureDetector;
use pegasus_meta::guardian::{
    self, ClusterView, ConfigUpdate, Cure, DeadNodeAction, GuardianOptions, ReplicaInfo,
    UpdateOutcome,
};
use pegasus_proto::ErrorCode;
use pegasus_replica::core::{Checkpoint, Event, PeerMessage, ReplicaOptions, Status};
use pegasus_replica::driver::{
    self, DriverConfig, Exit, Host, InitInfo, Input as DriverInput, PartitionDriver, View,
};
use pegasus_replica::log::{LogOptions, MutationLog};
use pegasus_replica::Mutation;
use pegasus_storage::{
    MemoryDisk, MemoryEngine, PartitionStore, ReadLimits, WriteRequest, WriteResponse,
};

use crate::host::{Effect, SimHost};
use crate::rng::Rng;
use pegasus_replica::update::{decode_write, encode_write};

/// Wall-clock time at virtual time 0: 2026-01-01T00:00:00Z in Unix µs. Ticks start at 0
/// while wall clocks start here, so a mutation stamped with tick time (uptime) instead of
/// wall time is caught at once.
pub const SIM_EPOCH_US: u64 = 1_767_225_600_000_000;

/// How far a node's wall clock is set off from true time at the start (each node gets a
/// fixed offset within ±this, besides its clock-rate skew).
pub const WALL_OFFSET_MAX_US: u64 = 500_000;

/// A rule deliberately broken, to prove the checks catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// Serve reads on any node that believes it is primary, without the lease check.
    ReadsWithoutLease,
    /// Give the replicas their uptime (the tick clock) as the wall clock, as the replica
    /// server once did: mutation timestamps then sit in 1970 and restart from zero on every
    /// node.
    UptimeAsWallClock,
}

/// Simulation settings.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The seed.
    pub seed: u64,
    /// Replica nodes (3 replicas of the partition are placed among them).
    pub nodes: u64,
    /// Registers the clients use.
    pub keys: u64,
    /// Concurrent clients.
    pub clients: u64,
    /// Virtual time with faults, ms.
    pub fault_ms: u64,
    /// Virtual time after faults stop, before the final checks, ms.
    pub heal_ms: u64,
    /// Whether to inject faults.
    pub faults: bool,
    /// A broken rule, for tests of the checks.
    pub planted: Option<PlantedBug>,
    /// Record a trace of every event.
    pub trace: bool,
    /// Some crashes are power losses of every node at once (matrix row 5): each loses or
    /// tears what it had not synced. Off, the seeds replay as before.
    pub power_loss: bool,
    /// The mutation log does not fsync (Pegasus's default `plog_force_flush = false`),
    /// to measure what a whole-cluster power loss then loses.
    pub async_log: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            nodes: 4,
            keys: 3,
            clients: 3,
            fault_ms: 20_000,
            heal_ms: 15_000,
            power_loss: false,
            async_log: false,
            faults: true,
            planted: None,
            trace: false,
        }
    }
}

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Client operations invoked.
    pub ops: u64,
    /// Operations acknowledged.
    pub ok: u64,
    /// Operations whose outcome is unknown.
    pub unknown: u64,
    /// Invariant violations (empty = pass).
    pub failures: Vec<String>,
    /// Checkpoints installed by learners (learning that needed more than cache and log).
    pub checkpoints_installed: u64,
    /// The event trace, when asked for.
    pub trace: Vec<String>,
}

const LEASE_MS: u64 = 2_000;
const GRACE_MS: u64 = 3_000;
const BEACON_MS: u64 = 300;
const TICK_MS: u64 = 50;
const CLIENT_TIMEOUT_MS: u64 = 3_000;
const META_TICK_MS: u64 = 200;
const REPLICAS: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Addr {
    Node(NodeId),
    Meta,
    Client(u64),
}

#[derive(Debug, Clone)]
enum ClientOp {
    Get(u64),
    Write(u64, OpKind),
}

#[derive(Debug, Clone)]
enum Msg {
    Peer(PeerMessage),
    Beacon {
        sent_local_ms: u64,
        info: Option<ReplicaInfo>,
    },
    BeaconAck {
        sent_local_ms: u64,
    },
    Config(PartitionConfig),
    Proposal {
        kind: ConfigType,
        node: NodeId,
    },
    ConfigRequest {
        kind: ConfigType,
        node: NodeId,
        config: PartitionConfig,
    },
    ConfigRejected,
    ClientRequest {
        op: u64,
        request: ClientOp,
    },
    ClientReply {
        op: u64,
        result: Option<OpResult>,
        definite_failure: bool,
    },
}

#[derive(Debug, Clone)]
enum Ev {
    Tick(NodeId),
    Beacon(NodeId),
    Deliver {
        from: Addr,
        to: Addr,
        msg: Box<Msg>,
    },
    /// A learned checkpoint the node's driver asked for has arrived (for the node's
    /// incarnation then).
    Fetched(NodeId, u64, Box<Checkpoint>),
    MetaTick,
    ClientNext(u64),
    ClientTimeout(u64),
    Fault,
    Restart(NodeId),
    Heal,
}

struct Node {
    up: bool,
    paused_until: u64,
    /// Local clock = virtual time × rate (permille) + offset.
    rate_permille: u64,
    fs: MemFs,
    disk: MemoryDisk,
    /// The replica: the replica server's own driver, on the memory engine and `MemFs`.
    driver: Option<PartitionDriver<SimHost>>,
    /// Starts of this node's replica; a checkpoint fetched for an earlier one is dropped.
    incarnation: u64,
}

struct PendingOp {
    client: u64,
    index: usize,
}

/// The simulator.
#[allow(
    missing_debug_implementations,
    reason = "holds engines and logs; the trace is the debug view"
)]
pub struct Sim {
    opts: SimOptions,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: Vec<Option<Ev>>,
    nodes: BTreeMap<NodeId, Node>,
    meta_config: PartitionConfig,
    /// Meta's failure detector: the meta server's own (`pegasus_meta::detector`).
    meta_fd: FailureDetector,
    /// Each client's cached idea of the primary.
    client_routes: BTreeMap<u64, NodeId>,
    meta_drop_times: BTreeMap<NodeId, u64>,
    meta_info: BTreeMap<NodeId, ReplicaInfo>,
    partitioned: BTreeSet<NodeId>,
    drop_permille: u64,
    faults_on: bool,
    history: Vec<Op>,
    pending: BTreeMap<u64, PendingOp>,
    next_op: u64,
    next_value: i64,
    /// Every committed decree's updates and timestamp.
    committed_content: BTreeMap<Decree, (Vec<Bytes>, u64)>,
    primary_of_ballot: BTreeMap<i64, NodeId>,
    report: Report,
    store_clock: ManualClock,
    drop_rule: Option<DropRule>,
}

/// A message filter for scripted scenarios: `(from, to, kind) -> drop?`.
pub type DropRule = Box<dyn FnMut(Option<NodeId>, Option<NodeId>, &'static str) -> bool>;

fn kind_of(msg: &Msg) -> &'static str {
    match msg {
        Msg::Peer(p) => match p {
            PeerMessage::Prepare { .. } => "Prepare",
            PeerMessage::PrepareAck { .. } => "PrepareAck",
            PeerMessage::GroupCheck { .. } => "GroupCheck",
            PeerMessage::GroupCheckAck { .. } => "GroupCheckAck",
            PeerMessage::AddLearner { .. } => "AddLearner",
            PeerMessage::Learn { .. } => "Learn",
            PeerMessage::LearnResponse(_) => "LearnResponse",
            PeerMessage::LearnCompleted { .. } => "LearnCompleted",
        },
        Msg::Beacon { .. } => "Beacon",
        Msg::BeaconAck { .. } => "BeaconAck",
        Msg::Config(_) => "Config",
        Msg::Proposal { .. } => "Proposal",
        Msg::ConfigRequest { .. } => "ConfigRequest",
        Msg::ConfigRejected => "ConfigRejected",
        Msg::ClientRequest { .. } => "ClientRequest",
        Msg::ClientReply { .. } => "ClientReply",
    }
}

fn key_bytes(key: u64) -> Bytes {
    Bytes::from(encode_key(format!("k{key}").as_bytes(), b"").unwrap_or_default())
}

fn parse_int(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

impl Sim {
    /// A simulation of `opts`.
    pub fn new(opts: SimOptions) -> Self {
        let mut rng = Rng::new(opts.seed);
        let mut nodes = BTreeMap::new();
        for i in 1..=opts.nodes {
            let id = NodeId(i);
            let skew = if opts.faults {
                rng.range(970, 1030)
            } else {
                1000
            };
            nodes.insert(
                id,
                Node {
                    up: true,
                    paused_until: 0,
                    rate_permille: skew,
                    fs: MemFs::new(),
                    disk: MemoryDisk::new(),
                    driver: None,
                    incarnation: 0,
                },
            );
        }
        let meta_config = PartitionConfig {
            gpid: Gpid::new(1, 0),
            ballot: 0,
            max_replica_count: REPLICAS,
            ..PartitionConfig::default()
        };
        let faults_on = opts.faults;
        Self {
            report: Report {
                seed: opts.seed,
                ..Report::default()
            },
            opts,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            nodes,
            meta_config,
            meta_fd: {
                // One meta, leader from the start.
                let mut fd = FailureDetector::new(GRACE_MS);
                fd.start_term(0);
                fd
            },
            client_routes: BTreeMap::new(),
            meta_drop_times: BTreeMap::new(),
            meta_info: BTreeMap::new(),
            partitioned: BTreeSet::new(),
            drop_permille: 0,
            faults_on,
            history: Vec::new(),
            pending: BTreeMap::new(),
            next_op: 1,
            next_value: 1,
            committed_content: BTreeMap::new(),
            primary_of_ballot: BTreeMap::new(),
            store_clock: ManualClock::new(SIM_EPOCH_US),
            drop_rule: None,
        }
    }

    fn trace(&mut self, s: impl FnOnce() -> String) {
        if self.opts.trace {
            let line = format!("{:>7} {}", self.now, s());
            self.report.trace.push(line);
        }
    }

    fn fail(&mut self, what: String) {
        if self.report.failures.len() < 20 {
            self.report.failures.push(format!("t={} {what}", self.now));
        }
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.events.push(Some(ev));
        self.queue
            .push(Reverse((t, self.seq, self.events.len() - 1)));
    }

    fn local_time(&self, id: NodeId) -> u64 {
        self.nodes
            .get(&id)
            .map_or(self.now, |n| self.now * n.rate_permille / 1000)
    }

    /// A node's wall clock (Unix µs): its skewed local time from [`SIM_EPOCH_US`], plus a
    /// fixed offset of its own within ±[`WALL_OFFSET_MAX_US`].
    fn wall_us(&self, id: NodeId) -> u64 {
        let offset = (id.0 * 7919) % (2 * WALL_OFFSET_MAX_US / 1000 + 1) * 1000;
        (SIM_EPOCH_US - WALL_OFFSET_MAX_US) + offset + self.local_time(id) * 1000
    }

    /// The furthest ahead any node's wall clock is now.
    fn max_wall_us(&self) -> u64 {
        self.nodes
            .keys()
            .map(|id| self.wall_us(*id))
            .max()
            .unwrap_or(SIM_EPOCH_US)
    }

    fn send(&mut self, from: Addr, to: Addr, msg: Msg) {
        let node_of = |a: Addr| match a {
            Addr::Node(n) => Some(n),
            _ => None,
        };
        let cut = [from, to]
            .iter()
            .filter_map(|a| node_of(*a))
            .any(|n| self.partitioned.contains(&n));
        let is_client = matches!(from, Addr::Client(_)) || matches!(to, Addr::Client(_));
        if cut && !is_client {
            // Most messages across a cut are lost; some sat in a socket buffer and arrive
            // late, after meta may have acted on the silence (TCP after the link heals).
            if self.rng.chance(250) {
                let late = self.now + self.rng.range(GRACE_MS / 2, 2 * GRACE_MS);
                self.deliver_at(late, from, to, msg);
            }
            return;
        }
        if let Some(rule) = self.drop_rule.as_mut() {
            if rule(node_of(from), node_of(to), kind_of(&msg)) {
                return;
            }
        }
        if self.faults_on && self.rng.chance(self.drop_permille) {
            return;
        }
        let delay = if self.faults_on && !is_client && self.rng.chance(self.drop_permille / 10) {
            // A message that sat in a socket buffer through a partition and arrives after
            // meta has acted on the silence (a TCP retransmission after the link heals).
            self.rng.range(GRACE_MS / 2, 2 * GRACE_MS)
        } else if self.faults_on {
            self.rng.range(1, 20)
        } else {
            1
        };
        // Duplicated delivery (a retransmission that raced the original) between servers. A
        // client request is not duplicated: a retried non-idempotent write is a new write.
        if self.faults_on && !is_client && self.rng.chance(self.drop_permille / 2) {
            let again = self.now + self.rng.range(1, 40);
            self.deliver_at(again, from, to, msg.clone());
        }
        self.deliver_at(self.now + delay, from, to, msg);
    }

    fn deliver_at(&mut self, t: u64, from: Addr, to: Addr, msg: Msg) {
        let msg = Box::new(msg);
        self.at(t, Ev::Deliver { from, to, msg });
    }

    // ------------------------------------------------------------------ nodes

    fn start_node(&mut self, id: NodeId) {
        let gpid = self.meta_config.gpid;
        let clock: Arc<dyn Clock> = Arc::new(self.store_clock.clone());
        let log_opts = LogOptions {
            sync: !self.opts.async_log,
            // Small segments, so trimming the log (to the store's durable decree, nothing
            // retained) makes learners that fell behind need checkpoints, as on a server
            // whose log rolled past them.
            segment_bytes: 4096,
        };
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        // A node without `init.json` holds a new (or rebuilt) replica: created empty.
        let init = SimHost::read_init(&node.fs).unwrap_or_else(|| InitInfo {
            config: PartitionConfig {
                gpid,
                max_replica_count: 3,
                ..PartitionConfig::default()
            },
            fresh: true,
            app: pegasus_control::AppSummary {
                app_id: gpid.app_id,
                name: "sim".into(),
                partition_count: 1,
                envs: BTreeMap::new(),
                dropped: false,
            },
            data: "data".into(),
        });
        let fs: Arc<dyn FileSystem> = Arc::new(node.fs.clone());
        let engine = MemoryEngine::open(node.disk.clone(), clock.clone());
        let store = Arc::new(PartitionStore::new(
            engine,
            clock.clone(),
            ReadLimits::default(),
        ));
        let (log, replayed, report) = match MutationLog::open(fs, Path::new("/plog"), log_opts) {
            Ok(opened) => opened,
            Err(e) => {
                // Corrupt log: this replica starts empty and will re-learn.
                let what = format!("{id} log unusable after restart: {e}");
                node.fs = MemFs::new();
                node.disk = MemoryDisk::new();
                self.trace(|| what);
                return self.start_node(id);
            }
        };
        let core = driver::open_core(
            id,
            ReplicaOptions::default(),
            &init,
            &store,
            replayed,
            report.truncated_bytes,
        );
        let mut host = SimHost::new(
            gpid,
            clock,
            node.fs.clone(),
            node.disk.clone(),
            View {
                read_until_ms: 0,
                last_timestamp_us: core.last_timestamp_us(),
                status: core.status(),
                report: pegasus_control::ReplicaReport {
                    gpid,
                    ballot: core.data_ballot(),
                    last_committed: core.last_committed(),
                    last_prepared: core.last_prepared(),
                },
            },
        );
        host.write_init(&init).ok();
        let cfg = DriverConfig {
            tick_ms: TICK_MS,
            // RocksDB's memtable flush now and then; the log is then trimmed to it, with
            // nothing retained, so learners need checkpoints often.
            checkpoint_interval_ms: 20 * TICK_MS,
            log_retain_decrees: 0,
        };
        node.driver = Some(PartitionDriver::new(host, cfg, core, store, log, init));
        node.incarnation += 1;
        node.up = true;
    }

    fn deliver_to_node(&mut self, id: NodeId, event: Event) {
        self.round(id, vec![DriverInput::Core(event)]);
    }

    /// Runs one round of a node's driver with `inputs` at the node's local time, then
    /// carries out what it asked for, and restarts the replica if it stopped.
    fn round(&mut self, id: NodeId, inputs: Vec<DriverInput<u64, Bytes>>) {
        let now_ms = self.local_time(id);
        let wall_us = if self.opts.planted == Some(PlantedBug::UptimeAsWallClock) {
            now_ms * 1000
        } else {
            self.wall_us(id)
        };
        let trace = self.opts.trace;
        let Some(driver) = self.nodes.get_mut(&id).and_then(|n| n.driver.as_mut()) else {
            return;
        };
        let host = driver.host_mut();
        host.now_ms = now_ms;
        host.wall_us = wall_us;
        let before = (driver.core().status(), driver.core().config().ballot);
        let desc = if trace {
            inputs
                .iter()
                .filter(|i| !matches!(i, DriverInput::Core(Event::Tick { .. })))
                .map(|i| format!("{i:?}").chars().take(160).collect::<String>())
                .collect::<Vec<_>>()
        } else {
            Vec::new()
        };
        let exit = driver.round(inputs);
        let after = (driver.core().status(), driver.core().config().ballot);
        let effects = std::mem::take(&mut driver.host_mut().effects);
        for d in desc {
            self.trace(|| format!("{id} <- {d}"));
        }
        if before != after {
            self.trace(|| format!("{id} {before:?} -> {after:?}"));
        }
        for e in effects {
            self.effect(id, e);
        }
        match exit {
            None | Some(Exit::Closed) => {}
            Some(Exit::Failed) => {
                // A replica in error is set aside and rebuilt empty: it re-learns.
                self.trace(|| format!("{id} replica in error: rebuilding it"));
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.driver = None;
                    n.fs = MemFs::new();
                    n.disk = MemoryDisk::new();
                }
                let t = self.now + 500;
                self.at(t, Ev::Restart(id));
            }
            Some(Exit::Reopen(why)) => {
                // Reopened in place from its own files, as after a crash of the process.
                self.trace(|| format!("{id} replica reopens in place: {why}"));
                self.stop_replica(id);
                let t = self.now + 1000;
                self.at(t, Ev::Restart(id));
            }
        }
    }

    /// Drops a node's replica as a process crash would: the store loses what it did not
    /// flush (the files stay as they are).
    fn stop_replica(&mut self, id: NodeId) {
        let Some(n) = self.nodes.get_mut(&id) else {
            return;
        };
        if let Some(driver) = n.driver.take() {
            let (host, store) = driver.into_parts();
            n.disk = host.disk;
            if let Ok(store) = Arc::try_unwrap(store) {
                store.into_engine().crash();
            }
        }
    }

    fn effect(&mut self, id: NodeId, effect: Effect) {
        match effect {
            Effect::Send(to, msg) => self.send(Addr::Node(id), Addr::Node(to), Msg::Peer(msg)),
            Effect::RequestConfig { kind, node, config } => {
                self.send(
                    Addr::Node(id),
                    Addr::Meta,
                    Msg::ConfigRequest { kind, node, config },
                );
            }
            Effect::Reply(op, result) => {
                let (result, definite_failure) = match result {
                    Ok(WriteResponse::Update(r)) if r.error == 0 => {
                        (Some(OpResult::Written), false)
                    }
                    Ok(WriteResponse::Incr(r)) if r.error == 0 => {
                        (Some(OpResult::Incr(r.new_value)), false)
                    }
                    Ok(WriteResponse::CheckAndSet(r)) if r.error == 0 => {
                        (Some(OpResult::Cas(true)), false)
                    }
                    Ok(WriteResponse::CheckAndSet(r)) if r.error == 13 => {
                        (Some(OpResult::Cas(false)), false)
                    }
                    Ok(_) => (None, false),
                    // Refused before it was proposed: it never happens.
                    Err(
                        ErrorCode::InvalidState
                        | ErrorCode::NotEnoughMember
                        | ErrorCode::DiskInsufficient,
                    ) => (None, true),
                    // Outcome unknown (aborted, or the replica failed with it in flight).
                    Err(_) => (None, false),
                };
                self.send(
                    Addr::Node(id),
                    Addr::Client(0),
                    Msg::ClientReply {
                        op,
                        result,
                        definite_failure,
                    },
                );
            }
            Effect::Fetch(cp) => {
                self.report.checkpoints_installed += 1;
                let incarnation = self.nodes.get(&id).map_or(0, |n| n.incarnation);
                let t = self.now + self.rng.range(1, 30);
                self.at(t, Ev::Fetched(id, incarnation, Box::new(cp)));
            }
            Effect::Committed(m, status) => self.check_commit(id, &m, status),
        }
    }

    fn check_commit(&mut self, id: NodeId, m: &Mutation, status: Status) {
        self.trace(|| {
            format!(
                "{id} commits {}@{} ts={} as {status:?}",
                m.decree, m.ballot, m.timestamp_us
            )
        });
        // Invariant: a committed decree never changes, on any replica, timestamp included
        // (every replica applies the primary's stamp).
        match self.committed_content.get(&m.decree) {
            Some((c, ts)) if *c != m.updates || *ts != m.timestamp_us => {
                self.fail(format!(
                    "decree {} committed with different content or timestamp on {id}",
                    m.decree
                ));
            }
            Some(_) => {}
            None => {
                self.check_timestamp(m);
                self.committed_content
                    .insert(m.decree, (m.updates.clone(), m.timestamp_us));
            }
        }
        if status == Status::Primary {
            // Invariant: at most one primary commits per ballot.
            match self.primary_of_ballot.get(&m.ballot) {
                Some(p) if *p != id => {
                    self.fail(format!(
                        "two primaries committed at ballot {}: {p} and {id}",
                        m.ballot
                    ));
                }
                _ => {
                    self.primary_of_ballot.insert(m.ballot, id);
                }
            }
        }
        if m.updates.iter().any(|u| decode_write(u).is_none()) {
            self.fail(format!(
                "decree {} holds an update that does not decode",
                m.decree
            ));
        }
    }

    /// Invariants of a newly committed decree's timestamp: strictly between its committed
    /// neighbours' (timestamps increase with decrees, across primaries too), and wall-clock
    /// time: not before the run began (less the largest clock offset) and not past the
    /// fastest node's wall clock now.
    fn check_timestamp(&mut self, m: &Mutation) {
        let ts = m.timestamp_us;
        let before = self
            .committed_content
            .range(..m.decree)
            .next_back()
            .map(|(d, (_, t))| (*d, *t));
        let after = self
            .committed_content
            .range(m.decree + 1..)
            .next()
            .map(|(d, (_, t))| (*d, *t));
        if let Some((d, t)) = before.filter(|(_, t)| *t >= ts) {
            let what = format!(
                "decree {} has timestamp {ts}, not after decree {d}'s {t}",
                m.decree
            );
            self.fail(what);
        }
        if let Some((d, t)) = after.filter(|(_, t)| *t <= ts) {
            let what = format!(
                "decree {} has timestamp {ts}, not before decree {d}'s {t}",
                m.decree
            );
            self.fail(what);
        }
        let latest = self.max_wall_us();
        if ts < SIM_EPOCH_US - WALL_OFFSET_MAX_US || ts > latest {
            let what = format!(
                "decree {} has timestamp {ts}, outside wall-clock time [{}, {latest}]",
                m.decree,
                SIM_EPOCH_US - WALL_OFFSET_MAX_US
            );
            self.fail(what);
        }
    }

    fn on_node_message(&mut self, id: NodeId, from: Addr, msg: Msg) {
        match msg {
            Msg::Peer(p) => {
                if let Addr::Node(f) = from {
                    self.deliver_to_node(id, Event::Message { from: f, msg: p });
                }
            }
            Msg::BeaconAck { sent_local_ms } => {
                self.deliver_to_node(
                    id,
                    Event::Lease {
                        sent_ms: sent_local_ms,
                        until_ms: sent_local_ms + LEASE_MS,
                        now_ms: self.local_time(id),
                    },
                );
            }
            Msg::Config(c) => self.deliver_to_node(id, Event::Config(c)),
            Msg::Proposal { kind, node } => {
                self.deliver_to_node(id, Event::Proposal { kind, node })
            }
            Msg::ConfigRejected => self.deliver_to_node(id, Event::ConfigRejected),
            Msg::ClientRequest { op, request } => self.on_client_request(id, op, request),
            _ => {}
        }
    }

    fn on_client_request(&mut self, id: NodeId, op: u64, request: ClientOp) {
        let local = self.local_time(id);
        let planted = self.opts.planted;
        let Some(driver) = self.nodes.get(&id).and_then(|n| n.driver.as_ref()) else {
            return;
        };
        let store = driver.store();
        match request {
            ClientOp::Get(key) => {
                // Reads go through the read gate the driver publishes, as on the server.
                let view = driver.host().view;
                let allowed = match planted {
                    Some(PlantedBug::ReadsWithoutLease) => view.status == Status::Primary,
                    Some(PlantedBug::UptimeAsWallClock) | None => local < view.read_until_ms,
                };
                let reply = if allowed {
                    let r = store.get(&key_bytes(key));
                    let v = if r.error == 0 {
                        parse_int(&r.value)
                    } else {
                        None
                    };
                    Msg::ClientReply {
                        op,
                        result: Some(OpResult::Read(v)),
                        definite_failure: false,
                    }
                } else {
                    Msg::ClientReply {
                        op,
                        result: None,
                        definite_failure: true,
                    }
                };
                self.send(Addr::Node(id), Addr::Client(0), reply);
            }
            ClientOp::Write(key, kind) => {
                let k = key_bytes(key);
                let req = match kind {
                    OpKind::Set(v) => WriteRequest::Put(UpdateRequest {
                        key: k,
                        value: Bytes::from(v.to_string()),
                        expire_ts_seconds: 0,
                    }),
                    OpKind::Incr(d) => WriteRequest::Incr(IncrRequest {
                        key: k,
                        increment: d,
                        expire_ts_seconds: 0,
                    }),
                    OpKind::Cas { expect, new } => WriteRequest::CheckAndSet(CheckAndSetRequest {
                        hash_key: Bytes::from(format!("k{key}")),
                        check_sort_key: Bytes::new(),
                        check_type: if expect.is_some() {
                            CasCheckType::ValueBytesEqual
                        } else {
                            CasCheckType::ValueNotExist
                        },
                        check_operand: Bytes::from(
                            expect.map(|e| e.to_string()).unwrap_or_default(),
                        ),
                        set_value: Bytes::from(new.to_string()),
                        ..Default::default()
                    }),
                    OpKind::Get => return,
                };
                let update = encode_write(&req);
                self.round(id, vec![DriverInput::Write { update, reply: op }]);
            }
        }
    }

    // ------------------------------------------------------------------ meta

    fn on_meta_message(&mut self, from: Addr, msg: Msg) {
        let Addr::Node(node) = from else { return };
        match msg {
            Msg::Beacon {
                sent_local_ms,
                info,
            } => {
                self.meta_fd.beacon(node, self.now);
                if let Some(i) = info {
                    self.meta_info.insert(node, i);
                }
                self.send(
                    Addr::Meta,
                    Addr::Node(node),
                    Msg::BeaconAck { sent_local_ms },
                );
                // Config sync rides on some beacons only (Pegasus syncs every 30 s), so a
                // node cannot rely on hearing its new role together with its lease.
                if self.rng.chance(200) {
                    let c = self.meta_config.clone();
                    self.send(Addr::Meta, Addr::Node(node), Msg::Config(c));
                }
            }
            Msg::ConfigRequest {
                kind,
                node: about,
                config,
            } => {
                let req = ConfigUpdate {
                    kind,
                    node: about,
                    config,
                };
                match guardian::apply_update(&self.meta_config, &req) {
                    Ok(UpdateOutcome::Applied(next)) => self.meta_write(next),
                    Ok(UpdateOutcome::AlreadyApplied) => {
                        let c = self.meta_config.clone();
                        self.send(Addr::Meta, Addr::Node(node), Msg::Config(c));
                    }
                    Err(_) => self.send(Addr::Meta, Addr::Node(node), Msg::ConfigRejected),
                }
            }
            _ => {}
        }
    }

    fn meta_write(&mut self, next: PartitionConfig) {
        for d in &next.last_drops {
            if !self.meta_config.last_drops.contains(d) {
                self.meta_drop_times.insert(*d, self.now);
            }
        }
        let old = self.meta_config.members();
        self.meta_config = next.clone();
        self.trace(|| format!("meta config {next:?}"));
        let mut to: BTreeSet<NodeId> = next.members().into_iter().collect();
        to.extend(old);
        for n in to {
            self.send(Addr::Meta, Addr::Node(n), Msg::Config(next.clone()));
        }
    }

    fn meta_tick(&mut self) {
        // Failure detection: no beacon within the grace period.
        let nodes: Vec<NodeId> = self.nodes.keys().copied().collect();
        let dead = self.meta_fd.check(nodes, self.now);
        for n in dead {
            self.trace(|| format!("meta declares {n} dead"));
            match guardian::on_node_dead(&self.meta_config, n) {
                DeadNodeAction::Write(next) => self.meta_write(next),
                DeadNodeAction::Propose { target, node } => {
                    self.send(
                        Addr::Meta,
                        Addr::Node(target),
                        Msg::Proposal {
                            kind: ConfigType::DowngradeToInactive,
                            node,
                        },
                    );
                }
                DeadNodeAction::Nothing => {}
            }
        }
        let alive = self.meta_fd.alive(self.now);
        let view = ClusterView {
            alive,
            now_ms: self.now,
            drop_time_ms: self.meta_drop_times.clone(),
            replica_info: self.meta_info.clone(),
            ..ClusterView::default()
        };
        let opts = GuardianOptions {
            min_2pc_replicas: 2,
            dropout_delay_ms: 4_000,
        };
        match guardian::cure(&self.meta_config, &view, &opts) {
            Cure::Propose { target, kind, node } => {
                self.send(Addr::Meta, Addr::Node(target), Msg::Proposal { kind, node });
            }
            Cure::NeedOperator(why) => self.trace(|| format!("guardian: {why}")),
            Cure::Nothing => {}
        }
    }

    // ------------------------------------------------------------------ clients

    fn client_next(&mut self, client: u64) {
        if self.now >= self.opts.fault_ms + self.opts.heal_ms {
            return;
        }
        let key = self.rng.below(self.opts.keys);
        let kind = match self.rng.below(10) {
            0..=3 => OpKind::Get,
            4..=5 => {
                let v = self.next_value;
                self.next_value += 1;
                OpKind::Set(v)
            }
            6..=7 => {
                let v = self.next_value;
                self.next_value += 1;
                let expect = if self.rng.chance(200) {
                    None
                } else {
                    Some(self.rng.range(0, (self.next_value - 1).max(0) as u64) as i64)
                };
                OpKind::Cas { expect, new: v }
            }
            _ => OpKind::Incr(self.rng.range(1, 3) as i64),
        };
        self.issue(client, key, kind);
    }

    fn issue(&mut self, client: u64, key: u64, kind: OpKind) {
        let op = self.next_op;
        self.next_op += 1;
        self.report.ops += 1;
        self.history.push(Op {
            key,
            kind,
            invoke: self.now,
            complete: None,
        });
        self.pending.insert(
            op,
            PendingOp {
                client,
                index: self.history.len() - 1,
            },
        );
        let request = match kind {
            OpKind::Get => ClientOp::Get(key),
            k => ClientOp::Write(key, k),
        };
        // Like a real client, route by a cached configuration and ask meta again only
        // after an error or a timeout: a deposed primary may still be asked.
        let target = match self.client_routes.get(&client) {
            Some(p) => Some(*p),
            None => self.meta_config.primary,
        };
        if let Some(p) = target {
            self.client_routes.insert(client, p);
        }
        match target {
            Some(p) => self.send(
                Addr::Client(client),
                Addr::Node(p),
                Msg::ClientRequest { op, request },
            ),
            None => {
                let t = self.now + 1;
                self.at(
                    t,
                    Ev::Deliver {
                        from: Addr::Meta,
                        to: Addr::Client(client),
                        msg: Box::new(Msg::ClientReply {
                            op,
                            result: None,
                            definite_failure: true,
                        }),
                    },
                );
            }
        }
        let t = self.now + CLIENT_TIMEOUT_MS;
        self.at(t, Ev::ClientTimeout(op));
    }

    fn on_client_reply(&mut self, op: u64, result: Option<OpResult>, definite_failure: bool) {
        let Some(p) = self.pending.remove(&op) else {
            return;
        };
        match result {
            Some(r) => {
                self.report.ok += 1;
                if let Some(h) = self.history.get_mut(p.index) {
                    h.complete = Some((self.now, r));
                }
            }
            None if definite_failure => {
                self.client_routes.remove(&p.client);
                // Definitely not applied: not part of the history.
                if let Some(h) = self.history.get_mut(p.index) {
                    h.key = u64::MAX;
                }
            }
            None => {
                self.client_routes.remove(&p.client);
                self.report.unknown += 1;
            }
        }
        let t = self.now + self.rng.range(1, 30);
        self.at(t, Ev::ClientNext(p.client));
    }

    // ------------------------------------------------------------------ faults

    fn inject_fault(&mut self) {
        if !self.faults_on || self.now >= self.opts.fault_ms {
            return;
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let victim = ids
            .get(self.rng.below(ids.len() as u64) as usize)
            .copied()
            .unwrap_or(NodeId(1));
        match self.rng.below(6) {
            0 if self.opts.power_loss && self.rng.below(3) == 0 => {
                // Power loss everywhere at once: every node loses or tears what it had not
                // synced, and comes back after its own delay.
                for id in ids {
                    let tear = self.rng.below(1001) as u16;
                    if self.crash_with(
                        id,
                        CrashMode::TearUnsynced {
                            keep_permille: tear,
                        },
                    ) {
                        let back = self.now + self.rng.range(500, 6_000);
                        self.at(back, Ev::Restart(id));
                    }
                }
                self.trace(|| "power loss on every node".to_string());
            }
            0 => {
                // Crash: unsynced bytes are lost or torn; storage loses what it did not flush.
                let tear = self.rng.below(1001) as u16;
                if self.crash_with(
                    victim,
                    CrashMode::TearUnsynced {
                        keep_permille: tear,
                    },
                ) {
                    let back = self.now + self.rng.range(500, 6_000);
                    self.trace(|| format!("crash {victim}"));
                    self.at(back, Ev::Restart(victim));
                }
            }
            1 => {
                // Pause longer than the lease, sometimes longer than the grace period.
                let d = self.rng.range(1_000, 6_000);
                if let Some(n) = self.nodes.get_mut(&victim) {
                    n.paused_until = n.paused_until.max(self.now + d);
                }
                self.trace(|| format!("pause {victim} for {d}"));
            }
            2 => {
                self.partitioned.insert(victim);
                let d = self.rng.range(500, 5_000);
                self.trace(|| format!("isolate {victim} for {d}"));
                self.at(self.now + d, Ev::Heal);
            }
            3 => {
                self.drop_permille = self.rng.range(0, 150);
            }
            _ => {}
        }
        let next = self.now + self.rng.range(300, 2_000);
        self.at(next, Ev::Fault);
    }

    // ------------------------------------------------------------------ run

    /// Runs to the end and checks everything.
    pub fn run(mut self) -> Report {
        self.start();
        let end = self.opts.fault_ms + self.opts.heal_ms + CLIENT_TIMEOUT_MS * 2;
        self.run_until(end);
        self.finish()
    }

    /// Schedules the nodes, meta, clients and (if enabled) faults. Called once.
    pub fn start(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in &ids {
            self.start_node(*id);
            let t = self.rng.range(0, TICK_MS);
            self.at(t, Ev::Tick(*id));
            let b = self.rng.range(0, BEACON_MS);
            self.at(b, Ev::Beacon(*id));
        }
        self.at(META_TICK_MS, Ev::MetaTick);
        for c in 0..self.opts.clients {
            let t = 500 + self.rng.range(0, 100);
            self.at(t, Ev::ClientNext(c));
        }
        if self.opts.faults {
            self.at(2_000, Ev::Fault);
        }
    }

    /// Processes every event up to virtual time `t`.
    pub fn run_until(&mut self, t: u64) {
        while let Some(Reverse((at, _, idx))) = self.queue.peek().copied() {
            if at > t {
                break;
            }
            self.queue.pop();
            self.now = at;
            self.store_clock.set_micros(SIM_EPOCH_US + at * 1000);
            if self.faults_on && at >= self.opts.fault_ms {
                self.faults_on = false;
                self.partitioned.clear();
                self.drop_permille = 0;
            }
            let Some(ev) = self.events.get_mut(idx).and_then(Option::take) else {
                continue;
            };
            self.step(ev);
        }
        self.now = self.now.max(t);
    }

    /// Virtual time, ms.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Meta's configuration of the partition.
    pub fn config(&self) -> &PartitionConfig {
        &self.meta_config
    }

    /// A node's replica status (None while it is down).
    pub fn status_of(&self, node: NodeId) -> Option<Status> {
        self.nodes
            .get(&node)
            .and_then(|n| n.driver.as_ref())
            .map(|d| d.core().status())
    }

    /// A node's committed decree.
    pub fn committed_of(&self, node: NodeId) -> Option<Decree> {
        self.nodes
            .get(&node)
            .and_then(|n| n.driver.as_ref())
            .map(|d| d.core().last_committed())
    }

    /// Drops every message for which `rule(from, to, kind)` is true (`None` is meta or a
    /// client; `kind` is the message's name, e.g. `"Prepare"`).
    pub fn set_drop_rule(&mut self, rule: Option<DropRule>) {
        self.drop_rule = rule;
    }

    /// Makes a node's log writes and syncs fail (or work again).
    pub fn fail_log_io(&mut self, node: NodeId, fail: bool) {
        if let Some(n) = self.nodes.get(&node) {
            n.fs.set_fail_io(fail);
        }
    }

    /// Crashes a node now (unsynced log bytes are lost); it stays down until restarted.
    pub fn crash(&mut self, node: NodeId) {
        // A node already down lost its unsynced bytes when it went down.
        self.crash_with(node, CrashMode::DropUnsynced);
    }

    /// Takes a running node down: its store loses what it did not flush, its files what
    /// they did not sync (per `mode`). False if it was not up.
    fn crash_with(&mut self, node: NodeId, mode: CrashMode) -> bool {
        let Some(n) = self.nodes.get_mut(&node) else {
            return false;
        };
        if !n.up {
            return false;
        }
        n.up = false;
        n.fs.crash(mode);
        self.stop_replica(node);
        true
    }

    /// Freezes a node (no events processed, clock still running) for `ms`.
    pub fn pause(&mut self, node: NodeId, ms: u64) {
        let until = self.now + ms;
        if let Some(n) = self.nodes.get_mut(&node) {
            n.paused_until = n.paused_until.max(until);
        }
    }

    /// Restarts a crashed node now.
    pub fn restart(&mut self, node: NodeId) {
        self.start_node(node);
    }

    fn paused(&self, id: NodeId) -> Option<u64> {
        self.nodes
            .get(&id)
            .filter(|n| n.paused_until > self.now)
            .map(|n| n.paused_until)
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Tick(id) => {
                if let Some(until) = self.paused(id) {
                    self.at(until, Ev::Tick(id));
                    return;
                }
                let up = self.nodes.get(&id).is_some_and(|n| n.up);
                if up {
                    // A round with no input: the driver ticks the core, and flushes the
                    // store and trims the log when that is due.
                    self.round(id, Vec::new());
                }
                let t = self.now + TICK_MS;
                self.at(t, Ev::Tick(id));
            }
            Ev::Beacon(id) => {
                if let Some(until) = self.paused(id) {
                    self.at(until, Ev::Beacon(id));
                    return;
                }
                let up = self.nodes.get(&id).is_some_and(|n| n.up);
                if up {
                    let info = self
                        .nodes
                        .get(&id)
                        .and_then(|n| n.driver.as_ref())
                        .map(|d| ReplicaInfo {
                            ballot: d.core().data_ballot(),
                            last_committed: d.core().last_committed(),
                            last_prepared: d.core().last_prepared(),
                        });
                    let sent_local_ms = self.local_time(id);
                    self.send(
                        Addr::Node(id),
                        Addr::Meta,
                        Msg::Beacon {
                            sent_local_ms,
                            info,
                        },
                    );
                }
                let t = self.now + BEACON_MS;
                self.at(t, Ev::Beacon(id));
            }
            Ev::Fetched(id, incarnation, cp) => {
                if let Some(until) = self.paused(id) {
                    self.at(until, Ev::Fetched(id, incarnation, cp));
                    return;
                }
                let current = self
                    .nodes
                    .get(&id)
                    .is_some_and(|n| n.up && n.incarnation == incarnation);
                if current {
                    self.round(
                        id,
                        vec![DriverInput::CheckpointFetched {
                            decree: cp.decree,
                            staged: cp.data,
                        }],
                    );
                }
            }
            Ev::Deliver { from, to, msg } => match to {
                Addr::Node(id) => {
                    if let Some(until) = self.paused(id) {
                        self.at(until, Ev::Deliver { from, to, msg });
                        return;
                    }
                    if self.nodes.get(&id).is_some_and(|n| n.up) {
                        self.on_node_message(id, from, *msg);
                    }
                }
                Addr::Meta => self.on_meta_message(from, *msg),
                Addr::Client(_) => {
                    if let Msg::ClientReply {
                        op,
                        result,
                        definite_failure,
                    } = *msg
                    {
                        self.on_client_reply(op, result, definite_failure);
                    }
                }
            },
            Ev::MetaTick => {
                self.meta_tick();
                let t = self.now + META_TICK_MS;
                self.at(t, Ev::MetaTick);
            }
            Ev::ClientNext(c) => self.client_next(c),
            Ev::ClientTimeout(op) => {
                if let Some(p) = self.pending.remove(&op) {
                    self.client_routes.remove(&p.client);
                    self.report.unknown += 1;
                    let t = self.now + 1;
                    self.at(t, Ev::ClientNext(p.client));
                }
            }
            Ev::Fault => self.inject_fault(),
            Ev::Restart(id) => {
                self.trace(|| format!("restart {id}"));
                self.start_node(id);
            }
            Ev::Heal => {
                self.partitioned.clear();
            }
        }
    }

    /// Runs the final checks (liveness, final reads, linearizability) and reports.
    pub fn finish(mut self) -> Report {
        // Liveness: after healing, one primary and two secondaries.
        if !self.meta_config.is_healthy() {
            let c = self.meta_config.clone();
            self.fail(format!("partition not healthy after healing: {c:?}"));
        }
        // Every acknowledged write is in the final state: read every key on the primary.
        let primary = self.meta_config.primary;
        let end = self.now + 1;
        for key in 0..self.opts.keys {
            let value = primary.and_then(|p| {
                let local = self.local_time(p);
                let driver = self.nodes.get(&p)?.driver.as_ref()?;
                (local < driver.host().view.read_until_ms).then_some(())?;
                let r = driver.store().get(&key_bytes(key));
                Some(if r.error == 0 {
                    parse_int(&r.value)
                } else {
                    None
                })
            });
            match value {
                Some(v) => self.history.push(Op {
                    key,
                    kind: OpKind::Get,
                    invoke: end,
                    complete: Some((end + 1, OpResult::Read(v))),
                }),
                None => {
                    self.fail(format!("final read of key {key} could not be served"));
                }
            }
        }
        let history: Vec<Op> = self
            .history
            .iter()
            .filter(|o| o.key != u64::MAX)
            .cloned()
            .collect();
        match linearizable(&history, 2_000_000) {
            Verdict::Linearizable => {}
            Verdict::Violation(v) => {
                let n = v.ops.len();
                self.fail(format!(
                    "history of key {} ({n} ops) is not linearizable",
                    v.key
                ));
            }
            Verdict::Unknown { key } => {
                self.fail(format!("linearizability of key {key} undecided (budget)"))
            }
        }
        self.report
    }
}

/// Runs one seed.
pub fn run_seed(opts: SimOptions) -> Report {
    Sim::new(opts).run()
}
