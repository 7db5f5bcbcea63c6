//! The core's vocabulary: peer messages, events in, actions out, checkpoints and learn
//! responses, and the range checks every value from the wire passes before use.

use super::*;

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
    /// The node's lease as it is now (see [`NodeLease`](super::NodeLease)), taken at the
    /// start of a round: a new epoch means it lapsed meanwhile and a primary steps down.
    Lease {
        /// The lease's epoch.
        epoch: u64,
        /// Its deadline (local clock).
        until_ms: u64,
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

pub(super) fn ballot_in_range(b: Ballot) -> bool {
    (0..=MAX_BALLOT).contains(&b)
}

pub(super) fn decree_in_range(d: Decree) -> bool {
    (0..=MAX_DECREE).contains(&d)
}

pub(super) fn config_in_range(c: &PartitionConfig) -> bool {
    ballot_in_range(c.ballot) && decree_in_range(c.last_committed_decree)
}

pub(super) fn mutation_in_range(m: &Mutation) -> bool {
    ballot_in_range(m.ballot)
        && m.decree >= 1
        && decree_in_range(m.decree)
        && decree_in_range(m.last_committed)
        && m.timestamp_us <= MAX_TIMESTAMP_US
}

pub(super) fn checkpoint_in_range(c: &Checkpoint) -> bool {
    decree_in_range(c.decree) && c.timestamp_us <= MAX_TIMESTAMP_US
}

/// Whether every ballot and decree an event carries is one a correct group can produce.
pub(super) fn event_in_range(event: &Event) -> bool {
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
