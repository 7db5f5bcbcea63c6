//! `pegasus shell -e` against a real onebox: Pegasus's command names and argument order.
//!
//! The tests share one onebox (`Onebox::shared`: 3 replica servers, table `temp` with 8
//! partitions) and take turns on it (`serial`), so a test may count what the whole cluster
//! holds; each writes under hash keys of its own.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod onebox;

use std::sync::MutexGuard;
use std::time::Duration;

use onebox::{serial, shell, wait_until, Onebox};

/// Partitions of `temp` on the shared onebox.
const TEMP_PARTITIONS: usize = 8;

/// The onebox shared by this file's tests, and this test's turn on it.
fn shared() -> (MutexGuard<'static, ()>, &'static Onebox) {
    let turn = serial();
    (turn, Onebox::shared())
}

fn ok(ob: &Onebox, cmds: &[&str]) -> String {
    let (success, out, err) = shell(ob, cmds);
    assert!(success, "{cmds:?} failed\n{out}\n{err}");
    out
}

/// Asserts that `out` has lines equal to `want`, in this order (other lines may come in
/// between); `"100"` also matches a TTL a few seconds under it.
fn assert_lines_in_order(out: &str, want: &[&str]) {
    let lines: Vec<&str> = out.lines().collect();
    let mut at = 0;
    for want in want {
        let found = lines[at..].iter().position(|l| {
            l == want || (*want == "100" && l.parse::<i32>().is_ok_and(|t| (95..=100).contains(&t)))
        });
        let Some(i) = found else {
            panic!("{want:?} not found after line {at} in\n{out}");
        };
        at += i + 1;
    }
}

/// The sum of column `col` (0-based) over the lines of a table printed under a header.
fn column_sum(out: &str, col: usize) -> f64 {
    out.lines()
        .skip(1)
        .filter_map(|l| {
            l.split_whitespace()
                .nth(col)
                .and_then(|v| v.parse::<f64>().ok())
        })
        .sum()
}

#[test]
fn ls_lists_the_table_as_available() {
    let (_turn, ob) = shared();
    let out = ok(ob, &["ls"]);
    assert!(out.contains("temp") && out.contains("AVAILABLE"), "{out}");
}

#[test]
fn nodes_d_lists_every_replica_server_alive() {
    let (_turn, ob) = shared();
    let out = ok(ob, &["nodes -d"]);
    assert!(out.contains("alive_node_count  : 3"), "{out}");
    for r in &ob.replicas {
        assert!(out.contains(&r.to_string()), "{out}");
    }
}

#[test]
fn cluster_info_names_the_primary_meta_and_the_function_level() {
    let (_turn, ob) = shared();
    let out = ok(ob, &["cluster_info"]);
    assert!(
        out.contains("primary_meta_server") && out.contains("fl_steady"),
        "{out}"
    );
}

#[test]
fn app_d_reports_every_partition_of_the_table_healthy() {
    let (_turn, ob) = shared();
    let out = ok(ob, &["app temp -d"]);
    assert!(
        out.contains(&format!("partition_count   : {TEMP_PARTITIONS}"))
            && out.contains(&format!("healthy           : {TEMP_PARTITIONS}")),
        "{out}"
    );
}

// Data commands, each test in one session after `use`.

#[test]
fn set_then_get_returns_the_value_and_del_removes_it() {
    let (_turn, ob) = shared();
    let out = ok(
        ob,
        &[
            "use temp",
            "set get_hk sk 'hello world'",
            "get get_hk sk",
            "exist get_hk sk",
            "del get_hk sk",
            "get get_hk sk",
            "exist get_hk sk",
        ],
    );
    assert_lines_in_order(
        &out,
        &[
            "OK, current table is temp",
            "OK",
            "\"hello world\"",
            "True",
            "OK",
            "Not found",
            "False",
        ],
    );
}

#[test]
fn ttl_reports_infinite_without_a_ttl_and_the_seconds_left_with_one() {
    let (_turn, ob) = shared();
    let out = ok(
        ob,
        &[
            "use temp",
            "set ttl_hk sk 'hello world'",
            "ttl ttl_hk sk",
            "set ttl_hk t v 100",
            "ttl ttl_hk t",
        ],
    );
    assert_lines_in_order(
        &out,
        &["OK, current table is temp", "OK", "Infinite", "OK", "100"],
    );
}

#[test]
fn incr_starts_a_missing_counter_from_zero_and_adds_the_increment() {
    let (_turn, ob) = shared();
    let out = ok(ob, &["use temp", "incr incr_hk n", "incr incr_hk n 41"]);
    assert_lines_in_order(&out, &["OK, current table is temp", "1", "42"]);
}

#[test]
fn multi_get_count_and_multi_del_see_what_multi_set_wrote() {
    let (_turn, ob) = shared();
    let out = ok(
        ob,
        &[
            "use temp",
            "multi_set multi_hk a 1 b 2",
            "multi_get multi_hk a b",
            "count multi_hk",
            "multi_del multi_hk a b",
            "count multi_hk",
        ],
    );
    assert_lines_in_order(
        &out,
        &[
            "OK, current table is temp",
            "OK",
            "\"multi_hk\" : \"a\" => \"1\"",
            "\"multi_hk\" : \"b\" => \"2\"",
            "2 key-value pair(s)",
            "2",
            "2 deleted",
            "0",
        ],
    );
}

#[test]
fn binary_sort_keys_and_values_are_written_and_printed_escaped() {
    let (_turn, ob) = shared();
    let out = ok(
        ob,
        &[
            "use temp",
            "multi_set bin_hk \\x00bin \\xFF",
            "hash_scan bin_hk '' ''",
        ],
    );
    assert_lines_in_order(&out, &["OK, current table is temp", "OK"]);
    assert!(
        out.contains("\"bin_hk\" : \"\\x00bin\" => \"\\xFF\""),
        "binary keys print escaped:\n{out}"
    );
}

#[test]
fn check_and_set_sets_only_when_the_check_passes() {
    let (_turn, ob) = shared();
    let out = ok(
        ob,
        &[
            "use temp",
            "set cas_hk sk 'hello world'",
            "set cas_hk a 1",
            "check_and_set cas_hk -c sk -t bytes_equal -o 'hello world' -s sk2 -v won -r",
            "check_and_set cas_hk -c a -t int_greater -o 5 -v x",
            "get cas_hk sk2",
        ],
    );
    assert_lines_in_order(
        &out,
        &[
            "OK, current table is temp",
            "OK",
            "OK",
            "set succeed",
            "check value: \"hello world\"",
            "set failed, because check not passed",
            "\"won\"",
        ],
    );
}

#[test]
fn app_envs_are_set_listed_and_deleted_on_the_current_table() {
    let (_turn, ob) = shared();
    // A table of its own: a default_ttl on `temp` would reach what other tests write there
    // (replica servers hear of its deletion only at their next config sync).
    let out = ok(ob, &["create envs_t -p 1 -r 3"]);
    assert!(out.contains("create app envs_t succeed"), "{out}");
    let out = ok(
        ob,
        &[
            "use envs_t",
            "set_app_envs default_ttl 86400",
            "get_app_envs",
            "del_app_envs default_ttl",
            "get_app_envs",
        ],
    );
    assert!(out.contains("default_ttl = 86400\n\n1 env(s)"), "{out}");
    assert_eq!(out.matches("default_ttl").count(), 1, "deleted: {out}");
    assert!(out.contains("\n0 env(s)"), "deleted: {out}");
}

#[test]
fn set_app_envs_refuses_unknown_envs_and_envs_not_supported_yet() {
    let (_turn, ob) = shared();
    let (success, _, err) = shell(ob, &["use temp", "set_app_envs no.such.env 1"]);
    assert!(!success && err.contains("no.such.env"), "{err}");
    // Envs pegasus-rs does not act on yet are refused (crates/pegasus/tests/envs.rs).
    let (success, _, err) = shell(ob, &["use temp", "set_app_envs business.info shop"]);
    assert!(
        !success && err.contains("business.info") && err.contains("not supported yet"),
        "{err}"
    );
}

#[test]
fn a_dropped_table_is_listed_as_dropped_and_recall_brings_it_back_under_a_new_name() {
    let (_turn, ob) = shared();
    let out = ok(ob, &["create t2 -p 2 -r 3", "ls"]);
    assert!(out.contains("create app t2 succeed"), "{out}");
    let id: i32 = out
        .lines()
        .find(|l| l.contains("t2") && l.contains("AVAILABLE"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    let out = ok(ob, &["use t2", "set k s v", "drop t2", "ls -a"]);
    assert!(
        out.lines()
            .any(|l| l.contains("t2") && l.contains("DROPPED")),
        "{out}"
    );
    let out = ok(ob, &[&format!("recall {id} t3"), "ls"]);
    assert!(
        out.lines()
            .any(|l| l.contains("t3") && l.contains("AVAILABLE")),
        "{out}"
    );
}

// Server and table statistics, from the servers' HTTP endpoints.

#[test]
fn server_info_lists_every_meta_and_replica_server() {
    let (_turn, ob) = shared();
    let out = ok(ob, &["server_info"]);
    assert_eq!(
        out.lines().filter(|l| l.contains(" meta ")).count(),
        3,
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.contains(" replica ")).count(),
        3,
        "{out}"
    );
}

#[test]
fn server_stat_counts_one_primary_per_partition() {
    let (_turn, ob) = shared();
    // Every partition of every available table (other tests here create tables, and a
    // recalled one may still be taking its primaries) has one primary.
    wait_until(
        "server_stat counts one primary per partition",
        Duration::from_secs(60),
        || {
            let tables = ok(ob, &["ls"]);
            let partitions = column_sum(&tables, 3);
            let out = ok(ob, &["server_stat"]);
            let primaries = column_sum(&out, 4);
            if primaries == partitions && partitions >= TEMP_PARTITIONS as f64 {
                Ok(())
            } else {
                Err(format!(
                    "{primaries} primaries for {partitions} partitions:\n{tables}\n{out}"
                ))
            }
        },
    );
}

#[test]
fn app_stat_estimates_the_keys_of_a_table_with_data() {
    let (_turn, ob) = shared();
    // More records than the other tests here delete (RocksDB's estimate subtracts deletes).
    ok(
        ob,
        &[
            "use temp",
            "multi_set stat_hk a 1 b 2 c 3 d 4 e 5 f 6 g 7 h 8 i 9 j 10",
        ],
    );
    // The replica servers sample RocksDB's figures every few seconds: wait for them.
    wait_until(
        "app_stat estimates keys in temp",
        Duration::from_secs(60),
        || {
            let out = ok(ob, &["app_stat"]);
            let temp = out
                .lines()
                .find(|l| l.starts_with("temp "))
                .unwrap_or_else(|| panic!("{out}"));
            let keys: f64 = temp.split_whitespace().nth(3).unwrap().parse().unwrap();
            if keys > 0.0 {
                Ok(())
            } else {
                Err(format!("estimated keys of temp: {out}"))
            }
        },
    );
}

#[test]
fn errors_print_a_clear_message_and_exit_with_failure() {
    let (_turn, ob) = shared();
    let (success, _, err) = shell(ob, &["get a b"]);
    assert!(!success && err.contains("use <app>"), "{err}");
    let (success, _, err) = shell(ob, &["frobnicate"]);
    assert!(!success && err.contains("unknown command"), "{err}");
    let (success, _, err) = shell(ob, &["create bad-name"]);
    assert!(!success && err.contains("ERR_INVALID_PARAMETERS"), "{err}");
    let (success, _, err) = shell(ob, &["use temp", "set onlyhash"]);
    assert!(!success && err.contains("usage: set"), "{err}");
}
