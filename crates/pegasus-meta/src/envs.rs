//! Table env validation (`RPC_CM_UPDATE_APP_ENV`): the keys Pegasus knows, each with a check
//! of its value. Unknown keys are refused, so a typo does not silently do nothing.

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

/// Checks one env. `Err` carries the reason, shown to the user as the hint message.
pub fn validate(key: &str, value: &str) -> Result<(), String> {
    let checked = match key {
        "default_ttl" => int_at_least(value, 0),
        "rocksdb.usage_scenario" => one_of(value, &["normal", "prefer_write", "bulk_load"]),
        "replica.deny_client_request" => deny_client(value),
        "replica.write_throttling"
        | "replica.write_throttling_by_size"
        | "replica.read_throttling"
        | "replica.read_throttling_by_size"
        | "replica.backup_request_throttling" => throttling(value),
        "replica.slow_query_threshold" => int_at_least(value, 20),
        "replica.rocksdb_iteration_threshold_time_ms" => int_at_least(value, 0),
        "replica.rocksdb_block_cache_enabled"
        | "replica.split.validate_partition_hash"
        | "rocksdb.allow_ingest_behind"
        | "manual_compact.disabled" => boolean(value),
        "manual_compact.max_concurrent_running_count"
        | "manual_compact.once.target_level"
        | "manual_compact.periodic.target_level" => int_at_least(value, -1),
        "manual_compact.once.trigger_time"
        | "rocksdb.checkpoint.reserve_min_count"
        | "rocksdb.checkpoint.reserve_time_seconds"
        | "rocksdb.write_buffer_size"
        | "rocksdb.num_levels" => int_at_least(value, 0),
        "manual_compact.once.bottommost_level_compaction"
        | "manual_compact.periodic.bottommost_level_compaction" => {
            one_of(value, &["force", "skip"])
        }
        "manual_compact.periodic.trigger_time" => {
            let ok = !value.is_empty()
                && value.split(',').all(|t| {
                    t.split_once(':').is_some_and(|(h, m)| {
                        h.parse::<u8>().is_ok_and(|h| h < 24)
                            && m.parse::<u8>().is_ok_and(|m| m < 60)
                    })
                });
            if ok {
                Ok(())
            } else {
                Err("expects HH:MM[,HH:MM...]".into())
            }
        }
        "business.info"
        | "user_specified_compaction"
        | "replica_access_controller.allowed_users"
        | "replica_access_controller.ranger_policies" => Ok(()),
        _ => return Err(format!("app env {key:?} is not supported")),
    };
    checked.map_err(|why| format!("app env {key}={value:?}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn known_keys_with_good_values_pass() {
        for (k, v) in [
            ("default_ttl", "86400"),
            ("rocksdb.usage_scenario", "bulk_load"),
            ("replica.deny_client_request", "reconfig*write"),
            ("replica.write_throttling", "1000*delay*100,2000*reject*200"),
            ("replica.read_throttling_by_size", "10M*delay*10"),
            ("replica.slow_query_threshold", "20"),
            ("manual_compact.periodic.trigger_time", "3:00,21:30"),
            ("business.info", "anything goes"),
        ] {
            assert_eq!(validate(k, v), Ok(()), "{k}={v}");
        }
    }

    #[test]
    fn bad_values_and_unknown_keys_are_refused_with_a_reason() {
        for (k, v) in [
            ("default_ttl", "-1"),
            ("default_ttl", "abc"),
            ("rocksdb.usage_scenario", "fast"),
            ("replica.deny_client_request", "drop*all"),
            ("replica.write_throttling", "1000*slow*100"),
            ("replica.slow_query_threshold", "5"),
            ("manual_compact.periodic.trigger_time", "25:00"),
            ("no.such.key", "1"),
        ] {
            let err = validate(k, v).expect_err(k);
            assert!(err.contains(k), "the reason names the key: {err}");
        }
    }
}
