//! The mutation-log benchmark: appends/s with fsync and group commit at several writer
//! counts, next to raw `fdatasync` calls/s on the same disk (appending or overwriting a
//! preallocated file, one file or three at once), in one run.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pegasus_core::ids::Decree;

use crate::fs::StdFs;
use crate::log::{LogError, LogOptions, MutationLog};
use crate::mutation::Mutation;

/// One measured configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogBenchRow {
    /// Concurrent writers (raw rows: files, each synced by its own thread).
    pub writers: usize,
    /// Operations completed (appends acknowledged durable, or fdatasync calls).
    pub ops: u64,
    /// fsyncs issued.
    pub syncs: u64,
    /// Seconds measured.
    pub secs: f64,
}

impl LogBenchRow {
    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.secs.max(f64::MIN_POSITIVE)
    }

    /// Mutations per fsync (the group-commit batch size).
    pub fn batch(&self) -> f64 {
        self.ops as f64 / (self.syncs.max(1)) as f64
    }

    /// Mean time of one fsync as its caller saw it, µs, for a raw row (each of `writers`
    /// threads syncs one after the other).
    pub fn sync_us(&self) -> f64 {
        self.secs * 1e6 * self.writers.max(1) as f64 / self.syncs.max(1) as f64
    }
}

/// How the raw baseline writes its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawMode {
    /// Appends: every fdatasync also commits the file's new size and blocks (a journal
    /// commit on ext4), as the mutation log does today.
    Append,
    /// Overwrites a preallocated, already synced file: size and extents never change, so an
    /// fdatasync carries the data alone.
    Overwrite,
}

/// Bytes preallocated per file for [`RawMode::Overwrite`] (writes wrap around).
const OVERWRITE_FILE_BYTES: u64 = 16 << 20;

/// Raw baseline: `files` threads, each on its own file, write `record_len` bytes and
/// `fdatasync` in a loop for `duration`. `writers` in the row is the file count; `ops` counts
/// every thread's fdatasyncs.
pub fn raw_fdatasync(
    dir: &Path,
    record_len: usize,
    duration: Duration,
    mode: RawMode,
    files: usize,
) -> std::io::Result<LogBenchRow> {
    let files = files.max(1);
    let mut opened = Vec::with_capacity(files);
    for i in 0..files {
        let path = dir.join(format!("raw-fdatasync-{i}"));
        let _ = std::fs::remove_file(&path);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)?;
        if mode == RawMode::Overwrite {
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..(OVERWRITE_FILE_BYTES >> 20) {
                f.write_all(&zeros)?;
            }
            f.sync_all()?;
        }
        opened.push((path, f));
    }
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = opened
        .into_iter()
        .map(|(path, f)| {
            std::thread::spawn(move || -> std::io::Result<u64> {
                use std::os::unix::fs::FileExt;
                let buf = vec![7u8; record_len];
                let mut offset = 0u64;
                let mut ops = 0u64;
                while Instant::now() < deadline {
                    match mode {
                        RawMode::Append => (&f).write_all(&buf)?,
                        RawMode::Overwrite => {
                            if offset + record_len as u64 > OVERWRITE_FILE_BYTES {
                                offset = 0;
                            }
                            f.write_all_at(&buf, offset)?;
                            offset += record_len as u64;
                        }
                    }
                    f.sync_data()?;
                    ops += 1;
                }
                drop(f);
                std::fs::remove_file(&path)?;
                Ok(ops)
            })
        })
        .collect();
    let mut ops = 0;
    for h in handles {
        ops += h
            .join()
            .map_err(|_| std::io::Error::other("a raw fdatasync thread panicked"))??;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(LogBenchRow {
        writers: files,
        ops,
        syncs: ops,
        secs,
    })
}

struct Shared {
    queue: Vec<Mutation>,
    next_decree: Decree,
    durable: Decree,
    syncs: u64,
    stop: bool,
    failed: Option<String>,
}

/// `writers` threads each append mutations of `value_len` bytes and wait until theirs is
/// durable; one committer thread writes and fsyncs everything queued at once.
pub fn group_commit(
    dir: &Path,
    writers: usize,
    value_len: usize,
    duration: Duration,
) -> Result<LogBenchRow, LogError> {
    let log_dir = dir.join(format!("log-{writers}"));
    let (mut log, _, _) = MutationLog::open(Arc::new(StdFs), &log_dir, LogOptions::default())?;
    let state = Arc::new((
        Mutex::new(Shared {
            queue: Vec::new(),
            next_decree: 1,
            durable: 0,
            syncs: 0,
            stop: false,
            failed: None,
        }),
        Condvar::new(),
    ));
    let committer = {
        let state = state.clone();
        std::thread::spawn(move || {
            let (lock, cv) = &*state;
            loop {
                let batch = {
                    let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
                    while s.queue.is_empty() && !s.stop {
                        s = cv.wait(s).unwrap_or_else(|e| e.into_inner());
                    }
                    if s.queue.is_empty() {
                        return;
                    }
                    std::mem::take(&mut s.queue)
                };
                for m in &batch {
                    log.append(m);
                }
                let result = log.flush();
                let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
                match result {
                    Ok(d) => {
                        s.durable = d;
                        s.syncs += 1;
                    }
                    Err(e) => {
                        s.failed = Some(e.to_string());
                        s.stop = true;
                    }
                }
                cv.notify_all();
            }
        })
    };
    let value = Bytes::from(vec![b'v'; value_len]);
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = (0..writers.max(1))
        .map(|_| {
            let state = state.clone();
            let value = value.clone();
            std::thread::spawn(move || {
                let (lock, cv) = &*state;
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
                    if s.stop {
                        break;
                    }
                    let decree = s.next_decree;
                    s.next_decree += 1;
                    s.queue.push(Mutation {
                        ballot: 1,
                        decree,
                        last_committed: decree - 1,
                        timestamp_us: 0,
                        updates: vec![value.clone()],
                    });
                    cv.notify_all();
                    while s.durable < decree && !s.stop {
                        s = cv.wait(s).unwrap_or_else(|e| e.into_inner());
                    }
                    if s.durable >= decree {
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    let ops: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    let secs = start.elapsed().as_secs_f64();
    let syncs = {
        let (lock, cv) = &*state;
        let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
        s.stop = true;
        cv.notify_all();
        if let Some(e) = s.failed.take() {
            return Err(LogError::Io(std::io::Error::other(e)));
        }
        s.syncs
    };
    let _ = committer.join();
    let _ = std::fs::remove_dir_all(&log_dir);
    Ok(LogBenchRow {
        writers,
        ops,
        syncs,
        secs,
    })
}
