//! The simulated group (replicas, their runtime, meta, network) and how `Op`s drive it.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use pegasus_core::config::{ConfigType, NodeId, PartitionConfig};
use pegasus_core::ids::{Ballot, Decree};

use super::checks::{before, check, tamper};
use super::program::{meta_choice, node_id, node_index, peer_id, Op, Setup, CONFIG_TYPES};
use super::raw::{as_i64, build_checkpoint, Anchors};
use super::{
    ReplicaEventsReport, GPID, MAX_EVENTS, MAX_IN_FLIGHT, MAX_RUNTIME_QUEUE, NODES, WALL_MAX,
    WALL_START,
};
use crate::core::{
    Action, Checkpoint, Event, NodeLease, PeerMessage, Replica, ReplicaOptions, Status,
};
use crate::mutation::Mutation;

#[derive(Debug)]
struct Envelope {
    from: NodeId,
    to: NodeId,
    msg: PeerMessage,
}

/// One replica and what its runtime holds for it: storage, mutation log, requests.
#[derive(Debug)]
pub(super) struct Node {
    pub(super) replica: Replica,
    /// `AppendLog`s this instance emitted, and how many the log made durable.
    appended: u64,
    flushed: u64,
    /// Appended, not yet durable (in order).
    unflushed: VecDeque<Mutation>,
    /// The durable log, in append order (what a restart replays).
    log: Vec<Mutation>,
    /// The durable log by decree (the last record wins, as on replay).
    pub(super) durable: BTreeMap<Decree, Mutation>,
    /// Storage: the last applied decree and its timestamp.
    applied: Decree,
    applied_us: u64,
    /// The timestamp of the last decree this instance committed (or its storage held).
    pub(super) last_commit_us: u64,
    /// The configuration request waiting for meta.
    request: Option<PartitionConfig>,
    builds: VecDeque<(NodeId, u64, Decree)>,
    installs: VecDeque<Checkpoint>,
    /// The node's lease (one per node, as on a server), renewed by the program.
    lease: NodeLease,
}

impl Node {
    fn new(replica: Replica, logged: Vec<Mutation>, applied: Decree, applied_us: u64) -> Self {
        let durable = logged.iter().map(|m| (m.decree, m.clone())).collect();
        Self {
            replica,
            appended: 0,
            flushed: 0,
            unflushed: VecDeque::new(),
            log: logged,
            durable,
            applied,
            applied_us,
            last_commit_us: applied_us,
            request: None,
            builds: VecDeque::new(),
            installs: VecDeque::new(),
            lease: NodeLease::default(),
        }
    }

    /// The log makes appends durable through running count `upto`.
    fn flush_to(&mut self, upto: u64) {
        while self.flushed < upto.min(self.appended) {
            let Some(m) = self.unflushed.pop_front() else {
                break;
            };
            self.flushed = self.flushed.saturating_add(1);
            self.durable.insert(m.decree, m.clone());
            self.log.push(m);
        }
    }
}

/// What the checks need from before an event.
pub(super) struct Before {
    pub(super) status: Status,
    pub(super) committed: Decree,
    pub(super) prepared: Decree,
    pub(super) timestamp_us: u64,
    /// For an event that may make the replica primary: which decrees in
    /// `committed + 1..=prepared` it held (the rest are holes the new primary fills).
    pub(super) held: Option<Vec<bool>>,
}

pub(super) struct Group {
    opts: ReplicaOptions,
    nodes: Vec<Node>,
    meta: PartitionConfig,
    net: VecDeque<Envelope>,
    now_ms: u64,
    wall_us: u64,
    next_client: u64,
    last_signature: u64,
    /// No input so far came from outside the protocol's model: no forged, tampered or
    /// arbitrary message, event or configuration, no meta decision a real meta would not
    /// make, no disk that lost synced bytes. While it holds, the run must also be safe.
    pub(super) honest: bool,
    /// Honest runs: each committed decree's content and timestamp, on whichever replica
    /// committed it first.
    agreed: BTreeMap<Decree, (Vec<Bytes>, u64)>,
    pub(super) report: ReplicaEventsReport,
}

/// A mutation of the starting state. The group committed `committed`, so no mutation says
/// more was committed.
fn seed_mutation(ballot: Ballot, decree: Decree, committed: Decree, stale: bool) -> Mutation {
    Mutation {
        ballot,
        decree,
        last_committed: decree.saturating_sub(1).clamp(0, committed),
        timestamp_us: WALL_START
            .saturating_sub(1_000_000)
            .saturating_add(u64::try_from(decree).unwrap_or(0).saturating_mul(1000)),
        updates: vec![Bytes::from_static(if stale { b"stale" } else { b"seed" })],
    }
}

impl Group {
    pub(super) fn new(setup: &Setup) -> Self {
        let opts = setup.options();
        let established = PartitionConfig {
            gpid: GPID,
            ballot: 2,
            max_replica_count: 3,
            primary: Some(NodeId(1)),
            secondaries: vec![NodeId(2), NodeId(3)],
            ..PartitionConfig::default()
        };
        let empty = PartitionConfig {
            gpid: GPID,
            max_replica_count: 3,
            ..PartitionConfig::default()
        };
        let mode = setup.start % 4;
        let k = i64::from(setup.logged % 8);
        let committed = i64::from(setup.logged >> 3) % (k.saturating_add(1));
        let mut nodes = Vec::with_capacity(NODES);
        for i in 0..NODES {
            let me = node_id(i);
            if mode < 2 {
                let mut r = Replica::new(me, opts, empty.clone(), 0, Vec::new());
                if mode == 0 {
                    r.mark_fresh();
                }
                nodes.push(Node::new(r, Vec::new(), 0, 0));
                continue;
            }
            let lag = i64::from(setup.lag >> (2 * i) & 3);
            let held = k.saturating_sub(lag).max(committed);
            let divergent = mode == 3 && i > 0;
            let logged: Vec<Mutation> = (1..=held)
                .filter(|d| !(divergent && i == 2 && *d == committed.saturating_add(1)))
                .map(|d| {
                    if divergent && d > committed {
                        seed_mutation(1, d, committed, true)
                    } else {
                        seed_mutation(2, d, committed, false)
                    }
                })
                .collect();
            let applied_us = seed_mutation(2, committed, committed, false).timestamp_us;
            let mut r = Replica::new(me, opts, established.clone(), committed, logged.clone());
            r.observe_timestamp(applied_us);
            nodes.push(Node::new(r, logged, committed, applied_us));
        }
        Self {
            opts,
            nodes,
            meta: if mode < 2 { empty } else { established },
            net: VecDeque::new(),
            now_ms: 1_000,
            wall_us: WALL_START,
            next_client: 1,
            last_signature: 0,
            honest: true,
            agreed: BTreeMap::new(),
            report: ReplicaEventsReport::default(),
        }
    }

    fn anchors(&self, i: usize) -> Anchors {
        let (ballot, committed, prepared, ts) = self.nodes.get(i).map_or((0, 0, 0, 0), |n| {
            let r = &n.replica;
            (
                r.config().ballot,
                r.last_committed(),
                r.last_prepared(),
                r.last_timestamp_us(),
            )
        });
        Anchors([
            ballot,
            committed,
            prepared,
            self.meta.ballot,
            committed.saturating_add(self.opts.max_prepare_gap),
            as_i64(self.last_signature),
            as_i64(ts),
            as_i64(self.wall_us),
        ])
    }

    /// Whether `op` stays within the model: the network may lose, delay, reorder and
    /// duplicate messages, nodes crash and restart from what they made durable, clocks jump,
    /// and meta follows its rules (below).
    fn honest(&self, op: &Op) -> bool {
        let meta = &self.meta;
        match op {
            Op::Proposal { node, kind, about } => {
                let target = node_id(node_index(*node));
                let about = peer_id(*about);
                match CONFIG_TYPES.get(usize::from(*kind) % CONFIG_TYPES.len()) {
                    Some(ConfigType::AssignPrimary) => {
                        meta.ballot == 0 && meta.primary.is_none() && about == target
                    }
                    Some(ConfigType::UpgradeToPrimary) => {
                        meta.primary.is_none()
                            && meta.secondaries.contains(&about)
                            && about == target
                    }
                    Some(
                        ConfigType::AddSecondary
                        | ConfigType::Remove
                        | ConfigType::DowngradeToInactive,
                    ) => meta.primary == Some(target),
                    _ => true,
                }
            }
            Op::MetaConfig {
                primary,
                secondaries,
            } => {
                // Meta promotes a member, keeps or drops members, and adds none (new members
                // come in as learners through the primary).
                let (primary, secondaries) = meta_choice(*primary, *secondaries);
                primary.is_none_or(|p| meta.is_member(p))
                    && secondaries.iter().all(|s| meta.is_member(*s))
            }
            // A disk that lost synced bytes.
            Op::Restart { mode, .. } => mode % 4 != 1,
            Op::RawConfig { .. }
            | Op::RawLearnReady { .. }
            | Op::RawInstalled { .. }
            | Op::Tamper { .. }
            | Op::Forge { .. } => false,
            _ => true,
        }
    }

    pub(super) fn run(&mut self, op: &Op) {
        if self.honest && !self.honest(op) {
            self.honest = false;
        }
        match op {
            Op::Tick {
                node,
                dt,
                wall,
                arg,
            } => {
                let dt = u64::from(*dt) * u64::from(*dt);
                self.now_ms = self.now_ms.saturating_add(dt);
                let jump = 1u64 << (arg % 40);
                self.wall_us = match wall % 4 {
                    0 => self.wall_us.saturating_add(dt.saturating_mul(1000)),
                    1 => self.wall_us.saturating_add(jump),
                    2 => self.wall_us.saturating_sub(jump),
                    _ => u64::from(*arg) * 1000,
                }
                .min(WALL_MAX);
                let tick = Event::Tick {
                    now_ms: self.now_ms,
                    wall_us: self.wall_us,
                };
                if node % 4 == 3 {
                    for i in 0..NODES {
                        self.handle(i, tick.clone());
                    }
                } else {
                    self.handle(node_index(*node), tick);
                }
            }
            Op::Write { node, count } => {
                let writes: Vec<(u64, Bytes)> = (0..count % 8)
                    .map(|k| {
                        self.next_client = self.next_client.saturating_add(1);
                        (self.next_client, Bytes::from(vec![b'w', k]))
                    })
                    .collect();
                let event = match writes.as_slice() {
                    [(id, update)] => Event::ClientWrite {
                        id: *id,
                        update: update.clone(),
                    },
                    _ => Event::ClientWrites(writes),
                };
                self.handle(node_index(*node), event);
            }
            Op::Flush { node, count } => self.flush(node_index(*node), *count),
            Op::RawFlushed { node, appended } => {
                let i = node_index(*node);
                let appended = appended.unsigned(&self.anchors(i));
                if let Some(n) = self.nodes.get_mut(i) {
                    n.flush_to(appended);
                }
                self.handle(i, Event::LogFlushed { appended });
            }
            Op::Lease { node, len } => self.lease(node_index(*node), u64::from(*len) * 100),
            Op::RawLease {
                node,
                sent,
                until,
                now,
            } => {
                let i = node_index(*node);
                let a = self.anchors(i);
                self.renew_lease(i, sent.unsigned(&a), until.unsigned(&a), now.unsigned(&a));
            }
            Op::Proposal { node, kind, about } => {
                let kind = CONFIG_TYPES
                    .get(usize::from(*kind) % CONFIG_TYPES.len())
                    .copied()
                    .unwrap_or(ConfigType::AddSecondary);
                self.handle(
                    node_index(*node),
                    Event::Proposal {
                        kind,
                        node: peer_id(*about),
                    },
                );
            }
            Op::MetaAccept { node } => self.meta_answer(node_index(*node), true, false),
            Op::MetaReject { node } => self.meta_answer(node_index(*node), false, false),
            Op::MetaConfig {
                primary,
                secondaries,
            } => {
                let (primary, secondaries) = meta_choice(*primary, *secondaries);
                self.meta.ballot = self.meta.ballot.saturating_add(1);
                self.meta.primary = primary;
                self.meta.secondaries = secondaries;
            }
            Op::MetaSync { node } => {
                let config = self.meta.clone();
                self.handle(node_index(*node), Event::Config(config));
            }
            Op::RawConfig { node, config } => {
                let i = node_index(*node);
                let config = config.build(&self.anchors(i), node_id(i));
                self.handle(i, Event::Config(config));
            }
            Op::LearnReady { node } => self.learn_ready(node_index(*node)),
            Op::RawLearnReady {
                node,
                learner,
                signature,
                checkpoint,
                mutations,
            } => {
                let i = node_index(*node);
                let a = self.anchors(i);
                self.handle(
                    i,
                    Event::LearnStateReady {
                        learner: peer_id(*learner),
                        signature: signature.unsigned(&a),
                        checkpoint: build_checkpoint(*checkpoint, &a),
                        mutations: mutations.iter().map(|m| m.build(&a)).collect(),
                    },
                );
            }
            Op::Installed { node } => self.installed(node_index(*node)),
            Op::RawInstalled { node, decree } => {
                let i = node_index(*node);
                let decree = decree.value(&self.anchors(i));
                if let Some(n) = self.nodes.get_mut(i) {
                    // Storage holds the checkpoint only if one with this decree was sent.
                    if let Some(k) = n.installs.iter().position(|c| c.decree == decree) {
                        if let Some(cp) = n.installs.remove(k) {
                            n.applied = cp.decree;
                            n.applied_us = cp.timestamp_us;
                        }
                    }
                }
                self.handle(i, Event::CheckpointInstalled { decree });
            }
            Op::LocalError { node } => self.handle(node_index(*node), Event::LocalError),
            Op::LogFull { node } => self.handle(node_index(*node), Event::LogFull),
            Op::Restart { node, mode, cut } => self.restart(node_index(*node), *mode, *cut),
            Op::Deliver { index, dup } => {
                let k = usize::from(*index) % self.net.len().max(1);
                let envelope = if *dup {
                    self.net.get(k).map(|e| Envelope {
                        from: e.from,
                        to: e.to,
                        msg: e.msg.clone(),
                    })
                } else {
                    self.net.remove(k)
                };
                if let Some(e) = envelope {
                    self.deliver(e);
                }
            }
            Op::Drop { index } => {
                let k = usize::from(*index) % self.net.len().max(1);
                self.net.remove(k);
            }
            Op::Tamper {
                index,
                field,
                value,
            } => {
                let k = usize::from(*index) % self.net.len().max(1);
                let Some(e) = self.net.get(k) else {
                    return;
                };
                let (from, to, mut msg) = (e.from, e.to, e.msg.clone());
                let a = self.anchors(usize::try_from(to.0.saturating_sub(1)).unwrap_or(0));
                tamper(&mut msg, *field, value.value(&a));
                self.deliver(Envelope { from, to, msg });
            }
            Op::Forge { from, to, msg } => {
                let i = node_index(*to);
                let from = peer_id(*from);
                let msg = msg.build(&self.anchors(i), from);
                self.handle(i, Event::Message { from, msg });
            }
            Op::Run { rounds } => self.healthy_rounds(rounds % 8 + 1),
        }
    }

    fn flush(&mut self, i: usize, count: u8) {
        let Some(n) = self.nodes.get_mut(i) else {
            return;
        };
        let upto = if count == 0 {
            n.appended
        } else {
            n.flushed.saturating_add(u64::from(count))
        };
        if upto <= n.flushed {
            return;
        }
        n.flush_to(upto);
        let appended = n.flushed;
        self.handle(i, Event::LogFlushed { appended });
    }

    fn lease(&mut self, i: usize, len_ms: u64) {
        let now = self.now_ms;
        self.renew_lease(i, now, now.saturating_add(len_ms), now);
    }

    /// Renews node `i`'s lease and hands it to its replica at once (a runtime may hand it
    /// later, at the replica's next round; the core must be right either way).
    fn renew_lease(&mut self, i: usize, sent_ms: u64, until_ms: u64, now_ms: u64) {
        let Some(n) = self.nodes.get_mut(i) else {
            return;
        };
        n.lease.renew(sent_ms, until_ms, now_ms);
        let lease = n.lease;
        self.handle(
            i,
            Event::Lease {
                epoch: lease.epoch,
                until_ms: lease.until_ms,
            },
        );
    }

    /// Meta answers node `i`'s pending request: accepts it if `accept` and its ballot is the
    /// next one (and tells the node, or every node if `broadcast`), else refuses it.
    fn meta_answer(&mut self, i: usize, accept: bool, broadcast: bool) {
        let Some(config) = self.nodes.get_mut(i).and_then(|n| n.request.take()) else {
            return;
        };
        if accept && config.ballot == self.meta.ballot.saturating_add(1) {
            self.meta = config.clone();
            if broadcast {
                for k in 0..NODES {
                    self.handle(k, Event::Config(config.clone()));
                }
            } else {
                self.handle(i, Event::Config(config));
            }
        } else {
            self.handle(i, Event::ConfigRejected);
        }
    }

    /// The runtime answers node `i`'s oldest learn request from its storage and durable log.
    fn learn_ready(&mut self, i: usize) {
        let Some(n) = self.nodes.get_mut(i) else {
            return;
        };
        let Some((learner, signature, from)) = n.builds.pop_front() else {
            return;
        };
        let checkpoint = (from <= n.applied).then(|| Checkpoint {
            decree: n.applied,
            timestamp_us: n.applied_us,
            data: Bytes::new(),
        });
        let start = checkpoint
            .as_ref()
            .map_or(from, |c| c.decree.saturating_add(1));
        let mutations = n
            .durable
            .range(start..)
            .map(|(_, m)| m.clone())
            .take(512)
            .collect();
        self.handle(
            i,
            Event::LearnStateReady {
                learner,
                signature,
                checkpoint,
                mutations,
            },
        );
    }

    fn installed(&mut self, i: usize) {
        let Some(n) = self.nodes.get_mut(i) else {
            return;
        };
        let Some(cp) = n.installs.pop_front() else {
            return;
        };
        n.applied = cp.decree;
        n.applied_us = cp.timestamp_us;
        self.handle(i, Event::CheckpointInstalled { decree: cp.decree });
    }

    /// The node's process restarts: a new replica from its storage and durable log.
    fn restart(&mut self, i: usize, mode: u8, cut: u8) {
        if self.report.events >= MAX_EVENTS {
            return;
        }
        let Some(n) = self.nodes.get_mut(i) else {
            return;
        };
        let me = node_id(i);
        let mut torn = false;
        let (config, logged) = match mode % 4 {
            2 => {
                // Rebuilt empty (its directory was lost): it must learn before serving.
                n.applied = 0;
                n.applied_us = 0;
                let empty = PartitionConfig {
                    gpid: GPID,
                    max_replica_count: 3,
                    ..PartitionConfig::default()
                };
                (empty, Vec::new())
            }
            m => {
                let mut logged = std::mem::take(&mut n.log);
                if m == 1 {
                    let cut = usize::from(cut) % logged.len().saturating_add(1);
                    logged.truncate(logged.len().saturating_sub(cut));
                    torn = true;
                }
                let applied = n.applied;
                logged.retain(|m| m.decree > applied);
                (n.replica.config().clone(), logged)
            }
        };
        if std::env::var_os("RE_TRACE").is_some() {
            eprintln!(
                "RESTART n{} mode {} cut {} applied {} logged {}",
                i + 1,
                mode,
                cut,
                n.applied,
                logged.len()
            );
        } // TEMP
        let mut r = Replica::new(me, self.opts, config, n.applied, logged.clone());
        r.observe_timestamp(n.applied_us);
        // The runtime persists freshness: a rebuilt replica stays fresh until it caught up.
        if mode % 4 == 2 || n.replica.is_fresh() {
            r.mark_fresh();
        }
        if torn {
            r.mark_torn_tail();
        }
        *n = Node::new(r, logged, n.applied, n.applied_us);
    }

    fn deliver(&mut self, e: Envelope) {
        let i = usize::try_from(e.to.0.saturating_sub(1)).unwrap_or(NODES);
        if i < NODES {
            self.handle(
                i,
                Event::Message {
                    from: e.from,
                    msg: e.msg,
                },
            );
        }
    }

    fn healthy_rounds(&mut self, rounds: u8) {
        for i in 0..NODES {
            self.lease(i, 5_000);
        }
        for _ in 0..rounds {
            if self.report.events >= MAX_EVENTS {
                return;
            }
            for i in 0..NODES {
                self.flush(i, 0);
                while self.nodes.get(i).is_some_and(|n| !n.builds.is_empty()) {
                    self.learn_ready(i);
                }
                while self.nodes.get(i).is_some_and(|n| !n.installs.is_empty()) {
                    self.installed(i);
                }
            }
            for i in 0..NODES {
                self.meta_answer(i, true, true);
            }
            for i in 0..NODES {
                let behind = self
                    .nodes
                    .get(i)
                    .is_some_and(|n| n.replica.config().ballot < self.meta.ballot);
                if behind {
                    self.handle(i, Event::Config(self.meta.clone()));
                }
            }
            for _ in 0..self.net.len() {
                if let Some(e) = self.net.pop_front() {
                    self.deliver(e);
                }
            }
        }
    }

    /// Feeds one event to replica `i`, checks the invariants, and carries out its actions.
    fn handle(&mut self, i: usize, event: Event) {
        if self.report.events >= MAX_EVENTS {
            return;
        }
        self.report.events = self.report.events.saturating_add(1);
        let gap = self.opts.max_prepare_gap;
        let Some(n) = self.nodes.get_mut(i) else {
            return;
        };
        let before = before(&n.replica, &event, gap);
        static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new(); // TEMP
        let trace = *TRACE.get_or_init(|| std::env::var_os("RE_TRACE").is_some());
        let dbg_ev = if trace {
            format!("{event:?}")
        } else {
            String::new()
        };
        let actions = n.replica.handle(event);
        if trace {
            eprintln!(
                "n{} {:?}->{:?} c={} p={} <- {}",
                i + 1,
                before.status,
                n.replica.status(),
                n.replica.last_committed(),
                n.replica.last_prepared(),
                dbg_ev.chars().take(400).collect::<String>()
            );
            for a in &actions {
                eprintln!(
                    "      {}",
                    format!("{a:?}").chars().take(400).collect::<String>()
                );
            }
        }
        let agreed = self.honest.then_some(&mut self.agreed);
        check(n, &before, &actions, agreed);
        let me = node_id(i);
        if before.status != Status::Primary && n.replica.status() == Status::Primary {
            self.report.elections = self.report.elections.saturating_add(1);
        }
        self.report.max_committed = self.report.max_committed.max(n.replica.last_committed());
        for a in actions {
            match a {
                Action::Send { to, msg } => {
                    if let PeerMessage::AddLearner { signature, .. } = &msg {
                        self.last_signature = *signature;
                    }
                    if (1..=3).contains(&to.0) {
                        if self.net.len() >= MAX_IN_FLIGHT {
                            self.net.pop_front();
                        }
                        self.net.push_back(Envelope { from: me, to, msg });
                    }
                }
                Action::AppendLog(m) => {
                    n.appended = n.appended.saturating_add(1);
                    n.unflushed.push_back(m);
                }
                Action::Commit { mutation, .. } => {
                    self.report.commits = self.report.commits.saturating_add(1);
                    n.applied = mutation.decree;
                    n.applied_us = mutation.timestamp_us;
                }
                Action::Refuse { .. } => {}
                Action::RequestConfig { config, .. } => n.request = Some(config),
                Action::BuildLearnState {
                    learner,
                    signature,
                    from,
                } => {
                    if n.builds.len() < MAX_RUNTIME_QUEUE {
                        n.builds.push_back((learner, signature, from));
                    }
                }
                Action::InstallCheckpoint(cp) => {
                    if n.installs.len() < MAX_RUNTIME_QUEUE {
                        n.installs.push_back(cp);
                    }
                }
            }
        }
    }
}
