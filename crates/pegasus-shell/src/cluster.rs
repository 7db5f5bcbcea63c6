//! The cluster commands: `nodes`, `cluster_info`, and `server_info`, `server_stat`,
//! `app_stat` over the servers' HTTP endpoints (see [`crate::stats`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use pegasus_proto::meta::{AppStatus, ClusterInfoRequest, ListNodesRequest, NodeStatus};
use pegasus_proto::{ErrorCode, MetaRequest, MetaResponse};

use crate::stats;
use crate::words::parse_args;
use crate::{Result, Shell, ShellError};

impl Shell {
    pub(crate) async fn nodes(&self, rest: &[Vec<u8>]) -> Result<String> {
        let a = parse_args(rest, &["d"])?;
        let nodes = match self
            .meta(MetaRequest::ListNodes(ListNodesRequest {
                status: NodeStatus::Invalid,
            }))
            .await?
        {
            MetaResponse::ListNodes(r) if r.err == ErrorCode::Ok => r.infos,
            MetaResponse::ListNodes(r) => {
                return Err(ShellError::Server(format!("nodes: {}", r.err)))
            }
            other => return Err(ShellError::Server(format!("unexpected {other:?}"))),
        };
        // With -d: primaries and replicas per node, over every available table.
        let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        if a.flag("d") {
            for app in self.list(AppStatus::Available).await? {
                let q = self.client.query_config(&app.app_name).await?;
                for p in &q.partitions {
                    if let Some(addr) = p.primary.to_socket_addr() {
                        counts.entry(addr.to_string()).or_default().0 += 1;
                        counts.entry(addr.to_string()).or_default().1 += 1;
                    }
                    for s in p.secondaries.iter().filter_map(|s| s.to_socket_addr()) {
                        counts.entry(s.to_string()).or_default().1 += 1;
                    }
                }
            }
        }
        // With -d: each node's data disk, as the meta leader last heard it.
        let disks = if a.flag("d") {
            self.node_disks().await
        } else {
            BTreeMap::new()
        };
        let mut out = format!("{:<24}{:<10}", "address", "status");
        if a.flag("d") {
            let _ = write!(
                out,
                "{:<10}{:<10}{:<15}{:<15}{:<6}",
                "primary", "replicas", "disk_avail_mb", "disk_total_mb", "disk"
            );
        }
        out.push('\n');
        let mut alive = 0;
        for n in &nodes {
            let addr = n
                .node
                .to_socket_addr()
                .map_or("-".into(), |a| a.to_string());
            let status = if n.status == NodeStatus::Alive {
                alive += 1;
                "ALIVE"
            } else {
                "UNALIVE"
            };
            let _ = write!(out, "{addr:<24}{status:<10}");
            if a.flag("d") {
                let (p, r) = counts.get(&addr).copied().unwrap_or((0, 0));
                let _ = write!(out, "{p:<10}{r:<10}");
                match disks.get(&addr) {
                    Some(d) => {
                        let _ = write!(
                            out,
                            "{:<15}{:<15}{:<6}",
                            d.available_bytes >> 20,
                            d.capacity_bytes >> 20,
                            if d.insufficient { "LOW" } else { "ok" }
                        );
                    }
                    None => {
                        let _ = write!(out, "{:<15}{:<15}{:<6}", "-", "-", "-");
                    }
                }
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "\ntotal_node_count  : {}\nalive_node_count  : {alive}",
            nodes.len()
        );
        Ok(out)
    }

    /// Each node's disk from the meta leader's `/meta/nodes` (empty if it cannot be read:
    /// `nodes -d` then shows `-`).
    async fn node_disks(&self) -> BTreeMap<String, stats::NodeDisk> {
        self.meta_leader_http("/meta/nodes")
            .await
            .map(|body| stats::parse_node_disks(&body))
            .unwrap_or_default()
    }

    /// `GET path` on the meta leader (what only the leader knows: liveness, disks).
    pub(crate) async fn meta_leader_http(&self, path: &str) -> Option<String> {
        // `cluster_info` is answered by the leader, which names itself.
        let leader = match self
            .meta(MetaRequest::ClusterInfo(ClusterInfoRequest {}))
            .await
        {
            Ok(MetaResponse::ClusterInfo(r)) => r
                .keys
                .iter()
                .zip(&r.values)
                .find(|(k, _)| *k == "primary_meta_server")
                .and_then(|(_, v)| v.parse::<std::net::SocketAddr>().ok()),
            _ => None,
        };
        stats::http_get(leader?, path).await.ok()
    }

    /// Every server: metas from `cluster_info`, replica servers from `nodes`.
    async fn servers(&self) -> Result<(Vec<std::net::SocketAddr>, Vec<std::net::SocketAddr>)> {
        let metas = match self
            .meta(MetaRequest::ClusterInfo(ClusterInfoRequest {}))
            .await?
        {
            MetaResponse::ClusterInfo(r) => r
                .keys
                .iter()
                .zip(&r.values)
                .find(|(k, _)| *k == "meta_servers")
                .map(|(_, v)| v.split(',').filter_map(|a| a.parse().ok()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let replicas = match self
            .meta(MetaRequest::ListNodes(ListNodesRequest {
                status: NodeStatus::Alive,
            }))
            .await?
        {
            MetaResponse::ListNodes(r) => r
                .infos
                .iter()
                .filter_map(|n| n.node.to_socket_addr())
                .collect(),
            _ => Vec::new(),
        };
        Ok((metas, replicas))
    }

    pub(crate) async fn server_info(&self) -> Result<String> {
        let (metas, replicas) = self.servers().await?;
        let mut out = format!("{:<24}{:<10}{}\n", "address", "role", "version");
        for addr in metas.iter().chain(replicas.iter()) {
            match stats::http_get(*addr, "/version").await {
                Ok(body) => {
                    let field = |k: &str| {
                        body.split(&format!("\"{k}\":\""))
                            .nth(1)
                            .and_then(|r| r.split('"').next())
                            .unwrap_or("?")
                            .to_string()
                    };
                    let _ = writeln!(out, "{addr:<24}{:<10}{}", field("role"), field("version"));
                }
                Err(e) => {
                    let _ = writeln!(out, "{addr:<24}{:<10}{e}", "?");
                }
            }
        }
        Ok(out)
    }

    pub(crate) async fn server_stat(&self) -> Result<String> {
        let (_, replicas) = self.servers().await?;
        // Two scrapes one second apart give per-second rates.
        let mut first = BTreeMap::new();
        for addr in &replicas {
            if let Ok(body) = stats::http_get(*addr, "/metrics").await {
                first.insert(*addr, stats::parse_metrics(&body));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut out = format!(
            "{:<24}{:>10}{:>10}{:>10}{:>10}{:>10}\n",
            "address", "get_qps", "put_qps", "errors/s", "primary", "secondary"
        );
        for addr in &replicas {
            let Ok(body) = stats::http_get(*addr, "/metrics").await else {
                let _ = writeln!(out, "{addr:<24} unreachable");
                continue;
            };
            let now = stats::parse_metrics(&body);
            let before = first.get(addr).cloned().unwrap_or_default();
            let rate = |name: &str, labels: &[(&str, &str)]| {
                stats::total(&now, name, labels) - stats::total(&before, name, labels)
            };
            let reads: f64 = [
                "get",
                "multi_get",
                "batch_get",
                "scan",
                "get_scanner",
                "sortkey_count",
                "ttl",
            ]
            .iter()
            .map(|op| rate("pegasus_replica_requests_total", &[("op", op)]))
            .sum();
            let writes: f64 = [
                "put",
                "multi_put",
                "remove",
                "multi_remove",
                "incr",
                "check_and_set",
                "check_and_mutate",
            ]
            .iter()
            .map(|op| rate("pegasus_replica_requests_total", &[("op", op)]))
            .sum();
            let _ = writeln!(
                out,
                "{addr:<24}{reads:>10.0}{writes:>10.0}{:>10.0}{:>10.0}{:>10.0}",
                rate("pegasus_replica_request_errors_total", &[]),
                stats::total(&now, "pegasus_replica_replicas", &[("status", "primary")]),
                stats::total(&now, "pegasus_replica_replicas", &[("status", "secondary")]),
            );
        }
        Ok(out)
    }

    pub(crate) async fn app_stat(&self) -> Result<String> {
        let apps = self.list(AppStatus::Available).await?;
        let (_, replicas) = self.servers().await?;
        let mut samples = Vec::new();
        for addr in &replicas {
            if let Ok(body) = stats::http_get(*addr, "/metrics").await {
                samples.extend(stats::parse_metrics(&body));
            }
        }
        let mut out = format!(
            "{:<24}{:>8}{:>12}{:>14}{:>14}{:>14}\n",
            "app_name", "app_id", "partitions", "est_keys", "sst_bytes", "memtable"
        );
        for a in &apps {
            let id = a.app_id.to_string();
            // Every replica holds a copy: divide the sums by the replica count.
            let copies = f64::from(a.max_replica_count.max(1));
            let per =
                |name: &str| stats::total(&samples, name, &[("app_id", id.as_str())]) / copies;
            let _ = writeln!(
                out,
                "{:<24}{:>8}{:>12}{:>14.0}{:>14.0}{:>14.0}",
                a.app_name,
                a.app_id,
                a.partition_count,
                per("pegasus_replica_rdb_estimated_keys"),
                per("pegasus_replica_rdb_sst_bytes"),
                per("pegasus_replica_rdb_memtable_bytes"),
            );
        }
        Ok(out)
    }

    pub(crate) async fn cluster_info(&self) -> Result<String> {
        match self
            .meta(MetaRequest::ClusterInfo(ClusterInfoRequest {}))
            .await?
        {
            MetaResponse::ClusterInfo(r) if r.err == ErrorCode::Ok => {
                let mut out = String::new();
                for (k, v) in r.keys.iter().zip(&r.values) {
                    let _ = writeln!(out, "{k:<28}: {v}");
                }
                Ok(out)
            }
            MetaResponse::ClusterInfo(r) => {
                Err(ShellError::Server(format!("cluster_info: {}", r.err)))
            }
            other => Err(ShellError::Server(format!("unexpected {other:?}"))),
        }
    }
}
