//! Learning through a checkpoint: a replica server whose disk was wiped comes back while
//! the primaries have trimmed their logs, so it must fetch RocksDB checkpoints (in chunks)
//! and then the log tail. Afterwards its own copies hold every acknowledged write. Also:
//! a replica that cannot keep up answers ERR_BUSY rather than queueing without bound.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod onebox;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use onebox::{http_get, post_failpoint, rt, serial, Onebox};
use pegasus_core::key::decode_key;
use pegasus_core::time::SystemClock;
use pegasus_proto::ErrorCode;
use pegasus_storage::{
    EngineIterator, IterOptions, RocksEngine, RocksEnv, StorageConfig, StorageEngine,
};

/// Every hash key stored in a replica server's copies, read offline from RocksDB.
fn hash_keys_on_disk(replica_root: &std::path::Path) -> BTreeSet<Vec<u8>> {
    let env = RocksEnv::new(StorageConfig::default(), Arc::new(SystemClock));
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(replica_root.join("replica")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".pegasus") {
            continue;
        }
        let init = pegasus_replica::server::layout::read_init(&entry.path()).unwrap();
        let engine = RocksEngine::open(&env, &entry.path().join(&init.data)).unwrap();
        let mut it = engine.iter(IterOptions::default());
        it.seek_to_first();
        while it.valid() {
            let (hk, _) = decode_key(it.key()).unwrap();
            out.insert(hk.to_vec());
            it.next();
        }
    }
    out
}

#[test]
fn a_wiped_replica_server_relearns_everything_through_checkpoints() {
    relearn_through_checkpoints(0);
}

/// A learner whose checkpoint fetch fails restarts from its own files and learns again in a
/// new round; before, it stayed `installing` for good and its group one copy short.
#[test]
fn a_failed_checkpoint_fetch_restarts_the_learner_and_it_still_completes() {
    relearn_through_checkpoints(2);
}

/// Wipes replica2, writes on, restarts it (its first `fail_fetches` checkpoint fetches
/// failing) and checks that it rejoins every group holding every acknowledged write.
fn relearn_through_checkpoints(fail_fetches: u32) {
    let _g = serial();
    let extra = "[replica_server]\ncheckpoint_interval_ms = 300\nlog_retain_decrees = 0\nlog_segment_bytes = 4096\nlearn_chunk_bytes = 4096\nenable_fail_points = true\n";
    // One partition, more mutations than a primary keeps in memory (1000): a learner that
    // starts from scratch can only be served from a checkpoint.
    let mut ob = Onebox::start_with(3, 1, extra);
    let keys: Vec<String> = (0..1700).map(|i| format!("k{i}")).collect();
    rt().block_on(async {
        let client = ob.client();
        let t = client.open_table("temp").await.unwrap();
        for k in &keys[..1500] {
            t.set(k.as_bytes(), b"s", k.as_bytes(), None).await.unwrap();
        }
        // Let every replica flush and trim its log.
        tokio::time::sleep(Duration::from_secs(2)).await;
        ob.kill("replica2");
        std::fs::remove_dir_all(ob.path().join("replica2")).unwrap();
        let gone = pegasus_proto::RpcAddress::from_socket_addr(ob.replicas[1]);
        // Wait until the groups have dropped it, so that being listed again later means it
        // was re-added and finished learning.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Writes make primaries notice the dead secondary.
            let _ = t.set(b"probe", b"s", b"x", None).await;
            let r = client.query_config("temp").await.unwrap();
            if r.partitions
                .iter()
                .all(|p| p.primary != gone && !p.secondaries.contains(&gone))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica2 still listed: {:?}",
                r.partitions
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for k in &keys[1500..] {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match t.set(k.as_bytes(), b"s", k.as_bytes(), None).await {
                    Ok(()) => break,
                    Err(e) => assert!(Instant::now() < deadline, "{k}: {e}"),
                }
            }
        }
        ob.restart("replica2");
        if fail_fetches > 0 {
            // Armed as soon as its port answers: learning starts only after its first
            // beacons and meta's next proposal.
            let deadline = Instant::now() + Duration::from_secs(30);
            let query = format!("name=learn_fetch&times={fail_fetches}");
            while std::net::TcpStream::connect(ob.replicas[1]).is_err()
                || !post_failpoint(ob.replicas[1], &query).contains(" 200")
            {
                assert!(
                    Instant::now() < deadline,
                    "replica2's admin port never answered"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let r = client.query_config("temp").await.unwrap();
            let member = |p: &pegasus_proto::meta::PartitionConfiguration| {
                let a = pegasus_proto::RpcAddress::from_socket_addr(ob.replicas[1]);
                p.primary == a || p.secondaries.contains(&a)
            };
            if r.partitions
                .iter()
                .all(|p| p.secondaries.len() == 2 && member(p))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica2 not back in every group\n{}",
                ob.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if fail_fetches > 0 {
            let metrics = http_get(ob.replicas[1], "/metrics").1;
            let failed: f64 = metrics
                .lines()
                .filter(|l| {
                    l.starts_with("pegasus_replica_transient_errors_total")
                        && l.contains("op=\"checkpoint_fetch\"")
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            assert!(
                failed >= 1.0,
                "no fetch failed (the fail point was armed too late?)\n{metrics}"
            );
        }
    });
    let log = std::fs::read_to_string(ob.path().join("replica2.log")).unwrap();
    assert!(
        log.contains("installed a learned checkpoint"),
        "no checkpoint was learned:\n{log}\n{}",
        ob.logs()
    );
    let dir = ob.path().join("replica2");
    ob.stop();
    let on_disk = hash_keys_on_disk(&dir);
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !on_disk.contains(k.as_bytes()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} keys missing from the relearned copies, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

#[test]
fn an_overloaded_replica_answers_err_busy() {
    use pegasus_core::rrdb::UpdateRequest;
    use pegasus_proto::frame::RequestHeader;
    use pegasus_proto::RrdbRequest;

    let _g = serial();
    let ob = Onebox::start_with(3, 1, "[replica_server]\nmax_pending_writes = 2\n");
    rt().block_on(async {
        let client = ob.client();
        let cfg = client.query_config("temp").await.unwrap();
        let primary = cfg.partitions[0].primary.to_socket_addr().unwrap();
        let session = pegasus_rpc::Session::new(primary, 1 << 20);
        let calls = (0..300).map(|i| {
            let req = RrdbRequest::Put(UpdateRequest {
                key: bytes::Bytes::from(
                    pegasus_core::key::encode_key(format!("busy{i}").as_bytes(), b"").unwrap(),
                ),
                value: bytes::Bytes::from_static(b"v"),
                expire_ts_seconds: 0,
            });
            let header = RequestHeader {
                app_id: cfg.app_id,
                partition_index: 0,
                client_timeout_ms: 5000,
                ..RequestHeader::default()
            };
            let s = session.clone();
            async move {
                s.call(header, req.name(), req.encode_args())
                    .await
                    .unwrap()
                    .error
            }
        });
        let errors = futures::future::join_all(calls).await;
        let busy = errors.iter().filter(|e| **e == ErrorCode::Busy).count();
        let ok = errors.iter().filter(|e| **e == ErrorCode::Ok).count();
        assert!(
            busy > 0,
            "300 concurrent writes against a limit of 2 in flight: {errors:?}"
        );
        assert!(ok > 0);
        assert_eq!(busy + ok, 300, "only OK or BUSY: {errors:?}");
    });
}
