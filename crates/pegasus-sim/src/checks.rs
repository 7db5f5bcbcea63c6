//! Invariants checked as the simulation runs: a committed decree never changes on any
//! replica, one primary commits per ballot, timestamps increase with decrees and stay
//! within wall-clock time.

use super::*;

impl Sim {
    pub(crate) fn check_commit(&mut self, id: NodeId, m: &Mutation, status: Status) {
        self.trace(|| {
            format!(
                "{id} commits {}@{} ts={} as {status:?}",
                m.decree, m.ballot, m.timestamp_us
            )
        });
        // Invariant: a committed decree never changes, on any replica, timestamp included
        // (every replica applies the primary's stamp).
        match self.committed_content.get(&m.decree) {
            Some((c, ts)) if *c != m.updates || *ts != m.timestamp_us => {
                self.fail(format!(
                    "decree {} committed with different content or timestamp on {id}",
                    m.decree
                ));
            }
            Some(_) => {}
            None => {
                self.check_timestamp(m);
                self.committed_content
                    .insert(m.decree, (m.updates.clone(), m.timestamp_us));
            }
        }
        if status == Status::Primary {
            // Invariant: at most one primary commits per ballot.
            match self.primary_of_ballot.get(&m.ballot) {
                Some(p) if *p != id => {
                    self.fail(format!(
                        "two primaries committed at ballot {}: {p} and {id}",
                        m.ballot
                    ));
                }
                _ => {
                    self.primary_of_ballot.insert(m.ballot, id);
                }
            }
        }
        if m.updates.iter().any(|u| decode_write(u).is_none()) {
            self.fail(format!(
                "decree {} holds an update that does not decode",
                m.decree
            ));
        }
    }

    /// Invariants of a newly committed decree's timestamp: strictly between its committed
    /// neighbours' (timestamps increase with decrees, across primaries too), and wall-clock
    /// time: not before the run began (less the largest clock offset) and not past the
    /// fastest node's wall clock now.
    pub(crate) fn check_timestamp(&mut self, m: &Mutation) {
        let ts = m.timestamp_us;
        let before = self
            .committed_content
            .range(..m.decree)
            .next_back()
            .map(|(d, (_, t))| (*d, *t));
        let after = self
            .committed_content
            .range(m.decree + 1..)
            .next()
            .map(|(d, (_, t))| (*d, *t));
        if let Some((d, t)) = before.filter(|(_, t)| *t >= ts) {
            let what = format!(
                "decree {} has timestamp {ts}, not after decree {d}'s {t}",
                m.decree
            );
            self.fail(what);
        }
        if let Some((d, t)) = after.filter(|(_, t)| *t <= ts) {
            let what = format!(
                "decree {} has timestamp {ts}, not before decree {d}'s {t}",
                m.decree
            );
            self.fail(what);
        }
        let latest = self.max_wall_us();
        if ts < SIM_EPOCH_US - WALL_OFFSET_MAX_US || ts > latest {
            let what = format!(
                "decree {} has timestamp {ts}, outside wall-clock time [{}, {latest}]",
                m.decree,
                SIM_EPOCH_US - WALL_OFFSET_MAX_US
            );
            self.fail(what);
        }
    }
}
