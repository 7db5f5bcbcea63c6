//! The partition store: every Pegasus data operation on top of a [`StorageEngine`].
//!
//! Writes arrive as a batch of client requests tagged with a decree and a timestamp (one
//! committed mutation). [`PartitionStore::apply`] runs them in order against an overlay of
//! the batch's own changes, so a later request sees an earlier one, and commits the result
//! in one engine write together with the decree. Everything a write computes depends only
//! on (stored state, request, mutation timestamp): every replica applies the same mutation
//! and reaches the same state.
//!
//! Reads read the engine directly and hide expired records, using the wall clock.

mod check;
mod read;
mod scan;
mod write;

use std::sync::{Arc, Mutex};

use pegasus_core::ids::{partition_for_hash, Decree, PartitionIndex};
use pegasus_core::rrdb::{
    CheckAndMutateRequest, CheckAndMutateResponse, CheckAndSetRequest, CheckAndSetResponse,
    IncrRequest, IncrResponse, MultiPutRequest, MultiRemoveRequest, MultiRemoveResponse,
    UpdateRequest, UpdateResponse,
};
use pegasus_core::time::Clock;
use pegasus_core::Bytes;

use crate::config::StorageConfig;
use crate::engine::StorageEngine;
use crate::ttl::TtlPolicy;

pub use self::scan::MAX_SCAN_CONTEXTS;

/// One client write inside a mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteRequest {
    /// `RPC_RRDB_RRDB_PUT`.
    Put(UpdateRequest),
    /// `RPC_RRDB_RRDB_REMOVE`: the encoded key.
    Remove(Bytes),
    /// `RPC_RRDB_RRDB_MULTI_PUT`.
    MultiPut(MultiPutRequest),
    /// `RPC_RRDB_RRDB_MULTI_REMOVE`.
    MultiRemove(MultiRemoveRequest),
    /// `RPC_RRDB_RRDB_INCR`.
    Incr(IncrRequest),
    /// `RPC_RRDB_RRDB_CHECK_AND_SET`.
    CheckAndSet(CheckAndSetRequest),
    /// `RPC_RRDB_RRDB_CHECK_AND_MUTATE`.
    CheckAndMutate(CheckAndMutateRequest),
    /// The table's `default_ttl` env changed (seconds, 0 = none). Applied as a mutation so
    /// that every replica computes expiries with the same policy at the same decree; the
    /// policy's start is the mutation's timestamp.
    SetDefaultTtl(u32),
}

impl WriteRequest {
    /// Whether the request's effect depends on the stored state (incr, CAS, CAM) or changes
    /// how later requests apply (an env change). Pegasus batches only blind puts and removes
    /// together; these run as their own mutation.
    pub fn is_atomic(&self) -> bool {
        matches!(
            self,
            Self::Incr(_) | Self::CheckAndSet(_) | Self::CheckAndMutate(_) | Self::SetDefaultTtl(_)
        )
    }
}

/// The response to one [`WriteRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteResponse {
    /// Put, remove and multi_put answer with an `update_response`.
    Update(UpdateResponse),
    /// Multi_remove.
    MultiRemove(MultiRemoveResponse),
    /// Incr.
    Incr(IncrResponse),
    /// Check_and_set.
    CheckAndSet(CheckAndSetResponse),
    /// Check_and_mutate.
    CheckAndMutate(CheckAndMutateResponse),
    /// An env change (no client waits for it).
    SetDefaultTtl,
}

impl WriteResponse {
    /// The storage status code.
    pub fn error(&self) -> i32 {
        match self {
            Self::Update(r) => r.error,
            Self::MultiRemove(r) => r.error,
            Self::Incr(r) => r.error,
            Self::CheckAndSet(r) | Self::CheckAndMutate(r) => r.error,
            Self::SetDefaultTtl => 0,
        }
    }
}

/// Limits of iterating reads, from [`StorageConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Iterations per scan RPC.
    pub max_iteration_count: u32,
    /// Iterations per range multi_get.
    pub multi_get_max_iteration_count: u32,
    /// Bytes per range multi_get.
    pub multi_get_max_iteration_size: u64,
    /// Time per iterating RPC, ms (0 = none).
    pub iteration_threshold_time_ms: u64,
    /// Idle scan context lifetime, seconds.
    pub scan_context_ttl_seconds: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self::from(&StorageConfig::default())
    }
}

impl From<&StorageConfig> for ReadLimits {
    fn from(c: &StorageConfig) -> Self {
        Self {
            max_iteration_count: c.rocksdb_max_iteration_count,
            multi_get_max_iteration_count: c.rocksdb_multi_get_max_iteration_count,
            multi_get_max_iteration_size: c.rocksdb_multi_get_max_iteration_size,
            iteration_threshold_time_ms: c.rocksdb_iteration_threshold_time_ms,
            scan_context_ttl_seconds: c.scan_context_ttl_seconds,
        }
    }
}

/// Which keys belong to this partition, for `replica.split.validate_partition_hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionHashCheck {
    /// Whether scans drop keys that hash to another partition.
    pub enabled: bool,
    /// This partition's index.
    pub pidx: PartitionIndex,
    /// The table's partition count.
    pub partition_count: i32,
}

impl PartitionHashCheck {
    fn owns(&self, key: &[u8]) -> bool {
        if !self.enabled {
            return true;
        }
        pegasus_core::key::encoded_key_hash(key)
            .ok()
            .and_then(|h| partition_for_hash(h, self.partition_count))
            == Some(self.pidx)
    }
}

/// One partition's data, with Pegasus's semantics for every operation.
#[derive(Debug)]
pub struct PartitionStore<E: StorageEngine> {
    engine: E,
    clock: Arc<dyn Clock>,
    limits: ReadLimits,
    hash_check: Mutex<PartitionHashCheck>,
    scanners: Mutex<scan::ScannerTable>,
}

impl<E: StorageEngine> PartitionStore<E> {
    /// Wraps an opened engine.
    pub fn new(engine: E, clock: Arc<dyn Clock>, limits: ReadLimits) -> Self {
        Self {
            engine,
            clock,
            limits,
            hash_check: Mutex::new(PartitionHashCheck::default()),
            scanners: Mutex::new(scan::ScannerTable::default()),
        }
    }

    /// The engine underneath.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Gives the engine back (closing the store).
    pub fn into_engine(self) -> E {
        self.engine
    }

    /// The last applied decree.
    pub fn last_applied_decree(&self) -> Decree {
        self.engine.applied_state().decree
    }

    /// Sets the table's `default_ttl` (seconds, 0 = none), effective from `since`
    /// (Pegasus-epoch seconds), outside the decree order. See [`TtlPolicy`]. Replicas use
    /// [`WriteRequest::SetDefaultTtl`] instead, so the change lands at one decree everywhere.
    pub fn set_default_ttl(&self, default_ttl: u32, since: u32) -> crate::Result<()> {
        self.engine.set_ttl_policy(TtlPolicy { default_ttl, since })
    }

    /// Sets the partition-hash validation used by scans.
    pub fn set_partition_hash_check(&self, check: PartitionHashCheck) {
        *self.hash_check.lock().unwrap_or_else(|e| e.into_inner()) = check;
    }

    fn partition_hash_check(&self) -> PartitionHashCheck {
        *self.hash_check.lock().unwrap_or_else(|e| e.into_inner())
    }
}
