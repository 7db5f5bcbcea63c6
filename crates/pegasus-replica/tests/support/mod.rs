//! What the log tests share: distinct, recognisable mutations, and a disk that fails on
//! demand.

#![allow(dead_code, reason = "each test file uses part of it")]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use pegasus_replica::fs::{AppendFile, FileSystem, MemFs};
use pegasus_replica::Mutation;

/// The mutation at `decree` under `ballot`, its update naming both.
pub fn m(decree: i64, ballot: i64) -> Mutation {
    Mutation {
        ballot,
        decree,
        last_committed: decree - 1,
        timestamp_us: decree as u64 * 10,
        updates: vec![Bytes::from(format!("update-{decree}-{ballot}"))],
    }
}

/// An in-memory disk that fails on demand: while `full` is set an append writes half of its
/// bytes and fails with ENOSPC (a disk filling up mid-write); while `fail_sync` is set a
/// sync fails with EIO and keeps nothing (writes still land, unsynced).
#[derive(Debug, Clone, Default)]
pub struct FaultyDisk {
    /// The files.
    pub inner: MemFs,
    /// Appends fail half-way with ENOSPC.
    pub full: Arc<AtomicBool>,
    /// Syncs fail with EIO.
    pub fail_sync: Arc<AtomicBool>,
}

struct FaultyFile {
    inner: Box<dyn AppendFile>,
    disk: FaultyDisk,
}

impl AppendFile for FaultyFile {
    fn append(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.disk.full.load(Ordering::SeqCst) {
            self.inner
                .append(buf.get(..buf.len() / 2).unwrap_or_default())?;
            return Err(std::io::Error::from_raw_os_error(
                pegasus_storage::error::ENOSPC,
            ));
        }
        self.inner.append(buf)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if self.disk.fail_sync.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("injected fsync failure"));
        }
        self.inner.sync()
    }
}

impl FileSystem for FaultyDisk {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn AppendFile>> {
        Ok(Box::new(FaultyFile {
            inner: self.inner.open_append(path)?,
            disk: self.clone(),
        }))
    }
    fn truncate(&self, path: &Path, len: u64) -> std::io::Result<()> {
        self.inner.truncate(path, len)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn sync_file(&self, path: &Path) -> std::io::Result<()> {
        self.inner.sync_file(path)
    }
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        self.inner.write_atomic(path, bytes)
    }
}
