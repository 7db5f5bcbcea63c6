//! The mutation log: the write-ahead log of one replica (RocksDB runs with its WAL off).
//!
//! A directory of segment files `log.<index>`. Each segment starts with a 28-byte header
//! (`"PGPLOG01"`, `u64 index`, `i64` largest decree in all earlier segments, `u32 crc` of those
//! 24 bytes), followed by records `[u32 len][u32 crc32(payload)][payload]`, the payload being
//! an encoded [`Mutation`].
//!
//! Appends are buffered; [`MutationLog::flush`] writes everything buffered in one write and,
//! by default, `fdatasync`s it before returning (group commit: the caller acknowledges every
//! mutation in the batch after one sync). `sync = false` is Pegasus's default mode (no
//! fsync, durability from three copies); it is weaker and documented as such.
//!
//! On open the log is replayed. A bad record at the end of the last segment is a torn write
//! from a crash: the segment is cut there. A bad record anywhere else is corruption the log
//! cannot repair: [`LogError::Corrupt`] tells the replica to re-learn from its primary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use pegasus_core::ids::{Ballot, Decree};

use crate::fs::{AppendFile, FileSystem};
use crate::mutation::Mutation;

const MAGIC: &[u8; 8] = b"PGPLOG01";
const SEGMENT_HEADER_LEN: usize = 28;
const RECORD_HEADER_LEN: usize = 8;
/// Largest record accepted when reading (a mutation is bounded by the 1 MiB write limit).
pub const MAX_RECORD: usize = 64 << 20;

/// Why the log failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file system failed (a write, a sync, a read).
    #[error("log i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Bytes that are not a torn tail fail to decode: the replica must re-learn.
    #[error("log corrupt in segment {segment} at offset {offset}: {reason}")]
    Corrupt {
        /// Segment index.
        segment: u64,
        /// Byte offset of the bad record or header.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

impl LogError {
    /// Whether the file system ran out of a resource (descriptors, memory, disk space)
    /// rather than failing or holding bad bytes: the log's files are intact up to what was
    /// flushed, so the replica may be reopened from them (ARCHITECTURE.md).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Io(e) => pegasus_storage::error::is_resource_exhaustion(e),
            Self::Corrupt { .. } => false,
        }
    }

    /// Whether the disk ran out of space (`ENOSPC`): unlike the other transient errors it
    /// lasts until space is freed, so the copy stops taking prepares at once.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Self::Io(e) if e.raw_os_error() == Some(pegasus_storage::error::ENOSPC))
    }
}

impl From<LogError> for crate::driver::LogFailure {
    fn from(e: LogError) -> Self {
        Self::from(&e)
    }
}

impl From<&LogError> for crate::driver::LogFailure {
    fn from(e: &LogError) -> Self {
        Self {
            reason: e.to_string(),
            transient: e.is_transient(),
            disk_full: e.is_disk_full(),
        }
    }
}

/// Result alias.
pub type LogResult<T> = Result<T, LogError>;

/// Log settings (`[replication]` section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// Segment size at which a new segment starts (Pegasus: `log_private_file_size_mb` = 32).
    pub segment_bytes: u64,
    /// fsync before acknowledging (our default). `false` is Pegasus's `plog_force_flush=false`.
    pub sync: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 32 << 20,
            sync: true,
        }
    }
}

/// A place in a mutation log: a segment's index and a byte offset in it. Positions only
/// grow as records are appended (a new segment has a larger index).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition {
    /// The segment's index.
    pub segment: u64,
    /// Bytes into the segment.
    pub offset: u64,
}

/// What merging a node log's records into a replica's log found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Merged {
    /// Opening the log cut a torn tail.
    pub cut: bool,
    /// The log, once cut, reached where the node log's records for it start: everything it
    /// lost is in the node log. False means bytes that had been synced are gone.
    pub covered: bool,
}

impl Merged {
    /// Whether the replica may have lost acknowledged records (and must not lead before it
    /// re-learns): its log ends before where its node-log records start (bytes that had
    /// been synced are gone: a disk that loses synced bytes), or it cut a torn tail while
    /// the node log's own tail was torn too (`node_log_torn`: the node log's last batch may
    /// have held records this log lost). A replica with no records in the node log is
    /// judged by its own log's cut at open.
    pub fn lost_acknowledged(&self, node_log_torn: bool) -> bool {
        !self.covered || (self.cut && node_log_torn)
    }
}

/// What replaying found besides the mutations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Bytes cut from the tail of the last segment (a torn write), if any.
    pub truncated_bytes: u64,
    /// Records read.
    pub records: u64,
    /// Per ballot, the largest commit point any record of that ballot carried — including
    /// records a later ballot's record for the same decree superseded, which replay drops.
    /// What the replica may commit from its own log at open
    /// ([`crate::core::Replica::catch_up_from_log`]).
    pub commit_points: BTreeMap<Ballot, Decree>,
}

#[derive(Debug, Clone)]
struct Segment {
    index: u64,
    path: PathBuf,
    /// Largest decree in this segment (`i64::MIN` when empty).
    max_decree: Decree,
    len: u64,
}

/// One replica's mutation log.
pub struct MutationLog {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    opts: LogOptions,
    segments: Vec<Segment>,
    current: Box<dyn AppendFile>,
    pending: Vec<u8>,
    pending_max: Decree,
    durable_max: Decree,
}

impl std::fmt::Debug for MutationLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MutationLog")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("durable_max", &self.durable_max)
            .finish_non_exhaustive()
    }
}

fn segment_name(index: u64) -> String {
    format!("log.{index}")
}

/// The indexes of the segment files `<prefix><index>` in `dir`, ascending (the mutation
/// log's `log.`, the node log's `nlog.`).
pub(crate) fn segment_indexes(
    fs: &dyn FileSystem,
    dir: &Path,
    prefix: &str,
) -> std::io::Result<Vec<u64>> {
    let mut indexes: Vec<u64> = fs
        .list(dir)?
        .iter()
        .filter_map(|n| n.strip_prefix(prefix)?.parse().ok())
        .collect();
    indexes.sort_unstable();
    Ok(indexes)
}

/// A segment header: an 8-byte magic, the segment's index, one more big-endian word, and a
/// crc32 of those 24 bytes.
pub(crate) fn segment_header(magic: &[u8; 8], index: u64, word: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(SEGMENT_HEADER_LEN);
    h.extend_from_slice(magic);
    h.extend_from_slice(&index.to_be_bytes());
    h.extend_from_slice(&word.to_be_bytes());
    let crc = crc32fast::hash(&h);
    h.extend_from_slice(&crc.to_be_bytes());
    h
}

/// The third word of a [`segment_header`] if `data` starts with a whole one of segment
/// `index` under `magic`.
pub(crate) fn parse_segment_header(data: &[u8], magic: &[u8; 8], index: u64) -> Option<u64> {
    let crc = be_u32(data, 24)?;
    (data.get(..8) == Some(&magic[..])
        && be_u64(data, 8) == Some(index)
        && data.get(..24).map(crc32fast::hash) == Some(crc))
    .then(|| be_u64(data, 16))
    .flatten()
}

pub(crate) fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)?
        .try_into()
        .ok()
        .map(u32::from_be_bytes)
}

pub(crate) fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at.checked_add(8)?)?
        .try_into()
        .ok()
        .map(u64::from_be_bytes)
}

/// Encodes one record.
pub fn encode_record(m: &Mutation, out: &mut Vec<u8>) {
    let payload = m.encode();
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
}

/// How many whole records `bytes` (as [`encode_record`] writes them) hold.
pub fn count_records(bytes: &[u8]) -> usize {
    let mut n = 0;
    let mut pos = 0usize;
    while let Some(len) = be_u32(bytes, pos) {
        pos = pos
            .saturating_add(RECORD_HEADER_LEN)
            .saturating_add(len as usize);
        if pos > bytes.len() {
            break;
        }
        n += 1;
    }
    n
}

/// Outcome of reading records from a segment's bytes.
#[derive(Debug)]
pub enum SegmentScan {
    /// Every byte was a good record.
    Clean(Vec<Mutation>),
    /// Good records, then a bad one at `offset`.
    BadAt {
        /// Records before the bad one.
        mutations: Vec<Mutation>,
        /// Where the bad record starts.
        offset: usize,
        /// Whether everything from `offset` could be a torn final write: the record runs
        /// past the end, or it is the last record, or only zeros follow.
        tail_only: bool,
        /// What is wrong.
        reason: String,
    },
}

/// Reads the records after a segment header. Never panics on any input (fuzzed).
pub fn scan_records(data: &[u8], start: usize) -> SegmentScan {
    let mut mutations = Vec::new();
    let mut pos = start;
    while pos < data.len() {
        let bad = |reason: &str, tail_only: bool, mutations: Vec<Mutation>| SegmentScan::BadAt {
            mutations,
            offset: pos,
            tail_only,
            reason: reason.to_string(),
        };
        let rest = data.get(pos..).unwrap_or(&[]);
        if rest.iter().all(|&b| b == 0) {
            return bad("zero-filled tail", true, mutations);
        }
        let (Some(len), Some(crc)) = (be_u32(data, pos), be_u32(data, pos + 4)) else {
            return bad("truncated record header", true, mutations);
        };
        let len = len as usize;
        if len > MAX_RECORD {
            return bad("record longer than the limit", false, mutations);
        }
        let body_start = pos + RECORD_HEADER_LEN;
        let Some(payload) = data.get(body_start..body_start + len) else {
            return bad("record runs past the end", true, mutations);
        };
        let is_last = body_start + len == data.len();
        if crc32fast::hash(payload) != crc {
            return bad("checksum mismatch", is_last, mutations);
        }
        match Mutation::decode(&Bytes::copy_from_slice(payload)) {
            Ok(m) => mutations.push(m),
            Err(e) => return bad(&e.to_string(), is_last, mutations),
        }
        pos = body_start + len;
    }
    SegmentScan::Clean(mutations)
}

impl MutationLog {
    /// Opens (creating if needed) the log in `dir` and replays it: returns the log, the
    /// mutations it holds (one per decree: the highest ballot wins, in decree order), and a
    /// report of what was repaired.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        opts: LogOptions,
    ) -> LogResult<(Self, Vec<Mutation>, ReplayReport)> {
        fs.create_dir_all(dir)?;
        let indexes = segment_indexes(fs.as_ref(), dir, "log.")?;
        let mut by_decree: BTreeMap<Decree, Mutation> = BTreeMap::new();
        let mut segments = Vec::new();
        let mut report = ReplayReport::default();
        let last_index = indexes.last().copied();
        for &index in &indexes {
            let path = dir.join(segment_name(index));
            let data = fs.read(&path)?;
            let is_last = Some(index) == last_index;
            let corrupt = |offset: usize, reason: &str| LogError::Corrupt {
                segment: index,
                offset: offset as u64,
                reason: reason.to_string(),
            };
            let header_ok = parse_segment_header(&data, MAGIC, index).is_some();
            if !header_ok {
                if is_last && data.len() < SEGMENT_HEADER_LEN {
                    // A crash right after the segment was created: start it again.
                    fs.remove(&path)?;
                    report.truncated_bytes += data.len() as u64;
                    continue;
                }
                return Err(corrupt(0, "bad segment header"));
            }
            let (mutations, len) = match scan_records(&data, SEGMENT_HEADER_LEN) {
                SegmentScan::Clean(m) => (m, data.len()),
                SegmentScan::BadAt {
                    mutations,
                    offset,
                    tail_only,
                    reason,
                } => {
                    if !(is_last && tail_only) {
                        return Err(corrupt(offset, &reason));
                    }
                    fs.truncate(&path, offset as u64)?;
                    report.truncated_bytes += (data.len() - offset) as u64;
                    (mutations, offset)
                }
            };
            let mut max_decree = Decree::MIN;
            for m in mutations {
                report.records += 1;
                max_decree = max_decree.max(m.decree);
                let point = report.commit_points.entry(m.ballot).or_insert(0);
                *point = (*point).max(m.last_committed);
                match by_decree.get(&m.decree) {
                    Some(old) if old.ballot > m.ballot => {}
                    _ => {
                        by_decree.insert(m.decree, m);
                    }
                }
            }
            segments.push(Segment {
                index,
                path,
                max_decree,
                len: len as u64,
            });
        }
        let durable_max = segments
            .iter()
            .map(|s| s.max_decree)
            .max()
            .unwrap_or(0)
            .max(0);
        let next_index = segments.last().map_or(1, |s| s.index + 1);
        let (current, segments) = if let Some(last) = segments.last() {
            let mut f = fs.open_append(&last.path)?;
            if opts.sync {
                // Bytes an earlier process wrote without syncing become durable before this
                // log acknowledges anything.
                f.sync()?;
            }
            (f, segments)
        } else {
            let (f, seg) = create_segment(fs.as_ref(), dir, next_index, 0)?;
            (f, vec![seg])
        };
        let log = Self {
            fs,
            dir: dir.to_path_buf(),
            opts,
            segments,
            current,
            pending: Vec::new(),
            pending_max: durable_max,
            durable_max,
        };
        Ok((log, by_decree.into_values().collect(), report))
    }

    /// Buffers a mutation; it is durable once [`MutationLog::flush`] returns.
    pub fn append(&mut self, m: &Mutation) {
        encode_record(m, &mut self.pending);
        self.pending_max = self.pending_max.max(m.decree);
    }

    /// Whether mutations are buffered.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes everything buffered in one write and syncs it (unless `sync` is off). Returns
    /// the largest decree now in the log. On error nothing buffered counts as logged and the
    /// log must not be used further: the replica is closed, and reopened from its files
    /// after a [transient](LogError::is_transient) error or set aside and re-learned after
    /// any other.
    pub fn flush(&mut self) -> LogResult<Decree> {
        self.write_batch(self.opts.sync)?;
        Ok(self.durable_max)
    }

    /// Writes everything buffered in one write without syncing it, and returns the bytes
    /// written (for the node log, whose sync makes them durable). A segment that ends is
    /// still synced. Errors as [`MutationLog::flush`].
    pub fn write_unsynced(&mut self) -> LogResult<Vec<u8>> {
        self.write_batch(false)
    }

    /// The file system the log lives on.
    pub fn fs(&self) -> Arc<dyn FileSystem> {
        self.fs.clone()
    }

    /// Where the next record goes.
    pub fn end(&self) -> LogPosition {
        self.segments
            .last()
            .map_or(LogPosition::default(), |s| LogPosition {
                segment: s.index,
                offset: s.len,
            })
    }

    /// The segment file the next records go to.
    pub fn current_path(&self) -> &Path {
        self.segments
            .last()
            .map_or(self.dir.as_path(), |s| s.path.as_path())
    }

    fn write_batch(&mut self, sync: bool) -> LogResult<Vec<u8>> {
        if self.pending.is_empty() {
            return Ok(Vec::new());
        }
        let batch = std::mem::take(&mut self.pending);
        if let Err(e) = self.current.append(&batch) {
            if pegasus_storage::error::is_resource_exhaustion(&e) {
                // A full disk may have taken part of the batch. Those bytes were never
                // acknowledged: cut them, so that the replica, reopened once space is back,
                // finds a clean log rather than a torn tail (which would make a primary
                // give up its role). If the cut fails too, replay cuts the tail instead.
                if let Some(seg) = self.segments.last() {
                    let _ = self.fs.truncate(&seg.path, seg.len);
                }
            }
            return Err(e.into());
        }
        if sync {
            self.current.sync()?;
        }
        if let Some(seg) = self.segments.last_mut() {
            seg.len += batch.len() as u64;
            seg.max_decree = seg.max_decree.max(self.pending_max);
        }
        self.durable_max = self.pending_max;
        let roll = self
            .segments
            .last()
            .is_some_and(|s| s.len >= self.opts.segment_bytes);
        if roll {
            // A finished segment is always synced, even without `sync`: only the last
            // segment may ever end in a torn write, which is what replay can repair.
            if !sync {
                self.current.sync()?;
            }
            let next = self.segments.last().map_or(1, |s| s.index + 1);
            let (f, seg) = create_segment(self.fs.as_ref(), &self.dir, next, self.durable_max)?;
            self.current = f;
            self.segments.push(seg);
        }
        Ok(batch)
    }

    /// Writes records the node log recovered for this replica (written to this log from
    /// `from` on) into its log and syncs them, so the node log may forget them. Records the
    /// log already holds are harmless again: replay keeps one mutation per decree, the
    /// highest ballot's. Returns whether opening the log cut a torn tail, and whether the
    /// node log covers what the cut took.
    pub fn merge(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        opts: LogOptions,
        from: LogPosition,
        records: &[u8],
    ) -> LogResult<Merged> {
        let (mut log, _, report) = Self::open(fs, dir, opts)?;
        let merged = Merged {
            cut: report.truncated_bytes > 0,
            covered: log.end() >= from,
        };
        let mutations = match scan_records(records, 0) {
            SegmentScan::Clean(m) => m,
            SegmentScan::BadAt { offset, reason, .. } => {
                return Err(LogError::Corrupt {
                    segment: 0,
                    offset: offset as u64,
                    reason: format!("node-log record: {reason}"),
                })
            }
        };
        for m in &mutations {
            log.append(m);
        }
        log.write_batch(true)?;
        Ok(merged)
    }

    /// The largest decree flushed.
    pub fn max_decree(&self) -> Decree {
        self.durable_max
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Deletes segments (never the current one) whose every decree is `<= durable`: storage
    /// holds them, so replay will not need them. Returns how many were deleted.
    pub fn gc(&mut self, durable: Decree) -> LogResult<usize> {
        let keep_from = self
            .segments
            .iter()
            .position(|s| s.max_decree > durable)
            .unwrap_or(self.segments.len().saturating_sub(1))
            .min(self.segments.len().saturating_sub(1));
        let removed: Vec<Segment> = self.segments.drain(..keep_from).collect();
        for s in &removed {
            self.fs.remove(&s.path)?;
        }
        if !removed.is_empty() {
            self.fs.sync_dir(&self.dir)?;
        }
        Ok(removed.len())
    }

    /// Every logged mutation with decree `>= from`, in decree order (for learning from the log).
    pub fn read_from(&self, from: Decree) -> LogResult<Vec<Mutation>> {
        let mut by_decree: BTreeMap<Decree, Mutation> = BTreeMap::new();
        for s in &self.segments {
            if s.max_decree < from {
                continue;
            }
            let data = self.fs.read(&s.path)?;
            let bytes = data
                .get(..usize::try_from(s.len).unwrap_or(data.len()))
                .unwrap_or(&data);
            let mutations = match scan_records(bytes, SEGMENT_HEADER_LEN) {
                SegmentScan::Clean(m) => m,
                SegmentScan::BadAt { offset, reason, .. } => {
                    return Err(LogError::Corrupt {
                        segment: s.index,
                        offset: offset as u64,
                        reason,
                    })
                }
            };
            for m in mutations.into_iter().filter(|m| m.decree >= from) {
                match by_decree.get(&m.decree) {
                    Some(old) if old.ballot > m.ballot => {}
                    _ => {
                        by_decree.insert(m.decree, m);
                    }
                }
            }
        }
        Ok(by_decree.into_values().collect())
    }
}

fn create_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    index: u64,
    prev_max: Decree,
) -> LogResult<(Box<dyn AppendFile>, Segment)> {
    let (f, path) = start_segment(fs, dir, &segment_name(index), MAGIC, index, prev_max as u64)?;
    Ok((
        f,
        Segment {
            index,
            path,
            max_decree: Decree::MIN,
            len: SEGMENT_HEADER_LEN as u64,
        },
    ))
}

/// Creates segment file `name` in `dir` holding only its [`segment_header`], synced with
/// its directory entry: what every log segment starts as.
pub(crate) fn start_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    magic: &[u8; 8],
    index: u64,
    word: u64,
) -> std::io::Result<(Box<dyn AppendFile>, PathBuf)> {
    let path = dir.join(name);
    let mut f = fs.open_append(&path)?;
    f.append(&segment_header(magic, index, word))?;
    f.sync()?;
    fs.sync_dir(dir)?;
    Ok((f, path))
}
