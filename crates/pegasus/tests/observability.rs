//! HTTP admin endpoints on the RPC ports of a real onebox: `/metrics` in Prometheus text
//! (parsed with a Prometheus text-format parser) moves by exactly the workload, and the
//! JSON views describe tables, nodes, partitions and hosted replicas.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod onebox;

use std::net::SocketAddr;

use onebox::{http_get, serial, Onebox};

/// `GET path` over HTTP/1.1, following one redirect; (status, body).
fn scrape(addr: SocketAddr) -> prometheus_parse::Scrape {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("/metrics parses as Prometheus text")
}

/// The sum over samples of `name` whose labels include `labels`.
fn sum(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

fn total(ob: &Onebox, name: &str, labels: &[(&str, &str)]) -> f64 {
    ob.replicas
        .iter()
        .map(|r| sum(&scrape(*r), name, labels))
        .sum()
}

#[test]
fn metrics_move_by_the_workload_and_json_views_describe_the_cluster() {
    let _g = serial();
    // Requests over 1 ms are logged as slow (a 900 KB write below certainly is).
    let ob = Onebox::start_with(
        3,
        4,
        "[replica_server]\nslow_request_ms = 1\n[pegasus.server]\nrocksdb_statistics = true\n",
    );
    let puts_before = total(&ob, "pegasus_replica_requests_total", &[("op", "put")]);
    let gets_before = total(&ob, "pegasus_replica_requests_total", &[("op", "get")]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = ob.client().open_table("temp").await.unwrap();
        for i in 0..50 {
            t.set(format!("m{i}").as_bytes(), b"s", b"v", None)
                .await
                .unwrap();
        }
        for i in 0..30 {
            assert!(t
                .get(format!("m{i}").as_bytes(), b"s")
                .await
                .unwrap()
                .is_some());
        }
    });
    let puts = total(&ob, "pegasus_replica_requests_total", &[("op", "put")]) - puts_before;
    let gets = total(&ob, "pegasus_replica_requests_total", &[("op", "get")]) - gets_before;
    assert_eq!(
        (puts, gets),
        (50.0, 30.0),
        "request counters move by the workload"
    );
    // Every put committed on the primary and on both secondaries (a secondary commits a
    // partition's last decree only with the next prepare or group check: 4 partitions).
    let committed = total(&ob, "pegasus_replica_committed_mutations_total", &[]);
    assert!(committed >= 150.0 - 2.0 * 4.0, "{committed}");
    let s = scrape(ob.replicas[0]);
    assert!(
        s.samples
            .iter()
            .any(|x| x.metric == "pegasus_replica_request_duration_seconds"
                && matches!(x.value, prometheus_parse::Value::Histogram(_))),
        "latency is a Prometheus histogram"
    );
    assert!(
        sum(&s, "pegasus_replica_log_flush_seconds_count", &[]) > 0.0
            || total(&ob, "pegasus_replica_log_flush_seconds_count", &[]) > 0.0
    );
    // Replica counts by status (gauges refreshed with every beacon).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let primaries = total(&ob, "pegasus_replica_replicas", &[("status", "primary")]);
        let secondaries = total(&ob, "pegasus_replica_replicas", &[("status", "secondary")]);
        if (primaries, secondaries) == (4.0, 8.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{primaries} primaries, {secondaries} secondaries"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // Meta: the leader reports partition health.
    let leader_scrapes: Vec<_> = ob
        .metas
        .iter()
        .map(|m| scrape(*m))
        .filter(|s| sum(s, "pegasus_meta_is_leader", &[]) == 1.0)
        .collect();
    assert_eq!(leader_scrapes.len(), 1, "exactly one meta leads");
    let l = &leader_scrapes[0];
    assert_eq!(
        sum(l, "pegasus_meta_partitions", &[("health", "healthy")]),
        4.0
    );
    assert_eq!(
        sum(l, "pegasus_meta_partitions", &[("health", "unreadable")]),
        0.0
    );
    assert!(sum(l, "pegasus_meta_beacons_total", &[]) > 0.0);

    // JSON views.
    let (st, body) = http_get(ob.metas[0], "/meta/apps");
    assert_eq!(st, 200);
    let apps: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(apps[0]["name"], "temp");
    assert_eq!(apps[0]["partition_count"], 4);
    let (_, body) = http_get(ob.metas[1], "/meta/app?name=temp");
    let app: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(app["partitions"].as_array().unwrap().len(), 4);
    assert_eq!(
        app["partitions"][0]["secondaries"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Asked of every meta: followers redirect to the leader.
    for m in &ob.metas {
        let (st, body) = http_get(*m, "/meta/nodes");
        assert_eq!(st, 200, "{body}");
    }
    let (_, body) = http_get(ob.metas[2], "/meta/nodes");
    let nodes: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["status"] == "ALIVE")
            .count(),
        3
    );
    let (_, body) = http_get(ob.replicas[0], "/replica/replicas");
    let reps: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reps.as_array().unwrap().len(), 4, "{body}");
    assert!(reps
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["table"] == "temp" && r["ballot"].as_i64().unwrap() >= 1));
    let (_, body) = http_get(ob.replicas[1], "/config");
    let config: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(config["replica_server"]["max_write_bytes"], 1048576);
    let (_, body) = http_get(ob.replicas[1], "/version");
    assert!(body.contains("\"role\":\"replica\""), "{body}");
    assert_eq!(http_get(ob.metas[0], "/health"), (200, "ok\n".to_string()));
    assert_eq!(http_get(ob.metas[0], "/nope").0, 404);
    assert_eq!(http_get(ob.metas[0], "/meta/app").0, 400);

    // Slow requests are logged with their operation and partition: a 900 KB write replicated
    // three times takes well over the 1 ms threshold this onebox runs with.
    rt.block_on(async {
        let t = ob.client().open_table("temp").await.unwrap();
        let big = vec![b'x'; 100 << 10];
        let names: Vec<Vec<u8>> = (0..9).map(|i| format!("s{i}").into_bytes()).collect();
        let kvs: Vec<(&[u8], &[u8])> = names
            .iter()
            .map(|k| (k.as_slice(), big.as_slice()))
            .collect();
        t.multi_set(b"slow", &kvs, None).await.unwrap();
    });
    let logs: String = (1..=3)
        .map(|i| {
            std::fs::read_to_string(ob.path().join(format!("replica{i}.log"))).unwrap_or_default()
        })
        .collect();
    assert!(
        logs.contains("slow request: multi_put on 1."),
        "no slow-request log line:\n{logs}"
    );

    // RocksDB figures per replica, labelled by table and partition.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let s = scrape(ob.replicas[0]);
        let partitions: std::collections::BTreeSet<String> = s
            .samples
            .iter()
            .filter(|x| x.metric == "pegasus_replica_rdb_memtable_bytes")
            .filter_map(|x| x.labels.get("partition").map(str::to_string))
            .collect();
        if partitions.len() == 4 {
            assert!(sum(&s, "pegasus_replica_rdb_memtable_bytes", &[("app_id", "1")]) > 0.0);
            // Block cache counters exist per partition (values depend on flushes).
            let cache: std::collections::BTreeSet<String> = s
                .samples
                .iter()
                .filter(|x| x.metric == "pegasus_replica_rdb_block_cache_hits_total")
                .filter_map(|x| x.labels.get("partition").map(str::to_string))
                .collect();
            assert_eq!(cache, partitions);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rdb gauges for 4 partitions: {partitions:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    // An error is counted by code.
    rt.block_on(async {
        let t = ob.client().open_table("temp").await.unwrap();
        assert!(t
            .set(b"too", b"big", &vec![0u8; (1 << 20) + 1], None)
            .await
            .is_err());
    });
    assert_eq!(
        total(
            &ob,
            "pegasus_replica_request_errors_total",
            &[("op", "put"), ("code", "ERR_INVALID_DATA")]
        ),
        1.0
    );

    // The Grafana dashboard in the repository uses only metric names the servers export.
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../../etc/grafana/pegasus.json")).unwrap();
    let mut exported = std::collections::BTreeSet::new();
    for addr in ob.replicas.iter().chain(ob.metas.iter()) {
        let (_, body) = http_get(*addr, "/metrics");
        for line in body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let name = line.split(['{', ' ']).next().unwrap();
            exported.insert(name.to_string());
        }
    }
    let mut used = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("pegasus_") {
                    used += 1;
                    assert!(
                        exported.contains(word),
                        "dashboard uses {word}, not exported: {exported:?}"
                    );
                }
            }
        }
    }
    assert!(used >= 15, "the dashboard covers the metrics");

    // HTTP on the port does not disturb THFT clients.
    rt.block_on(async {
        let t = ob.client().open_table("temp").await.unwrap();
        assert!(t.get(b"m1", b"s").await.unwrap().is_some());
    });
}
