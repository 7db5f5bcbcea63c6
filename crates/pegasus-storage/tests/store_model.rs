//! Model-based property test: random operation sequences run against the partition store
//! (on RocksDB and on the in-memory engine) and against a deliberately simple model written
//! from Pegasus's documented semantics. Every response must match. Expiry is driven by a
//! manual clock that the sequence itself advances.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed step should abort the test"
)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use pegasus_core::key::{decode_key, encode_key};
use pegasus_core::rrdb::*;
use pegasus_core::time::Clock;
use pegasus_core::Bytes;
use pegasus_storage::{
    EngineFactory, PartitionStore, ReadLimits, StorageEngine, WriteRequest, WriteResponse,
};
use proptest::prelude::*;

const HKS: [&str; 3] = ["", "h", "hk"];
const SKS: [&str; 4] = ["", "a", "b", "ab"];
const VALUES: [&str; 6] = ["", "0", "7", "-3", "x", "ab"];

#[derive(Debug, Clone)]
enum Op {
    Put {
        hk: usize,
        sk: usize,
        v: usize,
        ttl: u32,
    },
    Remove {
        hk: usize,
        sk: usize,
    },
    MultiPut {
        hk: usize,
        kvs: Vec<(usize, usize)>,
        ttl: u32,
    },
    MultiRemove {
        hk: usize,
        sks: Vec<usize>,
    },
    Incr {
        hk: usize,
        sk: usize,
        by: i64,
        expire: i8,
    },
    Cas {
        hk: usize,
        check_sk: usize,
        check_type: i32,
        operand: usize,
        set_sk: Option<usize>,
        v: usize,
        ret: bool,
    },
    Cam {
        hk: usize,
        check_sk: usize,
        check_type: i32,
        operand: usize,
        muts: Vec<(bool, usize, usize)>,
    },
    Advance(u64),
    SetDefaultTtl(u32),
    Get {
        hk: usize,
        sk: usize,
    },
    Ttl {
        hk: usize,
        sk: usize,
    },
    MultiGetList {
        hk: usize,
        sks: Vec<usize>,
        max_count: i32,
    },
    MultiGetRange {
        hk: usize,
        start: usize,
        stop: usize,
        si: bool,
        so: bool,
        reverse: bool,
        max_count: i32,
    },
    SortkeyCount {
        hk: usize,
    },
    FullScan {
        batch: i32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let hk = 0..HKS.len();
    let sk = || 0..SKS.len();
    let v = || 0..VALUES.len();
    let ttl = prop_oneof![Just(0u32), 1u32..6];
    prop_oneof![
        4 => (hk.clone(), sk(), v(), ttl.clone()).prop_map(|(hk, sk, v, ttl)| Op::Put { hk, sk, v, ttl }),
        2 => (hk.clone(), sk()).prop_map(|(hk, sk)| Op::Remove { hk, sk }),
        2 => (hk.clone(), proptest::collection::vec((sk(), v()), 0..3), ttl).prop_map(|(hk, kvs, ttl)| Op::MultiPut { hk, kvs, ttl }),
        1 => (hk.clone(), proptest::collection::vec(sk(), 0..3)).prop_map(|(hk, sks)| Op::MultiRemove { hk, sks }),
        2 => (hk.clone(), sk(), -3i64..4, -1i8..2).prop_map(|(hk, sk, by, expire)| Op::Incr { hk, sk, by, expire }),
        3 => (hk.clone(), sk(), 0i32..19, v(), proptest::option::of(sk()), v(), any::<bool>())
            .prop_map(|(hk, check_sk, check_type, operand, set_sk, v, ret)| Op::Cas { hk, check_sk, check_type, operand, set_sk, v, ret }),
        2 => (hk.clone(), sk(), 0i32..19, v(), proptest::collection::vec((any::<bool>(), sk(), v()), 0..3))
            .prop_map(|(hk, check_sk, check_type, operand, muts)| Op::Cam { hk, check_sk, check_type, operand, muts }),
        2 => (0u64..4).prop_map(Op::Advance),
        1 => prop_oneof![Just(0u32), 2u32..8].prop_map(Op::SetDefaultTtl),
        3 => (hk.clone(), sk()).prop_map(|(hk, sk)| Op::Get { hk, sk }),
        2 => (hk.clone(), sk()).prop_map(|(hk, sk)| Op::Ttl { hk, sk }),
        2 => (hk.clone(), proptest::collection::vec(sk(), 1..4), 0i32..3).prop_map(|(hk, sks, max_count)| Op::MultiGetList { hk, sks, max_count }),
        3 => (hk.clone(), sk(), sk(), any::<bool>(), any::<bool>(), any::<bool>(), 0i32..3)
            .prop_map(|(hk, start, stop, si, so, reverse, max_count)| Op::MultiGetRange { hk, start, stop, si, so, reverse, max_count }),
        1 => hk.prop_map(|hk| Op::SortkeyCount { hk }),
        1 => (1i32..4).prop_map(|batch| Op::FullScan { batch }),
    ]
}

/// The model: encoded key -> (value, stored expire_ts), plus the default-TTL policy.
#[derive(Default)]
struct Model {
    data: BTreeMap<Vec<u8>, (Vec<u8>, u32)>,
    default_ttl: u32,
    ttl_since: u32,
}

fn key(hk: usize, sk: usize) -> Vec<u8> {
    encode_key(HKS[hk].as_bytes(), SKS[sk].as_bytes()).unwrap()
}

fn bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn int(v: &[u8]) -> Option<i64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

impl Model {
    fn effective(&self, stored: u32) -> u32 {
        if stored == 0 && self.default_ttl > 0 {
            self.ttl_since + self.default_ttl
        } else {
            stored
        }
    }

    fn live(&self, k: &[u8], now: u32) -> Option<(&[u8], u32)> {
        let (v, e) = self.data.get(k)?;
        let e = self.effective(*e);
        (e == 0 || e > now).then_some((v.as_slice(), e))
    }

    fn put(&mut self, k: Vec<u8>, v: &[u8], expire: u32, now: u32) {
        let expire = if expire == 0 && self.default_ttl > 0 {
            now + self.default_ttl
        } else {
            expire
        };
        self.data.insert(k, (v.to_vec(), expire));
    }

    fn check(&self, t: i32, operand: &[u8], v: Option<&[u8]>) -> i32 {
        let pass = |b: bool| if b { 0 } else { 13 };
        match t {
            0 => 0,
            1 => pass(v.is_none()),
            2 => pass(v.is_none_or(|v| v.is_empty())),
            3 => pass(v.is_some()),
            4 => pass(v.is_some_and(|v| !v.is_empty())),
            5..=7 => pass(v.is_some_and(|v| {
                operand.is_empty()
                    || match t {
                        5 => v.windows(operand.len()).any(|w| w == operand),
                        6 => v.starts_with(operand),
                        _ => v.ends_with(operand),
                    }
            })),
            8..=12 => pass(v.is_some_and(|v| {
                let c = v.cmp(operand);
                [c.is_lt(), c.is_le(), c.is_eq(), c.is_ge(), c.is_gt()][(t - 8) as usize]
            })),
            13..=17 => match v {
                None => 13,
                Some(v) => match (int(v), int(operand)) {
                    (Some(a), Some(b)) => {
                        let c = a.cmp(&b);
                        pass(
                            [c.is_lt(), c.is_le(), c.is_eq(), c.is_ge(), c.is_gt()]
                                [(t - 13) as usize],
                        )
                    }
                    _ => 4,
                },
            },
            _ => 4,
        }
    }

    /// Live records of a hash key in sort-key order, with the number of stored records
    /// visited before each (for iteration limits), from `lo`..`hi` inclusive.
    fn range(&self, hk: usize, lo: &[u8], hi: &[u8], now: u32) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let prefix = encode_key(HKS[hk].as_bytes(), b"").unwrap();
        self.data
            .range(lo.to_vec()..=hi.to_vec())
            .filter(|(k, _)| {
                k.starts_with(&prefix) && decode_key(k).unwrap().0 == HKS[hk].as_bytes()
            })
            .map(|(k, _)| {
                let sk = decode_key(k).unwrap().1.to_vec();
                (sk, self.live(k, now).map(|(v, _)| v.to_vec()))
            })
            .collect()
    }
}

fn run<E: StorageEngine>(engine: E, clock: &pegasus_core::time::ManualClock, ops: &[Op]) {
    let store = PartitionStore::new(engine, Arc::new(clock.clone()), ReadLimits::default());
    let mut m = Model::default();
    let mut decree = 0i64;
    for (step, op) in ops.iter().enumerate() {
        let now = clock.pegasus_now();
        let ctx = format!("step {step}: {op:?}");
        let mut write = |req: WriteRequest| {
            decree += 1;
            store
                .apply(decree, clock.now_micros(), &[req])
                .unwrap()
                .pop()
                .unwrap()
        };
        match op.clone() {
            Op::Put { hk, sk, v, ttl } => {
                let expire = if ttl > 0 { now + ttl } else { 0 };
                let r = write(WriteRequest::Put(UpdateRequest {
                    key: Bytes::from(key(hk, sk)),
                    value: bytes(VALUES[v]),
                    expire_ts_seconds: expire as i32,
                }));
                assert_eq!(r.error(), 0, "{ctx}");
                m.put(key(hk, sk), VALUES[v].as_bytes(), expire, now);
            }
            Op::Remove { hk, sk } => {
                assert_eq!(
                    write(WriteRequest::Remove(Bytes::from(key(hk, sk)))).error(),
                    0,
                    "{ctx}"
                );
                m.data.remove(&key(hk, sk));
            }
            Op::MultiPut { hk, kvs, ttl } => {
                let expire = if ttl > 0 { now + ttl } else { 0 };
                let r = write(WriteRequest::MultiPut(MultiPutRequest {
                    hash_key: bytes(HKS[hk]),
                    kvs: kvs
                        .iter()
                        .map(|&(sk, v)| KeyValue {
                            key: bytes(SKS[sk]),
                            value: bytes(VALUES[v]),
                            expire_ts_seconds: None,
                        })
                        .collect(),
                    expire_ts_seconds: expire as i32,
                }));
                assert_eq!(r.error(), if kvs.is_empty() { 4 } else { 0 }, "{ctx}");
                for (sk, v) in kvs {
                    m.put(key(hk, sk), VALUES[v].as_bytes(), expire, now);
                }
            }
            Op::MultiRemove { hk, sks } => {
                let r = write(WriteRequest::MultiRemove(MultiRemoveRequest {
                    hash_key: bytes(HKS[hk]),
                    sort_keys: sks.iter().map(|&s| bytes(SKS[s])).collect(),
                    max_count: 0,
                }));
                assert_eq!(r.error(), if sks.is_empty() { 4 } else { 0 }, "{ctx}");
                for sk in sks {
                    m.data.remove(&key(hk, sk));
                }
            }
            Op::Incr { hk, sk, by, expire } => {
                let req_expire: i32 = match expire {
                    0 => 0,
                    e if e < 0 => -1,
                    _ => (now + 4) as i32,
                };
                let r = write(WriteRequest::Incr(IncrRequest {
                    key: Bytes::from(key(hk, sk)),
                    increment: by,
                    expire_ts_seconds: req_expire,
                }));
                let WriteResponse::Incr(r) = r else {
                    panic!("{ctx}")
                };
                let k = key(hk, sk);
                let (expected, new): ((i32, i64), Option<(i64, u32)>) = match m.live(&k, now) {
                    None => ((0, by), Some((by, req_expire.max(0) as u32))),
                    Some((v, _)) => {
                        let stored_expire = m.data[&k].1;
                        let new_expire = match req_expire {
                            0 => stored_expire,
                            e if e < 0 => 0,
                            e => e as u32,
                        };
                        if v.is_empty() {
                            ((0, by), Some((by, new_expire)))
                        } else {
                            match int(v) {
                                None => ((4, 0), None),
                                Some(old) => match old.checked_add(by) {
                                    None => ((4, old), None),
                                    Some(n) => ((0, n), Some((n, new_expire))),
                                },
                            }
                        }
                    }
                };
                assert_eq!((r.error, r.new_value), expected, "{ctx}");
                if let Some((n, e)) = new {
                    m.put(k, n.to_string().as_bytes(), e, now);
                }
            }
            Op::Cas {
                hk,
                check_sk,
                check_type,
                operand,
                set_sk,
                v,
                ret,
            } => {
                let r = write(WriteRequest::CheckAndSet(CheckAndSetRequest {
                    hash_key: bytes(HKS[hk]),
                    check_sort_key: bytes(SKS[check_sk]),
                    check_type: CasCheckType::from_i32(check_type),
                    check_operand: bytes(VALUES[operand]),
                    set_diff_sort_key: set_sk.is_some(),
                    set_sort_key: bytes(SKS[set_sk.unwrap_or(0)]),
                    set_value: bytes(VALUES[v]),
                    set_expire_ts_seconds: 0,
                    return_check_value: ret,
                }));
                let WriteResponse::CheckAndSet(r) = r else {
                    panic!("{ctx}")
                };
                let current = m.live(&key(hk, check_sk), now).map(|(v, _)| v.to_vec());
                let expected = m.check(check_type, VALUES[operand].as_bytes(), current.as_deref());
                assert_eq!(r.error, expected, "{ctx}");
                if check_type < 18 && ret {
                    assert!(r.check_value_returned, "{ctx}");
                    assert_eq!(r.check_value_exist, current.is_some(), "{ctx}");
                    assert_eq!(
                        r.check_value.as_ref(),
                        current.as_deref().unwrap_or(b""),
                        "{ctx}"
                    );
                }
                if expected == 0 {
                    m.put(
                        key(hk, set_sk.unwrap_or(check_sk)),
                        VALUES[v].as_bytes(),
                        0,
                        now,
                    );
                }
            }
            Op::Cam {
                hk,
                check_sk,
                check_type,
                operand,
                muts,
            } => {
                let r = write(WriteRequest::CheckAndMutate(CheckAndMutateRequest {
                    hash_key: bytes(HKS[hk]),
                    check_sort_key: bytes(SKS[check_sk]),
                    check_type: CasCheckType::from_i32(check_type),
                    check_operand: bytes(VALUES[operand]),
                    mutate_list: muts
                        .iter()
                        .map(|&(put, sk, v)| Mutate {
                            operation: if put {
                                MutateOperation::Put
                            } else {
                                MutateOperation::Delete
                            },
                            sort_key: bytes(SKS[sk]),
                            value: bytes(VALUES[v]),
                            set_expire_ts_seconds: 0,
                        })
                        .collect(),
                    return_check_value: false,
                }));
                let current = m.live(&key(hk, check_sk), now).map(|(v, _)| v.to_vec());
                let expected = if muts.is_empty() {
                    4
                } else {
                    m.check(check_type, VALUES[operand].as_bytes(), current.as_deref())
                };
                assert_eq!(r.error(), expected, "{ctx}");
                if expected == 0 {
                    for (put, sk, v) in muts {
                        if put {
                            m.put(key(hk, sk), VALUES[v].as_bytes(), 0, now);
                        } else {
                            m.data.remove(&key(hk, sk));
                        }
                    }
                }
            }
            Op::Advance(secs) => clock.advance_secs(secs),
            Op::SetDefaultTtl(ttl) => {
                assert_eq!(write(WriteRequest::SetDefaultTtl(ttl)).error(), 0);
                m.default_ttl = ttl;
                m.ttl_since = now;
            }
            Op::Get { hk, sk } => {
                let r = store.get(&key(hk, sk));
                match m.live(&key(hk, sk), now) {
                    Some((v, _)) => assert_eq!((r.error, r.value.as_ref()), (0, v), "{ctx}"),
                    None => assert_eq!(r.error, 1, "{ctx}"),
                }
            }
            Op::Ttl { hk, sk } => {
                let r = store.ttl(&key(hk, sk));
                match m.live(&key(hk, sk), now) {
                    Some((_, e)) => assert_eq!(
                        (r.error, r.ttl_seconds),
                        (0, if e == 0 { -1 } else { (e - now) as i32 }),
                        "{ctx}"
                    ),
                    None => assert_eq!(r.error, 1, "{ctx}"),
                }
            }
            Op::MultiGetList { hk, sks, max_count } => {
                let r = store.multi_get(&MultiGetRequest {
                    hash_key: bytes(HKS[hk]),
                    sort_keys: sks.iter().map(|&s| bytes(SKS[s])).collect(),
                    max_kv_count: max_count,
                    ..Default::default()
                });
                let found: Vec<(Vec<u8>, Vec<u8>)> = sks
                    .iter()
                    .filter_map(|&s| {
                        m.live(&key(hk, s), now)
                            .map(|(v, _)| (SKS[s].as_bytes().to_vec(), v.to_vec()))
                    })
                    .collect();
                let limit = if max_count > 0 {
                    max_count as usize
                } else {
                    usize::MAX
                };
                let expected_err = if found.len() > limit { 7 } else { 0 };
                let expected: Vec<_> = found.into_iter().take(limit).collect();
                let got: Vec<_> = r
                    .kvs
                    .iter()
                    .map(|kv| (kv.key.to_vec(), kv.value.to_vec()))
                    .collect();
                assert_eq!((r.error, got), (expected_err, expected), "{ctx}");
            }
            Op::MultiGetRange {
                hk,
                start,
                stop,
                si,
                so,
                reverse,
                max_count,
            } => {
                let r = store.multi_get(&MultiGetRequest {
                    hash_key: bytes(HKS[hk]),
                    start_sortkey: bytes(SKS[start]),
                    stop_sortkey: bytes(SKS[stop]),
                    start_inclusive: si,
                    stop_inclusive: so,
                    reverse,
                    max_kv_count: max_count,
                    ..Default::default()
                });
                // Pegasus's loop: walk the hash key's records from the start (or, reversed,
                // from the stop); records outside the range end it; each record inside
                // counts one iteration (expired ones too); hitting the limit with records
                // left in the hash key answers 7.
                let (stop_key, so) = if SKS[stop].is_empty() {
                    (vec![0xffu8; 8], false)
                } else {
                    (SKS[stop].as_bytes().to_vec(), so)
                };
                let start_key = SKS[start].as_bytes().to_vec();
                let mut all = m.range(
                    hk,
                    &encode_key(HKS[hk].as_bytes(), b"").unwrap(),
                    &encode_key(HKS[hk].as_bytes(), &[0xff; 8]).unwrap(),
                    now,
                );
                if reverse {
                    all.reverse();
                    all.retain(|(sk, _)| sk.as_slice() <= stop_key.as_slice());
                } else {
                    all.retain(|(sk, _)| sk.as_slice() >= start_key.as_slice());
                }
                let limit = if max_count > 0 {
                    max_count as usize
                } else {
                    usize::MAX
                };
                let empty = start_key > stop_key || (start_key == stop_key && !(si && so));
                let mut kvs = Vec::new();
                let mut expected_err = 0;
                let mut count = 0;
                let mut i = 0;
                while !empty && i < all.len() {
                    if count == limit {
                        expected_err = 7;
                        break;
                    }
                    let (sk, v) = &all[i];
                    let (near, far, near_incl, far_incl) = if reverse {
                        (&stop_key, &start_key, so, si)
                    } else {
                        (&start_key, &stop_key, si, so)
                    };
                    let beyond = if reverse { sk < far } else { sk > far };
                    if beyond || (sk == far && !far_incl) {
                        break;
                    }
                    if i == 0 && !near_incl && sk == near {
                        i += 1;
                        continue;
                    }
                    count += 1;
                    if let Some(v) = v {
                        kvs.push((sk.clone(), v.clone()));
                    }
                    if sk == far {
                        break;
                    }
                    i += 1;
                }
                if reverse {
                    kvs.reverse();
                }
                let got: Vec<_> = r
                    .kvs
                    .iter()
                    .map(|kv| (kv.key.to_vec(), kv.value.to_vec()))
                    .collect();
                assert_eq!((r.error, got), (expected_err, kvs), "{ctx}");
            }
            Op::SortkeyCount { hk } => {
                let r = store.sortkey_count(HKS[hk].as_bytes());
                let n = m
                    .range(
                        hk,
                        &encode_key(HKS[hk].as_bytes(), b"").unwrap(),
                        &encode_key(HKS[hk].as_bytes(), &[0xff; 8]).unwrap(),
                        now,
                    )
                    .iter()
                    .filter(|(_, v)| v.is_some())
                    .count();
                assert_eq!((r.error, r.count), (0, n as i64), "{ctx}");
            }
            Op::FullScan { batch } => {
                let mut got = Vec::new();
                let mut r = store.get_scanner(&GetScannerRequest {
                    start_key: Bytes::from_static(b"\x00\x00"),
                    stop_key: Bytes::from_static(&[0xff, 0xff]),
                    start_inclusive: true,
                    batch_size: batch,
                    full_scan: Some(true),
                    ..Default::default()
                });
                loop {
                    assert_eq!(r.error, 0, "{ctx}");
                    assert!(r.kvs.len() <= batch as usize, "{ctx}");
                    got.extend(r.kvs.iter().map(|kv| (kv.key.to_vec(), kv.value.to_vec())));
                    if r.context_id == SCAN_CONTEXT_ID_COMPLETED {
                        break;
                    }
                    r = store.scan(&ScanRequest {
                        context_id: r.context_id,
                    });
                }
                let expected: Vec<_> = m
                    .data
                    .keys()
                    .filter_map(|k| m.live(k, now).map(|(v, _)| (k.clone(), v.to_vec())))
                    .collect();
                assert_eq!(got, expected, "{ctx}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn rocksdb_store_matches_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        let h = common::rocks();
        run(h.open("db"), &h.clock, &ops);
    }

    #[test]
    fn memory_store_matches_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        let h = common::memory();
        run(h.factory.open(&h.path("db")).unwrap(), &h.clock, &ops);
    }
}
