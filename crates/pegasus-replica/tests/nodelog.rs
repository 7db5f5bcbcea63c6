//! The node log: what it acknowledged survives any crash (in the replicas' own logs after
//! recovery merges it there), torn tails are cut and reported, damage before the tail is
//! corruption, a failed sync never poisons recovery, and segments are forgotten only after
//! their replicas' logs are synced.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use pegasus_core::ids::Gpid;
use pegasus_replica::fs::{CrashMode, FileSystem, MemFs};
use pegasus_replica::log::{encode_record, LogError, LogOptions, LogPosition, MutationLog};
use pegasus_replica::nodelog::{self, NodeLog, NodeLogOptions, PlogFile, ReplicaKey};
use pegasus_replica::Mutation;
use proptest::prelude::*;
use support::{m, FaultyDisk};

mod support;

fn key(p: i32) -> ReplicaKey {
    ReplicaKey {
        gpid: Gpid { app_id: 2, pidx: p },
        incarnation: 7,
    }
}

fn records(ms: &[Mutation]) -> Vec<u8> {
    let mut out = Vec::new();
    for mu in ms {
        encode_record(mu, &mut out);
    }
    out
}

fn nlog_dir() -> &'static Path {
    Path::new("/nlog")
}

fn plog_of(fs: &MemFs) -> PlogFile {
    PlogFile {
        fs: Arc::new(fs.clone()),
        path: PathBuf::from("/plog/log.1"),
        at: LogPosition::default(),
    }
}

fn small(sync: bool) -> NodeLogOptions {
    NodeLogOptions {
        segment_bytes: 300,
        sync,
        ..NodeLogOptions::default()
    }
}

#[test]
fn acknowledged_batches_of_every_replica_come_back_after_a_power_loss() {
    let fs = MemFs::new();
    let plog = plog_of(&MemFs::new());
    let mut log = NodeLog::create(Arc::new(fs.clone()), nlog_dir(), small(true)).unwrap();
    log.append(key(0), &plog, &records(&[m(1, 1)]));
    log.append(key(1), &plog, &records(&[m(1, 1), m(2, 1)]));
    log.flush().unwrap();
    log.append(key(0), &plog, &records(&[m(2, 1)]));
    log.flush().unwrap();
    // Waiting, never flushed: not acknowledged, must not come back.
    log.append(key(1), &plog, &records(&[m(3, 1)]));
    fs.crash(CrashMode::DropUnsynced);
    let got = nodelog::recover(&fs, nlog_dir()).unwrap();
    assert_eq!(
        pegasus_replica::log::count_records(&got.records[&key(1)].bytes),
        2
    );
    assert_eq!(got.records[&key(0)].bytes, records(&[m(1, 1), m(2, 1)]));
    assert_eq!(got.records[&key(1)].bytes, records(&[m(1, 1), m(2, 1)]));
    assert_eq!(got.torn_bytes, 0);
}

#[test]
fn a_torn_last_batch_is_cut_and_reported() {
    let fs = MemFs::new();
    let plog = plog_of(&MemFs::new());
    // A writer that does not sync (plog_force_flush = false) leaves its batches to the
    // crash, which keeps the first whole and part of the second.
    let mut log = NodeLog::create(Arc::new(fs.clone()), nlog_dir(), small(false)).unwrap();
    log.append(key(0), &plog, &records(&[m(1, 1)]));
    log.flush().unwrap();
    log.append(key(0), &plog, &records(&[m(2, 1)]));
    log.flush().unwrap();
    fs.crash(CrashMode::TearUnsynced { keep_permille: 700 });
    let got = nodelog::recover(&fs, nlog_dir()).unwrap();
    assert!(got.torn_bytes > 0, "{got:?}");
    assert_eq!(got.records[&key(0)].bytes, records(&[m(1, 1)]));
}

#[test]
fn a_damaged_batch_before_the_last_segment_is_corruption() {
    let fs = MemFs::new();
    let plog = plog_of(&MemFs::new());
    let mut log = NodeLog::create(Arc::new(fs.clone()), nlog_dir(), small(true)).unwrap();
    for d in 1..=20 {
        log.append(key(0), &plog, &records(&[m(d, 1)]));
        log.flush().unwrap();
    }
    assert!(log.segment_count() > 2);
    let first = fs.list(nlog_dir()).unwrap().into_iter().min().unwrap();
    assert!(fs.corrupt_byte(&nlog_dir().join(&first), 40));
    match nodelog::recover(&fs, nlog_dir()) {
        Err(LogError::Corrupt { offset, .. }) => assert!(offset >= 28),
        other => panic!("damage before the tail must be corruption: {other:?}"),
    }
}

#[test]
fn a_batch_whose_sync_failed_is_never_recovered_and_does_not_read_as_corruption() {
    let fs = FaultyDisk::default();
    let (mem, fail) = (fs.inner.clone(), fs.fail_sync.clone());
    let plog = plog_of(&MemFs::new());
    let mut log = NodeLog::create(Arc::new(fs), nlog_dir(), NodeLogOptions::default()).unwrap();
    log.append(key(0), &plog, &records(&[m(1, 1)]));
    log.flush().unwrap();
    fail.store(true, Ordering::SeqCst);
    log.append(key(0), &plog, &records(&[m(2, 1)]));
    assert!(log.flush().is_err());
    fail.store(false, Ordering::SeqCst);
    // The next batch goes to a new segment; the failed one's bytes stay behind, unsynced
    // here but as good as durable on a disk that flushed them anyway.
    log.append(key(1), &plog, &records(&[m(1, 1)]));
    log.flush().unwrap();
    assert_eq!(log.segment_count(), 2);
    mem.crash(CrashMode::TearUnsynced {
        keep_permille: 1000,
    });
    let got = nodelog::recover(&mem, nlog_dir()).unwrap();
    assert_eq!(got.records[&key(0)].bytes, records(&[m(1, 1)]));
    assert_eq!(got.records[&key(1)].bytes, records(&[m(1, 1)]));
    assert_eq!(got.torn_bytes, 0);
}

#[test]
fn a_segment_is_forgotten_only_after_its_replicas_logs_are_synced() {
    let node = MemFs::new();
    let replica = MemFs::new();
    let mut f = replica.open_append(Path::new("/plog/log.1")).unwrap();
    replica.sync_dir(Path::new("/plog")).unwrap();
    let plog = plog_of(&replica);
    let mut log = NodeLog::create(Arc::new(node.clone()), nlog_dir(), small(true)).unwrap();
    for d in 1..=10 {
        let bytes = records(&[m(d, 1)]);
        f.append(&bytes).unwrap();
        log.append(key(0), &plog, &bytes);
        log.flush().unwrap();
    }
    let before = log.segment_count();
    assert!(before > 1);
    assert_eq!(replica.synced_len(Path::new("/plog/log.1")), Some(0));
    let forgotten = log.retire().unwrap();
    assert_eq!(forgotten, before - 1);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(
        replica.synced_len(Path::new("/plog/log.1")),
        Some(records(&(1..=10).map(|d| m(d, 1)).collect::<Vec<_>>()).len())
    );
    // A replica whose log file is gone (trimmed) does not hold anything up.
    for d in 11..=20 {
        log.append(key(1), &plog_of(&MemFs::new()), &records(&[m(d, 1)]));
        log.flush().unwrap();
    }
    assert!(log.retire().unwrap() > 0);
}

#[test]
fn merging_recovered_records_into_a_replica_log_restores_what_it_lost() {
    let replica = MemFs::new();
    let rfs: Arc<dyn FileSystem> = Arc::new(replica.clone());
    let plog_dir = Path::new("/plog");
    let opts = LogOptions::default();
    let (mut plog, _, _) = MutationLog::open(rfs.clone(), plog_dir, opts).unwrap();
    for d in 1..=3 {
        plog.append(&m(d, 1));
    }
    let from = plog.end();
    let written = plog.write_unsynced().unwrap();
    drop(plog);
    replica.crash(CrashMode::TearUnsynced { keep_permille: 400 });
    let merged = MutationLog::merge(rfs.clone(), plog_dir, opts, from, &written).unwrap();
    assert!(merged.cut && merged.covered, "{merged:?}");
    assert!(!merged.lost_acknowledged(false));
    let (_, replayed, report) = MutationLog::open(rfs, plog_dir, opts).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(replayed, (1..=3).map(|d| m(d, 1)).collect::<Vec<_>>());
}

#[derive(Debug, Clone)]
enum Step {
    /// Replica `r` appends its next mutation (written to its log, handed to the node log).
    Append(usize),
    /// The node log writes and syncs its batch: everything in it is acknowledged.
    Flush,
    /// Forget what can be forgotten.
    Retire,
    /// Power loss: every file system keeps this many thousandths of its unsynced bytes.
    Crash(u16),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0usize..3).prop_map(Step::Append),
        3 => Just(Step::Flush),
        1 => Just(Step::Retire),
        1 => (0u16..=1000).prop_map(Step::Crash),
    ]
}

struct Replica {
    fs: MemFs,
    log: MutationLog,
}

const PLOG: &str = "/plog";

fn plog_opts() -> LogOptions {
    LogOptions {
        segment_bytes: 256,
        sync: true,
    }
}

/// A node after [`restart`]: its node log, replicas, and what each replica's log replayed.
type Restarted = (NodeLog, Vec<Replica>, Vec<Vec<Mutation>>);

/// After a crash: recover the node log, merge each replica's records into its log, open
/// every log, start a new node log. Returns the replicas and what each log replays.
fn restart(node: &MemFs, fses: &[MemFs]) -> Result<Restarted, LogError> {
    let got = nodelog::recover(node, nlog_dir())?;
    let mut replicas = Vec::new();
    let mut replays = Vec::new();
    for (i, fs) in fses.iter().enumerate() {
        let dyn_fs: Arc<dyn FileSystem> = Arc::new(fs.clone());
        if let Some(recs) = got.records.get(&key(i as i32)) {
            let merged = MutationLog::merge(
                dyn_fs.clone(),
                Path::new(PLOG),
                plog_opts(),
                recs.from,
                &recs.bytes,
            )?;
            // Power losses only drop unsynced bytes: nothing synced is ever missing.
            assert!(merged.covered, "replica {i}: {merged:?}");
        }
        let (log, replayed, _) = MutationLog::open(dyn_fs, Path::new(PLOG), plog_opts())?;
        replicas.push(Replica {
            fs: fs.clone(),
            log,
        });
        replays.push(replayed);
    }
    let log = NodeLog::create(Arc::new(node.clone()), nlog_dir(), small(true))?;
    Ok((log, replicas, replays))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Three replicas write their logs without syncing and share one node log. Whatever
    /// power losses happen, after recovery every replica's log replays a prefix of what it
    /// appended that contains everything the node log acknowledged, and nothing else.
    #[test]
    fn recovery_keeps_every_acknowledged_mutation_of_every_replica(
        steps in proptest::collection::vec(step(), 1..80)
    ) {
        let node = MemFs::new();
        let fses: Vec<MemFs> = (0..3).map(|_| MemFs::new()).collect();
        let (mut nlog, mut replicas, _) = restart(&node, &fses).unwrap();
        let mut appended: Vec<Vec<Mutation>> = vec![Vec::new(); 3];
        let mut acked = [0usize; 3];
        let mut in_batch = [0usize; 3];
        for s in steps {
            match s {
                Step::Append(r) => {
                    let mu = m(appended[r].len() as i64 + 1, 1);
                    let rep = &mut replicas[r];
                    rep.log.append(&mu);
                    let path = rep.log.current_path().to_path_buf();
                    let at = rep.log.end();
                    let bytes = rep.log.write_unsynced().unwrap();
                    nlog.append(
                        key(r as i32),
                        &PlogFile { fs: Arc::new(rep.fs.clone()), path, at },
                        &bytes,
                    );
                    appended[r].push(mu);
                    in_batch[r] = appended[r].len();
                }
                Step::Flush => {
                    nlog.flush().unwrap();
                    acked = in_batch;
                }
                Step::Retire => {
                    nlog.retire().unwrap();
                }
                Step::Crash(keep) => {
                    drop(nlog);
                    let mode = CrashMode::TearUnsynced { keep_permille: keep };
                    node.crash(mode);
                    for fs in &fses {
                        fs.crash(mode);
                    }
                    let (l, reps, replays) = restart(&node, &fses).unwrap();
                    for (r, replayed) in replays.iter().enumerate() {
                        prop_assert!(
                            replayed.len() >= acked[r],
                            "replica {} lost acknowledged mutations: {} < {}",
                            r, replayed.len(), acked[r]
                        );
                        prop_assert_eq!(&replayed[..], &appended[r][..replayed.len()]);
                        appended[r].truncate(replayed.len());
                    }
                    acked = [0, 1, 2].map(|r| appended[r].len());
                    in_batch = acked;
                    nlog = l;
                    replicas = reps;
                }
            }
        }
    }
}

#[test]
fn a_replica_log_that_lost_synced_bytes_is_not_covered_by_the_node_log() {
    // Records 1-3 reach the replica's log and are synced (as retiring a node-log segment
    // does); 4-5 are only written, and are in the node log. The disk then loses synced
    // bytes: the log ends inside record 3.
    let replica = MemFs::new();
    let rfs: Arc<dyn FileSystem> = Arc::new(replica.clone());
    let dir = Path::new("/plog");
    let opts = LogOptions::default();
    let (mut plog, _, _) = MutationLog::open(rfs.clone(), dir, opts).unwrap();
    for d in 1..=3 {
        plog.append(&m(d, 1));
    }
    plog.flush().unwrap();
    let synced_end = plog.end();
    for d in 4..=5 {
        plog.append(&m(d, 1));
    }
    let from = plog.end();
    let unsynced = plog.write_unsynced().unwrap();
    drop(plog);
    let seg = dir.join("log.1");
    rfs.truncate(&seg, synced_end.offset - 5).unwrap();
    let merged = MutationLog::merge(rfs.clone(), dir, opts, from, &unsynced).unwrap();
    assert!(!merged.covered, "{merged:?}");
    assert!(merged.lost_acknowledged(false));
    // Losing only what was never synced is covered: nothing acknowledged is missing.
    let replica = MemFs::new();
    let rfs: Arc<dyn FileSystem> = Arc::new(replica.clone());
    let (mut plog, _, _) = MutationLog::open(rfs.clone(), dir, opts).unwrap();
    plog.append(&m(1, 1));
    plog.flush().unwrap();
    let from = plog.end();
    plog.append(&m(2, 1));
    let unsynced = plog.write_unsynced().unwrap();
    drop(plog);
    replica.crash(CrashMode::DropUnsynced);
    let merged = MutationLog::merge(rfs, dir, opts, from, &unsynced).unwrap();
    assert!(
        merged.covered && !merged.lost_acknowledged(false),
        "{merged:?}"
    );
    assert!(!merged.lost_acknowledged(true), "nothing was cut");
}
