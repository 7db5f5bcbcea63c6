//! Input bytes: the `Cursor`, `Num` fields and raw configurations, mutations, messages.

use bytes::Bytes;
use pegasus_core::config::{NodeId, PartitionConfig};

use super::{GPID, WALL_START};
use crate::core::{Checkpoint, LearnResponse, PeerMessage, MAX_BALLOT, MAX_DECREE};
use crate::mutation::Mutation;

pub(super) struct Cursor<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
}

impl Cursor<'_> {
    pub(super) fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte; zeros once the input is exhausted.
    pub(super) fn u8(&mut self) -> u8 {
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
pub(super) enum Num {
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
    pub(super) fn decode(c: &mut Cursor<'_>) -> Self {
        let t = c.u8();
        match t >> 6 {
            0 => Self::Small(t & 63),
            1 => Self::Special(t & 63),
            2 => Self::Near(t & 63, i8::from_le_bytes([c.u8()])),
            _ => Self::Raw(c.i64()),
        }
    }

    pub(super) fn encode(self, out: &mut Vec<u8>) {
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

    pub(super) fn value(self, a: &Anchors) -> i64 {
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

    pub(super) fn unsigned(self, a: &Anchors) -> u64 {
        u64::from_le_bytes(self.value(a).to_le_bytes())
    }
}

/// Values near which [`Num::Near`] picks: the receiver's ballot, committed decree, last
/// prepared decree, meta's ballot, the receiver's committed decree plus the prepare gap, the
/// last learning signature seen, the receiver's last timestamp, the wall clock.
pub(super) struct Anchors(pub(super) [i64; 8]);

pub(super) fn as_i64(v: u64) -> i64 {
    i64::from_le_bytes(v.to_le_bytes())
}

/// A configuration built from bytes: primary 0 = none, 1..=5 a node, 6/7 the sender;
/// secondaries a bit set over nodes 1..=5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RawConfig {
    pub(super) ballot: Num,
    pub(super) primary: u8,
    pub(super) secondaries: u8,
    pub(super) last_committed: Num,
}

impl RawConfig {
    pub(super) fn decode(c: &mut Cursor<'_>) -> Self {
        Self {
            ballot: Num::decode(c),
            primary: c.u8(),
            secondaries: c.u8(),
            last_committed: Num::decode(c),
        }
    }

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        self.ballot.encode(out);
        out.push(self.primary);
        out.push(self.secondaries);
        self.last_committed.encode(out);
    }

    pub(super) fn build(&self, a: &Anchors, sender: NodeId) -> PartitionConfig {
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
pub(super) struct RawMutation {
    pub(super) ballot: Num,
    pub(super) decree: Num,
    pub(super) last_committed: Num,
    pub(super) timestamp: Num,
    pub(super) updates: u8,
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

    pub(super) fn build(&self, a: &Anchors) -> Mutation {
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

pub(super) fn decode_mutations(c: &mut Cursor<'_>) -> Vec<RawMutation> {
    let n = c.u8() % 5;
    (0..n).map(|_| RawMutation::decode(c)).collect()
}

pub(super) fn encode_mutations(ms: &[RawMutation], out: &mut Vec<u8>) {
    out.push(u8::try_from(ms.len()).unwrap_or(0));
    for m in ms {
        m.encode(out);
    }
}

pub(super) fn decode_checkpoint(c: &mut Cursor<'_>) -> Option<(Num, Num)> {
    (c.u8() & 1 == 1).then(|| (Num::decode(c), Num::decode(c)))
}

pub(super) fn encode_checkpoint(cp: Option<(Num, Num)>, out: &mut Vec<u8>) {
    match cp {
        None => out.push(0),
        Some((d, t)) => {
            out.push(1);
            d.encode(out);
            t.encode(out);
        }
    }
}

pub(super) fn build_checkpoint(cp: Option<(Num, Num)>, a: &Anchors) -> Option<Checkpoint> {
    cp.map(|(d, t)| Checkpoint {
        decree: d.value(a),
        timestamp_us: t.unsigned(a),
        data: Bytes::new(),
    })
}

/// A peer message built from bytes (forged: any sender, any values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RawMessage {
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
    pub(super) fn decode(c: &mut Cursor<'_>) -> Self {
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

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
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

    pub(super) fn build(&self, a: &Anchors, from: NodeId) -> PeerMessage {
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
