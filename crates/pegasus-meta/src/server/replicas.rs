//! The replica-server protocol: beacons (the lease grant), configuration sync, replicas'
//! configuration updates, and the internal RPCs between servers.

use super::*;

impl MetaServer {
    pub(super) async fn on_beacon(&self, b: Beacon) -> BeaconAck {
        let arrived = Instant::now();
        metrics::counter!("pegasus_meta_beacons_total").increment(1);
        let not_leader = BeaconAck {
            sent_ms: b.sent_ms,
            is_leader: false,
            leader: self.leader(),
            lease_ms: 0,
            disk_insufficient: Vec::new(),
        };
        if !self.is_ready_leader() {
            return not_leader;
        }
        let held_back = {
            let mut fd = self.fd();
            let stable_ms = self
                .config
                .stable_rs_min_running_seconds
                .saturating_mul(1000);
            let entry = fd.starts.entry(b.node).or_insert(NodeStart {
                start_ms: b.start_ms,
                last_change: arrived,
                unstable: 0,
            });
            let restarted = entry.start_ms != b.start_ms;
            if restarted {
                if elapsed_ms(entry.last_change, arrived) < stable_ms {
                    entry.unstable += 1;
                } else {
                    entry.unstable = 0;
                }
                entry.start_ms = b.start_ms;
                entry.last_change = arrived;
            }
            if entry.unstable >= self.config.max_succssive_unstable_restart
                && elapsed_ms(entry.last_change, arrived) >= stable_ms
            {
                entry.unstable = 0;
            }
            let held_back = entry.unstable >= self.config.max_succssive_unstable_restart;
            if restarted {
                // What the previous process saw of its disk says nothing about this one.
                fd.disks.remove(&b.node);
            }
            held_back
        };
        if held_back {
            tracing::warn!(
                "{:?} restarts too often: its beacons are not acked",
                addr_of(b.node)
            );
            return BeaconAck {
                is_leader: true,
                leader: Some(self.addr),
                ..not_leader
            };
        }
        // Grant a lease only as a leader confirmed by a quorum after the beacon arrived.
        if self.raft.ensure_linearizable().await.is_err() {
            return not_leader;
        }
        let register = {
            let mut fd = self.fd();
            fd.detector.beacon(b.node, self.ms(arrived));
            fd.reports.insert(b.node, b.replicas);
            fd.disks.insert(b.node, b.disk);
            let known = self.read(|s| s.nodes.contains(&b.node));
            !known && fd.registering.insert(b.node)
        };
        if register {
            let _ = self.write(Command::RegisterNode(b.node)).await;
            self.fd().registering.remove(&b.node);
        }
        BeaconAck {
            sent_ms: b.sent_ms,
            is_leader: true,
            leader: Some(self.addr),
            lease_ms: self.fd_config.fd_lease_ms,
            disk_insufficient: self.disk_insufficient(arrived).into_iter().collect(),
        }
    }

    pub(super) fn on_config_sync(&self, req: &ConfigSyncRequest) -> Option<ConfigSyncResponse> {
        if !self.is_ready_leader() {
            return None;
        }
        let reported: BTreeSet<Gpid> = req.replicas.iter().map(|r| r.gpid).collect();
        Some(self.read(|s| {
            let mut partitions = Vec::new();
            for app in s.apps.values() {
                for p in &app.partitions {
                    if p.config.is_member(req.node) || reported.contains(&p.config.gpid) {
                        partitions.push(SyncedPartition {
                            config: p.config.clone(),
                            app: summary(app),
                        });
                    }
                }
            }
            let gc = reported
                .iter()
                .filter(|g| !s.apps.contains_key(&g.app_id))
                .copied()
                .collect();
            ConfigSyncResponse { partitions, gc }
        }))
    }

    pub(super) async fn on_update_config(&self, req: UpdateConfigRequest) -> UpdateConfigResponse {
        let now = Instant::now();
        let reply =
            |err: ErrorCode, config: Option<PartitionConfig>, leader| UpdateConfigResponse {
                err: err.name().to_string(),
                config,
                leader,
            };
        if !self.is_ready_leader() {
            return reply(self.not_leader_code(), None, self.leader());
        }
        if self.effective_level(now) < LEVEL_STEADY {
            return reply(ErrorCode::StateFreezed, None, None);
        }
        let gpid = req.update.config.gpid;
        let before = self.read(|s| s.partition(gpid).map(|p| p.config.clone()));
        match self
            .write(Command::UpdatePartition {
                update: req.update,
                now_ms: now_ms(),
            })
            .await
        {
            Ok(Ok(Reply::Partition(pc))) => {
                let mut to: BTreeSet<NodeId> = pc.members().into_iter().collect();
                if let Some(b) = &before {
                    to.extend(b.members());
                }
                self.push_config(&pc, to);
                reply(ErrorCode::Ok, Some(pc), None)
            }
            Ok(Ok(_)) => reply(ErrorCode::Ok, None, None),
            Ok(Err(e)) => {
                let current = self.read(|s| s.partition(gpid).map(|p| p.config.clone()));
                reply(error_code(&e), current, None)
            }
            Err(WriteError::NotLeader(l)) => reply(ErrorCode::ForwardToOthers, None, l),
            Err(e) => reply(e.code(), None, None),
        }
    }

    pub(super) async fn on_internal(&self, call: InternalCall) -> Option<ResponseFrame> {
        macro_rules! decode {
            ($t:ty) => {
                match call.decode::<$t>() {
                    Ok(v) => v,
                    Err(_) => return Some(call.error(ErrorCode::InvalidParameters)),
                }
            };
        }
        let name = call.message.name.as_str();
        Some(match name {
            rpc_names::APPEND => {
                let req = decode!(openraft::raft::AppendEntriesRequest<crate::raft::TypeConfig>);
                call.reply(&self.raft.append_entries(req).await)
            }
            rpc_names::VOTE => {
                let req = decode!(openraft::raft::VoteRequest<RaftNodeId>);
                call.reply(&self.raft.vote(req).await)
            }
            rpc_names::SNAPSHOT => {
                let req = decode!(openraft::raft::InstallSnapshotRequest<crate::raft::TypeConfig>);
                call.reply(&self.raft.install_snapshot(req).await)
            }
            names::BEACON => {
                let b = decode!(Beacon);
                call.reply(&self.on_beacon(b).await)
            }
            names::CONFIG_SYNC => {
                let req = decode!(ConfigSyncRequest);
                match self.on_config_sync(&req) {
                    Some(resp) => call.reply(&resp),
                    None => call.error(self.not_leader_code()),
                }
            }
            names::UPDATE_CONFIG => {
                let req = decode!(UpdateConfigRequest);
                call.reply(&self.on_update_config(req).await)
            }
            names::META_FORWARD => {
                let fwd = decode!(Forwarded);
                let mut r = pegasus_proto::thrift::Reader::new(bytes::Bytes::from(fwd.args));
                match MetaRequest::decode(&fwd.name, &mut r) {
                    // Answered here, never forwarded again (no forwarding loops).
                    Ok(Some(req)) => call.reply(&self.on_meta(req).await.encode().to_vec()),
                    _ => call.error(ErrorCode::InvalidParameters),
                }
            }
            _ => call.error(ErrorCode::HandlerNotFound),
        })
    }
}
