//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same entry points
//! the fuzz targets use, so every input fuzzing ever kept is re-checked by `cargo test`.

#![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]

use std::path::PathBuf;

use pegasus_proto::fuzzing::{run, TARGETS};

#[test]
fn committed_fuzz_corpus_replays_without_panics() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for target in TARGETS {
        let dir = root.join(target);
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        assert!(!entries.is_empty(), "no corpus for {target}");
        for path in entries {
            let data = std::fs::read(&path).unwrap();
            assert!(run(target, &data), "unknown target {target}");
        }
    }
}

#[test]
fn every_target_has_a_fuzz_binary() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    for target in TARGETS {
        assert!(
            root.join(format!("{target}.rs")).is_file(),
            "missing fuzz/fuzz_targets/{target}.rs"
        );
    }
}
