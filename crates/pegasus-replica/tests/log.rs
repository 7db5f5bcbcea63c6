//! Mutation log: durability, torn tails, corruption, GC, on the real and the in-memory
//! file system.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::path::Path;
use std::sync::Arc;

use pegasus_replica::fs::{CrashMode, FileSystem, MemFs, StdFs};
use pegasus_replica::log::{LogError, LogOptions, MutationLog};
use pegasus_replica::Mutation;
use proptest::prelude::*;
use support::{m, FaultyDisk};

mod support;

fn open(
    fs: &Arc<dyn FileSystem>,
    opts: LogOptions,
) -> Result<(MutationLog, Vec<Mutation>), LogError> {
    MutationLog::open(fs.clone(), Path::new("/plog"), opts).map(|(l, ms, _)| (l, ms))
}

/// Writes decrees 1..=n at ballot 1 in one flush (fsynced by default) and closes the log.
fn write_flushed(fs: &Arc<dyn FileSystem>, n: i64) {
    let (mut log, _) = open(fs, LogOptions::default()).unwrap();
    for d in 1..=n {
        log.append(&m(d, 1));
    }
    log.flush().unwrap();
}

fn mem() -> (MemFs, Arc<dyn FileSystem>) {
    let fs = MemFs::new();
    let dyn_fs: Arc<dyn FileSystem> = Arc::new(fs.clone());
    (fs, dyn_fs)
}

#[test]
fn flushed_mutations_survive_reopen_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    {
        let (mut log, replayed) = MutationLog::open(fs.clone(), dir.path(), LogOptions::default())
            .map(|(l, m, _)| (l, m))
            .unwrap();
        assert!(replayed.is_empty());
        for d in 1..=10 {
            log.append(&m(d, 1));
        }
        assert_eq!(log.flush().unwrap(), 10);
    }
    let (log, replayed, report) = MutationLog::open(fs, dir.path(), LogOptions::default()).unwrap();
    assert_eq!(replayed, (1..=10).map(|d| m(d, 1)).collect::<Vec<_>>());
    assert_eq!(log.max_decree(), 10);
    assert_eq!(report.truncated_bytes, 0);
}

#[test]
fn crash_after_fsync_loses_nothing() {
    let (memfs, fs) = mem();
    let (mut log, _) = open(&fs, LogOptions::default()).unwrap();
    for d in 1..=5 {
        log.append(&m(d, 1));
        log.flush().unwrap();
    }
    drop(log);
    memfs.crash(CrashMode::DropUnsynced);
    let (_, replayed) = open(&fs, LogOptions::default()).unwrap();
    assert_eq!(replayed.len(), 5);
}

#[test]
fn crash_before_fsync_loses_only_unsynced_mutations() {
    let (memfs, fs) = mem();
    write_flushed(&fs, 3);
    // Pegasus's no-sync mode: flushed but never fsynced.
    let nosync = LogOptions {
        sync: false,
        ..LogOptions::default()
    };
    let (mut log, _) = open(&fs, nosync).unwrap();
    for d in 4..=6 {
        log.append(&m(d, 1));
    }
    log.flush().unwrap();
    drop(log);
    memfs.crash(CrashMode::DropUnsynced);
    let (_, replayed) = open(&fs, LogOptions::default()).unwrap();
    assert_eq!(
        replayed.iter().map(|m| m.decree).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[test]
fn torn_tail_is_cut_and_the_log_keeps_working() {
    let (memfs, fs) = mem();
    write_flushed(&fs, 3);
    let (mut log, _) = open(
        &fs,
        LogOptions {
            sync: false,
            ..LogOptions::default()
        },
    )
    .unwrap();
    for d in 4..=5 {
        log.append(&m(d, 1));
    }
    log.flush().unwrap();
    drop(log);
    memfs.crash(CrashMode::TearUnsynced { keep_permille: 700 });
    let (mut log, replayed, report) =
        MutationLog::open(fs.clone(), Path::new("/plog"), LogOptions::default()).unwrap();
    // Decree 4 was complete within the kept 70 %; decree 5 was torn.
    assert_eq!(
        replayed.iter().map(|m| m.decree).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(report.truncated_bytes > 0);
    log.append(&m(5, 2));
    log.flush().unwrap();
    drop(log);
    let (_, replayed) = open(&fs, LogOptions::default()).unwrap();
    assert_eq!(replayed.last(), Some(&m(5, 2)));
    assert_eq!(replayed.len(), 5);
}

#[test]
fn corruption_in_the_middle_is_reported_not_repaired() {
    let (memfs, fs) = mem();
    write_flushed(&fs, 5);
    // Flip a byte inside the second record's payload.
    assert!(memfs.corrupt_byte(Path::new("/plog/log.1"), 28 + 50 + 20));
    let err = open(&fs, LogOptions::default()).unwrap_err();
    assert!(matches!(err, LogError::Corrupt { segment: 1, .. }), "{err}");
}

#[test]
fn a_corrupt_header_of_an_earlier_segment_is_reported() {
    let (memfs, fs) = mem();
    let small = LogOptions {
        segment_bytes: 100,
        sync: true,
    };
    let (mut log, _) = open(&fs, small).unwrap();
    for d in 1..=6 {
        log.append(&m(d, 1));
        log.flush().unwrap();
    }
    assert!(log.segment_count() > 2);
    drop(log);
    assert!(memfs.corrupt_byte(Path::new("/plog/log.1"), 3));
    assert!(matches!(
        open(&fs, small),
        Err(LogError::Corrupt {
            segment: 1,
            offset: 0,
            ..
        })
    ));
}

#[test]
fn the_highest_ballot_wins_for_a_decree() {
    let (_, fs) = mem();
    let (mut log, _) = open(&fs, LogOptions::default()).unwrap();
    log.append(&m(1, 1));
    log.append(&m(2, 1));
    // A new primary re-proposed decree 2 with its ballot.
    log.append(&m(2, 3));
    log.append(&m(3, 3));
    log.flush().unwrap();
    drop(log);
    let (log, replayed) = open(&fs, LogOptions::default()).unwrap();
    assert_eq!(replayed, vec![m(1, 1), m(2, 3), m(3, 3)]);
    assert_eq!(log.read_from(2).unwrap(), vec![m(2, 3), m(3, 3)]);
}

#[test]
fn gc_removes_only_segments_storage_already_holds() {
    let (_, fs) = mem();
    let small = LogOptions {
        segment_bytes: 120,
        sync: true,
    };
    let (mut log, _) = open(&fs, small).unwrap();
    for d in 1..=20 {
        log.append(&m(d, 1));
        log.flush().unwrap();
    }
    let before = log.segment_count();
    let removed = log.gc(10).unwrap();
    assert!(
        removed > 0 && removed < before,
        "removed {removed} of {before}"
    );
    // Everything after the durable decree is still there.
    let rest = log.read_from(11).unwrap();
    assert_eq!(
        rest.iter().map(|m| m.decree).collect::<Vec<_>>(),
        (11..=20).collect::<Vec<_>>()
    );
    drop(log);
    let (log, replayed) = open(&fs, small).unwrap();
    assert!(replayed.first().unwrap().decree <= 11);
    assert_eq!(replayed.last().unwrap().decree, 20);
    assert_eq!(log.max_decree(), 20);
    // GC never removes the segment being written.
    let (mut log, _) = open(&fs, small).unwrap();
    log.gc(1000).unwrap();
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn an_io_failure_is_an_error_and_nothing_counts_as_logged() {
    let (memfs, fs) = mem();
    let (mut log, _) = open(&fs, LogOptions::default()).unwrap();
    log.append(&m(1, 1));
    log.flush().unwrap();
    memfs.set_fail_io(true);
    log.append(&m(2, 1));
    let err = log.flush().unwrap_err();
    assert!(matches!(err, LogError::Io(_)));
    assert!(
        !err.is_transient(),
        "an injected EIO is not a lack of resources"
    );
    assert_eq!(log.max_decree(), 1);
    memfs.set_fail_io(false);
    drop(log);
    memfs.crash(CrashMode::DropUnsynced);
    let (_, replayed) = open(&fs, LogOptions::default()).unwrap();
    assert_eq!(replayed.len(), 1);
}

#[test]
fn a_full_disk_is_transient_and_leaves_no_torn_tail() {
    let disk = FaultyDisk::default();
    let full = disk.full.clone();
    let fs: Arc<dyn FileSystem> = Arc::new(disk);
    let (mut log, _) = open(&fs, LogOptions::default()).unwrap();
    log.append(&m(1, 1));
    log.flush().unwrap();
    full.store(true, std::sync::atomic::Ordering::SeqCst);
    log.append(&m(2, 1));
    log.append(&m(3, 1));
    let err = log.flush().unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(log.max_decree(), 1);
    drop(log);
    // Space is back: the reopened log holds what was flushed, and the half-written batch
    // was cut, not left as a torn tail.
    full.store(false, std::sync::atomic::Ordering::SeqCst);
    let (mut log, replayed, report) =
        MutationLog::open(fs.clone(), Path::new("/plog"), LogOptions::default()).unwrap();
    assert_eq!(replayed.iter().map(|m| m.decree).collect::<Vec<_>>(), [1]);
    assert_eq!(report.truncated_bytes, 0);
    log.append(&m(2, 1));
    log.flush().unwrap();
}

#[derive(Debug, Clone)]
enum Step {
    Append,
    Flush,
    FlushNoSync,
    Crash(u16),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => Just(Step::Append),
        3 => Just(Step::Flush),
        2 => Just(Step::FlushNoSync),
        1 => (0u16..=1000).prop_map(Step::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Whatever crashes and torn writes happen, a reopened log holds a prefix of what was
    /// appended, including everything that was flushed with fsync.
    #[test]
    fn replay_returns_a_prefix_containing_every_synced_mutation(steps in proptest::collection::vec(step(), 1..60)) {
        let (memfs, fs) = mem();
        let small = LogOptions { segment_bytes: 256, sync: true };
        let (mut log, _) = open(&fs, small).unwrap();
        let mut next = 1i64;
        let mut synced = 0i64;
        let mut appended: Vec<Mutation> = Vec::new();
        // Whether the current handle fsyncs on flush.
        let mut syncing = true;
        for s in steps {
            match s {
                Step::Append => {
                    let mu = m(next, 1);
                    log.append(&mu);
                    appended.push(mu);
                    next += 1;
                }
                Step::Flush => {
                    log.flush().unwrap();
                    if syncing {
                        synced = next - 1;
                    }
                }
                Step::FlushNoSync => {
                    // Switch the handle's mode: reopening without a crash loses nothing flushed.
                    log.flush().unwrap();
                    drop(log);
                    syncing = !syncing;
                    let (l, replayed) = open(&fs, LogOptions { sync: syncing, ..small }).unwrap();
                    prop_assert_eq!(&replayed[..], &appended[..]);
                    log = l;
                }
                Step::Crash(keep) => {
                    drop(log);
                    memfs.crash(CrashMode::TearUnsynced { keep_permille: keep });
                    let (l, replayed) = open(&fs, small).unwrap();
                    prop_assert!(replayed.len() as i64 >= synced, "lost synced mutations");
                    prop_assert_eq!(&replayed[..], &appended[..replayed.len()]);
                    appended.truncate(replayed.len());
                    next = appended.len() as i64 + 1;
                    synced = next - 1;
                    syncing = true;
                    log = l;
                }
            }
        }
    }
}
