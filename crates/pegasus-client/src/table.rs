//! A table handle: routing by crc64, retries with configuration refresh, every operation.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pegasus_core::key::{encode_key, key_hash};
use pegasus_core::rrdb::*;
use pegasus_core::time::{Clock, SystemClock};
use pegasus_proto::frame::RequestHeader;
use pegasus_proto::meta::{PartitionConfiguration, QueryCfgRequest};
use pegasus_proto::{ErrorCode, MetaRequest, MetaResponse, RrdbRequest, RrdbResponse};
use tokio::sync::RwLock;
use tokio::time::Instant;

use crate::cluster::{backoff, Inner};
use crate::error::{ClientError, Result};
use crate::scanner::{ScanOptions, Scanner};

/// A table's routing state.
#[derive(Debug, Clone)]
pub(crate) struct Routing {
    pub(crate) app_id: i32,
    pub(crate) partitions: Vec<PartitionConfiguration>,
}

impl Routing {
    pub(crate) fn partition_count(&self) -> usize {
        self.partitions.len()
    }
}

/// A handle to one table. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Table {
    pub(crate) inner: Arc<Inner>,
    pub(crate) name: Arc<str>,
    pub(crate) routing: Arc<RwLock<Arc<Routing>>>,
    /// Time budget of each operation on this handle (retries included).
    pub(crate) timeout: Duration,
}

/// How a check_and_set / check_and_mutate ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckAndSetResult {
    /// The check passed and the write was applied.
    pub set_succeed: bool,
    /// The checked value, when asked for and present.
    pub check_value: Option<Bytes>,
}

/// Options of `check_and_set`.
#[derive(Debug, Clone, Default)]
pub struct CheckAndSetOptions {
    /// Write this sort key instead of the checked one.
    pub set_sort_key: Option<Bytes>,
    /// TTL of the written value.
    pub ttl: Option<Duration>,
    /// Return the checked value.
    pub return_check_value: bool,
}

/// Options of a range `multi_get`. Defaults follow the Go client.
#[derive(Debug, Clone)]
pub struct MultiGetOptions {
    /// Include the start sort key.
    pub start_inclusive: bool,
    /// Include the stop sort key.
    pub stop_inclusive: bool,
    /// Sort-key filter.
    pub sort_key_filter: (FilterType, Bytes),
    /// Most records (<= 0: server limit only).
    pub max_count: i32,
    /// Most bytes (<= 0: server limit only).
    pub max_size: i32,
    /// Keys only.
    pub no_value: bool,
    /// Read from the stop end (results still ascending).
    pub reverse: bool,
}

impl Default for MultiGetOptions {
    fn default() -> Self {
        Self {
            start_inclusive: true,
            stop_inclusive: false,
            sort_key_filter: (FilterType::NoFilter, Bytes::new()),
            max_count: 100,
            max_size: 100_000,
            no_value: false,
            reverse: false,
        }
    }
}

/// Records returned by a multi_get, and whether that was everything asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiGetResult {
    /// Sort keys and values.
    pub kvs: Vec<(Bytes, Bytes)>,
    /// False when a count/size/iteration limit stopped the server early.
    pub all_fetched: bool,
}

/// Absolute expiry (Pegasus-epoch seconds) for a TTL, 0 for none.
pub(crate) fn expire_ts(ttl: Option<Duration>) -> Result<i32> {
    match ttl {
        None => Ok(0),
        Some(d) if d.is_zero() => Ok(0),
        Some(d) => {
            let secs = u32::try_from(d.as_secs())
                .map_err(|_| ClientError::InvalidArgument("ttl too large".into()))?;
            let ts = SystemClock.pegasus_now().saturating_add(secs);
            i32::try_from(ts).map_err(|_| ClientError::InvalidArgument("ttl too large".into()))
        }
    }
}

fn status(code: i32) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(ClientError::Storage(code))
    }
}

fn check_hash_key(hash_key: &[u8], allow_empty: bool) -> Result<()> {
    if !allow_empty && hash_key.is_empty() {
        return Err(ClientError::InvalidArgument(
            "hash key must not be empty".into(),
        ));
    }
    pegasus_core::key::check_hash_key(hash_key)
        .map(drop)
        .map_err(|e| ClientError::InvalidArgument(e.to_string()))
}

fn key(hash_key: &[u8], sort_key: &[u8]) -> Result<Bytes> {
    encode_key(hash_key, sort_key)
        .map(Bytes::from)
        .map_err(|e| ClientError::InvalidArgument(e.to_string()))
}

macro_rules! expect_resp {
    ($resp:expr, $variant:ident) => {
        match $resp {
            RrdbResponse::$variant(r) => r,
            other => return Err(ClientError::BadReply(format!("unexpected {other:?}"))),
        }
    };
}

impl Table {
    pub(crate) async fn open(inner: Arc<Inner>, name: &str) -> Result<Self> {
        let routing = fetch_routing(&inner, name).await?;
        let timeout = inner.config.operation_timeout;
        Ok(Self {
            inner,
            name: name.into(),
            routing: Arc::new(RwLock::new(Arc::new(routing))),
            timeout,
        })
    }

    /// A handle to the same table whose operations each get `timeout` (retries included)
    /// instead of the client's default.
    ///
    /// ```no_run
    /// # async fn demo(table: pegasus_client::Table) -> pegasus_client::Result<()> {
    /// let patient = table.with_timeout(std::time::Duration::from_secs(10));
    /// patient.set(b"hk", b"sk", b"v", None).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            timeout,
            ..self.clone()
        }
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The table's partition count.
    pub async fn partition_count(&self) -> usize {
        self.routing.read().await.partition_count()
    }

    /// The primary this handle's cached routing names for partition `pidx` (what the next
    /// call goes to, before any refresh).
    pub async fn partition_primary(&self, pidx: usize) -> Option<std::net::SocketAddr> {
        self.routing
            .read()
            .await
            .partitions
            .get(pidx)
            .and_then(|pc| pc.primary.to_socket_addr())
    }

    /// The partition index for a hash (`hash % partition_count`).
    pub(crate) async fn partition_of(&self, hash: u64) -> Result<i32> {
        let count = self.routing.read().await.partition_count() as u64;
        if count == 0 {
            return Err(ClientError::BadReply("table has no partitions".into()));
        }
        i32::try_from(hash % count).map_err(|_| ClientError::BadReply("partition index".into()))
    }

    async fn refresh(&self, seen: &Arc<Routing>) -> Result<()> {
        let mut guard = self.routing.write().await;
        if !Arc::ptr_eq(&guard, seen) {
            return Ok(()); // someone refreshed already
        }
        *guard = Arc::new(fetch_routing(&self.inner, &self.name).await?);
        Ok(())
    }

    /// Sends one request to a partition's primary, refreshing the configuration and
    /// retrying on the errors the official clients retry on, within the operation timeout.
    pub(crate) async fn call(
        &self,
        pidx: i32,
        partition_hash: u64,
        req: RrdbRequest,
    ) -> Result<RrdbResponse> {
        let timeout = self.timeout;
        let deadline = Instant::now() + timeout;
        let mut attempt = 0u32;
        loop {
            let routing = self.routing.read().await.clone();
            let primary = usize::try_from(pidx)
                .ok()
                .and_then(|i| routing.partitions.get(i))
                .and_then(|pc| pc.primary.to_socket_addr());
            let err = match primary {
                None => ClientError::Server(ErrorCode::InvalidState),
                Some(addr) => {
                    let header = RequestHeader {
                        version: 0,
                        app_id: routing.app_id,
                        partition_index: pidx,
                        client_timeout_ms: i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX),
                        partition_hash,
                        is_backup_request: false,
                    };
                    let session = self.inner.session(addr);
                    if req.is_one_way() {
                        return session
                            .send_one_way(header, req.name(), req.encode_args())
                            .await
                            .map(|()| RrdbResponse::ClearScanner(UpdateResponse::default()))
                            .map_err(ClientError::from);
                    }
                    match tokio::time::timeout_at(
                        deadline,
                        session.call(header, req.name(), req.encode_args()),
                    )
                    .await
                    {
                        Err(_) => {
                            // The server may be gone or paused: look the partition up
                            // again so the next call can reach its new primary.
                            let _ = tokio::time::timeout(
                                Duration::from_secs(1),
                                self.refresh(&routing),
                            )
                            .await;
                            return Err(ClientError::Timeout(timeout));
                        }
                        Ok(Err(e)) => ClientError::from(e),
                        Ok(Ok(reply)) if reply.error.is_ok() => {
                            return RrdbResponse::decode(req.name(), &reply)
                                .map_err(|e| ClientError::BadReply(e.to_string()))?
                                .ok_or_else(|| ClientError::BadReply("unknown rpc".into()));
                        }
                        Ok(Ok(reply)) => ClientError::Server(reply.error),
                    }
                }
            };
            let retry = if req.is_write() {
                err.is_retryable_write()
            } else {
                err.is_retryable()
            };
            if !retry {
                if err.is_retryable() {
                    // An unknown write outcome: the caller decides, but the next call
                    // should go to the right server.
                    let _ = self.refresh(&routing).await;
                }
                return Err(err);
            }
            tracing::debug!(table = %self.name, pidx, error = %err, "retrying after configuration refresh");
            let pause = backoff(attempt);
            attempt += 1;
            if Instant::now() + pause >= deadline {
                return Err(ClientError::Timeout(timeout));
            }
            tokio::time::sleep(pause).await;
            // A failed refresh is retried on the next attempt.
            let _ = self.refresh(&routing).await;
        }
    }

    async fn call_key(
        &self,
        hash_key: &[u8],
        sort_key: &[u8],
        req: RrdbRequest,
    ) -> Result<RrdbResponse> {
        let hash = key_hash(hash_key, sort_key);
        let pidx = self.partition_of(hash).await?;
        self.call(pidx, hash, req).await
    }

    /// Reads a value; `None` if absent or expired.
    pub async fn get(&self, hash_key: &[u8], sort_key: &[u8]) -> Result<Option<Bytes>> {
        check_hash_key(hash_key, true)?;
        let resp = self
            .call_key(
                hash_key,
                sort_key,
                RrdbRequest::Get(key(hash_key, sort_key)?),
            )
            .await?;
        let r = expect_resp!(resp, Get);
        match r.error {
            0 => Ok(Some(r.value)),
            1 => Ok(None),
            e => Err(ClientError::Storage(e)),
        }
    }

    /// Writes a value, with an optional TTL.
    pub async fn set(
        &self,
        hash_key: &[u8],
        sort_key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<()> {
        check_hash_key(hash_key, true)?;
        let req = RrdbRequest::Put(UpdateRequest {
            key: key(hash_key, sort_key)?,
            value: Bytes::copy_from_slice(value),
            expire_ts_seconds: expire_ts(ttl)?,
        });
        status(expect_resp!(self.call_key(hash_key, sort_key, req).await?, Put).error)
    }

    /// Deletes a record (deleting a missing record succeeds).
    pub async fn del(&self, hash_key: &[u8], sort_key: &[u8]) -> Result<()> {
        check_hash_key(hash_key, true)?;
        let req = RrdbRequest::Remove(key(hash_key, sort_key)?);
        status(expect_resp!(self.call_key(hash_key, sort_key, req).await?, Remove).error)
    }

    /// Seconds left: `Ok(None)` if absent, `Ok(Some(-1))` if the record has no TTL.
    pub async fn ttl(&self, hash_key: &[u8], sort_key: &[u8]) -> Result<Option<i32>> {
        check_hash_key(hash_key, true)?;
        let resp = self
            .call_key(
                hash_key,
                sort_key,
                RrdbRequest::Ttl(key(hash_key, sort_key)?),
            )
            .await?;
        let r = expect_resp!(resp, Ttl);
        match r.error {
            0 => Ok(Some(r.ttl_seconds)),
            1 => Ok(None),
            e => Err(ClientError::Storage(e)),
        }
    }

    /// Whether a live record exists.
    pub async fn exist(&self, hash_key: &[u8], sort_key: &[u8]) -> Result<bool> {
        Ok(self.ttl(hash_key, sort_key).await?.is_some())
    }

    /// Adds `increment` to a decimal integer value (missing = 0) and returns the new value.
    /// `ttl`: `None` keeps the old TTL, `Some(0s)` clears it, `Some(d)` sets it.
    pub async fn incr(
        &self,
        hash_key: &[u8],
        sort_key: &[u8],
        increment: i64,
        ttl: Option<Duration>,
    ) -> Result<i64> {
        check_hash_key(hash_key, true)?;
        let expire = match ttl {
            None => 0,
            Some(d) if d.is_zero() => -1,
            Some(d) => expire_ts(Some(d))?,
        };
        let req = RrdbRequest::Incr(IncrRequest {
            key: key(hash_key, sort_key)?,
            increment,
            expire_ts_seconds: expire,
        });
        let r = expect_resp!(self.call_key(hash_key, sort_key, req).await?, Incr);
        status(r.error)?;
        Ok(r.new_value)
    }

    /// Writes several sort keys of one hash key atomically.
    pub async fn multi_set(
        &self,
        hash_key: &[u8],
        kvs: &[(&[u8], &[u8])],
        ttl: Option<Duration>,
    ) -> Result<()> {
        check_hash_key(hash_key, false)?;
        if kvs.is_empty() {
            return Err(ClientError::InvalidArgument(
                "multi_set needs at least one record".into(),
            ));
        }
        let req = RrdbRequest::MultiPut(MultiPutRequest {
            hash_key: Bytes::copy_from_slice(hash_key),
            kvs: kvs
                .iter()
                .map(|(k, v)| KeyValue {
                    key: Bytes::copy_from_slice(k),
                    value: Bytes::copy_from_slice(v),
                    expire_ts_seconds: None,
                })
                .collect(),
            expire_ts_seconds: expire_ts(ttl)?,
        });
        status(expect_resp!(self.call_key(hash_key, b"", req).await?, MultiPut).error)
    }

    /// Deletes several sort keys of one hash key atomically; returns how many were asked for.
    pub async fn multi_del(&self, hash_key: &[u8], sort_keys: &[&[u8]]) -> Result<i64> {
        check_hash_key(hash_key, false)?;
        if sort_keys.is_empty() {
            return Err(ClientError::InvalidArgument(
                "multi_del needs at least one sort key".into(),
            ));
        }
        let req = RrdbRequest::MultiRemove(MultiRemoveRequest {
            hash_key: Bytes::copy_from_slice(hash_key),
            sort_keys: sort_keys
                .iter()
                .map(|s| Bytes::copy_from_slice(s))
                .collect(),
            max_count: 0,
        });
        let r = expect_resp!(self.call_key(hash_key, b"", req).await?, MultiRemove);
        status(r.error)?;
        Ok(r.count)
    }

    /// Reads the listed sort keys (missing ones are left out), in request order.
    pub async fn multi_get(&self, hash_key: &[u8], sort_keys: &[&[u8]]) -> Result<MultiGetResult> {
        check_hash_key(hash_key, false)?;
        if sort_keys.is_empty() {
            return self
                .multi_get_range(
                    hash_key,
                    b"",
                    b"",
                    &MultiGetOptions {
                        max_count: 0,
                        max_size: 0,
                        ..Default::default()
                    },
                )
                .await;
        }
        let req = RrdbRequest::MultiGet(MultiGetRequest {
            hash_key: Bytes::copy_from_slice(hash_key),
            sort_keys: sort_keys
                .iter()
                .map(|s| Bytes::copy_from_slice(s))
                .collect(),
            ..Default::default()
        });
        multi_get_result(expect_resp!(
            self.call_key(hash_key, b"", req).await?,
            MultiGet
        ))
    }

    /// Reads a sort-key range of one hash key.
    pub async fn multi_get_range(
        &self,
        hash_key: &[u8],
        start_sort_key: &[u8],
        stop_sort_key: &[u8],
        opts: &MultiGetOptions,
    ) -> Result<MultiGetResult> {
        check_hash_key(hash_key, false)?;
        let req = RrdbRequest::MultiGet(MultiGetRequest {
            hash_key: Bytes::copy_from_slice(hash_key),
            sort_keys: Vec::new(),
            max_kv_count: opts.max_count,
            max_kv_size: opts.max_size,
            no_value: opts.no_value,
            start_sortkey: Bytes::copy_from_slice(start_sort_key),
            stop_sortkey: Bytes::copy_from_slice(stop_sort_key),
            start_inclusive: opts.start_inclusive,
            stop_inclusive: opts.stop_inclusive,
            sort_key_filter_type: opts.sort_key_filter.0,
            sort_key_filter_pattern: opts.sort_key_filter.1.clone(),
            reverse: opts.reverse,
        });
        multi_get_result(expect_resp!(
            self.call_key(hash_key, b"", req).await?,
            MultiGet
        ))
    }

    /// Number of live records of a hash key.
    pub async fn sortkey_count(&self, hash_key: &[u8]) -> Result<i64> {
        check_hash_key(hash_key, false)?;
        let req = RrdbRequest::SortkeyCount(Bytes::copy_from_slice(hash_key));
        let r = expect_resp!(self.call_key(hash_key, b"", req).await?, SortkeyCount);
        status(r.error)?;
        Ok(r.count)
    }

    /// Atomically checks a sort key and, if the check passes, writes a value.
    pub async fn check_and_set(
        &self,
        hash_key: &[u8],
        check_sort_key: &[u8],
        check_type: CasCheckType,
        check_operand: &[u8],
        set_value: &[u8],
        opts: &CheckAndSetOptions,
    ) -> Result<CheckAndSetResult> {
        check_hash_key(hash_key, false)?;
        let req = RrdbRequest::CheckAndSet(CheckAndSetRequest {
            hash_key: Bytes::copy_from_slice(hash_key),
            check_sort_key: Bytes::copy_from_slice(check_sort_key),
            check_type,
            check_operand: Bytes::copy_from_slice(check_operand),
            set_diff_sort_key: opts.set_sort_key.is_some(),
            set_sort_key: opts.set_sort_key.clone().unwrap_or_default(),
            set_value: Bytes::copy_from_slice(set_value),
            set_expire_ts_seconds: expire_ts(opts.ttl)?,
            return_check_value: opts.return_check_value,
        });
        cas_result(expect_resp!(
            self.call_key(hash_key, b"", req).await?,
            CheckAndSet
        ))
    }

    /// Atomically checks a sort key and, if the check passes, applies puts and deletes.
    pub async fn check_and_mutate(
        &self,
        hash_key: &[u8],
        check_sort_key: &[u8],
        check_type: CasCheckType,
        check_operand: &[u8],
        mutations: Vec<Mutate>,
        return_check_value: bool,
    ) -> Result<CheckAndSetResult> {
        check_hash_key(hash_key, false)?;
        if mutations.is_empty() {
            return Err(ClientError::InvalidArgument(
                "check_and_mutate needs at least one mutation".into(),
            ));
        }
        let req = RrdbRequest::CheckAndMutate(CheckAndMutateRequest {
            hash_key: Bytes::copy_from_slice(hash_key),
            check_sort_key: Bytes::copy_from_slice(check_sort_key),
            check_type,
            check_operand: Bytes::copy_from_slice(check_operand),
            mutate_list: mutations,
            return_check_value,
        });
        cas_result(expect_resp!(
            self.call_key(hash_key, b"", req).await?,
            CheckAndMutate
        ))
    }

    /// Reads many (hash key, sort key) pairs; one result per pair, in order. Pairs are grouped
    /// by partition and each group is one `batch_get` RPC; not atomic across partitions.
    pub async fn batch_get(&self, keys: &[(&[u8], &[u8])]) -> Result<Vec<Option<Bytes>>> {
        let mut groups: std::collections::BTreeMap<i32, Vec<usize>> =
            std::collections::BTreeMap::new();
        for (i, (hk, sk)) in keys.iter().enumerate() {
            check_hash_key(hk, false)?;
            let pidx = self.partition_of(key_hash(hk, sk)).await?;
            groups.entry(pidx).or_default().push(i);
        }
        let mut out = vec![None; keys.len()];
        let calls = groups.into_iter().map(|(pidx, idxs)| {
            let req = RrdbRequest::BatchGet(BatchGetRequest {
                keys: idxs
                    .iter()
                    .filter_map(|&i| keys.get(i))
                    .map(|(hk, sk)| FullKey {
                        hash_key: Bytes::copy_from_slice(hk),
                        sort_key: Bytes::copy_from_slice(sk),
                    })
                    .collect(),
            });
            async move { (idxs, self.call(pidx, 0, req).await) }
        });
        for (idxs, resp) in futures::future::join_all(calls).await {
            let r = expect_resp!(resp?, BatchGet);
            status(r.error)?;
            let found: std::collections::HashMap<(Bytes, Bytes), Bytes> = r
                .data
                .into_iter()
                .map(|d| ((d.hash_key, d.sort_key), d.value))
                .collect();
            for i in idxs {
                if let (Some((hk, sk)), Some(slot)) = (keys.get(i), out.get_mut(i)) {
                    *slot = found
                        .get(&(Bytes::copy_from_slice(hk), Bytes::copy_from_slice(sk)))
                        .cloned();
                }
            }
        }
        Ok(out)
    }

    /// Writes many records, each its own request sent concurrently; not atomic. One result
    /// per record, in order (Java's `batchSet2`).
    pub async fn batch_set(
        &self,
        records: &[(&[u8], &[u8], &[u8])],
        ttl: Option<Duration>,
    ) -> Vec<Result<()>> {
        let calls = records.iter().map(|(hk, sk, v)| self.set(hk, sk, v, ttl));
        futures::future::join_all(calls).await
    }

    /// Deletes many records, each its own request sent concurrently; not atomic. One result
    /// per record, in order (Java's `batchDel2`).
    pub async fn batch_del(&self, keys: &[(&[u8], &[u8])]) -> Vec<Result<()>> {
        let calls = keys.iter().map(|(hk, sk)| self.del(hk, sk));
        futures::future::join_all(calls).await
    }

    /// An ordered scanner over one hash key's sort keys from `start` to `stop` (empty stop =
    /// to the end of the hash key).
    pub async fn get_scanner(
        &self,
        hash_key: &[u8],
        start: &[u8],
        stop: &[u8],
        opts: ScanOptions,
    ) -> Result<Scanner> {
        check_hash_key(hash_key, false)?;
        Scanner::ordered(self.clone(), hash_key, start, stop, opts).await
    }

    /// Scanners that together cover the whole table, each over a share of the partitions.
    pub async fn get_unordered_scanners(
        &self,
        max_count: usize,
        opts: ScanOptions,
    ) -> Result<Vec<Scanner>> {
        if max_count == 0 {
            return Err(ClientError::InvalidArgument(
                "need at least one scanner".into(),
            ));
        }
        let count = self.partition_count().await;
        let n = max_count.min(count).max(1);
        let mut shares: Vec<Vec<i32>> = vec![Vec::new(); n];
        for p in 0..count {
            if let (Some(share), Ok(p)) = (shares.get_mut(p % n), i32::try_from(p)) {
                share.push(p);
            }
        }
        Ok(shares
            .into_iter()
            .map(|parts| Scanner::unordered(self.clone(), parts, opts.clone()))
            .collect())
    }

    /// Deletes the sort keys of one hash key from `start` (inclusive) to `stop` (exclusive;
    /// empty = to the end), in batches of 100 (not atomic). Returns how many were deleted.
    pub async fn del_range(&self, hash_key: &[u8], start: &[u8], stop: &[u8]) -> Result<u64> {
        let opts = ScanOptions {
            no_value: true,
            batch_size: 100,
            ..ScanOptions::default()
        };
        let mut scanner = self.get_scanner(hash_key, start, stop, opts).await?;
        let mut batch: Vec<Bytes> = Vec::new();
        let mut deleted = 0u64;
        while let Some((_, sk, _)) = scanner.next().await? {
            batch.push(sk);
            if batch.len() == 100 {
                let refs: Vec<&[u8]> = batch.iter().map(Bytes::as_ref).collect();
                self.multi_del(hash_key, &refs).await?;
                deleted += batch.len() as u64;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            let refs: Vec<&[u8]> = batch.iter().map(Bytes::as_ref).collect();
            self.multi_del(hash_key, &refs).await?;
            deleted += batch.len() as u64;
        }
        Ok(deleted)
    }
}

fn multi_get_result(r: MultiGetResponse) -> Result<MultiGetResult> {
    match r.error {
        0 | 7 => Ok(MultiGetResult {
            all_fetched: r.error == 0,
            kvs: r.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect(),
        }),
        e => Err(ClientError::Storage(e)),
    }
}

fn cas_result(r: CheckAndSetResponse) -> Result<CheckAndSetResult> {
    let check_value = (r.check_value_returned && r.check_value_exist).then_some(r.check_value);
    match r.error {
        0 => Ok(CheckAndSetResult {
            set_succeed: true,
            check_value,
        }),
        13 => Ok(CheckAndSetResult {
            set_succeed: false,
            check_value,
        }),
        e => Err(ClientError::Storage(e)),
    }
}

async fn fetch_routing(inner: &Inner, name: &str) -> Result<Routing> {
    let resp = inner
        .meta_call(
            MetaRequest::QueryConfig(QueryCfgRequest {
                app_name: name.to_string(),
                partition_indices: Vec::new(),
            }),
            inner.config.meta_query_timeout,
        )
        .await?;
    let MetaResponse::QueryConfig(r) = resp else {
        return Err(ClientError::BadReply("unexpected meta reply".into()));
    };
    if !r.err.is_ok() {
        return Err(ClientError::Table {
            name: name.to_string(),
            err: r.err,
        });
    }
    let count = usize::try_from(r.partition_count).unwrap_or(0);
    if count == 0 || !count.is_power_of_two() || r.partitions.len() != count {
        return Err(ClientError::BadReply(format!(
            "table {name}: {} partitions for partition_count {}",
            r.partitions.len(),
            r.partition_count
        )));
    }
    let mut partitions = r.partitions;
    partitions.sort_by_key(|p| p.pid.pidx);
    Ok(Routing {
        app_id: r.app_id,
        partitions,
    })
}
