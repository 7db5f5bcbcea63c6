//! What the log tests share: distinct, recognisable mutations.

use bytes::Bytes;
use pegasus_replica::Mutation;

/// The mutation at `decree` under `ballot`, its update naming both.
pub fn m(decree: i64, ballot: i64) -> Mutation {
    Mutation {
        ballot,
        decree,
        last_committed: decree - 1,
        timestamp_us: decree as u64 * 10,
        updates: vec![Bytes::from(format!("update-{decree}-{ballot}"))],
    }
}
