//! Table envs (`RPC_CM_UPDATE_APP_ENV`, and the envs `RPC_CM_CREATE_APP` carries).
//!
//! [`ENVS`] is the one place that decides what happens to each key Pegasus knows: its value
//! check and whether pegasus-rs acts on it yet. A request may set only a key marked
//! [`Status::Supported`]; a key nothing acts on yet is refused with `ERR_INVALID_PARAMETERS`
//! and a hint naming the later work that will bring it, so an operator is never told a
//! setting was taken when it would have no effect. Unknown keys are refused too, so a typo
//! does not silently do nothing. Deleting and clearing keys is always allowed.
//!
//! The value checks of not-yet-supported keys are kept: they apply as soon as a key is
//! switched to `Supported`, and [`MetaState::apply`](crate::state::MetaState::apply) still
//! runs them, so Raft log entries written before a key was refused replay unchanged.

/// Whether pegasus-rs acts on an env.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Replica servers act on it.
    Supported,
    /// Recognised and value-checked, but nothing acts on it yet: refused until the named
    /// later work implements it.
    NotYet(Later),
}

/// The later work that will make a not-yet-supported env take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Later {
    /// Throttling, request denial, slow-query logging, manual compaction, per-table RocksDB
    /// tuning.
    OperatorSurface,
    /// Access control (ACL users, Ranger policies).
    Security,
    /// Bulk load (ingestion, the bulk-load usage scenario).
    BulkLoad,
    /// Partition split.
    PartitionSplit,
    /// Cold backup and restore (checkpoint retention).
    Backup,
    /// The info collector's per-business table statistics.
    Observability,
}

impl Later {
    /// How the hint names it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::OperatorSurface => "the operator surface",
            Self::Security => "security (access control)",
            Self::BulkLoad => "bulk load",
            Self::PartitionSplit => "partition split",
            Self::Backup => "backup and restore",
            Self::Observability => "observability (per-business statistics)",
        }
    }
}

/// One known env.
#[derive(Debug, Clone, Copy)]
pub struct Env {
    /// Pegasus's key.
    pub key: &'static str,
    /// Checks a value; `Err` says what is expected.
    pub check: fn(&str) -> Result<(), String>,
    /// A value `check` accepts (for tests and messages).
    pub example: &'static str,
    /// Whether pegasus-rs acts on it.
    pub status: Status,
}

const fn env(
    key: &'static str,
    check: fn(&str) -> Result<(), String>,
    example: &'static str,
    status: Status,
) -> Env {
    Env {
        key,
        check,
        example,
        status,
    }
}

use Later::{Backup, BulkLoad, Observability, OperatorSurface, PartitionSplit, Security};
use Status::{NotYet, Supported};

/// Every table env Pegasus knows, with its value check and whether pegasus-rs acts on it.
/// Switching a key to `Supported` is the last step of implementing it: the replica side and
/// an end-to-end test showing its effect come first.
#[rustfmt::skip]
pub const ENVS: &[Env] = &[
    // Replicas turn it into a mutation that changes the table's TTL policy.
    env("default_ttl", |v| int_in(v, 0, i64::from(i32::MAX)), "86400", Supported),
    // Unix seconds: every replica flushes and fully compacts once that time has come.
    env("manual_compact.once.trigger_time", |v| int_at_least(v, 0), "1700000000", Supported),
    // Operator surface: request control and throttling.
    env("replica.deny_client_request", deny_client, "reconfig*write", NotYet(OperatorSurface)),
    env("replica.write_throttling", throttling, "1000*delay*100", NotYet(OperatorSurface)),
    env("replica.write_throttling_by_size", throttling, "10M*delay*100", NotYet(OperatorSurface)),
    env("replica.read_throttling", throttling, "1000*reject*100", NotYet(OperatorSurface)),
    env("replica.read_throttling_by_size", throttling, "10M*delay*10", NotYet(OperatorSurface)),
    env("replica.backup_request_throttling", throttling, "100*delay*10", NotYet(OperatorSurface)),
    env("replica.slow_query_threshold", |v| int_at_least(v, 20), "100", NotYet(OperatorSurface)),
    env("replica.rocksdb_iteration_threshold_time_ms", |v| int_at_least(v, 0), "1000", NotYet(OperatorSurface)),
    env("replica.rocksdb_block_cache_enabled", boolean, "false", NotYet(OperatorSurface)),
    // Operator surface: manual compaction.
    env("manual_compact.disabled", boolean, "true", NotYet(OperatorSurface)),
    env("manual_compact.max_concurrent_running_count", |v| int_at_least(v, -1), "2", NotYet(OperatorSurface)),
    env("manual_compact.once.target_level", |v| int_at_least(v, -1), "-1", NotYet(OperatorSurface)),
    env("manual_compact.once.bottommost_level_compaction", bottommost, "force", NotYet(OperatorSurface)),
    env("manual_compact.periodic.trigger_time", times_of_day, "3:00,21:30", NotYet(OperatorSurface)),
    env("manual_compact.periodic.target_level", |v| int_at_least(v, -1), "-1", NotYet(OperatorSurface)),
    env("manual_compact.periodic.bottommost_level_compaction", bottommost, "skip", NotYet(OperatorSurface)),
    env("user_specified_compaction", anything, "{}", NotYet(OperatorSurface)),
    // Operator surface: per-table RocksDB tuning.
    env("rocksdb.write_buffer_size", |v| int_at_least(v, 0), "67108864", NotYet(OperatorSurface)),
    env("rocksdb.num_levels", |v| int_at_least(v, 0), "6", NotYet(OperatorSurface)),
    // Bulk load.
    env("rocksdb.usage_scenario", |v| one_of(v, &["normal", "prefer_write", "bulk_load"]), "prefer_write", NotYet(BulkLoad)),
    env("rocksdb.allow_ingest_behind", boolean, "true", NotYet(BulkLoad)),
    // Backup and restore.
    env("rocksdb.checkpoint.reserve_min_count", |v| int_at_least(v, 0), "2", NotYet(Backup)),
    env("rocksdb.checkpoint.reserve_time_seconds", |v| int_at_least(v, 0), "3600", NotYet(Backup)),
    // Partition split.
    env("replica.split.validate_partition_hash", boolean, "true", NotYet(PartitionSplit)),
    // Security.
    env("replica_access_controller.allowed_users", anything, "alice,bob", NotYet(Security)),
    env("replica_access_controller.ranger_policies", anything, "{}", NotYet(Security)),
    // Observability: the info collector groups table statistics by it.
    env("business.info", anything, "shop", NotYet(Observability)),
];

fn int_in(v: &str, min: i64, max: i64) -> Result<(), String> {
    match v.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(()),
        _ => Err(format!("expects an integer in [{min}, {max}]")),
    }
}

fn int_at_least(v: &str, min: i64) -> Result<(), String> {
    match v.trim().parse::<i64>() {
        Ok(n) if n >= min => Ok(()),
        _ => Err(format!("expects an integer >= {min}")),
    }
}

fn boolean(v: &str) -> Result<(), String> {
    match v {
        "true" | "false" => Ok(()),
        _ => Err("expects true or false".into()),
    }
}

fn one_of(v: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&v) {
        Ok(())
    } else {
        Err(format!("expects one of {allowed:?}"))
    }
}

fn anything(_: &str) -> Result<(), String> {
    Ok(())
}

fn bottommost(v: &str) -> Result<(), String> {
    one_of(v, &["force", "skip"])
}

/// `N*delay*ms[,N*reject*ms]` with an optional K/M suffix on N.
fn throttling(v: &str) -> Result<(), String> {
    let err = || "expects N*delay*ms[,N*reject*ms] (N may end in K or M)".to_string();
    if v.is_empty() {
        return Err(err());
    }
    for part in v.split(',') {
        let fields: Vec<&str> = part.split('*').collect();
        let [n, kind, ms] = fields.as_slice() else {
            return Err(err());
        };
        let digits = n.trim_end_matches(['K', 'M']);
        if digits.is_empty() || digits.parse::<u64>().is_err() {
            return Err(err());
        }
        if !matches!(*kind, "delay" | "reject") || ms.parse::<u64>().is_err() {
            return Err(err());
        }
    }
    Ok(())
}

fn deny_client(v: &str) -> Result<(), String> {
    let Some((how, what)) = v.split_once('*') else {
        return Err("expects timeout*{read,write,all} or reconfig*{read,write,all}".into());
    };
    one_of(how, &["timeout", "reconfig"])?;
    one_of(what, &["read", "write", "all"])
}

/// `HH:MM[,HH:MM...]`.
fn times_of_day(v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.split(',').all(|t| {
            t.split_once(':').is_some_and(|(h, m)| {
                h.parse::<u8>().is_ok_and(|h| h < 24) && m.parse::<u8>().is_ok_and(|m| m < 60)
            })
        });
    if ok {
        Ok(())
    } else {
        Err("expects HH:MM[,HH:MM...]".into())
    }
}

/// The table entry of a key.
pub fn lookup(key: &str) -> Option<&'static Env> {
    ENVS.iter().find(|e| e.key == key)
}

fn unknown(key: &str) -> String {
    format!("unknown app env `{key}`: not a table env Pegasus knows")
}

/// Checks a known env's value, whatever its status. This is the check
/// [`MetaState::apply`](crate::state::MetaState::apply) runs; requests go through
/// [`check_set`]. `Err` carries the reason, shown to the user as the hint message.
pub fn validate(key: &str, value: &str) -> Result<(), String> {
    let e = lookup(key).ok_or_else(|| unknown(key))?;
    (e.check)(value).map_err(|why| format!("app env {key}={value:?}: {why}"))
}

/// Whether a request may set `key` to `value`: the key is known, pegasus-rs acts on it,
/// and the value passes its check. `Err` is the hint message.
pub fn check_set(key: &str, value: &str) -> Result<(), String> {
    let e = lookup(key).ok_or_else(|| unknown(key))?;
    if let Status::NotYet(later) = e.status {
        return Err(format!(
            "env `{key}` is recognised but not supported yet by pegasus-rs; it would have no \
             effect (it comes with {})",
            later.describe()
        ));
    }
    validate(key, value)
}

#[cfg(test)]
mod tests {
    use super::{check_set, lookup, validate, Status, ENVS};

    #[test]
    fn the_table_has_each_key_once_and_every_example_passes_its_check() {
        for (i, e) in ENVS.iter().enumerate() {
            assert!(
                ENVS.iter().skip(i + 1).all(|o| o.key != e.key),
                "{} listed twice",
                e.key
            );
            assert_eq!(validate(e.key, e.example), Ok(()), "{}", e.key);
            assert_eq!(lookup(e.key).map(|l| l.key), Some(e.key));
        }
        assert!(ENVS.len() > 25, "every env Pegasus knows is listed");
    }

    #[test]
    fn only_envs_replicas_act_on_are_supported() {
        // Switching a key to Supported needs replica support and an end-to-end test showing
        // its effect (crates/pegasus/tests: `default_ttl` and `mutation_time.rs`'s manual
        // compaction); update this list with them.
        let supported: Vec<&str> = ENVS
            .iter()
            .filter(|e| e.status == Status::Supported)
            .map(|e| e.key)
            .collect();
        assert_eq!(
            supported,
            ["default_ttl", "manual_compact.once.trigger_time"]
        );
        assert_eq!(check_set("default_ttl", "86400"), Ok(()));
        assert_eq!(check_set("default_ttl", "0"), Ok(()));
        assert_eq!(
            check_set("manual_compact.once.trigger_time", "1700000000"),
            Ok(())
        );
        assert!(check_set("manual_compact.once.trigger_time", "-1").is_err());
    }

    #[test]
    fn not_yet_supported_envs_are_refused_with_a_hint_even_with_good_values() {
        for e in ENVS {
            let Status::NotYet(later) = e.status else {
                continue;
            };
            let err = check_set(e.key, e.example).expect_err(e.key);
            assert!(
                err.contains(&format!("env `{}`", e.key))
                    && err.contains("not supported yet by pegasus-rs")
                    && err.contains("no effect")
                    && err.contains(later.describe()),
                "{err}"
            );
        }
        let err = check_set("replica.deny_client_request", "reconfig*write").unwrap_err();
        assert!(err.contains("operator surface"), "{err}");
        let err = check_set("replica_access_controller.allowed_users", "a").unwrap_err();
        assert!(err.contains("security"), "{err}");
        let err = check_set("rocksdb.allow_ingest_behind", "true").unwrap_err();
        assert!(err.contains("bulk load"), "{err}");
    }

    #[test]
    fn bad_values_and_unknown_keys_are_refused_with_a_reason() {
        for (k, v) in [
            ("default_ttl", "-1"),
            ("default_ttl", "abc"),
            // The replica reads it as a 32-bit count of seconds.
            ("default_ttl", "4294967296"),
            ("rocksdb.usage_scenario", "fast"),
            ("replica.deny_client_request", "drop*all"),
            ("replica.write_throttling", "1000*slow*100"),
            ("replica.slow_query_threshold", "5"),
            ("manual_compact.periodic.trigger_time", "25:00"),
            ("no.such.key", "1"),
        ] {
            let err = validate(k, v).expect_err(k);
            assert!(err.contains(k), "the reason names the key: {err}");
            let err = check_set(k, v).expect_err(k);
            assert!(err.contains(k), "the reason names the key: {err}");
        }
        assert!(check_set("no.such.key", "1")
            .unwrap_err()
            .contains("unknown"));
    }

    #[test]
    fn value_checks_of_not_yet_supported_envs_are_kept() {
        for (k, v) in [
            ("rocksdb.usage_scenario", "bulk_load"),
            ("replica.deny_client_request", "timeout*all"),
            ("replica.write_throttling", "1000*delay*100,2000*reject*200"),
            ("replica.read_throttling_by_size", "10M*delay*10"),
            ("replica.slow_query_threshold", "20"),
            ("manual_compact.periodic.trigger_time", "3:00,21:30"),
            ("business.info", "anything goes"),
        ] {
            assert_eq!(validate(k, v), Ok(()), "{k}={v}");
        }
    }
}
