//! Process faults: `kill -9` of a replica server, of the server holding a primary, of the
//! meta leader or of every replica server, and SIGSTOP of the server holding a primary.
//! Healing restarts or resumes them (in [`super::heal`]).

use pegasus_client::Client;
use rand::Rng;

use super::{random_primary, random_replica, skipped, Fault, Nemesis};
use crate::cluster::Cluster;
use crate::Result;

/// Installs [`Nemesis::Kill`].
pub(super) fn kill(cluster: &Cluster, rng: &mut impl Rng) -> Result<Fault> {
    let name = random_replica(cluster, rng);
    cluster.kill(&name)?;
    Ok(Fault::Killed(vec![name]))
}

/// Installs [`Nemesis::KillPrimary`].
pub(super) async fn kill_primary(
    cluster: &Cluster,
    client: &Client,
    rng: &mut impl Rng,
) -> Result<Fault> {
    match random_primary(cluster, client, rng).await {
        Some((_, name)) => {
            cluster.kill(&name)?;
            Ok(Fault::Killed(vec![name]))
        }
        None => skipped(Nemesis::KillPrimary, "no primary known"),
    }
}

/// Installs [`Nemesis::KillMeta`].
pub(super) fn kill_meta(cluster: &Cluster) -> Result<Fault> {
    match cluster.meta_leader() {
        Some(name) => {
            cluster.kill(&name)?;
            Ok(Fault::Killed(vec![name]))
        }
        None => skipped(Nemesis::KillMeta, "no meta leader found"),
    }
}

/// Installs [`Nemesis::KillAll`].
pub(super) fn kill_all(cluster: &Cluster) -> Result<Fault> {
    let replicas = cluster.replicas.len();
    let all: Vec<String> = (1..=replicas).map(|i| format!("replica{i}")).collect();
    for name in &all {
        cluster.kill(name)?;
    }
    Ok(Fault::Killed(all))
}

/// Installs [`Nemesis::PausePrimary`].
pub(super) async fn pause_primary(
    cluster: &Cluster,
    client: &Client,
    rng: &mut impl Rng,
) -> Result<Fault> {
    match random_primary(cluster, client, rng).await {
        Some((pidx, instance)) => {
            cluster.pause(&instance, true)?;
            Ok(Fault::Paused { instance, pidx })
        }
        None => skipped(Nemesis::PausePrimary, "no primary known"),
    }
}
