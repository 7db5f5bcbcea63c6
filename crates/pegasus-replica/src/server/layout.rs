//! On-disk layout of a replica server:
//!
//! ```text
//! <data_dir>/replica/<app_id>.<pidx>.pegasus/   one replica
//!     init.json      its last configuration, table facts and the "fresh" flag, written
//!                    atomically (temp file, fsync, rename, fsync dir) whenever they change
//!     data/          RocksDB (write-ahead log off; the mutation log is the WAL); after a
//!                    learned checkpoint is installed it is `data.<decree>.<ms>/`, named
//!                    in init.json (RocksDB locks a path per process, so the new copy
//!                    cannot take the old one's name while readers still hold it)
//!     plog/          the mutation log
//!     learn/         checkpoints this replica made for learners (kept briefly)
//! <data_dir>/replica/<app_id>.<pidx>.<unix_ms>.err   a replica that failed, kept for
//!                    inspection; a fresh one re-learns in its place
//! <data_dir>/replica/<app_id>.<pidx>.<unix_ms>.gar   a replica of a purged table
//! ```

use std::path::{Path, PathBuf};

use pegasus_core::config::PartitionConfig;
use pegasus_core::ids::Gpid;
use pegasus_meta::protocol::AppSummary;
use serde::{Deserialize, Serialize};

/// What a replica persists besides its data and log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitInfo {
    /// The last configuration it knew (its ballot survives restarts).
    pub config: PartitionConfig,
    /// Created empty and not yet caught up with a group.
    pub fresh: bool,
    /// Its table.
    pub app: AppSummary,
    /// The RocksDB directory in use, relative to the replica's directory.
    #[serde(default = "default_data_dir")]
    pub data: String,
}

fn default_data_dir() -> String {
    "data".into()
}

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

pub use pegasus_meta::raft::atomic_write;

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
    std::fs::rename(from, to)
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
}
