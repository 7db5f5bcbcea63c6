//! The hand-built seed programs of the `replica_events` fuzz target, and their encoding.

use super::program::{Op, Setup};
use super::raw::{Num, RawConfig, RawMessage, RawMutation};

pub(super) fn encode_program(setup: &Setup, ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    setup.encode(&mut out);
    for op in ops {
        op.encode(&mut out);
    }
    out
}

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

pub(super) fn seed_programs() -> Vec<(Setup, Vec<Op>)> {
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
