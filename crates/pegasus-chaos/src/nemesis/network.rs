//! Network faults made with nftables rules ([`Firewall`]): a primary cut off from meta, a
//! primary from one of its secondaries, the metas split, a node isolated, packets dropped
//! between every two nodes, and a node's links cut and healed over and over (the toggling
//! itself is [`super::hold_until`]). Healing deletes every rule.

use std::net::{IpAddr, SocketAddr};

use pegasus_client::Client;
use rand::Rng;

use super::{random_primary, random_replica, skipped, Fault, Nemesis};
use crate::cluster::Cluster;
use crate::net::Firewall;
use crate::Result;

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

/// Installs [`Nemesis::PartitionPrimaryMeta`].
pub(super) async fn partition_primary_meta(
    cluster: &Cluster,
    client: &Client,
    firewall: &mut Firewall,
    rng: &mut impl Rng,
) -> Result<Fault> {
    let Some((pidx, instance)) = random_primary(cluster, client, rng).await else {
        return skipped(Nemesis::PartitionPrimaryMeta, "no primary known");
    };
    let Some(node) = cluster.addr_of(&instance) else {
        return skipped(Nemesis::PartitionPrimaryMeta, "primary address unknown");
    };
    let pairs: Vec<(IpAddr, IpAddr)> = cluster.metas.iter().map(|m| (node.ip(), m.ip())).collect();
    firewall.cut(&pairs)?;
    Ok(Fault::Partitioned {
        what: format!("cut {instance} (primary of partition {pidx}) <-/-> every meta"),
        primary_of: Some(pidx),
    })
}

/// Installs [`Nemesis::PartitionSecondary`].
pub(super) async fn partition_secondary(
    cluster: &Cluster,
    client: &Client,
    firewall: &mut Firewall,
    rng: &mut impl Rng,
) -> Result<Fault> {
    let Some((pidx, primary, secondary)) = random_pair(client, rng).await else {
        return skipped(Nemesis::PartitionSecondary, "no partition with a secondary");
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

/// Installs [`Nemesis::PartitionMetas`].
pub(super) fn partition_metas(
    cluster: &Cluster,
    firewall: &mut Firewall,
    rng: &mut impl Rng,
) -> Result<Fault> {
    let metas: Vec<SocketAddr> = cluster.metas.clone();
    if metas.len() < 3 {
        return skipped(Nemesis::PartitionMetas, "fewer than 3 metas");
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

/// Installs [`Nemesis::IsolateNode`].
pub(super) async fn isolate_node(
    cluster: &Cluster,
    client: &Client,
    firewall: &mut Firewall,
    rng: &mut impl Rng,
) -> Result<Fault> {
    let name = random_replica(cluster, rng);
    let Some(node) = cluster.addr_of(&name) else {
        return skipped(Nemesis::IsolateNode, "address unknown");
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

/// Installs [`Nemesis::NetDrop`].
pub(super) fn net_drop(cluster: &Cluster, firewall: &mut Firewall) -> Result<Fault> {
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

/// Installs [`Nemesis::NetFlap`].
pub(super) fn net_flap(
    cluster: &Cluster,
    firewall: &mut Firewall,
    rng: &mut impl Rng,
) -> Result<Fault> {
    let name = random_replica(cluster, rng);
    let Some(node) = cluster.addr_of(&name) else {
        return skipped(Nemesis::NetFlap, "address unknown");
    };
    let pairs = links_of(cluster, node);
    firewall.cut(&pairs)?;
    Ok(Fault::Flapping {
        instance: name,
        pairs,
    })
}
