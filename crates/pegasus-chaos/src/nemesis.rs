//! Faults with an install and a heal step. Each install says what it did, so the schedule
//! in the report is exact.

use std::time::Duration;

use pegasus_client::Client;
use rand::Rng;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::{ChaosError, Result};

/// The faults this harness can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Nemesis {
    /// `kill -9` a random replica server; restart it after the hold.
    Kill,
    /// `kill -9` the server holding the primary of a random partition; restart it.
    KillPrimary,
    /// `kill -9` the meta leader; restart it.
    KillMeta,
    /// `kill -9` every replica server at once; restart them all.
    KillAll,
    /// SIGSTOP the server holding the primary of a random partition for longer than the
    /// failure detector's grace period, then SIGCONT.
    PausePrimary,
}

const ALL: [(Nemesis, &str); 5] = [
    (Nemesis::Kill, "kill"),
    (Nemesis::KillPrimary, "kill-primary"),
    (Nemesis::KillMeta, "kill-meta"),
    (Nemesis::KillAll, "kill-all"),
    (Nemesis::PausePrimary, "pause-primary"),
];

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
    /// These instances were killed.
    Killed(Vec<String>),
    /// This instance, the primary of partition `pidx`, was stopped.
    Paused {
        /// Instance name.
        instance: String,
        /// The partition whose primary it was.
        pidx: usize,
    },
    /// Nothing could be done (e.g. no primary known); the report says so.
    Skipped(String),
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

/// Installs `nemesis`.
pub async fn install(
    nemesis: Nemesis,
    cluster: &Cluster,
    client: &Client,
    rng: &mut impl Rng,
) -> Result<Fault> {
    let replicas = cluster.replicas.len();
    if nemesis == Nemesis::PausePrimary {
        return match random_primary(cluster, client, rng).await {
            Some((pidx, instance)) => {
                cluster.pause(&instance, true)?;
                Ok(Fault::Paused { instance, pidx })
            }
            None => Ok(Fault::Skipped(format!("{nemesis}: no primary known"))),
        };
    }
    let target = match nemesis {
        Nemesis::Kill => Some(format!("replica{}", rng.random_range(1..=replicas.max(1)))),
        Nemesis::KillPrimary => random_primary(cluster, client, rng).await.map(|(_, i)| i),
        Nemesis::KillMeta => cluster.meta_leader(),
        Nemesis::KillAll | Nemesis::PausePrimary => None,
    };
    match (nemesis, target) {
        (Nemesis::KillAll, _) => {
            let all: Vec<String> = (1..=replicas).map(|i| format!("replica{i}")).collect();
            for name in &all {
                cluster.kill(name)?;
            }
            Ok(Fault::Killed(all))
        }
        (_, Some(name)) => {
            cluster.kill(&name)?;
            Ok(Fault::Killed(vec![name]))
        }
        (_, None) => Ok(Fault::Skipped(format!("{nemesis}: no target found"))),
    }
}

/// How long a fault stays installed.
pub fn hold(nemesis: Nemesis, grace: Duration, rng: &mut impl Rng) -> Duration {
    match nemesis {
        // Past the grace period, so meta declares the node dead and fails over.
        Nemesis::PausePrimary => grace + Duration::from_millis(rng.random_range(1_500..4_000)),
        _ => Duration::from_millis(rng.random_range(1_000..8_000)),
    }
}

/// Undoes a fault.
pub fn heal(fault: &Fault, cluster: &Cluster) -> Result<()> {
    match fault {
        Fault::Killed(names) => {
            for n in names {
                cluster.restart(n)?;
            }
            Ok(())
        }
        Fault::Paused { instance, .. } => cluster.pause(instance, false),
        Fault::Skipped(_) => Ok(()),
    }
}

impl Fault {
    /// One line for the schedule.
    pub fn describe(&self) -> String {
        match self {
            Self::Killed(n) => format!("killed {}", n.join(",")),
            Self::Paused { instance, pidx } => {
                format!("paused {instance} (primary of partition {pidx})")
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
