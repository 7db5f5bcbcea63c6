//! Faults with an install and a heal step. Each install says what it did, so the schedule
//! in the report is exact.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pegasus_client::Client;
use rand::Rng;
use serde::Serialize;

use crate::cluster::{http_request, Cluster};
use crate::flood::{self, Flood, FloodOutcome};
use crate::net::Firewall;
use crate::{tamper, ChaosError, Result};

/// The faults this harness can inject (rows of the matrix in `reliability.md` B.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Nemesis {
    /// No fault: the baseline run (row 0).
    None,
    /// `kill -9` a random replica server; restart it after the hold (row 1).
    Kill,
    /// `kill -9` the server holding the primary of a random partition; restart it (row 2).
    KillPrimary,
    /// `kill -9` the meta leader; restart it (row 3).
    KillMeta,
    /// `kill -9` every replica server at once; restart them all (row 4).
    KillAll,
    /// SIGSTOP the server holding the primary of a random partition for longer than the
    /// failure detector's grace period, then SIGCONT (row 6).
    PausePrimary,
    /// Cut the server holding a random partition's primary off from every meta, past the
    /// grace period; clients still reach it (row 7).
    PartitionPrimaryMeta,
    /// Cut a random partition's primary server off from one of its secondaries' (row 8).
    PartitionSecondary,
    /// Split the metas: the leader alone, a follower alone, or a bridge (two metas that
    /// cannot see each other, both seeing the third) (row 9).
    PartitionMetas,
    /// Cut one replica server off from every other node (clients still reach it).
    IsolateNode,
    /// Fill the tmpfs holding `replica1`'s data; free it on heal (row 13).
    DiskFull,
    /// `kill -9` a replica server, tear the tail of some of its mutation logs, restart it
    /// (row 15).
    TornTail,
    /// `kill -9` a replica server, flip a byte in the middle of one mutation log, restart
    /// it: the replica must refuse the log and re-learn (row 16).
    CorruptLog,
    /// Arm a fail point in a random replica server for its next 1-3 hits: a log append or
    /// fsync returns EIO, or a store write returns corruption (row 14).
    FailPoint,
    /// Drop 50 % of the packets between every two nodes (row 10).
    NetDrop,
    /// Delay every request the replica servers send by 75 ± 50 ms (row 10).
    NetDelay,
    /// Cut a random replica server off from every other node and heal it again, every
    /// 1-3 s, for the hold (row 10).
    NetFlap,
    /// Hold as many connections to one server (a replica server, or a meta server one time
    /// in four) as its descriptor limit, silent or stalled in a frame header, reconnecting
    /// whenever the server closes one (row 17). No replica may be rebuilt because of it.
    ConnFlood,
}

const ALL: [(Nemesis, &str); 18] = [
    (Nemesis::None, "none"),
    (Nemesis::Kill, "kill"),
    (Nemesis::KillPrimary, "kill-primary"),
    (Nemesis::KillMeta, "kill-meta"),
    (Nemesis::KillAll, "kill-all"),
    (Nemesis::PausePrimary, "pause-primary"),
    (Nemesis::PartitionPrimaryMeta, "partition-primary-meta"),
    (Nemesis::PartitionSecondary, "partition-secondary"),
    (Nemesis::PartitionMetas, "partition-metas"),
    (Nemesis::IsolateNode, "isolate-node"),
    (Nemesis::DiskFull, "disk-full"),
    (Nemesis::TornTail, "torn-tail"),
    (Nemesis::CorruptLog, "corrupt-log"),
    (Nemesis::FailPoint, "fail-point"),
    (Nemesis::NetDrop, "net-drop"),
    (Nemesis::NetDelay, "net-delay"),
    (Nemesis::NetFlap, "net-flap"),
    (Nemesis::ConnFlood, "conn-flood"),
];

/// The longest hold of a `conn-flood`; the flood also ends by itself 60 s after that.
const CONN_FLOOD_MAX_HOLD: Duration = Duration::from_secs(65);

/// How long healing a `conn-flood` waits, at most, for its sockets to be closed on both
/// sides.
const CONN_FLOOD_HEAL_WAIT: Duration = Duration::from_secs(30);

/// Sockets the target may hold beyond its count from before the flood once it is healed
/// (the workload's own connections come and go meanwhile).
const SOCKET_SLACK: usize = 64;

impl Nemesis {
    /// Whether this nemesis arms fail points (the run enables them).
    pub fn arms_fail_points(self) -> bool {
        matches!(self, Self::FailPoint | Self::NetDelay)
    }

    /// Whether a replica moved aside to be rebuilt during this nemesis is a failure of the
    /// run (it harms no copy's data, so nothing may be rebuilt).
    pub fn forbids_rebuilds(self) -> bool {
        matches!(self, Self::ConnFlood)
    }
}

impl std::str::FromStr for Nemesis {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        ALL.iter()
            .find(|(_, n)| *n == s)
            .map(|(k, _)| *k)
            .ok_or_else(|| {
                let names: Vec<&str> = ALL.iter().map(|(_, n)| *n).collect();
                format!("unknown nemesis {s:?} (one of {})", names.join(", "))
            })
    }
}

impl std::fmt::Display for Nemesis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(ALL.iter().find(|(k, _)| k == self).map_or("?", |(_, n)| n))
    }
}

/// What an installed fault did, to be undone by [`heal`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Fault {
    /// Nothing was installed (the baseline).
    Nothing,
    /// These instances were killed.
    Killed(Vec<String>),
    /// This instance, the primary of partition `pidx`, was stopped.
    Paused {
        /// Instance name.
        instance: String,
        /// The partition whose primary it was.
        pidx: usize,
    },
    /// Links were cut; healing removes every rule.
    Partitioned {
        /// Which links.
        what: String,
        /// The partition whose primary was cut off from meta, if that is the point.
        primary_of: Option<usize>,
    },
    /// `instance` was killed and its files damaged; healing restarts it.
    Tampered {
        /// Instance name.
        instance: String,
        /// What was done to which file.
        changes: Vec<String>,
    },
    /// This file fills the disk; healing deletes it.
    DiskFilled {
        /// The filler file.
        path: std::path::PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// A node's links are cut and healed over and over during the hold; healing removes
    /// the rules.
    Flapping {
        /// The node.
        instance: String,
        /// Its links.
        pairs: Vec<(IpAddr, IpAddr)>,
    },
    /// Every replica server delays what it sends; healing turns that off.
    Delayed(Vec<String>),
    /// A fail point was armed in `instance`; healing disarms every point there.
    Armed {
        /// Instance name.
        instance: String,
        /// Which point and how many times.
        what: String,
    },
    /// A flood of connections to `instance`; healing stops it, waits until its sockets
    /// are closed and records what the flood saw.
    Flooded {
        /// Instance name.
        instance: String,
        /// Connections held at once.
        connections: usize,
        /// The target's soft descriptor limit (`/proc/<pid>/limits`), if read.
        limit: Option<u64>,
        /// Socket descriptors the target held before the flood, if read.
        sockets_before: Option<usize>,
        /// Socket descriptors it held once healed, if read.
        sockets_after: Option<usize>,
        /// What the flood saw; `None` until healed.
        outcome: Option<FloodOutcome>,
        /// The running flood.
        #[serde(skip)]
        flood: FloodHandle,
    },
    /// Nothing could be done (e.g. no primary known); the report says so.
    Skipped(String),
}

/// A running flood inside a [`Fault`] (equal only to itself).
#[derive(Debug, Clone)]
pub struct FloodHandle(Arc<Flood>);

impl PartialEq for FloodHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for FloodHandle {}

impl Fault {
    /// The partition whose primary this fault cut off from meta while clients may still
    /// reach it (a stale-read probe runs during such faults).
    pub fn isolated_primary(&self) -> Option<usize> {
        match self {
            Self::Paused { pidx, .. } => Some(*pidx),
            Self::Partitioned { primary_of, .. } => *primary_of,
            _ => None,
        }
    }
}

/// A random partition of `temp` with a primary, and the instance holding that primary.
async fn random_primary(
    cluster: &Cluster,
    client: &Client,
    rng: &mut impl Rng,
) -> Option<(usize, String)> {
    let cfg = client.query_config("temp").await.ok()?;
    let primaries: Vec<(usize, std::net::SocketAddr)> = cfg
        .partitions
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((i, p.primary.to_socket_addr()?)))
        .collect();
    if primaries.is_empty() {
        return None;
    }
    let (pidx, addr) = *primaries.get(rng.random_range(0..primaries.len()))?;
    Some((pidx, cluster.instance_of(addr)?))
}

/// A random partition of `temp` with a primary and at least one secondary: its index,
/// its primary's address and one of its secondaries' addresses.
async fn random_pair(
    client: &Client,
    rng: &mut impl Rng,
) -> Option<(usize, SocketAddr, SocketAddr)> {
    let cfg = client.query_config("temp").await.ok()?;
    let pairs: Vec<(usize, SocketAddr, Vec<SocketAddr>)> = cfg
        .partitions
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let secondaries: Vec<SocketAddr> = p
                .secondaries
                .iter()
                .filter_map(|s| s.to_socket_addr())
                .collect();
            Some((i, p.primary.to_socket_addr()?, secondaries)).filter(|(_, _, s)| !s.is_empty())
        })
        .collect();
    let (pidx, primary, secondaries) = pairs.get(rng.random_range(0..pairs.len().max(1)))?;
    let secondary = secondaries.get(rng.random_range(0..secondaries.len()))?;
    Some((*pidx, *primary, *secondary))
}

/// Every link between `node` and the other nodes of the cluster.
fn links_of(cluster: &Cluster, node: SocketAddr) -> Vec<(IpAddr, IpAddr)> {
    cluster
        .metas
        .iter()
        .chain(cluster.replicas.iter())
        .filter(|a| **a != node)
        .map(|a| (node.ip(), a.ip()))
        .collect()
}

/// `POST /failpoint?<query>` to a replica server: `None` when it does not answer (it is
/// down), else whether it accepted, with the status line of a refusal.
fn post_failpoint(addr: SocketAddr, query: &str) -> Option<std::result::Result<(), String>> {
    let answer = http_request(addr, "POST", &format!("/failpoint?{query}"))?;
    let status = answer.lines().next().unwrap_or_default();
    Some(if status.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(status.to_string())
    })
}

/// Installs `nemesis`.
pub async fn install(
    nemesis: Nemesis,
    cluster: &Cluster,
    client: &Client,
    firewall: &mut Firewall,
    rng: &mut impl Rng,
) -> Result<Fault> {
    let replicas = cluster.replicas.len();
    let random_replica =
        |rng: &mut dyn rand::RngCore| format!("replica{}", rng.random_range(1..=replicas.max(1)));
    let skipped = |why: &str| Ok(Fault::Skipped(format!("{nemesis}: {why}")));
    match nemesis {
        Nemesis::None => Ok(Fault::Nothing),
        Nemesis::Kill => {
            let name = random_replica(rng);
            cluster.kill(&name)?;
            Ok(Fault::Killed(vec![name]))
        }
        Nemesis::KillPrimary => match random_primary(cluster, client, rng).await {
            Some((_, name)) => {
                cluster.kill(&name)?;
                Ok(Fault::Killed(vec![name]))
            }
            None => skipped("no primary known"),
        },
        Nemesis::KillMeta => match cluster.meta_leader() {
            Some(name) => {
                cluster.kill(&name)?;
                Ok(Fault::Killed(vec![name]))
            }
            None => skipped("no meta leader found"),
        },
        Nemesis::KillAll => {
            let all: Vec<String> = (1..=replicas).map(|i| format!("replica{i}")).collect();
            for name in &all {
                cluster.kill(name)?;
            }
            Ok(Fault::Killed(all))
        }
        Nemesis::PausePrimary => match random_primary(cluster, client, rng).await {
            Some((pidx, instance)) => {
                cluster.pause(&instance, true)?;
                Ok(Fault::Paused { instance, pidx })
            }
            None => skipped("no primary known"),
        },
        Nemesis::PartitionPrimaryMeta => {
            let Some((pidx, instance)) = random_primary(cluster, client, rng).await else {
                return skipped("no primary known");
            };
            let Some(node) = cluster.addr_of(&instance) else {
                return skipped("primary address unknown");
            };
            let pairs: Vec<(IpAddr, IpAddr)> =
                cluster.metas.iter().map(|m| (node.ip(), m.ip())).collect();
            firewall.cut(&pairs)?;
            Ok(Fault::Partitioned {
                what: format!("cut {instance} (primary of partition {pidx}) <-/-> every meta"),
                primary_of: Some(pidx),
            })
        }
        Nemesis::PartitionSecondary => {
            let Some((pidx, primary, secondary)) = random_pair(client, rng).await else {
                return skipped("no partition with a secondary");
            };
            firewall.cut(&[(primary.ip(), secondary.ip())])?;
            let name = |a| cluster.instance_of(a).unwrap_or_else(|| a.to_string());
            Ok(Fault::Partitioned {
                what: format!(
                    "cut {} (primary of partition {pidx}) <-/-> {} (its secondary)",
                    name(primary),
                    name(secondary)
                ),
                primary_of: None,
            })
        }
        Nemesis::PartitionMetas => {
            let metas: Vec<SocketAddr> = cluster.metas.clone();
            if metas.len() < 3 {
                return skipped("fewer than 3 metas");
            }
            let leader = cluster
                .meta_leader()
                .and_then(|n| cluster.addr_of(&n))
                .and_then(|a| metas.iter().position(|m| *m == a))
                .unwrap_or(0);
            let others: Vec<usize> = (0..metas.len()).filter(|i| *i != leader).collect();
            let pick = |i: usize| metas.get(i).map(SocketAddr::ip);
            let (what, cut): (String, Vec<(usize, usize)>) = match rng.random_range(0..3) {
                0 => (
                    format!("cut meta{} (leader) alone", leader + 1),
                    others.iter().map(|o| (leader, *o)).collect(),
                ),
                1 => {
                    let f = others
                        .get(rng.random_range(0..others.len()))
                        .copied()
                        .unwrap_or(0);
                    (
                        format!("cut meta{} (follower) alone", f + 1),
                        (0..metas.len())
                            .filter(|i| *i != f)
                            .map(|i| (f, i))
                            .collect(),
                    )
                }
                _ => {
                    // The leader and one follower cannot see each other; both see the third.
                    let f = others.first().copied().unwrap_or(1);
                    (
                        format!("cut bridge: meta{} <-/-> meta{}", leader + 1, f + 1),
                        vec![(leader, f)],
                    )
                }
            };
            let pairs: Vec<(IpAddr, IpAddr)> = cut
                .iter()
                .filter_map(|(a, b)| Some((pick(*a)?, pick(*b)?)))
                .collect();
            firewall.cut(&pairs)?;
            Ok(Fault::Partitioned {
                what,
                primary_of: None,
            })
        }
        Nemesis::IsolateNode => {
            let name = random_replica(rng);
            let Some(node) = cluster.addr_of(&name) else {
                return skipped("address unknown");
            };
            // A partition it leads, if any: clients still reach it there, so the
            // stale-read probe runs against it.
            let primary_of = client.query_config("temp").await.ok().and_then(|cfg| {
                cfg.partitions
                    .iter()
                    .position(|p| p.primary.to_socket_addr() == Some(node))
            });
            firewall.cut(&links_of(cluster, node))?;
            Ok(Fault::Partitioned {
                what: format!("cut {name} <-/-> every other node"),
                primary_of,
            })
        }
        Nemesis::DiskFull => {
            let Some(mount) = cluster.tmpfs() else {
                return skipped("replica1's data is not on a tmpfs");
            };
            let path = mount.join("chaos-fill");
            let bytes = fill(&path)?;
            Ok(Fault::DiskFilled { path, bytes })
        }
        Nemesis::NetDrop => {
            let nodes: Vec<IpAddr> = cluster
                .metas
                .iter()
                .chain(cluster.replicas.iter())
                .map(|a| a.ip())
                .collect();
            let pairs: Vec<(IpAddr, IpAddr)> = nodes
                .iter()
                .enumerate()
                .flat_map(|(i, a)| nodes.iter().skip(i + 1).map(move |b| (*a, *b)))
                .collect();
            firewall.drop_random(&pairs, 50)?;
            Ok(Fault::Partitioned {
                what: "50% of packets dropped between every two nodes".into(),
                primary_of: None,
            })
        }
        Nemesis::NetDelay => {
            let mut delayed = Vec::new();
            for i in 1..=replicas {
                let name = format!("replica{i}");
                let Some(addr) = cluster.addr_of(&name) else {
                    continue;
                };
                if post_failpoint(addr, "name=net_delay&ms=75&jitter=50") == Some(Ok(())) {
                    delayed.push(name);
                }
            }
            if delayed.is_empty() {
                return skipped("no replica server accepted the delay");
            }
            Ok(Fault::Delayed(delayed))
        }
        Nemesis::NetFlap => {
            let name = random_replica(rng);
            let Some(node) = cluster.addr_of(&name) else {
                return skipped("address unknown");
            };
            let pairs = links_of(cluster, node);
            firewall.cut(&pairs)?;
            Ok(Fault::Flapping {
                instance: name,
                pairs,
            })
        }
        Nemesis::ConnFlood => {
            let name = if !cluster.metas.is_empty() && rng.random_range(0..4) == 0 {
                format!("meta{}", rng.random_range(1..=cluster.metas.len()))
            } else {
                random_replica(rng)
            };
            let Some(addr) = cluster.addr_of(&name) else {
                return skipped("address unknown");
            };
            let pid = cluster.pid_of(&name);
            let limit = pid.and_then(flood::nofile_soft_of);
            let connections =
                flood::connections_for(limit, pegasus_rpc::limits::raise_fd_limit().now);
            if connections == 0 {
                return skipped("no descriptors to spare for a flood");
            }
            let sockets_before = pid.and_then(flood::open_sockets);
            // Bounded even if nothing heals it: the longest hold and a minute more.
            let deadline = Instant::now() + CONN_FLOOD_MAX_HOLD + Duration::from_secs(60);
            let flood = Flood::start(addr, connections, deadline, CONN_FLOOD_HEAL_WAIT / 2)?;
            Ok(Fault::Flooded {
                instance: name,
                connections,
                limit,
                sockets_before,
                sockets_after: None,
                outcome: None,
                flood: FloodHandle(flood),
            })
        }
        Nemesis::FailPoint => {
            let name = random_replica(rng);
            let Some(addr) = cluster.addr_of(&name) else {
                return skipped("address unknown");
            };
            // The first four rebuild the replica; the last two are transient resource
            // errors, after which it is reopened in place.
            const POINTS: [&str; 6] = [
                "plog_append",
                "plog_sync",
                "storage_write",
                "replica_panic",
                "storage_flush_emfile",
                "plog_append_enospc",
            ];
            let point = POINTS
                .get(rng.random_range(0..POINTS.len()))
                .copied()
                .unwrap_or("plog_sync");
            let times = rng.random_range(1..=3);
            match post_failpoint(addr, &format!("name={point}&times={times}")) {
                Some(Ok(())) => {}
                Some(Err(status)) => return skipped(&format!("arming refused: {status}")),
                None => return skipped("arming: no answer"),
            }
            Ok(Fault::Armed {
                instance: name,
                what: format!("{point} x{times}"),
            })
        }
        Nemesis::TornTail | Nemesis::CorruptLog => {
            // Damage only copies of partitions that are fully replicated right now: the
            // guarantee is "the other replicas hold it", so a copy is damaged only while two
            // healthy others exist. (Damaging copies faster than they re-learn destroys the
            // partition, as losing three disks would: seen in row 16's second run.)
            // And only once every partition is back to three replicas after the last
            // fault (bounded), so no copy is damaged while another is still re-learning.
            if !crate::wait_healthy(client, Duration::from_secs(60)).await
                || !all_copies_serving(cluster, Duration::from_secs(60)).await
            {
                return skipped("the table is not fully replicated");
            }
            let name = random_replica(rng);
            let Some(node) = cluster.addr_of(&name) else {
                return skipped("address unknown");
            };
            let healthy: Vec<usize> = match client.query_config("temp").await {
                Ok(cfg) => cfg
                    .partitions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| {
                        let members: Vec<Option<SocketAddr>> = std::iter::once(&p.primary)
                            .chain(p.secondaries.iter())
                            .map(|a| a.to_socket_addr())
                            .collect();
                        members.len() == 3
                            && members.iter().all(Option::is_some)
                            && members.contains(&Some(node))
                    })
                    .map(|(i, _)| i)
                    .collect(),
                Err(_) => Vec::new(),
            };
            if healthy.is_empty() {
                return skipped(&format!("no fully replicated partition on {name}"));
            }
            cluster.kill(&name)?;
            let dirs: Vec<std::path::PathBuf> = tamper::plog_dirs(&cluster.data_dir(&name))
                .into_iter()
                .filter(|d| {
                    tamper::partition_of_plog(d).is_some_and(|pidx| healthy.contains(&pidx))
                })
                .collect();
            let mut changes = Vec::new();
            if nemesis == Nemesis::TornTail {
                // Some of those logs, at least one.
                let first = rng.random_range(0..dirs.len().max(1));
                for (i, d) in dirs.iter().enumerate() {
                    if i == first || rng.random_bool(0.4) {
                        changes.extend(tamper::tear_tail(d, rng)?);
                    }
                }
            } else if let Some(d) = dirs.get(rng.random_range(0..dirs.len().max(1))) {
                changes.extend(tamper::corrupt_middle(d, rng)?);
            }
            Ok(Fault::Tampered {
                instance: name,
                changes,
            })
        }
    }
}

/// Waits (bounded) until every partition has, across the replica servers' own reports,
/// one copy serving as primary and two as secondaries (meta's view can still list a node
/// whose restarted copy has not caught up).
async fn all_copies_serving(cluster: &Cluster, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        let mut roles: std::collections::BTreeMap<i64, (usize, usize)> = Default::default();
        let mut answered = 0;
        for addr in &cluster.replicas {
            let Some(text) = http_request(*addr, "GET", "/replica/replicas") else {
                continue;
            };
            let Some(body) = text.find('[').and_then(|i| text.get(i..)) else {
                continue;
            };
            let Ok(serde_json::Value::Array(list)) = serde_json::from_str(body) else {
                continue;
            };
            answered += 1;
            for r in list {
                let pidx = r
                    .get("partition_index")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(-1);
                let e = roles.entry(pidx).or_default();
                match r.get("status").and_then(serde_json::Value::as_str) {
                    Some("Primary") => e.0 += 1,
                    Some("Secondary") => e.1 += 1,
                    _ => {}
                }
            }
        }
        if answered == cluster.replicas.len()
            && !roles.is_empty()
            && roles.values().all(|(p, s)| *p == 1 && *s == 2)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// Writes `path` until the file system is full; returns the bytes written.
fn fill(path: &std::path::Path) -> Result<u64> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    let chunk = vec![0xA5u8; 1 << 20];
    let mut written = 0u64;
    // Bounded: a tmpfs this harness mounted, at most 64 GiB.
    while written < 64 << 30 {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => return Err(e.into()),
        }
    }
    // The last partial page too: small writes until nothing more fits.
    while f.write(&[0xA5u8; 512]).is_ok_and(|n| n > 0) {
        written += 512;
    }
    Ok(written)
}

/// Keeps `fault` installed until `until`: a flapping link is healed and cut again every
/// 1-3 s; anything else just waits.
pub async fn hold_until(
    fault: &Fault,
    firewall: &mut Firewall,
    until: std::time::Instant,
    rng: &mut impl Rng,
) {
    let Fault::Flapping { pairs, .. } = fault else {
        tokio::time::sleep_until(until.into()).await;
        return;
    };
    let mut cut = true;
    // Bounded by `until`: one toggle per 1-3 s.
    while std::time::Instant::now() < until {
        let next =
            std::time::Instant::now() + Duration::from_millis(rng.random_range(1_000..3_000));
        tokio::time::sleep_until(next.min(until).into()).await;
        if std::time::Instant::now() >= until {
            break;
        }
        let toggled = if cut {
            firewall.heal()
        } else {
            firewall.cut(pairs)
        };
        if let Err(e) = toggled {
            tracing::warn!("chaos: flapping: {e}");
        }
        cut = !cut;
    }
}

/// How long a fault stays installed.
pub fn hold(nemesis: Nemesis, grace: Duration, rng: &mut impl Rng) -> Duration {
    let ms = |lo: u64, hi: u64, rng: &mut dyn rand::RngCore| {
        Duration::from_millis(rng.random_range(lo..hi))
    };
    match nemesis {
        // Past the grace period, so meta declares the node dead and fails over.
        Nemesis::PausePrimary | Nemesis::PartitionPrimaryMeta | Nemesis::IsolateNode => {
            grace + ms(1_500, 4_000, rng)
        }
        Nemesis::PartitionSecondary | Nemesis::PartitionMetas => ms(2_000, 12_000, rng),
        Nemesis::DiskFull | Nemesis::NetDrop | Nemesis::NetDelay => ms(5_000, 15_000, rng),
        Nemesis::NetFlap => ms(8_000, 15_000, rng),
        // Several header timeouts (5 s): connections are reaped and replaced over and over,
        // and timed flushes and checkpoints come due under it.
        Nemesis::ConnFlood => ms(
            20_000,
            u64::try_from(CONN_FLOOD_MAX_HOLD.as_millis()).unwrap_or(65_000),
            rng,
        ),
        Nemesis::None => ms(5_000, 10_000, rng),
        _ => ms(1_000, 8_000, rng),
    }
}

/// Undoes a fault (a flood also records what it saw into `fault`).
pub async fn heal(fault: &mut Fault, cluster: &Cluster, firewall: &mut Firewall) -> Result<()> {
    match fault {
        Fault::Flooded {
            instance,
            sockets_before,
            sockets_after,
            outcome,
            flood,
            ..
        } => {
            let started = Instant::now();
            *outcome = Some(flood.0.stop(CONN_FLOOD_HEAL_WAIT).await);
            // The server closes its ends once the resets arrive: wait (within the same
            // bound) until it holds about as many sockets as before.
            let pid = cluster.pid_of(instance);
            loop {
                *sockets_after = pid.and_then(flood::open_sockets);
                let settled = match (*sockets_after, *sockets_before) {
                    (Some(after), Some(before)) => after <= before + SOCKET_SLACK,
                    _ => true,
                };
                if settled || started.elapsed() >= CONN_FLOOD_HEAL_WAIT {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(())
        }
        Fault::Killed(names) => {
            for n in names {
                cluster.restart(n)?;
            }
            Ok(())
        }
        Fault::Tampered { instance, .. } => cluster.restart(instance),
        Fault::Paused { instance, .. } => cluster.pause(instance, false),
        Fault::Partitioned { .. } | Fault::Flapping { .. } => firewall.heal(),
        Fault::Delayed(names) => {
            for name in names {
                if let Some(addr) = cluster.addr_of(name) {
                    // A server restarted meanwhile has no delay; nothing else to undo.
                    let _ = post_failpoint(addr, "name=off");
                }
            }
            Ok(())
        }
        Fault::DiskFilled { path, .. } => Ok(std::fs::remove_file(path)?),
        Fault::Armed { instance, .. } => {
            let addr = cluster
                .addr_of(instance)
                .ok_or_else(|| ChaosError::Cluster(format!("no address for {instance}")))?;
            // A server killed meanwhile has nothing armed; any other failure is one.
            match post_failpoint(addr, "name=off") {
                Some(Err(status)) => Err(ChaosError::Cluster(format!(
                    "disarming {instance}: {status}"
                ))),
                _ => Ok(()),
            }
        }
        Fault::Nothing | Fault::Skipped(_) => Ok(()),
    }
}

impl Fault {
    /// One line for the schedule.
    pub fn describe(&self) -> String {
        match self {
            Self::Nothing => "nothing".into(),
            Self::Killed(n) => format!("killed {}", n.join(",")),
            Self::Paused { instance, pidx } => {
                format!("paused {instance} (primary of partition {pidx})")
            }
            Self::Partitioned { what, .. } => what.clone(),
            Self::Tampered { instance, changes } => {
                format!("killed {instance}; {}", changes.join("; "))
            }
            Self::DiskFilled { path, bytes } => {
                format!("filled {} with {bytes} bytes", path.display())
            }
            Self::Armed { instance, what } => format!("armed {what} in {instance}"),
            Self::Flapping { instance, .. } => {
                format!("flapped {instance} <-/-> every other node every 1-3 s")
            }
            Self::Delayed(names) => {
                format!("delayed what {} send by 75±50 ms", names.join(","))
            }
            Self::Flooded {
                instance,
                connections,
                limit,
                sockets_before,
                sockets_after,
                outcome,
                ..
            } => {
                let known = |v: Option<usize>| v.map_or("?".to_string(), |v| v.to_string());
                let mut s = format!(
                    "flooded {instance} (descriptor limit {}) with {connections} connections, \
                     every third a partial THFT header",
                    limit.map_or("unknown".to_string(), |l| l.to_string()),
                );
                match outcome {
                    Some(o) => s.push_str(&format!(
                        ": opened {} (connect errors {}), refused at once {}, reaped {}, \
                         answered {}, slowest handshake-to-close {} ms; {} open at heal \
                         (oldest {} ms), ended in {} ms{}; target sockets {} before, {} after",
                        o.opened,
                        o.connect_errors,
                        o.refused,
                        o.reaped,
                        o.answered,
                        o.slowest_close_ms,
                        o.open_at_stop,
                        o.oldest_open_ms,
                        o.stop_ms,
                        if o.not_ended > 0 {
                            format!(" ({} aborted)", o.not_ended)
                        } else {
                            String::new()
                        },
                        known(*sockets_before),
                        known(*sockets_after),
                    )),
                    None => s.push_str(" (not healed)"),
                }
                s
            }
            Self::Skipped(why) => format!("skipped ({why})"),
        }
    }
}

impl From<std::io::Error> for ChaosError {
    fn from(e: std::io::Error) -> Self {
        Self::Cluster(e.to_string())
    }
}
