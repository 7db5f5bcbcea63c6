//! The replica servers: each node hosts many replicas, each the replica server's own
//! partition driver through `SimHost`. Replicas are opened as the server opens them (a
//! restarted process reopens every replica it has files for; a configuration naming the node,
//! an invitation to learn, or a proposal to be primary creates one), closed when they fail
//! (set aside: meta and the primary bring the copy back) or reopen in place; a round per
//! delivered input, then the driver's effects; and the client requests a node serves (reads
//! through the published read gate).

use super::*;

impl Sim {
    /// A replica's own log settings.
    pub(crate) fn log_options(&self) -> LogOptions {
        LogOptions {
            sync: !self.opts.async_log,
            // Small segments, so trimming the log (to the store's durable decree, nothing
            // retained) makes learners that fell behind need checkpoints, as on a server
            // whose log rolled past them.
            segment_bytes: 4096,
        }
    }

    /// Starts a node's process: every replica it has files for is reopened.
    pub(crate) fn start_node(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        node.up = true;
        let gpids: Vec<Gpid> = node.replicas.keys().copied().collect();
        if self.opts.node_log && !self.recover_node_log(id, self.log_options()) {
            // The disk refuses the recovery now: stay down, try again.
            if let Some(node) = self.nodes.get_mut(&id) {
                node.up = false;
            }
            self.trace(|| format!("{id} cannot recover its node log now: restarts later"));
            let t = self.now + 1_000;
            self.at(t, Ev::Restart(id));
            return;
        }
        let gpids: Vec<Gpid> = gpids
            .into_iter()
            .filter(|gp| {
                self.nodes
                    .get(&id)
                    .is_some_and(|n| n.replicas.contains_key(gp))
            })
            .collect();
        for gpid in gpids {
            self.open_replica(id, gpid, None);
        }
    }

    /// Opens node `id`'s replica of `gpid` from its files, or creates it empty with
    /// `create_with` (meta's configuration) if the node has none. True if it is open.
    pub(crate) fn open_replica(
        &mut self,
        id: NodeId,
        gpid: Gpid,
        create_with: Option<&PartitionConfig>,
    ) -> bool {
        let Some(app) = self.apps.get(&gpid.app_id).cloned() else {
            return false;
        };
        let clock: Arc<dyn Clock> = Arc::new(self.store_clock.clone());
        let log_opts = self.log_options();
        let incarnation = self.next_incarnation + 1;
        let Some(node) = self.nodes.get_mut(&id).filter(|n| n.up) else {
            return false;
        };
        if !node.replicas.contains_key(&gpid) {
            if create_with.is_none() {
                return false;
            }
            let fs = MemFs::new();
            fs.set_fail_os_error(node.disk_error);
            node.replicas.insert(
                gpid,
                Replica {
                    fs,
                    disk: MemoryDisk::new(),
                    driver: None,
                    incarnation: 0,
                    wake_at: None,
                },
            );
        }
        let Some(replica) = node.replicas.get_mut(&gpid) else {
            return false;
        };
        if replica.driver.is_some() {
            return true;
        }
        let init = SimHost::read_init(&replica.fs).or_else(|| {
            create_with.map(|c| InitInfo {
                config: c.clone(),
                fresh: true,
                app,
                data: "data".into(),
                // Unique in the run, so on its node too.
                incarnation,
            })
        });
        let Some(init) = init else {
            // Files without `init.json`: a creation that never finished. Set aside.
            node.replicas.remove(&gpid);
            self.trace(|| format!("{id} {}: no init.json, set aside", g(gpid)));
            return false;
        };
        let fs: Arc<dyn FileSystem> = Arc::new(replica.fs.clone());
        let engine = MemoryEngine::open(replica.disk.clone(), clock.clone());
        let store = Arc::new(PartitionStore::new(
            engine,
            clock.clone(),
            ReadLimits::default(),
        ));
        let (log, replayed, report) = match MutationLog::open(fs, Path::new("/plog"), log_opts) {
            Ok(opened) => opened,
            Err(e) if e.is_transient() => {
                // Out of space or descriptors: the files are intact; try again later,
                // never wipe (the server's rule).
                let what = format!("{id} {}: cannot open the log now: {e}", g(gpid));
                self.trace(|| what);
                let t = self.now + 1_000;
                self.at(t, Ev::Reopen(id, gpid));
                return false;
            }
            Err(e) => {
                // A corrupt log: set aside; the copy is rebuilt by learning.
                node.replicas.remove(&gpid);
                let what = format!("{id} {}: log unusable, set aside: {e}", g(gpid));
                self.trace(|| what);
                return false;
            }
        };
        let torn_at_start = node.nlog.torn.remove(&gpid);
        // As the server: the log's own cut at open, or what the node-log recovery found.
        let torn_tail_bytes = if torn_at_start {
            report.truncated_bytes.max(1)
        } else {
            report.truncated_bytes
        };
        let core = driver::open_core(
            id,
            ReplicaOptions::default(),
            &init,
            &store,
            replayed,
            &ReplayReport {
                truncated_bytes: torn_tail_bytes,
                ..report
            },
        );
        let mut host = SimHost::new(
            gpid,
            clock,
            replica.fs.clone(),
            replica.disk.clone(),
            View {
                read: ReadGrant::None,
                last_timestamp_us: core.last_timestamp_us(),
                status: core.status(),
                report: pegasus_control::ReplicaReport {
                    gpid,
                    ballot: core.data_ballot(),
                    last_committed: core.last_committed(),
                    last_prepared: core.last_prepared(),
                    fresh: core.is_fresh(),
                },
            },
        );
        host.copy = init.incarnation;
        host.write_init(&init).ok();
        let cfg = DriverConfig {
            tick_ms: TICK_MS,
            // RocksDB's memtable flush now and then; the log is then trimmed to it, with
            // nothing retained, so learners need checkpoints often.
            checkpoint_interval_ms: 20 * TICK_MS,
            log_retain_decrees: 0,
            plant_uptime_as_wall_clock: self.opts.planted == Some(PlantedBug::UptimeAsWallClock),
            node_log: self.opts.node_log,
        };
        replica.driver = Some(PartitionDriver::new(host, cfg, core, store, log, init));
        replica.incarnation = incarnation;
        replica.wake_at = None;
        self.next_incarnation = incarnation;
        self.trace(|| format!("{id} {} opened", g(gpid)));
        // The node's lease reaches it with its first round, as every renewal does.
        self.schedule_wake(id, gpid);
        true
    }

    /// Schedules the replica's next wake-up where its driver says it is due (its local
    /// time, turned into virtual time by the node's clock rate), unless one is already
    /// scheduled as early.
    pub(crate) fn schedule_wake(&mut self, id: NodeId, gpid: Gpid) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let rate = node.rate_permille.max(1);
        let Some(r) = node.replicas.get_mut(&gpid) else {
            return;
        };
        let Some(driver) = r.driver.as_ref() else {
            return;
        };
        let local = driver.next_wake_ms();
        let at = (local.saturating_mul(1000).div_ceil(rate)).max(now + 1);
        if r.wake_at.is_some_and(|w| w <= at) {
            return;
        }
        r.wake_at = Some(at);
        self.at(at, Ev::Wake(id, gpid));
    }

    /// Opens the replica of `gpid` on `id` if `create` says the server would for this
    /// message, then runs a round with `input`; dropped if the node has no open replica.
    fn deliver(
        &mut self,
        id: NodeId,
        gpid: Gpid,
        create: Option<&PartitionConfig>,
        input: DriverInput<u64, Bytes>,
    ) {
        let open = self.driver(id, gpid).is_some()
            || create.is_some_and(|c| self.open_replica(id, gpid, Some(c)));
        if open {
            self.round(id, gpid, vec![input]);
        }
    }

    /// Runs one round of a replica's driver with `inputs` at the node's local time, then
    /// carries out what it asked for, and closes the replica if it stopped.
    pub(crate) fn round(&mut self, id: NodeId, gpid: Gpid, inputs: Vec<DriverInput<u64, Bytes>>) {
        let now_ms = self.local_time(id);
        let wall_us = self.wall_us(id);
        let lease = self.nodes.get(&id).map(|n| n.lease).unwrap_or_default();
        let trace = self.opts.trace;
        let Some(driver) = self
            .nodes
            .get_mut(&id)
            .and_then(|n| n.replicas.get_mut(&gpid))
            .and_then(|r| r.driver.as_mut())
        else {
            return;
        };
        let host = driver.host_mut();
        host.now_ms = now_ms;
        host.wall_us = wall_us;
        host.lease = lease;
        let before = (driver.core().status(), driver.core().config().ballot);
        let desc = if trace {
            inputs
                .iter()
                .map(|i| format!("{i:?}").chars().take(160).collect::<String>())
                .collect::<Vec<_>>()
        } else {
            Vec::new()
        };
        let exit = driver.round(inputs);
        let after = (driver.core().status(), driver.core().config().ballot);
        let effects = std::mem::take(&mut driver.host_mut().effects);
        self.report.rounds += 1;
        *self.rounds_by_gpid.entry(gpid).or_default() += 1;
        for d in desc {
            self.trace(|| format!("{id} {} <- {d}", g(gpid)));
        }
        if before != after {
            self.trace(|| format!("{id} {} {before:?} -> {after:?}", g(gpid)));
        }
        for e in effects {
            self.effect(id, gpid, e);
        }
        match exit {
            None => self.schedule_wake(id, gpid),
            Some(Exit::Closed) => {}
            Some(Exit::Failed) => {
                // A replica in error is set aside, as the server moves its directory
                // aside: meta and the primary bring the copy back by learning.
                self.trace(|| format!("{id} {} replica in error: set aside", g(gpid)));
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.replicas.remove(&gpid);
                }
            }
            Some(Exit::Reopen(why)) => {
                // Reopened in place from its own files, as after a crash of the process.
                self.trace(|| format!("{id} {} reopens in place: {why}", g(gpid)));
                self.stop_replica(id, gpid);
                let t = self.now + 1000;
                self.at(t, Ev::Reopen(id, gpid));
            }
        }
    }

    /// Closes a node's replica as a process crash would: the store loses what it did not
    /// flush (the files stay as they are).
    pub(crate) fn stop_replica(&mut self, id: NodeId, gpid: Gpid) {
        let Some(r) = self
            .nodes
            .get_mut(&id)
            .and_then(|n| n.replicas.get_mut(&gpid))
        else {
            return;
        };
        if let Some(driver) = r.driver.take() {
            let (host, store) = driver.into_parts();
            r.disk = host.disk;
            if let Ok(store) = Arc::try_unwrap(store) {
                store.into_engine().crash();
            }
        }
    }

    /// Sends a node's beacon: what it holds of every partition it has open.
    pub(crate) fn send_beacon(&mut self, id: NodeId) {
        let replicas = self.nodes.get(&id).map_or_else(Vec::new, |n| {
            n.replicas
                .iter()
                .filter_map(|(gpid, r)| {
                    let core = r.driver.as_ref()?.core();
                    Some((
                        *gpid,
                        ReplicaInfo {
                            ballot: core.data_ballot(),
                            last_committed: core.last_committed(),
                            last_prepared: core.last_prepared(),
                            fresh: core.is_fresh(),
                        },
                    ))
                })
                .collect()
        });
        let sent_local_ms = self.local_time(id);
        self.send(
            Addr::Node(id),
            Addr::Meta,
            Msg::Beacon {
                sent_local_ms,
                replicas,
            },
        );
    }

    pub(crate) fn effect(&mut self, id: NodeId, gpid: Gpid, effect: Effect) {
        match effect {
            Effect::Send(to, msg) => {
                self.send(Addr::Node(id), Addr::Node(to), Msg::Peer(gpid, msg))
            }
            Effect::LogSubmit {
                key,
                plog,
                records,
                appended,
            } => self.node_log_submit(id, key, &plog, &records, appended),
            Effect::RequestConfig { kind, node, config } => {
                self.send(
                    Addr::Node(id),
                    Addr::Meta,
                    Msg::ConfigRequest { kind, node, config },
                );
            }
            Effect::Reply(op, result) => {
                let (result, definite_failure) = match result {
                    Ok(WriteResponse::Update(r)) if r.error == 0 => {
                        (Some(OpResult::Written), false)
                    }
                    Ok(WriteResponse::Incr(r)) if r.error == 0 => {
                        (Some(OpResult::Incr(r.new_value)), false)
                    }
                    Ok(WriteResponse::CheckAndSet(r)) if r.error == 0 => {
                        (Some(OpResult::Cas(true)), false)
                    }
                    Ok(WriteResponse::CheckAndSet(r)) if r.error == 13 => {
                        (Some(OpResult::Cas(false)), false)
                    }
                    Ok(_) => (None, false),
                    // Refused before it was proposed: it never happens.
                    Err(
                        ErrorCode::InvalidState
                        | ErrorCode::NotEnoughMember
                        | ErrorCode::DiskInsufficient,
                    ) => (None, true),
                    // Outcome unknown (aborted, or the replica failed with it in flight).
                    Err(_) => (None, false),
                };
                self.send(
                    Addr::Node(id),
                    Addr::Client(0),
                    Msg::ClientReply {
                        op,
                        result,
                        definite_failure,
                    },
                );
            }
            Effect::Fetch(cp) => {
                let incarnation = self
                    .nodes
                    .get(&id)
                    .and_then(|n| n.replicas.get(&gpid))
                    .map_or(0, |r| r.incarnation);
                let t = self.now + self.rng.range(1, 30);
                // While faults are on, some fetches fail (the source went away, a file
                // was short): the learner must reopen and try again, never stay stuck.
                let result = if self.faults_on && self.rng.chance(100) {
                    Err("injected: checkpoint fetch failed".to_string())
                } else {
                    self.report.checkpoints_installed += 1;
                    Ok(Box::new(cp))
                };
                self.at(
                    t,
                    Ev::Fetched {
                        node: id,
                        gpid,
                        incarnation,
                        result,
                    },
                );
            }
            Effect::Committed(m, status) => self.check_commit(id, gpid, &m, status),
        }
    }

    pub(crate) fn on_node_message(&mut self, id: NodeId, from: Addr, msg: Msg) {
        match msg {
            Msg::Peer(gpid, p) => {
                let Addr::Node(f) = from else { return };
                // A primary invites this node to learn a partition it does not hold.
                let create = match &p {
                    PeerMessage::AddLearner { config, .. } => Some(config.clone()),
                    _ => None,
                };
                let input = DriverInput::Core(Event::Message { from: f, msg: p });
                self.deliver(id, gpid, create.as_ref(), input);
            }
            Msg::BeaconAck { sent_local_ms } => {
                // One lease for the node: replicas take it with their next round, and
                // reads check it themselves (no round per replica per beacon).
                let now_ms = self.local_time(id);
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.lease
                        .renew(sent_local_ms, sent_local_ms + LEASE_MS, now_ms);
                }
            }
            Msg::Config(c) => {
                // Meta's view of a partition: a member without a copy creates it empty.
                let gpid = c.gpid;
                let create = c.is_member(id).then(|| c.clone());
                self.deliver(
                    id,
                    gpid,
                    create.as_ref(),
                    DriverInput::Core(Event::Config(c)),
                );
            }
            Msg::Proposal { config, kind, node } => {
                let gpid = config.gpid;
                let create =
                    (node == id && kind == ConfigType::AssignPrimary).then(|| config.clone());
                let input = DriverInput::Proposal { config, kind, node };
                self.deliver(id, gpid, create.as_ref(), input);
            }
            Msg::ConfigRejected(gpid) => {
                self.deliver(id, gpid, None, DriverInput::Core(Event::ConfigRejected));
            }
            Msg::ClientRequest { op, gpid, request } => {
                self.on_client_request(id, op, gpid, request)
            }
            _ => {}
        }
    }

    pub(crate) fn on_client_request(&mut self, id: NodeId, op: u64, gpid: Gpid, request: ClientOp) {
        let local = self.local_time(id);
        let lease = self.nodes.get(&id).map(|n| n.lease).unwrap_or_default();
        let planted = self.opts.planted;
        let Some(driver) = self.driver(id, gpid) else {
            // No such replica here (ERR_OBJECT_NOT_FOUND): the client asks meta again.
            let reply = Msg::ClientReply {
                op,
                result: None,
                definite_failure: true,
            };
            self.send(Addr::Node(id), Addr::Client(0), reply);
            return;
        };
        let store = driver.store();
        match request {
            ClientOp::Get(key) => {
                // Reads go through the read gate the driver publishes, as on the server.
                let view = driver.host().view;
                let allowed = match planted {
                    Some(PlantedBug::ReadsWithoutLease) => view.status == Status::Primary,
                    _ => lease.allows(view.read, local),
                };
                let reply = if allowed {
                    let r = store.get(&key_bytes(key));
                    let v = if r.error == 0 {
                        parse_int(&r.value)
                    } else {
                        None
                    };
                    Msg::ClientReply {
                        op,
                        result: Some(OpResult::Read(v)),
                        definite_failure: false,
                    }
                } else {
                    Msg::ClientReply {
                        op,
                        result: None,
                        definite_failure: true,
                    }
                };
                self.send(Addr::Node(id), Addr::Client(0), reply);
            }
            ClientOp::Write(key, kind) => {
                let k = key_bytes(key);
                let req = match kind {
                    OpKind::Set(v) => WriteRequest::Put(UpdateRequest {
                        key: k,
                        value: Bytes::from(v.to_string()),
                        expire_ts_seconds: 0,
                    }),
                    OpKind::Incr(d) => WriteRequest::Incr(IncrRequest {
                        key: k,
                        increment: d,
                        expire_ts_seconds: 0,
                    }),
                    OpKind::Cas { expect, new } => WriteRequest::CheckAndSet(CheckAndSetRequest {
                        hash_key: Bytes::from(hash_key(key)),
                        check_sort_key: Bytes::new(),
                        check_type: if expect.is_some() {
                            CasCheckType::ValueBytesEqual
                        } else {
                            CasCheckType::ValueNotExist
                        },
                        check_operand: Bytes::from(
                            expect.map(|e| e.to_string()).unwrap_or_default(),
                        ),
                        set_value: Bytes::from(new.to_string()),
                        ..Default::default()
                    }),
                    OpKind::Get => return,
                };
                let update = encode_write(&req);
                self.round(id, gpid, vec![DriverInput::Write { update, reply: op }]);
            }
        }
    }
}
