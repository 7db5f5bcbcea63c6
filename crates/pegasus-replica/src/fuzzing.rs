//! Fuzz entry points (`fuzz/fuzz_targets/log_records.rs`, `replica_events.rs`), also
//! replayed by `tests/fuzz_corpus.rs` over the committed corpus.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use pegasus_core::config::{ConfigType, NodeId, PartitionConfig};
use pegasus_core::ids::{Ballot, Decree, Gpid};

use crate::core::{
    Action, Checkpoint, Event, LearnResponse, PeerMessage, Replica, ReplicaOptions, Status,
    MAX_BALLOT, MAX_DECREE,
};
use crate::log::{encode_record, scan_records, SegmentScan};
use crate::mutation::Mutation;

/// Reads arbitrary bytes as log records: never panics, and every record it accepts
/// re-encodes to exactly the bytes it was read from.
pub fn log_records(data: &[u8]) {
    let mutations = match scan_records(data, 0) {
        SegmentScan::Clean(m) => m,
        SegmentScan::BadAt {
            mutations, offset, ..
        } => {
            assert!(offset <= data.len());
            mutations
        }
    };
    let mut again = Vec::new();
    for m in &mutations {
        encode_record(m, &mut again);
    }
    assert_eq!(
        data.get(..again.len()),
        Some(&again[..]),
        "records re-encode to their bytes"
    );
    let _ = Mutation::decode(&Bytes::copy_from_slice(data));
}

// ------------------------------------------------------------------ replica_events

/// Most events (`Replica::handle` calls) one input feeds the group.
const MAX_EVENTS: usize = 500;
/// Most actions one event may produce (catches unbounded hole filling or resends).
const MAX_ACTIONS: usize = 10_000;
/// Most messages in flight; the oldest is lost when more are sent.
const MAX_IN_FLIGHT: usize = 128;
/// Most runtime requests (learn state builds, checkpoint installs) a node keeps waiting.
const MAX_RUNTIME_QUEUE: usize = 8;
/// Replicas of the partition: `NodeId(1..=3)`. Nodes 4 and 5 exist only as senders.
const NODES: usize = 3;
/// The wall clock starts here (Unix µs, late 2023) and never passes `WALL_MAX` (year
/// ~4200): it is the local clock, a trusted input that may jump but is not hostile.
const WALL_START: u64 = 1_700_000_000_000_000;
const WALL_MAX: u64 = 1 << 57;
const GPID: Gpid = Gpid::new(1, 0);

/// What [`replica_events`] drove, for tests that check the seeds reach real protocol runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaEventsReport {
    /// `Replica::handle` calls.
    pub events: usize,
    /// `Action::Commit`s, all replicas.
    pub commits: usize,
    /// Times a replica became primary.
    pub elections: usize,
    /// The largest decree any replica committed.
    pub max_committed: Decree,
    /// Every input stayed within the protocol's model, so safety was checked too.
    pub honest: bool,
}

/// Reads `data` as a program that drives a group of three [`Replica`]s (with small
/// [`ReplicaOptions`], some starting from logged mutations) through at most 500 events:
/// ticks whose wall clock jumps, client writes, meta's proposals and configurations (valid and
/// arbitrary), leases, log flushes, learner and checkpoint events, restarts, local errors, and
/// peer messages — those the replicas sent each other (delivered, duplicated, dropped,
/// tampered with) and forged ones with arbitrary ballots and decrees. After every event it
/// asserts the replica's invariants:
/// * at most 10 000 actions per event, `last_committed() <= last_prepared()`;
/// * a replica in `Error` only refuses;
/// * commits go one decree at a time (committed + 1); only a checkpoint install jumps, and
///   never backwards: the committed decree never decreases;
/// * a committed or acknowledged mutation is the one its own log made durable;
/// * ballots in what it sends or asks meta for are within `0..=MAX_BALLOT + 1`;
/// * a primary stamps every mutation it creates above every timestamp it holds;
/// * while every input stays within the protocol's model (messages lost, delayed,
///   reordered or duplicated but not forged, crashes that lose only what was not flushed,
///   meta following its rules): all replicas commit the same mutation at a decree, and
///   commit timestamps strictly increase with decrees.
pub fn replica_events(data: &[u8]) -> ReplicaEventsReport {
    let mut c = Cursor { data, pos: 0 };
    let setup = Setup::decode(&mut c);
    let mut g = Group::new(&setup);
    while !c.is_empty() && g.report.events < MAX_EVENTS {
        let op = Op::decode(&mut c);
        g.run(&op);
    }
    g.report.honest = g.honest;
    g.report
}

/// A few hand-built programs that take a group through elections, learning, writes,
/// failover and restarts (the seed corpus of the `replica_events` fuzz target).
pub fn replica_event_seeds() -> Vec<Vec<u8>> {
    seed_programs()
        .into_iter()
        .map(|(setup, ops)| encode_program(&setup, &ops))
        .collect()
}

fn encode_program(setup: &Setup, ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    setup.encode(&mut out);
    for op in ops {
        op.encode(&mut out);
    }
    out
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte; zeros once the input is exhausted.
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    fn i64(&mut self) -> i64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        i64::from_le_bytes(b)
    }
}

/// Values a ballot, decree, signature or timestamp field takes: small ones, the edges of
/// the accepted ranges, values near the receiver's state, or any 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Small(u8),
    Special(u8),
    /// Anchor (see [`Anchors`]) plus a signed delta.
    Near(u8, i8),
    Raw(i64),
}

const SPECIAL: [i64; 20] = [
    -1,
    i64::MIN,
    i64::MAX,
    i64::MAX - 1,
    MAX_BALLOT - 1,
    MAX_BALLOT,
    MAX_BALLOT + 1,
    MAX_BALLOT + 2,
    MAX_DECREE - 1,
    MAX_DECREE,
    MAX_DECREE + 1,
    1 << 32,
    (1 << 32) - 1,
    1 << 31,
    1 << 62,
    -2,
    i64::MIN + 1,
    WALL_START as i64,
    (1 << 62) + 1,
    1 << 48 << 8,
];

impl Num {
    fn decode(c: &mut Cursor<'_>) -> Self {
        let t = c.u8();
        match t >> 6 {
            0 => Self::Small(t & 63),
            1 => Self::Special(t & 63),
            2 => Self::Near(t & 63, i8::from_le_bytes([c.u8()])),
            _ => Self::Raw(c.i64()),
        }
    }

    fn encode(self, out: &mut Vec<u8>) {
        match self {
            Self::Small(v) => out.push(v & 63),
            Self::Special(i) => out.push(0x40 | (i & 63)),
            Self::Near(a, d) => {
                out.push(0x80 | (a & 63));
                out.extend_from_slice(&d.to_le_bytes());
            }
            Self::Raw(v) => {
                out.push(0xC0);
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    fn value(self, a: &Anchors) -> i64 {
        match self {
            Self::Small(v) => i64::from(v),
            Self::Special(i) => SPECIAL
                .get(usize::from(i) % SPECIAL.len())
                .copied()
                .unwrap_or(0),
            Self::Near(i, d) => {
                a.0.get(usize::from(i) % a.0.len())
                    .copied()
                    .unwrap_or(0)
                    .saturating_add(i64::from(d))
            }
            Self::Raw(v) => v,
        }
    }

    fn unsigned(self, a: &Anchors) -> u64 {
        u64::from_le_bytes(self.value(a).to_le_bytes())
    }
}

/// Values near which [`Num::Near`] picks: the receiver's ballot, committed decree, last
/// prepared decree, meta's ballot, the receiver's committed decree plus the prepare gap, the
/// last learning signature seen, the receiver's last timestamp, the wall clock.
struct Anchors([i64; 8]);

fn as_i64(v: u64) -> i64 {
    i64::from_le_bytes(v.to_le_bytes())
}

/// A configuration built from bytes: primary 0 = none, 1..=5 a node, 6/7 the sender;
/// secondaries a bit set over nodes 1..=5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawConfig {
    ballot: Num,
    primary: u8,
    secondaries: u8,
    last_committed: Num,
}

impl RawConfig {
    fn decode(c: &mut Cursor<'_>) -> Self {
        Self {
            ballot: Num::decode(c),
            primary: c.u8(),
            secondaries: c.u8(),
            last_committed: Num::decode(c),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        self.ballot.encode(out);
        out.push(self.primary);
        out.push(self.secondaries);
        self.last_committed.encode(out);
    }

    fn build(&self, a: &Anchors, sender: NodeId) -> PartitionConfig {
        let primary = match self.primary % 8 {
            0 => None,
            6 | 7 => Some(sender),
            p => Some(NodeId(u64::from(p))),
        };
        PartitionConfig {
            gpid: GPID,
            ballot: self.ballot.value(a),
            max_replica_count: 3,
            primary,
            secondaries: (0..5u8)
                .filter(|i| self.secondaries >> i & 1 == 1)
                .map(|i| NodeId(u64::from(i) + 1))
                .collect(),
            last_drops: Vec::new(),
            last_committed_decree: self.last_committed.value(a),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawMutation {
    ballot: Num,
    decree: Num,
    last_committed: Num,
    timestamp: Num,
    updates: u8,
}

impl RawMutation {
    fn decode(c: &mut Cursor<'_>) -> Self {
        Self {
            ballot: Num::decode(c),
            decree: Num::decode(c),
            last_committed: Num::decode(c),
            timestamp: Num::decode(c),
            updates: c.u8(),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        self.ballot.encode(out);
        self.decree.encode(out);
        self.last_committed.encode(out);
        self.timestamp.encode(out);
        out.push(self.updates);
    }

    fn build(&self, a: &Anchors) -> Mutation {
        Mutation {
            ballot: self.ballot.value(a),
            decree: self.decree.value(a),
            last_committed: self.last_committed.value(a),
            timestamp_us: self.timestamp.unsigned(a),
            updates: (0..self.updates % 3)
                .map(|i| Bytes::from(vec![b'f', self.updates, i]))
                .collect(),
        }
    }
}

fn decode_mutations(c: &mut Cursor<'_>) -> Vec<RawMutation> {
    let n = c.u8() % 5;
    (0..n).map(|_| RawMutation::decode(c)).collect()
}

fn encode_mutations(ms: &[RawMutation], out: &mut Vec<u8>) {
    out.push(u8::try_from(ms.len()).unwrap_or(0));
    for m in ms {
        m.encode(out);
    }
}

fn decode_checkpoint(c: &mut Cursor<'_>) -> Option<(Num, Num)> {
    (c.u8() & 1 == 1).then(|| (Num::decode(c), Num::decode(c)))
}

fn encode_checkpoint(cp: Option<(Num, Num)>, out: &mut Vec<u8>) {
    match cp {
        None => out.push(0),
        Some((d, t)) => {
            out.push(1);
            d.encode(out);
            t.encode(out);
        }
    }
}

fn build_checkpoint(cp: Option<(Num, Num)>, a: &Anchors) -> Option<Checkpoint> {
    cp.map(|(d, t)| Checkpoint {
        decree: d.value(a),
        timestamp_us: t.unsigned(a),
        data: Bytes::new(),
    })
}

/// A peer message built from bytes (forged: any sender, any values).
#[derive(Debug, Clone, PartialEq, Eq)]
enum RawMessage {
    Prepare {
        config: RawConfig,
        mutation: RawMutation,
        /// The mutation carries the configuration's ballot (as a real primary's does).
        same_ballot: bool,
    },
    PrepareAck {
        ballot: Num,
        decree: Num,
        ok: bool,
    },
    GroupCheck {
        config: RawConfig,
        last_committed: Num,
    },
    GroupCheckAck {
        ballot: Num,
        ok: bool,
    },
    AddLearner {
        config: RawConfig,
        signature: Num,
    },
    Learn {
        signature: Num,
        last_committed: Num,
    },
    LearnResponse {
        signature: Num,
        config: RawConfig,
        checkpoint: Option<(Num, Num)>,
        mutations: Vec<RawMutation>,
        committed: Num,
        retry: bool,
    },
    LearnCompleted {
        signature: Num,
    },
}

impl RawMessage {
    fn decode(c: &mut Cursor<'_>) -> Self {
        match c.u8() % 8 {
            0 => Self::Prepare {
                config: RawConfig::decode(c),
                mutation: RawMutation::decode(c),
                same_ballot: c.u8() & 1 == 1,
            },
            1 => Self::PrepareAck {
                ballot: Num::decode(c),
                decree: Num::decode(c),
                ok: c.u8() & 1 == 1,
            },
            2 => Self::GroupCheck {
                config: RawConfig::decode(c),
                last_committed: Num::decode(c),
            },
            3 => Self::GroupCheckAck {
                ballot: Num::decode(c),
                ok: c.u8() & 1 == 1,
            },
            4 => Self::AddLearner {
                config: RawConfig::decode(c),
                signature: Num::decode(c),
            },
            5 => Self::Learn {
                signature: Num::decode(c),
                last_committed: Num::decode(c),
            },
            6 => Self::LearnResponse {
                signature: Num::decode(c),
                config: RawConfig::decode(c),
                checkpoint: decode_checkpoint(c),
                mutations: decode_mutations(c),
                committed: Num::decode(c),
                retry: c.u8() & 1 == 1,
            },
            _ => Self::LearnCompleted {
                signature: Num::decode(c),
            },
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Prepare {
                config,
                mutation,
                same_ballot,
            } => {
                out.push(0);
                config.encode(out);
                mutation.encode(out);
                out.push(u8::from(*same_ballot));
            }
            Self::PrepareAck { ballot, decree, ok } => {
                out.push(1);
                ballot.encode(out);
                decree.encode(out);
                out.push(u8::from(*ok));
            }
            Self::GroupCheck {
                config,
                last_committed,
            } => {
                out.push(2);
                config.encode(out);
                last_committed.encode(out);
            }
            Self::GroupCheckAck { ballot, ok } => {
                out.push(3);
                ballot.encode(out);
                out.push(u8::from(*ok));
            }
            Self::AddLearner { config, signature } => {
                out.push(4);
                config.encode(out);
                signature.encode(out);
            }
            Self::Learn {
                signature,
                last_committed,
            } => {
                out.push(5);
                signature.encode(out);
                last_committed.encode(out);
            }
            Self::LearnResponse {
                signature,
                config,
                checkpoint,
                mutations,
                committed,
                retry,
            } => {
                out.push(6);
                signature.encode(out);
                config.encode(out);
                encode_checkpoint(*checkpoint, out);
                encode_mutations(mutations, out);
                committed.encode(out);
                out.push(u8::from(*retry));
            }
            Self::LearnCompleted { signature } => {
                out.push(7);
                signature.encode(out);
            }
        }
    }

    fn build(&self, a: &Anchors, from: NodeId) -> PeerMessage {
        match self {
            Self::Prepare {
                config,
                mutation,
                same_ballot,
            } => {
                let config = config.build(a, from);
                let mut mutation = mutation.build(a);
                if *same_ballot {
                    mutation.ballot = config.ballot;
                }
                PeerMessage::Prepare { config, mutation }
            }
            Self::PrepareAck { ballot, decree, ok } => PeerMessage::PrepareAck {
                ballot: ballot.value(a),
                decree: decree.value(a),
                ok: *ok,
            },
            Self::GroupCheck {
                config,
                last_committed,
            } => PeerMessage::GroupCheck {
                config: config.build(a, from),
                last_committed: last_committed.value(a),
            },
            Self::GroupCheckAck { ballot, ok } => PeerMessage::GroupCheckAck {
                ballot: ballot.value(a),
                ok: *ok,
            },
            Self::AddLearner { config, signature } => PeerMessage::AddLearner {
                config: config.build(a, from),
                signature: signature.unsigned(a),
            },
            Self::Learn {
                signature,
                last_committed,
            } => PeerMessage::Learn {
                signature: signature.unsigned(a),
                last_committed: last_committed.value(a),
            },
            Self::LearnResponse {
                signature,
                config,
                checkpoint,
                mutations,
                committed,
                retry,
            } => PeerMessage::LearnResponse(LearnResponse {
                signature: signature.unsigned(a),
                config: config.build(a, from),
                checkpoint: build_checkpoint(*checkpoint, a),
                mutations: mutations.iter().map(|m| m.build(a)).collect(),
                committed: committed.value(a),
                retry: *retry,
            }),
            Self::LearnCompleted { signature } => PeerMessage::LearnCompleted {
                signature: signature.unsigned(a),
            },
        }
    }
}

/// The group's starting state: options and what each replica holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Setup {
    /// Bits 0-1 staleness, 2-3 batch size, 4-5 committed cache, 6-7 prepare gap.
    options: u8,
    /// `min_2pc_replicas` = 1 + this % 3.
    min_2pc: u8,
    /// 0: empty replicas created fresh; 1: empty; 2: a group at ballot 2 (n1 primary)
    /// whose replicas logged mutations; 3: the same with stale, divergent tails and a hole.
    start: u8,
    /// Mutations logged (% 8) and committed (>> 3).
    logged: u8,
    /// Per replica (2 bits each): how many fewer mutations it holds.
    lag: u8,
}

impl Setup {
    fn decode(c: &mut Cursor<'_>) -> Self {
        Self {
            options: c.u8(),
            min_2pc: c.u8(),
            start: c.u8(),
            logged: c.u8(),
            lag: c.u8(),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[
            self.options,
            self.min_2pc,
            self.start,
            self.logged,
            self.lag,
        ]);
    }

    fn options(&self) -> ReplicaOptions {
        let pick = |bits: u8, values: [i64; 4]| -> i64 {
            values.get(usize::from(bits & 3)).copied().unwrap_or(1)
        };
        let o = self.options;
        ReplicaOptions {
            staleness_for_commit: pick(o, [2, 4, 8, 20]),
            max_batch: usize::try_from(pick(o >> 2, [1, 2, 4, 64])).unwrap_or(1),
            cache_committed: usize::try_from(pick(o >> 4, [0, 2, 8, 1000])).unwrap_or(0),
            max_prepare_gap: pick(o >> 6, [4, 16, 64, 256]),
            min_2pc_replicas: usize::from(self.min_2pc % 3) + 1,
            ..ReplicaOptions::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// Time passes by `dt²` ms for one node (node % 4 < 3) or all; the wall clock follows,
    /// or jumps (`wall` % 4: follow, forward by 2^(arg % 40) µs, back by that, set to
    /// `arg` ms after the epoch).
    Tick {
        node: u8,
        dt: u8,
        wall: u8,
        arg: u8,
    },
    /// `count % 8` client writes arrive together.
    Write {
        node: u8,
        count: u8,
    },
    /// The log makes `count` more appends durable (0: all).
    Flush {
        node: u8,
        count: u8,
    },
    /// The runtime reports an arbitrary flushed count.
    RawFlushed {
        node: u8,
        appended: Num,
    },
    /// Meta acknowledges a beacon: lease for `len * 100` ms from now.
    Lease {
        node: u8,
        len: u8,
    },
    RawLease {
        node: u8,
        sent: Num,
        until: Num,
        now: Num,
    },
    /// Meta proposes a change (kind % 8 over `ConfigType`) about node `about % 5 + 1`.
    Proposal {
        node: u8,
        kind: u8,
        about: u8,
    },
    /// Meta accepts the node's pending request if its ballot is next (else refuses it).
    MetaAccept {
        node: u8,
    },
    MetaReject {
        node: u8,
    },
    /// Meta changes the configuration itself (failover, balancing): ballot + 1, primary
    /// `primary % 4` (0 none), secondaries a bit set over nodes 1..=3.
    MetaConfig {
        primary: u8,
        secondaries: u8,
    },
    /// Meta sends its configuration to a node.
    MetaSync {
        node: u8,
    },
    /// An arbitrary configuration "from meta".
    RawConfig {
        node: u8,
        config: RawConfig,
    },
    /// The runtime answers the oldest learn-state request honestly.
    LearnReady {
        node: u8,
    },
    RawLearnReady {
        node: u8,
        learner: u8,
        signature: Num,
        checkpoint: Option<(Num, Num)>,
        mutations: Vec<RawMutation>,
    },
    /// The runtime finishes the oldest checkpoint install.
    Installed {
        node: u8,
    },
    RawInstalled {
        node: u8,
        decree: Num,
    },
    LocalError {
        node: u8,
    },
    /// The node restarts from its storage and durable log (mode % 4: 0/3 clean, 1 torn
    /// tail cutting `cut` records, 2 rebuilt empty).
    Restart {
        node: u8,
        mode: u8,
        cut: u8,
    },
    /// Delivers a message in flight (kept in flight too if `dup`).
    Deliver {
        index: u8,
        dup: bool,
    },
    Drop {
        index: u8,
    },
    /// Delivers a copy of a message in flight with one field replaced.
    Tamper {
        index: u8,
        field: u8,
        value: Num,
    },
    /// Delivers a forged message from node `from % 5 + 1`.
    Forge {
        from: u8,
        to: u8,
        msg: Box<RawMessage>,
    },
    /// A healthy runtime and meta for `rounds % 8 + 1` rounds: leases renewed, then each
    /// round flushes every log, answers learn and install requests, accepts or refuses
    /// configuration requests, syncs meta's configuration, delivers every message in flight.
    Run {
        rounds: u8,
    },
}

const OP_KINDS: u8 = 23;

impl Op {
    fn decode(c: &mut Cursor<'_>) -> Self {
        match c.u8() % OP_KINDS {
            0 => Self::Tick {
                node: c.u8(),
                dt: c.u8(),
                wall: c.u8(),
                arg: c.u8(),
            },
            1 => Self::Write {
                node: c.u8(),
                count: c.u8(),
            },
            2 => Self::Flush {
                node: c.u8(),
                count: c.u8(),
            },
            3 => Self::RawFlushed {
                node: c.u8(),
                appended: Num::decode(c),
            },
            4 => Self::Lease {
                node: c.u8(),
                len: c.u8(),
            },
            5 => Self::RawLease {
                node: c.u8(),
                sent: Num::decode(c),
                until: Num::decode(c),
                now: Num::decode(c),
            },
            6 => Self::Proposal {
                node: c.u8(),
                kind: c.u8(),
                about: c.u8(),
            },
            7 => Self::MetaAccept { node: c.u8() },
            8 => Self::MetaReject { node: c.u8() },
            9 => Self::MetaConfig {
                primary: c.u8(),
                secondaries: c.u8(),
            },
            10 => Self::MetaSync { node: c.u8() },
            11 => Self::RawConfig {
                node: c.u8(),
                config: RawConfig::decode(c),
            },
            12 => Self::LearnReady { node: c.u8() },
            13 => Self::RawLearnReady {
                node: c.u8(),
                learner: c.u8(),
                signature: Num::decode(c),
                checkpoint: decode_checkpoint(c),
                mutations: decode_mutations(c),
            },
            14 => Self::Installed { node: c.u8() },
            15 => Self::RawInstalled {
                node: c.u8(),
                decree: Num::decode(c),
            },
            16 => Self::LocalError { node: c.u8() },
            17 => Self::Restart {
                node: c.u8(),
                mode: c.u8(),
                cut: c.u8(),
            },
            18 => Self::Deliver {
                index: c.u8(),
                dup: c.u8() & 1 == 1,
            },
            19 => Self::Drop { index: c.u8() },
            20 => Self::Tamper {
                index: c.u8(),
                field: c.u8(),
                value: Num::decode(c),
            },
            21 => Self::Forge {
                from: c.u8(),
                to: c.u8(),
                msg: Box::new(RawMessage::decode(c)),
            },
            _ => Self::Run { rounds: c.u8() },
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Tick {
                node,
                dt,
                wall,
                arg,
            } => out.extend_from_slice(&[0, *node, *dt, *wall, *arg]),
            Self::Write { node, count } => out.extend_from_slice(&[1, *node, *count]),
            Self::Flush { node, count } => out.extend_from_slice(&[2, *node, *count]),
            Self::RawFlushed { node, appended } => {
                out.extend_from_slice(&[3, *node]);
                appended.encode(out);
            }
            Self::Lease { node, len } => out.extend_from_slice(&[4, *node, *len]),
            Self::RawLease {
                node,
                sent,
                until,
                now,
            } => {
                out.extend_from_slice(&[5, *node]);
                sent.encode(out);
                until.encode(out);
                now.encode(out);
            }
            Self::Proposal { node, kind, about } => {
                out.extend_from_slice(&[6, *node, *kind, *about]);
            }
            Self::MetaAccept { node } => out.extend_from_slice(&[7, *node]),
            Self::MetaReject { node } => out.extend_from_slice(&[8, *node]),
            Self::MetaConfig {
                primary,
                secondaries,
            } => out.extend_from_slice(&[9, *primary, *secondaries]),
            Self::MetaSync { node } => out.extend_from_slice(&[10, *node]),
            Self::RawConfig { node, config } => {
                out.extend_from_slice(&[11, *node]);
                config.encode(out);
            }
            Self::LearnReady { node } => out.extend_from_slice(&[12, *node]),
            Self::RawLearnReady {
                node,
                learner,
                signature,
                checkpoint,
                mutations,
            } => {
                out.extend_from_slice(&[13, *node, *learner]);
                signature.encode(out);
                encode_checkpoint(*checkpoint, out);
                encode_mutations(mutations, out);
            }
            Self::Installed { node } => out.extend_from_slice(&[14, *node]),
            Self::RawInstalled { node, decree } => {
                out.extend_from_slice(&[15, *node]);
                decree.encode(out);
            }
            Self::LocalError { node } => out.extend_from_slice(&[16, *node]),
            Self::Restart { node, mode, cut } => out.extend_from_slice(&[17, *node, *mode, *cut]),
            Self::Deliver { index, dup } => out.extend_from_slice(&[18, *index, u8::from(*dup)]),
            Self::Drop { index } => out.extend_from_slice(&[19, *index]),
            Self::Tamper {
                index,
                field,
                value,
            } => {
                out.extend_from_slice(&[20, *index, *field]);
                value.encode(out);
            }
            Self::Forge { from, to, msg } => {
                out.extend_from_slice(&[21, *from, *to]);
                msg.encode(out);
            }
            Self::Run { rounds } => out.extend_from_slice(&[22, *rounds]),
        }
    }
}

const CONFIG_TYPES: [ConfigType; 8] = [
    ConfigType::AssignPrimary,
    ConfigType::UpgradeToPrimary,
    ConfigType::AddSecondary,
    ConfigType::UpgradeToSecondary,
    ConfigType::DowngradeToSecondary,
    ConfigType::DowngradeToInactive,
    ConfigType::Remove,
    ConfigType::PrimaryForceUpdateBallot,
];

/// Meta's own configuration change: primary `primary % 4` (0 none), secondaries a bit set
/// over nodes 1..=3.
fn meta_choice(primary: u8, secondaries: u8) -> (Option<NodeId>, Vec<NodeId>) {
    let primary = match primary % 4 {
        0 => None,
        p => Some(NodeId(u64::from(p))),
    };
    let secondaries = (0..NODES)
        .filter(|i| secondaries >> i & 1 == 1)
        .map(node_id)
        .filter(|n| Some(*n) != primary)
        .collect();
    (primary, secondaries)
}

fn node_index(b: u8) -> usize {
    usize::from(b) % NODES
}

fn node_id(i: usize) -> NodeId {
    NodeId(u64::try_from(i).unwrap_or(0).saturating_add(1))
}

/// A sender: one of the three replicas, or nodes 4 and 5 that are not in the group.
fn peer_id(b: u8) -> NodeId {
    NodeId(u64::from(b % 5) + 1)
}

#[derive(Debug)]
struct Envelope {
    from: NodeId,
    to: NodeId,
    msg: PeerMessage,
}

/// One replica and what its runtime holds for it: storage, mutation log, requests.
#[derive(Debug)]
struct Node {
    replica: Replica,
    /// `AppendLog`s this instance emitted, and how many the log made durable.
    appended: u64,
    flushed: u64,
    /// Appended, not yet durable (in order).
    unflushed: VecDeque<Mutation>,
    /// The durable log, in append order (what a restart replays).
    log: Vec<Mutation>,
    /// The durable log by decree (the last record wins, as on replay).
    durable: BTreeMap<Decree, Mutation>,
    /// Storage: the last applied decree and its timestamp.
    applied: Decree,
    applied_us: u64,
    /// The timestamp of the last decree this instance committed (or its storage held).
    last_commit_us: u64,
    /// The configuration request waiting for meta.
    request: Option<PartitionConfig>,
    builds: VecDeque<(NodeId, u64, Decree)>,
    installs: VecDeque<Checkpoint>,
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
struct Before {
    status: Status,
    committed: Decree,
    prepared: Decree,
    timestamp_us: u64,
    /// For an event that may make the replica primary: which decrees in
    /// `committed + 1..=prepared` it held (the rest are holes the new primary fills).
    held: Option<Vec<bool>>,
}

struct Group {
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
    honest: bool,
    /// Honest runs: each committed decree's content and timestamp, on whichever replica
    /// committed it first.
    agreed: BTreeMap<Decree, (Vec<Bytes>, u64)>,
    report: ReplicaEventsReport,
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
    fn new(setup: &Setup) -> Self {
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

    fn run(&mut self, op: &Op) {
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
                self.handle(
                    i,
                    Event::Lease {
                        sent_ms: sent.unsigned(&a),
                        until_ms: until.unsigned(&a),
                        now_ms: now.unsigned(&a),
                    },
                );
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
        self.handle(
            i,
            Event::Lease {
                sent_ms: now,
                until_ms: now.saturating_add(len_ms),
                now_ms: now,
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

fn before(r: &Replica, event: &Event, gap: i64) -> Before {
    let committed = r.last_committed();
    let prepared = r.last_prepared();
    // Only a configuration (from meta, or adopted from a primary's message) makes a replica
    // primary, and it fills holes only when at most `gap` decrees are uncommitted.
    let may_lead = match event {
        Event::Config(_) => true,
        Event::Message {
            msg: PeerMessage::Prepare { config, .. } | PeerMessage::GroupCheck { config, .. },
            ..
        } => config.ballot > r.config().ballot,
        _ => false,
    };
    let held = (may_lead && prepared.saturating_sub(committed) <= gap).then(|| {
        let mut held = Vec::new();
        let mut d = committed.saturating_add(1);
        while d <= prepared {
            held.push(r.mutation(d).is_some());
            d = d.saturating_add(1);
        }
        held
    });
    Before {
        status: r.status(),
        committed,
        prepared,
        timestamp_us: r.last_timestamp_us(),
        held,
    }
}

fn ballots(msg: &PeerMessage) -> Vec<Ballot> {
    match msg {
        PeerMessage::Prepare { config, mutation } => vec![config.ballot, mutation.ballot],
        PeerMessage::PrepareAck { ballot, .. } | PeerMessage::GroupCheckAck { ballot, .. } => {
            vec![*ballot]
        }
        PeerMessage::GroupCheck { config, .. } | PeerMessage::AddLearner { config, .. } => {
            vec![config.ballot]
        }
        PeerMessage::LearnResponse(r) => std::iter::once(r.config.ballot)
            .chain(r.mutations.iter().map(|m| m.ballot))
            .collect(),
        PeerMessage::Learn { .. } | PeerMessage::LearnCompleted { .. } => Vec::new(),
    }
}

/// The invariants of one `handle` call on node `n` (see [`replica_events`]); `agreed` is
/// given in honest runs.
fn check(
    n: &mut Node,
    before: &Before,
    actions: &[Action],
    mut agreed: Option<&mut BTreeMap<Decree, (Vec<Bytes>, u64)>>,
) {
    let r = &n.replica;
    assert!(
        actions.len() <= MAX_ACTIONS,
        "{} actions from one event",
        actions.len()
    );
    assert!(r.last_committed() <= r.last_prepared());
    assert!(r.last_timestamp_us() >= before.timestamp_us);
    if before.status == Status::Error {
        assert!(
            actions.iter().all(|a| matches!(a, Action::Refuse { .. })),
            "a replica in Error acted: {actions:?}"
        );
    }
    let ballot_ok = |b: Ballot| (0..=MAX_BALLOT + 1).contains(&b);
    let leads = r.status() == Status::Primary;
    let mut committed = before.committed;
    let mut last_commit_us = n.last_commit_us;
    let mut floor = before.timestamp_us;
    for a in actions {
        match a {
            Action::InstallCheckpoint(cp) => {
                assert!(
                    cp.decree >= committed,
                    "a checkpoint at {} moves committed back from {committed}",
                    cp.decree
                );
                committed = cp.decree;
                last_commit_us = cp.timestamp_us;
            }
            Action::Commit { mutation, .. } => {
                assert_eq!(
                    mutation.decree,
                    committed.saturating_add(1),
                    "commit out of order"
                );
                assert_eq!(
                    n.durable.get(&mutation.decree),
                    Some(mutation),
                    "committed a mutation its log did not make durable"
                );
                committed = mutation.decree;
                if let Some(agreed) = agreed.as_deref_mut() {
                    // Safety of an honest run: every replica commits the same mutation at a
                    // decree, and timestamps increase with decrees (storage compacts expired
                    // records at the last applied timestamp, so it must never go back).
                    assert!(
                        mutation.timestamp_us > last_commit_us,
                        "decree {} committed at {} after {}",
                        mutation.decree,
                        mutation.timestamp_us,
                        last_commit_us
                    );
                    let content = (mutation.updates.clone(), mutation.timestamp_us);
                    let first = agreed.entry(mutation.decree).or_insert(content.clone());
                    assert_eq!(
                        *first, content,
                        "replicas committed different mutations at decree {}",
                        mutation.decree
                    );
                }
                last_commit_us = mutation.timestamp_us;
            }
            Action::AppendLog(m) => {
                let new_decree = m.decree > before.prepared;
                let hole = before.held.as_ref().is_some_and(|held| {
                    let k = m.decree.saturating_sub(before.committed).saturating_sub(1);
                    usize::try_from(k)
                        .ok()
                        .and_then(|k| held.get(k))
                        .is_some_and(|h| !h)
                });
                if leads && m.ballot == r.config().ballot && (new_decree || hole) {
                    assert!(
                        m.timestamp_us > floor,
                        "a primary stamped decree {} with {} <= {floor}",
                        m.decree,
                        m.timestamp_us
                    );
                }
                floor = floor.max(m.timestamp_us);
            }
            Action::Send { msg, .. } => {
                for b in ballots(msg) {
                    assert!(ballot_ok(b), "sent ballot {b}: {msg:?}");
                }
                if let PeerMessage::PrepareAck {
                    ballot,
                    decree,
                    ok: true,
                } = msg
                {
                    // Logged before acknowledged: what it holds at the decree (unless committed
                    // and dropped from memory since) is durable.
                    let durable = n.durable.get(decree);
                    assert!(
                        *decree <= before.committed
                            || (durable.is_some_and(|m| m.ballot == *ballot)
                                && r.mutation(*decree).is_none_or(|m| Some(m) == durable)),
                        "acknowledged decree {decree} at ballot {ballot} before logging it"
                    );
                }
            }
            Action::RequestConfig { config, .. } => {
                assert!(
                    ballot_ok(config.ballot),
                    "asked meta for ballot {}",
                    config.ballot
                );
            }
            Action::Refuse { .. } | Action::BuildLearnState { .. } => {}
        }
    }
    assert_eq!(r.last_committed(), committed, "committed without a Commit");
    n.last_commit_us = last_commit_us;
}

/// Replaces one field of a message in flight (`field` % 6: ballot, decree, the mutation's
/// ballot, timestamp, flag or signature, piggybacked committed decree or checkpoint).
fn tamper(msg: &mut PeerMessage, field: u8, v: i64) {
    let u = u64::from_le_bytes(v.to_le_bytes());
    match (msg, field % 6) {
        (PeerMessage::Prepare { config, mutation }, f) => match f {
            0 => {
                config.ballot = v;
                mutation.ballot = v;
            }
            1 => mutation.decree = v,
            2 => mutation.ballot = v,
            3 => mutation.timestamp_us = u,
            4 => mutation.updates.push(Bytes::from_static(b"tampered")),
            _ => mutation.last_committed = v,
        },
        (PeerMessage::PrepareAck { ballot, decree, ok }, f) => match f {
            0 | 2 => *ballot = v,
            4 => *ok = !*ok,
            _ => *decree = v,
        },
        (
            PeerMessage::GroupCheck {
                config,
                last_committed,
            },
            f,
        ) => match f {
            0 | 2 => config.ballot = v,
            _ => *last_committed = v,
        },
        (PeerMessage::GroupCheckAck { ballot, ok }, f) => match f {
            4 => *ok = !*ok,
            _ => *ballot = v,
        },
        (PeerMessage::AddLearner { config, signature }, f) => match f {
            4 => *signature = u,
            _ => config.ballot = v,
        },
        (
            PeerMessage::Learn {
                signature,
                last_committed,
            },
            f,
        ) => match f {
            4 => *signature = u,
            _ => *last_committed = v,
        },
        (PeerMessage::LearnResponse(r), f) => match f {
            0 => r.config.ballot = v,
            1 => r.committed = v,
            2 => {
                if let Some(m) = r.mutations.first_mut() {
                    m.ballot = v;
                }
            }
            3 => {
                if let Some(m) = r.mutations.last_mut() {
                    m.timestamp_us = u;
                }
            }
            4 => r.retry = !r.retry,
            _ => {
                r.checkpoint = Some(Checkpoint {
                    decree: v,
                    timestamp_us: 0,
                    data: Bytes::new(),
                });
            }
        },
        (PeerMessage::LearnCompleted { signature }, _) => *signature = u,
    }
}

// ------------------------------------------------------------------ seeds

const fn seed_options(staleness: u8, batch: u8, cache: u8, gap: u8) -> u8 {
    staleness | batch << 2 | cache << 4 | gap << 6
}

/// Meta makes n1 primary of a new partition, n1 brings in n2 and n3 as learners, then takes
/// writes.
fn healthy_start() -> Vec<Op> {
    vec![
        Op::Proposal {
            node: 0,
            kind: 0,
            about: 0,
        },
        Op::Run { rounds: 1 },
        Op::Proposal {
            node: 0,
            kind: 2,
            about: 1,
        },
        Op::Proposal {
            node: 0,
            kind: 2,
            about: 2,
        },
        Op::Run { rounds: 5 },
        // n3's completion arrived while n2's upgrade was in flight: meta proposes again.
        Op::Proposal {
            node: 0,
            kind: 2,
            about: 2,
        },
        Op::Run { rounds: 5 },
        Op::Write { node: 0, count: 3 },
        Op::Run { rounds: 2 },
        Op::Write { node: 0, count: 5 },
        Op::Tick {
            node: 3,
            dt: 10,
            wall: 0,
            arg: 0,
        },
        Op::Run { rounds: 2 },
        Op::Write { node: 0, count: 7 },
        Op::Write { node: 0, count: 1 },
        Op::Run { rounds: 3 },
    ]
}

/// n1's lease lapses, meta makes n2 primary, n2 takes writes and re-adds n1.
fn failover() -> Vec<Op> {
    vec![
        Op::Tick {
            node: 3,
            dt: 80,
            wall: 0,
            arg: 0,
        },
        Op::MetaConfig {
            primary: 2,
            secondaries: 0b100,
        },
        Op::Run { rounds: 3 },
        Op::Write { node: 1, count: 4 },
        Op::Run { rounds: 2 },
        Op::Proposal {
            node: 1,
            kind: 2,
            about: 0,
        },
        Op::Run { rounds: 6 },
        Op::Write { node: 1, count: 6 },
        Op::Tick {
            node: 3,
            dt: 3,
            wall: 1,
            arg: 35,
        },
        Op::Write { node: 1, count: 2 },
        Op::Run { rounds: 3 },
    ]
}

fn seed_programs() -> Vec<(Setup, Vec<Op>)> {
    let small = Setup {
        options: seed_options(2, 2, 2, 2),
        min_2pc: 1,
        start: 0,
        logged: 0,
        lag: 0,
    };
    let mut programs = vec![(small, healthy_start())];

    let mut ops = healthy_start();
    ops.extend(failover());
    programs.push((small, ops));

    // A lone primary commits first (min 2PC replicas 1, no committed cache), so learners
    // need a checkpoint.
    let lone = Setup {
        options: seed_options(1, 1, 0, 1),
        min_2pc: 0,
        ..small
    };
    let mut ops = vec![
        Op::Proposal {
            node: 0,
            kind: 0,
            about: 0,
        },
        Op::Run { rounds: 1 },
        Op::Write { node: 0, count: 6 },
        Op::Run { rounds: 4 },
    ];
    ops.extend(healthy_start().into_iter().skip(2));
    programs.push((lone, ops));

    // The whole group restarts from its logs (n2, n3 lag behind): n1 asks for a new ballot,
    // the secondaries must learn again.
    let restarted = Setup {
        options: seed_options(2, 2, 2, 2),
        min_2pc: 1,
        start: 2,
        logged: 5 | 3 << 3,
        lag: 1 << 2 | 2 << 4,
    };
    let mut ops = vec![
        Op::MetaSync { node: 0 },
        Op::MetaSync { node: 1 },
        Op::MetaSync { node: 2 },
        Op::Run { rounds: 4 },
        Op::Proposal {
            node: 0,
            kind: 2,
            about: 1,
        },
        Op::Run { rounds: 6 },
        Op::Proposal {
            node: 0,
            kind: 2,
            about: 2,
        },
        Op::Run { rounds: 6 },
        Op::Write { node: 0, count: 5 },
        Op::Run { rounds: 3 },
    ];
    ops.extend(failover());
    programs.push((restarted, ops));

    // Divergent tails and a hole: meta makes n3 primary, it fills the hole, re-proposes,
    // and brings the others back as learners.
    let divergent = Setup {
        start: 3,
        lag: 0,
        ..restarted
    };
    let ops = vec![
        Op::Lease { node: 2, len: 50 },
        Op::MetaConfig {
            primary: 3,
            secondaries: 0b011,
        },
        Op::MetaSync { node: 0 },
        Op::MetaSync { node: 2 },
        Op::MetaSync { node: 1 },
        Op::Run { rounds: 6 },
        Op::Proposal {
            node: 2,
            kind: 2,
            about: 0,
        },
        Op::Run { rounds: 6 },
        Op::Proposal {
            node: 2,
            kind: 2,
            about: 1,
        },
        Op::Run { rounds: 6 },
        Op::Tick {
            node: 3,
            dt: 1,
            wall: 0,
            arg: 0,
        },
        Op::Write { node: 2, count: 3 },
        Op::Run { rounds: 4 },
    ];
    programs.push((divergent, ops));

    // Restarts: clean (a secondary, then the primary), rebuilt empty; the group heals.
    let mut ops = healthy_start();
    ops.extend([
        Op::Restart {
            node: 1,
            mode: 0,
            cut: 0,
        },
        Op::Write { node: 0, count: 2 },
        Op::Run { rounds: 3 },
        Op::Restart {
            node: 0,
            mode: 3,
            cut: 0,
        },
        Op::MetaSync { node: 0 },
        Op::Run { rounds: 3 },
        Op::Restart {
            node: 2,
            mode: 2,
            cut: 0,
        },
        Op::Run { rounds: 3 },
    ]);
    programs.push((small, ops));

    // Hostile and lossy traffic on a healthy group: forged messages at the edges of the
    // accepted ranges, tampered copies, drops, duplicates, arbitrary configurations, a disk
    // that lost synced records.
    let mut ops = healthy_start();
    ops.extend([
        Op::Write { node: 0, count: 2 },
        Op::Deliver {
            index: 0,
            dup: true,
        },
        Op::Tamper {
            index: 1,
            field: 0,
            value: Num::Special(6),
        },
        Op::Tamper {
            index: 1,
            field: 1,
            value: Num::Near(4, 1),
        },
        Op::Drop { index: 0 },
        Op::Forge {
            from: 0,
            to: 1,
            msg: Box::new(RawMessage::Prepare {
                config: RawConfig {
                    ballot: Num::Near(0, 0),
                    primary: 6,
                    secondaries: 0b110,
                    last_committed: Num::Near(1, 0),
                },
                mutation: RawMutation {
                    ballot: Num::Near(0, 0),
                    decree: Num::Near(4, 0),
                    last_committed: Num::Near(1, 0),
                    timestamp: Num::Special(1),
                    updates: 1,
                },
                same_ballot: true,
            }),
        },
        Op::Forge {
            from: 1,
            to: 0,
            msg: Box::new(RawMessage::PrepareAck {
                ballot: Num::Special(5),
                decree: Num::Special(9),
                ok: true,
            }),
        },
        Op::RawConfig {
            node: 2,
            config: RawConfig {
                ballot: Num::Special(2),
                primary: 6,
                secondaries: 0,
                last_committed: Num::Small(0),
            },
        },
        Op::RawLease {
            node: 0,
            sent: Num::Special(2),
            until: Num::Special(2),
            now: Num::Small(0),
        },
        Op::Run { rounds: 4 },
        Op::Restart {
            node: 1,
            mode: 1,
            cut: 2,
        },
        Op::Run { rounds: 4 },
    ]);
    programs.push((small, ops));
    programs
}
