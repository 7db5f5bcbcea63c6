//! The simulated meta server: beacons into the meta server's own failure detector,
//! configuration updates through the guardian's ballot CAS, and each tick the meta server's
//! own guardian pass over every partition (dead members, placement and cure, proposal
//! re-sends). Only the carrying out of its actions is the simulator's.

use super::*;
use pegasus_meta::detector::FailureDetector;
use pegasus_meta::pass::Proposals;

/// Meta's state: the partitions' configurations and the leader's soft state.
pub(crate) struct Meta {
    pub(crate) configs: BTreeMap<Gpid, PartitionConfig>,
    /// When each partition's dropped members were dropped, ms.
    drop_ms: BTreeMap<Gpid, BTreeMap<NodeId, u64>>,
    /// The meta server's failure detector (one meta, leader from the start).
    fd: FailureDetector,
    /// Each node's last full list of replicas.
    reports: BTreeMap<NodeId, Vec<(Gpid, ReplicaInfo)>>,
    proposals: Proposals,
}

impl Meta {
    pub(crate) fn new(configs: BTreeMap<Gpid, PartitionConfig>) -> Self {
        let mut fd = FailureDetector::new(GRACE_MS);
        fd.start_term(0);
        Self {
            configs,
            drop_ms: BTreeMap::new(),
            fd,
            reports: BTreeMap::new(),
            proposals: Proposals::new(PROPOSAL_RESEND_MS),
        }
    }
}

impl Sim {
    pub(crate) fn on_meta_message(&mut self, from: Addr, msg: Msg) {
        let Addr::Node(node) = from else { return };
        match msg {
            Msg::Beacon {
                sent_local_ms,
                replicas,
            } => {
                self.meta.fd.beacon(node, self.now);
                let held: BTreeSet<Gpid> = replicas.iter().map(|(g, _)| *g).collect();
                self.meta.reports.insert(node, replicas);
                self.send(
                    Addr::Meta,
                    Addr::Node(node),
                    Msg::BeaconAck { sent_local_ms },
                );
                // Config sync rides on some beacons only (Pegasus syncs every 30 s), so a
                // node cannot rely on hearing its new role together with its lease. It
                // carries every partition the node holds or is a member of.
                if self.rng.chance(200) {
                    let sync: Vec<PartitionConfig> = self
                        .meta
                        .configs
                        .values()
                        .filter(|c| c.is_member(node) || held.contains(&c.gpid))
                        .cloned()
                        .collect();
                    for c in sync {
                        self.send(Addr::Meta, Addr::Node(node), Msg::Config(c));
                    }
                }
            }
            Msg::ConfigRequest {
                kind,
                node: about,
                config,
            } => {
                let gpid = config.gpid;
                let Some(current) = self.meta.configs.get(&gpid).cloned() else {
                    return;
                };
                let req = ConfigUpdate {
                    kind,
                    node: about,
                    config,
                };
                match guardian::apply_update(&current, &req) {
                    Ok(UpdateOutcome::Applied(next)) => self.meta_write(next),
                    Ok(UpdateOutcome::AlreadyApplied) => {
                        self.send(Addr::Meta, Addr::Node(node), Msg::Config(current));
                    }
                    Err(_) => {
                        self.send(Addr::Meta, Addr::Node(node), Msg::ConfigRejected(gpid));
                    }
                }
            }
            _ => {}
        }
    }

    /// Meta's write of a partition's next configuration, pushed to its old and new members.
    pub(crate) fn meta_write(&mut self, next: PartitionConfig) {
        let gpid = next.gpid;
        let old = self.meta.configs.get(&gpid).cloned().unwrap_or_default();
        let drops = self.meta.drop_ms.entry(gpid).or_default();
        for d in &next.last_drops {
            if !old.last_drops.contains(d) {
                drops.insert(*d, self.now);
            }
        }
        self.meta.configs.insert(gpid, next.clone());
        self.trace(|| format!("meta config {next:?}"));
        let mut to: BTreeSet<NodeId> = next.members().into_iter().collect();
        to.extend(old.members());
        for n in to {
            self.send(Addr::Meta, Addr::Node(n), Msg::Config(next.clone()));
        }
    }

    /// One pass of the meta server's leader loop: failure detection, then the guardian pass.
    pub(crate) fn meta_tick(&mut self) {
        let nodes: Vec<NodeId> = self.nodes.keys().copied().collect();
        for n in self.meta.fd.check(nodes, self.now) {
            self.trace(|| format!("meta declares {n} dead"));
        }
        let dead = self.meta.fd.dead().clone();
        for action in pass::dead_members(self.meta.configs.values(), &dead) {
            self.carry_out(action);
        }
        let view = NodesView {
            alive: self.meta.fd.alive(self.now),
            reported: self.meta.reports.keys().copied().collect(),
            reports: self
                .meta
                .reports
                .iter()
                .flat_map(|(n, rs)| rs.iter().map(|(g, i)| ((*g, *n), *i)))
                .collect(),
            disk_insufficient: BTreeSet::new(),
            now_ms: self.now,
        };
        let partitions: Vec<PartitionView> = self
            .meta
            .configs
            .values()
            .map(|c| PartitionView {
                config: c.clone(),
                drop_ms: self.meta.drop_ms.get(&c.gpid).cloned().unwrap_or_default(),
            })
            .collect();
        let opts = GuardianOptions {
            min_2pc_replicas: 2,
            dropout_delay_ms: 4_000,
        };
        for action in pass::cure_all(&partitions, &view, &opts) {
            self.carry_out(action);
        }
    }

    fn carry_out(&mut self, action: Action) {
        match action {
            Action::Write {
                expected_ballot,
                next,
                ..
            } => {
                let current = self.meta.configs.get(&next.gpid).map(|c| c.ballot);
                if current == Some(expected_ballot) {
                    self.meta_write(next);
                }
            }
            Action::Propose {
                config,
                target,
                kind,
                node,
            } => {
                if self.meta.proposals.admit(&config, kind, node, self.now) {
                    self.send(
                        Addr::Meta,
                        Addr::Node(target),
                        Msg::Proposal { config, kind, node },
                    );
                }
            }
            Action::NeedOperator { gpid, why } => {
                self.trace(|| format!("guardian on {}: {why}", g(gpid)));
            }
        }
    }
}
