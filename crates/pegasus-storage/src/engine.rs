//! The storage engine trait: an ordered key-value store with a data column family, a small
//! meta column family, atomic decree-tagged write batches, iterators and checkpoints.
//!
//! Two implementations pass one conformance suite (`tests/engine_conformance.rs`):
//! [`crate::rocks::RocksEngine`] for servers and [`crate::memory::MemoryEngine`] for the
//! simulator and unit tests.

use std::path::Path;

use pegasus_core::ids::Decree;

use crate::error::Result;
use crate::ttl::TtlPolicy;

/// One change inside a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// Put `value` at `key` (both already encoded).
    Put {
        /// Encoded key.
        key: Vec<u8>,
        /// Encoded value.
        value: Vec<u8>,
    },
    /// Delete `key`.
    Delete {
        /// Encoded key.
        key: Vec<u8>,
    },
}

/// The changes of one committed mutation, applied atomically together with its decree.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteBatch {
    /// The mutation's decree; must be `last_applied_decree() + 1`.
    pub decree: Decree,
    /// The mutation's timestamp (Unix microseconds), chosen by the primary. Every replica
    /// applies the same timestamp, which keeps non-idempotent writes deterministic.
    pub write_time_us: u64,
    /// Data changes, applied in order.
    pub ops: Vec<BatchOp>,
    /// The batch holds only blind writes (puts and deletes whose values do not depend on
    /// the stored state). Re-applying a run of such batches to a state that already holds
    /// them changes nothing, so an engine may record their decree lazily (see
    /// [`StorageEngine::durable_decree`]).
    pub blind: bool,
    /// A new TTL policy that takes effect with this batch (a `default_ttl` env change
    /// replicated as a mutation, so every replica switches at the same decree).
    pub new_ttl_policy: Option<TtlPolicy>,
}

/// Progress markers kept in the meta column family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppliedState {
    /// The last decree whose batch was applied.
    pub decree: Decree,
    /// That batch's timestamp (Unix microseconds).
    pub write_time_us: u64,
}

/// Bounds and mode of an iterator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IterOptions {
    /// Inclusive lower bound; `None` = from the first key.
    pub lower: Option<Vec<u8>>,
    /// Exclusive upper bound; `None` = to the last key.
    pub upper: Option<Vec<u8>>,
    /// The iteration stays inside one hash key, so the engine may use its prefix bloom
    /// filters. When false the engine must do a total-order iteration.
    pub within_hash_key: bool,
}

/// A cursor over the data column family. Positioning methods never fail; a failure makes
/// the iterator invalid and is reported by [`EngineIterator::status`].
pub trait EngineIterator {
    /// Positions at the first key `>= key` (within the bounds).
    fn seek(&mut self, key: &[u8]);
    /// Positions at the last key `<= key` (within the bounds).
    fn seek_for_prev(&mut self, key: &[u8]);
    /// Positions at the first key within the bounds.
    fn seek_to_first(&mut self);
    /// Positions at the last key within the bounds.
    fn seek_to_last(&mut self);
    /// Whether the iterator points at a record.
    fn valid(&self) -> bool;
    /// The current key; empty when not valid.
    fn key(&self) -> &[u8];
    /// The current value; empty when not valid.
    fn value(&self) -> &[u8];
    /// Moves to the next key.
    fn next(&mut self);
    /// Moves to the previous key.
    fn prev(&mut self);
    /// The first error met, if any.
    fn status(&self) -> Result<()>;
}

/// An ordered key-value engine holding one partition's data.
pub trait StorageEngine: Send + Sync + std::fmt::Debug {
    /// The iterator type.
    type Iter<'a>: EngineIterator
    where
        Self: 'a;

    /// Reads one key of the data column family.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Reads several keys; one result per key, in order.
    fn multi_get(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// Applies a batch atomically, together with its decree and timestamp. Rejects a batch
    /// whose decree is not `last applied + 1`.
    fn write(&self, batch: &WriteBatch) -> Result<()>;

    /// An iterator over the data column family.
    fn iter(&self, opts: IterOptions) -> Self::Iter<'_>;

    /// The last applied decree and its timestamp, including changes not yet flushed.
    fn applied_state(&self) -> AppliedState;

    /// A decree from which replaying the mutation log restores the state after a crash.
    ///
    /// It is at most the last decree whose changes are on disk, and may be lower by a few
    /// [`WriteBatch::blind`] batches whose changes are on disk already; replaying those
    /// again is harmless. After [`StorageEngine::flush`] it is exact.
    fn durable_decree(&self) -> Result<Decree>;

    /// Makes every applied change durable.
    fn flush(&self) -> Result<()>;

    /// Writes a consistent checkpoint into `dir`, which must not exist yet. Returns the
    /// applied state the checkpoint holds. [`open_checkpoint`](crate::EngineFactory) opens
    /// it as a new engine.
    fn checkpoint(&self, dir: &Path) -> Result<AppliedState>;

    /// The table-level TTL policy (from the `default_ttl` app env).
    fn ttl_policy(&self) -> TtlPolicy;

    /// Replaces the TTL policy. It is persisted in the meta column family and used by reads
    /// and by compaction.
    fn set_ttl_policy(&self, policy: TtlPolicy) -> Result<()>;

    /// Compacts the whole data column family, running the TTL compaction filter.
    fn compact_all(&self) -> Result<()>;
}

/// Something that can open engines: a fresh or existing one at a location, or one from a
/// checkpoint. Used by the conformance suite and by replicas (re)opening their storage.
pub trait EngineFactory {
    /// The engine type.
    type Engine: StorageEngine;
    /// Opens (creating if missing) the engine at `path`.
    fn open(&self, path: &Path) -> Result<Self::Engine>;
}
