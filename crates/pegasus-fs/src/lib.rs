//! The file-system seam of the servers' own durable files (mutation logs, small metadata
//! files), so the simulator can model crashes and full disks.
//!
//! [`StdFs`] is the real file system. [`MemFs`] keeps files in memory and distinguishes bytes
//! that were synced from bytes that were only written: [`MemFs::crash`] throws away unsynced
//! bytes, or keeps a torn prefix of them, the way a power failure can; it can also fail
//! every write with an OS error (`ENOSPC`, `EMFILE`) or a plain I/O error.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A file opened for appending.
pub trait AppendFile: Send {
    /// Appends bytes (buffered by the OS; not durable until [`AppendFile::sync`]).
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
}

/// What the log needs from a file system.
pub trait FileSystem: Send + Sync + std::fmt::Debug {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// File names (not paths) in a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Opens a file for appending, creating it empty if missing.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>>;
    /// Cuts a file to `len` bytes and makes that durable.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Deletes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes a directory's entries (created, removed files) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Makes everything written to the file at `path` so far durable (`fdatasync`), through
    /// whatever handle wrote it: the node log syncs replicas' logs this way before it
    /// forgets their records. `NotFound` if there is no such file.
    fn sync_file(&self, path: &Path) -> io::Result<()>;
    /// Replaces a whole file with `bytes`, atomically and durably: after a crash the file
    /// holds either its old content or all of `bytes`.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
}

/// [`FileSystem::write_atomic`] on the real file system: a temporary file beside `path`,
/// fsync, rename over `path`, fsync of the directory.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

struct StdFile(std::fs::File);

impl AppendFile for StdFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl FileSystem for StdFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                out.push(name.to_string());
            }
        }
        Ok(out)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Box::new(StdFile(f)))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        // fdatasync flushes the file's dirty pages whichever descriptor wrote them.
        std::fs::File::open(path)?.sync_data()
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        atomic_write(path, bytes)
    }
}

#[derive(Debug, Default, Clone)]
struct MemFile {
    /// Bytes that survive a crash.
    synced: Vec<u8>,
    /// Bytes written after the last sync.
    pending: Vec<u8>,
    /// Whether the file's directory entry is durable.
    entry_synced: bool,
}

/// How [`MemFs::crash`] treats unsynced bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Unsynced bytes are lost.
    DropUnsynced,
    /// A prefix of each file's unsynced bytes survives (cut at `keep_fraction` of them),
    /// leaving a torn last record.
    TearUnsynced {
        /// Fraction of the unsynced bytes kept, in thousandths.
        keep_permille: u16,
    },
}

/// An in-memory file system with crash semantics. Clones share the same files.
#[derive(Debug, Default, Clone)]
pub struct MemFs {
    files: Arc<Mutex<BTreeMap<PathBuf, MemFile>>>,
    /// Injected failure: every write and sync fails while set, with this OS error number
    /// (0: a plain I/O error).
    fail_io: Arc<Mutex<Option<i32>>>,
}

struct MemAppend {
    fs: MemFs,
    path: PathBuf,
}

impl AppendFile for MemAppend {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.fs.check_fail()?;
        let mut files = self.fs.lock();
        let f = files.entry(self.path.clone()).or_default();
        f.pending.extend_from_slice(buf);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.fs.check_fail()?;
        let mut files = self.fs.lock();
        let f = files.entry(self.path.clone()).or_default();
        let pending = std::mem::take(&mut f.pending);
        f.synced.extend_from_slice(&pending);
        Ok(())
    }
}

impl MemFs {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, MemFile>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_fail(&self) -> io::Result<()> {
        match *self.fail_io.lock().unwrap_or_else(|e| e.into_inner()) {
            None => Ok(()),
            Some(0) => Err(io::Error::other("injected I/O error")),
            Some(code) => Err(io::Error::from_raw_os_error(code)),
        }
    }

    /// Makes every write and sync fail with a plain I/O error (or succeed again).
    pub fn set_fail_io(&self, fail: bool) {
        *self.fail_io.lock().unwrap_or_else(|e| e.into_inner()) = fail.then_some(0);
    }

    /// Makes every write and sync fail with OS error `code` (`ENOSPC` = 28, `EMFILE` =
    /// 24), or succeed again with `None`.
    pub fn set_fail_os_error(&self, code: Option<i32>) {
        *self.fail_io.lock().unwrap_or_else(|e| e.into_inner()) = code;
    }

    /// Simulates a power failure: unsynced bytes are dropped (or torn), and files whose
    /// directory entry was never synced disappear unless they hold synced bytes.
    pub fn crash(&self, mode: CrashMode) {
        let mut files = self.lock();
        files.retain(|_, f| f.entry_synced || !f.synced.is_empty());
        for f in files.values_mut() {
            let pending = std::mem::take(&mut f.pending);
            if let CrashMode::TearUnsynced { keep_permille } = mode {
                let keep = pending.len() * usize::from(keep_permille.min(1000)) / 1000;
                f.synced
                    .extend_from_slice(pending.get(..keep).unwrap_or(&[]));
            }
        }
    }

    /// Overwrites one durable byte (bit rot), for corruption tests.
    pub fn corrupt_byte(&self, path: &Path, offset: usize) -> bool {
        let mut files = self.lock();
        match files.get_mut(path).and_then(|f| f.synced.get_mut(offset)) {
            Some(b) => {
                *b ^= 0xff;
                true
            }
            None => false,
        }
    }

    /// Durable length of a file.
    pub fn synced_len(&self, path: &Path) -> Option<usize> {
        self.lock().get(path).map(|f| f.synced.len())
    }
}

impl FileSystem for MemFs {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(self
            .lock()
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let files = self.lock();
        let f = files
            .get(path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.display().to_string()))?;
        let mut out = f.synced.clone();
        out.extend_from_slice(&f.pending);
        Ok(out)
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        self.check_fail()?;
        self.lock().entry(path.to_path_buf()).or_default();
        Ok(Box::new(MemAppend {
            fs: self.clone(),
            path: path.to_path_buf(),
        }))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.check_fail()?;
        let mut files = self.lock();
        let f = files
            .get_mut(path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.display().to_string()))?;
        let mut all = std::mem::take(&mut f.synced);
        all.append(&mut f.pending);
        all.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        f.synced = all;
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.check_fail()?;
        self.lock().remove(path);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check_fail()?;
        for (p, f) in self.lock().iter_mut() {
            if p.parent() == Some(dir) {
                f.entry_synced = true;
            }
        }
        Ok(())
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        self.check_fail()?;
        let mut files = self.lock();
        let f = files
            .get_mut(path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.display().to_string()))?;
        let pending = std::mem::take(&mut f.pending);
        f.synced.extend_from_slice(&pending);
        Ok(())
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.check_fail()?;
        self.lock().insert(
            path.to_path_buf(),
            MemFile {
                synced: bytes.to_vec(),
                pending: Vec::new(),
                entry_synced: true,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_survives_a_crash_whole_and_replaces_the_old_content() {
        let fs = MemFs::new();
        let p = Path::new("/d/init.json");
        fs.write_atomic(p, b"old").unwrap();
        fs.write_atomic(p, b"new content").unwrap();
        fs.crash(CrashMode::TearUnsynced { keep_permille: 500 });
        assert_eq!(fs.read(p).unwrap(), b"new content");
    }

    #[test]
    fn an_injected_os_error_keeps_its_number() {
        let fs = MemFs::new();
        fs.set_fail_os_error(Some(28));
        let e = fs.write_atomic(Path::new("/x"), b"x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(28));
        fs.set_fail_os_error(None);
        fs.write_atomic(Path::new("/x"), b"x").unwrap();
        fs.set_fail_io(true);
        assert_eq!(
            fs.open_append(Path::new("/y"))
                .err()
                .unwrap()
                .raw_os_error(),
            None
        );
    }

    #[test]
    fn syncing_a_file_by_path_makes_what_any_handle_wrote_survive_a_crash() {
        let fs = MemFs::new();
        let p = Path::new("/d/log.1");
        let mut f = fs.open_append(p).unwrap();
        f.append(b"abc").unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        fs.sync_file(p).unwrap();
        f.append(b"def").unwrap();
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read(p).unwrap(), b"abc");
        assert_eq!(
            fs.sync_file(Path::new("/d/none")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("f");
        StdFs.open_append(&real).unwrap().append(b"x").unwrap();
        StdFs.sync_file(&real).unwrap();
    }

    #[test]
    fn the_real_atomic_write_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        StdFs.write_atomic(&p, b"one").unwrap();
        StdFs.write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(!dir.path().join("f.tmp").exists());
    }
}
