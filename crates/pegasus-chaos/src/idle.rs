//! Idle tables: many empty partitions beside `temp`, so that faults and benchmarks run on a
//! node hosting thousands of replicas (#28). Shared by `pegasus chaos --idle-partitions`
//! and `pegasus bench replicas`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pegasus_client::Client;
use pegasus_proto::meta::{CreateAppOptions, CreateAppRequest};
use pegasus_proto::{ErrorCode, MetaRequest, MetaResponse};

/// Creates `n` partitions (RF=3) in tables `idle_0`, `idle_1`, … of at most `per_table`
/// partitions each (each a power of two: partition split doubles them). Returns the
/// tables and their partition counts; an error names what meta refused.
pub async fn create_idle_tables(
    client: &Client,
    n: u32,
    per_table: u32,
) -> Result<Vec<(String, u32)>, String> {
    let mut tables = Vec::new();
    let mut left = n;
    while left > 0 {
        let count = 1u32 << (31 - left.min(per_table.max(1)).leading_zeros());
        left -= count;
        let name = format!("idle_{}", tables.len());
        let resp = client
            .meta(MetaRequest::CreateApp(CreateAppRequest {
                app_name: name.clone(),
                options: CreateAppOptions {
                    partition_count: i32::try_from(count).unwrap_or(i32::MAX),
                    replica_count: 3,
                    success_if_exist: true,
                    app_type: "pegasus".into(),
                    is_stateful: true,
                    envs: BTreeMap::new(),
                    atomic_idempotent: None,
                },
            }))
            .await
            .map_err(|e| format!("create {name}: {e}"))?;
        match resp {
            MetaResponse::CreateApp(r) if r.err == ErrorCode::Ok => {}
            other => return Err(format!("create {name}: {other:?}")),
        }
        tables.push((name, count));
    }
    Ok(tables)
}

/// Waits until every partition of `tables` has a primary and two secondaries; false if
/// that does not happen within `within`.
pub async fn wait_tables_healthy(
    client: &Client,
    tables: &[(String, u32)],
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    for (name, count) in tables {
        loop {
            let healthy = client.query_config(name).await.is_ok_and(|q| {
                q.err == ErrorCode::Ok
                    && q.partitions.len() == *count as usize
                    && q.partitions
                        .iter()
                        .all(|p| p.primary.is_valid() && p.secondaries.len() == 2)
            });
            if healthy {
                break;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    true
}
