//! Invariants, per partition: checked as the simulation runs (a committed decree never
//! changes on any replica, one primary commits per ballot, timestamps increase with decrees
//! and stay within wall-clock time) and at the end (every partition healthy, every key
//! readable on its primary, every key's history linearizable, which includes every
//! acknowledged write being in the final state).

use super::*;

impl Sim {
    pub(crate) fn check_commit(&mut self, id: NodeId, gpid: Gpid, m: &Mutation, status: Status) {
        self.trace(|| {
            format!(
                "{id} {} commits {}@{} ts={} as {status:?}",
                g(gpid),
                m.decree,
                m.ballot,
                m.timestamp_us
            )
        });
        // Invariant: a committed decree never changes, on any replica, timestamp included
        // (every replica applies the primary's stamp).
        match self.committed_content.get(&(gpid, m.decree)) {
            Some((c, ts)) if *c != m.updates || *ts != m.timestamp_us => {
                self.fail(format!(
                    "{}: decree {} committed with different content or timestamp on {id}",
                    g(gpid),
                    m.decree
                ));
            }
            Some(_) => {}
            None => {
                self.check_timestamp(gpid, m);
                self.committed_content
                    .insert((gpid, m.decree), (m.updates.clone(), m.timestamp_us));
            }
        }
        if status == Status::Primary {
            // Invariant: at most one primary commits per ballot.
            match self.primary_of_ballot.get(&(gpid, m.ballot)) {
                Some(p) if *p != id => {
                    self.fail(format!(
                        "{}: two primaries committed at ballot {}: {p} and {id}",
                        g(gpid),
                        m.ballot
                    ));
                }
                _ => {
                    self.primary_of_ballot.insert((gpid, m.ballot), id);
                }
            }
        }
        if m.updates.iter().any(|u| decode_write(u).is_none()) {
            self.fail(format!(
                "{}: decree {} holds an update that does not decode",
                g(gpid),
                m.decree
            ));
        }
    }

    /// Invariants of a newly committed decree's timestamp: strictly between its committed
    /// neighbours' in the same partition (timestamps increase with decrees, across primaries
    /// too), and wall-clock time: not before the run began (less the largest clock offset)
    /// and not past the fastest node's wall clock now.
    pub(crate) fn check_timestamp(&mut self, gpid: Gpid, m: &Mutation) {
        let ts = m.timestamp_us;
        let before = self
            .committed_content
            .range((gpid, 0)..(gpid, m.decree))
            .next_back()
            .map(|((_, d), (_, t))| (*d, *t));
        let after = self
            .committed_content
            .range((gpid, m.decree + 1)..=(gpid, Decree::MAX))
            .next()
            .map(|((_, d), (_, t))| (*d, *t));
        if let Some((d, t)) = before.filter(|(_, t)| *t >= ts) {
            let what = format!(
                "{}: decree {} has timestamp {ts}, not after decree {d}'s {t}",
                g(gpid),
                m.decree
            );
            self.fail(what);
        }
        if let Some((d, t)) = after.filter(|(_, t)| *t <= ts) {
            let what = format!(
                "{}: decree {} has timestamp {ts}, not before decree {d}'s {t}",
                g(gpid),
                m.decree
            );
            self.fail(what);
        }
        let latest = self.max_wall_us();
        if ts < SIM_EPOCH_US - WALL_OFFSET_MAX_US || ts > latest {
            let what = format!(
                "{}: decree {} has timestamp {ts}, outside wall-clock time [{}, {latest}]",
                g(gpid),
                m.decree,
                SIM_EPOCH_US - WALL_OFFSET_MAX_US
            );
            self.fail(what);
        }
    }

    /// Runs the final checks (liveness, final reads, linearizability) and reports.
    pub fn finish(mut self) -> Report {
        // Liveness: after healing, every partition has one primary and two secondaries.
        let ill: Vec<PartitionConfig> = self
            .meta
            .configs
            .values()
            .filter(|c| !c.is_healthy())
            .cloned()
            .collect();
        for c in ill {
            self.fail(format!(
                "partition {} not healthy after healing: {c:?}",
                g(c.gpid)
            ));
        }
        // Every acknowledged write is in the final state: read every key on its primary.
        let end = self.now + 1;
        for key in 0..self.opts.keys {
            let gpid = self.key_gpid.get(key as usize).copied().unwrap_or(FIRST);
            let primary = self.meta.configs.get(&gpid).and_then(|c| c.primary);
            let value = primary.and_then(|p| {
                let local = self.local_time(p);
                let driver = self.driver(p, gpid)?;
                let lease = self.nodes.get(&p)?.lease;
                lease.allows(driver.host().view.read, local).then_some(())?;
                let r = driver.store().get(&key_bytes(key));
                Some(if r.error == 0 {
                    parse_int(&r.value)
                } else {
                    None
                })
            });
            match value {
                Some(v) => self.history.push(Op {
                    key,
                    kind: OpKind::Get,
                    invoke: end,
                    complete: Some((end + 1, OpResult::Read(v))),
                }),
                None => {
                    self.fail(format!(
                        "final read of key {key} ({}) could not be served",
                        g(gpid)
                    ));
                }
            }
        }
        self.report.max_replicas_per_node = self
            .nodes
            .values()
            .map(|n| n.replicas.len() as u64)
            .max()
            .unwrap_or(0);
        let history: Vec<Op> = self
            .history
            .iter()
            .filter(|o| o.key != u64::MAX)
            .cloned()
            .collect();
        match linearizable(&history, 20_000_000) {
            Verdict::Linearizable => {}
            Verdict::Violation(v) => {
                let n = v.ops.len();
                self.fail(format!(
                    "history of key {} ({n} ops) is not linearizable",
                    v.key
                ));
            }
            Verdict::Unknown { key } => {
                self.fail(format!("linearizability of key {key} undecided (budget)"))
            }
        }
        self.report
    }
}
