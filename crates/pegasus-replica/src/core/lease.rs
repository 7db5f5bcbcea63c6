//! The node's read lease, sans-IO: one per replica server, renewed by meta's beacon
//! acknowledgements and shared by every replica on the node. A lapse starts a new epoch.
//!
//! Why a node-wide lease with epochs instead of a lease in every replica: with thousands of
//! replicas per node, handing each acknowledgement to every replica costs a round per
//! replica per beacon, and an idle primary would have to wake at its lease's end. Instead a
//! replica takes the node's lease lazily, at the start of its next round
//! ([`Event::Lease`](super::Event::Lease)), and a reader checks the node's lease itself:
//! a primary may serve a read at `now` iff the node's lease holds at `now` **and** its epoch
//! is the one the primary last took. The epoch changes exactly when the lease lapsed (an
//! acknowledgement arrives for a beacon sent at or after the deadline, or arrives after
//! it): meta may have chosen another primary meanwhile, so a primary that sees a new epoch
//! steps down before it serves again — the same rule a per-replica lease enforced, applied
//! once per node. Reads a sleeping primary serves are covered by the same deadline every
//! primary of the node would have been given.

/// What a read must check against the node's lease: whether this replica may serve reads,
/// and under which epoch of the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadGrant {
    /// No reads (not primary, re-proposals not committed, failed).
    #[default]
    None,
    /// Reads while the node's lease holds and is still in this epoch.
    Epoch(u64),
    /// Reads regardless of any lease: only the planted lease bug (`planted_ignore_lease`).
    Always,
}

impl ReadGrant {
    /// As one integer, for a host that publishes it atomically: 0 none, `u64::MAX` always,
    /// else the epoch (epochs start at 1).
    pub fn to_bits(self) -> u64 {
        match self {
            ReadGrant::None => 0,
            ReadGrant::Epoch(e) => e.clamp(1, u64::MAX.saturating_sub(1)),
            ReadGrant::Always => u64::MAX,
        }
    }

    /// The inverse of [`ReadGrant::to_bits`].
    pub fn from_bits(bits: u64) -> Self {
        match bits {
            0 => ReadGrant::None,
            u64::MAX => ReadGrant::Always,
            e => ReadGrant::Epoch(e),
        }
    }
}

/// The node's lease: its epoch and deadline (the node's monotonic ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeLease {
    /// Starts at 0 (no lease yet); each lapse, and the first grant, starts a new one.
    pub epoch: u64,
    /// Reads may be served before this time (exclusive).
    pub until_ms: u64,
}

impl NodeLease {
    /// Meta acknowledged a beacon sent at `sent_ms`, granting until `until_ms`; `now_ms` is
    /// when the acknowledgement arrived. After a lapse (the deadline passed before the
    /// beacon left, or before the acknowledgement arrived: a pause) a new epoch begins.
    pub fn renew(&mut self, sent_ms: u64, until_ms: u64, now_ms: u64) {
        if self.until_ms <= sent_ms.max(now_ms) {
            self.epoch = self.epoch.saturating_add(1);
        }
        self.until_ms = self.until_ms.max(until_ms);
    }

    /// Whether a replica holding `grant` may serve a read at `now_ms`.
    pub fn allows(&self, grant: ReadGrant, now_ms: u64) -> bool {
        match grant {
            ReadGrant::None => false,
            ReadGrant::Always => true,
            ReadGrant::Epoch(e) => e == self.epoch && now_ms < self.until_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lapse_starts_a_new_epoch_and_a_timely_renewal_does_not() {
        let mut l = NodeLease::default();
        l.renew(0, 2_000, 10);
        assert_eq!(l.epoch, 1, "the first grant is an epoch of its own");
        l.renew(1_000, 3_000, 1_010);
        assert_eq!((l.epoch, l.until_ms), (1, 3_000));
        // Acknowledged late (a pause): the old deadline passed before it arrived.
        l.renew(2_500, 4_500, 3_200);
        assert_eq!((l.epoch, l.until_ms), (2, 4_500));
        // Sent after the deadline.
        l.renew(5_000, 7_000, 5_001);
        assert_eq!(l.epoch, 3);
        // An older acknowledgement never shortens the lease.
        l.renew(4_900, 6_000, 5_002);
        assert_eq!((l.epoch, l.until_ms), (3, 7_000));
    }

    #[test]
    fn reads_need_the_current_epoch_and_a_deadline_ahead() {
        let mut l = NodeLease::default();
        l.renew(0, 2_000, 0);
        let grant = ReadGrant::Epoch(l.epoch);
        assert!(l.allows(grant, 1_999));
        assert!(!l.allows(grant, 2_000), "the deadline is exclusive");
        assert!(!l.allows(ReadGrant::None, 0));
        l.renew(3_000, 5_000, 3_000);
        assert!(
            !l.allows(grant, 3_500),
            "a grant from before the lapse is void"
        );
        assert!(l.allows(ReadGrant::Epoch(l.epoch), 3_500));
        assert!(l.allows(ReadGrant::Always, u64::MAX));
    }

    #[test]
    fn grants_round_trip_through_bits() {
        for g in [
            ReadGrant::None,
            ReadGrant::Epoch(1),
            ReadGrant::Epoch(77),
            ReadGrant::Always,
        ] {
            assert_eq!(ReadGrant::from_bits(g.to_bits()), g);
        }
    }
}
