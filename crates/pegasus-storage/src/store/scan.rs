//! Scanners: get_scanner, scan, clear_scanner.
//!
//! Pegasus keeps a live RocksDB iterator in each scan context. We keep the position instead
//! (the next key to visit) and seek to it on the next `scan`: a context then pins no engine
//! resources and cannot outlive its engine. The difference a client can see is that a
//! long scan observes writes committed between its batches, which Pegasus's iterator (an
//! implicit snapshot) would not; no client relies on snapshot scans.

use std::collections::HashMap;

use pegasus_core::key::{decode_key, encode_key, next_prefix};
use pegasus_core::rrdb::{
    FilterType, GetScannerRequest, KeyValue, ScanRequest, ScanResponse, SCAN_CONTEXT_ID_COMPLETED,
};
use pegasus_core::status::StorageStatus;
use pegasus_core::Bytes;

use super::check::{filter_supported, matches_filter};
use super::read::{classify, Limiter, Record};
use super::PartitionStore;
use crate::engine::{EngineIterator, IterOptions, StorageEngine};
use crate::error::StorageError;

/// Most scan contexts a partition keeps; the least recently used is dropped beyond this.
pub const MAX_SCAN_CONTEXTS: usize = 10_000;

/// What a scan context remembers between batches.
#[derive(Debug, Clone)]
pub(super) struct ScanContext {
    /// The next key to visit (inclusive).
    next_key: Vec<u8>,
    stop: Vec<u8>,
    stop_inclusive: bool,
    /// Iterator bounds and mode fixed at get_scanner time.
    iter: IterOptions,
    hash_key_filter_type: FilterType,
    hash_key_filter_pattern: Bytes,
    sort_key_filter_type: FilterType,
    sort_key_filter_pattern: Bytes,
    batch_size: i32,
    no_value: bool,
    validate_hash: bool,
    return_expire_ts: bool,
    only_return_count: bool,
    last_used_us: u64,
}

/// The contexts of one partition.
#[derive(Debug, Default)]
pub(super) struct ScannerTable {
    next_id: i64,
    contexts: HashMap<i64, ScanContext>,
}

impl ScannerTable {
    fn expire(&mut self, now_us: u64, ttl_us: u64) {
        self.contexts
            .retain(|_, c| now_us.saturating_sub(c.last_used_us) <= ttl_us);
    }

    fn put(&mut self, ctx: ScanContext) -> i64 {
        if self.contexts.len() >= MAX_SCAN_CONTEXTS {
            if let Some(oldest) = self
                .contexts
                .iter()
                .min_by_key(|(_, c)| c.last_used_us)
                .map(|(id, _)| *id)
            {
                self.contexts.remove(&oldest);
            }
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(0);
        self.contexts.insert(id, ctx);
        id
    }
}

struct Batch {
    kvs: Vec<KeyValue>,
    count: i32,
    error: i32,
    /// Where to resume, when the range has more.
    resume_at: Option<Vec<u8>>,
}

impl<E: StorageEngine> PartitionStore<E> {
    /// `RPC_RRDB_RRDB_GET_SCANNER`: the first batch of a scan.
    pub fn get_scanner(&self, req: &GetScannerRequest) -> ScanResponse {
        let mut resp = ScanResponse {
            context_id: SCAN_CONTEXT_ID_COMPLETED,
            ..ScanResponse::default()
        };
        if !filter_supported(req.hash_key_filter_type)
            || !filter_supported(req.sort_key_filter_type)
        {
            resp.error = StorageStatus::InvalidArgument.code();
            return resp;
        }
        // Like Pegasus, a scan that names a hash key and is not a full scan stays inside
        // that hash key (RocksDB's prefix_same_as_start); otherwise it is a total-order scan.
        let start_hash_key = decode_key(&req.start_key)
            .map(|(hk, _)| hk)
            .unwrap_or_default();
        let iter = if !start_hash_key.is_empty() && !req.full_scan.unwrap_or(false) {
            let prefix = encode_key(start_hash_key, b"").unwrap_or_default();
            IterOptions {
                upper: next_prefix(&prefix),
                lower: Some(prefix),
                within_hash_key: true,
            }
        } else {
            IterOptions::default()
        };
        let mut start = req.start_key.to_vec();
        let mut start_inclusive = req.start_inclusive;
        if req.hash_key_filter_type == FilterType::MatchPrefix
            && !req.hash_key_filter_pattern.is_empty()
        {
            if let Ok(prefix_start) = encode_key(&req.hash_key_filter_pattern, b"") {
                if prefix_start > start {
                    start = prefix_start;
                    start_inclusive = true;
                }
            }
        }
        let stop = req.stop_key.to_vec();
        if start > stop || (start == stop && (!start_inclusive || !req.stop_inclusive)) {
            resp.error = StorageStatus::Ok.code();
            return resp;
        }
        let mut ctx = ScanContext {
            next_key: start.clone(),
            stop,
            stop_inclusive: req.stop_inclusive,
            iter,
            hash_key_filter_type: req.hash_key_filter_type,
            hash_key_filter_pattern: req.hash_key_filter_pattern.clone(),
            sort_key_filter_type: req.sort_key_filter_type,
            sort_key_filter_pattern: req.sort_key_filter_pattern.clone(),
            batch_size: req.batch_size,
            no_value: req.no_value,
            validate_hash: req.validate_partition_hash.unwrap_or(true),
            return_expire_ts: req.return_expire_ts.unwrap_or(false),
            only_return_count: req.only_return_count,
            last_used_us: 0,
        };
        let skip = (!start_inclusive).then_some(start.as_slice());
        let batch = self.scan_batch(&ctx, skip, u64::from(self.limits.max_iteration_count));
        self.finish(&mut ctx, batch, &mut resp);
        resp
    }

    /// `RPC_RRDB_RRDB_SCAN`: the next batch of a scan; error 1 for an unknown or expired
    /// context.
    pub fn scan(&self, req: &ScanRequest) -> ScanResponse {
        let mut resp = ScanResponse {
            context_id: SCAN_CONTEXT_ID_COMPLETED,
            ..ScanResponse::default()
        };
        let ctx = {
            let mut table = self.scanners.lock().unwrap_or_else(|e| e.into_inner());
            table.expire(self.clock.now_micros(), self.scan_ttl_us());
            table.contexts.remove(&req.context_id)
        };
        let Some(mut ctx) = ctx else {
            resp.error = StorageStatus::NotFound.code();
            return resp;
        };
        let batch_count = self.batch_count(ctx.batch_size);
        let batch = self.scan_batch(&ctx, None, batch_count);
        self.finish(&mut ctx, batch, &mut resp);
        resp
    }

    /// `RPC_RRDB_RRDB_CLEAR_SCANNER`: drops a context (no reply on the wire).
    pub fn clear_scanner(&self, context_id: i64) {
        let mut table = self.scanners.lock().unwrap_or_else(|e| e.into_inner());
        table.contexts.remove(&context_id);
    }

    /// Number of live scan contexts.
    pub fn scan_context_count(&self) -> usize {
        let mut table = self.scanners.lock().unwrap_or_else(|e| e.into_inner());
        table.expire(self.clock.now_micros(), self.scan_ttl_us());
        table.contexts.len()
    }

    fn scan_ttl_us(&self) -> u64 {
        self.limits
            .scan_context_ttl_seconds
            .saturating_mul(1_000_000)
    }

    fn batch_count(&self, batch_size: i32) -> u64 {
        let max = u64::from(self.limits.max_iteration_count);
        match u64::try_from(batch_size) {
            Ok(b) if b > 0 && b < max => b,
            _ => max,
        }
    }

    fn finish(&self, ctx: &mut ScanContext, batch: Batch, resp: &mut ScanResponse) {
        resp.error = batch.error;
        resp.kvs = batch.kvs;
        if ctx.only_return_count {
            resp.kv_count = Some(batch.count);
        }
        if let Some(next) = batch.resume_at {
            ctx.next_key = next;
            ctx.last_used_us = self.clock.now_micros();
            let mut table = self.scanners.lock().unwrap_or_else(|e| e.into_inner());
            table.expire(ctx.last_used_us, self.scan_ttl_us());
            resp.context_id = table.put(ctx.clone());
        }
    }

    /// One batch from `ctx.next_key`. `skip` is an exclusive start key to step over.
    fn scan_batch(&self, ctx: &ScanContext, skip: Option<&[u8]>, max_iterations: u64) -> Batch {
        let batch_count = self.batch_count(ctx.batch_size);
        let policy = self.engine.ttl_policy();
        let now = self.now();
        let hash_check = self.partition_hash_check();
        let mut limiter = Limiter::new(
            max_iterations,
            0,
            self.limits.iteration_threshold_time_ms,
            self.clock.as_ref(),
        );
        let mut it = self.engine.iter(ctx.iter.clone());
        it.seek(&ctx.next_key);
        let mut first_exclusive = skip.is_some();
        let mut kvs = Vec::new();
        let mut count: u64 = 0;
        let mut complete = false;
        let mut failure: Option<StorageError> = None;
        while count < batch_count && limiter.valid() && it.valid() {
            let c = it.key().cmp(ctx.stop.as_slice());
            if c.is_gt() || (c.is_eq() && !ctx.stop_inclusive) {
                complete = true;
                break;
            }
            if first_exclusive {
                first_exclusive = false;
                if Some(it.key()) == skip {
                    it.next();
                    continue;
                }
            }
            limiter.add_count();
            match classify(&policy, it.value(), now) {
                Err(e) => {
                    failure = Some(e);
                    break;
                }
                Ok(Record::Expired) => {}
                Ok(Record::Live { expire_ts, data }) => {
                    let key = it.key();
                    let keep = (!ctx.validate_hash || hash_check.owns(key))
                        && passes_key_filters(ctx, key);
                    if keep {
                        count += 1;
                        if !ctx.only_return_count {
                            kvs.push(KeyValue {
                                key: Bytes::copy_from_slice(key),
                                value: if ctx.no_value {
                                    Bytes::new()
                                } else {
                                    Bytes::copy_from_slice(data)
                                },
                                expire_ts_seconds: ctx.return_expire_ts.then_some(expire_ts as i32),
                            });
                        }
                    }
                }
            }
            if c.is_eq() {
                complete = true;
                break;
            }
            it.next();
        }
        if !complete {
            limiter.time_check();
        }
        let count = i32::try_from(count).unwrap_or(i32::MAX);
        if let Some(e) = failure.or_else(|| it.status().err()) {
            return Batch {
                kvs: Vec::new(),
                count,
                error: e.status().code(),
                resume_at: None,
            };
        }
        if limiter.exceeded() {
            return Batch {
                kvs,
                count,
                error: StorageStatus::Incomplete.code(),
                resume_at: None,
            };
        }
        let resume_at = (it.valid() && !complete).then(|| it.key().to_vec());
        Batch {
            kvs,
            count,
            error: StorageStatus::Ok.code(),
            resume_at,
        }
    }
}

fn passes_key_filters(ctx: &ScanContext, key: &[u8]) -> bool {
    if ctx.hash_key_filter_type == FilterType::NoFilter
        && ctx.sort_key_filter_type == FilterType::NoFilter
    {
        return true;
    }
    let Ok((hk, sk)) = decode_key(key) else {
        return false;
    };
    matches_filter(ctx.hash_key_filter_type, &ctx.hash_key_filter_pattern, hk)
        && matches_filter(ctx.sort_key_filter_type, &ctx.sort_key_filter_pattern, sk)
}
