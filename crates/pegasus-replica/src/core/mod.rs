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
//!
//! Modules: `messages` (events, actions, peer messages, range checks), `writes` (the write
//! path on the primary, commits on every member), `peers` (prepares and group checks on a
//! secondary), `reconfig` (configurations, takeover, proposals), `learning`, `timers`
//! (lease, timeouts, group checks), `lease` (the node's read lease and its epochs); this file holds the state, its accessors and the event
//! dispatch.

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
    /// The last decree the response carried: the primary sends no prepare at or below it
    /// to this learner, and may commit it without the learner's acknowledgement, so the
    /// learner reports completion only once everything through it is durable.
    learned_through: Decree,
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
    /// The node lease's epoch and deadline as last taken (see [`NodeLease`]).
    lease_epoch: u64,
    lease_until_ms: u64,
    last_group_check_ms: u64,
    /// The (ballot, committed decree) the last group check carried: while they are
    /// unchanged and every member acknowledged it, the primary is quiet.
    settled_check: Option<(Ballot, Decree)>,
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
    /// What the log's replay read, per ballot: the largest commit point (used once, at
    /// open).
    recovered_commit_points: BTreeMap<Ballot, Decree>,
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
            lease_epoch: 0,
            lease_until_ms: 0,
            last_group_check_ms: 0,
            settled_check: None,
            group_check_waiting: BTreeMap::new(),
            config_request: None,
            learning: None,
            installing: false,
            deferred_commit: 0,
            fresh: false,
            torn_tail: false,
            recovered_commit_points: BTreeMap::new(),
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

    /// Notes what the log's replay read: per ballot, the largest commit point a record of
    /// that ballot carried ([`crate::log::ReplayReport::commit_points`]), for
    /// [`Replica::catch_up_from_log`].
    pub fn note_commit_points(&mut self, points: BTreeMap<Ballot, Decree>) {
        self.recovered_commit_points = points;
    }

    /// Commits, from its own log, what the log vouches was committed: the contiguous logged
    /// decrees above what storage holds, each while the log held a mutation of the same
    /// ballot as the decree's entry, or a lower one, whose commit point reaches it
    /// (per ballot, the largest commit point of any record the log read, superseded ones
    /// included: [`Replica::note_commit_points`]). A proposer commits a decree only once every member
    /// logged that very mutation, and a later primary keeps a committed decree's content,
    /// so the entry is the committed content; a voucher of a *higher* ballot proves
    /// nothing about an older entry, which may be a proposal that never committed (found by
    /// the simulator, `--node-log --power-loss` seed 115: a copy held decree 51 from ballot
    /// 3, and only a ballot-5 mutation said 51 was committed — as ballot 5 wrote it).
    ///
    /// A restarted replica whose store lost unflushed writes (RocksDB runs without its
    /// WAL) thus applies them again at open instead of carrying them as uncommitted:
    /// thousands after a busy minute, more than a new primary may re-propose
    /// (`max_prepare_gap`), which made every copy of a partition refuse to lead after a
    /// whole-cluster crash (found by `pegasus chaos --node-log --nemesis kill-all`).
    pub fn catch_up_from_log(&mut self) -> Vec<Action> {
        // The best commit point vouched for by mutations of each ballot or lower.
        let mut by_ballot = std::mem::take(&mut self.recovered_commit_points);
        for m in self.log.values() {
            let c = by_ballot.entry(m.ballot).or_insert(0);
            *c = (*c).max(m.last_committed);
        }
        let mut best = 0;
        for c in by_ballot.values_mut() {
            best = best.max(*c);
            *c = best;
        }
        let mut out = Vec::new();
        loop {
            let next = self.committed.saturating_add(1);
            let vouched = self.log.get(&next).is_some_and(|m| {
                self.logged.contains(&next)
                    && by_ballot
                        .range(..=m.ballot)
                        .next_back()
                        .is_some_and(|(_, c)| *c >= next)
            });
            if !vouched || self.installing {
                break;
            }
            self.commit_one(next, Vec::new(), &mut out);
        }
        out
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

    /// Whether reads may be served, and under which epoch of the node's lease: primary,
    /// re-proposals committed. The runtime publishes it so reads on other threads check it
    /// against the node's lease ([`NodeLease::allows`]) without going through the state
    /// machine, and without this replica taking every renewal.
    pub fn read_grant(&self) -> ReadGrant {
        if self.status != Status::Primary || self.committed < self.read_barrier {
            ReadGrant::None
        } else if self.opts.planted_ignore_lease {
            ReadGrant::Always
        } else {
            ReadGrant::Epoch(self.lease_epoch)
        }
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
            Event::Lease { epoch, until_ms } => {
                if self.status == Status::Primary
                    && epoch != self.lease_epoch
                    && !self.opts.planted_ignore_lease
                {
                    // The node's lease lapsed since this primary last took it: meta may
                    // have chosen another primary meanwhile. Step down before taking the
                    // new one.
                    self.status = Status::Inactive;
                    self.abort_writes(&mut out);
                }
                if epoch != self.lease_epoch {
                    self.lease_epoch = epoch;
                    self.lease_until_ms = until_ms;
                } else {
                    self.lease_until_ms = self.lease_until_ms.max(until_ms);
                }
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
}

mod learning;
mod lease;
mod messages;
mod peers;
mod reconfig;
mod timers;
mod writes;

pub use lease::{NodeLease, ReadGrant};
use messages::event_in_range;
pub use messages::{Action, Checkpoint, Event, LearnResponse, PeerMessage};

#[cfg(test)]
mod tests;
