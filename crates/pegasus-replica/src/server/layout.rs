//! On-disk layout of a replica server:
//!
//! ```text
//! <data_dir>/replica/<app_id>.<pidx>.pegasus/   one replica
//!     init.json      its last configuration, table facts and the "fresh" flag, written
//!                    atomically (temp file, fsync, rename, fsync dir) whenever they change
//!     data.<decree>.<ms>/  RocksDB (write-ahead log off; the mutation log is the WAL),
//!                    named in init.json: `data.0.<ms>` when the replica was created
//!                    empty, a new name each time a learned checkpoint is installed
//!                    (RocksDB locks a path per process, so a new copy cannot take the
//!                    name of one that readers, or a failed predecessor still closing,
//!                    hold open); `data/` in replicas written by older builds
//!     plog/          the mutation log
//!     learn/         checkpoints this replica made for learners (kept briefly)
//! <data_dir>/replica/<app_id>.<pidx>.<unix_ms>.err   a replica that failed, kept for
//!                    inspection; a fresh one re-learns in its place. Only the newest
//!                    copy of a partition is kept: a node that fails the same replica
//!                    over and over (a full disk) would otherwise fill its disk with them
//! <data_dir>/replica/<app_id>.<pidx>.<unix_ms>.gar   a replica of a purged table
//! ```

use std::path::{Path, PathBuf};

use pegasus_core::ids::Gpid;

pub use crate::driver::InitInfo;

/// The directory of a replica.
pub fn replica_dir(root: &Path, gpid: Gpid) -> PathBuf {
    root.join("replica")
        .join(format!("{}.{}.pegasus", gpid.app_id, gpid.pidx))
}

/// Parses `<app_id>.<pidx>.pegasus`.
pub fn parse_replica_dir(name: &str) -> Option<Gpid> {
    let rest = name.strip_suffix(".pegasus")?;
    let (app, pidx) = rest.split_once('.')?;
    Some(Gpid::new(app.parse().ok()?, pidx.parse().ok()?))
}

pub use pegasus_fs::atomic_write;

/// Reads a replica's `init.json`.
pub fn read_init(dir: &Path) -> std::io::Result<InitInfo> {
    let bytes = std::fs::read(dir.join("init.json"))?;
    serde_json::from_slice(&bytes).map_err(std::io::Error::other)
}

/// Writes a replica's `init.json`.
pub fn write_init(dir: &Path, info: &InitInfo) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(info).map_err(std::io::Error::other)?;
    atomic_write(&dir.join("init.json"), &bytes)
}

/// Moves a replica directory aside (`.err` or `.gar`), stamped with `now_ms`.
pub fn retire(root: &Path, gpid: Gpid, suffix: &str, now_ms: u64) -> std::io::Result<()> {
    let from = replica_dir(root, gpid);
    if !from.exists() {
        return Ok(());
    }
    let to = root
        .join("replica")
        .join(format!("{}.{}.{now_ms}.{suffix}", gpid.app_id, gpid.pidx));
    std::fs::rename(from, to)?;
    if suffix == "err" {
        remove_older_copies(root, gpid, suffix, now_ms);
    }
    Ok(())
}

/// Removes the `<app_id>.<pidx>.<ms>.<suffix>` copies of `gpid` older than `newest_ms`.
fn remove_older_copies(root: &Path, gpid: Gpid, suffix: &str, newest_ms: u64) {
    let Ok(entries) = std::fs::read_dir(root.join("replica")) else {
        return;
    };
    let prefix = format!("{}.{}.", gpid.app_id, gpid.pidx);
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ms = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .and_then(|rest| rest.strip_suffix('.'))
            .and_then(|ms| ms.parse::<u64>().ok());
        if ms.is_some_and(|ms| ms < newest_ms) {
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!("cannot remove the old failed copy {name}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_dir_names_round_trip() {
        let g = Gpid::new(12, 7);
        let d = replica_dir(Path::new("/x"), g);
        let name = d.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert_eq!(name, "12.7.pegasus");
        assert_eq!(parse_replica_dir(name), Some(g));
        assert_eq!(parse_replica_dir("12.7.1700000000.err"), None);
        assert_eq!(parse_replica_dir("x.7.pegasus"), None);
    }

    #[test]
    fn only_the_newest_failed_copy_of_a_partition_is_kept() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let g = Gpid::new(3, 1);
        let other = Gpid::new(3, 11);
        for (gpid, ms) in [(g, 100), (other, 150), (g, 200), (g, 300)] {
            std::fs::create_dir_all(replica_dir(root.path(), gpid).join("plog"))
                .unwrap_or_else(|e| panic!("{e}"));
            retire(root.path(), gpid, "err", ms).unwrap_or_else(|e| panic!("{e}"));
        }
        let mut left: Vec<String> = std::fs::read_dir(root.path().join("replica"))
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        // Partition 3.11 is not 3.1's: its copy stays.
        assert_eq!(left, vec!["3.1.300.err", "3.11.150.err"]);
    }
}
