//! The write path: one mutation = one atomic engine batch.

use pegasus_core::ids::Decree;
use pegasus_core::key::{decode_key, encode_key};
use pegasus_core::rrdb::{
    CheckAndMutateRequest, CheckAndSetRequest, CheckAndSetResponse, IncrRequest, IncrResponse,
    MultiPutRequest, MultiRemoveRequest, MultiRemoveResponse, MutateOperation, UpdateRequest,
    UpdateResponse,
};
use pegasus_core::status::StorageStatus;
use pegasus_core::time::unix_micros_to_pegasus_secs;
use pegasus_core::value::{decode_value, encode_value, make_timetag};
use pegasus_core::Bytes;

use super::check::{check_type_supported, evaluate_check, parse_i64, CheckOutcome};
use super::{PartitionStore, WriteRequest, WriteResponse};
use crate::engine::{BatchOp, StorageEngine, WriteBatch};
use crate::error::{Result, StorageError};
use crate::ttl::TtlPolicy;

const OK: i32 = StorageStatus::Ok.code();
const INVALID: i32 = StorageStatus::InvalidArgument.code();

/// The changes of the mutation being applied, in order, readable before they are
/// committed. Reads scan them backwards: mutations that read (incr, CAS, CAM) are small.
struct Pending<'a, E: StorageEngine> {
    engine: &'a E,
    ops: Vec<BatchOp>,
    policy: TtlPolicy,
    now: u32,
    timetag: u64,
}

/// A live record as the write path sees it.
struct Live {
    expire_ts: u32,
    data: Vec<u8>,
}

impl<E: StorageEngine> Pending<'_, E> {
    /// The live (present and unexpired at the mutation's time) record at `key`.
    fn get_live(&self, key: &[u8]) -> Result<Option<Live>> {
        let pending = self.ops.iter().rev().find_map(|op| match op {
            BatchOp::Put { key: k, value } if k.as_slice() == key => Some(Some(value.clone())),
            BatchOp::Delete { key: k } if k.as_slice() == key => Some(None),
            _ => None,
        });
        let raw = match pending {
            Some(v) => v,
            None => self.engine.get(key)?,
        };
        let Some(raw) = raw else {
            return Ok(None);
        };
        let v = decode_value(&raw).map_err(|e| StorageError::Corruption(e.to_string()))?;
        if self.policy.is_expired(v.expire_ts, self.now) {
            return Ok(None);
        }
        Ok(Some(Live {
            expire_ts: v.expire_ts,
            data: v.data.to_vec(),
        }))
    }

    fn put(&mut self, key: Vec<u8>, data: &[u8], requested_expire_ts: u32) {
        let expire = self.policy.write_expire_ts(requested_expire_ts, self.now);
        let value = encode_value(expire, self.timetag, data);
        self.ops.push(BatchOp::Put { key, value });
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.ops.push(BatchOp::Delete { key });
    }
}

/// A client's `i32` expiry as Pegasus stores it (`static_cast<uint32_t>`).
fn expire_from_wire(v: i32) -> u32 {
    v as u32
}

impl<E: StorageEngine> PartitionStore<E> {
    /// Applies one committed mutation: `requests` in order, atomically, at `decree`, as of
    /// `write_time_us` (the mutation's timestamp, Unix microseconds).
    ///
    /// Returns one response per request. A request that fails validation gets its status
    /// code and changes nothing; the decree still advances. `Err` means the engine failed:
    /// nothing was applied and the replica must stop (see [`StorageError`]).
    pub fn apply(
        &self,
        decree: Decree,
        write_time_us: u64,
        requests: &[WriteRequest],
    ) -> Result<Vec<WriteResponse>> {
        let mut pending = Pending {
            engine: &self.engine,
            ops: Vec::with_capacity(requests.len()),
            policy: self.engine.ttl_policy(),
            now: unix_micros_to_pegasus_secs(write_time_us),
            timetag: make_timetag(write_time_us, 0, false),
        };
        let mut responses = Vec::with_capacity(requests.len());
        let mut new_ttl_policy = None;
        for req in requests {
            let resp = match req {
                WriteRequest::Put(r) => WriteResponse::Update(put(&mut pending, r)),
                WriteRequest::Remove(k) => WriteResponse::Update(remove(&mut pending, k)),
                WriteRequest::MultiPut(r) => WriteResponse::Update(multi_put(&mut pending, r)),
                WriteRequest::MultiRemove(r) => {
                    WriteResponse::MultiRemove(multi_remove(&mut pending, r))
                }
                WriteRequest::Incr(r) => WriteResponse::Incr(incr(&mut pending, r)?),
                WriteRequest::CheckAndSet(r) => {
                    WriteResponse::CheckAndSet(check_and_set(&mut pending, r)?)
                }
                WriteRequest::CheckAndMutate(r) => {
                    WriteResponse::CheckAndMutate(check_and_mutate(&mut pending, r)?)
                }
                WriteRequest::SetDefaultTtl(ttl) => {
                    pending.policy = TtlPolicy {
                        default_ttl: *ttl,
                        since: pending.now,
                    };
                    new_ttl_policy = Some(pending.policy);
                    WriteResponse::SetDefaultTtl
                }
            };
            responses.push(with_decree(resp, decree));
        }
        self.engine.write(&WriteBatch {
            decree,
            write_time_us,
            ops: pending.ops,
            blind: !requests.iter().any(WriteRequest::is_atomic),
            new_ttl_policy,
        })?;
        Ok(responses)
    }
}

fn with_decree(mut resp: WriteResponse, decree: Decree) -> WriteResponse {
    match &mut resp {
        WriteResponse::Update(r) => r.decree = decree,
        WriteResponse::MultiRemove(r) => r.decree = decree,
        WriteResponse::Incr(r) => r.decree = decree,
        WriteResponse::CheckAndSet(r) | WriteResponse::CheckAndMutate(r) => r.decree = decree,
        WriteResponse::SetDefaultTtl => {}
    }
    resp
}

fn update_status(error: i32) -> UpdateResponse {
    UpdateResponse {
        error,
        ..UpdateResponse::default()
    }
}

fn put<E: StorageEngine>(p: &mut Pending<'_, E>, r: &UpdateRequest) -> UpdateResponse {
    if decode_key(&r.key).is_err() {
        return update_status(INVALID);
    }
    p.put(
        r.key.to_vec(),
        &r.value,
        expire_from_wire(r.expire_ts_seconds),
    );
    update_status(OK)
}

fn remove<E: StorageEngine>(p: &mut Pending<'_, E>, key: &Bytes) -> UpdateResponse {
    if decode_key(key).is_err() {
        return update_status(INVALID);
    }
    p.delete(key.to_vec());
    update_status(OK)
}

fn multi_put<E: StorageEngine>(p: &mut Pending<'_, E>, r: &MultiPutRequest) -> UpdateResponse {
    if r.kvs.is_empty() {
        return update_status(INVALID);
    }
    let mut keys = Vec::with_capacity(r.kvs.len());
    for kv in &r.kvs {
        match encode_key(&r.hash_key, &kv.key) {
            Ok(k) => keys.push(k),
            Err(_) => return update_status(INVALID),
        }
    }
    let expire = expire_from_wire(r.expire_ts_seconds);
    for (key, kv) in keys.into_iter().zip(&r.kvs) {
        p.put(key, &kv.value, expire);
    }
    update_status(OK)
}

fn multi_remove<E: StorageEngine>(
    p: &mut Pending<'_, E>,
    r: &MultiRemoveRequest,
) -> MultiRemoveResponse {
    let invalid = MultiRemoveResponse {
        error: INVALID,
        ..MultiRemoveResponse::default()
    };
    if r.sort_keys.is_empty() {
        return invalid;
    }
    let mut keys = Vec::with_capacity(r.sort_keys.len());
    for sk in &r.sort_keys {
        match encode_key(&r.hash_key, sk) {
            Ok(k) => keys.push(k),
            Err(_) => return invalid,
        }
    }
    for key in keys {
        p.delete(key);
    }
    MultiRemoveResponse {
        error: OK,
        count: r.sort_keys.len() as i64,
        ..MultiRemoveResponse::default()
    }
}

fn incr<E: StorageEngine>(p: &mut Pending<'_, E>, r: &IncrRequest) -> Result<IncrResponse> {
    let status = |error, new_value| IncrResponse {
        error,
        new_value,
        ..IncrResponse::default()
    };
    if decode_key(&r.key).is_err() {
        return Ok(status(INVALID, 0));
    }
    let (new_value, new_expire) = match p.get_live(&r.key)? {
        None => (r.increment, r.expire_ts_seconds.max(0) as u32),
        Some(old) => {
            let new_value = if old.data.is_empty() {
                r.increment
            } else {
                let Some(old_int) = parse_i64(&old.data) else {
                    return Ok(status(INVALID, 0));
                };
                match old_int.checked_add(r.increment) {
                    Some(v) => v,
                    None => return Ok(status(INVALID, old_int)),
                }
            };
            let expire = match r.expire_ts_seconds {
                0 => old.expire_ts,
                e if e < 0 => 0,
                e => e as u32,
            };
            (new_value, expire)
        }
    };
    p.put(r.key.to_vec(), new_value.to_string().as_bytes(), new_expire);
    Ok(status(OK, new_value))
}

/// The read-and-check half shared by check_and_set and check_and_mutate.
fn read_and_check<E: StorageEngine>(
    p: &Pending<'_, E>,
    hash_key: &[u8],
    check_sort_key: &[u8],
    check_type: pegasus_core::rrdb::CasCheckType,
    operand: &[u8],
    return_check_value: bool,
    resp: &mut CheckAndSetResponse,
) -> Result<Option<Vec<u8>>> {
    let Ok(check_key) = encode_key(hash_key, check_sort_key) else {
        resp.error = INVALID;
        return Ok(None);
    };
    let live = p.get_live(&check_key)?;
    if return_check_value {
        resp.check_value_returned = true;
        if let Some(l) = &live {
            resp.check_value_exist = true;
            resp.check_value = Bytes::copy_from_slice(&l.data);
        }
    }
    match evaluate_check(
        check_type,
        operand,
        live.as_ref().map(|l| l.data.as_slice()),
    ) {
        CheckOutcome::Passed => {
            resp.error = OK;
            Ok(Some(check_key))
        }
        CheckOutcome::Failed => {
            resp.error = StorageStatus::TryAgain.code();
            Ok(None)
        }
        CheckOutcome::InvalidArgument => {
            resp.error = INVALID;
            Ok(None)
        }
    }
}

fn check_and_set<E: StorageEngine>(
    p: &mut Pending<'_, E>,
    r: &CheckAndSetRequest,
) -> Result<CheckAndSetResponse> {
    let mut resp = CheckAndSetResponse::default();
    if !check_type_supported(r.check_type) {
        resp.error = INVALID;
        return Ok(resp);
    }
    let set_key = if r.set_diff_sort_key {
        match encode_key(&r.hash_key, &r.set_sort_key) {
            Ok(k) => Some(k),
            Err(_) => {
                resp.error = INVALID;
                return Ok(resp);
            }
        }
    } else {
        None
    };
    let passed = read_and_check(
        p,
        &r.hash_key,
        &r.check_sort_key,
        r.check_type,
        &r.check_operand,
        r.return_check_value,
        &mut resp,
    )?;
    if let Some(check_key) = passed {
        let key = set_key.unwrap_or(check_key);
        p.put(key, &r.set_value, expire_from_wire(r.set_expire_ts_seconds));
    }
    Ok(resp)
}

fn check_and_mutate<E: StorageEngine>(
    p: &mut Pending<'_, E>,
    r: &CheckAndMutateRequest,
) -> Result<CheckAndSetResponse> {
    let mut resp = CheckAndSetResponse::default();
    if r.mutate_list.is_empty()
        || r.mutate_list
            .iter()
            .any(|m| matches!(m.operation, MutateOperation::Unknown(_)))
        || !check_type_supported(r.check_type)
    {
        resp.error = INVALID;
        return Ok(resp);
    }
    let mut keys = Vec::with_capacity(r.mutate_list.len());
    for m in &r.mutate_list {
        match encode_key(&r.hash_key, &m.sort_key) {
            Ok(k) => keys.push(k),
            Err(_) => {
                resp.error = INVALID;
                return Ok(resp);
            }
        }
    }
    let passed = read_and_check(
        p,
        &r.hash_key,
        &r.check_sort_key,
        r.check_type,
        &r.check_operand,
        r.return_check_value,
        &mut resp,
    )?;
    if passed.is_some() {
        for (key, m) in keys.into_iter().zip(&r.mutate_list) {
            if m.operation == MutateOperation::Delete {
                p.delete(key);
            } else {
                p.put(key, &m.value, expire_from_wire(m.set_expire_ts_seconds));
            }
        }
    }
    Ok(resp)
}
