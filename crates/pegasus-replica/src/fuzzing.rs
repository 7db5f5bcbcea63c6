//! Fuzz entry points (`fuzz/fuzz_targets/log_records.rs`), also replayed by
//! `tests/fuzz_corpus.rs` over the committed corpus.

use bytes::Bytes;

use crate::log::{encode_record, scan_records, SegmentScan};
use crate::mutation::Mutation;

/// Reads arbitrary bytes as log records: never panics, and every record it accepts
/// re-encodes to exactly the bytes it was read from.
pub fn log_records(data: &[u8]) {
    let mutations = match scan_records(data, 0) {
        SegmentScan::Clean(m) => m,
        SegmentScan::BadAt {
            mutations, offset, ..
        } => {
            assert!(offset <= data.len());
            mutations
        }
    };
    let mut again = Vec::new();
    for m in &mutations {
        encode_record(m, &mut again);
    }
    assert_eq!(
        data.get(..again.len()),
        Some(&again[..]),
        "records re-encode to their bytes"
    );
    let _ = Mutation::decode(&Bytes::copy_from_slice(data));
}
