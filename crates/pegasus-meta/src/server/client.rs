//! The client-facing meta RPCs (Pegasus's encodings): table DDL, configuration queries,
//! envs, cluster info, forwarding to the leader and the answers of a follower.

use super::*;

impl MetaServer {
    pub(super) async fn on_meta(&self, req: MetaRequest) -> MetaResponse {
        if let MetaRequest::QueryConfig(q) = req {
            return MetaResponse::QueryConfig(self.query_config(&q));
        }
        if !self.is_ready_leader() {
            return self.not_leader_response(req);
        }
        let now = Instant::now();
        match req {
            MetaRequest::QueryConfig(q) => MetaResponse::QueryConfig(self.query_config(&q)),
            MetaRequest::CreateApp(c) => {
                let o = &c.options;
                let is_new = || self.read(|s| s.app_by_name(&c.app_name).is_none());
                // The envs of a new table are refused as `set_app_envs` refuses them. The
                // response has no hint field, so the reason goes to the log.
                let bad_env = o
                    .envs
                    .iter()
                    .find_map(|(k, v)| envs::check_set(k, v).err())
                    .filter(|_| is_new());
                let check = if let Some(hint) = bad_env {
                    tracing::warn!("create table {:?} refused: {hint}", c.app_name);
                    Err(ErrorCode::InvalidParameters)
                } else if self.effective_level(now) < LEVEL_STEADY {
                    Err(ErrorCode::StateFreezed)
                } else if usize::try_from(o.replica_count).unwrap_or(0)
                    > self.alive_nodes(now).len()
                    && is_new()
                {
                    Err(ErrorCode::InvalidParameters)
                } else {
                    Ok(())
                };
                let result = match check {
                    Err(code) => Err(code),
                    Ok(()) => {
                        self.outcome(Command::CreateApp {
                            name: c.app_name.clone(),
                            partition_count: o.partition_count,
                            replica_count: o.replica_count,
                            envs: o.envs.clone(),
                            success_if_exist: o.success_if_exist,
                            now_ms: now_ms(),
                        })
                        .await
                    }
                };
                MetaResponse::CreateApp(match result {
                    Ok(Reply::AppId(id)) => CreateAppResponse {
                        err: ErrorCode::Ok,
                        appid: id,
                    },
                    Ok(_) => CreateAppResponse {
                        err: ErrorCode::Ok,
                        appid: 0,
                    },
                    Err(err) => CreateAppResponse { err, appid: 0 },
                })
            }
            MetaRequest::DropApp(d) => {
                let reserve = d
                    .options
                    .reserve_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .filter(|s| *s > 0)
                    .unwrap_or(self.config.hold_seconds_for_dropped_app);
                let r = self
                    .outcome(Command::DropApp {
                        name: d.app_name.clone(),
                        success_if_not_exist: d.options.success_if_not_exist,
                        reserve_seconds: reserve,
                        now_ms: now_ms(),
                    })
                    .await;
                MetaResponse::DropApp(DropAppResponse {
                    err: r.err().unwrap_or(ErrorCode::Ok),
                })
            }
            MetaRequest::RecallApp(r) => {
                let out = self
                    .outcome(Command::RecallApp {
                        app_id: r.app_id,
                        new_name: r.new_app_name.clone(),
                        now_ms: now_ms(),
                    })
                    .await;
                MetaResponse::RecallApp(match out {
                    Ok(_) => RecallAppResponse {
                        err: ErrorCode::Ok,
                        info: self
                            .read(|s| s.apps.get(&r.app_id).map(wire_app))
                            .unwrap_or_default(),
                    },
                    Err(err) => RecallAppResponse {
                        err,
                        info: AppInfo::default(),
                    },
                })
            }
            MetaRequest::ListApps(l) => MetaResponse::ListApps(self.list_apps(&l)),
            MetaRequest::ListNodes(l) => {
                let alive = self.alive_nodes(now);
                let infos = self.read(|s| {
                    s.nodes
                        .iter()
                        .map(|n| NodeInfo {
                            status: if alive.contains(n) {
                                NodeStatus::Alive
                            } else {
                                NodeStatus::Unalive
                            },
                            node: RpcAddress::from_raw(n.0),
                        })
                        .filter(|i| l.status == NodeStatus::Invalid || i.status == l.status)
                        .collect()
                });
                MetaResponse::ListNodes(ListNodesResponse {
                    err: ErrorCode::Ok,
                    infos,
                })
            }
            MetaRequest::ClusterInfo(_) => MetaResponse::ClusterInfo(self.cluster_info(now)),
            MetaRequest::UpdateAppEnv(u) => MetaResponse::UpdateAppEnv(self.update_envs(&u).await),
            MetaRequest::ControlMeta(c) => {
                let old = self.read(|s| s.function_level);
                let err = if c.level == MetaFunctionLevel::Invalid {
                    ErrorCode::Ok
                } else if let Err(e) = check_level_request(c.level.to_wire()) {
                    // The response has no hint field, so the reason goes to the log.
                    tracing::warn!("set meta level {:?} refused: {e}", c.level);
                    error_code(&e)
                } else {
                    self.outcome(Command::SetFunctionLevel(c.level.to_wire()))
                        .await
                        .err()
                        .unwrap_or(ErrorCode::Ok)
                };
                MetaResponse::ControlMeta(MetaControlResponse {
                    err,
                    old_level: MetaFunctionLevel::from_wire(old),
                })
            }
            MetaRequest::GetMaxReplicaCount(g) => {
                let count = self.read(|s| s.app_by_name(&g.app_name).map(|a| a.max_replica_count));
                MetaResponse::GetMaxReplicaCount(match count {
                    Some(n) => GetMaxReplicaCountResponse {
                        err: ErrorCode::Ok,
                        max_replica_count: n,
                        hint_message: String::new(),
                    },
                    None => GetMaxReplicaCountResponse {
                        err: ErrorCode::AppNotExist,
                        max_replica_count: 0,
                        hint_message: format!("table {:?} does not exist", g.app_name),
                    },
                })
            }
            MetaRequest::SetMaxReplicaCount(s) => {
                let alive = self.alive_nodes(now).len();
                let (err, old, hint) = if self.effective_level(now) < LEVEL_STEADY {
                    (ErrorCode::StateFreezed, 0, "meta is freezed".to_string())
                } else if usize::try_from(s.max_replica_count).unwrap_or(usize::MAX) > alive {
                    (
                        ErrorCode::InvalidParameters,
                        0,
                        format!(
                            "{} replicas wanted, {alive} replica servers alive",
                            s.max_replica_count
                        ),
                    )
                } else {
                    match self
                        .write(Command::SetMaxReplicaCount {
                            name: s.app_name.clone(),
                            count: s.max_replica_count,
                        })
                        .await
                    {
                        Ok(Ok(Reply::Old(old))) => (ErrorCode::Ok, old, String::new()),
                        Ok(Ok(_)) => (ErrorCode::Ok, 0, String::new()),
                        Ok(Err(e)) => (error_code(&e), 0, e.to_string()),
                        Err(e) => (e.code(), 0, format!("{e:?}")),
                    }
                };
                MetaResponse::SetMaxReplicaCount(SetMaxReplicaCountResponse {
                    err,
                    old_max_replica_count: old,
                    hint_message: hint,
                })
            }
        }
    }

    /// A follower passes a client's DDL request to the leader (Pegasus's meta forwards too)
    /// and relays the encoded answer. `None`: answer locally (leader, query, no leader
    /// known, or the leader did not answer — the client then retries).
    pub(super) async fn forward(&self, req: &MetaRequest) -> Option<bytes::Bytes> {
        if matches!(req, MetaRequest::QueryConfig(_)) || self.is_ready_leader() {
            return None;
        }
        let leader = self.leader().filter(|l| *l != self.addr)?;
        let fwd = Forwarded {
            name: req.name().to_string(),
            args: req.encode_args().to_vec(),
        };
        let answer: Result<Vec<u8>, _> = internal::call(
            &self.session(leader),
            names::META_FORWARD,
            &fwd,
            Duration::from_secs(10),
        )
        .await;
        answer.ok().map(bytes::Bytes::from)
    }

    /// Runs a command; `Err` is the error code to answer.
    pub(super) async fn outcome(&self, cmd: Command) -> Result<Reply, ErrorCode> {
        match self.write(cmd).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(error_code(&e)),
            Err(e) => Err(e.code()),
        }
    }

    pub(super) fn not_leader_response(&self, req: MetaRequest) -> MetaResponse {
        let err = self.not_leader_code();
        match req {
            MetaRequest::QueryConfig(q) => MetaResponse::QueryConfig(self.query_config(&q)),
            MetaRequest::CreateApp(_) => {
                MetaResponse::CreateApp(CreateAppResponse { err, appid: 0 })
            }
            MetaRequest::DropApp(_) => MetaResponse::DropApp(DropAppResponse { err }),
            MetaRequest::RecallApp(_) => MetaResponse::RecallApp(RecallAppResponse {
                err,
                info: AppInfo::default(),
            }),
            MetaRequest::ListApps(_) => MetaResponse::ListApps(ListAppsResponse {
                err,
                infos: Vec::new(),
                hint_message: None,
            }),
            MetaRequest::ListNodes(_) => MetaResponse::ListNodes(ListNodesResponse {
                err,
                infos: Vec::new(),
            }),
            MetaRequest::ClusterInfo(_) => MetaResponse::ClusterInfo(ClusterInfoResponse {
                err,
                keys: Vec::new(),
                values: Vec::new(),
            }),
            MetaRequest::UpdateAppEnv(_) => MetaResponse::UpdateAppEnv(UpdateAppEnvResponse {
                err,
                hint_message: String::new(),
            }),
            MetaRequest::ControlMeta(_) => MetaResponse::ControlMeta(MetaControlResponse {
                err,
                old_level: MetaFunctionLevel::Invalid,
            }),
            MetaRequest::GetMaxReplicaCount(_) => {
                MetaResponse::GetMaxReplicaCount(GetMaxReplicaCountResponse {
                    err,
                    max_replica_count: 0,
                    hint_message: String::new(),
                })
            }
            MetaRequest::SetMaxReplicaCount(_) => {
                MetaResponse::SetMaxReplicaCount(SetMaxReplicaCountResponse {
                    err,
                    old_max_replica_count: 0,
                    hint_message: String::new(),
                })
            }
        }
    }

    /// `RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX`, with the error inside the body as clients
    /// expect; a follower names the leader in `partitions[0].primary`.
    pub fn query_config(&self, q: &QueryCfgRequest) -> QueryCfgResponse {
        if !self.is_ready_leader() {
            let err = self.not_leader_code();
            let partitions = self
                .leader()
                .filter(|_| err == ErrorCode::ForwardToOthers)
                .map(|l| {
                    vec![PartitionConfiguration {
                        primary: RpcAddress::from_socket_addr(l),
                        ..PartitionConfiguration::default()
                    }]
                })
                .unwrap_or_default();
            return QueryCfgResponse {
                err,
                partitions,
                ..QueryCfgResponse::default()
            };
        }
        self.read(|s| match s.app_by_name(&q.app_name) {
            None => QueryCfgResponse {
                err: ErrorCode::ObjectNotFound,
                ..QueryCfgResponse::default()
            },
            Some(app) => {
                let partitions = if q.partition_indices.is_empty() {
                    app.partitions
                        .iter()
                        .map(|p| wire_partition(&p.config))
                        .collect()
                } else {
                    q.partition_indices
                        .iter()
                        .filter_map(|i| app.partitions.get(usize::try_from(*i).ok()?))
                        .map(|p| wire_partition(&p.config))
                        .collect()
                };
                QueryCfgResponse {
                    err: ErrorCode::Ok,
                    app_id: app.id,
                    partition_count: app.partition_count,
                    is_stateful: true,
                    partitions,
                }
            }
        })
    }

    pub(super) fn list_apps(&self, l: &ListAppsRequest) -> ListAppsResponse {
        let result: Result<Vec<AppInfo>, String> = self.read(|s| {
            let mut out = Vec::new();
            for app in s.apps.values() {
                let info = wire_app(app);
                if l.status != WireAppStatus::Invalid && info.status != l.status {
                    continue;
                }
                if name_matches(&app.name, l)? {
                    out.push(info);
                }
            }
            Ok(out)
        });
        match result {
            Ok(infos) => ListAppsResponse {
                err: ErrorCode::Ok,
                infos,
                hint_message: None,
            },
            Err(hint) => ListAppsResponse {
                err: ErrorCode::InvalidParameters,
                infos: Vec::new(),
                hint_message: Some(hint),
            },
        }
    }

    pub(super) fn cluster_info(&self, now: Instant) -> ClusterInfoResponse {
        let alive = self.alive_nodes(now).len();
        let m = self.raft.metrics().borrow().clone();
        let (level, nodes, tables) = self.read(|s| {
            (
                s.function_level,
                s.nodes.len(),
                s.apps
                    .values()
                    .filter(|a| a.status == AppStatus::Available)
                    .count(),
            )
        });
        let servers: Vec<String> = self.servers.iter().map(ToString::to_string).collect();
        let pairs = [
            ("meta_servers", servers.join(",")),
            ("primary_meta_server", self.addr.to_string()),
            ("meta_state_service", "raft (openraft)".to_string()),
            ("raft_term", m.current_term.to_string()),
            (
                "raft_last_applied",
                m.last_applied.map_or(0, |l| l.index).to_string(),
            ),
            ("meta_function_level", level_name(level).to_string()),
            (
                "effective_function_level",
                level_name(self.effective_level(now)).to_string(),
            ),
            ("alive_nodes", alive.to_string()),
            ("unalive_nodes", nodes.saturating_sub(alive).to_string()),
            (
                "disk_insufficient_nodes",
                self.disk_insufficient(now)
                    .into_iter()
                    .map(addr_text)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "partitions_short_of_disk",
                self.partitions_short_of_disk(now).len().to_string(),
            ),
            ("available_tables", tables.to_string()),
        ];
        ClusterInfoResponse {
            err: ErrorCode::Ok,
            keys: pairs.iter().map(|(k, _)| (*k).to_string()).collect(),
            values: pairs.into_iter().map(|(_, v)| v).collect(),
        }
    }

    pub(super) async fn update_envs(&self, u: &UpdateAppEnvRequest) -> UpdateAppEnvResponse {
        let op = match u.op {
            AppEnvOperation::Set => {
                let keys = u.keys.clone().unwrap_or_default();
                let values = u.values.clone().unwrap_or_default();
                if keys.is_empty() || keys.len() != values.len() {
                    return UpdateAppEnvResponse {
                        err: ErrorCode::InvalidParameters,
                        hint_message: "set needs as many values as keys, at least one".into(),
                    };
                }
                // Only envs pegasus-rs acts on may be set (`envs::ENVS`); del and clear
                // work for every key.
                if let Some(hint) = keys
                    .iter()
                    .zip(&values)
                    .find_map(|(k, v)| envs::check_set(k, v).err())
                {
                    return UpdateAppEnvResponse {
                        err: ErrorCode::InvalidParameters,
                        hint_message: hint,
                    };
                }
                EnvOp::Set(keys.into_iter().zip(values).collect())
            }
            AppEnvOperation::Del => EnvOp::Del(u.keys.clone().unwrap_or_default()),
            AppEnvOperation::Clear => EnvOp::Clear(u.clear_prefix.clone().unwrap_or_default()),
            _ => {
                return UpdateAppEnvResponse {
                    err: ErrorCode::InvalidParameters,
                    hint_message: "unknown env operation".into(),
                }
            }
        };
        match self
            .write(Command::UpdateEnvs {
                name: u.app_name.clone(),
                op,
            })
            .await
        {
            Ok(Ok(_)) => UpdateAppEnvResponse {
                err: ErrorCode::Ok,
                hint_message: String::new(),
            },
            Ok(Err(e)) => UpdateAppEnvResponse {
                err: error_code(&e),
                hint_message: e.to_string(),
            },
            Err(e) => UpdateAppEnvResponse {
                err: e.code(),
                hint_message: format!("{e:?}"),
            },
        }
    }
}
