//! Learning: the primary invites a learner and sends it its log or a checkpoint plus the
//! log after it; the learner installs what it gets and joins once caught up.

use super::*;

impl Replica {
    pub(super) fn on_add_learner(
        &mut self,
        from: NodeId,
        config: PartitionConfig,
        signature: u64,
        out: &mut Vec<Action>,
    ) {
        if config.ballot < self.config.ballot
            || config.primary != Some(from)
            || config.is_member(self.me)
        {
            return;
        }
        let same_round = self.status == Status::PotentialSecondary
            && self
                .learning
                .is_some_and(|l| l.signature == signature && l.primary == from);
        if same_round && self.learning.is_some_and(|l| l.target.is_some()) {
            // A repeated invitation for a round already answered: if we finished, the primary
            // may have lost our completion (or meta refused the upgrade): say it again.
            if self.learning.is_some_and(|l| l.notified) {
                out.push(Action::Send {
                    to: from,
                    msg: PeerMessage::LearnCompleted { signature },
                });
            }
            return;
        }
        self.config = config;
        self.status = Status::PotentialSecondary;
        self.learning = Some(Learning {
            signature,
            primary: from,
            target: None,
            learned_through: 0,
            notified: false,
        });
        out.push(Action::Send {
            to: from,
            msg: PeerMessage::Learn {
                signature,
                last_committed: self.committed,
            },
        });
    }

    /// Whether we are primary and `signature` is the round we run with `learner`.
    pub(super) fn is_current_learning_round(&self, learner: NodeId, signature: u64) -> bool {
        self.status == Status::Primary
            && self
                .learners
                .get(&learner)
                .is_some_and(|l| l.signature == signature)
    }

    pub(super) fn on_learn(
        &mut self,
        from: NodeId,
        signature: u64,
        learner_committed: Decree,
        out: &mut Vec<Action>,
    ) {
        if !self.is_current_learning_round(from, signature) {
            return;
        }
        let retry = |me: &Self| Action::Send {
            to: from,
            msg: PeerMessage::LearnResponse(LearnResponse {
                signature,
                config: me.config.clone(),
                checkpoint: None,
                mutations: Vec::new(),
                committed: me.committed,
                retry: true,
            }),
        };
        if learner_committed > self.last_prepared() {
            // The learner committed decrees we do not even hold: we cannot be a correct
            // primary for it yet. (PacificA guarantees a new primary holds every committed
            // decree prepared, so this only happens transiently.)
            out.push(retry(self));
            return;
        }
        // A returning stale primary may have committed more than we have so far (case 603):
        // those decrees are in our prepared list with the same content, so it can join; it
        // acknowledges our re-proposals of them at once.
        let from_decree = learner_committed.saturating_add(1);
        let cache_min = self.log.keys().next().copied();
        if cache_min.is_some_and(|m| m <= from_decree) || from_decree > self.last_prepared() {
            self.send_learn_response(from, signature, None, Vec::new(), out);
        } else {
            out.push(Action::BuildLearnState {
                learner: from,
                signature,
                from: from_decree,
            });
        }
    }

    pub(super) fn on_learn_state_ready(
        &mut self,
        learner: NodeId,
        signature: u64,
        checkpoint: Option<Checkpoint>,
        mutations: Vec<Mutation>,
        out: &mut Vec<Action>,
    ) {
        if !self.is_current_learning_round(learner, signature) {
            return;
        }
        self.send_learn_response(learner, signature, checkpoint, mutations, out);
    }

    /// Sends the learner everything from the checkpoint (or its own state) through our last
    /// prepared decree; from then on it receives every prepare.
    pub(super) fn send_learn_response(
        &mut self,
        learner: NodeId,
        signature: u64,
        checkpoint: Option<Checkpoint>,
        logged: Vec<Mutation>,
        out: &mut Vec<Action>,
    ) {
        let mut all: BTreeMap<Decree, Mutation> =
            logged.into_iter().map(|m| (m.decree, m)).collect();
        for (d, m) in &self.log {
            let keep = all.get(d).is_none_or(|old| old.ballot <= m.ballot);
            if keep {
                all.insert(*d, m.clone());
            }
        }
        let start = checkpoint.as_ref().map_or(0, |c| c.decree);
        let mutations: Vec<Mutation> = all.into_values().filter(|m| m.decree > start).collect();
        let prepare_start = self.last_prepared().saturating_add(1);
        if let Some(l) = self.learners.get_mut(&learner) {
            l.prepare_start = Some(prepare_start);
        }
        out.push(Action::Send {
            to: learner,
            msg: PeerMessage::LearnResponse(LearnResponse {
                signature,
                config: self.config.clone(),
                checkpoint,
                mutations,
                committed: self.committed,
                retry: false,
            }),
        });
    }

    pub(super) fn on_learn_response(
        &mut self,
        from: NodeId,
        r: LearnResponse,
        out: &mut Vec<Action>,
    ) {
        let LearnResponse {
            signature,
            config,
            checkpoint,
            mutations,
            committed,
            retry,
        } = r;
        if self.status != Status::PotentialSecondary
            || self
                .learning
                .is_none_or(|l| l.signature != signature || l.primary != from)
        {
            return;
        }
        if self.learning.is_some_and(|l| l.target.is_some()) {
            // A duplicate of a response already applied.
            return;
        }
        let limit = committed.saturating_add(self.opts.max_prepare_gap);
        if mutations.iter().any(|m| m.decree > limit)
            || checkpoint.as_ref().is_some_and(|c| c.decree > committed)
        {
            // No primary holds prepared decrees that far past its committed one, nor a
            // checkpoint past it.
            return;
        }
        // Fuzz finding (`replica_events`): a checkpoint at or behind what this learner already
        // committed (an answer to an older `Learn`, or an earlier round's install finished
        // meanwhile) moved `committed` back: storage replaced by an older state, decrees
        // applied twice. It holds nothing the learner lacks; the mutations after the
        // learner's committed decree still apply.
        let checkpoint = checkpoint.filter(|c| c.decree > self.committed);
        if config.ballot > self.config.ballot {
            self.config = config;
        }
        if retry {
            out.push(Action::Send {
                to: from,
                msg: PeerMessage::Learn {
                    signature,
                    last_committed: self.committed,
                },
            });
            return;
        }
        let learned_through = mutations
            .iter()
            .map(|m| m.decree)
            .max()
            .unwrap_or(0)
            .max(checkpoint.as_ref().map_or(0, |c| c.decree));
        self.learning = Some(Learning {
            signature,
            primary: from,
            target: Some(committed),
            learned_through,
            notified: false,
        });
        if let Some(cp) = checkpoint {
            // Storage is replaced up to the checkpoint. Entries after it stay: prepares the
            // primary sent us from our start decree may have arrived (and been acknowledged)
            // before this response; the mutations below overwrite any stale ones.
            self.log.retain(|d, _| *d > cp.decree);
            self.logged.retain(|d| *d > cp.decree);
            self.committed = cp.decree;
            self.observe_timestamp(cp.timestamp_us);
            self.installing = true;
            out.push(Action::InstallCheckpoint(cp));
        }
        for m in mutations {
            if m.decree <= self.committed {
                continue;
            }
            let newer = self
                .log
                .get(&m.decree)
                .is_none_or(|old| old.ballot < m.ballot || (old.ballot == m.ballot && old != &m));
            if newer {
                self.append(m, out);
            }
        }
        self.commit_to(committed, out);
        self.maybe_finish_learning(out);
    }

    pub(super) fn on_checkpoint_installed(&mut self, decree: Decree, out: &mut Vec<Action>) {
        if self.installing && decree == self.committed {
            self.installing = false;
            let target = std::mem::take(&mut self.deferred_commit);
            self.commit_to(target, out);
            self.maybe_finish_learning(out);
        }
    }

    pub(super) fn maybe_finish_learning(&mut self, out: &mut Vec<Action>) {
        let Some(l) = self.learning else {
            return;
        };
        let Some(target) = l.target else {
            return;
        };
        // Everything the response carried must be durable first (found by the cluster
        // simulator, seed 42308: a learner whose log flush failed with EMFILE had already
        // reported completion; it was upgraded without a decree the primary committed
        // without it, and later promoted).
        let durable = (self.committed.saturating_add(1)..=l.learned_through)
            .all(|d| self.logged.contains(&d));
        if self.status == Status::PotentialSecondary
            && !l.notified
            && !self.installing
            && self.committed >= target
            && durable
        {
            out.push(Action::Send {
                to: l.primary,
                msg: PeerMessage::LearnCompleted {
                    signature: l.signature,
                },
            });
            self.learning = Some(Learning {
                notified: true,
                ..l
            });
        }
    }
}
