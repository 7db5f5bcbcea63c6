//! The rrdb service: reads served from the store behind the published read gate, writes
//! handed to the replica's driver, and the per-request metrics.

use super::*;

impl ReplicaServer {
    pub(super) async fn on_rrdb(
        self: &Arc<Self>,
        header: RequestHeader,
        req: RrdbRequest,
    ) -> Result<RrdbResponse, ErrorCode> {
        let gpid = Gpid::new(header.app_id, header.partition_index);
        let replica = self.replica(gpid).ok_or(ErrorCode::ObjectNotFound)?;
        if req.is_write() {
            return self.write(&replica, req).await;
        }
        let store = replica
            .readable_store(self.ctx.lease.get(), self.ctx.now_ms())
            .ok_or(ErrorCode::InvalidState)?;
        let app_id = gpid.app_id;
        let pidx = gpid.pidx;
        let server = self.ctx.addr.to_string();
        // Every read response names the partition and the server that answered.
        macro_rules! answered {
            ($variant:ident, $resp:expr) => {{
                let mut r = $resp;
                r.app_id = app_id;
                r.partition_index = pidx;
                r.server = server;
                RrdbResponse::$variant(r)
            }};
        }
        let serve = move |req: RrdbRequest| match req {
            RrdbRequest::Get(key) => answered!(Get, store.get(&key)),
            RrdbRequest::MultiGet(m) => answered!(MultiGet, store.multi_get(&m)),
            RrdbRequest::BatchGet(b) => answered!(BatchGet, store.batch_get(&b)),
            RrdbRequest::SortkeyCount(hk) => answered!(SortkeyCount, store.sortkey_count(&hk)),
            RrdbRequest::Ttl(key) => answered!(Ttl, store.ttl(&key)),
            RrdbRequest::GetScanner(g) => RrdbResponse::GetScanner(store.get_scanner(&g)),
            RrdbRequest::Scan(s) => RrdbResponse::Scan(store.scan(&s)),
            RrdbRequest::ClearScanner(id) => {
                store.clear_scanner(id);
                RrdbResponse::ClearScanner(UpdateResponse::default())
            }
            // Writes were handled above.
            other => RrdbResponse::Put(UpdateResponse {
                error: 4,
                app_id,
                partition_index: pidx,
                server: format!("unexpected {}", other.name()),
                ..UpdateResponse::default()
            }),
        };
        // Point reads run inline: a hop to the blocking pool costs more than a RocksDB get
        // (profiled in BENCHMARKS.md). Reads that iterate go to the blocking pool, off
        // the async workers.
        if matches!(req, RrdbRequest::Get(_) | RrdbRequest::Ttl(_)) {
            return Ok(serve(req));
        }
        let resp = tokio::task::spawn_blocking(move || serve(req))
            .await
            .map_err(|_| ErrorCode::Unknown)?;
        Ok(resp)
    }

    pub(super) async fn write(
        &self,
        replica: &Shared,
        req: RrdbRequest,
    ) -> Result<RrdbResponse, ErrorCode> {
        let name = req.name();
        let write = match req {
            RrdbRequest::Put(r) => WriteRequest::Put(r),
            RrdbRequest::MultiPut(r) => WriteRequest::MultiPut(r),
            RrdbRequest::Remove(k) => WriteRequest::Remove(k),
            RrdbRequest::MultiRemove(r) => WriteRequest::MultiRemove(r),
            RrdbRequest::Incr(r) => WriteRequest::Incr(r),
            RrdbRequest::CheckAndSet(r) => WriteRequest::CheckAndSet(r),
            RrdbRequest::CheckAndMutate(r) => WriteRequest::CheckAndMutate(r),
            _ => return Err(ErrorCode::InvalidParameters),
        };
        let update = encode_write(&write);
        if update.len() > self.ctx.cfg.max_write_bytes {
            return Err(ErrorCode::InvalidData);
        }
        // Backpressure: a replica that cannot keep up answers ERR_BUSY (clients back off)
        // instead of queueing without bound.
        let pending = &replica.pending_writes;
        if pending.fetch_add(1, std::sync::atomic::Ordering::AcqRel)
            >= self.ctx.cfg.max_pending_writes
        {
            pending.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            return Err(ErrorCode::Busy);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = replica.send(Input::Write { update, reply: tx });
        let resp = if sent {
            // Dropped unanswered: the replica went away, perhaps after proposing it — an
            // unknown outcome, not a refusal the client would retry.
            rx.await.map_err(|_| ErrorCode::Timeout)
        } else {
            Err(ErrorCode::InvalidState)
        };
        pending.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        let resp = resp??;
        let gpid = replica.gpid;
        let server = self.ctx.addr.to_string();
        let fill = |mut u: UpdateResponse| {
            u.app_id = gpid.app_id;
            u.partition_index = gpid.pidx;
            u.server = server.clone();
            u
        };
        Ok(match (name, resp) {
            ("RPC_RRDB_RRDB_PUT", WriteResponse::Update(u)) => RrdbResponse::Put(fill(u)),
            ("RPC_RRDB_RRDB_MULTI_PUT", WriteResponse::Update(u)) => {
                RrdbResponse::MultiPut(fill(u))
            }
            (_, WriteResponse::Update(u)) => RrdbResponse::Remove(fill(u)),
            (_, WriteResponse::MultiRemove(mut r)) => {
                r.app_id = gpid.app_id;
                r.partition_index = gpid.pidx;
                r.server = server;
                RrdbResponse::MultiRemove(r)
            }
            (_, WriteResponse::Incr(mut r)) => {
                r.app_id = gpid.app_id;
                r.partition_index = gpid.pidx;
                r.server = server;
                RrdbResponse::Incr(r)
            }
            (_, WriteResponse::CheckAndSet(r)) => {
                RrdbResponse::CheckAndSet(fill_cas(r, gpid, server))
            }
            (_, WriteResponse::CheckAndMutate(r)) => {
                RrdbResponse::CheckAndMutate(fill_cas(r, gpid, server))
            }
            (_, WriteResponse::SetDefaultTtl) => RrdbResponse::Put(UpdateResponse::default()),
        })
    }
}

pub(super) fn fill_cas(
    mut r: CheckAndSetResponse,
    gpid: Gpid,
    server: String,
) -> CheckAndSetResponse {
    r.app_id = gpid.app_id;
    r.partition_index = gpid.pidx;
    r.server = server;
    r
}

/// `RPC_RRDB_RRDB_MULTI_GET` → `multi_get`.
pub(super) fn op_label(rpc: &'static str) -> &'static str {
    match rpc {
        "RPC_RRDB_RRDB_PUT" => "put",
        "RPC_RRDB_RRDB_MULTI_PUT" => "multi_put",
        "RPC_RRDB_RRDB_REMOVE" => "remove",
        "RPC_RRDB_RRDB_MULTI_REMOVE" => "multi_remove",
        "RPC_RRDB_RRDB_INCR" => "incr",
        "RPC_RRDB_RRDB_CHECK_AND_SET" => "check_and_set",
        "RPC_RRDB_RRDB_CHECK_AND_MUTATE" => "check_and_mutate",
        "RPC_RRDB_RRDB_GET" => "get",
        "RPC_RRDB_RRDB_MULTI_GET" => "multi_get",
        "RPC_RRDB_RRDB_BATCH_GET" => "batch_get",
        "RPC_RRDB_RRDB_SORTKEY_COUNT" => "sortkey_count",
        "RPC_RRDB_RRDB_TTL" => "ttl",
        "RPC_RRDB_RRDB_GET_SCANNER" => "get_scanner",
        "RPC_RRDB_RRDB_SCAN" => "scan",
        "RPC_RRDB_RRDB_CLEAR_SCANNER" => "clear_scanner",
        _ => "other",
    }
}

thread_local! {
    /// Metric handles per (operation, table), registered once per worker thread: a lookup
    /// here costs less than building the label set for every request.
    static REQUEST_METRICS: std::cell::RefCell<RequestHandles> =
        std::cell::RefCell::new(HashMap::new());
}

/// Records one served request: its count and latency per table, and its error code if it
/// failed. Public so `pegasus bench metrics` can time exactly what every request pays.
/// Handles are cached per thread, so the recorder must be installed before a thread
/// records (the servers install it at start-up).
pub fn record_request(op: &'static str, app_id: i32, took: Duration, error: Option<ErrorCode>) {
    REQUEST_METRICS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let (count, latency) = cache.entry((op, app_id)).or_insert_with(|| {
            // Per table (its id); per-partition detail is in the JSON view and the
            // RocksDB gauges, keeping request series few.
            let app = app_id.to_string();
            (
                metrics::counter!("pegasus_replica_requests_total", "op" => op, "app_id" => app.clone()),
                metrics::histogram!("pegasus_replica_request_duration_seconds", "op" => op, "app_id" => app),
            )
        });
        count.increment(1);
        latency.record(took.as_secs_f64());
    });
    if let Some(code) = error {
        metrics::counter!(
            "pegasus_replica_request_errors_total",
            "op" => op,
            "code" => code.name()
        )
        .increment(1);
    }
}
