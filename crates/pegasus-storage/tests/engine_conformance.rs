//! The conformance suite every `StorageEngine` passes: RocksDB and in-memory alike.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed step should abort the test"
)]

mod common;

for_each_engine!(
    written_batch_is_readable_and_advances_decree,
    batch_with_a_gap_in_decrees_is_rejected_and_changes_nothing,
    batch_ops_apply_in_order,
    multi_get_agrees_with_get,
    iterator_respects_bounds_in_both_directions,
    iterator_within_hash_key_sees_only_that_hash_key,
    clean_close_and_reopen_keeps_data_and_decree,
    durable_decree_counts_only_flushed_batches,
    checkpoint_opens_as_a_point_in_time_copy,
    checkpoint_into_existing_directory_is_refused,
    ttl_policy_survives_reopen,
    compaction_drops_only_records_expired_at_the_last_write_time,
);

mod cases {
    use pegasus_core::key::encode_key;
    use pegasus_core::value::encode_value;
    use pegasus_storage::engine::{BatchOp, EngineIterator};
    use pegasus_storage::{
        EngineFactory, IterOptions, StorageEngine, StorageError, TtlPolicy, WriteBatch,
    };

    use crate::common::{us, Harness, T0};

    fn put(k: &[u8], v: &[u8]) -> BatchOp {
        BatchOp::Put {
            key: k.to_vec(),
            value: v.to_vec(),
        }
    }

    fn del(k: &[u8]) -> BatchOp {
        BatchOp::Delete { key: k.to_vec() }
    }

    fn batch(decree: i64, ops: Vec<BatchOp>) -> WriteBatch {
        WriteBatch {
            decree,
            write_time_us: us(T0) + decree as u64,
            ops,
            blind: true,
            new_ttl_policy: None,
        }
    }

    fn key(hk: &str, sk: &str) -> Vec<u8> {
        encode_key(hk.as_bytes(), sk.as_bytes()).unwrap()
    }

    fn collect_forward<I: EngineIterator>(it: &mut I) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while it.valid() {
            out.push(it.key().to_vec());
            it.next();
        }
        it.status().unwrap();
        out
    }

    fn collect_backward<I: EngineIterator>(it: &mut I) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while it.valid() {
            out.push(it.key().to_vec());
            it.prev();
        }
        it.status().unwrap();
        out
    }

    pub fn written_batch_is_readable_and_advances_decree<F: EngineFactory>(h: &Harness<F>) {
        let e = h.open("db");
        assert_eq!(e.applied_state().decree, 0);
        e.write(&batch(1, vec![put(b"\x00\x01ak", b"v1")])).unwrap();
        assert_eq!(e.get(b"\x00\x01ak").unwrap(), Some(b"v1".to_vec()));
        e.write(&batch(2, vec![del(b"\x00\x01ak")])).unwrap();
        assert_eq!(e.get(b"\x00\x01ak").unwrap(), None);
        let s = e.applied_state();
        assert_eq!(s.decree, 2);
        assert_eq!(s.write_time_us, us(T0) + 2);
    }

    pub fn batch_with_a_gap_in_decrees_is_rejected_and_changes_nothing<F: EngineFactory>(
        h: &Harness<F>,
    ) {
        let e = h.open("db");
        e.write(&batch(1, vec![put(b"k1", b"a")])).unwrap();
        let err = e.write(&batch(3, vec![put(b"k2", b"b")])).unwrap_err();
        assert!(matches!(
            err,
            StorageError::DecreeOutOfOrder {
                last_applied: 1,
                got: 3
            }
        ));
        let err = e.write(&batch(1, vec![put(b"k2", b"b")])).unwrap_err();
        assert!(matches!(
            err,
            StorageError::DecreeOutOfOrder {
                last_applied: 1,
                got: 1
            }
        ));
        assert_eq!(e.get(b"k2").unwrap(), None);
        assert_eq!(e.applied_state().decree, 1);
    }

    pub fn batch_ops_apply_in_order<F: EngineFactory>(h: &Harness<F>) {
        let e = h.open("db");
        e.write(&batch(
            1,
            vec![put(b"a", b"1"), put(b"b", b"2"), del(b"a"), put(b"b", b"3")],
        ))
        .unwrap();
        assert_eq!(e.get(b"a").unwrap(), None);
        assert_eq!(e.get(b"b").unwrap(), Some(b"3".to_vec()));
    }

    pub fn multi_get_agrees_with_get<F: EngineFactory>(h: &Harness<F>) {
        let e = h.open("db");
        e.write(&batch(1, vec![put(b"a", b"1"), put(b"c", b"3")]))
            .unwrap();
        let got = e.multi_get(&[b"a", b"b", b"c", b"a"]).unwrap();
        assert_eq!(
            got,
            vec![
                Some(b"1".to_vec()),
                None,
                Some(b"3".to_vec()),
                Some(b"1".to_vec())
            ]
        );
    }

    pub fn iterator_respects_bounds_in_both_directions<F: EngineFactory>(h: &Harness<F>) {
        let e = h.open("db");
        let keys: Vec<Vec<u8>> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| key("h", s))
            .collect();
        e.write(&batch(1, keys.iter().map(|k| put(k, b"v")).collect()))
            .unwrap();
        let opts = IterOptions {
            lower: Some(keys[1].clone()),
            upper: Some(keys[4].clone()),
            within_hash_key: false,
        };

        let mut it = e.iter(opts.clone());
        it.seek_to_first();
        assert_eq!(collect_forward(&mut it), keys[1..4].to_vec());

        let mut it = e.iter(opts.clone());
        it.seek_to_last();
        assert_eq!(
            collect_backward(&mut it),
            vec![keys[3].clone(), keys[2].clone(), keys[1].clone()]
        );

        let mut it = e.iter(opts.clone());
        it.seek(&key("h", "bb"));
        assert_eq!(it.key(), keys[2].as_slice());
        assert_eq!(it.value(), b"v");

        let mut it = e.iter(opts.clone());
        it.seek_for_prev(&key("h", "cc"));
        assert_eq!(it.key(), keys[2].as_slice());
        it.seek_for_prev(&key("h", "e"));
        assert_eq!(
            it.key(),
            keys[3].as_slice(),
            "seek_for_prev stays below the upper bound"
        );
        it.seek(&key("h", "a"));
        assert_eq!(
            it.key(),
            keys[1].as_slice(),
            "seek stays above the lower bound"
        );
        it.seek(&key("h", "z"));
        assert!(!it.valid());
        assert!(it.key().is_empty());

        let mut all = e.iter(IterOptions::default());
        all.seek_to_first();
        assert_eq!(collect_forward(&mut all), keys);
    }

    pub fn iterator_within_hash_key_sees_only_that_hash_key<F: EngineFactory>(h: &Harness<F>) {
        let e = h.open("db");
        let ops = vec![
            put(&key("a", "1"), b"v"),
            put(&key("b", "1"), b"v"),
            put(&key("b", "2"), b"v"),
            put(&key("c", "1"), b"v"),
        ];
        e.write(&batch(1, ops)).unwrap();
        e.flush().unwrap();
        let prefix = encode_key(b"b", b"").unwrap();
        let upper = pegasus_core::key::next_prefix(&prefix);
        let mut it = e.iter(IterOptions {
            lower: Some(prefix.clone()),
            upper,
            within_hash_key: true,
        });
        it.seek(&prefix);
        assert_eq!(collect_forward(&mut it), vec![key("b", "1"), key("b", "2")]);
    }

    pub fn clean_close_and_reopen_keeps_data_and_decree<F: EngineFactory>(h: &Harness<F>) {
        {
            let e = h.open("db");
            e.write(&batch(1, vec![put(b"k", b"v")])).unwrap();
            e.write(&batch(2, vec![put(b"k2", b"v2")])).unwrap();
        }
        let e = h.open("db");
        assert_eq!(e.get(b"k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(e.get(b"k2").unwrap(), Some(b"v2".to_vec()));
        assert_eq!(e.applied_state().decree, 2);
        assert_eq!(e.applied_state().write_time_us, us(T0) + 2);
        assert_eq!(e.durable_decree().unwrap(), 2);
        e.write(&batch(3, vec![])).unwrap();
    }

    pub fn durable_decree_counts_only_flushed_batches<F: EngineFactory>(h: &Harness<F>) {
        let e = h.open("db");
        e.write(&batch(1, vec![put(b"k", b"v")])).unwrap();
        e.flush().unwrap();
        e.write(&batch(2, vec![put(b"k", b"w")])).unwrap();
        assert_eq!(e.durable_decree().unwrap(), 1);
        assert_eq!(e.applied_state().decree, 2);
        e.flush().unwrap();
        assert_eq!(e.durable_decree().unwrap(), 2);
    }

    pub fn checkpoint_opens_as_a_point_in_time_copy<F: EngineFactory>(h: &Harness<F>) {
        let e = h.open("db");
        e.write(&batch(1, vec![put(b"k", b"v1")])).unwrap();
        e.set_ttl_policy(TtlPolicy {
            default_ttl: 5,
            since: 7,
        })
        .unwrap();
        let state = e.checkpoint(&h.path("ckpt")).unwrap();
        assert_eq!(state.decree, 1);
        e.write(&batch(2, vec![put(b"k", b"v2"), put(b"other", b"x")]))
            .unwrap();
        let c = h.open("ckpt");
        assert_eq!(c.applied_state().decree, 1);
        assert_eq!(c.get(b"k").unwrap(), Some(b"v1".to_vec()));
        assert_eq!(c.get(b"other").unwrap(), None);
        assert_eq!(
            c.ttl_policy(),
            TtlPolicy {
                default_ttl: 5,
                since: 7
            }
        );
        assert_eq!(e.get(b"k").unwrap(), Some(b"v2".to_vec()));
    }

    pub fn checkpoint_into_existing_directory_is_refused<F: EngineFactory>(h: &Harness<F>) {
        let e = h.open("db");
        e.write(&batch(1, vec![put(b"k", b"v1")])).unwrap();
        std::fs::create_dir_all(h.path("taken")).unwrap();
        std::fs::write(h.path("taken").join("file"), b"x").unwrap();
        assert!(e.checkpoint(&h.path("taken")).is_err());
    }

    pub fn ttl_policy_survives_reopen<F: EngineFactory>(h: &Harness<F>) {
        {
            let e = h.open("db");
            assert_eq!(e.ttl_policy(), TtlPolicy::default());
            e.set_ttl_policy(TtlPolicy {
                default_ttl: 60,
                since: 1000,
            })
            .unwrap();
        }
        let e = h.open("db");
        assert_eq!(
            e.ttl_policy(),
            TtlPolicy {
                default_ttl: 60,
                since: 1000
            }
        );
    }

    pub fn compaction_drops_only_records_expired_at_the_last_write_time<F: EngineFactory>(
        h: &Harness<F>,
    ) {
        let e = h.open("db");
        let short = key("h", "short");
        let long = key("h", "long");
        let forever = key("h", "forever");
        let at = |secs: u32, decree: i64, ops: Vec<BatchOp>| WriteBatch {
            decree,
            write_time_us: us(secs),
            ops,
            ..WriteBatch::default()
        };
        e.write(&at(
            T0,
            1,
            vec![
                put(&short, &encode_value(T0 + 10, 0, b"s")),
                put(&long, &encode_value(T0 + 1000, 0, b"l")),
                put(&forever, &encode_value(0, 0, b"f")),
            ],
        ))
        .unwrap();
        // The wall clock says `short` expired, but no mutation has been applied after its
        // expiry: a mutation still in flight may see it, so compaction must keep it.
        h.clock.advance_secs(100);
        e.compact_all().unwrap();
        assert!(e.get(&short).unwrap().is_some());
        // Once a mutation at T0+50 is applied, every later mutation sees `short` expired.
        e.write(&at(
            T0 + 50,
            2,
            vec![put(&key("x", "y"), &encode_value(0, 0, b""))],
        ))
        .unwrap();
        e.compact_all().unwrap();
        assert_eq!(e.get(&short).unwrap(), None);
        assert!(e.get(&long).unwrap().is_some());
        assert!(e.get(&forever).unwrap().is_some());
        // A default TTL makes records without TTL expire `default_ttl` after it took effect.
        e.set_ttl_policy(TtlPolicy {
            default_ttl: 10,
            since: T0,
        })
        .unwrap();
        e.write(&at(T0 + 60, 3, vec![])).unwrap();
        e.compact_all().unwrap();
        assert_eq!(e.get(&forever).unwrap(), None);
        assert!(e.get(&long).unwrap().is_some());
    }
}
