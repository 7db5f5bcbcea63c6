//! Faults armed inside a replica server through `POST /failpoint` on its admin port (the
//! run enables fail points for them, [`Nemesis::arms_fail_points`]): an I/O error, a
//! corruption or a panic for the next few hits of a point, and a delay of everything the
//! replica servers send. Healing disarms them.

use std::net::SocketAddr;

use rand::Rng;

use super::{random_replica, skipped, Fault, Nemesis};
use crate::cluster::{http_request, Cluster};
use crate::{ChaosError, Result};

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

/// Installs [`Nemesis::NetDelay`].
pub(super) fn net_delay(cluster: &Cluster) -> Result<Fault> {
    let replicas = cluster.replicas.len();
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
        return skipped(Nemesis::NetDelay, "no replica server accepted the delay");
    }
    Ok(Fault::Delayed(delayed))
}

/// Installs [`Nemesis::FailPoint`].
pub(super) fn arm(cluster: &Cluster, rng: &mut impl Rng) -> Result<Fault> {
    let name = random_replica(cluster, rng);
    let Some(addr) = cluster.addr_of(&name) else {
        return skipped(Nemesis::FailPoint, "address unknown");
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
        Some(Err(status)) => {
            return skipped(Nemesis::FailPoint, &format!("arming refused: {status}"))
        }
        None => return skipped(Nemesis::FailPoint, "arming: no answer"),
    }
    Ok(Fault::Armed {
        instance: name,
        what: format!("{point} x{times}"),
    })
}

/// Heals [`Fault::Delayed`]: turns the delay off in every server that had it.
pub(super) fn undelay(names: &[String], cluster: &Cluster) -> Result<()> {
    for name in names {
        if let Some(addr) = cluster.addr_of(name) {
            // A server restarted meanwhile has no delay; nothing else to undo.
            let _ = post_failpoint(addr, "name=off");
        }
    }
    Ok(())
}

/// Heals [`Fault::Armed`]: disarms every point in `instance`.
pub(super) fn disarm(instance: &str, cluster: &Cluster) -> Result<()> {
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
