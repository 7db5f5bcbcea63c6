//! Conversions from meta's state to Pegasus's wire structures, and small text helpers of
//! the RPCs.

use super::*;

pub(super) fn wire_address(node: Option<NodeId>) -> RpcAddress {
    node.map_or(RpcAddress::INVALID, |n| RpcAddress::from_raw(n.0))
}

/// A partition configuration as clients see it (no `hp_*` fields).
pub fn wire_partition(pc: &PartitionConfig) -> PartitionConfiguration {
    PartitionConfiguration {
        pid: pc.gpid,
        ballot: pc.ballot,
        max_replica_count: i32::try_from(pc.max_replica_count).unwrap_or(i32::MAX),
        primary: wire_address(pc.primary),
        secondaries: pc
            .secondaries
            .iter()
            .map(|n| wire_address(Some(*n)))
            .collect(),
        last_drops: pc
            .last_drops
            .iter()
            .map(|n| wire_address(Some(*n)))
            .collect(),
        last_committed_decree: pc.last_committed_decree,
        partition_flags: 0,
    }
}

pub(super) fn secs(ms: u64) -> i64 {
    i64::try_from(ms / 1000).unwrap_or(i64::MAX)
}

/// A table as clients see it.
pub fn wire_app(app: &App) -> AppInfo {
    AppInfo {
        status: match app.status {
            AppStatus::Available => WireAppStatus::Available,
            AppStatus::Dropped => WireAppStatus::Dropped,
        },
        app_type: app.app_type.clone(),
        app_name: app.name.clone(),
        app_id: app.id,
        partition_count: app.partition_count,
        envs: app.envs.clone(),
        is_stateful: true,
        max_replica_count: app.max_replica_count,
        expire_second: secs(app.expire_ms),
        create_second: secs(app.create_ms),
        drop_second: secs(app.drop_ms),
        duplicating: Some(false),
        init_partition_count: app.partition_count,
        is_bulk_loading: Some(false),
        atomic_idempotent: Some(false),
    }
}

pub(super) fn summary(app: &App) -> AppSummary {
    AppSummary {
        app_id: app.id,
        name: app.name.clone(),
        partition_count: app.partition_count,
        envs: app.envs.clone(),
        dropped: app.status == AppStatus::Dropped,
    }
}

pub(super) fn level_name(level: i32) -> &'static str {
    match level {
        100 => "fl_stopped",
        200 => "fl_blind",
        300 => "fl_freezed",
        400 => "fl_steady",
        500 => "fl_lively",
        _ => "fl_invalid",
    }
}

pub(super) fn name_matches(name: &str, req: &ListAppsRequest) -> Result<bool, String> {
    let Some(pattern) = req.app_name_pattern.as_deref() else {
        return Ok(true);
    };
    Ok(match req.match_type.unwrap_or(PatternMatchType::MatchAll) {
        PatternMatchType::MatchAll | PatternMatchType::Invalid => true,
        PatternMatchType::MatchExact => name == pattern,
        PatternMatchType::MatchAnywhere => name.contains(pattern),
        PatternMatchType::MatchPrefix => name.starts_with(pattern),
        PatternMatchType::MatchPostfix => name.ends_with(pattern),
        other => return Err(format!("match type {other:?} is not supported")),
    })
}

pub(super) fn addr_text(n: NodeId) -> String {
    addr_of(n).map_or_else(|| format!("{n}"), |a| a.to_string())
}
