//! Scanners: ordered (one hash key) and unordered (a share of the table's partitions).

use std::collections::VecDeque;

use bytes::Bytes;
use pegasus_core::crc64::crc64;
use pegasus_core::key::{decode_key, encode_key, next_prefix};
use pegasus_core::rrdb::{
    FilterType, GetScannerRequest, KeyValue, ScanRequest, SCAN_CONTEXT_ID_COMPLETED,
};
use pegasus_proto::{RrdbRequest, RrdbResponse};

use crate::error::{ClientError, Result};
use crate::table::Table;

/// Scanner options. Defaults follow the Python and Go clients (batches of 1000).
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Records per RPC.
    pub batch_size: i32,
    /// Include the start sort key (ordered scanners).
    pub start_inclusive: bool,
    /// Include the stop sort key (ordered scanners).
    pub stop_inclusive: bool,
    /// Hash-key filter.
    pub hash_key_filter: (FilterType, Bytes),
    /// Sort-key filter.
    pub sort_key_filter: (FilterType, Bytes),
    /// Keys only.
    pub no_value: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            start_inclusive: true,
            stop_inclusive: false,
            hash_key_filter: (FilterType::NoFilter, Bytes::new()),
            sort_key_filter: (FilterType::NoFilter, Bytes::new()),
            no_value: false,
        }
    }
}

/// A record a scanner returns: (hash key, sort key, value).
pub type Record = (Bytes, Bytes, Bytes);

/// Iterates records in key order, one batch RPC at a time. Call [`Scanner::next`] until it
/// returns `None`.
#[derive(Debug)]
pub struct Scanner {
    table: Table,
    /// Partitions left, with the partition hash to send for each.
    partitions: VecDeque<(i32, u64)>,
    start: Bytes,
    stop: Bytes,
    opts: ScanOptions,
    full_scan: bool,
    /// Server context of the current partition: None = not started (or must restart).
    context: Option<i64>,
    buffer: VecDeque<KeyValue>,
    /// Last full key returned from the current partition, to resume after a lost context.
    last_key: Option<Bytes>,
}

impl Scanner {
    pub(crate) async fn ordered(
        table: Table,
        hash_key: &[u8],
        start: &[u8],
        stop: &[u8],
        opts: ScanOptions,
    ) -> Result<Self> {
        let bad = |e: pegasus_core::key::KeyError| ClientError::InvalidArgument(e.to_string());
        let start_key = encode_key(hash_key, start).map_err(bad)?;
        let (stop_key, opts) = if stop.is_empty() {
            let prefix = encode_key(hash_key, b"").map_err(bad)?;
            let end = next_prefix(&prefix).unwrap_or_else(|| vec![0xff, 0xff]);
            (
                end,
                ScanOptions {
                    stop_inclusive: false,
                    ..opts
                },
            )
        } else {
            (encode_key(hash_key, stop).map_err(bad)?, opts)
        };
        let hash = crc64(hash_key);
        let pidx = table.partition_of(hash).await?;
        Ok(Self {
            table,
            partitions: VecDeque::from([(pidx, hash)]),
            start: Bytes::from(start_key),
            stop: Bytes::from(stop_key),
            opts,
            full_scan: false,
            context: None,
            buffer: VecDeque::new(),
            last_key: None,
        })
    }

    pub(crate) fn unordered(table: Table, partitions: Vec<i32>, opts: ScanOptions) -> Self {
        Self {
            table,
            partitions: partitions
                .into_iter()
                .map(|p| (p, u64::try_from(p).unwrap_or(0)))
                .collect(),
            start: Bytes::from_static(&[0, 0]),
            stop: Bytes::from_static(&[0xff, 0xff]),
            opts: ScanOptions {
                start_inclusive: true,
                stop_inclusive: false,
                ..opts
            },
            full_scan: true,
            context: None,
            buffer: VecDeque::new(),
            last_key: None,
        }
    }

    /// The next record, or `None` when the scan is complete.
    pub async fn next(&mut self) -> Result<Option<Record>> {
        loop {
            if let Some(kv) = self.buffer.pop_front() {
                let (hk, sk) =
                    decode_key(&kv.key).map_err(|e| ClientError::BadReply(e.to_string()))?;
                let record = (kv.key.slice_ref(hk), kv.key.slice_ref(sk), kv.value);
                self.last_key = Some(kv.key);
                return Ok(Some(record));
            }
            let Some(&(pidx, hash)) = self.partitions.front() else {
                return Ok(None);
            };
            let resp = match self.context {
                Some(SCAN_CONTEXT_ID_COMPLETED) => {
                    self.partitions.pop_front();
                    self.context = None;
                    self.last_key = None;
                    continue;
                }
                Some(id) => {
                    let r = self
                        .scan_rpc(
                            pidx,
                            hash,
                            RrdbRequest::Scan(ScanRequest { context_id: id }),
                        )
                        .await?;
                    if r.0 == 1 {
                        // The server dropped the context (expired): resume after the last key.
                        self.context = None;
                        continue;
                    }
                    r
                }
                None => {
                    let (start, start_inclusive) = match &self.last_key {
                        Some(k) => (k.clone(), false),
                        None => (self.start.clone(), self.opts.start_inclusive),
                    };
                    let req = GetScannerRequest {
                        start_key: start,
                        stop_key: self.stop.clone(),
                        start_inclusive,
                        stop_inclusive: self.opts.stop_inclusive,
                        batch_size: self.opts.batch_size,
                        no_value: self.opts.no_value,
                        hash_key_filter_type: self.opts.hash_key_filter.0,
                        hash_key_filter_pattern: self.opts.hash_key_filter.1.clone(),
                        sort_key_filter_type: self.opts.sort_key_filter.0,
                        sort_key_filter_pattern: self.opts.sort_key_filter.1.clone(),
                        validate_partition_hash: self.full_scan.then_some(true),
                        return_expire_ts: None,
                        full_scan: self.full_scan.then_some(true),
                        only_return_count: false,
                    };
                    self.scan_rpc(pidx, hash, RrdbRequest::GetScanner(req))
                        .await?
                }
            };
            let (error, kvs, context_id) = resp;
            if error != 0 {
                return Err(ClientError::Storage(error));
            }
            self.buffer.extend(kvs);
            self.context = Some(context_id);
        }
    }

    async fn scan_rpc(
        &self,
        pidx: i32,
        hash: u64,
        req: RrdbRequest,
    ) -> Result<(i32, Vec<KeyValue>, i64)> {
        match self.table.call(pidx, hash, req).await? {
            RrdbResponse::GetScanner(r) | RrdbResponse::Scan(r) => {
                Ok((r.error, r.kvs, r.context_id))
            }
            other => Err(ClientError::BadReply(format!("unexpected {other:?}"))),
        }
    }

    /// Stops the scan and releases the server's context.
    pub async fn close(mut self) {
        if let (Some(id), Some(&(pidx, hash))) = (self.context.take(), self.partitions.front()) {
            if id >= 0 {
                let _ = self
                    .table
                    .call(pidx, hash, RrdbRequest::ClearScanner(id))
                    .await;
            }
        }
    }
}
