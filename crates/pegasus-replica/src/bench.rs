//! The mutation-log benchmark: appends/s with fsync and group commit at several writer
//! counts, next to raw `fdatasync` calls/s on the same disk, in one run.

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
    /// Concurrent writers (0 for the raw fdatasync baseline).
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
}

/// Raw baseline: write `record_len` bytes and `fdatasync`, repeatedly, for `duration`.
pub fn raw_fdatasync(
    dir: &Path,
    record_len: usize,
    duration: Duration,
) -> std::io::Result<LogBenchRow> {
    let path = dir.join("raw-fdatasync");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let buf = vec![7u8; record_len];
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < duration {
        f.write_all(&buf)?;
        f.sync_data()?;
        ops += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(LogBenchRow {
        writers: 0,
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
