//! The core's clock: each tick expires the read lease and overdue prepares, sends group
//! checks (none while the primary is quiet), and asks meta to remove a peer that failed;
//! configuration requests to meta; when the next tick is due.

use super::*;

impl Replica {
    /// The earliest local time (ms) at which a tick would do something, or `None` if no
    /// tick is needed until another event arrives: the runtime may sleep until then. A tick
    /// earlier than this is harmless, a later one only delays what is due.
    ///
    /// * An idle secondary needs no tick at all (meta, not its primary, notices failures).
    /// * A primary with work in flight wakes for its lease's end (to abort what waits),
    ///   overdue prepares and group checks, and the next group check.
    /// * A quiet primary (see [`Replica::is_quiet`]) hibernates: no tick at all. A lapse of
    ///   the node's lease needs no wake-up, because readers check the node's lease
    ///   themselves and the next round takes it (and steps down) before anything else.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let mut due: Option<u64> = None;
        let mut at = |t: u64| due = Some(due.map_or(t, |d| d.min(t)));
        if let Some((_, _, _, sent)) = &self.config_request {
            at(sent.saturating_add(self.opts.meta_retry_ms));
        }
        if self.status != Status::Primary {
            return due;
        }
        let busy = !self.pending.is_empty() || !self.queue.is_empty();
        if busy && !self.opts.planted_ignore_lease {
            at(self.lease_until_ms);
        }
        let timeout = self.opts.prepare_timeout_ms;
        if let Some(sent) = self
            .pending
            .values()
            .filter(|p| !p.acks.is_empty())
            .map(|p| p.sent_ms)
            .min()
        {
            at(sent.saturating_add(timeout));
        }
        if let Some(sent) = self.group_check_waiting.values().min() {
            at(sent.saturating_add(timeout));
        }
        if (!self.config.secondaries.is_empty() || !self.learners.is_empty()) && !self.is_quiet() {
            at(self
                .last_group_check_ms
                .saturating_add(self.opts.group_check_interval_ms));
        }
        if !self.queue.is_empty() && self.wall_us == 0 {
            // Writes wait for the first tick's wall clock.
            at(self.now_ms);
        }
        due
    }

    /// A primary is quiet when nothing happened since a group check every member
    /// acknowledged: same configuration, same committed decree, no writes waiting, no
    /// learners, nothing asked of meta. It sends no more group checks until that changes
    /// (TiKV's hibernating regions). Safe because group checks decide nothing about what
    /// commits or who may read: they carry a committed decree every member already has, and
    /// they find failed members, which the next write's prepares find as well (a member
    /// that never answers is removed after `prepare_timeout_ms`, as after any failure
    /// between checks), while meta's beacons find dead nodes and a replica that lost its
    /// copy whatever the primary does.
    pub fn is_quiet(&self) -> bool {
        self.status == Status::Primary
            && self.pending.is_empty()
            && self.queue.is_empty()
            && self.learners.is_empty()
            && self.group_check_waiting.is_empty()
            && self.config_request.is_none()
            && self.settled_check == Some((self.config.ballot, self.committed))
    }

    pub(super) fn on_tick(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        self.now_ms = self.now_ms.max(now_ms);
        let now = self.now_ms;
        if self.status == Status::Primary
            && now >= self.lease_until_ms
            && !self.opts.planted_ignore_lease
        {
            // Lost touch with meta: meta may already have chosen another primary.
            self.status = Status::Inactive;
            self.abort_writes(out);
        }
        if let Some((kind, node, config, sent)) = self.config_request.clone() {
            if now.saturating_sub(sent) >= self.opts.meta_retry_ms {
                out.push(Action::RequestConfig {
                    kind,
                    node,
                    config: config.clone(),
                });
                self.config_request = Some((kind, node, config, now));
            }
        }
        if self.status != Status::Primary {
            return;
        }
        // Prepares not acknowledged in time: the laggard is reported dead.
        let late: BTreeSet<NodeId> = self
            .pending
            .values()
            .filter(|p| now.saturating_sub(p.sent_ms) >= self.opts.prepare_timeout_ms)
            .flat_map(|p| p.acks.iter().copied())
            .collect();
        let late_checks: Vec<NodeId> = self
            .group_check_waiting
            .iter()
            .filter(|(_, t)| now.saturating_sub(**t) >= self.opts.prepare_timeout_ms)
            .map(|(n, _)| *n)
            .collect();
        for node in late.into_iter().chain(late_checks) {
            self.remote_failure(node, out);
        }
        if now.saturating_sub(self.last_group_check_ms) >= self.opts.group_check_interval_ms
            && !self.is_quiet()
        {
            self.last_group_check_ms = now;
            self.settled_check = Some((self.config.ballot, self.committed));
            let targets: Vec<NodeId> = self
                .config
                .secondaries
                .iter()
                .chain(self.learners.keys())
                .copied()
                .collect();
            for to in targets {
                self.group_check_waiting.entry(to).or_insert(now);
                out.push(Action::Send {
                    to,
                    msg: PeerMessage::GroupCheck {
                        config: self.config.clone(),
                        last_committed: self.committed,
                    },
                });
            }
        }
        self.propose(out);
    }

    /// A member failed to answer: ask meta to remove it (a learner is just dropped).
    pub(super) fn remote_failure(&mut self, node: NodeId, out: &mut Vec<Action>) {
        self.group_check_waiting.remove(&node);
        // Not settled: the next group check must look again.
        self.settled_check = None;
        if self
            .config_request
            .as_ref()
            .is_some_and(|r| r.0 == ConfigType::UpgradeToSecondary && r.1 == node)
        {
            // Its upgrade is in flight: dropping it from the acknowledgements now would let
            // decrees commit that it never gets once meta makes it a secondary.
            return;
        }
        if self.learners.remove(&node).is_some() {
            for p in self.pending.values_mut() {
                p.acks.remove(&node);
            }
            self.try_commit(out);
            return;
        }
        if self.config.secondaries.contains(&node) && self.config_request.is_none() {
            let mut next = self.config.clone();
            next.secondaries.retain(|n| *n != node);
            next.ballot = next.ballot.saturating_add(1);
            self.request_config(ConfigType::DowngradeToInactive, node, next, out);
        }
    }

    pub(super) fn request_config(
        &mut self,
        kind: ConfigType,
        node: NodeId,
        config: PartitionConfig,
        out: &mut Vec<Action>,
    ) {
        out.push(Action::RequestConfig {
            kind,
            node,
            config: config.clone(),
        });
        self.config_request = Some((kind, node, config, self.now_ms));
    }
}
