//! Workloads: YCSB's core workloads A–F mapped to Pegasus, and Pegasus's own bench names.
//!
//! A record id `n` is hash key `format_key(n / sortkeys_per_hashkey)` and sort key
//! `format_key(n % sortkeys_per_hashkey)`; values are `value_size` bytes (Pegasus's bench
//! defaults: 16 B keys, 100 B values). Against Redis the key is the two concatenated.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::keys::{format_key, Distribution, KeyChooser, KEY_LEN};

/// What one operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// A point get.
    Read,
    /// A set of an existing record.
    Update,
    /// A set of a new record.
    Insert,
    /// A range read within one hash key (YCSB-E).
    Scan,
    /// A get followed by a conditional set of what was read (YCSB-F).
    ReadModifyWrite,
    /// A delete.
    Delete,
    /// A multi_set of `batch` sort keys under one hash key.
    MultiSet,
    /// A multi_get of `batch` sort keys under one hash key.
    MultiGet,
}

impl OpKind {
    /// Whether the operation writes.
    pub fn is_write(self) -> bool {
        !matches!(self, Self::Read | Self::Scan | Self::MultiGet)
    }

    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Update => "update",
            Self::Insert => "insert",
            Self::Scan => "scan",
            Self::ReadModifyWrite => "read_modify_write",
            Self::Delete => "delete",
            Self::MultiSet => "multi_set",
            Self::MultiGet => "multi_get",
        }
    }
}

/// A named workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadName {
    /// YCSB load phase: insert every record once.
    Load,
    /// 50 % read, 50 % update.
    A,
    /// 95 % read, 5 % update.
    B,
    /// 100 % read.
    C,
    /// 95 % read of the latest records, 5 % insert.
    D,
    /// 95 % short scans within a hash key, 5 % insert.
    E,
    /// 50 % read, 50 % read-modify-write (get + check_and_set).
    F,
    /// Pegasus's `fillrandom_pegasus`: sets of random records.
    FillrandomPegasus,
    /// Pegasus's `readrandom_pegasus`: gets of random records.
    ReadrandomPegasus,
    /// Pegasus's `deleterandom_pegasus`: deletes of random records.
    DeleterandomPegasus,
    /// Pegasus's multi_set bench: `batch` sort keys per call.
    MultiSetPegasus,
    /// Pegasus's multi_get bench: `batch` sort keys per call.
    MultiGetPegasus,
}

const ALL: [(WorkloadName, &str); 12] = [
    (WorkloadName::Load, "load"),
    (WorkloadName::A, "a"),
    (WorkloadName::B, "b"),
    (WorkloadName::C, "c"),
    (WorkloadName::D, "d"),
    (WorkloadName::E, "e"),
    (WorkloadName::F, "f"),
    (WorkloadName::FillrandomPegasus, "fillrandom_pegasus"),
    (WorkloadName::ReadrandomPegasus, "readrandom_pegasus"),
    (WorkloadName::DeleterandomPegasus, "deleterandom_pegasus"),
    (WorkloadName::MultiSetPegasus, "multi_set_pegasus"),
    (WorkloadName::MultiGetPegasus, "multi_get_pegasus"),
];

impl WorkloadName {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        ALL.iter().find(|(w, _)| *w == self).map_or("?", |(_, n)| n)
    }

    /// The operation mix, as (kind, weight) pairs.
    pub fn mix(self) -> &'static [(OpKind, f64)] {
        use OpKind::*;
        match self {
            Self::Load => &[(Insert, 1.0)],
            Self::A => &[(Read, 0.5), (Update, 0.5)],
            Self::B => &[(Read, 0.95), (Update, 0.05)],
            Self::C | Self::ReadrandomPegasus => &[(Read, 1.0)],
            Self::D => &[(Read, 0.95), (Insert, 0.05)],
            Self::E => &[(Scan, 0.95), (Insert, 0.05)],
            Self::F => &[(Read, 0.5), (ReadModifyWrite, 0.5)],
            Self::FillrandomPegasus => &[(Update, 1.0)],
            Self::DeleterandomPegasus => &[(Delete, 1.0)],
            Self::MultiSetPegasus => &[(MultiSet, 1.0)],
            Self::MultiGetPegasus => &[(MultiGet, 1.0)],
        }
    }

    /// YCSB's request distribution for this workload (uniform for Pegasus's names).
    pub fn default_distribution(self) -> Distribution {
        match self {
            Self::D => Distribution::Latest,
            Self::A | Self::B | Self::C | Self::E | Self::F => Distribution::Zipfian,
            _ => Distribution::Uniform,
        }
    }
}

impl std::fmt::Display for WorkloadName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for WorkloadName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        let lower = lower.strip_prefix("ycsb-").unwrap_or(&lower);
        ALL.iter()
            .find(|(_, n)| *n == lower)
            .map(|(w, _)| *w)
            .ok_or_else(|| {
                let names: Vec<&str> = ALL.iter().map(|(_, n)| *n).collect();
                format!("unknown workload {s:?} (one of {})", names.join(", "))
            })
    }
}

/// A workload with its parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadSpec {
    /// Which workload.
    pub name: WorkloadName,
    /// How ids are chosen.
    pub distribution: Distribution,
    /// Records loaded (the key space of reads and updates).
    pub records: u64,
    /// Value size, bytes.
    pub value_size: usize,
    /// Records per hash key.
    pub sortkeys_per_hashkey: u64,
    /// Longest scan (YCSB-E draws 1..=max_scan).
    pub max_scan: u32,
    /// Sort keys per multi_set / multi_get.
    pub batch: u32,
}

impl WorkloadSpec {
    /// A workload with Pegasus's bench defaults.
    pub fn new(name: WorkloadName, records: u64) -> Self {
        Self {
            name,
            distribution: name.default_distribution(),
            records: records.max(1),
            value_size: 100,
            sortkeys_per_hashkey: 1,
            max_scan: 100,
            batch: 10,
        }
    }

    /// Hash key and sort key of record `id`.
    pub fn key_of(&self, id: u64) -> ([u8; KEY_LEN], [u8; KEY_LEN]) {
        let per = self.sortkeys_per_hashkey.max(1);
        (format_key(id / per), format_key(id % per))
    }
}

/// State shared by every client task of one run.
#[derive(Debug)]
pub struct Shared {
    chooser: KeyChooser,
    next_insert: AtomicU64,
    /// For `Load`: inserts stop at this id.
    insert_limit: Option<u64>,
}

impl Shared {
    /// Shared state for `spec`. Load inserts ids `0..records`; other workloads insert after
    /// the loaded records.
    pub fn new(spec: &WorkloadSpec) -> Self {
        let load = spec.name == WorkloadName::Load;
        Self {
            chooser: KeyChooser::new(spec.distribution, spec.records),
            next_insert: AtomicU64::new(if load { 0 } else { spec.records }),
            insert_limit: load.then_some(spec.records),
        }
    }

    /// Records that exist now.
    pub fn inserted(&self) -> u64 {
        self.next_insert.load(Ordering::Relaxed)
    }
}

/// One operation to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// What it does.
    pub kind: OpKind,
    /// Hash key.
    pub hash_key: [u8; KEY_LEN],
    /// Sort key (the first one, for scans and batches).
    pub sort_key: [u8; KEY_LEN],
    /// Records a scan asks for, or the batch size.
    pub count: u32,
    /// Value to write.
    pub value: Vec<u8>,
}

/// A value of `size` bytes that names the record and a sequence number, so each write
/// changes the stored bytes.
fn make_value(size: usize, id: u64, seq: u64) -> Vec<u8> {
    let head = format!("{id:016x}{seq:016x}");
    let mut v: Vec<u8> = head.into_bytes();
    v.resize(size.max(1), b'v');
    v.truncate(size);
    v
}

impl WorkloadSpec {
    /// The next operation, or `None` when a load has inserted every record.
    pub fn next_op(&self, shared: &Shared, rng: &mut impl Rng) -> Option<Op> {
        let mix = self.name.mix();
        let mut pick: f64 = rng.random::<f64>() * mix.iter().map(|(_, w)| w).sum::<f64>();
        let mut kind = mix.last().map_or(OpKind::Read, |(k, _)| *k);
        for (k, w) in mix {
            if pick < *w {
                kind = *k;
                break;
            }
            pick -= w;
        }
        let seq: u64 = rng.random();
        let (id, count) = match kind {
            OpKind::Insert => {
                let id = shared.next_insert.fetch_add(1, Ordering::Relaxed);
                if shared.insert_limit.is_some_and(|limit| id >= limit) {
                    return None;
                }
                (id, 1)
            }
            OpKind::Scan => (
                shared.chooser.choose(rng, shared.inserted()),
                rng.random_range(1..=self.max_scan.max(1)),
            ),
            OpKind::MultiSet | OpKind::MultiGet => (
                shared.chooser.choose(rng, shared.inserted()),
                self.batch.max(1),
            ),
            _ => (shared.chooser.choose(rng, shared.inserted()), 1),
        };
        let (hash_key, sort_key) = match kind {
            // Batches use their own hash keys, each holding sort keys 0..batch.
            OpKind::MultiSet | OpKind::MultiGet => (format_key(id), format_key(0)),
            _ => self.key_of(id),
        };
        let value = if kind.is_write() && kind != OpKind::Delete {
            make_value(self.value_size, id, seq)
        } else {
            Vec::new()
        };
        Some(Op {
            kind,
            hash_key,
            sort_key,
            count,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use std::collections::HashSet;

    #[test]
    fn workload_names_parse_both_ways() {
        for (w, n) in ALL {
            assert_eq!(n.parse::<WorkloadName>().unwrap(), w);
            assert_eq!(w.to_string(), n);
        }
        assert_eq!("YCSB-A".parse::<WorkloadName>().unwrap(), WorkloadName::A);
        assert!("z".parse::<WorkloadName>().is_err());
    }

    #[test]
    fn load_inserts_every_record_exactly_once_then_stops() {
        let spec = WorkloadSpec::new(WorkloadName::Load, 500);
        let shared = Shared::new(&spec);
        let mut rng = SmallRng::seed_from_u64(1);
        let mut keys = HashSet::new();
        while let Some(op) = spec.next_op(&shared, &mut rng) {
            assert_eq!(op.kind, OpKind::Insert);
            assert_eq!(op.value.len(), 100);
            assert!(keys.insert(op.hash_key));
        }
        assert_eq!(keys.len(), 500);
        assert!(keys.contains(&format_key(499)) && !keys.contains(&format_key(500)));
    }

    #[test]
    fn the_mix_matches_the_workload_weights() {
        let spec = WorkloadSpec::new(WorkloadName::B, 1000);
        let shared = Shared::new(&spec);
        let mut rng = SmallRng::seed_from_u64(2);
        let updates = (0..20_000)
            .filter(|_| spec.next_op(&shared, &mut rng).unwrap().kind == OpKind::Update)
            .count();
        // 5 % of 20,000 = 1,000.
        assert!((800..1200).contains(&updates), "{updates}");
    }

    #[test]
    fn reads_stay_inside_the_loaded_key_space() {
        let mut spec = WorkloadSpec::new(WorkloadName::C, 300);
        spec.sortkeys_per_hashkey = 10;
        let shared = Shared::new(&spec);
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..5000 {
            let op = spec.next_op(&shared, &mut rng).unwrap();
            assert!(op.hash_key < format_key(30), "{:?}", op.hash_key);
            assert!(op.sort_key < format_key(10));
        }
    }

    #[test]
    fn writes_carry_distinct_values_of_the_configured_size() {
        let mut spec = WorkloadSpec::new(WorkloadName::FillrandomPegasus, 10);
        spec.value_size = 40;
        let shared = Shared::new(&spec);
        let mut rng = SmallRng::seed_from_u64(4);
        let a = spec.next_op(&shared, &mut rng).unwrap();
        let b = spec.next_op(&shared, &mut rng).unwrap();
        assert_eq!(a.value.len(), 40);
        assert_ne!(a.value, b.value);
    }
}
