//! Fuzz entry points (`fuzz/fuzz_targets/log_records.rs`, `replica_events.rs`), also
//! replayed by `tests/fuzz_corpus.rs` over the committed corpus.

mod checks;
mod group;
mod program;
mod raw;
mod seeds;

use bytes::Bytes;
use pegasus_core::ids::{Decree, Gpid};

use crate::log::{encode_record, scan_records, SegmentScan};
use crate::mutation::Mutation;
use group::Group;
use program::{Op, Setup};
use raw::Cursor;
use seeds::{encode_program, seed_programs};

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
///
/// [`Replica`]: crate::core::Replica
/// [`ReplicaOptions`]: crate::core::ReplicaOptions
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
