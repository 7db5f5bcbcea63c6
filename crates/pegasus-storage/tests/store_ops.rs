//! Every Pegasus data operation through the partition store, with Pegasus's semantics,
//! on RocksDB and on the in-memory engine. Scenarios follow Pegasus's `base_api_test`
//! (set_get_del, multi_get incl. reverse and limits, scan_with_filter, check_and_set,
//! check_and_mutate, incr, ttl with and without default_ttl).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed step should abort the test"
)]

mod common;

for_each_engine!(
    set_get_del_round_trip,
    empty_hash_key_is_a_valid_key,
    malformed_keys_and_oversized_hash_keys_are_invalid_arguments,
    multi_set_get_del_round_trip,
    empty_multi_set_and_multi_del_are_invalid_arguments,
    multi_get_list_mode_returns_found_records_in_request_order,
    multi_get_list_mode_stops_at_count_and_size_limits,
    multi_get_range_honours_inclusive_flags,
    multi_get_range_with_empty_or_inverted_range_is_empty_ok,
    multi_get_reverse_returns_last_records_in_ascending_order,
    multi_get_sort_key_filters_and_prefix_narrowing,
    multi_get_iteration_limit_counts_filtered_and_expired_records,
    multi_get_unknown_filter_type_is_invalid_argument,
    batch_get_returns_only_live_records,
    sortkey_count_counts_live_records_of_one_hash_key,
    sortkey_count_reports_minus_one_past_the_time_limit,
    ttl_reports_remaining_seconds_and_hides_expired,
    ttl_with_default_ttl_applies_to_new_and_old_records,
    incr_follows_pegasus_rules,
    incr_ttl_rules,
    check_and_set_every_check_type,
    check_and_set_options_and_errors,
    check_and_mutate_applies_all_or_nothing,
    check_and_mutate_rejects_bad_requests,
    scanner_pages_through_a_hash_key_in_batches,
    scanner_start_stop_exclusive_and_empty_ranges,
    scanner_filters_hash_and_sort_keys,
    scanner_full_scan_crosses_hash_keys,
    scanner_only_return_count_and_return_expire_ts,
    scanner_contexts_expire_and_can_be_cleared,
    scanner_iteration_limit_counts_filtered_records,
    scanner_reports_incomplete_past_the_time_limit,
    scanner_validate_partition_hash_drops_foreign_keys,
    writes_inside_one_mutation_see_each_other,
    rejected_requests_still_advance_the_decree,
    engine_error_in_apply_changes_nothing,
);

mod cases {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use pegasus_core::key::encode_key;
    use pegasus_core::rrdb::*;
    use pegasus_core::time::{Clock, ManualClock};
    use pegasus_core::Bytes;
    use pegasus_storage::store::PartitionHashCheck;
    use pegasus_storage::{
        EngineFactory, PartitionStore, ReadLimits, StorageEngine, WriteRequest, WriteResponse,
    };

    use crate::common::Harness;

    const OK: i32 = 0;
    const NOT_FOUND: i32 = 1;
    const INVALID: i32 = 4;
    const INCOMPLETE: i32 = 7;
    const TRY_AGAIN: i32 = 13;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn k(hk: &str, sk: &str) -> Bytes {
        Bytes::from(encode_key(hk.as_bytes(), sk.as_bytes()).unwrap())
    }

    struct S<E: StorageEngine> {
        store: PartitionStore<E>,
        clock: ManualClock,
        decree: Cell<i64>,
    }

    fn open<F: EngineFactory>(h: &Harness<F>) -> S<F::Engine> {
        open_with(h, ReadLimits::default(), Arc::new(h.clock.clone()))
    }

    fn open_with<F: EngineFactory>(
        h: &Harness<F>,
        limits: ReadLimits,
        clock: Arc<dyn Clock>,
    ) -> S<F::Engine> {
        S {
            store: PartitionStore::new(h.open("db"), clock, limits),
            clock: h.clock.clone(),
            decree: Cell::new(0),
        }
    }

    impl<E: StorageEngine> S<E> {
        fn now(&self) -> u32 {
            self.clock.pegasus_now()
        }

        fn apply(&self, reqs: Vec<WriteRequest>) -> Vec<WriteResponse> {
            let d = self.decree.get() + 1;
            self.decree.set(d);
            let resps = self.store.apply(d, self.clock.now_micros(), &reqs).unwrap();
            assert_eq!(self.store.last_applied_decree(), d);
            resps
        }

        fn one(&self, req: WriteRequest) -> WriteResponse {
            self.apply(vec![req]).pop().unwrap()
        }

        fn set_expire(&self, hk: &str, sk: &str, v: &str, expire_ts: i32) -> i32 {
            self.one(WriteRequest::Put(UpdateRequest {
                key: k(hk, sk),
                value: b(v),
                expire_ts_seconds: expire_ts,
            }))
            .error()
        }

        fn set(&self, hk: &str, sk: &str, v: &str) {
            assert_eq!(self.set_expire(hk, sk, v, 0), OK);
        }

        fn set_ttl(&self, hk: &str, sk: &str, v: &str, ttl: u32) {
            assert_eq!(self.set_expire(hk, sk, v, (self.now() + ttl) as i32), OK);
        }

        fn get(&self, hk: &str, sk: &str) -> Option<String> {
            let r = self.store.get(&k(hk, sk));
            match r.error {
                OK => Some(String::from_utf8(r.value.to_vec()).unwrap()),
                NOT_FOUND => None,
                e => panic!("get failed with {e}"),
            }
        }

        fn del(&self, hk: &str, sk: &str) -> i32 {
            self.one(WriteRequest::Remove(k(hk, sk))).error()
        }

        fn multi_set(&self, hk: &str, kvs: &[(&str, &str)], expire_ts: i32) -> i32 {
            self.one(WriteRequest::MultiPut(MultiPutRequest {
                hash_key: b(hk),
                kvs: kvs
                    .iter()
                    .map(|(s, v)| KeyValue {
                        key: b(s),
                        value: b(v),
                        expire_ts_seconds: None,
                    })
                    .collect(),
                expire_ts_seconds: expire_ts,
            }))
            .error()
        }

        fn incr(&self, hk: &str, sk: &str, by: i64, expire_ts: i32) -> IncrResponse {
            match self.one(WriteRequest::Incr(IncrRequest {
                key: k(hk, sk),
                increment: by,
                expire_ts_seconds: expire_ts,
            })) {
                WriteResponse::Incr(r) => r,
                other => panic!("unexpected {other:?}"),
            }
        }

        fn cas(&self, req: CheckAndSetRequest) -> CheckAndSetResponse {
            match self.one(WriteRequest::CheckAndSet(req)) {
                WriteResponse::CheckAndSet(r) => r,
                other => panic!("unexpected {other:?}"),
            }
        }

        fn cam(&self, req: CheckAndMutateRequest) -> CheckAndSetResponse {
            match self.one(WriteRequest::CheckAndMutate(req)) {
                WriteResponse::CheckAndMutate(r) => r,
                other => panic!("unexpected {other:?}"),
            }
        }

        fn ttl(&self, hk: &str, sk: &str) -> (i32, i32) {
            let r = self.store.ttl(&k(hk, sk));
            (r.error, r.ttl_seconds)
        }

        fn range(
            &self,
            hk: &str,
            f: impl FnOnce(&mut MultiGetRequest),
        ) -> (i32, Vec<(String, String)>) {
            let mut req = MultiGetRequest {
                hash_key: b(hk),
                start_inclusive: true,
                ..Default::default()
            };
            f(&mut req);
            let r = self.store.multi_get(&req);
            (r.error, kv_strings(&r.kvs))
        }

        /// Runs a scan to the end; returns every batch's kvs (full keys decoded).
        fn scan_all(&self, req: GetScannerRequest) -> (Vec<usize>, Vec<(String, String)>) {
            let mut sizes = Vec::new();
            let mut out = Vec::new();
            let mut r = self.store.get_scanner(&req);
            loop {
                assert_eq!(r.error, OK, "scan error");
                sizes.push(r.kvs.len());
                for kv in &r.kvs {
                    let (hk, sk) = pegasus_core::key::decode_key(&kv.key).unwrap();
                    out.push((
                        format!(
                            "{}/{}",
                            String::from_utf8_lossy(hk),
                            String::from_utf8_lossy(sk)
                        ),
                        String::from_utf8(kv.value.to_vec()).unwrap(),
                    ));
                }
                if r.context_id == SCAN_CONTEXT_ID_COMPLETED {
                    break;
                }
                r = self.store.scan(&ScanRequest {
                    context_id: r.context_id,
                });
            }
            (sizes, out)
        }
    }

    fn kv_strings(kvs: &[KeyValue]) -> Vec<(String, String)> {
        kvs.iter()
            .map(|kv| {
                (
                    String::from_utf8(kv.key.to_vec()).unwrap(),
                    String::from_utf8(kv.value.to_vec()).unwrap(),
                )
            })
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn hash_scan(hk: &str) -> GetScannerRequest {
        GetScannerRequest {
            start_key: k(hk, ""),
            stop_key: Bytes::from(pegasus_core::key::next_prefix(&k(hk, "")).unwrap()),
            start_inclusive: true,
            stop_inclusive: false,
            ..Default::default()
        }
    }

    fn full_scan() -> GetScannerRequest {
        GetScannerRequest {
            start_key: b("\x00\x00"),
            stop_key: Bytes::from_static(&[0xff, 0xff]),
            start_inclusive: true,
            stop_inclusive: false,
            full_scan: Some(true),
            ..Default::default()
        }
    }

    /// A clock that moves forward by `step` microseconds every time it is read.
    #[derive(Debug)]
    struct TickingClock {
        now: AtomicU64,
        step: u64,
    }

    impl Clock for TickingClock {
        fn now_micros(&self) -> u64 {
            self.now.fetch_add(self.step, Ordering::SeqCst)
        }
    }

    fn ticking(start: &ManualClock, step_us: u64) -> Arc<dyn Clock> {
        Arc::new(TickingClock {
            now: AtomicU64::new(start.now_micros()),
            step: step_us,
        })
    }

    pub fn set_get_del_round_trip<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        assert_eq!(s.get("hk", "sk"), None);
        s.set("hk", "sk", "value");
        assert_eq!(s.get("hk", "sk").as_deref(), Some("value"));
        assert_eq!(s.ttl("hk", "sk"), (OK, -1));
        s.set("hk", "sk", "value2");
        assert_eq!(s.get("hk", "sk").as_deref(), Some("value2"));
        assert_eq!(s.del("hk", "sk"), OK);
        assert_eq!(s.get("hk", "sk"), None);
        assert_eq!(s.ttl("hk", "sk").0, NOT_FOUND);
        assert_eq!(s.del("hk", "sk"), OK, "deleting a missing key is ok");
        s.set("hk", "", "empty sort key");
        assert_eq!(s.get("hk", "").as_deref(), Some("empty sort key"));
        s.set("hk", "sk", "");
        assert_eq!(
            s.get("hk", "sk").as_deref(),
            Some(""),
            "an empty value is a value"
        );
    }

    pub fn empty_hash_key_is_a_valid_key<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        s.set("", "sk", "v");
        assert_eq!(s.get("", "sk").as_deref(), Some("v"));
        assert_eq!(s.get("sk", ""), None);
    }

    pub fn malformed_keys_and_oversized_hash_keys_are_invalid_arguments<F: EngineFactory>(
        h: &Harness<F>,
    ) {
        let s = open(h);
        let long = "h".repeat(65535);
        assert_eq!(s.multi_set(&long, &[("a", "b")], 0), INVALID);
        let r = s.one(WriteRequest::Put(UpdateRequest {
            key: b("\x00"),
            value: b("v"),
            expire_ts_seconds: 0,
        }));
        assert_eq!(r.error(), INVALID);
        let r = s.one(WriteRequest::Put(UpdateRequest {
            key: b("\x00\x09ab"),
            value: b("v"),
            expire_ts_seconds: 0,
        }));
        assert_eq!(r.error(), INVALID);
        assert_eq!(s.one(WriteRequest::Remove(b("x"))).error(), INVALID);
        assert_eq!(s.incr("", "", 0, 0).error, OK);
        let r = s.one(WriteRequest::Incr(IncrRequest {
            key: b("\x05"),
            increment: 1,
            expire_ts_seconds: 0,
        }));
        assert_eq!(r.error(), INVALID);
        let r = s.store.multi_get(&MultiGetRequest {
            hash_key: Bytes::from(long.clone()),
            ..Default::default()
        });
        assert_eq!(r.error, INVALID);
        assert_eq!(s.store.sortkey_count(long.as_bytes()).error, INVALID);
        let r = s.store.batch_get(&BatchGetRequest {
            keys: vec![FullKey {
                hash_key: Bytes::from(long.clone()),
                sort_key: b(""),
            }],
        });
        assert_eq!(r.error, INVALID);
        let r = s.cas(CheckAndSetRequest {
            hash_key: Bytes::from(long),
            ..Default::default()
        });
        assert_eq!(r.error, INVALID);
        // A get of a key that does not decode finds nothing rather than failing.
        assert_eq!(s.store.get(b"\x00").error, NOT_FOUND);
    }

    pub fn multi_set_get_del_round_trip<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        assert_eq!(
            s.multi_set("hk", &[("1", "a"), ("2", "b"), ("3", "c")], 0),
            OK
        );
        assert_eq!(s.get("hk", "2").as_deref(), Some("b"));
        let (err, kvs) = s.range("hk", |_| {});
        assert_eq!(err, OK);
        assert_eq!(kvs, pairs(&[("1", "a"), ("2", "b"), ("3", "c")]));
        let r = s.one(WriteRequest::MultiRemove(MultiRemoveRequest {
            hash_key: b("hk"),
            sort_keys: vec![b("1"), b("3"), b("9")],
            max_count: 0,
        }));
        match r {
            WriteResponse::MultiRemove(r) => {
                assert_eq!(r.error, OK);
                assert_eq!(r.count, 3);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.range("hk", |_| {}).1, pairs(&[("2", "b")]));
        assert_eq!(s.store.sortkey_count(b"hk").count, 1);
    }

    pub fn empty_multi_set_and_multi_del_are_invalid_arguments<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        assert_eq!(s.multi_set("hk", &[], 0), INVALID);
        let r = s.one(WriteRequest::MultiRemove(MultiRemoveRequest {
            hash_key: b("hk"),
            sort_keys: vec![],
            max_count: 0,
        }));
        assert_eq!(r.error(), INVALID);
    }

    pub fn multi_get_list_mode_returns_found_records_in_request_order<F: EngineFactory>(
        h: &Harness<F>,
    ) {
        let s = open(h);
        s.multi_set("hk", &[("a", "1"), ("b", "2"), ("c", "3")], 0);
        s.set_ttl("hk", "d", "4", 5);
        s.clock.advance_secs(10);
        let r = s.store.multi_get(&MultiGetRequest {
            hash_key: b("hk"),
            sort_keys: vec![b("c"), b("x"), b("a"), b("d")],
            // The filter is ignored in list mode.
            sort_key_filter_type: FilterType::MatchPrefix,
            sort_key_filter_pattern: b("zzz"),
            ..Default::default()
        });
        assert_eq!(r.error, OK);
        assert_eq!(kv_strings(&r.kvs), pairs(&[("c", "3"), ("a", "1")]));
        let r = s.store.multi_get(&MultiGetRequest {
            hash_key: b("hk"),
            sort_keys: vec![b("b")],
            no_value: true,
            ..Default::default()
        });
        assert_eq!(kv_strings(&r.kvs), pairs(&[("b", "")]));
    }

    pub fn multi_get_list_mode_stops_at_count_and_size_limits<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        s.multi_set("hk", &[("a", "1"), ("b", "2"), ("c", "3")], 0);
        let keys = vec![b("a"), b("b"), b("c")];
        let r = s.store.multi_get(&MultiGetRequest {
            hash_key: b("hk"),
            sort_keys: keys.clone(),
            max_kv_count: 2,
            ..Default::default()
        });
        assert_eq!(r.error, INCOMPLETE);
        assert_eq!(r.kvs.len(), 2);
        let r = s.store.multi_get(&MultiGetRequest {
            hash_key: b("hk"),
            sort_keys: keys.clone(),
            max_kv_count: 3,
            ..Default::default()
        });
        assert_eq!(r.error, OK);
        // Each record is 2 bytes (sort key + value): the limit is checked before adding.
        let r = s.store.multi_get(&MultiGetRequest {
            hash_key: b("hk"),
            sort_keys: keys,
            max_kv_size: 3,
            ..Default::default()
        });
        assert_eq!(r.error, INCOMPLETE);
        assert_eq!(r.kvs.len(), 2);
    }

    pub fn multi_get_range_honours_inclusive_flags<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        s.multi_set("hk", &[("1", "a"), ("2", "b"), ("3", "c"), ("4", "d")], 0);
        s.multi_set("hk2", &[("1", "other")], 0);
        let keys = |v: Vec<(String, String)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        let r = s.range("hk", |r| {
            r.start_sortkey = b("2");
            r.stop_sortkey = b("4");
        });
        assert_eq!(
            (r.0, keys(r.1)),
            (OK, vec!["2".to_string(), "3".to_string()])
        );
        let r = s.range("hk", |r| {
            r.start_sortkey = b("2");
            r.start_inclusive = false;
            r.stop_sortkey = b("4");
            r.stop_inclusive = true;
        });
        assert_eq!(keys(r.1), vec!["3".to_string(), "4".to_string()]);
        let r = s.range("hk", |r| r.start_sortkey = b("3"));
        assert_eq!(
            keys(r.1),
            vec!["3".to_string(), "4".to_string()],
            "empty stop reads to the end of the hash key"
        );
        let r = s.range("hk", |r| {
            r.start_sortkey = b("0");
            r.stop_sortkey = b("9");
            r.no_value = true;
        });
        assert_eq!(r.1, pairs(&[("1", ""), ("2", ""), ("3", ""), ("4", "")]));
    }

    pub fn multi_get_range_with_empty_or_inverted_range_is_empty_ok<F: EngineFactory>(
        h: &Harness<F>,
    ) {
        let s = open(h);
        s.multi_set("hk", &[("1", "a"), ("2", "b")], 0);
        assert_eq!(
            s.range("hk", |r| {
                r.start_sortkey = b("2");
                r.stop_sortkey = b("1");
            }),
            (OK, vec![])
        );
        assert_eq!(
            s.range("hk", |r| {
                r.start_sortkey = b("1");
                r.stop_sortkey = b("1");
            }),
            (OK, vec![])
        );
        let r = s.range("hk", |r| {
            r.start_sortkey = b("1");
            r.stop_sortkey = b("1");
            r.stop_inclusive = true;
        });
        assert_eq!(r, (OK, pairs(&[("1", "a")])));
        assert_eq!(s.range("nothing", |_| {}), (OK, vec![]));
    }

    pub fn multi_get_reverse_returns_last_records_in_ascending_order<F: EngineFactory>(
        h: &Harness<F>,
    ) {
        let s = open(h);
        s.multi_set(
            "hk",
            &[("1", "a"), ("2", "b"), ("3", "c"), ("4", "d"), ("5", "e")],
            0,
        );
        let r = s.range("hk", |r| {
            r.reverse = true;
            r.max_kv_count = 2;
        });
        assert_eq!(r, (INCOMPLETE, pairs(&[("4", "d"), ("5", "e")])));
        let r = s.range("hk", |r| {
            r.reverse = true;
            r.start_sortkey = b("2");
            r.start_inclusive = false;
            r.stop_sortkey = b("5");
            r.stop_inclusive = false;
        });
        assert_eq!(r, (OK, pairs(&[("3", "c"), ("4", "d")])));
        let r = s.range("hk", |r| r.reverse = true);
        assert_eq!(r.0, OK);
        assert_eq!(r.1.len(), 5);
        assert_eq!(r.1[0].0, "1");
    }

    pub fn multi_get_sort_key_filters_and_prefix_narrowing<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        s.multi_set(
            "hk",
            &[
                ("abc", "1"),
                ("abd", "2"),
                ("bab", "3"),
                ("cab", "4"),
                ("ab", "5"),
            ],
            0,
        );
        let sel = |t: FilterType, p: &str, reverse: bool| {
            let r = s.range("hk", |r| {
                r.sort_key_filter_type = t;
                r.sort_key_filter_pattern = b(p);
                r.reverse = reverse;
            });
            assert_eq!(r.0, OK);
            r.1.into_iter().map(|(k, _)| k).collect::<Vec<_>>()
        };
        assert_eq!(
            sel(FilterType::MatchPrefix, "ab", false),
            vec!["ab", "abc", "abd"]
        );
        assert_eq!(
            sel(FilterType::MatchPrefix, "ab", true),
            vec!["ab", "abc", "abd"]
        );
        assert_eq!(
            sel(FilterType::MatchAnywhere, "ab", false),
            vec!["ab", "abc", "abd", "bab", "cab"]
        );
        assert_eq!(
            sel(FilterType::MatchPostfix, "ab", false),
            vec!["ab", "bab", "cab"]
        );
        assert_eq!(
            sel(FilterType::MatchPostfix, "", false).len(),
            5,
            "empty pattern matches all"
        );
        // Prefix narrowing keeps an explicit stop that is tighter.
        let r = s.range("hk", |r| {
            r.sort_key_filter_type = FilterType::MatchPrefix;
            r.sort_key_filter_pattern = b("ab");
            r.stop_sortkey = b("abd");
        });
        assert_eq!(
            r.1.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            vec!["ab", "abc"]
        );
    }

    pub fn multi_get_iteration_limit_counts_filtered_and_expired_records<F: EngineFactory>(
        h: &Harness<F>,
    ) {
        let limits = ReadLimits {
            multi_get_max_iteration_count: 3,
            ..ReadLimits::default()
        };
        let s = open_with(h, limits, Arc::new(h.clock.clone()));
        s.multi_set(
            "hk",
            &[
                ("1a", "1"),
                ("2b", "2"),
                ("3a", "3"),
                ("4a", "4"),
                ("5a", "5"),
            ],
            0,
        );
        let r = s.range("hk", |r| {
            r.sort_key_filter_type = FilterType::MatchAnywhere;
            r.sort_key_filter_pattern = b("a");
        });
        // Three iterations (1a, 2b filtered out, 3a), then the limit.
        assert_eq!(r, (INCOMPLETE, pairs(&[("1a", "1"), ("3a", "3")])));
        let r = s.range("hk", |r| r.max_kv_count = 5);
        assert_eq!(
            r.0, INCOMPLETE,
            "the configured cap of 3 applies below max_kv_count"
        );
        assert_eq!(r.1.len(), 3);
        // Expired records count as iterations.
        s.set_ttl("hk", "0a", "x", 1);
        s.clock.advance_secs(5);
        let r = s.range("hk", |r| r.max_kv_count = 2);
        assert_eq!(r, (INCOMPLETE, pairs(&[("1a", "1")])));
        // The size limit stops after the record that reached it.
        let r = s.range("hk", |r| r.max_kv_size = 2);
        assert_eq!(r, (INCOMPLETE, pairs(&[("1a", "1")])));
    }

    pub fn multi_get_unknown_filter_type_is_invalid_argument<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        s.set("hk", "a", "1");
        let r = s.range("hk", |r| r.sort_key_filter_type = FilterType::Unknown(9));
        assert_eq!(r.0, INVALID);
    }

    pub fn batch_get_returns_only_live_records<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        s.set("h1", "s1", "v1");
        s.set("h2", "s2", "v2");
        s.set_ttl("h3", "s3", "v3", 1);
        s.clock.advance_secs(2);
        let r = s.store.batch_get(&BatchGetRequest {
            keys: vec![
                FullKey {
                    hash_key: b("h2"),
                    sort_key: b("s2"),
                },
                FullKey {
                    hash_key: b("h9"),
                    sort_key: b("s9"),
                },
                FullKey {
                    hash_key: b("h3"),
                    sort_key: b("s3"),
                },
                FullKey {
                    hash_key: b("h1"),
                    sort_key: b("s1"),
                },
            ],
        });
        assert_eq!(r.error, OK);
        let got: Vec<_> = r
            .data
            .iter()
            .map(|d| (d.hash_key.clone(), d.sort_key.clone(), d.value.clone()))
            .collect();
        assert_eq!(
            got,
            vec![(b("h2"), b("s2"), b("v2")), (b("h1"), b("s1"), b("v1"))]
        );
        assert_eq!(
            s.store.batch_get(&BatchGetRequest { keys: vec![] }).error,
            INVALID
        );
    }

    pub fn sortkey_count_counts_live_records_of_one_hash_key<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        assert_eq!(s.store.sortkey_count(b"hk").count, 0);
        s.multi_set("hk", &[("1", "a"), ("2", "b"), ("3", "c")], 0);
        s.set("hk2", "1", "x");
        s.set("h", "1", "x");
        s.set_ttl("hk", "4", "d", 1);
        assert_eq!(s.store.sortkey_count(b"hk").count, 4);
        s.clock.advance_secs(1);
        let r = s.store.sortkey_count(b"hk");
        assert_eq!((r.error, r.count), (OK, 3));
    }

    pub fn sortkey_count_reports_minus_one_past_the_time_limit<F: EngineFactory>(h: &Harness<F>) {
        let limits = ReadLimits {
            iteration_threshold_time_ms: 1,
            ..ReadLimits::default()
        };
        let s = open_with(h, limits, ticking(&h.clock, 400));
        s.multi_set(
            "hk",
            &[
                ("1", "a"),
                ("2", "b"),
                ("3", "c"),
                ("4", "c"),
                ("5", "c"),
                ("6", "c"),
            ],
            0,
        );
        let r = s.store.sortkey_count(b"hk");
        assert_eq!((r.error, r.count), (OK, -1));
    }

    pub fn ttl_reports_remaining_seconds_and_hides_expired<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        s.set_ttl("hk", "sk", "v", 100);
        assert_eq!(s.ttl("hk", "sk"), (OK, 100));
        s.clock.advance_secs(40);
        assert_eq!(s.ttl("hk", "sk"), (OK, 60));
        assert_eq!(s.get("hk", "sk").as_deref(), Some("v"));
        s.clock.advance_secs(60);
        assert_eq!(
            s.ttl("hk", "sk").0,
            NOT_FOUND,
            "expired exactly at expire_ts"
        );
        assert_eq!(s.get("hk", "sk"), None);
        assert_eq!(s.range("hk", |_| {}).1, vec![]);
        assert_eq!(s.store.sortkey_count(b"hk").count, 0);
        assert_eq!(s.scan_all(hash_scan("hk")).1, vec![]);
        // An absolute expiry in the past is stored already expired.
        assert_eq!(s.set_expire("hk", "past", "v", 5), OK);
        assert_eq!(s.get("hk", "past"), None);
    }

    pub fn ttl_with_default_ttl_applies_to_new_and_old_records<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        s.set("hk", "old", "v");
        s.clock.advance_secs(10);
        s.store.set_default_ttl(300, s.now()).unwrap();
        s.set("hk", "new", "v");
        s.set_ttl("hk", "explicit", "v", 100);
        assert_eq!(s.ttl("hk", "new"), (OK, 300));
        assert_eq!(s.ttl("hk", "explicit"), (OK, 100));
        assert_eq!(
            s.ttl("hk", "old"),
            (OK, 300),
            "an old record expires default_ttl after the env took effect"
        );
        s.clock.advance_secs(200);
        assert_eq!(s.ttl("hk", "old"), (OK, 100));
        s.set("hk", "newer", "v");
        s.clock.advance_secs(100);
        assert_eq!(s.get("hk", "old"), None);
        assert_eq!(s.get("hk", "new"), None);
        assert_eq!(s.ttl("hk", "newer"), (OK, 200));
        // Clearing the default TTL: records written under it keep their stored expiry.
        s.store.set_default_ttl(0, s.now()).unwrap();
        s.set("hk", "after", "v");
        assert_eq!(s.ttl("hk", "after"), (OK, -1));
        assert_eq!(s.ttl("hk", "newer"), (OK, 200));
    }

    pub fn incr_follows_pegasus_rules<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        let r = s.incr("hk", "n", 5, 0);
        assert_eq!(
            (r.error, r.new_value),
            (OK, 5),
            "missing record counts as 0"
        );
        assert_eq!(s.get("hk", "n").as_deref(), Some("5"));
        assert_eq!(s.incr("hk", "n", -7, 0).new_value, -2);
        assert_eq!(s.incr("hk", "n", 0, 0).new_value, -2);
        s.set("hk", "empty", "");
        assert_eq!(
            s.incr("hk", "empty", 3, 0).new_value,
            3,
            "empty value counts as 0"
        );
        s.set("hk", "text", "abc");
        let r = s.incr("hk", "text", 1, 0);
        assert_eq!(r.error, INVALID);
        assert_eq!(
            s.get("hk", "text").as_deref(),
            Some("abc"),
            "a failed incr changes nothing"
        );
        s.set("hk", "max", &i64::MAX.to_string());
        let r = s.incr("hk", "max", 1, 0);
        assert_eq!(
            (r.error, r.new_value),
            (INVALID, i64::MAX),
            "overflow returns the old value"
        );
        s.set("hk", "min", &i64::MIN.to_string());
        let r = s.incr("hk", "min", -1, 0);
        assert_eq!((r.error, r.new_value), (INVALID, i64::MIN));
        s.set("hk", "padded", " 10 ");
        assert_eq!(s.incr("hk", "padded", 1, 0).new_value, 11);
        s.set_ttl("hk", "exp", "100", 1);
        s.clock.advance_secs(2);
        assert_eq!(
            s.incr("hk", "exp", 1, 0).new_value,
            1,
            "expired record counts as 0"
        );
    }

    pub fn incr_ttl_rules<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        s.set_ttl("hk", "a", "1", 100);
        s.incr("hk", "a", 1, 0);
        assert_eq!(s.ttl("hk", "a"), (OK, 100), "0 keeps the TTL");
        s.incr("hk", "a", 1, (s.now() + 50) as i32);
        assert_eq!(s.ttl("hk", "a"), (OK, 50), "> 0 sets a new expiry");
        s.incr("hk", "a", 1, -1);
        assert_eq!(s.ttl("hk", "a"), (OK, -1), "< 0 clears the TTL");
        assert_eq!(s.get("hk", "a").as_deref(), Some("4"));
        s.incr("hk", "b", 1, (s.now() + 30) as i32);
        assert_eq!(
            s.ttl("hk", "b"),
            (OK, 30),
            "a new record takes a positive expiry"
        );
        s.incr("hk", "c", 1, -1);
        assert_eq!(
            s.ttl("hk", "c"),
            (OK, -1),
            "a new record ignores a negative expiry"
        );
    }

    pub fn check_and_set_every_check_type<F: EngineFactory>(h: &Harness<F>) {
        use CasCheckType as C;
        let s = open(h);
        // (check type, stored value or None for absent, operand, expected error)
        let table: &[(C, Option<&str>, &str, i32)] = &[
            (C::NoCheck, None, "", OK),
            (C::ValueNotExist, None, "", OK),
            (C::ValueNotExist, Some(""), "", TRY_AGAIN),
            (C::ValueNotExistOrEmpty, None, "", OK),
            (C::ValueNotExistOrEmpty, Some(""), "", OK),
            (C::ValueNotExistOrEmpty, Some("x"), "", TRY_AGAIN),
            (C::ValueExist, Some(""), "", OK),
            (C::ValueExist, None, "", TRY_AGAIN),
            (C::ValueNotEmpty, Some("x"), "", OK),
            (C::ValueNotEmpty, Some(""), "", TRY_AGAIN),
            (C::ValueNotEmpty, None, "", TRY_AGAIN),
            (C::ValueMatchAnywhere, Some("abcd"), "bc", OK),
            (C::ValueMatchAnywhere, Some("abcd"), "", OK),
            (C::ValueMatchAnywhere, Some("abcd"), "bd", TRY_AGAIN),
            (C::ValueMatchAnywhere, None, "", TRY_AGAIN),
            (C::ValueMatchPrefix, Some("abcd"), "ab", OK),
            (C::ValueMatchPrefix, Some("abcd"), "bc", TRY_AGAIN),
            (C::ValueMatchPrefix, Some("ab"), "abc", TRY_AGAIN),
            (C::ValueMatchPostfix, Some("abcd"), "cd", OK),
            (C::ValueMatchPostfix, Some("abcd"), "bc", TRY_AGAIN),
            (C::ValueBytesLess, Some("abc"), "abd", OK),
            (C::ValueBytesLess, Some("abc"), "abc", TRY_AGAIN),
            (C::ValueBytesLess, Some("ab"), "abc", OK),
            (C::ValueBytesLess, None, "abc", TRY_AGAIN),
            (C::ValueBytesLessOrEqual, Some("abc"), "abc", OK),
            (C::ValueBytesLessOrEqual, Some("abd"), "abc", TRY_AGAIN),
            (C::ValueBytesEqual, Some("abc"), "abc", OK),
            (C::ValueBytesEqual, Some("abc"), "ab", TRY_AGAIN),
            (C::ValueBytesEqual, Some(""), "", OK),
            (C::ValueBytesGreaterOrEqual, Some("abc"), "abc", OK),
            (C::ValueBytesGreaterOrEqual, Some("ab"), "abc", TRY_AGAIN),
            (C::ValueBytesGreater, Some("b"), "abc", OK),
            (C::ValueBytesGreater, Some("abc"), "abc", TRY_AGAIN),
            (C::ValueIntLess, Some("9"), "10", OK),
            (C::ValueIntLess, Some("10"), "10", TRY_AGAIN),
            (C::ValueIntLess, Some("-5"), "-4", OK),
            (C::ValueIntLess, Some("x"), "10", INVALID),
            (C::ValueIntLess, Some("1"), "x", INVALID),
            (C::ValueIntLess, None, "x", TRY_AGAIN),
            (C::ValueIntLessOrEqual, Some("10"), "10", OK),
            (C::ValueIntLessOrEqual, Some("11"), "10", TRY_AGAIN),
            (C::ValueIntEqual, Some("10"), "10", OK),
            (C::ValueIntEqual, Some("10"), "+10", OK),
            (C::ValueIntEqual, Some("10"), "11", TRY_AGAIN),
            (C::ValueIntEqual, Some(""), "0", INVALID),
            (C::ValueIntGreaterOrEqual, Some("10"), "10", OK),
            (C::ValueIntGreaterOrEqual, Some("9"), "10", TRY_AGAIN),
            (C::ValueIntGreater, Some("11"), "10", OK),
            (C::ValueIntGreater, Some("10"), "10", TRY_AGAIN),
        ];
        for (i, (t, stored, operand, expected)) in table.iter().enumerate() {
            let hk = format!("cas{i}");
            match stored {
                Some(v) => s.set(&hk, "k", v),
                None => {
                    s.del(&hk, "k");
                }
            }
            let r = s.cas(CheckAndSetRequest {
                hash_key: b(&hk),
                check_sort_key: b("k"),
                check_type: *t,
                check_operand: b(operand),
                set_value: b("NEW"),
                ..Default::default()
            });
            assert_eq!(
                r.error, *expected,
                "row {i}: {t:?} on {stored:?} with {operand:?}"
            );
            let after = s.get(&hk, "k");
            if *expected == OK {
                assert_eq!(after.as_deref(), Some("NEW"), "row {i} should have set");
            } else {
                assert_eq!(
                    after.as_deref(),
                    *stored,
                    "row {i} must not change the value"
                );
            }
        }
        // Every check type 0..=17 is covered.
        let covered: std::collections::BTreeSet<i32> = table.iter().map(|r| r.0.to_i32()).collect();
        assert_eq!(covered, (0..18).collect());
    }

    pub fn check_and_set_options_and_errors<F: EngineFactory>(h: &Harness<F>) {
        use CasCheckType as C;
        let s = open(h);
        s.set("hk", "check", "1");
        // set_diff_sort_key writes another sort key; return_check_value returns the checked one.
        let r = s.cas(CheckAndSetRequest {
            hash_key: b("hk"),
            check_sort_key: b("check"),
            check_type: C::ValueIntEqual,
            check_operand: b("1"),
            set_diff_sort_key: true,
            set_sort_key: b("other"),
            set_value: b("written"),
            set_expire_ts_seconds: (s.now() + 60) as i32,
            return_check_value: true,
        });
        assert_eq!(r.error, OK);
        assert!(r.check_value_returned && r.check_value_exist);
        assert_eq!(r.check_value, b("1"));
        assert!(r.decree > 0);
        assert_eq!(s.get("hk", "other").as_deref(), Some("written"));
        assert_eq!(s.get("hk", "check").as_deref(), Some("1"));
        assert_eq!(s.ttl("hk", "other"), (OK, 60));
        // A failed check still returns the check value.
        let r = s.cas(CheckAndSetRequest {
            hash_key: b("hk"),
            check_sort_key: b("missing"),
            check_type: C::ValueExist,
            return_check_value: true,
            ..Default::default()
        });
        assert_eq!(r.error, TRY_AGAIN);
        assert!(r.check_value_returned);
        assert!(!r.check_value_exist);
        // An unknown check type is an invalid argument and returns nothing.
        let r = s.cas(CheckAndSetRequest {
            hash_key: b("hk"),
            check_sort_key: b("check"),
            check_type: C::Unknown(18),
            return_check_value: true,
            ..Default::default()
        });
        assert_eq!(r.error, INVALID);
        assert!(!r.check_value_returned);
        // compareExchange as Java does it: bytes-equal on the same key.
        let r = s.cas(CheckAndSetRequest {
            hash_key: b("hk"),
            check_sort_key: b("check"),
            check_type: C::ValueBytesEqual,
            check_operand: b("1"),
            set_value: b("2"),
            return_check_value: true,
            ..Default::default()
        });
        assert_eq!(r.error, OK);
        assert_eq!(s.get("hk", "check").as_deref(), Some("2"));
    }

    pub fn check_and_mutate_applies_all_or_nothing<F: EngineFactory>(h: &Harness<F>) {
        use CasCheckType as C;
        let s = open(h);
        s.multi_set("hk", &[("check", "v"), ("gone", "x")], 0);
        let mutate = |op, sk: &str, v: &str| Mutate {
            operation: op,
            sort_key: b(sk),
            value: b(v),
            set_expire_ts_seconds: 0,
        };
        let list = vec![
            mutate(MutateOperation::Put, "a", "1"),
            mutate(MutateOperation::Delete, "gone", ""),
            mutate(MutateOperation::Put, "b", "2"),
        ];
        let r = s.cam(CheckAndMutateRequest {
            hash_key: b("hk"),
            check_sort_key: b("check"),
            check_type: C::ValueBytesEqual,
            check_operand: b("wrong"),
            mutate_list: list.clone(),
            return_check_value: true,
        });
        assert_eq!(r.error, TRY_AGAIN);
        assert_eq!(r.check_value, b("v"));
        assert_eq!(s.get("hk", "a"), None);
        assert_eq!(s.get("hk", "gone").as_deref(), Some("x"));
        let r = s.cam(CheckAndMutateRequest {
            hash_key: b("hk"),
            check_sort_key: b("check"),
            check_type: C::ValueBytesEqual,
            check_operand: b("v"),
            mutate_list: list,
            return_check_value: false,
        });
        assert_eq!(r.error, OK);
        assert!(!r.check_value_returned);
        assert_eq!(s.get("hk", "a").as_deref(), Some("1"));
        assert_eq!(s.get("hk", "b").as_deref(), Some("2"));
        assert_eq!(s.get("hk", "gone"), None);
        // A mutation list may put and delete the same key: the last one wins.
        let r = s.cam(CheckAndMutateRequest {
            hash_key: b("hk"),
            check_type: C::NoCheck,
            mutate_list: vec![
                mutate(MutateOperation::Put, "z", "1"),
                mutate(MutateOperation::Delete, "z", ""),
            ],
            ..Default::default()
        });
        assert_eq!(r.error, OK);
        assert_eq!(s.get("hk", "z"), None);
    }

    pub fn check_and_mutate_rejects_bad_requests<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        let r = s.cam(CheckAndMutateRequest {
            hash_key: b("hk"),
            ..Default::default()
        });
        assert_eq!(r.error, INVALID, "empty mutate list");
        let r = s.cam(CheckAndMutateRequest {
            hash_key: b("hk"),
            mutate_list: vec![
                Mutate {
                    operation: MutateOperation::Put,
                    sort_key: b("a"),
                    value: b("1"),
                    set_expire_ts_seconds: 0,
                },
                Mutate {
                    operation: MutateOperation::Unknown(7),
                    sort_key: b("b"),
                    value: b("1"),
                    set_expire_ts_seconds: 0,
                },
            ],
            ..Default::default()
        });
        assert_eq!(r.error, INVALID, "unknown mutate operation");
        assert_eq!(s.get("hk", "a"), None);
        let r = s.cam(CheckAndMutateRequest {
            hash_key: b("hk"),
            check_type: CasCheckType::Unknown(99),
            mutate_list: vec![Mutate {
                operation: MutateOperation::Put,
                sort_key: b("a"),
                value: b("1"),
                set_expire_ts_seconds: 0,
            }],
            ..Default::default()
        });
        assert_eq!(r.error, INVALID);
    }

    pub fn scanner_pages_through_a_hash_key_in_batches<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        let kvs: Vec<(String, String)> =
            (0..7).map(|i| (format!("s{i}"), format!("v{i}"))).collect();
        let refs: Vec<(&str, &str)> = kvs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        s.multi_set("hk", &refs, 0);
        s.set("hk0", "s", "other hash key");
        s.set("hj", "s", "other hash key");
        let (sizes, out) = s.scan_all(GetScannerRequest {
            batch_size: 3,
            ..hash_scan("hk")
        });
        assert_eq!(sizes, vec![3, 3, 1]);
        let expected: Vec<(String, String)> = kvs
            .iter()
            .map(|(k, v)| (format!("hk/{k}"), v.clone()))
            .collect();
        assert_eq!(out, expected);
        // Scan keys are full encoded keys.
        let r = s.store.get_scanner(&GetScannerRequest {
            batch_size: 1,
            ..hash_scan("hk")
        });
        assert_eq!(r.kvs[0].key, k("hk", "s0"));
        assert!(r.context_id >= 0);
        s.store.clear_scanner(r.context_id);
        // A batch that ends exactly at the end of the range completes in the next call.
        let (sizes, _) = s.scan_all(GetScannerRequest {
            batch_size: 7,
            ..hash_scan("hk")
        });
        assert_eq!(sizes.iter().sum::<usize>(), 7);
        // The Go client's stop key: key(hk, "\xff\xff"), exclusive.
        let go_stop = GetScannerRequest {
            stop_key: k("hk", "\u{ff}"),
            ..hash_scan("hk")
        };
        let mut req = go_stop;
        req.stop_key = Bytes::from(encode_key(b"hk", &[0xff, 0xff]).unwrap());
        assert_eq!(s.scan_all(req).1.len(), 7);
    }

    pub fn scanner_start_stop_exclusive_and_empty_ranges<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        s.multi_set("hk", &[("1", "a"), ("2", "b"), ("3", "c"), ("4", "d")], 0);
        let range = |start: &str, si: bool, stop: &str, so: bool| {
            let (_, out) = s.scan_all(GetScannerRequest {
                start_key: k("hk", start),
                stop_key: k("hk", stop),
                start_inclusive: si,
                stop_inclusive: so,
                ..Default::default()
            });
            out.into_iter().map(|(k, _)| k).collect::<Vec<_>>()
        };
        assert_eq!(range("1", true, "3", false), vec!["hk/1", "hk/2"]);
        assert_eq!(range("1", false, "3", true), vec!["hk/2", "hk/3"]);
        assert_eq!(range("2", true, "2", true), vec!["hk/2"]);
        assert!(range("2", true, "2", false).is_empty());
        assert!(range("3", true, "1", true).is_empty());
        // An empty stop key is an empty range unless the start is empty too.
        let r = s.store.get_scanner(&GetScannerRequest {
            start_key: k("hk", "1"),
            stop_key: Bytes::new(),
            ..Default::default()
        });
        assert_eq!(
            (r.error, r.kvs.len(), r.context_id),
            (OK, 0, SCAN_CONTEXT_ID_COMPLETED)
        );
    }

    pub fn scanner_filters_hash_and_sort_keys<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        s.multi_set(
            "hk",
            &[
                ("apple", "1"),
                ("banana", "2"),
                ("apricot", "3"),
                ("grape", "4"),
            ],
            0,
        );
        let (_, out) = s.scan_all(GetScannerRequest {
            sort_key_filter_type: FilterType::MatchPrefix,
            sort_key_filter_pattern: b("ap"),
            ..hash_scan("hk")
        });
        assert_eq!(
            out.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            vec!["hk/apple", "hk/apricot"]
        );
        let (_, out) = s.scan_all(GetScannerRequest {
            sort_key_filter_type: FilterType::MatchPostfix,
            sort_key_filter_pattern: b("e"),
            no_value: true,
            ..hash_scan("hk")
        });
        assert_eq!(
            out,
            vec![
                ("hk/apple".to_string(), String::new()),
                ("hk/grape".to_string(), String::new())
            ]
        );
        let r = s.store.get_scanner(&GetScannerRequest {
            hash_key_filter_type: FilterType::Unknown(5),
            ..hash_scan("hk")
        });
        assert_eq!(r.error, INVALID);
        let r = s.store.get_scanner(&GetScannerRequest {
            sort_key_filter_type: FilterType::Unknown(5),
            ..hash_scan("hk")
        });
        assert_eq!(r.error, INVALID);
    }

    pub fn scanner_full_scan_crosses_hash_keys<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        for hk in ["a", "b", "user1", "user2", "zz"] {
            s.multi_set(hk, &[("1", "x"), ("2", "y")], 0);
        }
        s.set("", "nohash", "z");
        let (_, out) = s.scan_all(GetScannerRequest {
            batch_size: 3,
            ..full_scan()
        });
        assert_eq!(out.len(), 11);
        // Hash keys come grouped by length: "" < "a" < "b" < "zz" < "user1".
        let order: Vec<String> = out.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(order[0], "/nohash");
        assert_eq!(order[1], "a/1");
        assert_eq!(order[5], "zz/1");
        assert_eq!(order[7], "user1/1");
        // A hash-key prefix filter raises the start key and filters.
        let (_, out) = s.scan_all(GetScannerRequest {
            hash_key_filter_type: FilterType::MatchPrefix,
            hash_key_filter_pattern: b("user"),
            ..full_scan()
        });
        assert_eq!(
            out.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            vec!["user1/1", "user1/2", "user2/1", "user2/2"]
        );
        let (_, out) = s.scan_all(GetScannerRequest {
            hash_key_filter_type: FilterType::MatchAnywhere,
            hash_key_filter_pattern: b("z"),
            sort_key_filter_type: FilterType::MatchPrefix,
            sort_key_filter_pattern: b("2"),
            ..full_scan()
        });
        assert_eq!(
            out.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            vec!["zz/2"]
        );
    }

    pub fn scanner_only_return_count_and_return_expire_ts<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        s.multi_set("hk", &[("1", "a"), ("2", "b"), ("3", "c")], 0);
        s.set_expire("hk", "4", "d", (s.now() + 500) as i32);
        let mut total = 0;
        let mut r = s.store.get_scanner(&GetScannerRequest {
            only_return_count: true,
            batch_size: 3,
            ..hash_scan("hk")
        });
        loop {
            assert!(r.kvs.is_empty());
            total += r.kv_count.unwrap();
            if r.context_id == SCAN_CONTEXT_ID_COMPLETED {
                break;
            }
            r = s.store.scan(&ScanRequest {
                context_id: r.context_id,
            });
        }
        assert_eq!(total, 4);
        let r = s.store.get_scanner(&GetScannerRequest {
            return_expire_ts: Some(true),
            ..hash_scan("hk")
        });
        let ts: Vec<Option<i32>> = r.kvs.iter().map(|kv| kv.expire_ts_seconds).collect();
        let e = (s.now() + 500) as i32;
        assert_eq!(ts, vec![Some(0), Some(0), Some(0), Some(e)]);
        let r = s.store.get_scanner(&hash_scan("hk"));
        assert!(r.kvs.iter().all(|kv| kv.expire_ts_seconds.is_none()));
        assert_eq!(r.kv_count, None);
    }

    pub fn scanner_contexts_expire_and_can_be_cleared<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        s.multi_set("hk", &[("1", "a"), ("2", "b"), ("3", "c")], 0);
        let r = s.store.get_scanner(&GetScannerRequest {
            batch_size: 1,
            ..hash_scan("hk")
        });
        let id = r.context_id;
        assert!(id >= 0);
        assert_eq!(s.store.scan_context_count(), 1);
        s.store.clear_scanner(id);
        assert_eq!(
            s.store.scan(&ScanRequest { context_id: id }).error,
            NOT_FOUND
        );
        assert_eq!(
            s.store.scan(&ScanRequest { context_id: 12345 }).error,
            NOT_FOUND
        );
        let r = s.store.get_scanner(&GetScannerRequest {
            batch_size: 1,
            ..hash_scan("hk")
        });
        s.clock.advance_secs(299);
        let r = s.store.scan(&ScanRequest {
            context_id: r.context_id,
        });
        assert_eq!(r.error, OK, "a context lives 5 minutes after its last use");
        s.clock.advance_secs(301);
        assert_eq!(
            s.store
                .scan(&ScanRequest {
                    context_id: r.context_id
                })
                .error,
            NOT_FOUND
        );
        assert_eq!(s.store.scan_context_count(), 0);
    }

    pub fn scanner_iteration_limit_counts_filtered_records<F: EngineFactory>(h: &Harness<F>) {
        let limits = ReadLimits {
            max_iteration_count: 4,
            ..ReadLimits::default()
        };
        let s = open_with(h, limits, Arc::new(h.clock.clone()));
        let kvs: Vec<(String, String)> = (0..10)
            .map(|i| {
                (
                    format!("{}{i}", if i % 3 == 0 { "keep" } else { "drop" }),
                    "v".to_string(),
                )
            })
            .collect();
        let refs: Vec<(&str, &str)> = kvs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        s.multi_set("hk", &refs, 0);
        let (sizes, out) = s.scan_all(GetScannerRequest {
            batch_size: 100,
            sort_key_filter_type: FilterType::MatchPrefix,
            sort_key_filter_pattern: b("keep"),
            ..hash_scan("hk")
        });
        assert_eq!(out.len(), 4);
        assert!(
            sizes.len() >= 3,
            "4 iterations per RPC: several batches, got {sizes:?}"
        );
        assert!(sizes.iter().all(|&n| n <= 4));
    }

    pub fn scanner_reports_incomplete_past_the_time_limit<F: EngineFactory>(h: &Harness<F>) {
        let limits = ReadLimits {
            iteration_threshold_time_ms: 1,
            ..ReadLimits::default()
        };
        let s = open_with(h, limits, ticking(&h.clock, 300));
        let kvs: Vec<(String, String)> = (0..20)
            .map(|i| (format!("{i:02}"), "v".to_string()))
            .collect();
        let refs: Vec<(&str, &str)> = kvs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        s.multi_set("hk", &refs, 0);
        let r = s.store.get_scanner(&hash_scan("hk"));
        assert_eq!(r.error, INCOMPLETE);
        assert!(r.kvs.len() < 20);
        let r = s.range("hk", |_| {});
        assert_eq!(r.0, INCOMPLETE);
    }

    pub fn scanner_validate_partition_hash_drops_foreign_keys<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        let hks: Vec<String> = (0..16).map(|i| format!("h{i}")).collect();
        for hk in &hks {
            s.set(hk, "s", "v");
        }
        let mine: Vec<&String> = hks
            .iter()
            .filter(|hk| pegasus_core::crc64::crc64(hk.as_bytes()) % 4 == 1)
            .collect();
        assert!(!mine.is_empty() && mine.len() < hks.len());
        // Off by default: everything is returned.
        assert_eq!(s.scan_all(full_scan()).1.len(), 16);
        s.store.set_partition_hash_check(PartitionHashCheck {
            enabled: true,
            pidx: 1,
            partition_count: 4,
        });
        let (_, out) = s.scan_all(full_scan());
        assert_eq!(out.len(), mine.len());
        // The request may opt out.
        let (_, out) = s.scan_all(GetScannerRequest {
            validate_partition_hash: Some(false),
            ..full_scan()
        });
        assert_eq!(out.len(), 16);
    }

    pub fn writes_inside_one_mutation_see_each_other<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        let resps = s.apply(vec![
            WriteRequest::Put(UpdateRequest {
                key: k("hk", "n"),
                value: b("41"),
                expire_ts_seconds: 0,
            }),
            WriteRequest::Incr(IncrRequest {
                key: k("hk", "n"),
                increment: 1,
                expire_ts_seconds: 0,
            }),
            WriteRequest::CheckAndSet(CheckAndSetRequest {
                hash_key: b("hk"),
                check_sort_key: b("n"),
                check_type: CasCheckType::ValueIntEqual,
                check_operand: b("42"),
                set_diff_sort_key: true,
                set_sort_key: b("seen"),
                set_value: b("yes"),
                ..Default::default()
            }),
            WriteRequest::Remove(k("hk", "n")),
        ]);
        assert_eq!(
            resps.iter().map(WriteResponse::error).collect::<Vec<_>>(),
            vec![OK, OK, OK, OK]
        );
        match &resps[1] {
            WriteResponse::Incr(r) => {
                assert_eq!(r.new_value, 42);
                assert_eq!(r.decree, 1);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.get("hk", "seen").as_deref(), Some("yes"));
        assert_eq!(s.get("hk", "n"), None);
    }

    pub fn rejected_requests_still_advance_the_decree<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        s.set("hk", "t", "text");
        let r = s.incr("hk", "t", 1, 0);
        assert_eq!(r.error, INVALID);
        assert_eq!(r.decree, 2);
        assert_eq!(s.store.last_applied_decree(), 2);
        let r = s.apply(vec![]);
        assert!(r.is_empty());
        assert_eq!(s.store.last_applied_decree(), 3);
    }

    pub fn engine_error_in_apply_changes_nothing<F: EngineFactory>(h: &Harness<F>) {
        let s = open(h);
        s.set("hk", "a", "1");
        let err = s
            .store
            .apply(
                5,
                s.clock.now_micros(),
                &[WriteRequest::Put(UpdateRequest {
                    key: k("hk", "a"),
                    value: b("2"),
                    expire_ts_seconds: 0,
                })],
            )
            .unwrap_err();
        assert!(err.to_string().contains("decree 5"), "{err}");
        assert_eq!(s.get("hk", "a").as_deref(), Some("1"));
        assert_eq!(s.store.last_applied_decree(), 1);
    }
}
