//! RocksDB crash behaviour with the WAL off: what survives, and why replaying the mutation
//! log from `durable_decree` is always correct.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed step should abort the test"
)]

mod common;

use pegasus_core::key::encode_key;
use pegasus_storage::engine::BatchOp;
use pegasus_storage::{StorageEngine, WriteBatch};

fn put_batch(decree: i64, blind: bool) -> WriteBatch {
    WriteBatch {
        decree,
        write_time_us: common::us(common::T0) + decree as u64,
        ops: vec![BatchOp::Put {
            key: encode_key(b"hk", b"last").unwrap(),
            value: decree.to_string().into_bytes(),
        }],
        blind,
        new_ttl_policy: None,
    }
}

fn last(e: &impl StorageEngine) -> i64 {
    let v = e
        .get(&encode_key(b"hk", b"last").unwrap())
        .unwrap()
        .unwrap();
    std::str::from_utf8(&v).unwrap().parse().unwrap()
}

#[test]
fn crash_loses_unflushed_batches_and_keeps_flushed_ones() {
    let h = common::rocks();
    let e = h.open("db");
    e.write(&put_batch(1, false)).unwrap();
    e.flush().unwrap();
    e.write(&put_batch(2, false)).unwrap();
    e.crash();
    let e = h.open("db");
    assert_eq!(e.applied_state().decree, 1);
    assert_eq!(e.durable_decree().unwrap(), 1);
    assert_eq!(last(&e), 1);
}

#[test]
fn replaying_blind_batches_after_a_background_flush_reproduces_the_state() {
    let h = common::rocks();
    let e = h.open("db");
    for d in 1..=40 {
        e.write(&put_batch(d, true)).unwrap();
    }
    // RocksDB flushes a full memtable on its own, without our marker.
    e.flush_like_background().unwrap();
    e.crash();
    let e = h.open("db");
    // The data is at decree 40 but the marker says 32 (the last multiple of the interval):
    // the log replay from 33 re-applies blind writes the data already holds.
    let from = e.applied_state().decree;
    assert!((1..40).contains(&from), "marker {from}");
    assert_eq!(e.durable_decree().unwrap(), from);
    assert_eq!(last(&e), 40);
    for d in from + 1..=40 {
        e.write(&put_batch(d, true)).unwrap();
    }
    assert_eq!(last(&e), 40);
    assert_eq!(e.applied_state().decree, 40);
}

#[test]
fn non_blind_batches_record_their_decree_at_once() {
    let h = common::rocks();
    let e = h.open("db");
    for d in 1..=3 {
        e.write(&put_batch(d, true)).unwrap();
    }
    e.write(&put_batch(4, false)).unwrap();
    e.flush_like_background().unwrap();
    e.crash();
    let e = h.open("db");
    assert_eq!(e.applied_state().decree, 4);
    assert_eq!(last(&e), 4);
}

#[test]
fn block_cache_counts_move_with_reads_from_sst_files() {
    // Tickers are off by default (they cost 630 KB per instance).
    let h = common::rocks_with(pegasus_storage::StorageConfig {
        rocksdb_statistics: true,
        ..common::small_config()
    });
    let e = h.open("db");
    let (hits0, misses0) = e.block_cache_counts().unwrap();
    e.write(&put_batch(1, false)).unwrap();
    e.flush().unwrap();
    for _ in 0..20 {
        assert_eq!(last(&e), 1);
    }
    let (hits, misses) = e.block_cache_counts().unwrap();
    // The first read loads the data block (a miss); later reads hit the cache.
    assert!(misses > misses0, "misses {misses0} -> {misses}");
    assert!(hits >= hits0 + 19, "hits {hits0} -> {hits}");
}
