//! Deterministic simulation of a whole Pegasus cluster: replica servers hosting many
//! partitions of several tables, each replica the replica server's own partition driver
//! (`pegasus_replica::driver`) over the in-memory storage engine and a crash-modelling file
//! system; a meta server running the meta server's failure detector and guardian pass
//! (`pegasus-meta`), which places every partition and heals it; clients issuing get / set /
//! check_and_set / incr over many keys routed by hash as Pegasus clients route; and faults:
//! crashes and power loss that lose or tear unsynced data, pauses longer than the lease,
//! network partitions between arbitrary sets of nodes and meta, message drop, delay,
//! duplication and reordering, late deliveries of messages that sat in a buffer through a
//! cut, clock-rate skew, a disk full (ENOSPC) or out of descriptors (EMFILE) for a while, and
//! failed checkpoint fetches. Clients route by a cached configuration and ask meta again only
//! after an error or a timeout; meta piggybacks configurations on only some beacon
//! acknowledgements, as Pegasus's periodic config sync does.
//!
//! One thread, one seeded RNG, virtual time: a seed is a complete, replayable run. Invariants
//! are checked per partition as the run goes (one committing primary per ballot, committed
//! decrees never change, timestamps increase with decrees and are wall-clock time) and at the
//! end (every key's history is linearizable, every acknowledged write is in the final state,
//! and every partition heals to one primary and two secondaries).
//!
//! Modules: [`host`] (the driver's host), `nodes` (replicas opened and closed as the server
//! does, rounds, effects, client requests), `network`, `meta`, `clients`, `faults`, `checks`
//! (invariants and the final checks); this file holds the options, the state and the event
//! loop.
#![warn(missing_docs)]

mod checks;
mod clients;
mod faults;
pub mod host;
mod inspect;
mod meta;
mod network;
mod nodelog;
mod nodes;
pub mod rng;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use pegasus_check::{linearizable, Op, OpKind, OpResult, Verdict};
use pegasus_control::AppSummary;
use pegasus_core::config::{ConfigType, NodeId, PartitionConfig};
use pegasus_core::ids::{partition_for_hash, Decree, Gpid};
use pegasus_core::key::{encode_key, key_hash};
use pegasus_core::rrdb::{CasCheckType, CheckAndSetRequest, IncrRequest, UpdateRequest};
use pegasus_core::time::{Clock, ManualClock};
use pegasus_fs::{CrashMode, FileSystem, MemFs};
use pegasus_meta::guardian::{self, ConfigUpdate, GuardianOptions, ReplicaInfo, UpdateOutcome};
use pegasus_meta::pass::{self, Action, NodesView, PartitionView};
use pegasus_proto::ErrorCode;
use pegasus_replica::core::{
    Checkpoint, Event, NodeLease, PeerMessage, ReadGrant, ReplicaOptions, Status,
};
use pegasus_replica::driver::{
    self, DriverConfig, Exit, Host, InitInfo, Input as DriverInput, PartitionDriver, View,
};
use pegasus_replica::log::{LogOptions, MutationLog, ReplayReport};
use pegasus_replica::Mutation;
use pegasus_storage::{
    MemoryDisk, MemoryEngine, PartitionStore, ReadLimits, WriteRequest, WriteResponse,
};

use crate::host::{Effect, SimHost};
use crate::meta::Meta;
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
    /// The partition driver stamps mutations with the node's uptime (the tick clock)
    /// instead of its wall clock, as the replica server once did (the driver's
    /// `plant_uptime_as_wall_clock` switch): timestamps then sit in 1970 and restart from
    /// zero on every node.
    UptimeAsWallClock,
    /// The node log forgets a segment without syncing its replicas' own logs first (its
    /// `plant_forget_unsynced` switch): after a power loss their acknowledged records are
    /// in neither log. Needs [`SimOptions::node_log`].
    NodeLogForgetsUnsynced,
}

/// Simulation settings. The default is the whole-cluster run; [`SimOptions::one_partition`]
/// is the single replica group the scripted scenarios use.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The seed.
    pub seed: u64,
    /// Replica servers.
    pub nodes: u64,
    /// The tables, by partition count (each a power of two): table `i` has app id `i + 1`.
    pub tables: Vec<u32>,
    /// Keys the clients use, spread over the tables (key `k` in table `k % tables`) and
    /// routed to a partition by Pegasus's hash.
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
    /// tears what it had not synced.
    pub power_loss: bool,
    /// The mutation log does not fsync (Pegasus's default `plog_force_flush = false`),
    /// to measure what a whole-cluster power loss then loses.
    pub async_log: bool,
    /// Each node has a node log that its replicas' appends are made durable by (the
    /// server's `node_log = true`); their own logs are written without syncs.
    pub node_log: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            nodes: 5,
            tables: vec![4, 8],
            keys: 36,
            clients: 12,
            fault_ms: 20_000,
            heal_ms: 15_000,
            power_loss: false,
            async_log: false,
            node_log: false,
            faults: true,
            planted: None,
            trace: false,
        }
    }
}

impl SimOptions {
    /// One partition on four nodes, three keys, three clients: the replica group alone, with
    /// every fault aimed at it.
    pub fn one_partition() -> Self {
        Self {
            nodes: 4,
            tables: vec![1],
            keys: 3,
            clients: 3,
            ..Self::default()
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
    /// Partitions in the cluster.
    pub partitions: u64,
    /// Most replicas any node hosted at the end.
    pub max_replicas_per_node: u64,
    /// Driver rounds run (with input or woken by a timer): what the replicas cost.
    pub rounds: u64,
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
/// How long meta waits before sending the same proposal again (the meta server's figure).
const PROPOSAL_RESEND_MS: u64 = 3_000;

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
    Peer(Gpid, PeerMessage),
    /// A node's beacon with its full list of replicas.
    Beacon {
        sent_local_ms: u64,
        replicas: Vec<(Gpid, ReplicaInfo)>,
    },
    BeaconAck {
        sent_local_ms: u64,
    },
    Config(PartitionConfig),
    Proposal {
        config: PartitionConfig,
        kind: ConfigType,
        node: NodeId,
    },
    ConfigRequest {
        kind: ConfigType,
        node: NodeId,
        config: PartitionConfig,
    },
    ConfigRejected(Gpid),
    ClientRequest {
        op: u64,
        gpid: Gpid,
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
    /// A replica's next wake-up without input (when its driver said it is due).
    Wake(NodeId, Gpid),
    Beacon(NodeId),
    Deliver {
        from: Addr,
        to: Addr,
        msg: Box<Msg>,
    },
    /// A checkpoint a replica's driver asked for has arrived, or failed to (for the
    /// replica's incarnation then).
    Fetched {
        node: NodeId,
        gpid: Gpid,
        incarnation: u64,
        result: Result<Box<Checkpoint>, String>,
    },
    MetaTick,
    ClientNext(u64),
    ClientTimeout(u64),
    Fault,
    /// A crashed node's process starts again.
    Restart(NodeId),
    /// One replica reopens in place from its files.
    Reopen(NodeId, Gpid),
    /// A network partition heals.
    Heal(u64),
    /// A node's disk works again (space freed, descriptors back).
    DiskBack(NodeId),
    /// A node's node log writes and syncs the batch gathered since its last sync.
    NodeLogSync(NodeId),
}

/// One replica on a node: its files survive the process; its driver does not.
struct Replica {
    /// The replica's directory (the mutation log and `init.json`).
    fs: MemFs,
    /// The store's disk.
    disk: MemoryDisk,
    /// The replica server's own driver, on the memory engine and `MemFs`; None while
    /// closed.
    driver: Option<PartitionDriver<SimHost>>,
    /// Which opening of a replica this is (unique in the run): a checkpoint fetched for an
    /// earlier one is dropped.
    incarnation: u64,
    /// When its next wake-up event is scheduled (virtual ms), if one is.
    wake_at: Option<u64>,
}

struct Node {
    up: bool,
    paused_until: u64,
    /// Local clock = virtual time × rate (permille).
    rate_permille: u64,
    replicas: BTreeMap<Gpid, Replica>,
    /// The node's read lease from its last acknowledged beacon (sent, until), local ms;
    /// given to replicas opened after it, as the server does.
    lease: NodeLease,
    /// An OS error every file operation fails with now (a full disk, no descriptors).
    disk_error: Option<i32>,
    /// The node log (with [`SimOptions::node_log`]).
    nlog: nodelog::NodeLogState,
}

struct PendingOp {
    client: u64,
    gpid: Gpid,
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
    /// The tables' facts, by app id.
    apps: BTreeMap<i32, AppSummary>,
    /// The partition each key lives in.
    key_gpid: Vec<Gpid>,
    meta: Meta,
    /// Each client's cached idea of each partition's primary.
    client_routes: BTreeMap<(u64, Gpid), NodeId>,
    /// Network partitions in force: each cuts its set of endpoints off from the rest.
    cuts: BTreeMap<u64, BTreeSet<Addr>>,
    next_cut: u64,
    drop_permille: u64,
    faults_on: bool,
    history: Vec<Op>,
    pending: BTreeMap<u64, PendingOp>,
    next_op: u64,
    next_value: i64,
    next_incarnation: u64,
    /// Every committed decree's updates and timestamp, per partition.
    committed_content: BTreeMap<(Gpid, Decree), (Vec<Bytes>, u64)>,
    primary_of_ballot: BTreeMap<(Gpid, i64), NodeId>,
    report: Report,
    rounds_by_gpid: BTreeMap<Gpid, u64>,
    store_clock: ManualClock,
    drop_rule: Option<DropRule>,
}

/// A message filter for scripted scenarios: `(from, to, kind) -> drop?`.
pub type DropRule = Box<dyn FnMut(Option<NodeId>, Option<NodeId>, &'static str) -> bool>;

fn hash_key(key: u64) -> String {
    format!("k{key}")
}

fn key_bytes(key: u64) -> Bytes {
    Bytes::from(encode_key(hash_key(key).as_bytes(), b"").unwrap_or_default())
}

fn parse_int(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// A partition as the trace names it (`app.pidx`).
fn g(gpid: Gpid) -> String {
    format!("{}.{}", gpid.app_id, gpid.pidx)
}

/// The partition of the first table (the one-partition scenarios' group).
const FIRST: Gpid = Gpid { app_id: 1, pidx: 0 };

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
                    replicas: BTreeMap::new(),
                    lease: NodeLease::default(),
                    disk_error: None,
                    nlog: nodelog::NodeLogState::default(),
                },
            );
        }
        let mut apps = BTreeMap::new();
        let mut configs = BTreeMap::new();
        for (i, count) in opts.tables.iter().enumerate() {
            let app_id = i32::try_from(i + 1).unwrap_or(i32::MAX);
            let count = i32::try_from(*count).unwrap_or(1).max(1);
            apps.insert(
                app_id,
                AppSummary {
                    app_id,
                    name: format!("t{app_id}"),
                    partition_count: count,
                    envs: BTreeMap::new(),
                    dropped: false,
                },
            );
            for pidx in 0..count {
                let gpid = Gpid::new(app_id, pidx);
                configs.insert(
                    gpid,
                    PartitionConfig {
                        gpid,
                        ballot: 0,
                        max_replica_count: REPLICAS,
                        ..PartitionConfig::default()
                    },
                );
            }
        }
        let tables = apps.len().max(1) as u64;
        let key_gpid = (0..opts.keys)
            .map(|k| {
                let app_id = i32::try_from(k % tables + 1).unwrap_or(1);
                let count = apps.get(&app_id).map_or(1, |a| a.partition_count);
                let hash = key_hash(hash_key(k).as_bytes(), b"");
                Gpid::new(app_id, partition_for_hash(hash, count).unwrap_or(0))
            })
            .collect();
        let faults_on = opts.faults;
        let mut sim = Self {
            report: Report {
                seed: opts.seed,
                partitions: configs.len() as u64,
                ..Report::default()
            },
            rounds_by_gpid: BTreeMap::new(),
            opts,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            nodes,
            apps,
            key_gpid,
            meta: Meta::new(configs),
            client_routes: BTreeMap::new(),
            cuts: BTreeMap::new(),
            next_cut: 0,
            drop_permille: 0,
            faults_on,
            history: Vec::new(),
            pending: BTreeMap::new(),
            next_op: 1,
            next_value: 1,
            next_incarnation: 0,
            committed_content: BTreeMap::new(),
            primary_of_ballot: BTreeMap::new(),
            store_clock: ManualClock::new(SIM_EPOCH_US),
            drop_rule: None,
        };
        if sim.opts.node_log {
            let ids: Vec<NodeId> = sim.nodes.keys().copied().collect();
            for id in ids {
                sim.recover_node_log(id, sim.log_options());
            }
        }
        sim
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
                self.faults_off();
            }
            let Some(ev) = self.events.get_mut(idx).and_then(Option::take) else {
                continue;
            };
            self.step(ev);
        }
        self.now = self.now.max(t);
    }

    /// Drops every message for which `rule(from, to, kind)` is true (`None` is meta or a
    /// client; `kind` is the message's name, e.g. `"Prepare"`).
    pub fn set_drop_rule(&mut self, rule: Option<DropRule>) {
        self.drop_rule = rule;
    }

    /// Makes the log writes and syncs of a node's current replicas fail (or work again). A
    /// replica rebuilt after the failure gets a new directory, which works.
    pub fn fail_log_io(&mut self, node: NodeId, fail: bool) {
        if let Some(n) = self.nodes.get(&node) {
            for r in n.replicas.values() {
                r.fs.set_fail_io(fail);
            }
            n.nlog.fs.set_fail_io(fail);
        }
    }

    /// Crashes a node now (unsynced log bytes are lost); it stays down until restarted.
    pub fn crash(&mut self, node: NodeId) {
        self.crash_with(node, CrashMode::DropUnsynced);
    }

    /// Takes a running node down: its stores lose what they did not flush, its files what
    /// they did not sync (per `mode`). False if it was not up.
    fn crash_with(&mut self, node: NodeId, mode: CrashMode) -> bool {
        let Some(n) = self.nodes.get_mut(&node) else {
            return false;
        };
        if !n.up {
            return false;
        }
        n.up = false;
        n.lease = NodeLease::default();
        let gpids: Vec<Gpid> = n.replicas.keys().copied().collect();
        for r in n.replicas.values() {
            r.fs.crash(mode);
        }
        n.nlog.crash(mode);
        for gpid in gpids {
            self.stop_replica(node, gpid);
        }
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

    fn is_up(&self, id: NodeId) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.up)
    }

    fn step(&mut self, ev: Ev) {
        // A paused node handles nothing until the pause ends.
        let paused_node = match &ev {
            Ev::Wake(id, _) | Ev::Beacon(id) | Ev::Reopen(id, _) | Ev::NodeLogSync(id) => Some(*id),
            Ev::Fetched { node, .. } => Some(*node),
            Ev::Deliver {
                to: Addr::Node(id), ..
            } => Some(*id),
            _ => None,
        };
        if let Some(until) = paused_node.and_then(|id| self.paused(id)) {
            self.at(until, ev);
            return;
        }
        match ev {
            Ev::Wake(id, gpid) => {
                let due = self
                    .nodes
                    .get_mut(&id)
                    .and_then(|n| n.replicas.get_mut(&gpid))
                    .filter(|r| r.wake_at.is_some_and(|w| w <= self.now));
                // A wake-up deferred by a pause is late, not stale; one superseded by an
                // earlier wake-up finds the replica's next one later than now.
                if let Some(r) = due {
                    // A round with no input, when the driver said it is due: the core's
                    // lease end, timeouts and group checks, the store's flush and the log's
                    // trim. An idle secondary sleeps until its flush timer.
                    r.wake_at = None;
                    if self.is_up(id) {
                        self.round(id, gpid, Vec::new());
                    }
                }
            }
            Ev::Beacon(id) => {
                if self.is_up(id) {
                    self.send_beacon(id);
                }
                let t = self.now + BEACON_MS;
                self.at(t, Ev::Beacon(id));
            }
            Ev::Fetched {
                node,
                gpid,
                incarnation,
                result,
            } => {
                let current = self.is_up(node)
                    && self
                        .nodes
                        .get(&node)
                        .and_then(|n| n.replicas.get(&gpid))
                        .is_some_and(|r| r.driver.is_some() && r.incarnation == incarnation);
                if current {
                    let input = match result {
                        Ok(cp) => DriverInput::CheckpointFetched {
                            decree: cp.decree,
                            staged: cp.data,
                        },
                        Err(why) => DriverInput::CheckpointFailed(why),
                    };
                    self.round(node, gpid, vec![input]);
                }
            }
            Ev::Deliver { from, to, msg } => match to {
                Addr::Node(id) => {
                    if self.is_up(id) {
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
            Ev::ClientTimeout(op) => self.on_client_timeout(op),
            Ev::Fault => self.inject_fault(),
            Ev::Restart(id) => {
                self.trace(|| format!("restart {id}"));
                self.start_node(id);
            }
            Ev::Reopen(id, gpid) => {
                if self.is_up(id) {
                    self.trace(|| format!("{id} {} reopens", g(gpid)));
                    self.open_replica(id, gpid, None);
                }
            }
            Ev::Heal(cut) => {
                self.cuts.remove(&cut);
            }
            Ev::DiskBack(id) => self.set_disk_error(id, None),
            Ev::NodeLogSync(id) => self.node_log_sync(id),
        }
    }
}

/// Runs one seed.
pub fn run_seed(opts: SimOptions) -> Report {
    Sim::new(opts).run()
}
