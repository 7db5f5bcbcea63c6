//! Reconfiguration: meta's configurations adopted, a new primary's takeover (re-proposing
//! every uncommitted decree), and meta's proposals carried out by the primary.

use super::*;

impl Replica {
    pub(super) fn on_config(&mut self, config: PartitionConfig, out: &mut Vec<Action>) {
        if config.ballot < self.config.ballot {
            return;
        }
        let was = self.status;
        let same_ballot = config.ballot == self.config.ballot;
        if same_ballot && was != Status::Inactive {
            return;
        }
        // Did we ask for exactly this (e.g. to become primary)?
        let requested = self
            .config_request
            .as_ref()
            .is_some_and(|r| r.2.ballot == config.ballot && r.2.primary == config.primary);
        self.config = config;
        if self
            .config_request
            .as_ref()
            .is_some_and(|r| r.2.ballot <= self.config.ballot)
        {
            self.config_request = None;
        }
        if self.config.primary == Some(self.me) {
            if was == Status::Primary && same_ballot {
                return;
            }
            if requested || was == Status::Primary {
                self.status = Status::Primary;
                self.fresh = false;
                self.become_primary(out);
            } else if (self.fresh || self.torn_tail) && self.config.ballot > 0 {
                // Listed as primary but holding nothing (rebuilt empty), or perhaps not all
                // we acknowledged (torn log tail): have meta remove us.
                self.status = Status::Inactive;
                let mut next = self.config.clone();
                next.primary = None;
                next.ballot = next.ballot.saturating_add(1);
                self.request_config(ConfigType::DowngradeToInactive, self.me, next, out);
            } else {
                // Meta still lists us as primary from before a restart: our log may lack what
                // we proposed then, so serve only under a new ballot.
                self.status = Status::Inactive;
                let mut next = self.config.clone();
                next.ballot = next.ballot.saturating_add(1);
                self.request_config(ConfigType::PrimaryForceUpdateBallot, self.me, next, out);
            }
        } else if self.config.secondaries.contains(&self.me) {
            // Only a replica that followed the group (or finished learning) may act as a
            // secondary; one that restarted or fell behind must learn again first: until
            // then it answers group checks negatively and the primary has it removed.
            let caught_up = matches!(was, Status::Primary | Status::Secondary)
                || (was == Status::PotentialSecondary && self.learning.is_some_and(|l| l.notified));
            if was == Status::Primary {
                self.abort_writes(out);
            }
            if caught_up {
                self.status = Status::Secondary;
                self.learning = None;
                self.fresh = false;
            } else {
                self.status = Status::Inactive;
            }
        } else if was == Status::PotentialSecondary && self.config.primary.is_some() {
            // Still learning under a newer configuration (a learner is not a member).
        } else {
            if was == Status::Primary {
                self.abort_writes(out);
            }
            self.status = Status::Inactive;
        }
    }

    /// PacificA reconciliation: re-propose every uncommitted decree with our ballot.
    pub(super) fn become_primary(&mut self, out: &mut Vec<Action>) {
        // Writes this node proposed under its previous ballot keep their clients: they are
        // re-proposed below and answered when they commit.
        let mut waiting: BTreeMap<Decree, Vec<u64>> = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|(d, p)| (d, p.clients))
            .collect();
        self.learners.clear();
        self.group_check_waiting.clear();
        self.settled_check = None;
        // Learning signatures start afresh for every primary term and embed its ballot: a
        // restarted primary must never reuse a signature a learner remembers as finished.
        self.next_signature = u64::try_from(self.config.ballot)
            .unwrap_or(0)
            .wrapping_shl(32)
            | 1;
        let last = self.last_prepared();
        if last.saturating_sub(self.committed) > self.opts.max_prepare_gap {
            // More uncommitted decrees than any primary lets into 2PC: this state did not
            // come from a correct group. Filling the holes would be unbounded work.
            tracing::error!(
                "replica {:?}: {} uncommitted decrees after {}: refusing to lead",
                self.config.gpid,
                last.saturating_sub(self.committed),
                self.committed
            );
            self.fail(out);
            return;
        }
        self.read_barrier = last;
        self.last_group_check_ms = 0;
        // Fuzz finding (`replica_events`): a hole is stamped now, above every timestamp held,
        // so a held mutation after it that kept its older stamp made timestamps go back along
        // the decrees — and storage compacts expired records at the last applied timestamp,
        // relying on it never going back. Every decree from the first hole on is uncommitted
        // everywhere (committing it needs this replica's acknowledgement of it and of every
        // decree before it), so those are stamped anew too.
        // The same holds for a held mutation stamped below one before it: a secondary keeps
        // an old primary's entries past what a newer primary re-proposed to it (sim seed 95:
        // decree 61 restamped by one primary, 62 still held from an older one). Such an
        // entry is uncommitted everywhere too (the committed prefix is stamped in order).
        // Fuzz finding (`replica_events`): so is one stamped *equal* to the one before it
        // (stamps strictly increase); re-proposed as is, two decrees committed with one
        // timestamp.
        let mut restamp = false;
        let mut floor = self.committed_timestamp_us;
        for decree in (self.committed.saturating_add(1))..=last {
            if self
                .log
                .get(&decree)
                .is_some_and(|m| m.timestamp_us <= floor)
            {
                restamp = true;
            }
            let m = match self.log.get(&decree).cloned() {
                Some(m) if !restamp => Mutation {
                    ballot: self.config.ballot,
                    last_committed: self.committed,
                    ..m
                },
                Some(m) => Mutation {
                    ballot: self.config.ballot,
                    last_committed: self.committed,
                    timestamp_us: self.stamp(),
                    ..m
                },
                None => {
                    restamp = true;
                    let ts = self.stamp();
                    Mutation::empty(self.config.ballot, decree, self.committed, ts)
                }
            };
            floor = floor.max(m.timestamp_us);
            // Re-logged under the new ballot: commit waits for the local log again.
            let clients = waiting.remove(&decree).unwrap_or_default();
            self.start_2pc(m, clients, out);
        }
        let orphans: Vec<u64> = waiting.into_values().flatten().collect();
        if !orphans.is_empty() {
            out.push(Action::Refuse {
                clients: orphans,
                reason: Refusal::Aborted,
            });
        }
        self.try_commit(out);
    }

    pub(super) fn on_proposal(&mut self, kind: ConfigType, node: NodeId, out: &mut Vec<Action>) {
        if self.config_request.is_some() {
            return;
        }
        let mut next = self.config.clone();
        next.ballot = next.ballot.saturating_add(1);
        match kind {
            ConfigType::AssignPrimary | ConfigType::UpgradeToPrimary if node == self.me => {
                if self.config.primary.is_some() || (self.fresh && self.config.ballot > 0) {
                    return;
                }
                next.secondaries.retain(|n| *n != node);
                next.primary = Some(node);
                next.last_committed_decree = self.committed;
                self.request_config(kind, node, next, out);
            }
            ConfigType::AddSecondary if self.status == Status::Primary => {
                if self.config.is_member(node) {
                    return;
                }
                // Meta repeats its proposal until the node is a member: keep the round that
                // is already running (re-inviting in case the invitation was lost).
                let signature = match self.learners.get(&node) {
                    Some(l) => l.signature,
                    None => {
                        let signature = self.next_signature;
                        self.next_signature = self.next_signature.wrapping_add(1);
                        self.learners.insert(
                            node,
                            Learner {
                                signature,
                                prepare_start: None,
                            },
                        );
                        signature
                    }
                };
                out.push(Action::Send {
                    to: node,
                    msg: PeerMessage::AddLearner {
                        config: self.config.clone(),
                        signature,
                    },
                });
            }
            // Meta moves the role away (this node's disk is short of space): step down to a
            // secondary; meta then promotes a secondary with room, which reconciles as after
            // any primary change.
            ConfigType::DowngradeToSecondary
                if node == self.me && self.status == Status::Primary =>
            {
                next.primary = None;
                next.secondaries.push(node);
                next.last_committed_decree = self.committed;
                self.request_config(kind, node, next, out);
            }
            ConfigType::Remove | ConfigType::DowngradeToInactive
                if self.status == Status::Primary =>
            {
                if !self.config.secondaries.contains(&node) {
                    return;
                }
                next.secondaries.retain(|n| *n != node);
                self.request_config(kind, node, next, out);
            }
            _ => {}
        }
    }
}
