//! Mutation time end to end, on a real onebox: the server stamps mutations with wall-clock
//! time, so `default_ttl` counts from when it was set, an expired record is a missing record
//! to incr / check_and_set / check_and_mutate, compaction reclaims expired records, and
//! timestamps never go backwards across a failover, even to a node whose clock is a day
//! behind.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod onebox;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use onebox::{http_get, libfaketime, rt, serial, Onebox};
use pegasus_client::{CasCheckType, CheckAndSetOptions, Client, Mutate, MutateOperation, Table};
use pegasus_proto::meta::{
    AppEnvOperation, CreateAppOptions, CreateAppRequest, UpdateAppEnvRequest,
};
use pegasus_proto::{ErrorCode, MetaRequest, MetaResponse};

fn unix_now() -> Duration {
    use pegasus_core::time::{Clock, SystemClock};
    Duration::from_micros(SystemClock.now_micros())
}

/// Creates `name` with `partitions` partitions × 3 replicas and waits until every partition
/// has a primary and two secondaries.
async fn create_table(c: &Client, name: &str, partitions: i32) -> Table {
    let resp = c
        .meta(MetaRequest::CreateApp(CreateAppRequest {
            app_name: name.into(),
            options: CreateAppOptions {
                partition_count: partitions,
                replica_count: 3,
                success_if_exist: false,
                app_type: "pegasus".into(),
                is_stateful: true,
                envs: BTreeMap::new(),
                atomic_idempotent: None,
            },
        }))
        .await
        .unwrap();
    let MetaResponse::CreateApp(r) = resp else {
        panic!("{resp:?}")
    };
    assert_eq!(r.err, ErrorCode::Ok, "create {name}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(q) = c.query_config(name).await {
            if q.err == ErrorCode::Ok
                && q.partitions.len() == partitions as usize
                && q.partitions
                    .iter()
                    .all(|p| p.primary.is_valid() && p.secondaries.len() == 2)
            {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "table {name} not healthy in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.open_table(name).await.unwrap()
}

async fn set_env(c: &Client, table: &str, key: &str, value: &str) {
    let resp = c
        .meta(MetaRequest::UpdateAppEnv(UpdateAppEnvRequest {
            app_name: table.into(),
            op: AppEnvOperation::Set,
            keys: Some(vec![key.into()]),
            values: Some(vec![value.into()]),
            clear_prefix: None,
        }))
        .await
        .unwrap();
    let MetaResponse::UpdateAppEnv(r) = resp else {
        panic!("{resp:?}")
    };
    assert_eq!(
        r.err,
        ErrorCode::Ok,
        "set {key}={value}: {}",
        r.hint_message
    );
}

fn hk(i: usize) -> Vec<u8> {
    format!("h{i:03}").into_bytes()
}

#[test]
fn default_ttl_keeps_old_records_until_change_time_plus_ttl_then_expires_them() {
    let ob = Onebox::shared();
    rt().block_on(async {
        let c = ob.client();
        let t = create_table(&c, "dttl", 4).await;
        const N: usize = 40;
        for i in 0..N {
            t.set(&hk(i), b"old", b"v", None).await.unwrap();
        }
        // Long enough that applying the env (a config sync, every 5 s) ends well before
        // the first record may expire.
        const TTL: u64 = 20;
        let set_at = Instant::now();
        set_env(&c, "dttl", "default_ttl", &TTL.to_string()).await;
        // Every partition takes the policy as a mutation once its primary hears of the env
        // (config sync). Until then a record reports no TTL (-1); after, the time left. It
        // is never missing: the policy counts from when it was set, not from time zero.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut pending: Vec<usize> = (0..N).collect();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for i in pending {
                let ttl = t.ttl(&hk(i), b"old").await.unwrap();
                match ttl {
                    None => panic!(
                        "record {i} read as missing {:?} after default_ttl was set",
                        set_at.elapsed()
                    ),
                    Some(-1) => still.push(i),
                    Some(s) => assert!(
                        (0..=TTL as i32).contains(&s),
                        "record {i}: ttl {s} under default_ttl {TTL}"
                    ),
                }
            }
            pending = still;
            assert!(Instant::now() < deadline, "default_ttl not applied in 30 s");
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let applied_at = set_at.elapsed();
        eprintln!("default_ttl applied to every record {applied_at:?} after it was set");
        // 2.8 s when measured (one config sync, every 5 s, at most): 5x that, as long as
        // the test can still tell an early expiry.
        assert!(
            applied_at < Duration::from_secs(TTL - 5),
            "applying took {applied_at:?}: too slow for the test to tell early expiry"
        );
        // A new record without a TTL gets the default.
        t.set(b"dttl_new", b"new", b"v", None).await.unwrap();
        let new_ttl = t.ttl(b"dttl_new", b"new").await.unwrap().unwrap();
        assert!(
            (TTL as i32 - 2..=TTL as i32).contains(&new_ttl),
            "new record ttl {new_ttl}"
        );
        // Old records expire at change time + TTL: not before (less a second of rounding to
        // whole seconds), and not much after.
        let deadline = set_at + Duration::from_secs(TTL + 15);
        let mut first_missing: BTreeMap<usize, Duration> = BTreeMap::new();
        while first_missing.len() < N {
            for i in 0..N {
                if first_missing.contains_key(&i) {
                    continue;
                }
                if t.get(&hk(i), b"old").await.unwrap().is_none() {
                    first_missing.insert(i, set_at.elapsed());
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} of {N} old records still readable {:?} after default_ttl {TTL}",
                N - first_missing.len(),
                set_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let earliest = first_missing.values().min().copied().unwrap();
        let latest = first_missing.values().max().copied().unwrap();
        eprintln!("old records expired {earliest:?} to {latest:?} after default_ttl {TTL}");
        assert!(
            earliest >= Duration::from_secs(TTL - 1),
            "an old record expired {earliest:?} after default_ttl {TTL} was set"
        );
        // The new record, written later, expires later, by itself.
        wait_expired(&t, b"dttl_new", b"new").await;
    });
}

/// Waits until `hash_key`/`sort_key` reads as missing (its TTL ran out).
async fn wait_expired(t: &Table, hash_key: &[u8], sort_key: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while t.get(hash_key, sort_key).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "record did not expire in 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn an_expired_record_is_missing_to_incr_check_and_set_and_check_and_mutate() {
    let ob = Onebox::shared();
    rt().block_on(async {
        let t = ob.client().open_table("temp").await.unwrap();
        let ttl = Some(Duration::from_secs(1));
        t.set(b"expired", b"counter", b"5", ttl).await.unwrap();
        t.set(b"expired", b"cas", b"old", ttl).await.unwrap();
        t.set(b"expired", b"cam", b"old", ttl).await.unwrap();
        wait_expired(&t, b"expired", b"counter").await;
        wait_expired(&t, b"expired", b"cas").await;
        wait_expired(&t, b"expired", b"cam").await;

        // incr starts from 0, and the new record has no TTL (the expired one's is gone).
        assert_eq!(t.incr(b"expired", b"counter", 1, None).await.unwrap(), 1);
        assert_eq!(
            t.get(b"expired", b"counter").await.unwrap(),
            Some(Bytes::from_static(b"1"))
        );
        assert_eq!(t.ttl(b"expired", b"counter").await.unwrap(), Some(-1));

        let r = t
            .check_and_set(
                b"expired",
                b"cas",
                CasCheckType::ValueNotExist,
                b"",
                b"new",
                &CheckAndSetOptions {
                    return_check_value: true,
                    ..CheckAndSetOptions::default()
                },
            )
            .await
            .unwrap();
        assert!(r.set_succeed, "value_not_exist holds for an expired record");
        assert_eq!(r.check_value, None);
        assert_eq!(
            t.get(b"expired", b"cas").await.unwrap(),
            Some(Bytes::from_static(b"new"))
        );

        let r = t
            .check_and_mutate(
                b"expired",
                b"cam",
                CasCheckType::ValueNotExist,
                b"",
                vec![Mutate {
                    operation: MutateOperation::Put,
                    sort_key: Bytes::from_static(b"cam"),
                    value: Bytes::from_static(b"new"),
                    set_expire_ts_seconds: 0,
                }],
                false,
            )
            .await
            .unwrap();
        assert!(r.set_succeed, "value_not_exist holds for an expired record");
        assert_eq!(
            t.get(b"expired", b"cam").await.unwrap(),
            Some(Bytes::from_static(b"new"))
        );
    });
}

/// The sum of a gauge over every replica server, for one table.
fn table_gauge(ob: &Onebox, metric: &str, app_id: i32) -> f64 {
    let label = format!("app_id=\"{app_id}\"");
    ob.replicas
        .iter()
        .map(|addr| {
            let (_, body) = http_get(*addr, "/metrics");
            body.lines()
                .filter(|l| l.starts_with(metric) && l.contains(&label))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        })
        .sum()
}

async fn wait_gauge(ob: &Onebox, metric: &str, app_id: i32, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = table_gauge(ob, metric, app_id);
        if ok(v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{metric} of table {app_id} stayed at {v} for 60 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Pegasus's way to ask every replica of a table for a full compaction now.
async fn trigger_manual_compaction(c: &Client, table: &str) {
    let now = unix_now().as_secs().to_string();
    set_env(c, table, "manual_compact.once.trigger_time", &now).await;
}

#[test]
fn manual_compaction_reclaims_expired_records() {
    let ob = Onebox::shared();
    rt().block_on(async {
        let c = ob.client();
        let t = create_table(&c, "reclaim", 2).await;
        let app_id = c.query_config("reclaim").await.unwrap().app_id;
        const N: usize = 2000;
        // Values that do not compress, so the SST size shows the records.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..N {
            let value: Vec<u8> = (0..200)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            t.set(&hk(i), b"s", &value, Some(Duration::from_secs(2)))
                .await
                .unwrap();
        }
        // A first compaction, before anything expired, puts every record in SST files.
        trigger_manual_compaction(&c, "reclaim").await;
        wait_compactions(ob, 2 * 3).await;
        let keys = wait_gauge(ob, "pegasus_replica_rdb_estimated_keys", app_id, |v| {
            v >= (N * 3 / 2) as f64
        })
        .await;
        // The gauges are sampled every 2 s: take the figure once it stopped moving (so each
        // look waits longer than a sample).
        let mut sst = 0.0;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let now = table_gauge(ob, "pegasus_replica_rdb_sst_bytes", app_id);
            if now == sst && sst > 0.0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "SST bytes of table {app_id} still moving after 60 s: {sst} then {now}"
            );
            sst = now;
        }
        for i in 0..N {
            if t.get(&hk(i), b"s").await.unwrap().is_some() {
                wait_expired(&t, &hk(i), b"s").await;
            }
        }
        // A write on every partition after the expiry: compaction judges expiry by the last
        // applied mutation's time, which every replica shares.
        for i in 0..64 {
            t.set(format!("after{i}").as_bytes(), b"s", b"v", None)
                .await
                .unwrap();
        }
        trigger_manual_compaction(&c, "reclaim").await;
        wait_compactions(ob, 2 * 2 * 3).await;
        wait_gauge(ob, "pegasus_replica_rdb_estimated_keys", app_id, |v| {
            v < keys / 10.0
        })
        .await;
        wait_gauge(ob, "pegasus_replica_rdb_sst_bytes", app_id, |v| {
            v < sst / 2.0
        })
        .await;
    });
}

/// Waits until the replica servers finished `n` manual compactions in all.
async fn wait_compactions(ob: &Onebox, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done: u64 = ob
            .replicas
            .iter()
            .map(|addr| {
                let (_, body) = http_get(*addr, "/metrics");
                body.lines()
                    .filter(|l| l.starts_with("pegasus_replica_manual_compactions_total"))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                    .sum::<u64>()
            })
            .sum();
        if done >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {n} manual compactions done in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What replica server `addr` says of its replica of `table`: (status, largest mutation
/// timestamp it holds).
/// `None` as well while the server is not listening (it may be restarting).
fn replica_of(addr: SocketAddr, table: &str) -> Option<(String, u64)> {
    std::net::TcpStream::connect(addr).ok()?;
    let body = http_get(addr, "/replica/replicas").1;
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    list.as_array()?
        .iter()
        .find(|r| r["table"] == table)
        .map(|r| {
            (
                r["status"].as_str().unwrap_or_default().to_string(),
                r["last_timestamp_us"].as_u64().unwrap(),
            )
        })
}

#[test]
fn timestamps_never_go_backwards_when_the_new_primary_clock_is_a_day_behind() {
    let Some(lib) = libfaketime() else {
        panic!("libfaketime is missing: scripts/setup.sh installs the faketime package");
    };
    let _serial = serial();
    let ob = Onebox::start(3, 1);
    rt().block_on(async {
        let c = ob.client();
        let t = c.open_table("temp").await.unwrap();
        for i in 0..50 {
            t.set(&hk(i), b"before", b"v", None).await.unwrap();
        }
        let primary = t.partition_primary(0).await.unwrap();
        let (_, before) = replica_of(primary, "temp").unwrap();
        let wall = unix_now().as_micros() as u64;
        assert!(
            before <= wall && wall - before < 60_000_000,
            "the primary stamps wall-clock time: {before} vs now {wall}"
        );
        // The other two servers restart with their clocks a day behind; then the primary
        // dies and one of them takes over.
        let env = [
            format!("LD_PRELOAD={}", lib.display()),
            "FAKETIME=-1d".to_string(),
            // Only the wall clock: leases run on the monotonic clock.
            "FAKETIME_DONT_FAKE_MONOTONIC=1".to_string(),
        ];
        for addr in &ob.replicas {
            if *addr != primary {
                ob.restart_with_env(&ob.replica_name(*addr), &env);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        for addr in ob.replicas.iter().filter(|a| **a != primary) {
            while replica_of(*addr, "temp").is_none_or(|(s, _)| s != "Secondary") {
                assert!(
                    Instant::now() < deadline,
                    "{addr} is not a secondary again after its restart"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        ob.kill(&ob.replica_name(primary));
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut i = 0;
        let mut written = 0;
        while written < 50 {
            assert!(Instant::now() < deadline, "no failover in 90 s");
            if t.set(&hk(i), b"after", b"v", None).await.is_ok() {
                written += 1;
            }
            i += 1;
        }
        let new_primary = t.partition_primary(0).await.unwrap();
        assert_ne!(new_primary, primary);
        let (_, after) = replica_of(new_primary, "temp").unwrap();
        assert!(
            after > before,
            "timestamps went backwards across the failover: {before} then {after}"
        );
        assert!(
            after - before < 600_000_000,
            "the new primary stamps close to the old one's clock: {before} then {after}"
        );
    });
}
