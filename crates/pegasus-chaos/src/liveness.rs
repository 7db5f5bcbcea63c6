//! Liveness as meta shows it: every partition of `temp` back to a primary and two
//! secondaries, a write accepted by each partition, and the sum of the partitions' ballots.

use std::time::{Duration, Instant};

use pegasus_client::Client;

use crate::workload;

/// Waits until every partition of `temp` has a primary and two secondaries; false if
/// that does not happen within `within`.
pub async fn wait_healthy(client: &Client, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(r) = client.query_config("temp").await {
            if r.err == pegasus_proto::ErrorCode::Ok
                && !r.partitions.is_empty()
                && r.partitions
                    .iter()
                    .all(|p| p.primary.is_valid() && p.secondaries.len() == 2)
            {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// The sum of the ballots of `temp`'s partitions, as meta shows them.
pub(crate) async fn ballot_sum(client: &Client) -> Option<i64> {
    let cfg = client.query_config("temp").await.ok()?;
    (cfg.err == pegasus_proto::ErrorCode::Ok).then(|| cfg.partitions.iter().map(|p| p.ballot).sum())
}

/// One acknowledged write on every partition.
pub(crate) async fn write_each_partition(client: &Client, partitions: i32) -> bool {
    let Ok(table) = client.open_table("temp").await else {
        return false;
    };
    let count = u64::try_from(partitions.max(1)).unwrap_or(1);
    let mut done = std::collections::BTreeSet::new();
    for i in 0..10_000u64 {
        if done.len() as u64 == count {
            break;
        }
        let hk = format!("chaos_live_{i}");
        let p = workload::partition_of(hk.as_bytes(), partitions);
        if done.contains(&p) {
            continue;
        }
        let mut ok = false;
        for _ in 0..20 {
            if table.set(hk.as_bytes(), b"", b"alive", None).await.is_ok() {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if !ok {
            return false;
        }
        done.insert(p);
    }
    done.len() as u64 == count
}
