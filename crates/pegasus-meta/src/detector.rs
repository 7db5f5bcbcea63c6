//! Failure detection from beacons, sans-IO: when each replica server's last beacon arrived,
//! which servers are alive, and which are newly dead. Time is the caller's monotonic
//! milliseconds; the meta server and the simulator run this same code.
//!
//! The rule (the read lease depends on it, ARCHITECTURE.md "The read lease"): a replica
//! server may serve until `sent + fd_lease_ms` on its own clock for a beacon sent at `sent`
//! and acknowledged; meta declares it dead only when no beacon *arrived* for `fd_grace_ms >
//! fd_lease_ms`, counting from the later of its last beacon and the start of this leader's
//! term — a new leader gives every server a full grace period, since beacons acknowledged by
//! the previous leader may hold leases it never heard of.

use std::collections::{BTreeMap, BTreeSet};

use pegasus_core::config::NodeId;

/// The beacons a meta leader has seen, and the servers it declared dead.
#[derive(Debug, Clone, Default)]
pub struct FailureDetector {
    grace_ms: u64,
    /// When this meta became leader (None while it is not).
    term_start_ms: Option<u64>,
    last_beacon_ms: BTreeMap<NodeId, u64>,
    dead: BTreeSet<NodeId>,
}

impl FailureDetector {
    /// A detector declaring a server dead after `grace_ms` without a beacon.
    pub fn new(grace_ms: u64) -> Self {
        Self {
            grace_ms,
            ..Self::default()
        }
    }

    /// The grace period, ms.
    pub fn grace_ms(&self) -> u64 {
        self.grace_ms
    }

    /// Starts a leader's term at `now_ms` (no-op if one is running): the grace period of
    /// every server counts from here at the earliest.
    pub fn start_term(&mut self, now_ms: u64) -> u64 {
        *self.term_start_ms.get_or_insert(now_ms)
    }

    /// Whether a term is running.
    pub fn in_term(&self) -> bool {
        self.term_start_ms.is_some()
    }

    /// Leadership lost: everything is forgotten; the next term starts afresh.
    pub fn end_term(&mut self) {
        *self = Self::new(self.grace_ms);
    }

    /// A beacon from `node` arrived at `arrived_ms` (and its lease is being granted). The
    /// last arrival never moves back (beacons finish their quorum check out of order: a
    /// later acknowledgement's lease must be covered). A dead server that beacons again is
    /// alive.
    pub fn beacon(&mut self, node: NodeId, arrived_ms: u64) {
        let last = self.last_beacon_ms.entry(node).or_insert(arrived_ms);
        *last = (*last).max(arrived_ms);
        self.dead.remove(&node);
    }

    /// Checks `nodes` at `now_ms`: the ones with no beacon for longer than the grace period
    /// (counting from the term's start at the earliest) become dead; returns those newly
    /// declared. Their last beacon is forgotten.
    pub fn check(&mut self, nodes: impl IntoIterator<Item = NodeId>, now_ms: u64) -> Vec<NodeId> {
        let term_start = self.start_term(now_ms);
        let newly: Vec<NodeId> = nodes
            .into_iter()
            .filter(|n| !self.dead.contains(n))
            .filter(|n| {
                let last = self
                    .last_beacon_ms
                    .get(n)
                    .copied()
                    .unwrap_or(term_start)
                    .max(term_start);
                now_ms.saturating_sub(last) > self.grace_ms
            })
            .collect();
        for n in &newly {
            self.dead.insert(*n);
            self.last_beacon_ms.remove(n);
        }
        newly
    }

    /// Servers whose last beacon arrived within the grace period before `now_ms`.
    pub fn alive(&self, now_ms: u64) -> BTreeSet<NodeId> {
        self.last_beacon_ms
            .iter()
            .filter(|(_, t)| now_ms.saturating_sub(**t) <= self.grace_ms)
            .map(|(n, _)| *n)
            .collect()
    }

    /// Servers declared dead (until they beacon again).
    pub fn dead(&self) -> &BTreeSet<NodeId> {
        &self.dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);

    #[test]
    fn a_server_is_dead_only_after_a_full_grace_period_without_a_beacon() {
        let mut fd = FailureDetector::new(3_000);
        fd.start_term(0);
        fd.beacon(A, 1_000);
        assert!(fd.check([A], 4_000).is_empty(), "exactly the grace period");
        assert_eq!(fd.check([A], 4_001), vec![A]);
        assert!(fd.check([A], 9_000).is_empty(), "declared once");
        assert!(fd.alive(4_001).is_empty());
        fd.beacon(A, 9_500);
        assert!(fd.dead().is_empty(), "a beacon brings it back");
        assert_eq!(fd.alive(9_500), BTreeSet::from([A]));
    }

    #[test]
    fn a_new_term_gives_every_server_a_full_grace_period() {
        let mut fd = FailureDetector::new(3_000);
        // Never heard of B, and A's last beacon was long ago: both count from the term.
        fd.beacon(A, 0);
        fd.start_term(10_000);
        assert!(fd.check([A, B], 13_000).is_empty());
        assert_eq!(fd.check([A, B], 13_001), vec![A, B]);
    }

    #[test]
    fn a_late_finishing_beacon_never_moves_the_last_arrival_back() {
        let mut fd = FailureDetector::new(3_000);
        fd.start_term(0);
        fd.beacon(A, 5_000);
        fd.beacon(A, 4_000);
        assert!(fd.check([A], 8_000).is_empty());
        assert_eq!(fd.check([A], 8_001), vec![A]);
    }

    #[test]
    fn losing_leadership_forgets_everything() {
        let mut fd = FailureDetector::new(3_000);
        fd.start_term(0);
        assert_eq!(fd.check([A], 3_001), vec![A]);
        fd.end_term();
        assert!(!fd.in_term());
        assert!(fd.dead().is_empty());
        assert_eq!(fd.grace_ms(), 3_000);
    }
}
