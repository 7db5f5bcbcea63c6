//! The replica servers: each node hosts the replica server's own partition driver through
//! `SimHost`; a round per delivered input, then the driver's effects, restarts after a
//! failure or a reopen, and the client requests a node serves (reads through the published
//! read gate).

use super::*;

impl Sim {
    pub(crate) fn start_node(&mut self, id: NodeId) {
        let gpid = self.meta_config.gpid;
        let clock: Arc<dyn Clock> = Arc::new(self.store_clock.clone());
        let log_opts = LogOptions {
            sync: !self.opts.async_log,
            // Small segments, so trimming the log (to the store's durable decree, nothing
            // retained) makes learners that fell behind need checkpoints, as on a server
            // whose log rolled past them.
            segment_bytes: 4096,
        };
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        // A node without `init.json` holds a new (or rebuilt) replica: created empty.
        let init = SimHost::read_init(&node.fs).unwrap_or_else(|| InitInfo {
            config: PartitionConfig {
                gpid,
                max_replica_count: 3,
                ..PartitionConfig::default()
            },
            fresh: true,
            app: pegasus_control::AppSummary {
                app_id: gpid.app_id,
                name: "sim".into(),
                partition_count: 1,
                envs: BTreeMap::new(),
                dropped: false,
            },
            data: "data".into(),
        });
        let fs: Arc<dyn FileSystem> = Arc::new(node.fs.clone());
        let engine = MemoryEngine::open(node.disk.clone(), clock.clone());
        let store = Arc::new(PartitionStore::new(
            engine,
            clock.clone(),
            ReadLimits::default(),
        ));
        let (log, replayed, report) = match MutationLog::open(fs, Path::new("/plog"), log_opts) {
            Ok(opened) => opened,
            Err(e) => {
                // Corrupt log: this replica starts empty and will re-learn.
                let what = format!("{id} log unusable after restart: {e}");
                node.fs = MemFs::new();
                node.disk = MemoryDisk::new();
                self.trace(|| what);
                return self.start_node(id);
            }
        };
        let core = driver::open_core(
            id,
            ReplicaOptions::default(),
            &init,
            &store,
            replayed,
            report.truncated_bytes,
        );
        let mut host = SimHost::new(
            gpid,
            clock,
            node.fs.clone(),
            node.disk.clone(),
            View {
                read_until_ms: 0,
                last_timestamp_us: core.last_timestamp_us(),
                status: core.status(),
                report: pegasus_control::ReplicaReport {
                    gpid,
                    ballot: core.data_ballot(),
                    last_committed: core.last_committed(),
                    last_prepared: core.last_prepared(),
                },
            },
        );
        host.write_init(&init).ok();
        let cfg = DriverConfig {
            tick_ms: TICK_MS,
            // RocksDB's memtable flush now and then; the log is then trimmed to it, with
            // nothing retained, so learners need checkpoints often.
            checkpoint_interval_ms: 20 * TICK_MS,
            log_retain_decrees: 0,
        };
        node.driver = Some(PartitionDriver::new(host, cfg, core, store, log, init));
        node.incarnation += 1;
        node.up = true;
    }

    pub(crate) fn deliver_to_node(&mut self, id: NodeId, event: Event) {
        self.round(id, vec![DriverInput::Core(event)]);
    }

    /// Runs one round of a node's driver with `inputs` at the node's local time, then
    /// carries out what it asked for, and restarts the replica if it stopped.
    pub(crate) fn round(&mut self, id: NodeId, inputs: Vec<DriverInput<u64, Bytes>>) {
        let now_ms = self.local_time(id);
        let wall_us = if self.opts.planted == Some(PlantedBug::UptimeAsWallClock) {
            now_ms * 1000
        } else {
            self.wall_us(id)
        };
        let trace = self.opts.trace;
        let Some(driver) = self.nodes.get_mut(&id).and_then(|n| n.driver.as_mut()) else {
            return;
        };
        let host = driver.host_mut();
        host.now_ms = now_ms;
        host.wall_us = wall_us;
        let before = (driver.core().status(), driver.core().config().ballot);
        let desc = if trace {
            inputs
                .iter()
                .filter(|i| !matches!(i, DriverInput::Core(Event::Tick { .. })))
                .map(|i| format!("{i:?}").chars().take(160).collect::<String>())
                .collect::<Vec<_>>()
        } else {
            Vec::new()
        };
        let exit = driver.round(inputs);
        let after = (driver.core().status(), driver.core().config().ballot);
        let effects = std::mem::take(&mut driver.host_mut().effects);
        for d in desc {
            self.trace(|| format!("{id} <- {d}"));
        }
        if before != after {
            self.trace(|| format!("{id} {before:?} -> {after:?}"));
        }
        for e in effects {
            self.effect(id, e);
        }
        match exit {
            None | Some(Exit::Closed) => {}
            Some(Exit::Failed) => {
                // A replica in error is set aside and rebuilt empty: it re-learns.
                self.trace(|| format!("{id} replica in error: rebuilding it"));
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.driver = None;
                    n.fs = MemFs::new();
                    n.disk = MemoryDisk::new();
                }
                let t = self.now + 500;
                self.at(t, Ev::Restart(id));
            }
            Some(Exit::Reopen(why)) => {
                // Reopened in place from its own files, as after a crash of the process.
                self.trace(|| format!("{id} replica reopens in place: {why}"));
                self.stop_replica(id);
                let t = self.now + 1000;
                self.at(t, Ev::Restart(id));
            }
        }
    }

    /// Drops a node's replica as a process crash would: the store loses what it did not
    /// flush (the files stay as they are).
    pub(crate) fn stop_replica(&mut self, id: NodeId) {
        let Some(n) = self.nodes.get_mut(&id) else {
            return;
        };
        if let Some(driver) = n.driver.take() {
            let (host, store) = driver.into_parts();
            n.disk = host.disk;
            if let Ok(store) = Arc::try_unwrap(store) {
                store.into_engine().crash();
            }
        }
    }

    pub(crate) fn effect(&mut self, id: NodeId, effect: Effect) {
        match effect {
            Effect::Send(to, msg) => self.send(Addr::Node(id), Addr::Node(to), Msg::Peer(msg)),
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
                self.report.checkpoints_installed += 1;
                let incarnation = self.nodes.get(&id).map_or(0, |n| n.incarnation);
                let t = self.now + self.rng.range(1, 30);
                self.at(t, Ev::Fetched(id, incarnation, Box::new(cp)));
            }
            Effect::Committed(m, status) => self.check_commit(id, &m, status),
        }
    }

    pub(crate) fn on_node_message(&mut self, id: NodeId, from: Addr, msg: Msg) {
        match msg {
            Msg::Peer(p) => {
                if let Addr::Node(f) = from {
                    self.deliver_to_node(id, Event::Message { from: f, msg: p });
                }
            }
            Msg::BeaconAck { sent_local_ms } => {
                self.deliver_to_node(
                    id,
                    Event::Lease {
                        sent_ms: sent_local_ms,
                        until_ms: sent_local_ms + LEASE_MS,
                        now_ms: self.local_time(id),
                    },
                );
            }
            Msg::Config(c) => self.deliver_to_node(id, Event::Config(c)),
            Msg::Proposal { kind, node } => {
                self.deliver_to_node(id, Event::Proposal { kind, node })
            }
            Msg::ConfigRejected => self.deliver_to_node(id, Event::ConfigRejected),
            Msg::ClientRequest { op, request } => self.on_client_request(id, op, request),
            _ => {}
        }
    }

    pub(crate) fn on_client_request(&mut self, id: NodeId, op: u64, request: ClientOp) {
        let local = self.local_time(id);
        let planted = self.opts.planted;
        let Some(driver) = self.nodes.get(&id).and_then(|n| n.driver.as_ref()) else {
            return;
        };
        let store = driver.store();
        match request {
            ClientOp::Get(key) => {
                // Reads go through the read gate the driver publishes, as on the server.
                let view = driver.host().view;
                let allowed = match planted {
                    Some(PlantedBug::ReadsWithoutLease) => view.status == Status::Primary,
                    Some(PlantedBug::UptimeAsWallClock) | None => local < view.read_until_ms,
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
                        hash_key: Bytes::from(format!("k{key}")),
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
                self.round(id, vec![DriverInput::Write { update, reply: op }]);
            }
        }
    }
}
