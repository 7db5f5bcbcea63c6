//! The PacificA replica state machine for one partition, sans-IO: [`Replica::handle`] takes an
//! [`Event`] and returns [`Action`]s. No sockets, files or clocks inside: time arrives in
//! events, and logging, applying, sending and talking to meta are actions the runtime (the
//! replica server, or the simulator) carries out and reports back.
//!
//! Rules (PacificA, as Pegasus implements it, plus our read lease):
//! * The primary assigns decrees, logs each mutation and sends it to every secondary and to
//!   learners past their start decree. A mutation commits when it is logged locally and
//!   acknowledged by all of them; commits happen in decree order.
//! * A secondary logs before acknowledging and commits only up to the primary's piggybacked
//!   committed decree (or a group check's), and only what it has logged.
//! * A replica never changes membership itself: it asks meta with `ballot + 1`.
//! * A new primary re-proposes every uncommitted decree with its ballot (holes become empty
//!   mutations) and serves no reads until they commit.
//! * Reads need a valid lease (from beacons acknowledged by meta; the lease is shorter than
//!   meta's grace period) — a paused primary cannot serve a stale read after it resumes.
//! * A local I/O error or a protocol anomaly moves this replica to `Error`; it never panics.
//! * Mutation timestamps are wall-clock time (Unix µs), an input separate from the monotonic
//!   tick that drives leases and timers. A primary stamps `max(wall clock, largest timestamp
//!   it holds + 1)`, so timestamps strictly increase with decrees, across primaries too
//!   (PacificA: a new primary holds every committed mutation); every replica applies the
//!   primary's stamp.
//! * Values from the wire are checked before use: ballots and decrees beyond
//!   [`MAX_BALLOT`] / [`MAX_DECREE`] or negative are ignored, a prepare may open at most
//!   `max_prepare_gap` decrees past what this replica holds, and every arithmetic on them is
//!   saturating (the module denies `clippy::arithmetic_side_effects`).

#![deny(clippy::arithmetic_side_effects)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use pegasus_core::config::{ConfigType, NodeId, PartitionConfig};
use pegasus_core::ids::{Ballot, Decree};

use crate::mutation::Mutation;

/// The largest ballot a replica accepts from a message or from meta. Meta raises a ballot by
/// one per configuration change, so a real one is many orders of magnitude below; anything
/// near `i64::MAX` is corrupt or hostile, and refusing it keeps `ballot + 1` exact.
pub const MAX_BALLOT: Ballot = 1 << 48;

/// The largest decree a replica accepts from a message (2^48 decrees is ~9000 years at a
/// million mutations per second).
pub const MAX_DECREE: Decree = 1 << 48;

/// The largest mutation or checkpoint timestamp a replica accepts from a message (Unix µs,
/// ~146 000 years). Fuzz finding (`replica_events`): a timestamp near `u64::MAX` from the
/// wire was held, and a primary's stamp (`largest held + 1`) saturated, repeating one
/// timestamp for every later mutation; refusing it keeps the `+ 1` exact.
pub const MAX_TIMESTAMP_US: u64 = 1 << 62;

/// Settings (`[replication]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaOptions {
    /// Most mutations in 2PC at once (`staleness_for_commit`).
    pub staleness_for_commit: i64,
    /// Most client writes batched into one mutation.
    pub max_batch: usize,
    /// How many committed mutations the primary keeps in memory to catch learners up.
    pub cache_committed: usize,
    /// A secondary that has not acknowledged a prepare within this is reported dead.
    pub prepare_timeout_ms: u64,
    /// Group check period.
    pub group_check_interval_ms: u64,
    /// Retry period of a configuration request to meta.
    pub meta_retry_ms: u64,
    /// Fewest members (primary included) that may commit (`mutation_2pc_min_replica_count`).
    pub min_2pc_replicas: usize,
    /// How far past the last decree it holds a replica accepts a prepare (Pegasus's
    /// `max_mutation_count_in_prepare_list`): a larger gap can only come from a broken or
    /// hostile sender, and a new primary fills every hole below its last prepared decree.
    pub max_prepare_gap: i64,
    /// A planted bug for the chaos harness, never for production: the primary ignores its
    /// lease — it serves reads and keeps acting as primary after the lease lapsed, until a
    /// new configuration demotes it.
    pub planted_ignore_lease: bool,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        Self {
            staleness_for_commit: 20,
            max_batch: 64,
            cache_committed: 1000,
            prepare_timeout_ms: 3000,
            group_check_interval_ms: 10_000,
            meta_retry_ms: 1000,
            min_2pc_replicas: 2,
            max_prepare_gap: 5_000,
            planted_ignore_lease: false,
        }
    }
}

/// A replica's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Status {
    /// Not serving: no configuration yet, removed, waiting for meta, or lease lost.
    Inactive,
    /// Serves reads and writes.
    Primary,
    /// Follows the primary.
    Secondary,
    /// Learning to become a secondary.
    PotentialSecondary,
    /// Failed (I/O error, protocol anomaly). Terminal: the runtime drops the replica and it
    /// is rebuilt by learning.
    Error,
}

/// Why a client request was refused (mapped to Pegasus error codes by the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not the primary, or not allowed to serve now (`ERR_INVALID_STATE`).
    NotPrimary,
    /// Too few members to commit (`ERR_NOT_ENOUGH_MEMBER`).
    NotEnoughMembers,
    /// The write did not commit and never will under this primary (the client sees a
    /// failure or times out; the write may still commit under the next primary).
    Aborted,
}

/// A checkpoint handed over during learning: the storage state at `decree` (opaque bytes
/// the runtime produces and installs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The last decree the checkpoint holds.
    pub decree: Decree,
    /// The timestamp (Unix µs) of that decree's mutation: a learner that becomes primary
    /// must stamp later mutations above it.
    pub timestamp_us: u64,
    /// Storage snapshot.
    pub data: Bytes,
}

/// Messages between replicas of one partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PeerMessage {
    /// 2PC phase one (to secondaries and learners).
    Prepare {
        /// The sender's configuration.
        config: PartitionConfig,
        /// The mutation.
        mutation: Mutation,
    },
    /// A prepare was logged (or refused).
    PrepareAck {
        /// The acknowledger's ballot.
        ballot: Ballot,
        /// Which decree.
        decree: Decree,
        /// Logged; false = refused.
        ok: bool,
    },
    /// Periodic check from the primary; carries the committed decree.
    GroupCheck {
        /// The primary's configuration.
        config: PartitionConfig,
        /// Its committed decree.
        last_committed: Decree,
    },
    /// Reply to a group check.
    GroupCheckAck {
        /// The replier's ballot.
        ballot: Ballot,
        /// Whether the replier agrees it is a member or learner of this configuration.
        ok: bool,
    },
    /// The primary invites a node to learn.
    AddLearner {
        /// The primary's configuration.
        config: PartitionConfig,
        /// The learning round's signature.
        signature: u64,
    },
    /// A learner asks for what it misses.
    Learn {
        /// The learning round.
        signature: u64,
        /// Its committed decree.
        last_committed: Decree,
    },
    /// What the learner misses.
    LearnResponse(LearnResponse),
    /// The learner caught up.
    LearnCompleted {
        /// The learning round.
        signature: u64,
    },
}

/// The primary's answer to a learner.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LearnResponse {
    /// The learning round.
    pub signature: u64,
    /// The primary's configuration.
    pub config: PartitionConfig,
    /// A checkpoint to install first, when the learner is too far behind.
    pub checkpoint: Option<Checkpoint>,
    /// Mutations after the checkpoint (or after the learner's committed decree).
    pub mutations: Vec<Mutation>,
    /// The primary's committed decree: the learner commits up to it.
    pub committed: Decree,
    /// Try again later (the primary does not hold what the learner committed yet).
    pub retry: bool,
}

/// Inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Time passed.
    Tick {
        /// Now, on the monotonic clock of leases and timers (ms).
        now_ms: u64,
        /// Now, on the wall clock (Unix µs): what new mutations are stamped with.
        wall_us: u64,
    },
    /// A client write (encoded), with an id the runtime uses to reply.
    ClientWrite {
        /// Client request id.
        id: u64,
        /// Encoded write.
        update: Bytes,
    },
    /// Client writes that arrived together: queued as one, so a primary turns them into as
    /// few mutations as `max_batch` allows (one prepare, one log record, one ack for all).
    ClientWrites(Vec<(u64, Bytes)>),
    /// A message from another replica.
    Message {
        /// Sender.
        from: NodeId,
        /// Message.
        msg: PeerMessage,
    },
    /// The log made the first `appended` [`Action::AppendLog`]s this replica ever emitted
    /// durable (a running count: the runtime appends in order and counts what it flushed).
    LogFlushed {
        /// Appends now durable, counted from the replica's creation.
        appended: u64,
    },
    /// Meta's configuration for this partition (config sync, or the result of an update).
    Config(PartitionConfig),
    /// Meta asks this replica to act.
    Proposal {
        /// The change.
        kind: ConfigType,
        /// The node it is about.
        node: NodeId,
    },
    /// Meta refused our configuration request (stale ballot or invalid change).
    ConfigRejected,
    /// Meta acknowledged a beacon sent at `sent_ms`: this node may serve until `until_ms`.
    Lease {
        /// When (local clock) the acknowledged beacon was sent.
        sent_ms: u64,
        /// Lease deadline.
        until_ms: u64,
        /// Local clock now. After a pause the acknowledgement may be handled before any
        /// tick noticed that the old lease ran out.
        now_ms: u64,
    },
    /// The runtime prepared what a learner asked for (checkpoint and/or logged mutations).
    LearnStateReady {
        /// The learner.
        learner: NodeId,
        /// Its round.
        signature: u64,
        /// Storage checkpoint, if needed.
        checkpoint: Option<Checkpoint>,
        /// Logged mutations after the checkpoint (or after the learner's committed decree).
        mutations: Vec<Mutation>,
    },
    /// The runtime installed a learned checkpoint.
    CheckpointInstalled {
        /// Its decree.
        decree: Decree,
    },
    /// A local I/O error (log or storage).
    LocalError,
    /// The log's disk is full: this copy cannot log what its primary sends. A secondary or
    /// learner refuses the primary at once, so the primary has it removed now instead of
    /// after the prepare timeout (writes would wait for it meanwhile). Nothing else changes:
    /// the copy is intact, and the runtime reopens it in place.
    LogFull,
}

/// Outputs, carried out by the runtime in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a message to a peer (best effort).
    Send {
        /// Destination.
        to: NodeId,
        /// Message.
        msg: PeerMessage,
    },
    /// Append to the mutation log (then flush, then report [`Event::LogFlushed`]).
    AppendLog(Mutation),
    /// Apply a committed mutation to storage, in decree order; reply to `clients` with the
    /// results.
    Commit {
        /// The mutation.
        mutation: Mutation,
        /// Client ids whose writes it carries (primary only).
        clients: Vec<u64>,
    },
    /// Refuse client writes.
    Refuse {
        /// Client ids.
        clients: Vec<u64>,
        /// Why.
        reason: Refusal,
    },
    /// Ask meta for a configuration change (`ballot + 1`).
    RequestConfig {
        /// The change.
        kind: ConfigType,
        /// The node it is about.
        node: NodeId,
        /// The configuration wanted.
        config: PartitionConfig,
    },
    /// Build a learner's state: a checkpoint if `from` is not in the log, plus logged
    /// mutations from `from`; report [`Event::LearnStateReady`].
    BuildLearnState {
        /// The learner.
        learner: NodeId,
        /// Its round.
        signature: u64,
        /// First decree it needs.
        from: Decree,
    },
    /// Replace storage with a learned checkpoint; report [`Event::CheckpointInstalled`].
    InstallCheckpoint(Checkpoint),
}

#[derive(Debug, Clone)]
struct Pending {
    acks: BTreeSet<NodeId>,
    sent_ms: u64,
    clients: Vec<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Learning {
    signature: u64,
    primary: NodeId,
    /// The primary's committed decree from its response (None until it answers).
    target: Option<Decree>,
    notified: bool,
}

#[derive(Debug, Clone)]
struct Learner {
    signature: u64,
    /// Prepares from this decree on are sent to the learner (and gate commits).
    prepare_start: Option<Decree>,
}

/// One replica of one partition.
#[derive(Debug)]
pub struct Replica {
    me: NodeId,
    opts: ReplicaOptions,
    status: Status,
    config: PartitionConfig,
    now_ms: u64,
    /// Mutations by decree: uncommitted ones, and recent committed ones (the cache).
    log: BTreeMap<Decree, Mutation>,
    /// Decrees whose current mutation is durably logged.
    logged: BTreeSet<Decree>,
    /// Appends emitted so far, and those not yet durable: (sequence, decree, ballot).
    appended: u64,
    unflushed: VecDeque<(u64, Decree, Ballot)>,
    /// Largest decree committed (applied).
    committed: Decree,
    /// Primary: acks each uncommitted decree waits for.
    pending: BTreeMap<Decree, Pending>,
    /// Primary: client writes not yet in a mutation.
    queue: VecDeque<(u64, Bytes)>,
    /// Primary: reads wait until this decree commits (re-proposals of a new primary).
    read_barrier: Decree,
    learners: BTreeMap<NodeId, Learner>,
    next_signature: u64,
    lease_until_ms: u64,
    last_group_check_ms: u64,
    /// Group-check acks outstanding, with the time the check was sent.
    group_check_waiting: BTreeMap<NodeId, u64>,
    /// Our outstanding request to meta, and when it was last sent.
    config_request: Option<(ConfigType, NodeId, PartitionConfig, u64)>,
    /// Potential secondary: the learning round.
    learning: Option<Learning>,
    /// Potential secondary: waiting for a checkpoint install.
    installing: bool,
    /// Commits asked for while a checkpoint was being installed.
    deferred_commit: Decree,
    /// Created empty (a new or rebuilt replica): it holds no history, so it must never
    /// become primary of a partition that has one (ballot > 0) before it learns.
    fresh: bool,
    /// Its log lost a torn tail on restart: it may have acknowledged records it no longer
    /// holds, so it must not reassert itself as primary from its own state.
    torn_tail: bool,
    /// The largest ballot of any mutation this replica holds or logged.
    data_ballot: Ballot,
    /// The wall clock at the last tick (Unix µs).
    wall_us: u64,
    /// The largest mutation timestamp this replica holds, logged or applied (Unix µs).
    last_timestamp_us: u64,
    /// The timestamp of the last committed mutation (Unix µs; 0 if unknown).
    committed_timestamp_us: u64,
}

impl Replica {
    /// A replica recovering from its log: `committed` is what storage holds (its durable
    /// decree after replay), `logged` the mutations the log replayed. It starts inactive and
    /// waits for meta's configuration. Its ballot is at least the largest ballot it logged,
    /// so what it reports for meta's all-dead rule never understates how recent it is.
    pub fn new(
        me: NodeId,
        opts: ReplicaOptions,
        mut config: PartitionConfig,
        committed: Decree,
        logged: Vec<Mutation>,
    ) -> Self {
        let data_ballot = logged.iter().map(|m| m.ballot).max().unwrap_or(0);
        let last_timestamp_us = logged.iter().map(|m| m.timestamp_us).max().unwrap_or(0);
        config.ballot = config.ballot.max(data_ballot);
        let mut log = BTreeMap::new();
        let mut durable = BTreeSet::new();
        for m in logged.into_iter().filter(|m| m.decree > committed) {
            durable.insert(m.decree);
            log.insert(m.decree, m);
        }
        Self {
            me,
            opts,
            status: Status::Inactive,
            config,
            now_ms: 0,
            log,
            logged: durable,
            appended: 0,
            unflushed: VecDeque::new(),
            committed,
            pending: BTreeMap::new(),
            queue: VecDeque::new(),
            read_barrier: 0,
            learners: BTreeMap::new(),
            next_signature: 1,
            lease_until_ms: 0,
            last_group_check_ms: 0,
            group_check_waiting: BTreeMap::new(),
            config_request: None,
            learning: None,
            installing: false,
            deferred_commit: 0,
            fresh: false,
            torn_tail: false,
            data_ballot,
            wall_us: 0,
            last_timestamp_us,
            committed_timestamp_us: 0,
        }
    }

    /// Tells the replica the timestamp of the last mutation its storage applied (the log
    /// may no longer hold it): mutations it proposes as primary are stamped after it.
    pub fn observe_timestamp(&mut self, applied_us: u64) {
        self.last_timestamp_us = self.last_timestamp_us.max(applied_us);
        self.committed_timestamp_us = self.committed_timestamp_us.max(applied_us);
    }

    /// The largest mutation timestamp this replica holds (Unix µs).
    pub fn last_timestamp_us(&self) -> u64 {
        self.last_timestamp_us
    }

    /// The timestamp of a mutation this primary creates now: wall-clock time, but never at
    /// or below one it already holds (another primary's clock may have been ahead).
    fn stamp(&mut self) -> u64 {
        let ts = self.wall_us.max(self.last_timestamp_us.saturating_add(1));
        self.last_timestamp_us = ts;
        ts
    }

    /// Marks a replica the runtime just created empty (no directory before): it may become
    /// primary only of a partition that never had members, and otherwise must learn first.
    pub fn mark_fresh(&mut self) {
        self.fresh = true;
    }

    /// Marks a replica whose log replay cut a torn tail. A crash mid-write tears only what
    /// was never acknowledged, but a disk that loses synced bytes tears what was: such a
    /// replica, still listed as primary, asks meta to drop it rather than reasserting
    /// itself under a new ballot (meta then promotes a secondary, which holds every
    /// committed decree); as a secondary it re-learns anyway. Meta may still choose it when
    /// every copy is dead (the all-dead rule compares what each copy reports).
    pub fn mark_torn_tail(&mut self) {
        self.torn_tail = true;
    }

    /// The largest ballot among the mutations this replica holds: what it reports to meta for
    /// the all-dead rule (never the configuration ballot it merely adopted).
    pub fn data_ballot(&self) -> Ballot {
        self.data_ballot
    }

    /// Current role.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Current configuration.
    pub fn config(&self) -> &PartitionConfig {
        &self.config
    }

    /// Largest committed decree.
    pub fn last_committed(&self) -> Decree {
        self.committed
    }

    /// Largest decree this replica has a mutation for.
    pub fn last_prepared(&self) -> Decree {
        self.log
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.committed)
            .max(self.committed)
    }

    /// The ballot of the mutation at `decree`, if kept in memory.
    pub fn mutation(&self, decree: Decree) -> Option<&Mutation> {
        self.log.get(&decree)
    }

    /// Whether a read may be served now: primary, lease valid, re-proposals committed.
    pub fn can_read(&self, now_ms: u64) -> Result<(), Refusal> {
        if self.status != Status::Primary
            || now_ms >= self.lease_until_ms
            || self.committed < self.read_barrier
        {
            return Err(Refusal::NotPrimary);
        }
        Ok(())
    }

    /// Until when (local ms) reads may be served, if this replica may serve them at all:
    /// primary, re-proposals committed. The runtime publishes it so reads on other threads
    /// check `now < deadline` without going through the state machine.
    pub fn read_deadline(&self) -> Option<u64> {
        (self.status == Status::Primary && self.committed >= self.read_barrier).then_some(
            if self.opts.planted_ignore_lease {
                u64::MAX
            } else {
                self.lease_until_ms
            },
        )
    }

    /// Whether this replica was created empty and has not yet caught up with a group (the
    /// runtime persists it, so a restart does not forget it).
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Handles one event.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if !event_in_range(&event) {
            // Corrupt or hostile: a ballot or decree no real group produces. Dropped like a
            // lost message (the sender, if real, times out and is removed).
            tracing::warn!(
                "replica {:?}: ignoring an event with an out-of-range ballot or decree",
                self.config.gpid
            );
            return out;
        }
        if self.status == Status::Error {
            let clients = match event {
                Event::ClientWrite { id, .. } => vec![id],
                Event::ClientWrites(writes) => writes.into_iter().map(|(id, _)| id).collect(),
                _ => Vec::new(),
            };
            if !clients.is_empty() {
                out.push(Action::Refuse {
                    clients,
                    reason: Refusal::NotPrimary,
                });
            }
            return out;
        }
        match event {
            Event::Tick { now_ms, wall_us } => {
                self.wall_us = self.wall_us.max(wall_us);
                self.on_tick(now_ms, &mut out);
            }
            Event::ClientWrite { id, update } => {
                self.on_client_writes(vec![(id, update)], &mut out);
            }
            Event::ClientWrites(writes) => self.on_client_writes(writes, &mut out),
            Event::Message { from, msg } => self.on_message(from, msg, &mut out),
            Event::LogFlushed { appended } => self.on_log_flushed(appended, &mut out),
            Event::Config(config) => self.on_config(config, &mut out),
            Event::Proposal { kind, node } => self.on_proposal(kind, node, &mut out),
            Event::ConfigRejected => {
                self.config_request = None;
            }
            Event::Lease {
                sent_ms,
                until_ms,
                now_ms,
            } => {
                if self.status == Status::Primary
                    && self.lease_until_ms <= sent_ms.max(now_ms)
                    && !self.opts.planted_ignore_lease
                {
                    // The lease lapsed before this beacon was sent, or before this
                    // acknowledgement arrived: meta may have chosen another primary
                    // meanwhile. Step down before taking a new lease.
                    self.status = Status::Inactive;
                    self.abort_writes(&mut out);
                }
                self.lease_until_ms = self.lease_until_ms.max(until_ms);
            }
            Event::LearnStateReady {
                learner,
                signature,
                checkpoint,
                mutations,
            } => {
                self.on_learn_state_ready(learner, signature, checkpoint, mutations, &mut out);
            }
            Event::CheckpointInstalled { decree } => self.on_checkpoint_installed(decree, &mut out),
            Event::LocalError => self.fail(&mut out),
            Event::LogFull => self.on_log_full(&mut out),
        }
        out
    }

    fn on_log_full(&self, out: &mut Vec<Action>) {
        if !matches!(self.status, Status::Secondary | Status::PotentialSecondary) {
            return;
        }
        let Some(primary) = self.config.primary.filter(|p| *p != self.me) else {
            return;
        };
        out.push(Action::Send {
            to: primary,
            msg: PeerMessage::PrepareAck {
                ballot: self.config.ballot,
                decree: self.committed.saturating_add(1),
                ok: false,
            },
        });
    }

    fn fail(&mut self, out: &mut Vec<Action>) {
        if self.status == Status::Primary {
            // Meta must hear it from us: remove ourselves.
            let mut next = self.config.clone();
            next.primary = None;
            next.ballot = next.ballot.saturating_add(1);
            out.push(Action::RequestConfig {
                kind: ConfigType::DowngradeToInactive,
                node: self.me,
                config: next,
            });
        }
        self.abort_writes(out);
        self.status = Status::Error;
    }

    fn abort_writes(&mut self, out: &mut Vec<Action>) {
        let mut clients: Vec<u64> = self.queue.drain(..).map(|(id, _)| id).collect();
        for p in self.pending.values_mut() {
            clients.append(&mut p.clients);
        }
        self.pending.clear();
        if !clients.is_empty() {
            out.push(Action::Refuse {
                clients,
                reason: Refusal::Aborted,
            });
        }
    }

    // ---------------------------------------------------------------- time

    fn on_tick(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        self.now_ms = self.now_ms.max(now_ms);
        let now = self.now_ms;
        if self.status == Status::Primary
            && now >= self.lease_until_ms
            && !self.opts.planted_ignore_lease
        {
            // Lost touch with meta: meta may already have chosen another primary.
            self.status = Status::Inactive;
            self.abort_writes(out);
        }
        if let Some((kind, node, config, sent)) = self.config_request.clone() {
            if now.saturating_sub(sent) >= self.opts.meta_retry_ms {
                out.push(Action::RequestConfig {
                    kind,
                    node,
                    config: config.clone(),
                });
                self.config_request = Some((kind, node, config, now));
            }
        }
        if self.status != Status::Primary {
            return;
        }
        // Prepares not acknowledged in time: the laggard is reported dead.
        let late: BTreeSet<NodeId> = self
            .pending
            .values()
            .filter(|p| now.saturating_sub(p.sent_ms) >= self.opts.prepare_timeout_ms)
            .flat_map(|p| p.acks.iter().copied())
            .collect();
        let late_checks: Vec<NodeId> = self
            .group_check_waiting
            .iter()
            .filter(|(_, t)| now.saturating_sub(**t) >= self.opts.prepare_timeout_ms)
            .map(|(n, _)| *n)
            .collect();
        for node in late.into_iter().chain(late_checks) {
            self.remote_failure(node, out);
        }
        if now.saturating_sub(self.last_group_check_ms) >= self.opts.group_check_interval_ms {
            self.last_group_check_ms = now;
            let targets: Vec<NodeId> = self
                .config
                .secondaries
                .iter()
                .chain(self.learners.keys())
                .copied()
                .collect();
            for to in targets {
                self.group_check_waiting.entry(to).or_insert(now);
                out.push(Action::Send {
                    to,
                    msg: PeerMessage::GroupCheck {
                        config: self.config.clone(),
                        last_committed: self.committed,
                    },
                });
            }
        }
        self.propose(out);
    }

    /// A member failed to answer: ask meta to remove it (a learner is just dropped).
    fn remote_failure(&mut self, node: NodeId, out: &mut Vec<Action>) {
        self.group_check_waiting.remove(&node);
        if self
            .config_request
            .as_ref()
            .is_some_and(|r| r.0 == ConfigType::UpgradeToSecondary && r.1 == node)
        {
            // Its upgrade is in flight: dropping it from the acknowledgements now would let
            // decrees commit that it never gets once meta makes it a secondary.
            return;
        }
        if self.learners.remove(&node).is_some() {
            for p in self.pending.values_mut() {
                p.acks.remove(&node);
            }
            self.try_commit(out);
            return;
        }
        if self.config.secondaries.contains(&node) && self.config_request.is_none() {
            let mut next = self.config.clone();
            next.secondaries.retain(|n| *n != node);
            next.ballot = next.ballot.saturating_add(1);
            self.request_config(ConfigType::DowngradeToInactive, node, next, out);
        }
    }

    fn request_config(
        &mut self,
        kind: ConfigType,
        node: NodeId,
        config: PartitionConfig,
        out: &mut Vec<Action>,
    ) {
        out.push(Action::RequestConfig {
            kind,
            node,
            config: config.clone(),
        });
        self.config_request = Some((kind, node, config, self.now_ms));
    }

    // ---------------------------------------------------------------- writes (primary)

    fn on_client_writes(&mut self, writes: Vec<(u64, Bytes)>, out: &mut Vec<Action>) {
        if writes.is_empty() {
            return;
        }
        let refusal = if self.status != Status::Primary {
            Some(Refusal::NotPrimary)
        } else if self.config.secondaries.len().saturating_add(1) < self.opts.min_2pc_replicas {
            Some(Refusal::NotEnoughMembers)
        } else {
            None
        };
        if let Some(reason) = refusal {
            out.push(Action::Refuse {
                clients: writes.into_iter().map(|(id, _)| id).collect(),
                reason,
            });
            return;
        }
        self.queue.extend(writes);
        self.propose(out);
    }

    /// Turns queued writes into mutations while the 2PC window has room.
    fn propose(&mut self, out: &mut Vec<Action>) {
        // No stamp before the first tick brought the wall clock: writes wait in the queue.
        while self.status == Status::Primary
            && self.wall_us > 0
            && !self.queue.is_empty()
            && self.last_prepared().saturating_sub(self.committed) < self.opts.staleness_for_commit
        {
            let n = self.queue.len().min(self.opts.max_batch);
            let (clients, updates): (Vec<u64>, Vec<Bytes>) = self.queue.drain(..n).unzip();
            let decree = self.last_prepared().saturating_add(1);
            let m = Mutation {
                ballot: self.config.ballot,
                decree,
                last_committed: self.committed,
                timestamp_us: self.stamp(),
                updates,
            };
            self.start_2pc(m, clients, out);
        }
    }

    /// Records `m` as this decree's mutation and asks the runtime to log it.
    fn append(&mut self, m: Mutation, out: &mut Vec<Action>) {
        self.data_ballot = self.data_ballot.max(m.ballot);
        self.last_timestamp_us = self.last_timestamp_us.max(m.timestamp_us);
        self.appended = self.appended.saturating_add(1);
        self.unflushed
            .push_back((self.appended, m.decree, m.ballot));
        self.logged.remove(&m.decree);
        out.push(Action::AppendLog(m.clone()));
        self.log.insert(m.decree, m);
    }

    fn start_2pc(&mut self, m: Mutation, clients: Vec<u64>, out: &mut Vec<Action>) {
        let decree = m.decree;
        let mut acks: BTreeSet<NodeId> = self.config.secondaries.iter().copied().collect();
        for (node, l) in &self.learners {
            if l.prepare_start.is_some_and(|s| decree >= s) {
                acks.insert(*node);
            }
        }
        for to in &acks {
            out.push(Action::Send {
                to: *to,
                msg: PeerMessage::Prepare {
                    config: self.config.clone(),
                    mutation: m.clone(),
                },
            });
        }
        self.pending.insert(
            decree,
            Pending {
                acks,
                sent_ms: self.now_ms,
                clients,
            },
        );
        self.append(m, out);
    }

    fn on_prepare_ack(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        decree: Decree,
        ok: bool,
        out: &mut Vec<Action>,
    ) {
        if self.status != Status::Primary {
            return;
        }
        if ballot > self.config.ballot {
            // Someone moved on: we are not the primary of the latest configuration.
            self.status = Status::Inactive;
            self.abort_writes(out);
            return;
        }
        if !ok {
            self.remote_failure(from, out);
            return;
        }
        if ballot != self.config.ballot {
            // An acknowledgement of an older proposal of this decree: not ours.
            return;
        }
        if let Some(p) = self.pending.get_mut(&decree) {
            p.acks.remove(&from);
        }
        self.try_commit(out);
    }

    /// Commits, in order, every decree that is logged and fully acknowledged.
    fn try_commit(&mut self, out: &mut Vec<Action>) {
        loop {
            let next = self.committed.saturating_add(1);
            let ready = match self.status {
                Status::Primary => {
                    // Nothing commits on fewer copies than the 2PC minimum: a lone primary
                    // waits for a secondary (and re-proposes to it) before committing.
                    self.config.secondaries.len().saturating_add(1) >= self.opts.min_2pc_replicas
                        && self.logged.contains(&next)
                        && self.pending.get(&next).is_some_and(|p| p.acks.is_empty())
                }
                _ => false,
            };
            if !ready {
                break;
            }
            let clients = self
                .pending
                .remove(&next)
                .map(|p| p.clients)
                .unwrap_or_default();
            self.commit_one(next, clients, out);
        }
        self.propose(out);
    }

    fn commit_one(&mut self, decree: Decree, clients: Vec<u64>, out: &mut Vec<Action>) {
        if let Some(m) = self.log.get(&decree) {
            out.push(Action::Commit {
                mutation: m.clone(),
                clients,
            });
            self.committed_timestamp_us = m.timestamp_us;
            self.committed = decree;
            self.logged.remove(&decree);
        }
        // Keep a bounded cache of committed mutations for learners.
        let keep_from = self
            .committed
            .saturating_sub(i64::try_from(self.opts.cache_committed).unwrap_or(i64::MAX));
        while let Some((&d, _)) = self.log.first_key_value() {
            if d > keep_from {
                break;
            }
            self.log.remove(&d);
        }
    }

    /// Secondary / learner: commit logged mutations up to the primary's committed decree.
    fn commit_to(&mut self, target: Decree, out: &mut Vec<Action>) {
        if self.installing {
            // Storage is being replaced by a checkpoint: applying to the old store now would
            // move `committed` past the checkpoint. Commit once it is installed.
            self.deferred_commit = self.deferred_commit.max(target);
            return;
        }
        while self.committed < target && self.logged.contains(&(self.committed.saturating_add(1))) {
            self.commit_one(self.committed.saturating_add(1), Vec::new(), out);
        }
    }

    fn on_log_flushed(&mut self, appended: u64, out: &mut Vec<Action>) {
        let mut newly = Vec::new();
        while let Some(&(seq, decree, ballot)) = self.unflushed.front() {
            if seq > appended {
                break;
            }
            self.unflushed.pop_front();
            // Only the mutation currently held for the decree counts as logged.
            if decree > self.committed
                && self.log.get(&decree).is_some_and(|m| m.ballot == ballot)
                && self.logged.insert(decree)
            {
                newly.push(decree);
            }
        }
        match self.status {
            Status::Primary => self.try_commit(out),
            Status::Secondary | Status::PotentialSecondary => {
                // Acknowledge every prepare that just became durable.
                // Only entries proposed under the current ballot are acknowledged, with that
                // ballot: an older primary's entry logged late must never count as an
                // acknowledgement of a newer primary's different mutation at the same decree.
                if let Some(primary) = self.config.primary {
                    for d in newly {
                        let Some(ballot) = self.log.get(&d).map(|m| m.ballot) else {
                            continue;
                        };
                        if ballot == self.config.ballot {
                            out.push(Action::Send {
                                to: primary,
                                msg: PeerMessage::PrepareAck {
                                    ballot,
                                    decree: d,
                                    ok: true,
                                },
                            });
                        }
                    }
                }
                // A learner commits nothing before the primary's learn response has replaced
                // whatever stale entries it still holds from an earlier life.
                let may_commit = self.status == Status::Secondary
                    || self.learning.is_some_and(|l| l.target.is_some());
                if may_commit {
                    // Only mutations above the committed decree can move it: one at or
                    // below carries a commit point below itself. (Scanning the whole
                    // cache of committed mutations here cost a tenth of the simulator's
                    // CPU, and as much per flush on a server's secondaries.)
                    let piggybacked = self
                        .log
                        .range(self.committed.saturating_add(1)..)
                        .map(|(_, m)| m.last_committed)
                        .max()
                        .unwrap_or(0);
                    let learned = self.learning.and_then(|l| l.target).unwrap_or(0);
                    self.commit_to(piggybacked.max(learned), out);
                }
                self.maybe_finish_learning(out);
            }
            _ => {}
        }
    }

    // ---------------------------------------------------------------- messages

    fn on_message(&mut self, from: NodeId, msg: PeerMessage, out: &mut Vec<Action>) {
        match msg {
            PeerMessage::Prepare { config, mutation } => {
                self.on_prepare(from, config, mutation, out)
            }
            PeerMessage::PrepareAck { ballot, decree, ok } => {
                self.on_prepare_ack(from, ballot, decree, ok, out)
            }
            PeerMessage::GroupCheck {
                config,
                last_committed,
            } => self.on_group_check(from, config, last_committed, out),
            PeerMessage::GroupCheckAck { ballot, ok } => {
                self.group_check_waiting.remove(&from);
                if self.status == Status::Primary && (!ok || ballot > self.config.ballot) {
                    if ballot > self.config.ballot {
                        self.status = Status::Inactive;
                        self.abort_writes(out);
                    } else {
                        self.remote_failure(from, out);
                    }
                }
            }
            PeerMessage::AddLearner { config, signature } => {
                self.on_add_learner(from, config, signature, out)
            }
            PeerMessage::Learn {
                signature,
                last_committed,
            } => self.on_learn(from, signature, last_committed, out),
            PeerMessage::LearnResponse(r) => self.on_learn_response(from, r, out),
            PeerMessage::LearnCompleted { signature } => {
                if self.status == Status::Primary
                    && self
                        .learners
                        .get(&from)
                        .is_some_and(|l| l.signature == signature)
                    && self.config_request.is_none()
                {
                    let mut next = self.config.clone();
                    next.secondaries.push(from);
                    next.ballot = next.ballot.saturating_add(1);
                    self.request_config(ConfigType::UpgradeToSecondary, from, next, out);
                }
            }
        }
    }

    /// Adopts a newer configuration carried by a primary's message. Returns false if the
    /// message is stale.
    fn adopt(&mut self, config: &PartitionConfig, out: &mut Vec<Action>) -> bool {
        if config.ballot < self.config.ballot {
            return false;
        }
        if config.ballot > self.config.ballot {
            self.on_config(config.clone(), out);
        }
        true
    }

    fn on_prepare(
        &mut self,
        from: NodeId,
        config: PartitionConfig,
        m: Mutation,
        out: &mut Vec<Action>,
    ) {
        let nack = |me: &Self| Action::Send {
            to: from,
            msg: PeerMessage::PrepareAck {
                ballot: me.config.ballot,
                decree: m.decree,
                ok: false,
            },
        };
        if !self.adopt(&config, out) || config.primary != Some(from) || m.ballot != config.ballot {
            out.push(nack(self));
            return;
        }
        let learning_ok = self.status == Status::PotentialSecondary && self.learning.is_some();
        if self.status != Status::Secondary && !learning_ok {
            out.push(nack(self));
            return;
        }
        if m.decree <= self.committed {
            out.push(Action::Send {
                to: from,
                msg: PeerMessage::PrepareAck {
                    ballot: self.config.ballot,
                    decree: m.decree,
                    ok: true,
                },
            });
            return;
        }
        // A secondary is never further behind than the primary's 2PC window plus the
        // commits it has not heard of yet; a learner's log runs contiguously to the primary's
        // once its learn response is in. A prepare further out would leave a gap of holes
        // that a new primary fills one by one: refuse it (`ERR_CAPACITY_EXCEEDED` in
        // Pegasus), and the primary has this replica removed and re-learned.
        let base = if self.status == Status::Secondary {
            self.committed
        } else {
            self.last_prepared()
        };
        if m.decree > base.saturating_add(self.opts.max_prepare_gap) {
            out.push(nack(self));
            return;
        }
        match self.log.get(&m.decree) {
            Some(old) if old == &m => {
                // A resend: acknowledge once it is logged.
                if self.logged.contains(&m.decree) {
                    out.push(Action::Send {
                        to: from,
                        msg: PeerMessage::PrepareAck {
                            ballot: self.config.ballot,
                            decree: m.decree,
                            ok: true,
                        },
                    });
                }
            }
            Some(old) if old.ballot == m.ballot => {
                // Two different mutations for one decree under one ballot: impossible unless
                // something is broken. Stop this replica rather than guess.
                self.fail(out);
            }
            _ => self.append(m, out),
        }
    }

    fn on_group_check(
        &mut self,
        from: NodeId,
        config: PartitionConfig,
        last_committed: Decree,
        out: &mut Vec<Action>,
    ) {
        if !self.adopt(&config, out) || config.primary != Some(from) {
            out.push(Action::Send {
                to: from,
                msg: PeerMessage::GroupCheckAck {
                    ballot: self.config.ballot,
                    ok: false,
                },
            });
            return;
        }
        let mut ok = matches!(self.status, Status::Secondary | Status::PotentialSecondary);
        if self.status == Status::Secondary {
            self.commit_to(last_committed, out);
            if last_committed > self.committed
                && !self.logged.contains(&(self.committed.saturating_add(1)))
            {
                // A gap: the primary committed a decree we never got. We cannot catch up by
                // prepares; be removed and re-learn.
                ok = false;
            }
        }
        out.push(Action::Send {
            to: from,
            msg: PeerMessage::GroupCheckAck {
                ballot: self.config.ballot,
                ok,
            },
        });
    }

    // ---------------------------------------------------------------- configuration

    fn on_config(&mut self, config: PartitionConfig, out: &mut Vec<Action>) {
        if config.ballot < self.config.ballot {
            return;
        }
        let was = self.status;
        let same_ballot = config.ballot == self.config.ballot;
        if same_ballot && was != Status::Inactive {
            return;
        }
        // Did we ask for exactly this (e.g. to become primary)?
        let requested = self
            .config_request
            .as_ref()
            .is_some_and(|r| r.2.ballot == config.ballot && r.2.primary == config.primary);
        self.config = config;
        if self
            .config_request
            .as_ref()
            .is_some_and(|r| r.2.ballot <= self.config.ballot)
        {
            self.config_request = None;
        }
        if self.config.primary == Some(self.me) {
            if was == Status::Primary && same_ballot {
                return;
            }
            if requested || was == Status::Primary {
                self.status = Status::Primary;
                self.fresh = false;
                self.become_primary(out);
            } else if (self.fresh || self.torn_tail) && self.config.ballot > 0 {
                // Listed as primary but holding nothing (rebuilt empty), or perhaps not all
                // we acknowledged (torn log tail): have meta remove us.
                self.status = Status::Inactive;
                let mut next = self.config.clone();
                next.primary = None;
                next.ballot = next.ballot.saturating_add(1);
                self.request_config(ConfigType::DowngradeToInactive, self.me, next, out);
            } else {
                // Meta still lists us as primary from before a restart: our log may lack what
                // we proposed then, so serve only under a new ballot.
                self.status = Status::Inactive;
                let mut next = self.config.clone();
                next.ballot = next.ballot.saturating_add(1);
                self.request_config(ConfigType::PrimaryForceUpdateBallot, self.me, next, out);
            }
        } else if self.config.secondaries.contains(&self.me) {
            // Only a replica that followed the group (or finished learning) may act as a
            // secondary; one that restarted or fell behind must learn again first: until
            // then it answers group checks negatively and the primary has it removed.
            let caught_up = matches!(was, Status::Primary | Status::Secondary)
                || (was == Status::PotentialSecondary && self.learning.is_some_and(|l| l.notified));
            if was == Status::Primary {
                self.abort_writes(out);
            }
            if caught_up {
                self.status = Status::Secondary;
                self.learning = None;
                self.fresh = false;
            } else {
                self.status = Status::Inactive;
            }
        } else if was == Status::PotentialSecondary && self.config.primary.is_some() {
            // Still learning under a newer configuration (a learner is not a member).
        } else {
            if was == Status::Primary {
                self.abort_writes(out);
            }
            self.status = Status::Inactive;
        }
    }

    /// PacificA reconciliation: re-propose every uncommitted decree with our ballot.
    fn become_primary(&mut self, out: &mut Vec<Action>) {
        // Writes this node proposed under its previous ballot keep their clients: they are
        // re-proposed below and answered when they commit.
        let mut waiting: BTreeMap<Decree, Vec<u64>> = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|(d, p)| (d, p.clients))
            .collect();
        self.learners.clear();
        self.group_check_waiting.clear();
        // Learning signatures start afresh for every primary term and embed its ballot: a
        // restarted primary must never reuse a signature a learner remembers as finished.
        self.next_signature = u64::try_from(self.config.ballot)
            .unwrap_or(0)
            .wrapping_shl(32)
            | 1;
        let last = self.last_prepared();
        if last.saturating_sub(self.committed) > self.opts.max_prepare_gap {
            // More uncommitted decrees than any primary lets into 2PC: this state did not
            // come from a correct group. Filling the holes would be unbounded work.
            tracing::error!(
                "replica {:?}: {} uncommitted decrees after {}: refusing to lead",
                self.config.gpid,
                last.saturating_sub(self.committed),
                self.committed
            );
            self.fail(out);
            return;
        }
        self.read_barrier = last;
        self.last_group_check_ms = 0;
        // Fuzz finding (`replica_events`): a hole is stamped now, above every timestamp held,
        // so a held mutation after it that kept its older stamp made timestamps go back along
        // the decrees — and storage compacts expired records at the last applied timestamp,
        // relying on it never going back. Every decree from the first hole on is uncommitted
        // everywhere (committing it needs this replica's acknowledgement of it and of every
        // decree before it), so those are stamped anew too.
        // The same holds for a held mutation stamped below one before it: a secondary keeps
        // an old primary's entries past what a newer primary re-proposed to it (sim seed 95:
        // decree 61 restamped by one primary, 62 still held from an older one). Such an
        // entry is uncommitted everywhere too (the committed prefix is stamped in order).
        // Fuzz finding (`replica_events`): so is one stamped *equal* to the one before it
        // (stamps strictly increase); re-proposed as is, two decrees committed with one
        // timestamp.
        let mut restamp = false;
        let mut floor = self.committed_timestamp_us;
        for decree in (self.committed.saturating_add(1))..=last {
            if self
                .log
                .get(&decree)
                .is_some_and(|m| m.timestamp_us <= floor)
            {
                restamp = true;
            }
            let m = match self.log.get(&decree).cloned() {
                Some(m) if !restamp => Mutation {
                    ballot: self.config.ballot,
                    last_committed: self.committed,
                    ..m
                },
                Some(m) => Mutation {
                    ballot: self.config.ballot,
                    last_committed: self.committed,
                    timestamp_us: self.stamp(),
                    ..m
                },
                None => {
                    restamp = true;
                    let ts = self.stamp();
                    Mutation::empty(self.config.ballot, decree, self.committed, ts)
                }
            };
            floor = floor.max(m.timestamp_us);
            // Re-logged under the new ballot: commit waits for the local log again.
            let clients = waiting.remove(&decree).unwrap_or_default();
            self.start_2pc(m, clients, out);
        }
        let orphans: Vec<u64> = waiting.into_values().flatten().collect();
        if !orphans.is_empty() {
            out.push(Action::Refuse {
                clients: orphans,
                reason: Refusal::Aborted,
            });
        }
        self.try_commit(out);
    }

    fn on_proposal(&mut self, kind: ConfigType, node: NodeId, out: &mut Vec<Action>) {
        if self.config_request.is_some() {
            return;
        }
        let mut next = self.config.clone();
        next.ballot = next.ballot.saturating_add(1);
        match kind {
            ConfigType::AssignPrimary | ConfigType::UpgradeToPrimary if node == self.me => {
                if self.config.primary.is_some() || (self.fresh && self.config.ballot > 0) {
                    return;
                }
                next.secondaries.retain(|n| *n != node);
                next.primary = Some(node);
                next.last_committed_decree = self.committed;
                self.request_config(kind, node, next, out);
            }
            ConfigType::AddSecondary if self.status == Status::Primary => {
                if self.config.is_member(node) {
                    return;
                }
                // Meta repeats its proposal until the node is a member: keep the round that
                // is already running (re-inviting in case the invitation was lost).
                let signature = match self.learners.get(&node) {
                    Some(l) => l.signature,
                    None => {
                        let signature = self.next_signature;
                        self.next_signature = self.next_signature.wrapping_add(1);
                        self.learners.insert(
                            node,
                            Learner {
                                signature,
                                prepare_start: None,
                            },
                        );
                        signature
                    }
                };
                out.push(Action::Send {
                    to: node,
                    msg: PeerMessage::AddLearner {
                        config: self.config.clone(),
                        signature,
                    },
                });
            }
            // Meta moves the role away (this node's disk is short of space): step down to a
            // secondary; meta then promotes a secondary with room, which reconciles as after
            // any primary change.
            ConfigType::DowngradeToSecondary
                if node == self.me && self.status == Status::Primary =>
            {
                next.primary = None;
                next.secondaries.push(node);
                next.last_committed_decree = self.committed;
                self.request_config(kind, node, next, out);
            }
            ConfigType::Remove | ConfigType::DowngradeToInactive
                if self.status == Status::Primary =>
            {
                if !self.config.secondaries.contains(&node) {
                    return;
                }
                next.secondaries.retain(|n| *n != node);
                self.request_config(kind, node, next, out);
            }
            _ => {}
        }
    }

    // ---------------------------------------------------------------- learning

    fn on_add_learner(
        &mut self,
        from: NodeId,
        config: PartitionConfig,
        signature: u64,
        out: &mut Vec<Action>,
    ) {
        if config.ballot < self.config.ballot
            || config.primary != Some(from)
            || config.is_member(self.me)
        {
            return;
        }
        let same_round = self.status == Status::PotentialSecondary
            && self
                .learning
                .is_some_and(|l| l.signature == signature && l.primary == from);
        if same_round && self.learning.is_some_and(|l| l.target.is_some()) {
            // A repeated invitation for a round already answered: if we finished, the primary
            // may have lost our completion (or meta refused the upgrade): say it again.
            if self.learning.is_some_and(|l| l.notified) {
                out.push(Action::Send {
                    to: from,
                    msg: PeerMessage::LearnCompleted { signature },
                });
            }
            return;
        }
        self.config = config;
        self.status = Status::PotentialSecondary;
        self.learning = Some(Learning {
            signature,
            primary: from,
            target: None,
            notified: false,
        });
        out.push(Action::Send {
            to: from,
            msg: PeerMessage::Learn {
                signature,
                last_committed: self.committed,
            },
        });
    }

    /// Whether we are primary and `signature` is the round we run with `learner`.
    fn is_current_learning_round(&self, learner: NodeId, signature: u64) -> bool {
        self.status == Status::Primary
            && self
                .learners
                .get(&learner)
                .is_some_and(|l| l.signature == signature)
    }

    fn on_learn(
        &mut self,
        from: NodeId,
        signature: u64,
        learner_committed: Decree,
        out: &mut Vec<Action>,
    ) {
        if !self.is_current_learning_round(from, signature) {
            return;
        }
        let retry = |me: &Self| Action::Send {
            to: from,
            msg: PeerMessage::LearnResponse(LearnResponse {
                signature,
                config: me.config.clone(),
                checkpoint: None,
                mutations: Vec::new(),
                committed: me.committed,
                retry: true,
            }),
        };
        if learner_committed > self.last_prepared() {
            // The learner committed decrees we do not even hold: we cannot be a correct
            // primary for it yet. (PacificA guarantees a new primary holds every committed
            // decree prepared, so this only happens transiently.)
            out.push(retry(self));
            return;
        }
        // A returning stale primary may have committed more than we have so far (case 603):
        // those decrees are in our prepared list with the same content, so it can join; it
        // acknowledges our re-proposals of them at once.
        let from_decree = learner_committed.saturating_add(1);
        let cache_min = self.log.keys().next().copied();
        if cache_min.is_some_and(|m| m <= from_decree) || from_decree > self.last_prepared() {
            self.send_learn_response(from, signature, None, Vec::new(), out);
        } else {
            out.push(Action::BuildLearnState {
                learner: from,
                signature,
                from: from_decree,
            });
        }
    }

    fn on_learn_state_ready(
        &mut self,
        learner: NodeId,
        signature: u64,
        checkpoint: Option<Checkpoint>,
        mutations: Vec<Mutation>,
        out: &mut Vec<Action>,
    ) {
        if !self.is_current_learning_round(learner, signature) {
            return;
        }
        self.send_learn_response(learner, signature, checkpoint, mutations, out);
    }

    /// Sends the learner everything from the checkpoint (or its own state) through our last
    /// prepared decree; from then on it receives every prepare.
    fn send_learn_response(
        &mut self,
        learner: NodeId,
        signature: u64,
        checkpoint: Option<Checkpoint>,
        logged: Vec<Mutation>,
        out: &mut Vec<Action>,
    ) {
        let mut all: BTreeMap<Decree, Mutation> =
            logged.into_iter().map(|m| (m.decree, m)).collect();
        for (d, m) in &self.log {
            let keep = all.get(d).is_none_or(|old| old.ballot <= m.ballot);
            if keep {
                all.insert(*d, m.clone());
            }
        }
        let start = checkpoint.as_ref().map_or(0, |c| c.decree);
        let mutations: Vec<Mutation> = all.into_values().filter(|m| m.decree > start).collect();
        let prepare_start = self.last_prepared().saturating_add(1);
        if let Some(l) = self.learners.get_mut(&learner) {
            l.prepare_start = Some(prepare_start);
        }
        out.push(Action::Send {
            to: learner,
            msg: PeerMessage::LearnResponse(LearnResponse {
                signature,
                config: self.config.clone(),
                checkpoint,
                mutations,
                committed: self.committed,
                retry: false,
            }),
        });
    }

    fn on_learn_response(&mut self, from: NodeId, r: LearnResponse, out: &mut Vec<Action>) {
        let LearnResponse {
            signature,
            config,
            checkpoint,
            mutations,
            committed,
            retry,
        } = r;
        if self.status != Status::PotentialSecondary
            || self
                .learning
                .is_none_or(|l| l.signature != signature || l.primary != from)
        {
            return;
        }
        if self.learning.is_some_and(|l| l.target.is_some()) {
            // A duplicate of a response already applied.
            return;
        }
        let limit = committed.saturating_add(self.opts.max_prepare_gap);
        if mutations.iter().any(|m| m.decree > limit)
            || checkpoint.as_ref().is_some_and(|c| c.decree > committed)
        {
            // No primary holds prepared decrees that far past its committed one, nor a
            // checkpoint past it.
            return;
        }
        // Fuzz finding (`replica_events`): a checkpoint at or behind what this learner already
        // committed (an answer to an older `Learn`, or an earlier round's install finished
        // meanwhile) moved `committed` back: storage replaced by an older state, decrees
        // applied twice. It holds nothing the learner lacks; the mutations after the
        // learner's committed decree still apply.
        let checkpoint = checkpoint.filter(|c| c.decree > self.committed);
        if config.ballot > self.config.ballot {
            self.config = config;
        }
        if retry {
            out.push(Action::Send {
                to: from,
                msg: PeerMessage::Learn {
                    signature,
                    last_committed: self.committed,
                },
            });
            return;
        }
        self.learning = Some(Learning {
            signature,
            primary: from,
            target: Some(committed),
            notified: false,
        });
        if let Some(cp) = checkpoint {
            // Storage is replaced up to the checkpoint. Entries after it stay: prepares the
            // primary sent us from our start decree may have arrived (and been acknowledged)
            // before this response; the mutations below overwrite any stale ones.
            self.log.retain(|d, _| *d > cp.decree);
            self.logged.retain(|d| *d > cp.decree);
            self.committed = cp.decree;
            self.observe_timestamp(cp.timestamp_us);
            self.installing = true;
            out.push(Action::InstallCheckpoint(cp));
        }
        for m in mutations {
            if m.decree <= self.committed {
                continue;
            }
            let newer = self
                .log
                .get(&m.decree)
                .is_none_or(|old| old.ballot < m.ballot || (old.ballot == m.ballot && old != &m));
            if newer {
                self.append(m, out);
            }
        }
        self.commit_to(committed, out);
        self.maybe_finish_learning(out);
    }

    fn on_checkpoint_installed(&mut self, decree: Decree, out: &mut Vec<Action>) {
        if self.installing && decree == self.committed {
            self.installing = false;
            let target = std::mem::take(&mut self.deferred_commit);
            self.commit_to(target, out);
            self.maybe_finish_learning(out);
        }
    }

    fn maybe_finish_learning(&mut self, out: &mut Vec<Action>) {
        let Some(l) = self.learning else {
            return;
        };
        let Some(target) = l.target else {
            return;
        };
        if self.status == Status::PotentialSecondary
            && !l.notified
            && !self.installing
            && self.committed >= target
        {
            out.push(Action::Send {
                to: l.primary,
                msg: PeerMessage::LearnCompleted {
                    signature: l.signature,
                },
            });
            self.learning = Some(Learning {
                notified: true,
                ..l
            });
        }
    }
}

fn ballot_in_range(b: Ballot) -> bool {
    (0..=MAX_BALLOT).contains(&b)
}

fn decree_in_range(d: Decree) -> bool {
    (0..=MAX_DECREE).contains(&d)
}

fn config_in_range(c: &PartitionConfig) -> bool {
    ballot_in_range(c.ballot) && decree_in_range(c.last_committed_decree)
}

fn mutation_in_range(m: &Mutation) -> bool {
    ballot_in_range(m.ballot)
        && m.decree >= 1
        && decree_in_range(m.decree)
        && decree_in_range(m.last_committed)
        && m.timestamp_us <= MAX_TIMESTAMP_US
}

fn checkpoint_in_range(c: &Checkpoint) -> bool {
    decree_in_range(c.decree) && c.timestamp_us <= MAX_TIMESTAMP_US
}

/// Whether every ballot and decree an event carries is one a correct group can produce.
fn event_in_range(event: &Event) -> bool {
    match event {
        Event::Message { msg, .. } => match msg {
            PeerMessage::Prepare { config, mutation } => {
                config_in_range(config) && mutation_in_range(mutation)
            }
            PeerMessage::PrepareAck { ballot, decree, .. } => {
                ballot_in_range(*ballot) && decree_in_range(*decree)
            }
            PeerMessage::GroupCheck {
                config,
                last_committed,
            } => config_in_range(config) && decree_in_range(*last_committed),
            PeerMessage::GroupCheckAck { ballot, .. } => ballot_in_range(*ballot),
            PeerMessage::AddLearner { config, .. } => config_in_range(config),
            PeerMessage::Learn { last_committed, .. } => decree_in_range(*last_committed),
            PeerMessage::LearnResponse(r) => {
                config_in_range(&r.config)
                    && decree_in_range(r.committed)
                    && r.checkpoint.as_ref().is_none_or(checkpoint_in_range)
                    && r.mutations.iter().all(mutation_in_range)
            }
            PeerMessage::LearnCompleted { .. } => true,
        },
        Event::Config(config) => config_in_range(config),
        Event::LearnStateReady {
            checkpoint,
            mutations,
            ..
        } => {
            checkpoint.as_ref().is_none_or(checkpoint_in_range)
                && mutations.iter().all(mutation_in_range)
        }
        Event::CheckpointInstalled { decree } => decree_in_range(*decree),
        Event::Tick { .. }
        | Event::ClientWrite { .. }
        | Event::ClientWrites(_)
        | Event::LogFlushed { .. }
        | Event::Proposal { .. }
        | Event::ConfigRejected
        | Event::Lease { .. }
        | Event::LocalError
        | Event::LogFull => true,
    }
}

#[cfg(test)]
mod tests;
