//! The simulated meta server: beacons into the meta server's own failure detector,
//! configuration updates through the guardian's ballot CAS, dead nodes, and the guardian's
//! cure.

use super::*;

impl Sim {
    pub(crate) fn on_meta_message(&mut self, from: Addr, msg: Msg) {
        let Addr::Node(node) = from else { return };
        match msg {
            Msg::Beacon {
                sent_local_ms,
                info,
            } => {
                self.meta_fd.beacon(node, self.now);
                if let Some(i) = info {
                    self.meta_info.insert(node, i);
                }
                self.send(
                    Addr::Meta,
                    Addr::Node(node),
                    Msg::BeaconAck { sent_local_ms },
                );
                // Config sync rides on some beacons only (Pegasus syncs every 30 s), so a
                // node cannot rely on hearing its new role together with its lease.
                if self.rng.chance(200) {
                    let c = self.meta_config.clone();
                    self.send(Addr::Meta, Addr::Node(node), Msg::Config(c));
                }
            }
            Msg::ConfigRequest {
                kind,
                node: about,
                config,
            } => {
                let req = ConfigUpdate {
                    kind,
                    node: about,
                    config,
                };
                match guardian::apply_update(&self.meta_config, &req) {
                    Ok(UpdateOutcome::Applied(next)) => self.meta_write(next),
                    Ok(UpdateOutcome::AlreadyApplied) => {
                        let c = self.meta_config.clone();
                        self.send(Addr::Meta, Addr::Node(node), Msg::Config(c));
                    }
                    Err(_) => self.send(Addr::Meta, Addr::Node(node), Msg::ConfigRejected),
                }
            }
            _ => {}
        }
    }

    pub(crate) fn meta_write(&mut self, next: PartitionConfig) {
        for d in &next.last_drops {
            if !self.meta_config.last_drops.contains(d) {
                self.meta_drop_times.insert(*d, self.now);
            }
        }
        let old = self.meta_config.members();
        self.meta_config = next.clone();
        self.trace(|| format!("meta config {next:?}"));
        let mut to: BTreeSet<NodeId> = next.members().into_iter().collect();
        to.extend(old);
        for n in to {
            self.send(Addr::Meta, Addr::Node(n), Msg::Config(next.clone()));
        }
    }

    pub(crate) fn meta_tick(&mut self) {
        // Failure detection: no beacon within the grace period.
        let nodes: Vec<NodeId> = self.nodes.keys().copied().collect();
        let dead = self.meta_fd.check(nodes, self.now);
        for n in dead {
            self.trace(|| format!("meta declares {n} dead"));
            match guardian::on_node_dead(&self.meta_config, n) {
                DeadNodeAction::Write(next) => self.meta_write(next),
                DeadNodeAction::Propose { target, node } => {
                    self.send(
                        Addr::Meta,
                        Addr::Node(target),
                        Msg::Proposal {
                            kind: ConfigType::DowngradeToInactive,
                            node,
                        },
                    );
                }
                DeadNodeAction::Nothing => {}
            }
        }
        let alive = self.meta_fd.alive(self.now);
        let view = ClusterView {
            alive,
            now_ms: self.now,
            drop_time_ms: self.meta_drop_times.clone(),
            replica_info: self.meta_info.clone(),
            ..ClusterView::default()
        };
        let opts = GuardianOptions {
            min_2pc_replicas: 2,
            dropout_delay_ms: 4_000,
        };
        match guardian::cure(&self.meta_config, &view, &opts) {
            Cure::Propose { target, kind, node } => {
                self.send(Addr::Meta, Addr::Node(target), Msg::Proposal { kind, node });
            }
            Cure::NeedOperator(why) => self.trace(|| format!("guardian: {why}")),
            Cure::Nothing => {}
        }
    }
}
