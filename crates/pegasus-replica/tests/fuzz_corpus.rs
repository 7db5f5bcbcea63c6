//! Replays the committed fuzz corpora of the log record reader and the replica core.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::path::PathBuf;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn committed_log_record_corpus_replays_cleanly() {
    let dir = corpus("log_records");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        pegasus_replica::fuzzing::log_records(&data);
        n += 1;
    }
    assert!(n >= 5, "corpus has {n} files");
}

#[test]
fn committed_replica_event_corpus_holds_every_invariant() {
    let dir = corpus("replica_events");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        // A failed invariant panics with the input's name in the test output.
        eprintln!("{}", path.display());
        pegasus_replica::fuzzing::replica_events(&data);
        n += 1;
    }
    assert!(n >= 5, "corpus has {n} files");
}

#[test]
fn replica_event_seeds_elect_primaries_and_commit_writes() {
    let seeds = pegasus_replica::fuzzing::replica_event_seeds();
    assert!(seeds.len() >= 5);
    for (k, seed) in seeds.iter().enumerate() {
        let report = pegasus_replica::fuzzing::replica_events(seed);
        eprintln!("seed {k}: {report:?}");
        assert!(report.elections >= 1, "seed {k}: {report:?}");
        assert!(report.commits >= 5, "seed {k}: {report:?}");
        // All but the last (hostile traffic) stay within the model, so safety is checked.
        assert_eq!(report.honest, k + 1 < seeds.len(), "seed {k}: {report:?}");
    }
}

/// The committed seeds are exactly what `replica_event_seeds` generates, so a change to
/// the program encoding cannot leave stale seeds behind. `WRITE_SEEDS=1 cargo test -p
/// pegasus-replica --test fuzz_corpus committed_seeds` rewrites them instead.
#[test]
fn committed_seeds_match_the_generated_ones() {
    let dir = corpus("replica_events");
    let write = std::env::var_os("WRITE_SEEDS").is_some();
    for (k, seed) in pegasus_replica::fuzzing::replica_event_seeds()
        .iter()
        .enumerate()
    {
        let path = dir.join(format!("seed-{k}"));
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, seed).unwrap();
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            *seed,
            "{} is stale: rerun with WRITE_SEEDS=1",
            path.display()
        );
    }
}
