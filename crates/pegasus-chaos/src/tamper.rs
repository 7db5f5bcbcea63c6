//! Damage to a stopped replica server's mutation logs, done between `kill -9` and restart:
//! a torn tail (the crash hit the last write) or a corrupt record in the middle (a bad
//! disk). The layout read here is the replica server's on-disk format:
//! `<data>/replica/<app>.<pidx>.pegasus/plog/log.<n>`, each segment a 28-byte header and
//! then records `[u32 len][u32 crc][payload]`; and the node log (#18),
//! `<data>/nlog/nlog.<n>`, a 28-byte header and then batches `[u32 len][u32 crc][u64
//! seq][payload]`.
//!
//! What recovery must do: cut a torn tail and carry on (the record was the last one, and the
//! other replicas hold it); refuse a log with a corrupt middle, set the copy aside, and
//! re-learn it from the primary — never serve from it.

use std::path::{Path, PathBuf};

use rand::Rng;

const SEGMENT_HEADER_LEN: usize = 28;
const RECORD_HEADER_LEN: usize = 8;
const BATCH_HEADER_LEN: usize = 16;

/// The mutation-log directories of every live replica under a replica server's data dir.
pub fn plog_dirs(data_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("replica")) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pegasus"))
        .map(|e| e.path().join("plog"))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// The partition index of a `<data>/replica/<app>.<pidx>.pegasus/plog` directory.
pub fn partition_of_plog(plog: &Path) -> Option<usize> {
    let name = plog.parent()?.file_name()?.to_str()?;
    let rest = name.strip_suffix(".pegasus")?;
    rest.split_once('.')?.1.parse().ok()
}

/// Segments `<prefix><n>` of one log, oldest first.
fn segments(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut segs: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix(prefix)?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    segs.sort();
    segs.into_iter().map(|(_, p)| p).collect()
}

/// `(start, end)` of every whole record of a segment, each `[u32 len]`, then the rest of a
/// `header_len`-byte header, then `len` bytes.
fn records(data: &[u8], header_len: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = SEGMENT_HEADER_LEN;
    while let Some(len) = data
        .get(pos..pos + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
    {
        let end = pos + header_len + len as usize;
        if len == 0 || end > data.len() {
            break;
        }
        out.push((pos, end));
        pos = end;
    }
    out
}

fn short(path: &Path) -> String {
    let parts: Vec<String> = path
        .iter()
        .rev()
        .take(3)
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// Tears the tail of the newest segment of `plog`: cuts the last record short, zeroes its
/// end, or appends part of a further record. Returns what it did, or `None` when the log holds no
/// record.
pub fn tear_tail(plog: &Path, rng: &mut impl Rng) -> std::io::Result<Option<String>> {
    tear_last(plog, "log.", RECORD_HEADER_LEN, rng)
}

/// Tears the last batch of a replica server's node log (`<data>/nlog`) the same ways.
/// `None` when it has no node log or no batch.
pub fn tear_node_log_tail(data_dir: &Path, rng: &mut impl Rng) -> std::io::Result<Option<String>> {
    tear_last(&data_dir.join("nlog"), "nlog.", BATCH_HEADER_LEN, rng)
}

fn tear_last(
    dir: &Path,
    prefix: &str,
    header_len: usize,
    rng: &mut impl Rng,
) -> std::io::Result<Option<String>> {
    let Some(path) = segments(dir, prefix).pop() else {
        return Ok(None);
    };
    let mut data = std::fs::read(&path)?;
    let Some(&(start, end)) = records(&data, header_len).last() else {
        return Ok(None);
    };
    let what = match rng.random_range(0..3) {
        0 => {
            let cut = rng.random_range(start + 1..end);
            data.truncate(cut);
            format!("cut at {cut} of {end}")
        }
        1 => {
            let from = rng.random_range(start..end);
            for b in data.get_mut(from..end).into_iter().flatten() {
                *b = 0;
            }
            format!("zeroed {from}..{end}")
        }
        _ => {
            // The next append was cut short: a prefix of a record (here, of a copy of the
            // last one, so its length field is plausible).
            let n = rng.random_range(1..end - start);
            let prefix: Vec<u8> = data.get(start..start + n).unwrap_or_default().to_vec();
            data.extend_from_slice(&prefix);
            format!("appended {n} bytes of a partial record")
        }
    };
    std::fs::write(&path, &data)?;
    Ok(Some(format!("{}: {what}", short(&path))))
}

/// Flips one byte inside a record of `plog` that is not the log's last record (so it can
/// never pass for a torn tail). Returns what it did, or `None` when the log has fewer than
/// two records.
pub fn corrupt_middle(plog: &Path, rng: &mut impl Rng) -> std::io::Result<Option<String>> {
    let segs = segments(plog, "log.");
    let mut candidates: Vec<(PathBuf, usize, usize)> = Vec::new();
    for (i, path) in segs.iter().enumerate() {
        let data = std::fs::read(path)?;
        let mut recs = records(&data, RECORD_HEADER_LEN);
        if i + 1 == segs.len() {
            recs.pop();
        }
        candidates.extend(recs.into_iter().map(|(s, e)| (path.clone(), s, e)));
    }
    if candidates.is_empty() {
        return Ok(None);
    }
    let (path, start, end) = candidates.swap_remove(rng.random_range(0..candidates.len()));
    let mut data = std::fs::read(&path)?;
    // Payload bytes only: a flipped length could make the rest look like a torn tail.
    let at = rng.random_range(start + RECORD_HEADER_LEN..end);
    let flip = rng.random_range(1..=255u8);
    if let Some(b) = data.get_mut(at) {
        *b ^= flip;
    }
    std::fs::write(&path, &data)?;
    Ok(Some(format!("{}: byte {at} ^= {flip:#04x}", short(&path))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn segment(records: &[&[u8]]) -> Vec<u8> {
        let mut d = vec![7u8; SEGMENT_HEADER_LEN];
        for r in records {
            d.extend_from_slice(&(r.len() as u32).to_be_bytes());
            d.extend_from_slice(&crc32(r).to_be_bytes());
            d.extend_from_slice(r);
        }
        d
    }

    fn crc32(b: &[u8]) -> u32 {
        b.iter().map(|x| u32::from(*x)).sum()
    }

    #[test]
    fn plog_directories_name_their_partition() {
        let p = Path::new("/d/replica/1.12.pegasus/plog");
        assert_eq!(partition_of_plog(p), Some(12));
        assert_eq!(
            partition_of_plog(Path::new("/d/replica/1.3.1700.err/plog")),
            None
        );
    }

    #[test]
    fn records_are_found_and_a_partial_one_is_not() {
        let mut d = segment(&[b"abc", b"defgh"]);
        assert_eq!(records(&d, RECORD_HEADER_LEN), vec![(28, 39), (39, 52)]);
        d.truncate(50);
        assert_eq!(records(&d, RECORD_HEADER_LEN), vec![(28, 39)]);
        // Node-log batches: a 16-byte header, the length counting the payload only.
        let mut b = vec![0u8; 28];
        for payload in [&b"batch-one"[..], b"two"] {
            b.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            b.extend_from_slice(&[0u8; 12]);
            b.extend_from_slice(payload);
        }
        assert_eq!(records(&b, BATCH_HEADER_LEN), vec![(28, 53), (53, 72)]);
    }

    #[test]
    fn torn_tail_only_touches_the_last_record_of_the_newest_segment() {
        let dir = tempfile::tempdir().unwrap();
        let plog = dir.path();
        let old = segment(&[b"one", b"two"]);
        let new = segment(&[b"three", b"four!"]);
        std::fs::write(plog.join("log.1"), &old).unwrap();
        std::fs::write(plog.join("log.2"), &new).unwrap();
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..20 {
            std::fs::write(plog.join("log.2"), &new).unwrap();
            let what = tear_tail(plog, &mut rng).unwrap().unwrap();
            let after = std::fs::read(plog.join("log.2")).unwrap();
            assert_eq!(std::fs::read(plog.join("log.1")).unwrap(), old, "{what}");
            // The first record of the newest segment is intact; the second is not whole.
            assert_eq!(after[..41], new[..41], "{what}");
            assert_ne!(after, new, "{what}");
        }
    }

    #[test]
    fn corrupt_middle_never_hits_the_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let plog = dir.path();
        let seg = segment(&[b"first", b"second", b"last"]);
        let mut rng = SmallRng::seed_from_u64(5);
        for _ in 0..50 {
            std::fs::write(plog.join("log.1"), &seg).unwrap();
            corrupt_middle(plog, &mut rng).unwrap().unwrap();
            let after = std::fs::read(plog.join("log.1")).unwrap();
            let diff: Vec<usize> = (0..seg.len()).filter(|i| seg[*i] != after[*i]).collect();
            assert_eq!(diff.len(), 1);
            // Inside the payload of record 1 or 2, never their headers or the last record.
            assert!(
                (36..41).contains(&diff[0]) || (49..55).contains(&diff[0]),
                "{diff:?}"
            );
        }
        std::fs::write(plog.join("log.1"), segment(&[b"only"])).unwrap();
        assert!(corrupt_middle(plog, &mut rng).unwrap().is_none());
    }
}
