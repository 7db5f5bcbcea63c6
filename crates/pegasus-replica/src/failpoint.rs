//! Fail points: named places in the replica server where a test makes the next few
//! operations fail, the way TiKV's `fail` points and Pegasus's `inject_write_error_for_test`
//! do — so the harness can check that a replica whose disk or store errs poisons itself,
//! is removed and re-learns, that a replica that merely ran out of descriptors or disk
//! space is reopened in place instead, and that no client sees a silent loss.
//!
//! - `plog_append`, `plog_sync`: a mutation-log append / fsync fails with EIO (rebuild);
//! - `storage_write`: applying a committed mutation fails as corruption (rebuild);
//! - `replica_panic`: the replica thread panics while applying (rebuild);
//! - `storage_flush_emfile`: the timed RocksDB flush fails with EMFILE (reopen in place);
//! - `plog_append_enospc`: a mutation-log append fails with ENOSPC (reopen in place);
//! - `learn_fetch`: fetching a learned checkpoint fails (the learner restarts from its own
//!   files and learns again);
//! - `disk_full`: the data disk's next checks find it full (0 bytes available), so the node
//!   reports an insufficient disk to meta (one hit per `disk_stat_interval_ms`).
//!
//! They can only be armed in a server started with `[replica_server] enable_fail_points =
//! true` (a test-only switch), through `POST /failpoint?name=<point>&times=<n>` on its admin
//! port (`name=net_delay&ms=<base>&jitter=<ms>` delays every request the server sends;
//! `name=off` disarms everything). Unarmed, a check is one relaxed atomic load.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// A place that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// A mutation-log append fails with EIO.
    PlogAppend,
    /// A mutation-log fsync fails with EIO.
    PlogSync,
    /// Applying a committed mutation to the store fails as corruption.
    StorageWrite,
    /// The replica thread panics while applying a committed mutation (a bug stands in: the
    /// replica must fail over exactly as after an I/O error, never wedge).
    ReplicaPanic,
    /// The timed RocksDB flush fails with EMFILE, as when the process is out of
    /// descriptors (a transient error: the replica is reopened in place).
    StorageFlushEmfile,
    /// A mutation-log append fails with ENOSPC, as on a full disk (a transient error: the
    /// replica is reopened in place).
    PlogAppendEnospc,
    /// The data disk's free-space check finds 0 bytes available.
    DiskFull,
    /// Fetching a learned checkpoint from the primary fails.
    LearnFetch,
}

const POINTS: [(FailPoint, &str); 8] = [
    (FailPoint::PlogAppend, "plog_append"),
    (FailPoint::PlogSync, "plog_sync"),
    (FailPoint::StorageWrite, "storage_write"),
    (FailPoint::ReplicaPanic, "replica_panic"),
    (FailPoint::StorageFlushEmfile, "storage_flush_emfile"),
    (FailPoint::PlogAppendEnospc, "plog_append_enospc"),
    (FailPoint::DiskFull, "disk_full"),
    (FailPoint::LearnFetch, "learn_fetch"),
];

/// A set of fail points; the process has one, [`GLOBAL`].
#[derive(Debug)]
pub struct FailPoints {
    enabled: AtomicBool,
    remaining: [AtomicU32; POINTS.len()],
}

/// The process's fail points.
pub static GLOBAL: FailPoints = FailPoints::new();

impl std::str::FromStr for FailPoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        POINTS
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(p, _)| *p)
            .ok_or_else(|| format!("unknown fail point {s:?}"))
    }
}

impl Default for FailPoints {
    fn default() -> Self {
        Self::new()
    }
}

impl FailPoints {
    /// All disarmed, arming refused.
    pub const fn new() -> Self {
        Self {
            enabled: AtomicBool::new(false),
            remaining: [const { AtomicU32::new(0) }; POINTS.len()],
        }
    }

    fn slot(&self, point: FailPoint) -> Option<&AtomicU32> {
        // `POINTS` lists the points in declaration order, so the discriminant is the index.
        self.remaining.get(point as usize)
    }

    /// Whether arming is allowed.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Allows arming (the server's configuration asked for it).
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Release);
    }

    /// Makes the next `times` operations at `point` fail (0 disarms it).
    pub fn arm(&self, point: FailPoint, times: u32) -> Result<(), String> {
        if !self.enabled.load(Ordering::Acquire) {
            return Err(
                "fail points are off: set [replica_server] enable_fail_points = true".into(),
            );
        }
        if let Some(s) = self.slot(point) {
            s.store(times, Ordering::Release);
        }
        Ok(())
    }

    /// Disarms every point.
    pub fn disarm_all(&self) {
        for s in &self.remaining {
            s.store(0, Ordering::Release);
        }
    }

    /// Whether the operation at `point` must fail now (uses up one firing).
    pub fn fire(&self, point: FailPoint) -> bool {
        let Some(s) = self.slot(point) else {
            return false;
        };
        if s.load(Ordering::Relaxed) == 0 {
            return false;
        }
        s.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Firings left per point, as JSON.
    pub fn status_json(&self) -> String {
        let fields: Vec<String> = POINTS
            .iter()
            .zip(self.remaining.iter())
            .map(|((_, name), n)| format!("\"{name}\":{}", n.load(Ordering::Acquire)))
            .collect();
        format!(
            "{{\"enabled\":{},{}}}",
            self.enabled.load(Ordering::Acquire),
            fields.join(",")
        )
    }
}

/// Whether the operation at `point` of this process must fail now.
pub fn fire(point: FailPoint) -> bool {
    GLOBAL.fire(point)
}

/// The error an armed I/O point returns.
pub fn eio(point: FailPoint) -> std::io::Error {
    let name = POINTS
        .iter()
        .find(|(p, _)| *p == point)
        .map_or("?", |(_, n)| n);
    std::io::Error::new(
        std::io::Error::from_raw_os_error(5).kind(),
        format!("fail point {name}: injected EIO"),
    )
}

/// The error an armed resource point returns: a real OS error number, so the replica
/// classifies it exactly as it would the operating system's.
pub fn os_error(code: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_armed_point_fails_exactly_the_asked_number_of_times() {
        let fp = FailPoints::new();
        assert!(
            fp.arm(FailPoint::PlogSync, 1).is_err(),
            "arming before enabling"
        );
        fp.enable();
        assert_eq!(fp.arm(FailPoint::StorageWrite, 2), Ok(()));
        assert!(!fp.fire(FailPoint::PlogSync));
        assert!(fp.fire(FailPoint::StorageWrite));
        assert!(fp.fire(FailPoint::StorageWrite));
        assert!(!fp.fire(FailPoint::StorageWrite));
        assert_eq!(fp.arm(FailPoint::PlogAppend, 5), Ok(()));
        assert!(fp.status_json().contains("\"plog_append\":5"));
        fp.disarm_all();
        assert!(!fp.fire(FailPoint::PlogAppend));
        assert_eq!("plog_sync".parse::<FailPoint>(), Ok(FailPoint::PlogSync));
        assert!("nope".parse::<FailPoint>().is_err());
        for (point, name) in POINTS {
            assert_eq!(name.parse::<FailPoint>(), Ok(point));
            assert_eq!(fp.arm(point, 1), Ok(()));
            assert!(fp.fire(point), "{name} fires in its own slot");
            assert!(!fp.fire(point));
        }
    }
}
