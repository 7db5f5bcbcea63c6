//! A `replica_events` program: its `Setup` and `Op`s, their codecs, node and meta choices.

use pegasus_core::config::{ConfigType, NodeId};

use super::raw::{
    decode_checkpoint, decode_mutations, encode_checkpoint, encode_mutations, Cursor, Num,
    RawConfig, RawMessage, RawMutation,
};
use super::NODES;
use crate::core::ReplicaOptions;

/// The group's starting state: options and what each replica holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Setup {
    /// Bits 0-1 staleness, 2-3 batch size, 4-5 committed cache, 6-7 prepare gap.
    pub(super) options: u8,
    /// `min_2pc_replicas` = 1 + this % 3.
    pub(super) min_2pc: u8,
    /// 0: empty replicas created fresh; 1: empty; 2: a group at ballot 2 (n1 primary)
    /// whose replicas logged mutations; 3: the same with stale, divergent tails and a hole.
    pub(super) start: u8,
    /// Mutations logged (% 8) and committed (>> 3).
    pub(super) logged: u8,
    /// Per replica (2 bits each): how many fewer mutations it holds.
    pub(super) lag: u8,
}

impl Setup {
    pub(super) fn decode(c: &mut Cursor<'_>) -> Self {
        Self {
            options: c.u8(),
            min_2pc: c.u8(),
            start: c.u8(),
            logged: c.u8(),
            lag: c.u8(),
        }
    }

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[
            self.options,
            self.min_2pc,
            self.start,
            self.logged,
            self.lag,
        ]);
    }

    pub(super) fn options(&self) -> ReplicaOptions {
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
pub(super) enum Op {
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
    /// The node's log disk is full (tag 23: Run keeps 22 so the seeds stay as they are).
    LogFull {
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
    pub(super) fn decode(c: &mut Cursor<'_>) -> Self {
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
            23 => Self::LogFull { node: c.u8() },
            _ => Self::Run { rounds: c.u8() },
        }
    }

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
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
            Self::LogFull { node } => out.extend_from_slice(&[23, *node]),
        }
    }
}

pub(super) const CONFIG_TYPES: [ConfigType; 8] = [
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
pub(super) fn meta_choice(primary: u8, secondaries: u8) -> (Option<NodeId>, Vec<NodeId>) {
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

pub(super) fn node_index(b: u8) -> usize {
    usize::from(b) % NODES
}

pub(super) fn node_id(i: usize) -> NodeId {
    NodeId(u64::try_from(i).unwrap_or(0).saturating_add(1))
}

/// A sender: one of the three replicas, or nodes 4 and 5 that are not in the group.
pub(super) fn peer_id(b: u8) -> NodeId {
    NodeId(u64::from(b % 5) + 1)
}
