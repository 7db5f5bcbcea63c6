//! The leader loop: each tick purges dropped tables, detects dead nodes, records health
//! and runs the guardian pass (`crate::pass`), carrying out its writes and proposals.

use super::*;

impl MetaServer {
    /// One round of failure detection and curing (leader only).
    pub(super) async fn tick(&self) {
        let now = Instant::now();
        self.fd().detector.start_term(self.ms(now));
        // Purge dropped tables past their reserve time.
        let wall = now_ms();
        let expired: Vec<i32> = self.read(|s| {
            s.apps
                .values()
                .filter(|a| a.status == AppStatus::Dropped && wall > a.expire_ms)
                .map(|a| a.id)
                .collect()
        });
        for app_id in expired {
            let _ = self
                .write(Command::PurgeApp {
                    app_id,
                    now_ms: wall,
                })
                .await;
        }
        // Failure detection: no beacon within the grace period since this leader started.
        let newly_dead: Vec<NodeId> = {
            let nodes = self.read(|s| s.nodes.clone());
            let now_ms = self.ms(now);
            let mut fd = self.fd();
            let dead = fd.detector.check(nodes, now_ms);
            for n in &dead {
                fd.disks.remove(n);
            }
            dead
        };
        metrics::counter!("pegasus_meta_dead_nodes_total").increment(newly_dead.len() as u64);
        for n in &newly_dead {
            tracing::warn!(
                "replica server {:?} is dead (no beacon for {} ms)",
                addr_of(*n),
                self.fd_config.fd_grace_ms
            );
        }
        self.record_health(now);
        let level = self.effective_level(now);
        if level >= LEVEL_FREEZED {
            self.handle_dead_members(now).await;
        }
        if level >= LEVEL_STEADY {
            self.cure_all(now).await;
        }
    }

    /// Partition health and node gauges (leader only).
    pub(super) fn record_health(&self, now: Instant) {
        let min = self.config.mutation_2pc_min_replica_count;
        let (mut healthy, mut ill, mut unwritable, mut unreadable) = (0u64, 0u64, 0u64, 0u64);
        self.read(|s| {
            for app in s.apps.values().filter(|a| a.status == AppStatus::Available) {
                for p in &app.partitions {
                    let members = p.config.members().len();
                    if p.config.primary.is_none() {
                        unreadable += 1;
                    } else if members < min {
                        unwritable += 1;
                    } else if p.config.is_healthy() {
                        healthy += 1;
                    } else {
                        ill += 1;
                    }
                }
            }
        });
        for (health, n) in [
            ("healthy", healthy),
            ("writable_ill", ill),
            ("unwritable", unwritable),
            ("unreadable", unreadable),
        ] {
            metrics::gauge!("pegasus_meta_partitions", "health" => health).set(n as f64);
        }
        metrics::gauge!("pegasus_meta_alive_nodes").set(self.alive_nodes(now).len() as f64);
        metrics::gauge!("pegasus_meta_nodes_disk_insufficient")
            .set(self.disk_insufficient(now).len() as f64);
        let short = self.partitions_short_of_disk(now);
        metrics::gauge!("pegasus_meta_partitions_short_of_disk").set(short.len() as f64);
        let to_log: Vec<(Gpid, Vec<NodeId>)> = {
            let mut fd = self.fd();
            fd.short_of_disk_logged
                .retain(|_, at| elapsed_ms(*at, now) < SHORT_OF_DISK_LOG_MS);
            short
                .into_iter()
                .filter(|(g, _)| {
                    let fresh = !fd.short_of_disk_logged.contains_key(g);
                    if fresh {
                        fd.short_of_disk_logged.insert(*g, now);
                    }
                    fresh
                })
                .collect()
        };
        for (gpid, nodes) in to_log {
            let nodes: Vec<String> = nodes.into_iter().map(addr_text).collect();
            tracing::warn!(
                "partition {gpid:?} stays short of copies: only {} could take one, and their disk \
                 is insufficient",
                nodes.join(", ")
            );
        }
    }

    /// Drops dead primaries (meta writes the change itself) and asks primaries to drop dead
    /// secondaries. Level-triggered: runs every tick until the configuration reflects it.
    pub(super) async fn handle_dead_members(&self, now: Instant) {
        let dead = self.fd().detector.dead().clone();
        if dead.is_empty() {
            return;
        }
        let affected: Vec<PartitionConfig> = self.read(|s| {
            s.apps
                .values()
                .filter(|a| a.status == AppStatus::Available)
                .flat_map(|a| a.partitions.iter().map(|p| p.config.clone()))
                .filter(|pc| pc.members().iter().any(|m| dead.contains(m)))
                .collect()
        });
        self.carry_out_all(pass::dead_members(&affected, &dead), now)
            .await;
    }

    /// Carries out a pass's decisions together: its writes go to Raft at once (one log
    /// append and fsync for all of them, instead of one round trip each — a dead node that
    /// led 300 partitions is dropped from all of them in one commit, not in 300).
    pub(super) async fn carry_out_all(&self, actions: Vec<Action>, now: Instant) {
        futures::future::join_all(actions.into_iter().map(|a| self.carry_out(a, now))).await;
    }

    /// Carries out one decision of the guardian pass.
    pub(super) async fn carry_out(&self, action: Action, now: Instant) {
        match action {
            Action::Write {
                expected_ballot,
                next,
                notify,
            } => {
                match self
                    .write(Command::WritePartition {
                        expected_ballot,
                        next,
                        now_ms: now_ms(),
                    })
                    .await
                {
                    Ok(Ok(Reply::Partition(written))) => {
                        metrics::counter!("pegasus_meta_failovers_total").increment(1);
                        tracing::info!(
                            "partition {:?}: dead primary dropped, ballot {}",
                            written.gpid,
                            written.ballot
                        );
                        self.push_config(&written, notify);
                    }
                    other => tracing::debug!("dropping a dead primary: {other:?}"),
                }
            }
            Action::Propose {
                config,
                target,
                kind,
                node,
            } => self.propose(&config, target, kind, node, now),
            Action::NeedOperator { gpid, why } => tracing::warn!("partition {gpid:?}: {why}"),
        }
    }

    pub(super) fn propose(
        &self,
        pc: &PartitionConfig,
        target: NodeId,
        kind: ConfigType,
        node: NodeId,
        now: Instant,
    ) {
        let now_ms = self.ms(now);
        if !self.fd().proposals.admit(pc, kind, node, now_ms) {
            return;
        }
        let Some(app) = self.read(|s| s.apps.get(&pc.gpid.app_id).map(summary)) else {
            return;
        };
        tracing::debug!(
            "propose {kind:?} of {node} to {target} for {:?} at ballot {}",
            pc.gpid,
            pc.ballot
        );
        self.send_to_node(
            target,
            names::PROPOSAL,
            Proposal {
                kind,
                node,
                config: pc.clone(),
                app,
            },
        );
    }

    pub(super) async fn cure_all(&self, now: Instant) {
        // One snapshot of the reports: which nodes reported, and what each holds.
        let (reported, reports) = {
            let fd = self.fd();
            let reported = fd.reports.keys().copied().collect();
            let held = fd
                .reports
                .iter()
                .flat_map(|(n, rs)| {
                    rs.iter().map(|r| {
                        (
                            (r.gpid, *n),
                            ReplicaInfo {
                                ballot: r.ballot,
                                last_committed: r.last_committed,
                                last_prepared: r.last_prepared,
                                fresh: r.fresh,
                            },
                        )
                    })
                })
                .collect();
            (reported, held)
        };
        let nodes = NodesView {
            alive: self.alive_nodes(now),
            reported,
            reports,
            disk_insufficient: self.disk_insufficient(now),
            now_ms: now_ms(),
        };
        let partitions: Vec<PartitionView> = self.read(|s| {
            s.apps
                .values()
                .filter(|a| a.status == AppStatus::Available)
                .flat_map(|a| {
                    a.partitions.iter().map(|p| PartitionView {
                        config: p.config.clone(),
                        drop_ms: p.drop_ms.clone(),
                    })
                })
                .collect()
        });
        let opts = GuardianOptions {
            min_2pc_replicas: self.config.mutation_2pc_min_replica_count,
            dropout_delay_ms: self.config.replica_assign_delay_ms_for_dropouts,
        };
        self.carry_out_all(pass::cure_all(&partitions, &nodes, &opts), now)
            .await;
    }
}

pub(super) async fn leader_loop(server: std::sync::Weak<MetaServer>) {
    loop {
        let Some(s) = server.upgrade() else { return };
        let interval = Duration::from_millis(s.fd_config.fd_check_interval_ms);
        metrics::gauge!("pegasus_meta_is_leader").set(if s.is_ready_leader() { 1.0 } else { 0.0 });
        if s.is_ready_leader() {
            s.tick().await;
        } else {
            let mut fd = s.fd();
            if fd.detector.in_term() {
                // Lost leadership: forget the soft state; the next term starts afresh.
                *fd = Fd::new(s.fd_config.fd_grace_ms);
            }
        }
        drop(s);
        tokio::time::sleep(interval).await;
    }
}
