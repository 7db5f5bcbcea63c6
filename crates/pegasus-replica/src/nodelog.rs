//! The node log: one write-ahead log per replica server, shared by every replica it hosts,
//! so that one `fdatasync` makes the writes of all its partitions durable (group commit
//! across partitions; Pegasus 1.x's shared log, TiKV's raft-engine, Cassandra's commitlog).
//!
//! Each replica keeps its own mutation log ([`crate::log`], the "plog"): it is still what a
//! replica replays, learns from and trims. With the node log, a replica *writes* its plog
//! records (to the page cache, no fsync) and hands the same bytes to the node log; the node
//! log's sync is what makes them durable and what acknowledges them. A node-log segment is
//! forgotten only after the plog of every replica with records in it was synced by path
//! ([`FileSystem::sync_file`]): then nothing in it is needed any more.
//!
//! Format: a directory of segments `nlog.<index>`. A segment starts with a 28-byte header
//! (`"PGNLOG01"`, `u64 index`, `u64` where the previous segment's good batches end, `u32
//! crc` of those 24 bytes); then batches, one per group
//! commit: `[u32 len][u32 crc32(seq ‖ payload)][u64 seq][payload]`, `seq` counting the
//! segment's batches from 1. The payload is entries `[i32 app][i32 partition][u64
//! incarnation][u64 plog segment][u64 plog offset][u32 len][plog records]`, the records
//! exactly as the plog holds them, written there from that position on.
//!
//! Recovery ([`recover`]) reads every segment. In the last one, the first batch that is
//! not whole, not its checksum, or not the next `seq` ends the log: it and everything after
//! it were never acknowledged (an acknowledgement needs a sync issued after the batch and
//! every batch before it). An earlier segment is read up to where the next one's header
//! says it ended (a batch whose write or sync failed lies beyond, and was never
//! acknowledged); a bad batch before that is corruption. The caller writes every
//! replica's recovered records into its plog and syncs it ([`crate::log::MutationLog::merge`])
//! before it opens a new node log, which deletes the old segments.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pegasus_core::ids::Gpid;

use crate::fs::{AppendFile, FileSystem};
use crate::log::{
    be_u32, be_u64, parse_segment_header, segment_indexes, start_segment, LogError, LogPosition,
    LogResult,
};

const MAGIC: &[u8; 8] = b"PGNLOG01";
const SEGMENT_HEADER_LEN: usize = 28;
const BATCH_HEADER_LEN: usize = 16;
const ENTRY_HEADER_LEN: usize = 36;
/// Largest batch accepted when reading.
const MAX_BATCH: usize = 1 << 30;

/// One replica's identity in the node log: its partition and which copy of it (a copy
/// set aside and created again on the same node is a new incarnation, and never gets the
/// old one's records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplicaKey {
    /// The partition.
    pub gpid: Gpid,
    /// The copy.
    pub incarnation: u64,
}

/// Where a replica's own log file is, so the node log can make it durable before it
/// forgets that replica's records.
#[derive(Clone)]
pub struct PlogFile {
    /// The replica's file system.
    pub fs: Arc<dyn FileSystem>,
    /// The plog segment the records went to (earlier segments are synced when they end).
    pub path: PathBuf,
    /// Where in the plog the records start.
    pub at: LogPosition,
}

impl std::fmt::Debug for PlogFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PlogFile").field(&self.path).finish()
    }
}

/// Node-log settings (`[replica_server]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLogOptions {
    /// Segment size at which a new segment starts; older ones are forgotten once their
    /// replicas' plogs are synced.
    pub segment_bytes: u64,
    /// fdatasync each batch (the default). `false` is `plog_force_flush = false`.
    pub sync: bool,
    /// A planted bug, for the simulator's tests of its own checks only (false everywhere
    /// else): segments are forgotten without syncing their replicas' logs first.
    pub plant_forget_unsynced: bool,
}

impl Default for NodeLogOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            sync: true,
            plant_forget_unsynced: false,
        }
    }
}

/// One replica's records in the node log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplicaRecords {
    /// Where in the replica's own log the first of them was written.
    pub from: LogPosition,
    /// The records in log order, encoded as plog records.
    pub bytes: Vec<u8>,
}

/// What recovery found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Each replica's records still in the node log.
    pub records: BTreeMap<ReplicaKey, ReplicaRecords>,
    /// Bytes after the end of the last segment's good batches (a torn tail), if any.
    pub torn_bytes: u64,
    /// Segments read.
    pub segments: usize,
}

struct Segment {
    index: u64,
    path: PathBuf,
    len: u64,
    /// Replicas with records in this segment, and the plog file their last ones went to.
    members: BTreeMap<ReplicaKey, PlogFile>,
}

/// A node's log, open for writing. Not thread-safe by itself: the replica server puts it
/// behind its syncer thread, the simulator drives it from its event loop.
pub struct NodeLog {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    opts: NodeLogOptions,
    segments: Vec<Segment>,
    current: Box<dyn AppendFile>,
    next_seq: u64,
    pending: Vec<u8>,
    pending_members: BTreeMap<ReplicaKey, PlogFile>,
    /// A write or sync failed: the next batch starts a new segment (never write the same
    /// pages again after a failed fsync).
    broken: bool,
}

impl std::fmt::Debug for NodeLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeLog")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

fn segment_name(index: u64) -> String {
    format!("nlog.{index}")
}

/// One segment's good batches, parsed.
struct SegmentRead {
    entries: Vec<Entry>,
    /// Where the good batches end.
    end: usize,
    /// Why reading stopped before the end of the bytes.
    bad: Option<String>,
}

/// Reads a segment's batches after its header. Never panics on any input.
fn read_segment(data: &[u8]) -> SegmentRead {
    let mut out = SegmentRead {
        entries: Vec::new(),
        end: SEGMENT_HEADER_LEN,
        bad: None,
    };
    let mut pos = SEGMENT_HEADER_LEN;
    let mut expect_seq = 1u64;
    while pos < data.len() {
        let stop = |why: &str| Some(why.to_string());
        let (Some(len), Some(crc), Some(seq)) = (
            be_u32(data, pos),
            be_u32(data, pos + 4),
            be_u64(data, pos + 8),
        ) else {
            out.bad = stop("truncated batch header");
            break;
        };
        let len = len as usize;
        if len > MAX_BATCH {
            out.bad = stop("batch longer than the limit");
            break;
        }
        let body = pos + BATCH_HEADER_LEN;
        let Some(payload) = data.get(body..body + len) else {
            out.bad = stop("batch runs past the end");
            break;
        };
        let mut h = crc32fast::Hasher::new();
        h.update(&seq.to_be_bytes());
        h.update(payload);
        if h.finalize() != crc {
            out.bad = stop("batch checksum mismatch");
            break;
        }
        if seq != expect_seq {
            out.bad = stop("batch out of sequence");
            break;
        }
        let Some(entries) = parse_entries(payload, body) else {
            out.bad = stop("malformed entry in a checksummed batch");
            break;
        };
        out.entries.extend(entries);
        expect_seq += 1;
        pos = body + len;
        out.end = pos;
    }
    out
}

/// One entry of a batch: whose records, where they went in its log, where they are here.
type Entry = (ReplicaKey, LogPosition, std::ops::Range<usize>);

/// The entries of one batch payload starting at `base` in the segment.
fn parse_entries(payload: &[u8], base: usize) -> Option<Vec<Entry>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < payload.len() {
        let app_id = be_u32(payload, pos)? as i32;
        let pidx = be_u32(payload, pos + 4)? as i32;
        let incarnation = be_u64(payload, pos + 8)?;
        let at = LogPosition {
            segment: be_u64(payload, pos + 16)?,
            offset: be_u64(payload, pos + 24)?,
        };
        let len = be_u32(payload, pos + 32)? as usize;
        let start = pos + ENTRY_HEADER_LEN;
        payload.get(start..start.checked_add(len)?)?;
        out.push((
            ReplicaKey {
                gpid: Gpid { app_id, pidx },
                incarnation,
            },
            at,
            base + start..base + start + len,
        ));
        pos = start + len;
    }
    Some(out)
}

/// Reads the node log in `dir` without changing it: every replica's records, and whether
/// the last segment ended in a torn batch. [`LogError::Corrupt`] if a segment other than
/// the last holds a bad batch or header: the replicas' plogs may then lack records this
/// node acknowledged, and the caller must not trust any of them.
pub fn recover(fs: &dyn FileSystem, dir: &Path) -> LogResult<Recovered> {
    fs.create_dir_all(dir)?;
    let indexes = segment_indexes(fs, dir, "nlog.")?;
    let mut out = Recovered::default();
    let mut segments = Vec::with_capacity(indexes.len());
    for (i, &index) in indexes.iter().enumerate() {
        let data = fs.read(&dir.join(segment_name(index)))?;
        let is_last = i + 1 == indexes.len();
        match parse_segment_header(&data, MAGIC, index) {
            Some(prev_end) => segments.push((index, data, prev_end)),
            None if is_last && data.len() < SEGMENT_HEADER_LEN => {
                // A crash while the segment was being created: nothing in it was used.
                out.torn_bytes += data.len() as u64;
            }
            None => {
                return Err(LogError::Corrupt {
                    segment: index,
                    offset: 0,
                    reason: "bad node-log segment header".into(),
                })
            }
        }
    }
    let ends: Vec<Option<u64>> = (0..segments.len())
        .map(|i| segments.get(i + 1).map(|next| next.2))
        .collect();
    for ((index, data, _), end) in segments.iter().zip(ends) {
        out.segments += 1;
        // An earlier segment counts only up to where the next one says it ended.
        let data = match end.map(|e| usize::try_from(e).unwrap_or(usize::MAX)) {
            Some(end) if end > data.len() => {
                return Err(LogError::Corrupt {
                    segment: *index,
                    offset: data.len() as u64,
                    reason: "segment shorter than its successor says".into(),
                })
            }
            Some(end) => data.get(..end).unwrap_or(data),
            None => data,
        };
        let read = read_segment(data);
        if let Some(reason) = read.bad {
            if end.is_some() {
                return Err(LogError::Corrupt {
                    segment: *index,
                    offset: read.end as u64,
                    reason,
                });
            }
            out.torn_bytes += (data.len() - read.end) as u64;
        }
        for (key, at, range) in read.entries {
            if let Some(bytes) = data.get(range) {
                let r = out.records.entry(key).or_insert_with(|| ReplicaRecords {
                    from: at,
                    bytes: Vec::new(),
                });
                r.bytes.extend_from_slice(bytes);
            }
        }
    }
    Ok(out)
}

impl NodeLog {
    /// Starts a new node log in `dir`: a fresh segment after any old one, then deletes the
    /// old ones. Call it only after every replica's [`recover`]ed records are durably in
    /// its plog.
    pub fn create(fs: Arc<dyn FileSystem>, dir: &Path, opts: NodeLogOptions) -> LogResult<Self> {
        fs.create_dir_all(dir)?;
        let old = segment_indexes(fs.as_ref(), dir, "nlog.")?;
        let index = old.last().map_or(1, |i| i + 1);
        // The old segments go first, oldest first: a crash part way leaves the old last
        // segment last, so its torn tail still reads as one.
        for i in old {
            fs.remove(&dir.join(segment_name(i)))?;
        }
        fs.sync_dir(dir)?;
        let (current, segment) = create_segment(fs.as_ref(), dir, index, 0)?;
        Ok(Self {
            fs,
            dir: dir.to_path_buf(),
            opts,
            segments: vec![segment],
            current,
            next_seq: 1,
            pending: Vec::new(),
            pending_members: BTreeMap::new(),
            broken: false,
        })
    }

    /// Adds one replica's plog records (as [`crate::log::encode_record`] writes them) to
    /// the next batch; `plog` is the file and position the replica wrote them to. Durable once
    /// [`NodeLog::flush`] returns `Ok`.
    pub fn append(&mut self, key: ReplicaKey, plog: &PlogFile, records: &[u8]) {
        if records.is_empty() {
            return;
        }
        self.pending.reserve(ENTRY_HEADER_LEN + records.len());
        self.pending
            .extend_from_slice(&(key.gpid.app_id as u32).to_be_bytes());
        self.pending
            .extend_from_slice(&(key.gpid.pidx as u32).to_be_bytes());
        self.pending
            .extend_from_slice(&key.incarnation.to_be_bytes());
        self.pending
            .extend_from_slice(&plog.at.segment.to_be_bytes());
        self.pending
            .extend_from_slice(&plog.at.offset.to_be_bytes());
        self.pending
            .extend_from_slice(&(records.len() as u32).to_be_bytes());
        self.pending.extend_from_slice(records);
        self.pending_members.insert(key, plog.clone());
    }

    /// Writes the waiting batch in one write and syncs it. On error nothing in it counts
    /// as logged (its replicas fail or reopen), and the next batch starts a new segment.
    /// Returns the batch's size in bytes.
    pub fn flush(&mut self) -> LogResult<usize> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        let payload = std::mem::take(&mut self.pending);
        let members = std::mem::take(&mut self.pending_members);
        if self.broken
            || self
                .segments
                .last()
                .is_some_and(|s| s.len >= self.opts.segment_bytes)
        {
            self.roll()?;
        }
        let seq = self.next_seq;
        let mut h = crc32fast::Hasher::new();
        h.update(&seq.to_be_bytes());
        h.update(&payload);
        let mut batch = Vec::with_capacity(BATCH_HEADER_LEN + payload.len());
        batch.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        batch.extend_from_slice(&h.finalize().to_be_bytes());
        batch.extend_from_slice(&seq.to_be_bytes());
        batch.extend_from_slice(&payload);
        let written = self.current.append(&batch).and_then(|()| {
            if self.opts.sync {
                self.current.sync()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            self.broken = true;
            return Err(e.into());
        }
        self.next_seq += 1;
        if let Some(seg) = self.segments.last_mut() {
            seg.len += batch.len() as u64;
            seg.members.extend(members);
        }
        Ok(batch.len())
    }

    fn roll(&mut self) -> LogResult<()> {
        if !self.broken && !self.opts.sync {
            // Every segment but the last is whole on disk, even without per-batch syncs.
            self.current.sync()?;
        }
        let (index, prev_end) = self
            .segments
            .last()
            .map_or((1, 0), |s| (s.index + 1, s.len));
        let (f, seg) = create_segment(self.fs.as_ref(), &self.dir, index, prev_end)?;
        self.current = f;
        self.segments.push(seg);
        self.next_seq = 1;
        self.broken = false;
        Ok(())
    }

    /// Forgets every finished segment whose replicas' plogs could be synced: syncs each
    /// member's plog file by path (a file gone was trimmed, and was synced when it ended),
    /// then deletes the segment. Stops at the first segment it cannot forget. Returns how
    /// many were deleted.
    pub fn retire(&mut self) -> LogResult<usize> {
        let mut done = 0;
        while let Some((index, plogs)) = self.retirable() {
            for plog in &plogs {
                sync_plog(plog)?;
            }
            self.forget(index)?;
            done += 1;
        }
        Ok(done)
    }

    /// The oldest finished segment and the plog files to sync before it may be forgotten
    /// ([`NodeLog::forget`]); the syncs can run without holding the log.
    pub fn retirable(&self) -> Option<(u64, Vec<PlogFile>)> {
        if self.segments.len() < 2 {
            return None;
        }
        let seg = self.segments.first()?;
        let plogs = if self.opts.plant_forget_unsynced {
            Vec::new()
        } else {
            seg.members.values().cloned().collect()
        };
        Some((seg.index, plogs))
    }

    /// Deletes finished segment `index` (the oldest), once [`NodeLog::retirable`]'s plogs
    /// are synced.
    pub fn forget(&mut self, index: u64) -> LogResult<()> {
        let current = self.segments.last().map(|s| s.index);
        let Some(pos) = self
            .segments
            .iter()
            .position(|s| s.index == index && Some(index) != current)
        else {
            return Ok(());
        };
        let seg = self.segments.remove(pos);
        self.fs.remove(&seg.path)?;
        self.fs.sync_dir(&self.dir)?;
        Ok(())
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

fn create_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    index: u64,
    prev_end: u64,
) -> LogResult<(Box<dyn AppendFile>, Segment)> {
    let (f, path) = start_segment(fs, dir, &segment_name(index), MAGIC, index, prev_end)?;
    Ok((
        f,
        Segment {
            index,
            path,
            len: SEGMENT_HEADER_LEN as u64,
            members: BTreeMap::new(),
        },
    ))
}

/// Syncs a replica's log file by path; one that is gone was trimmed, and was synced when
/// its segment ended.
pub fn sync_plog(plog: &PlogFile) -> std::io::Result<()> {
    match plog.fs.sync_file(&plog.path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
