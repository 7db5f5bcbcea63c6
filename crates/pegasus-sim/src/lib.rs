//! Deterministic simulation of one Pegasus partition: replica nodes hosting the replica
//! server's own partition driver (`pegasus_replica::driver`) over the in-memory storage
//! engine and a crash-modelling file system, a meta server running the meta server's
//! failure detector and guardian (`pegasus-meta`), clients issuing get /
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
//!
//! Modules: [`host`] (the driver's host), `nodes` (rounds, effects, restarts, client
//! requests), `network`, `meta`, `clients`, `faults`, `checks` (invariants); this file
//! holds the options, the event loop and the final checks.
#![warn(missing_docs)]

mod checks;
mod clients;
mod faults;
pub mod host;
mod meta;
mod network;
mod nodes;
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
