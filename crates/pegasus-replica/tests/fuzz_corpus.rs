//! Replays the committed fuzz corpus of the log record reader.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::path::PathBuf;

#[test]
fn committed_log_record_corpus_replays_cleanly() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/log_records");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        pegasus_replica::fuzzing::log_records(&data);
        n += 1;
    }
    assert!(n >= 5, "corpus has {n} files");
}
