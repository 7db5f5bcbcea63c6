//! The `conn-flood` fault: a [`Flood`] of connections to one server, as many as its
//! descriptor limit; healing stops it, waits until its sockets are closed and records what
//! the flood saw.

use std::time::{Duration, Instant};

use rand::Rng;

use super::{random_replica, skipped, Fault, FloodHandle, Nemesis};
use crate::cluster::Cluster;
use crate::flood::{self, Flood, FloodOutcome};
use crate::Result;

/// The longest hold of a `conn-flood`; the flood also ends by itself 60 s after that.
pub(super) const CONN_FLOOD_MAX_HOLD: Duration = Duration::from_secs(65);

/// How long healing a `conn-flood` waits, at most, for its sockets to be closed on both
/// sides.
const CONN_FLOOD_HEAL_WAIT: Duration = Duration::from_secs(30);

/// Sockets the target may hold beyond its count from before the flood once it is healed
/// (the workload's own connections come and go meanwhile).
const SOCKET_SLACK: usize = 64;

/// Installs [`Nemesis::ConnFlood`].
pub(super) fn install(cluster: &Cluster, rng: &mut impl Rng) -> Result<Fault> {
    let name = if !cluster.metas.is_empty() && rng.random_range(0..4) == 0 {
        format!("meta{}", rng.random_range(1..=cluster.metas.len()))
    } else {
        random_replica(cluster, rng)
    };
    let Some(addr) = cluster.addr_of(&name) else {
        return skipped(Nemesis::ConnFlood, "address unknown");
    };
    let pid = cluster.pid_of(&name);
    let limit = pid.and_then(flood::nofile_soft_of);
    let connections = flood::connections_for(limit, pegasus_rpc::limits::raise_fd_limit().now);
    if connections == 0 {
        return skipped(Nemesis::ConnFlood, "no descriptors to spare for a flood");
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

/// Heals [`Fault::Flooded`]: stops the flood, records what it saw into `outcome`, and waits
/// (bounded) until the target holds about as many sockets as before.
pub(super) async fn heal(
    cluster: &Cluster,
    instance: &str,
    sockets_before: &Option<usize>,
    sockets_after: &mut Option<usize>,
    outcome: &mut Option<FloodOutcome>,
    flood: &FloodHandle,
) -> Result<()> {
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
