//! Identifiers: tables ("apps"), partitions, ballots and decrees.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A table's id, assigned by the meta server. Positive for real tables.
pub type AppId = i32;
/// A partition's index inside its table, `0..partition_count`.
pub type PartitionIndex = i32;
/// A PacificA configuration version. Every change of a partition's membership increments it.
pub type Ballot = i64;
/// The sequence number of a mutation inside a partition. Decree 0 means "nothing yet".
pub type Decree = i64;

/// The global id of a partition: (app id, partition index).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
pub struct Gpid {
    /// The table.
    pub app_id: AppId,
    /// The partition inside the table.
    pub pidx: PartitionIndex,
}

impl Gpid {
    /// A gpid from its parts.
    pub const fn new(app_id: AppId, pidx: PartitionIndex) -> Self {
        Self { app_id, pidx }
    }

    /// The wire form Pegasus uses for `dsn.gpid`: `(partition_index << 32) + app_id`,
    /// with the app id in the low 32 bits.
    pub const fn to_i64(self) -> i64 {
        ((self.pidx as i64) << 32) | (self.app_id as u32 as i64)
    }

    /// Inverse of [`Gpid::to_i64`].
    pub const fn from_i64(v: i64) -> Self {
        Self {
            app_id: v as i32,
            pidx: (v >> 32) as i32,
        }
    }
}

impl fmt::Display for Gpid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.app_id, self.pidx)
    }
}

/// The partition that owns a key hash, for a power-of-two partition count.
///
/// Clients compute `hash % partition_count`; servers check `hash & (partition_count - 1)`.
/// Both agree because the count is a power of two. Returns `None` for a count that is not a
/// positive power of two.
pub fn partition_for_hash(hash: u64, partition_count: i32) -> Option<PartitionIndex> {
    let count = u64::try_from(partition_count).ok()?;
    if !count.is_power_of_two() {
        return None;
    }
    PartitionIndex::try_from(hash & (count - 1)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpid_wire_form_puts_app_id_in_low_bits() {
        let g = Gpid::new(1, 3);
        assert_eq!(g.to_i64(), (3i64 << 32) + 1);
        assert_eq!(Gpid::from_i64(g.to_i64()), g);
        let neg = Gpid::new(-1, -1);
        assert_eq!(Gpid::from_i64(neg.to_i64()), neg);
    }

    #[test]
    fn partition_for_hash_requires_power_of_two() {
        assert_eq!(partition_for_hash(0x5d9a_d5b5_1c9a_4ab3, 4), Some(3));
        assert_eq!(partition_for_hash(7, 1), Some(0));
        assert_eq!(partition_for_hash(7, 3), None);
        assert_eq!(partition_for_hash(7, 0), None);
        assert_eq!(partition_for_hash(7, -4), None);
    }
}
