//! The link to meta: beacons (and the lease they bring back), disk reports, and the
//! periodic configuration sync.

use super::*;

/// The node's lease, shared by the beacon loop (which renews it) and every reader and
/// replica (which check it). Renewals are serialized by the mutex; readers use the atomics:
/// the deadline is stored after the epoch (release) and loaded before it (acquire), so a
/// reader that sees a deadline granted after a lapse sees the new epoch too, and refuses
/// a grant from before the lapse.
#[derive(Debug, Default)]
pub(crate) struct LeaseCell {
    renewals: Mutex<NodeLease>,
    epoch: AtomicU64,
    until_ms: AtomicU64,
}

impl LeaseCell {
    /// Meta acknowledged the beacon sent at `sent_ms` until `until_ms`; it arrived at
    /// `now_ms`.
    pub(crate) fn renew(&self, sent_ms: u64, until_ms: u64, now_ms: u64) {
        let mut l = match self.renewals.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        l.renew(sent_ms, until_ms, now_ms);
        self.epoch.store(l.epoch, Ordering::Release);
        self.until_ms.store(l.until_ms, Ordering::Release);
    }

    /// The lease now.
    pub(crate) fn get(&self) -> NodeLease {
        let until_ms = self.until_ms.load(Ordering::Acquire);
        let epoch = self.epoch.load(Ordering::Acquire);
        NodeLease { epoch, until_ms }
    }
}

pub(super) fn reports(server: &ReplicaServer) -> Vec<pegasus_control::ReplicaReport> {
    server
        .replica_list()
        .iter()
        .filter(|r| !r.is_closed())
        .map(|r| r.report().1)
        .collect()
}

pub(super) async fn beacon_loop(server: std::sync::Weak<ReplicaServer>) {
    loop {
        let Some(s) = server.upgrade() else { return };
        let ctx = s.ctx.clone();
        let interval = Duration::from_millis(ctx.fd.fd_beacon_interval_ms);
        let sent_ms = ctx.now_ms();
        let mut by_status: BTreeMap<&'static str, u64> = BTreeMap::new();
        for r in s.replica_list() {
            let name = match r.report().0 {
                Status::Primary => "primary",
                Status::Secondary => "secondary",
                Status::PotentialSecondary => "potential_secondary",
                Status::Inactive => "inactive",
                Status::Error => "error",
            };
            *by_status.entry(name).or_default() += 1;
        }
        by_status.insert("reopening", s.pending_reopen_count() as u64);
        for status in [
            "primary",
            "secondary",
            "potential_secondary",
            "inactive",
            "error",
            "reopening",
        ] {
            let n = by_status.get(status).copied().unwrap_or(0);
            metrics::gauge!("pegasus_replica_replicas", "status" => status).set(n as f64);
        }
        let beacon = Beacon {
            node: ctx.me,
            sent_ms,
            start_ms: ctx.start_ms,
            replicas: reports(&s),
            disk: ctx.disk.report(),
        };
        drop(s);
        if let Some(target) = ctx.meta.target() {
            let ack: Result<BeaconAck, _> = internal::call(
                &ctx.session(target),
                meta_names::BEACON,
                &beacon,
                Duration::from_millis(ctx.fd.fd_beacon_interval_ms.max(500) * 2),
            )
            .await;
            match ack {
                Ok(a) if a.is_leader && a.lease_ms > 0 => {
                    ctx.meta.set_leader(Some(target));
                    ctx.disk.set_cluster(a.disk_insufficient);
                    // One lease for the node: readers check it, and each replica takes
                    // it with its next round (no round per replica per beacon).
                    let until_ms = a.sent_ms.saturating_add(a.lease_ms);
                    ctx.lease.renew(a.sent_ms, until_ms, ctx.now_ms());
                }
                Ok(a) => ctx.meta.set_leader(a.leader.filter(|l| *l != target)),
                Err(_) => ctx.meta.set_leader(None),
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// Checks the data disk every `disk_stat_interval_ms`: the figures go to meta with the next
/// beacon and to metrics; while the disk is insufficient, set-aside copies are removed.
pub(super) async fn disk_loop(server: std::sync::Weak<ReplicaServer>) {
    loop {
        let Some(s) = server.upgrade() else { return };
        let ctx = s.ctx.clone();
        drop(s);
        let ratio = ctx.cfg.disk_min_available_space_ratio;
        let checked = if crate::failpoint::fire(crate::failpoint::FailPoint::DiskFull) {
            // Test-only: a full disk, as statvfs would report it.
            let capacity = ctx.disk.report().capacity_bytes.max(1 << 30);
            Ok(disk::report(capacity, 0, ratio.max(1)))
        } else {
            let root = ctx.root.clone();
            tokio::task::spawn_blocking(move || disk::check(&root, ratio))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        };
        match checked {
            Ok(report) => {
                let was = ctx.disk.insufficient();
                ctx.disk.set(report);
                metrics::gauge!("pegasus_replica_disk_capacity_bytes")
                    .set(report.capacity_bytes as f64);
                metrics::gauge!("pegasus_replica_disk_available_bytes")
                    .set(report.available_bytes as f64);
                metrics::gauge!("pegasus_replica_disk_insufficient").set(if report.insufficient {
                    1.0
                } else {
                    0.0
                });
                if report.insufficient != was {
                    if report.insufficient {
                        tracing::warn!(
                            "data disk insufficient: {} of {} bytes available, below \
                             disk_min_available_space_ratio = {ratio}%: no new replicas here, \
                             primaries move to copies with room",
                            report.available_bytes,
                            report.capacity_bytes
                        );
                    } else {
                        tracing::info!(
                            "data disk has room again: {} of {} bytes available",
                            report.available_bytes,
                            report.capacity_bytes
                        );
                    }
                }
                if report.insufficient {
                    let root = ctx.root.clone();
                    let removed =
                        tokio::task::spawn_blocking(move || disk::collect_failed_copies(&root))
                            .await
                            .unwrap_or(0);
                    if removed > 0 {
                        tracing::warn!(
                            "removed {removed} set-aside copies of failed replicas: the disk \
                             is short of space"
                        );
                    }
                }
            }
            Err(e) => tracing::warn!("cannot check the data disk: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(ctx.cfg.disk_stat_interval_ms)).await;
    }
}

pub(super) async fn config_sync_loop(server: std::sync::Weak<ReplicaServer>) {
    loop {
        let Some(s) = server.upgrade() else { return };
        let ctx = s.ctx.clone();
        let req = ConfigSyncRequest {
            node: ctx.me,
            replicas: reports(&s),
        };
        drop(s);
        let resp: Result<ConfigSyncResponse, _> =
            ctx.meta_call(meta_names::CONFIG_SYNC, &req).await;
        let mut interval = Duration::from_millis(ctx.cfg.config_sync_interval_ms);
        match resp {
            Ok(r) => {
                let Some(s) = server.upgrade() else { return };
                for p in r.partitions {
                    s.on_partition(p);
                }
                for gpid in r.gc {
                    if let Some(rep) = s.replica(gpid) {
                        rep.send(Input::Close);
                        let deadline = Instant::now() + Duration::from_secs(10);
                        while !rep.is_closed() && Instant::now() < deadline {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    tracing::info!("replica {gpid:?}: table purged, moving it to garbage");
                    let _ = blocking(|| layout::retire(&ctx.root, gpid, "gar", wall_ms()));
                }
            }
            // Meta not reachable or not leading yet: try again soon.
            Err(_) => interval = Duration::from_millis(500),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = ctx.sync_now.notified() => {}
        }
    }
}
