//! The write path: client writes batched into mutations, stamped, logged and prepared on
//! the primary, acknowledged and committed in decree order; on every member, commits up to
//! the piggybacked commit point once the log has flushed.

use super::*;

impl Replica {
    pub(super) fn on_client_writes(&mut self, writes: Vec<(u64, Bytes)>, out: &mut Vec<Action>) {
        if writes.is_empty() {
            return;
        }
        let refusal = if self.status != Status::Primary {
            Some(Refusal::NotPrimary)
        } else if self.config.secondaries.len().saturating_add(1) < self.opts.min_2pc_replicas {
            Some(Refusal::NotEnoughMembers)
        } else {
            None
        };
        if let Some(reason) = refusal {
            out.push(Action::Refuse {
                clients: writes.into_iter().map(|(id, _)| id).collect(),
                reason,
            });
            return;
        }
        self.queue.extend(writes);
        self.propose(out);
    }

    /// Turns queued writes into mutations while the 2PC window has room.
    pub(super) fn propose(&mut self, out: &mut Vec<Action>) {
        // No stamp before the first tick brought the wall clock: writes wait in the queue.
        while self.status == Status::Primary
            && self.wall_us > 0
            && !self.queue.is_empty()
            && self.last_prepared().saturating_sub(self.committed) < self.opts.staleness_for_commit
        {
            let n = self.queue.len().min(self.opts.max_batch);
            let (clients, updates): (Vec<u64>, Vec<Bytes>) = self.queue.drain(..n).unzip();
            let decree = self.last_prepared().saturating_add(1);
            let m = Mutation {
                ballot: self.config.ballot,
                decree,
                last_committed: self.committed,
                timestamp_us: self.stamp(),
                updates,
            };
            self.start_2pc(m, clients, out);
        }
    }

    /// Records `m` as this decree's mutation and asks the runtime to log it.
    pub(super) fn append(&mut self, m: Mutation, out: &mut Vec<Action>) {
        self.data_ballot = self.data_ballot.max(m.ballot);
        self.last_timestamp_us = self.last_timestamp_us.max(m.timestamp_us);
        self.appended = self.appended.saturating_add(1);
        self.unflushed
            .push_back((self.appended, m.decree, m.ballot));
        self.logged.remove(&m.decree);
        out.push(Action::AppendLog(m.clone()));
        self.log.insert(m.decree, m);
    }

    pub(super) fn start_2pc(&mut self, m: Mutation, clients: Vec<u64>, out: &mut Vec<Action>) {
        let decree = m.decree;
        let mut acks: BTreeSet<NodeId> = self.config.secondaries.iter().copied().collect();
        for (node, l) in &self.learners {
            if l.prepare_start.is_some_and(|s| decree >= s) {
                acks.insert(*node);
            }
        }
        for to in &acks {
            out.push(Action::Send {
                to: *to,
                msg: PeerMessage::Prepare {
                    config: self.config.clone(),
                    mutation: m.clone(),
                },
            });
        }
        self.pending.insert(
            decree,
            Pending {
                acks,
                sent_ms: self.now_ms,
                clients,
            },
        );
        self.append(m, out);
    }

    pub(super) fn on_prepare_ack(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        decree: Decree,
        ok: bool,
        out: &mut Vec<Action>,
    ) {
        if self.status != Status::Primary {
            return;
        }
        if ballot > self.config.ballot {
            // Someone moved on: we are not the primary of the latest configuration.
            self.status = Status::Inactive;
            self.abort_writes(out);
            return;
        }
        if !ok {
            self.remote_failure(from, out);
            return;
        }
        if ballot != self.config.ballot {
            // An acknowledgement of an older proposal of this decree: not ours.
            return;
        }
        if let Some(p) = self.pending.get_mut(&decree) {
            p.acks.remove(&from);
        }
        self.try_commit(out);
    }

    /// Commits, in order, every decree that is logged and fully acknowledged.
    pub(super) fn try_commit(&mut self, out: &mut Vec<Action>) {
        loop {
            let next = self.committed.saturating_add(1);
            let ready = match self.status {
                Status::Primary => {
                    // Nothing commits on fewer copies than the 2PC minimum: a lone primary
                    // waits for a secondary (and re-proposes to it) before committing.
                    self.config.secondaries.len().saturating_add(1) >= self.opts.min_2pc_replicas
                        && self.logged.contains(&next)
                        && self.pending.get(&next).is_some_and(|p| p.acks.is_empty())
                }
                _ => false,
            };
            if !ready {
                break;
            }
            let clients = self
                .pending
                .remove(&next)
                .map(|p| p.clients)
                .unwrap_or_default();
            self.commit_one(next, clients, out);
        }
        self.propose(out);
    }

    pub(super) fn commit_one(&mut self, decree: Decree, clients: Vec<u64>, out: &mut Vec<Action>) {
        if let Some(m) = self.log.get(&decree) {
            out.push(Action::Commit {
                mutation: m.clone(),
                clients,
            });
            self.committed_timestamp_us = m.timestamp_us;
            self.committed = decree;
            self.logged.remove(&decree);
        }
        // Keep a bounded cache of committed mutations for learners.
        let keep_from = self
            .committed
            .saturating_sub(i64::try_from(self.opts.cache_committed).unwrap_or(i64::MAX));
        while let Some((&d, _)) = self.log.first_key_value() {
            if d > keep_from {
                break;
            }
            self.log.remove(&d);
        }
    }

    /// Secondary / learner: commit logged mutations up to the primary's committed decree.
    pub(super) fn commit_to(&mut self, target: Decree, out: &mut Vec<Action>) {
        if self.installing {
            // Storage is being replaced by a checkpoint: applying to the old store now would
            // move `committed` past the checkpoint. Commit once it is installed.
            self.deferred_commit = self.deferred_commit.max(target);
            return;
        }
        while self.committed < target && self.logged.contains(&(self.committed.saturating_add(1))) {
            self.commit_one(self.committed.saturating_add(1), Vec::new(), out);
        }
    }

    pub(super) fn on_log_flushed(&mut self, appended: u64, out: &mut Vec<Action>) {
        let mut newly = Vec::new();
        while let Some(&(seq, decree, ballot)) = self.unflushed.front() {
            if seq > appended {
                break;
            }
            self.unflushed.pop_front();
            // Only the mutation currently held for the decree counts as logged.
            if decree > self.committed
                && self.log.get(&decree).is_some_and(|m| m.ballot == ballot)
                && self.logged.insert(decree)
            {
                newly.push(decree);
            }
        }
        match self.status {
            Status::Primary => self.try_commit(out),
            Status::Secondary | Status::PotentialSecondary => {
                // Acknowledge every prepare that just became durable.
                // Only entries proposed under the current ballot are acknowledged, with that
                // ballot: an older primary's entry logged late must never count as an
                // acknowledgement of a newer primary's different mutation at the same decree.
                if let Some(primary) = self.config.primary {
                    for d in newly {
                        let Some(ballot) = self.log.get(&d).map(|m| m.ballot) else {
                            continue;
                        };
                        if ballot == self.config.ballot {
                            out.push(Action::Send {
                                to: primary,
                                msg: PeerMessage::PrepareAck {
                                    ballot,
                                    decree: d,
                                    ok: true,
                                },
                            });
                        }
                    }
                }
                // A learner commits nothing before the primary's learn response has replaced
                // whatever stale entries it still holds from an earlier life.
                let may_commit = self.status == Status::Secondary
                    || self.learning.is_some_and(|l| l.target.is_some());
                if may_commit {
                    // Only mutations above the committed decree can move it: one at or
                    // below carries a commit point below itself. (Scanning the whole
                    // cache of committed mutations here cost a tenth of the simulator's
                    // CPU, and as much per flush on a server's secondaries.)
                    let piggybacked = self
                        .log
                        .range(self.committed.saturating_add(1)..)
                        .map(|(_, m)| m.last_committed)
                        .max()
                        .unwrap_or(0);
                    let learned = self.learning.and_then(|l| l.target).unwrap_or(0);
                    self.commit_to(piggybacked.max(learned), out);
                }
                self.maybe_finish_learning(out);
            }
            _ => {}
        }
    }
}
