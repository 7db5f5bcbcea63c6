//! The data disk: free space checked on a timer, reported to meta in every beacon, and what
//! an insufficient disk changes on this node — set-aside copies are collected, a primary
//! refuses writes only when no copy in its group has room, and transient `ENOSPC` failures
//! keep waiting for space instead of escalating to a rebuild.
//!
//! Meta does the rest (its guardian, in the meta server): no new replica or learner on this
//! node, its primaries handed to healthy secondaries, and the node filled again once space
//! returns.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use pegasus_control::DiskReport;
use pegasus_core::config::NodeId;

/// This node's disk, as the last check found it, and the cluster's insufficient nodes as
/// the meta leader last said.
#[derive(Debug, Default)]
pub struct DiskState {
    report: Mutex<DiskReport>,
    insufficient: AtomicBool,
    cluster: Mutex<BTreeSet<NodeId>>,
}

impl DiskState {
    /// The last report.
    pub fn report(&self) -> DiskReport {
        *self.report.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this node's disk is below `disk_min_available_space_ratio`.
    pub fn insufficient(&self) -> bool {
        self.insufficient.load(Ordering::Acquire)
    }

    /// Records a check.
    pub fn set(&self, report: DiskReport) {
        *self.report.lock().unwrap_or_else(|p| p.into_inner()) = report;
        self.insufficient
            .store(report.insufficient, Ordering::Release);
    }

    /// Records the leader's list of insufficient nodes (from a beacon ack).
    pub fn set_cluster(&self, nodes: Vec<NodeId>) {
        *self.cluster.lock().unwrap_or_else(|p| p.into_inner()) = nodes.into_iter().collect();
    }

    /// Whether a write to a primary on this node must be refused with
    /// `ERR_DISK_INSUFFICIENT`: this disk is insufficient and so is the disk of every
    /// secondary (or there is none) — no copy of the group could take the primary's role.
    /// While a healthy secondary exists, meta is moving the role there and the write goes on.
    pub fn refuses_writes(&self, secondaries: &[NodeId]) -> bool {
        if !self.insufficient() {
            return false;
        }
        let cluster = self.cluster.lock().unwrap_or_else(|p| p.into_inner());
        secondaries.iter().all(|n| cluster.contains(n))
    }
}

/// Checks the file system holding `dir`. `min_ratio_pct` is
/// `disk_min_available_space_ratio` (percent; 0 never calls a disk insufficient).
pub fn check(dir: &Path, min_ratio_pct: u32) -> std::io::Result<DiskReport> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    let unit = st.fragment_size().max(1);
    let capacity_bytes = st.blocks().saturating_mul(unit);
    let available_bytes = st.blocks_available().saturating_mul(unit);
    Ok(report(capacity_bytes, available_bytes, min_ratio_pct))
}

/// A report from the figures.
pub fn report(capacity_bytes: u64, available_bytes: u64, min_ratio_pct: u32) -> DiskReport {
    let insufficient = min_ratio_pct > 0
        && u128::from(available_bytes) * 100
            < u128::from(capacity_bytes) * u128::from(min_ratio_pct);
    DiskReport {
        capacity_bytes,
        available_bytes,
        insufficient,
    }
}

/// Removes the set-aside copies of failed replicas (`replica/<app>.<pidx>.<ms>.err`): kept
/// for inspection only, they must not hold space a full disk needs. Returns how many.
pub fn collect_failed_copies(root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(root.join("replica")) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".err") {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!("cannot remove the failed copy {name}: {e}"),
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_below_the_ratio_is_insufficient() {
        assert!(report(1000, 99, 10).insufficient);
        assert!(!report(1000, 100, 10).insufficient);
        assert!(!report(1000, 0, 0).insufficient, "0 turns the check off");
        assert!(
            !report(u64::MAX, u64::MAX / 2, 10).insufficient,
            "no overflow"
        );
    }

    #[test]
    fn a_primary_refuses_writes_only_when_no_secondary_has_room() {
        let d = DiskState::default();
        let (a, b) = (NodeId(1), NodeId(2));
        assert!(!d.refuses_writes(&[]), "a healthy disk never refuses");
        d.set(report(1000, 0, 10));
        d.set_cluster(vec![a]);
        assert!(!d.refuses_writes(&[a, b]), "b can take the role");
        assert!(d.refuses_writes(&[a]), "every secondary is short too");
        assert!(d.refuses_writes(&[]), "no secondary at all");
    }

    #[test]
    fn the_real_data_disk_reports_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let r = check(dir.path(), 10).unwrap();
        assert!(
            r.capacity_bytes > 0 && r.available_bytes <= r.capacity_bytes,
            "{r:?}"
        );
    }

    #[test]
    fn failed_copies_are_collected_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let replica = dir.path().join("replica");
        std::fs::create_dir_all(replica.join("1.0.123.err")).unwrap();
        std::fs::create_dir_all(replica.join("1.1")).unwrap();
        assert_eq!(collect_failed_copies(dir.path()), 1);
        assert!(replica.join("1.1").exists());
        assert!(!replica.join("1.0.123.err").exists());
    }
}
