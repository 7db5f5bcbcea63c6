//! Faults with an install and a heal step. Each install says what it did, so the schedule
//! in the report is exact.
//!
//! This module holds what every fault shares: the [`Nemesis`] names, the [`Fault`] an
//! install leaves behind, and the install → hold → heal dispatch. Each family of faults is a
//! module of its own: `process` (kill -9, SIGSTOP), `network` (nftables partitions, drops,
//! flapping), `disk` (disk full, torn and corrupt logs), `failpoint` (fail points and the
//! sender-side delay armed over HTTP) and `conn_flood`.

mod conn_flood;
mod disk;
mod failpoint;
mod network;
mod process;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use pegasus_client::Client;
use rand::Rng;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::flood::{Flood, FloodOutcome};
use crate::net::Firewall;
use crate::Result;

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

/// A random replica server, by instance name.
fn random_replica(cluster: &Cluster, rng: &mut dyn rand::RngCore) -> String {
    format!(
        "replica{}",
        rng.random_range(1..=cluster.replicas.len().max(1))
    )
}

/// `nemesis` could not be installed, and why (the report says so).
fn skipped(nemesis: Nemesis, why: &str) -> Result<Fault> {
    Ok(Fault::Skipped(format!("{nemesis}: {why}")))
}

/// Installs `nemesis`.
pub async fn install(
    nemesis: Nemesis,
    cluster: &Cluster,
    client: &Client,
    firewall: &mut Firewall,
    rng: &mut impl Rng,
) -> Result<Fault> {
    match nemesis {
        Nemesis::None => Ok(Fault::Nothing),
        Nemesis::Kill => process::kill(cluster, rng),
        Nemesis::KillPrimary => process::kill_primary(cluster, client, rng).await,
        Nemesis::KillMeta => process::kill_meta(cluster),
        Nemesis::KillAll => process::kill_all(cluster),
        Nemesis::PausePrimary => process::pause_primary(cluster, client, rng).await,
        Nemesis::PartitionPrimaryMeta => {
            network::partition_primary_meta(cluster, client, firewall, rng).await
        }
        Nemesis::PartitionSecondary => {
            network::partition_secondary(cluster, client, firewall, rng).await
        }
        Nemesis::PartitionMetas => network::partition_metas(cluster, firewall, rng),
        Nemesis::IsolateNode => network::isolate_node(cluster, client, firewall, rng).await,
        Nemesis::DiskFull => disk::fill_disk(cluster),
        Nemesis::NetDrop => network::net_drop(cluster, firewall),
        Nemesis::NetDelay => failpoint::net_delay(cluster),
        Nemesis::NetFlap => network::net_flap(cluster, firewall, rng),
        Nemesis::ConnFlood => conn_flood::install(cluster, rng),
        Nemesis::FailPoint => failpoint::arm(cluster, rng),
        Nemesis::TornTail | Nemesis::CorruptLog => {
            disk::damage_logs(nemesis, cluster, client, rng).await
        }
    }
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
            u64::try_from(conn_flood::CONN_FLOOD_MAX_HOLD.as_millis()).unwrap_or(65_000),
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
            conn_flood::heal(
                cluster,
                instance,
                sockets_before,
                sockets_after,
                outcome,
                flood,
            )
            .await
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
        Fault::Delayed(names) => failpoint::undelay(names, cluster),
        Fault::DiskFilled { path, .. } => Ok(std::fs::remove_file(path)?),
        Fault::Armed { instance, .. } => failpoint::disarm(instance, cluster),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn nemesis_names_parse() {
        for n in [
            "none",
            "kill",
            "kill-primary",
            "kill-meta",
            "kill-all",
            "pause-primary",
            "partition-primary-meta",
            "partition-secondary",
            "partition-metas",
            "isolate-node",
            "disk-full",
            "torn-tail",
            "corrupt-log",
            "fail-point",
            "net-drop",
            "net-delay",
            "net-flap",
            "conn-flood",
        ] {
            assert_eq!(n.parse::<Nemesis>().unwrap().to_string(), n);
        }
        assert!("nope".parse::<Nemesis>().is_err());
    }
}
