//! Disk faults: the disk of `replica1` filled up (a tmpfs the run mounted), and a replica
//! server's mutation logs torn at the tail or corrupted in the middle between `kill -9` and
//! restart ([`crate::tamper`]).

use std::net::SocketAddr;
use std::time::Duration;

use pegasus_client::Client;
use rand::Rng;

use super::{random_replica, skipped, Fault, Nemesis};
use crate::cluster::{http_request, Cluster};
use crate::{tamper, Result};

/// Installs [`Nemesis::DiskFull`].
pub(super) fn fill_disk(cluster: &Cluster) -> Result<Fault> {
    let Some(mount) = cluster.tmpfs() else {
        return skipped(Nemesis::DiskFull, "replica1's data is not on a tmpfs");
    };
    let path = mount.join("chaos-fill");
    let bytes = fill(&path)?;
    Ok(Fault::DiskFilled { path, bytes })
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

/// Installs [`Nemesis::TornTail`] or [`Nemesis::CorruptLog`].
pub(super) async fn damage_logs(
    nemesis: Nemesis,
    cluster: &Cluster,
    client: &Client,
    rng: &mut impl Rng,
) -> Result<Fault> {
    // Damage only copies of partitions that are fully replicated right now: the
    // guarantee is "the other replicas hold it", so a copy is damaged only while two
    // healthy others exist. (Damaging copies faster than they re-learn destroys the
    // partition, as losing three disks would: seen in row 16's second run.)
    // And only once every partition is back to three replicas after the last
    // fault (bounded), so no copy is damaged while another is still re-learning.
    if !crate::wait_healthy(client, Duration::from_secs(60)).await
        || !all_copies_serving(cluster, Duration::from_secs(60)).await
    {
        return skipped(nemesis, "the table is not fully replicated");
    }
    let name = random_replica(cluster, rng);
    let Some(node) = cluster.addr_of(&name) else {
        return skipped(nemesis, "address unknown");
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
        return skipped(nemesis, &format!("no fully replicated partition on {name}"));
    }
    cluster.kill(&name)?;
    let dirs: Vec<std::path::PathBuf> = tamper::plog_dirs(&cluster.data_dir(&name))
        .into_iter()
        .filter(|d| tamper::partition_of_plog(d).is_some_and(|pidx| healthy.contains(&pidx)))
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
        // And the node log's last batch, when the server has one, half of the time.
        if rng.random_bool(0.5) {
            changes.extend(tamper::tear_node_log_tail(&cluster.data_dir(&name), rng)?);
        }
    } else if let Some(d) = dirs.get(rng.random_range(0..dirs.len().max(1))) {
        changes.extend(tamper::corrupt_middle(d, rng)?);
    }
    Ok(Fault::Tampered {
        instance: name,
        changes,
    })
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
