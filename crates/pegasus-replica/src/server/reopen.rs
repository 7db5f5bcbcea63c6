//! Replicas closed by a transient failure (out of descriptors, memory or disk space; a
//! learned checkpoint that could not be fetched): reopened in place from their own files
//! with backoff, counted in a row, and set aside to be rebuilt only past
//! `transient_error_max_retries` — never for a full disk (ARCHITECTURE.md, "Which local
//! errors do what").

use super::*;

/// A transient failure longer ago than this no longer counts toward
/// `transient_error_max_retries`.
const TRANSIENT_STREAK_RESET: Duration = Duration::from_secs(600);
/// The first wait before a replica closed by a transient failure is reopened; it doubles
/// with each failure in a row, up to [`REOPEN_BACKOFF_MAX`].
const REOPEN_BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// The longest wait before a reopen.
const REOPEN_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The wait before the `attempt`-th reopen in a row (1-based): 1 s, 2 s, 4 s, … ≤ 30 s.
fn reopen_backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(5);
    REOPEN_BACKOFF_FIRST
        .saturating_mul(1 << doublings)
        .min(REOPEN_BACKOFF_MAX)
}

/// Replicas closed by a transient resource error (ARCHITECTURE.md, "which local errors do
/// what"), and how often each failed that way lately.
#[derive(Debug, Default)]
pub(super) struct Reopens {
    /// Per partition: transient failures in a row, and when the last one happened.
    streaks: HashMap<Gpid, (u32, Instant)>,
    /// Partitions closed and waiting to be reopened. While a partition is here nothing
    /// else opens it (meta's configurations, learner invitations): the wait is the point.
    pending: BTreeMap<Gpid, PendingReopen>,
}

#[derive(Debug)]
pub(super) struct PendingReopen {
    /// The failure in a row this wait follows (1-based).
    attempt: u32,
    /// What failed.
    reason: String,
    /// When the next attempt is due.
    due: Instant,
    /// The closed replica (its last report, table facts and old store, for the admin view
    /// and to wait until RocksDB has let go of the directory).
    old: Option<Arc<Shared>>,
}

impl Reopens {
    /// Counts one more transient failure of `gpid` at `now`: `Ok(attempt)` to reopen it
    /// once more, `Err(failures)` when that is more than `max` in a row.
    fn count(&mut self, gpid: Gpid, now: Instant, max: u32) -> Result<u32, u32> {
        let previous = self
            .streaks
            .get(&gpid)
            .filter(|(_, last)| now.saturating_duration_since(*last) <= TRANSIENT_STREAK_RESET)
            .map_or(0, |(n, _)| *n);
        let n = previous.saturating_add(1);
        if n > max {
            self.streaks.remove(&gpid);
            return Err(n);
        }
        self.streaks.insert(gpid, (n, now));
        Ok(n)
    }
}

impl ReplicaServer {
    /// Whether `gpid` waits to be reopened (nothing else may open it meanwhile).
    pub(super) fn is_pending_reopen(&self, gpid: Gpid) -> bool {
        self.reopens
            .lock()
            .is_ok_and(|r| r.pending.contains_key(&gpid))
    }

    pub(super) fn on_replica_exit(self: &Arc<Self>, gpid: Gpid, exit: Exit) {
        let exit = match exit {
            Exit::Reopen(reason) => {
                if self.schedule_reopen(gpid, reason) {
                    return;
                }
                Exit::Failed
            }
            other => other,
        };
        if exit == Exit::Failed {
            // Keep the failed copy for inspection (moved aside before the replica leaves
            // the map, so nothing reopens it meanwhile); a fresh replica re-learns in its
            // place once meta's next configuration names this node.
            if let Err(e) = layout::retire(&self.ctx.root, gpid, "err", wall_ms()) {
                tracing::error!("replica {gpid:?}: cannot move the failed copy aside: {e}");
            }
            // The new copy starts with no transient failures behind it.
            if let Ok(mut r) = self.reopens.lock() {
                r.streaks.remove(&gpid);
            }
        }
        self.forget_closed(gpid);
    }

    /// A replica closed (or not opened, at start) after a transient resource error: keep its
    /// directory and reopen it after a backoff, on the runtime (this runs on the replica's
    /// own thread). False when it failed that way too often in a row: then it is rebuilt
    /// like a failed one.
    pub(super) fn schedule_reopen(self: &Arc<Self>, gpid: Gpid, reason: String) -> bool {
        let max = self.ctx.cfg.transient_error_max_retries;
        let now = Instant::now();
        let old = self.replica(gpid).filter(|r| r.is_closed());
        let bound = self.transient_bound(&reason);
        let Ok(mut reopens) = self.reopens.lock() else {
            return false;
        };
        let attempt = match reopens.count(gpid, now, bound) {
            Ok(attempt) => attempt,
            Err(failures) => {
                tracing::error!(
                    "replica {gpid:?}: {failures} transient failures in a row (more than \
                     transient_error_max_retries = {max}), the last: {reason}; it is set aside \
                     and rebuilt"
                );
                return false;
            }
        };
        let delay = reopen_backoff(attempt);
        tracing::warn!(
            "replica {gpid:?}: a transient error ({reason}); reopening it in place in {delay:?} \
             (failure {attempt} of at most {max} in a row)"
        );
        // Pending before the closed replica leaves the map, so nothing else opens it meanwhile.
        reopens.pending.insert(
            gpid,
            PendingReopen {
                attempt,
                reason,
                due: now + delay,
                old,
            },
        );
        drop(reopens);
        self.forget_closed(gpid);
        self.reopen_later(gpid, delay);
        true
    }

    pub(super) fn forget_closed(&self, gpid: Gpid) {
        if let Ok(mut m) = self.replicas.lock() {
            if m.get(&gpid).is_some_and(|r| r.is_closed()) {
                m.remove(&gpid);
            }
        }
    }

    pub(super) fn reopen_later(self: &Arc<Self>, gpid: Gpid, delay: Duration) {
        let server = Arc::downgrade(self);
        self.ctx.rt.spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(s) = server.upgrade() {
                s.reopen(gpid);
            }
        });
    }

    /// Reopens a replica closed by a transient error from its own directory: the crash
    /// restart path (the log replays what the store lacks; a primary asks meta for a new
    /// ballot and keeps its data, a secondary catches up from its primary).
    pub(super) fn reopen(self: &Arc<Self>, gpid: Gpid) {
        let (attempt, held) = match self.reopens.lock() {
            Ok(mut r) => {
                if self.stopping.load(Ordering::SeqCst) {
                    r.pending.remove(&gpid);
                    return;
                }
                let Some(p) = r.pending.get(&gpid) else {
                    return;
                };
                let held = p
                    .old
                    .as_ref()
                    .is_some_and(|old| old.store_handle().strong_count() > 0);
                (p.attempt, held)
            }
            Err(_) => return,
        };
        if held {
            // A reader or a background compaction still has the old store open, and RocksDB
            // refuses to open a directory this process holds: wait (not a failure).
            let delay = reopen_backoff(attempt);
            tracing::info!(
                "replica {gpid:?}: its old store is still in use; reopening in {delay:?}"
            );
            self.set_due(gpid, delay);
            self.reopen_later(gpid, delay);
            return;
        }
        match self.open_replica_now(gpid, None) {
            Ok(shared) => {
                let reason = self
                    .reopens
                    .lock()
                    .ok()
                    .and_then(|mut r| r.pending.remove(&gpid))
                    .map(|p| p.reason)
                    .unwrap_or_default();
                metrics::counter!("pegasus_replica_reopens_total").increment(1);
                tracing::info!("replica {gpid:?} reopened in place (after: {reason})");
                // Meta's configuration now rather than at the next sync: a reopened primary
                // asks for a new ballot only once it has it, and serves nothing before.
                self.ctx.sync_now.notify_one();
                if self.stopping.load(Ordering::SeqCst) {
                    shared.send(Input::Close);
                }
            }
            Err(e) if partition::is_transient_io(&e) => {
                metrics::counter!("pegasus_replica_transient_errors_total", "op" => "reopen")
                    .increment(1);
                let max = self.ctx.cfg.transient_error_max_retries;
                let bound = self.transient_bound(&e.to_string());
                let counted = self
                    .reopens
                    .lock()
                    .map(|mut r| r.count(gpid, Instant::now(), bound));
                match counted {
                    Ok(Ok(attempt)) => {
                        let delay = reopen_backoff(attempt);
                        tracing::warn!(
                            "replica {gpid:?}: reopening failed with a transient error ({e}); \
                             trying again in {delay:?} (failure {attempt} of at most {max} in a row)"
                        );
                        if let Ok(mut r) = self.reopens.lock() {
                            if let Some(p) = r.pending.get_mut(&gpid) {
                                p.attempt = attempt;
                                p.reason = format!("reopen: {e}");
                            }
                        }
                        self.set_due(gpid, delay);
                        self.reopen_later(gpid, delay);
                    }
                    Ok(Err(failures)) => self.give_up_reopening(
                        gpid,
                        &format!(
                            "{failures} transient failures in a row (more than \
                             transient_error_max_retries = {max}), the last while reopening: {e}"
                        ),
                    ),
                    Err(_) => self.give_up_reopening(gpid, &e.to_string()),
                }
            }
            Err(e) => self.give_up_reopening(gpid, &format!("it does not reopen: {e}")),
        }
    }

    /// How many transient failures in a row a replica may have before it is rebuilt after
    /// failing with `what`. Out of space, never: a rebuild would fail the same way, and
    /// re-learning the whole partition onto a full disk is the storm to avoid — it waits
    /// for room instead. That holds when the failure says so and when the disk is short now
    /// (the periodic check may not have seen it fill yet). Chaos row 13 rebuilt copies
    /// whose ninth ENOSPC, while reopening, came just as the filler let go of the space.
    pub(super) fn transient_bound(&self, what: &str) -> u32 {
        if pegasus_storage::error::names_disk_full(what) || self.ctx.disk.insufficient() {
            return u32::MAX;
        }
        let ratio = self.ctx.cfg.disk_min_available_space_ratio.max(1);
        if disk::check(&self.ctx.root, ratio).is_ok_and(|d| d.insufficient) {
            return u32::MAX;
        }
        self.ctx.cfg.transient_error_max_retries
    }

    pub(super) fn set_due(&self, gpid: Gpid, delay: Duration) {
        if let Ok(mut r) = self.reopens.lock() {
            if let Some(p) = r.pending.get_mut(&gpid) {
                p.due = Instant::now() + delay;
            }
        }
    }

    /// A replica that cannot be reopened is set aside like one that fails to open at start;
    /// a fresh copy re-learns once meta's next configuration names this node.
    pub(super) fn give_up_reopening(&self, gpid: Gpid, why: &str) {
        tracing::error!("replica {gpid:?}: {why}; it is set aside and rebuilt");
        if let Err(e) = blocking(|| layout::retire(&self.ctx.root, gpid, "err", wall_ms())) {
            tracing::error!("replica {gpid:?}: cannot move the failed copy aside: {e}");
        }
        if let Ok(mut r) = self.reopens.lock() {
            r.pending.remove(&gpid);
            r.streaks.remove(&gpid);
        }
    }

    /// The admin view of the replicas waiting to be reopened.
    pub(super) fn pending_reopens_json(&self) -> Vec<serde_json::Value> {
        let Ok(r) = self.reopens.lock() else {
            return Vec::new();
        };
        let now = Instant::now();
        let max = self.ctx.cfg.transient_error_max_retries;
        r.pending
            .iter()
            .map(|(gpid, p)| {
                let (status, rep) = p.old.as_ref().map(|o| o.report()).unzip();
                serde_json::json!({
                    "app_id": gpid.app_id,
                    "partition_index": gpid.pidx,
                    "table": p.old.as_ref().map(|o| o.app().name).unwrap_or_default(),
                    "status": "Reopening",
                    "ballot": rep.map(|r| r.ballot),
                    "last_committed_decree": rep.map(|r| r.last_committed),
                    "last_prepared_decree": rep.map(|r| r.last_prepared),
                    "last_timestamp_us": p.old.as_ref().map_or(0, |o| o.last_timestamp_us()),
                    "reopening": {
                        "attempt": p.attempt,
                        "max_attempts": max,
                        "reason": p.reason,
                        "status_before": status.map(|s| format!("{s:?}")),
                        "next_attempt_in_ms": u64::try_from(
                            p.due.saturating_duration_since(now).as_millis()
                        ).unwrap_or(u64::MAX),
                    },
                })
            })
            .collect()
    }

    pub(super) fn pending_reopen_count(&self) -> usize {
        self.reopens.lock().map_or(0, |r| r.pending.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_backoff_doubles_from_one_second_up_to_thirty() {
        let secs: Vec<u64> = (1..=8).map(|n| reopen_backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(reopen_backoff(0), Duration::from_secs(1));
        assert_eq!(reopen_backoff(u32::MAX), REOPEN_BACKOFF_MAX);
    }

    #[test]
    fn transient_failures_in_a_row_are_bounded_and_forgotten_after_ten_quiet_minutes() {
        let gpid = Gpid::new(1, 0);
        let other = Gpid::new(1, 1);
        let mut r = Reopens::default();
        let t0 = Instant::now();
        assert_eq!(r.count(gpid, t0, 3), Ok(1));
        assert_eq!(r.count(gpid, t0 + Duration::from_secs(1), 3), Ok(2));
        assert_eq!(r.count(other, t0 + Duration::from_secs(1), 3), Ok(1));
        assert_eq!(r.count(gpid, t0 + Duration::from_secs(3), 3), Ok(3));
        // The fourth in a row is one too many: rebuild, and a new copy starts afresh.
        assert_eq!(r.count(gpid, t0 + Duration::from_secs(7), 3), Err(4));
        assert_eq!(r.count(gpid, t0 + Duration::from_secs(8), 3), Ok(1));
        // More than ten minutes after the previous failure, the count starts again.
        assert_eq!(r.count(gpid, t0 + Duration::from_secs(9), 3), Ok(2));
        let later = t0 + Duration::from_secs(9) + TRANSIENT_STREAK_RESET + Duration::from_secs(1);
        assert_eq!(r.count(gpid, later, 3), Ok(1));
        // 0 retries: every transient failure rebuilds, as before reopening existed.
        assert_eq!(Reopens::default().count(gpid, t0, 0), Err(1));
    }
}
