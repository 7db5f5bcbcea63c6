//! The file system the replica server writes its own files through ([`pegasus_fs`],
//! re-exported), and [`WithFailPoints`]: the mutation-log fail points (`plog_append`,
//! `plog_append_enospc`, `plog_sync`) laid over any file system.

use std::io;
use std::path::Path;

pub use pegasus_fs::*;

use crate::failpoint::{self, FailPoint};

/// A file system whose append files fire the mutation-log fail points before doing the real
/// operation. Unarmed, each check is one relaxed atomic load.
#[derive(Debug, Default, Clone, Copy)]
pub struct WithFailPoints<F>(pub F);

struct FailPointFile(Box<dyn AppendFile>);

impl AppendFile for FailPointFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        if failpoint::fire(FailPoint::PlogAppend) {
            return Err(failpoint::eio(FailPoint::PlogAppend));
        }
        if failpoint::fire(FailPoint::PlogAppendEnospc) {
            return Err(failpoint::os_error(pegasus_storage::error::ENOSPC));
        }
        self.0.append(buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        if failpoint::fire(FailPoint::PlogSync) {
            return Err(failpoint::eio(FailPoint::PlogSync));
        }
        self.0.sync()
    }
}

impl<F: FileSystem> FileSystem for WithFailPoints<F> {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.0.create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.0.list(dir)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.0.read(path)
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        Ok(Box::new(FailPointFile(self.0.open_append(path)?)))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.0.truncate(path, len)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.0.remove(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.0.sync_dir(dir)
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        if failpoint::fire(FailPoint::PlogSync) {
            return Err(failpoint::eio(FailPoint::PlogSync));
        }
        self.0.sync_file(path)
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.0.write_atomic(path, bytes)
    }
}
