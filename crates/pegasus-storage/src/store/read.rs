//! Point and range reads: get, ttl, multi_get, batch_get, sortkey_count.

use pegasus_core::key::{decode_key, encode_key, hash_key_prefix, next_prefix};
use pegasus_core::rrdb::{
    BatchGetRequest, BatchGetResponse, CountResponse, FilterType, FullData, KeyValue,
    MultiGetRequest, MultiGetResponse, ReadResponse, TtlResponse,
};
use pegasus_core::status::StorageStatus;
use pegasus_core::time::Clock;
use pegasus_core::value::decode_value;
use pegasus_core::Bytes;

use super::check::{filter_supported, matches_filter};
use super::PartitionStore;
use crate::engine::{EngineIterator, IterOptions, StorageEngine};
use crate::error::{Result, StorageError};
use crate::ttl::TtlPolicy;

const OK: i32 = StorageStatus::Ok.code();
const NOT_FOUND: i32 = StorageStatus::NotFound.code();
const INVALID: i32 = StorageStatus::InvalidArgument.code();
const INCOMPLETE: i32 = StorageStatus::Incomplete.code();

/// Pegasus's `range_read_limiter`: bounds the records an RPC iterates (including filtered
/// and expired ones), the bytes it returns, and the time it takes.
pub(super) struct Limiter<'c> {
    max_count: u64,
    max_size: u64,
    count: u64,
    size: u64,
    clock: &'c dyn Clock,
    start_us: u64,
    threshold_us: u64,
    exceeded: bool,
}

impl<'c> Limiter<'c> {
    pub(super) fn new(
        max_count: u64,
        max_size: u64,
        threshold_ms: u64,
        clock: &'c dyn Clock,
    ) -> Self {
        Self {
            max_count,
            max_size,
            count: 0,
            size: 0,
            clock,
            start_us: clock.now_micros(),
            threshold_us: threshold_ms.saturating_mul(1000),
            exceeded: false,
        }
    }

    /// Whether iteration may go on.
    pub(super) fn valid(&mut self) -> bool {
        self.count < self.max_count
            && (self.max_size == 0 || self.size < self.max_size)
            && self.time_check()
    }

    /// Checks the time budget; records and reports an overrun.
    pub(super) fn time_check(&mut self) -> bool {
        if self.threshold_us > 0
            && self.clock.now_micros().saturating_sub(self.start_us) > self.threshold_us
        {
            self.exceeded = true;
        }
        !self.exceeded
    }

    pub(super) fn add_count(&mut self) {
        self.count += 1;
    }

    pub(super) fn add_size(&mut self, n: usize) {
        self.size = self.size.saturating_add(n as u64);
    }

    pub(super) fn exceeded(&self) -> bool {
        self.exceeded
    }
}

/// A stored record, decoded and checked against the TTL policy.
pub(super) enum Record<'a> {
    Live { expire_ts: u32, data: &'a [u8] },
    Expired,
}

pub(super) fn classify<'a>(policy: &TtlPolicy, raw: &'a [u8], now: u32) -> Result<Record<'a>> {
    let v = decode_value(raw).map_err(|e| StorageError::Corruption(e.to_string()))?;
    if policy.is_expired(v.expire_ts, now) {
        Ok(Record::Expired)
    } else {
        Ok(Record::Live {
            expire_ts: policy.effective_expire_ts(v.expire_ts),
            data: v.data,
        })
    }
}

impl<E: StorageEngine> PartitionStore<E> {
    pub(super) fn now(&self) -> u32 {
        self.clock.pegasus_now()
    }

    /// The live record at an encoded key: `Ok(None)` when absent or expired.
    fn read_live(&self, key: &[u8]) -> Result<Option<(u32, Vec<u8>)>> {
        let Some(raw) = self.engine.get(key)? else {
            return Ok(None);
        };
        match classify(&self.engine.ttl_policy(), &raw, self.now())? {
            Record::Live { expire_ts, data } => Ok(Some((expire_ts, data.to_vec()))),
            Record::Expired => Ok(None),
        }
    }

    /// `RPC_RRDB_RRDB_GET`.
    pub fn get(&self, key: &[u8]) -> ReadResponse {
        match self.read_live(key) {
            Ok(Some((_, data))) => ReadResponse {
                error: OK,
                value: Bytes::from(data),
                ..ReadResponse::default()
            },
            Ok(None) => ReadResponse {
                error: NOT_FOUND,
                ..ReadResponse::default()
            },
            Err(e) => ReadResponse {
                error: e.status().code(),
                ..ReadResponse::default()
            },
        }
    }

    /// `RPC_RRDB_RRDB_TTL`: seconds left, -1 without TTL, error 1 when absent or expired.
    pub fn ttl(&self, key: &[u8]) -> TtlResponse {
        let now = self.now();
        match self.read_live(key) {
            Ok(Some((expire_ts, _))) => TtlResponse {
                error: OK,
                ttl_seconds: if expire_ts > 0 {
                    i32::try_from(expire_ts.saturating_sub(now)).unwrap_or(i32::MAX)
                } else {
                    -1
                },
                ..TtlResponse::default()
            },
            Ok(None) => TtlResponse {
                error: NOT_FOUND,
                ..TtlResponse::default()
            },
            Err(e) => TtlResponse {
                error: e.status().code(),
                ..TtlResponse::default()
            },
        }
    }

    /// `RPC_RRDB_RRDB_MULTI_GET`: list mode when `sort_keys` is non-empty, range mode
    /// otherwise.
    pub fn multi_get(&self, req: &MultiGetRequest) -> MultiGetResponse {
        let mut resp = MultiGetResponse::default();
        if !filter_supported(req.sort_key_filter_type) || encode_key(&req.hash_key, b"").is_err() {
            resp.error = INVALID;
            return resp;
        }
        let result = if req.sort_keys.is_empty() {
            self.multi_get_range(req, &mut resp.kvs)
        } else {
            self.multi_get_list(req, &mut resp.kvs)
        };
        match result {
            Ok(code) => resp.error = code,
            Err(e) => {
                resp.error = e.status().code();
                resp.kvs.clear();
            }
        }
        resp
    }

    fn multi_get_list(&self, req: &MultiGetRequest, kvs: &mut Vec<KeyValue>) -> Result<i32> {
        let max_count = if req.max_kv_count > 0 {
            req.max_kv_count as u64
        } else {
            u64::MAX
        };
        let max_size = if req.max_kv_size > 0 {
            req.max_kv_size as u64
        } else {
            u64::MAX
        };
        let mut keys = Vec::with_capacity(req.sort_keys.len());
        for sk in &req.sort_keys {
            keys.push(
                encode_key(&req.hash_key, sk).map_err(|_| StorageError::Engine {
                    status: StorageStatus::InvalidArgument,
                    message: "hash key too long".into(),
                })?,
            );
        }
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let values = self.engine.multi_get(&refs)?;
        let policy = self.engine.ttl_policy();
        let now = self.now();
        let (mut count, mut size) = (0u64, 0u64);
        for (sk, raw) in req.sort_keys.iter().zip(values) {
            let Some(raw) = raw else { continue };
            let Record::Live { data, .. } = classify(&policy, &raw, now)? else {
                continue;
            };
            if count >= max_count || size >= max_size {
                return Ok(INCOMPLETE);
            }
            let value = if req.no_value {
                Bytes::new()
            } else {
                Bytes::copy_from_slice(data)
            };
            count += 1;
            size += (sk.len() + value.len()) as u64;
            kvs.push(KeyValue {
                key: sk.clone(),
                value,
                expire_ts_seconds: None,
            });
        }
        Ok(OK)
    }

    fn multi_get_range(&self, req: &MultiGetRequest, kvs: &mut Vec<KeyValue>) -> Result<i32> {
        let prefix =
            hash_key_prefix(&req.hash_key).map_err(|e| StorageError::Corruption(e.to_string()))?;
        let hash_key_end = next_prefix(&prefix);
        let mut start = encode_key(&req.hash_key, &req.start_sortkey)
            .map_err(|e| StorageError::Corruption(e.to_string()))?;
        let mut start_inclusive = req.start_inclusive;
        let (mut stop, mut stop_inclusive) = if req.stop_sortkey.is_empty() {
            (hash_key_end.clone().unwrap_or_default(), false)
        } else {
            (
                encode_key(&req.hash_key, &req.stop_sortkey)
                    .map_err(|e| StorageError::Corruption(e.to_string()))?,
                req.stop_inclusive,
            )
        };
        if req.sort_key_filter_type == FilterType::MatchPrefix
            && !req.sort_key_filter_pattern.is_empty()
        {
            let prefix_start = encode_key(&req.hash_key, &req.sort_key_filter_pattern)
                .map_err(|e| StorageError::Corruption(e.to_string()))?;
            if let Some(prefix_stop) = next_prefix(&prefix_start) {
                if prefix_stop <= stop {
                    stop = prefix_stop;
                    stop_inclusive = false;
                }
            }
            if prefix_start > start {
                start = prefix_start;
                start_inclusive = true;
            }
        }
        if start > stop || (start == stop && (!start_inclusive || !stop_inclusive)) {
            return Ok(OK);
        }

        let max_kv_count = if req.max_kv_count > 0 {
            req.max_kv_count as u64
        } else {
            u64::MAX
        };
        let max_kv_size = if req.max_kv_size > 0 {
            req.max_kv_size as u64
        } else {
            u64::MAX
        };
        let size_cap = match self.limits.multi_get_max_iteration_size {
            0 => max_kv_size,
            cap => cap.min(max_kv_size),
        };
        let mut limiter = Limiter::new(
            max_kv_count.min(u64::from(self.limits.multi_get_max_iteration_count)),
            size_cap,
            self.limits.iteration_threshold_time_ms,
            self.clock.as_ref(),
        );
        let policy = self.engine.ttl_policy();
        let now = self.now();
        let mut it = self.engine.iter(IterOptions {
            lower: Some(prefix.clone()),
            upper: hash_key_end,
            within_hash_key: !req.reverse,
        });
        let mut complete = false;
        let append = |key: &[u8],
                      raw: &[u8],
                      limiter: &mut Limiter<'_>,
                      out: &mut Vec<KeyValue>|
         -> Result<()> {
            let Record::Live { data, .. } = classify(&policy, raw, now)? else {
                return Ok(());
            };
            let (_, sort_key) =
                decode_key(key).map_err(|e| StorageError::Corruption(e.to_string()))?;
            if !matches_filter(
                req.sort_key_filter_type,
                &req.sort_key_filter_pattern,
                sort_key,
            ) {
                return Ok(());
            }
            let value = if req.no_value {
                Bytes::new()
            } else {
                Bytes::copy_from_slice(data)
            };
            limiter.add_size(sort_key.len() + value.len());
            out.push(KeyValue {
                key: Bytes::copy_from_slice(sort_key),
                value,
                expire_ts_seconds: None,
            });
            Ok(())
        };
        if !req.reverse {
            it.seek(&start);
            let mut first_exclusive = !start_inclusive;
            while limiter.valid() && it.valid() {
                let c = it.key().cmp(stop.as_slice());
                if c.is_gt() || (c.is_eq() && !stop_inclusive) {
                    complete = true;
                    break;
                }
                if first_exclusive {
                    first_exclusive = false;
                    if it.key() == start.as_slice() {
                        it.next();
                        continue;
                    }
                }
                limiter.add_count();
                append(it.key(), it.value(), &mut limiter, kvs)?;
                if c.is_eq() {
                    complete = true;
                    break;
                }
                it.next();
            }
        } else {
            it.seek_for_prev(&stop);
            let mut first_exclusive = !stop_inclusive;
            let mut reversed = Vec::new();
            while limiter.valid() && it.valid() {
                let c = it.key().cmp(start.as_slice());
                if c.is_lt() || (c.is_eq() && !start_inclusive) {
                    complete = true;
                    break;
                }
                if first_exclusive {
                    first_exclusive = false;
                    if it.key() == stop.as_slice() {
                        it.prev();
                        continue;
                    }
                }
                limiter.add_count();
                append(it.key(), it.value(), &mut limiter, &mut reversed)?;
                if c.is_eq() {
                    complete = true;
                    break;
                }
                it.prev();
            }
            reversed.reverse();
            kvs.extend(reversed);
        }
        it.status()?;
        if it.valid() && !complete {
            return Ok(INCOMPLETE);
        }
        Ok(OK)
    }

    /// `RPC_RRDB_RRDB_BATCH_GET`: found records only, in request order.
    pub fn batch_get(&self, req: &BatchGetRequest) -> BatchGetResponse {
        let mut resp = BatchGetResponse::default();
        if req.keys.is_empty() {
            resp.error = INVALID;
            return resp;
        }
        let mut keys = Vec::with_capacity(req.keys.len());
        for k in &req.keys {
            match encode_key(&k.hash_key, &k.sort_key) {
                Ok(key) => keys.push(key),
                Err(_) => {
                    resp.error = INVALID;
                    return resp;
                }
            }
        }
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let result = self.engine.multi_get(&refs).and_then(|values| {
            let policy = self.engine.ttl_policy();
            let now = self.now();
            let mut data = Vec::new();
            for (k, raw) in req.keys.iter().zip(values) {
                let Some(raw) = raw else { continue };
                if let Record::Live { data: v, .. } = classify(&policy, &raw, now)? {
                    data.push(FullData {
                        hash_key: k.hash_key.clone(),
                        sort_key: k.sort_key.clone(),
                        value: Bytes::copy_from_slice(v),
                    });
                }
            }
            Ok(data)
        });
        match result {
            Ok(data) => {
                resp.error = OK;
                resp.data = data;
            }
            Err(e) => resp.error = e.status().code(),
        }
        resp
    }

    /// `RPC_RRDB_RRDB_SORTKEY_COUNT`: live records of a hash key; `count = -1` when the
    /// iteration time limit was hit.
    pub fn sortkey_count(&self, hash_key: &[u8]) -> CountResponse {
        let mut resp = CountResponse::default();
        let Ok(prefix) = hash_key_prefix(hash_key) else {
            resp.error = INVALID;
            return resp;
        };
        let policy = self.engine.ttl_policy();
        let now = self.now();
        let mut limiter = Limiter::new(
            u64::MAX,
            0,
            self.limits.iteration_threshold_time_ms,
            self.clock.as_ref(),
        );
        let mut it = self.engine.iter(IterOptions {
            upper: next_prefix(&prefix),
            lower: Some(prefix.clone()),
            within_hash_key: true,
        });
        it.seek(&prefix);
        let mut count = 0i64;
        let mut failure = None;
        while limiter.time_check() && it.valid() {
            limiter.add_count();
            match classify(&policy, it.value(), now) {
                Ok(Record::Live { .. }) => count += 1,
                Ok(Record::Expired) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            it.next();
        }
        if let Some(e) = failure.or_else(|| it.status().err()) {
            resp.error = e.status().code();
            resp.count = 0;
        } else if limiter.exceeded() {
            resp.error = OK;
            resp.count = -1;
        } else {
            resp.error = OK;
            resp.count = count;
        }
        resp
    }
}
