//! Messages from peers: their dispatch, adopting a newer configuration they carry, and a
//! secondary's handling of prepares and group checks.

use super::*;

impl Replica {
    pub(super) fn on_message(&mut self, from: NodeId, msg: PeerMessage, out: &mut Vec<Action>) {
        match msg {
            PeerMessage::Prepare { config, mutation } => {
                self.on_prepare(from, config, mutation, out)
            }
            PeerMessage::PrepareAck { ballot, decree, ok } => {
                self.on_prepare_ack(from, ballot, decree, ok, out)
            }
            PeerMessage::GroupCheck {
                config,
                last_committed,
            } => self.on_group_check(from, config, last_committed, out),
            PeerMessage::GroupCheckAck { ballot, ok } => {
                self.group_check_waiting.remove(&from);
                if self.status == Status::Primary && (!ok || ballot > self.config.ballot) {
                    if ballot > self.config.ballot {
                        self.status = Status::Inactive;
                        self.abort_writes(out);
                    } else {
                        self.remote_failure(from, out);
                    }
                }
            }
            PeerMessage::AddLearner { config, signature } => {
                self.on_add_learner(from, config, signature, out)
            }
            PeerMessage::Learn {
                signature,
                last_committed,
            } => self.on_learn(from, signature, last_committed, out),
            PeerMessage::LearnResponse(r) => self.on_learn_response(from, r, out),
            PeerMessage::LearnCompleted { signature } => {
                if self.status == Status::Primary
                    && self
                        .learners
                        .get(&from)
                        .is_some_and(|l| l.signature == signature)
                    && self.config_request.is_none()
                {
                    let mut next = self.config.clone();
                    next.secondaries.push(from);
                    next.ballot = next.ballot.saturating_add(1);
                    self.request_config(ConfigType::UpgradeToSecondary, from, next, out);
                }
            }
        }
    }

    /// Adopts a newer configuration carried by a primary's message. Returns false if the
    /// message is stale.
    pub(super) fn adopt(&mut self, config: &PartitionConfig, out: &mut Vec<Action>) -> bool {
        if config.ballot < self.config.ballot {
            return false;
        }
        if config.ballot > self.config.ballot {
            self.on_config(config.clone(), out);
        }
        true
    }

    pub(super) fn on_prepare(
        &mut self,
        from: NodeId,
        config: PartitionConfig,
        m: Mutation,
        out: &mut Vec<Action>,
    ) {
        let nack = |me: &Self| Action::Send {
            to: from,
            msg: PeerMessage::PrepareAck {
                ballot: me.config.ballot,
                decree: m.decree,
                ok: false,
            },
        };
        if !self.adopt(&config, out) || config.primary != Some(from) || m.ballot != config.ballot {
            out.push(nack(self));
            return;
        }
        let learning_ok = self.status == Status::PotentialSecondary && self.learning.is_some();
        if self.status != Status::Secondary && !learning_ok {
            out.push(nack(self));
            return;
        }
        if m.decree <= self.committed {
            out.push(Action::Send {
                to: from,
                msg: PeerMessage::PrepareAck {
                    ballot: self.config.ballot,
                    decree: m.decree,
                    ok: true,
                },
            });
            return;
        }
        // A secondary is never further behind than the primary's 2PC window plus the
        // commits it has not heard of yet; a learner's log runs contiguously to the primary's
        // once its learn response is in. A prepare further out would leave a gap of holes
        // that a new primary fills one by one: refuse it (`ERR_CAPACITY_EXCEEDED` in
        // Pegasus), and the primary has this replica removed and re-learned.
        let base = if self.status == Status::Secondary {
            self.committed
        } else {
            self.last_prepared()
        };
        if m.decree > base.saturating_add(self.opts.max_prepare_gap) {
            out.push(nack(self));
            return;
        }
        match self.log.get(&m.decree) {
            Some(old) if old == &m => {
                // A resend: acknowledge once it is logged.
                if self.logged.contains(&m.decree) {
                    out.push(Action::Send {
                        to: from,
                        msg: PeerMessage::PrepareAck {
                            ballot: self.config.ballot,
                            decree: m.decree,
                            ok: true,
                        },
                    });
                }
            }
            Some(old) if old.ballot == m.ballot => {
                // Two different mutations for one decree under one ballot: impossible unless
                // something is broken. Stop this replica rather than guess.
                self.fail(out);
            }
            _ => self.append(m, out),
        }
    }

    pub(super) fn on_group_check(
        &mut self,
        from: NodeId,
        config: PartitionConfig,
        last_committed: Decree,
        out: &mut Vec<Action>,
    ) {
        if !self.adopt(&config, out) || config.primary != Some(from) {
            out.push(Action::Send {
                to: from,
                msg: PeerMessage::GroupCheckAck {
                    ballot: self.config.ballot,
                    ok: false,
                },
            });
            return;
        }
        let mut ok = matches!(self.status, Status::Secondary | Status::PotentialSecondary);
        if self.status == Status::Secondary {
            self.commit_to(last_committed, out);
            if last_committed > self.committed
                && !self.logged.contains(&(self.committed.saturating_add(1)))
            {
                // A gap: the primary committed a decree we never got. We cannot catch up by
                // prepares; be removed and re-learn.
                ok = false;
            }
        }
        out.push(Action::Send {
            to: from,
            msg: PeerMessage::GroupCheckAck {
                ballot: self.config.ballot,
                ok,
            },
        });
    }
}
