//! The stale-read probe run while a primary is paused or cut off from meta.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pegasus_client::Client;

use crate::workload::{self, Recorder};

/// While the primary of partition `pidx` is paused: once meta has moved the primary, write
/// a register of that partition through the new primary, then read it through a client
/// whose routing still names the old one. The read waits in the paused server's socket and
/// is answered when it resumes: the lease must make it refuse (the client then retries on
/// the new primary); a primary that ignores its lease answers with the value from before
/// the write — a stale read the checker reports. Both operations are recorded.
pub(crate) async fn stale_read_probe(
    admin: Client,
    stale: pegasus_client::Table,
    pidx: usize,
    keys: u64,
    partitions: i32,
    hold_until: Instant,
    rec: Arc<Recorder>,
) {
    let Some(key) = (0..keys)
        .find(|k| workload::partition_of(&workload::register_key(*k), partitions) == pidx as u64)
    else {
        return;
    };
    let Some(old) = stale.partition_primary(pidx).await else {
        return;
    };
    // Wait for the failover (bounded by the pause).
    let moved = loop {
        if Instant::now() + Duration::from_millis(1500) >= hold_until {
            break false;
        }
        if let Ok(cfg) = admin.query_config("temp").await {
            let now = cfg
                .partitions
                .get(pidx)
                .and_then(|p| p.primary.to_socket_addr());
            if now.is_some() && now != Some(old) {
                break true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if !moved {
        return;
    }
    let Ok(table) = admin.open_table("temp").await else {
        return;
    };
    let table = table.with_timeout(Duration::from_secs(1));
    let value = 9_000_000_000 + i64::try_from(rec.now_us()).unwrap_or(0);
    let invoke = rec.now_us();
    if table
        .set(
            &workload::register_key(key),
            b"",
            value.to_string().as_bytes(),
            None,
        )
        .await
        .is_err()
    {
        // Unknown outcome: recorded as such.
        rec.push_op(key, pegasus_check::OpKind::Set(value), invoke, None);
        return;
    }
    rec.push_op(
        key,
        pegasus_check::OpKind::Set(value),
        invoke,
        Some((rec.now_us(), pegasus_check::OpResult::Written)),
    );
    let stale = stale.with_timeout(
        hold_until.saturating_duration_since(Instant::now()) + Duration::from_secs(5),
    );
    let invoke = rec.now_us();
    if let Ok(v) = stale.get(&workload::register_key(key), b"").await {
        rec.push_op(
            key,
            pegasus_check::OpKind::Get,
            invoke,
            Some((
                rec.now_us(),
                pegasus_check::OpResult::Read(workload::read_value(v)),
            )),
        );
        rec.stale_probes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}
