//! The meta server's HTTP endpoints on its RPC port (cluster, tables, nodes, metrics).

use super::*;

/// The meta server's HTTP endpoints (on its RPC port).
pub(super) struct MetaHttp {
    pub(super) server: std::sync::Weak<MetaServer>,
    pub(super) common: CommonEndpoints,
}

impl HttpService for MetaHttp {
    fn get(&self, path: &str, query: &str) -> HttpResponse {
        const PATHS: &[&str] = &[
            "/meta/cluster",
            "/meta/apps",
            "/meta/app?name=",
            "/meta/nodes",
        ];
        if let Some(r) = self.common.get(path, PATHS) {
            return r;
        }
        let Some(s) = self.server.upgrade() else {
            return HttpResponse::error(503, "stopping");
        };
        let now = Instant::now();
        // Liveness is the leader's knowledge: followers redirect there.
        if path == "/meta/nodes" && !s.is_ready_leader() {
            return match s.leader().filter(|l| *l != s.addr) {
                Some(l) => HttpResponse::redirect(format!("http://{l}{path}")),
                None => HttpResponse::error(503, "no meta leader yet"),
            };
        }
        let body = match path {
            "/meta/cluster" => {
                let info = s.cluster_info(now);
                let map: serde_json::Map<String, serde_json::Value> = info
                    .keys
                    .into_iter()
                    .zip(info.values)
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect();
                serde_json::json!({
                    "is_leader": s.is_ready_leader(),
                    "leader": s.leader().map(|l| l.to_string()),
                    "info": map,
                })
            }
            "/meta/apps" => s.read(|st| {
                serde_json::Value::Array(
                    st.apps
                        .values()
                        .map(|a| {
                            serde_json::json!({
                                "app_id": a.id,
                                "name": a.name,
                                "status": format!("{:?}", a.status),
                                "partition_count": a.partition_count,
                                "max_replica_count": a.max_replica_count,
                                "envs": a.envs,
                                "healthy_partitions": a.partitions.iter().filter(|p| p.config.is_healthy()).count(),
                            })
                        })
                        .collect(),
                )
            }),
            "/meta/app" => {
                let Some(name) = query_param(query, "name") else {
                    return HttpResponse::error(400, "missing ?name=<table>");
                };
                // Disk shortage is the leader's knowledge: null on a follower.
                let leader = s.is_ready_leader();
                let short = s.partitions_short_of_disk(now);
                let app = s.read(|st| {
                    st.app_by_name(name).map(|a| {
                        serde_json::json!({
                            "app_id": a.id,
                            "name": a.name,
                            "partitions": a.partitions.iter().map(|p| serde_json::json!({
                                "pidx": p.config.gpid.pidx,
                                "ballot": p.config.ballot,
                                "primary": p.config.primary.map(addr_text),
                                "secondaries": p.config.secondaries.iter().map(|n| addr_text(*n)).collect::<Vec<_>>(),
                                "last_drops": p.config.last_drops.iter().map(|n| addr_text(*n)).collect::<Vec<_>>(),
                                "short_of_disk": leader.then(|| short.contains_key(&p.config.gpid)),
                            })).collect::<Vec<_>>(),
                        })
                    })
                });
                match app {
                    Some(v) => v,
                    None => return HttpResponse::error(404, "no such table"),
                }
            }
            "/meta/nodes" => {
                let alive = s.alive_nodes(now);
                let disks = s.fd().disks.clone();
                s.read(|st| {
                    serde_json::Value::Array(
                        st.nodes
                            .iter()
                            .map(|n| {
                                // The last disk report of an alive node; null when none.
                                let disk = disks.get(n).filter(|_| alive.contains(n));
                                serde_json::json!({
                                    "address": addr_text(*n),
                                    "status": if alive.contains(n) { "ALIVE" } else { "UNALIVE" },
                                    "disk_available_bytes": disk.map(|d| d.available_bytes),
                                    "disk_capacity_bytes": disk.map(|d| d.capacity_bytes),
                                    "disk_insufficient": disk.map(|d| d.insufficient),
                                })
                            })
                            .collect(),
                    )
                })
            }
            _ => return HttpResponse::error(404, "not found; GET / lists the paths"),
        };
        HttpResponse::json(body.to_string())
    }
}
