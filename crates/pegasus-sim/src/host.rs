//! The simulator's [`Host`] for a replica's [`PartitionDriver`](pegasus_replica::driver):
//! the same driver the replica server runs, on the memory engine and `MemFs`. What the
//! driver asks of the outside world is recorded as [`Effect`]s, which the simulator carries
//! out after the round (through its lossy network, its meta, its clients and its checks).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use pegasus_core::config::{ConfigType, NodeId, PartitionConfig};
use pegasus_core::ids::{Decree, Gpid};
use pegasus_core::time::Clock;
use pegasus_fs::{FileSystem, MemFs};
use pegasus_replica::core::{Checkpoint, NodeLease, PeerMessage, ReadGrant, Status};
use pegasus_replica::driver::{Host, InitInfo, LogFailure, View, WriteResult};
use pegasus_replica::nodelog::{PlogFile, ReplicaKey};
use pegasus_replica::Mutation;
use pegasus_storage::{MemoryDisk, MemoryEngine, PartitionStore, ReadLimits, StorageEngine};

/// Where a simulated replica keeps `init.json` on its node's `MemFs`.
pub const INIT_PATH: &str = "/init.json";

/// What the driver asked for during a round, carried out by the simulator afterwards.
#[derive(Debug)]
pub enum Effect {
    /// A message to a peer replica.
    Send(NodeId, PeerMessage),
    /// A configuration change request to meta.
    RequestConfig {
        /// The change.
        kind: ConfigType,
        /// The node it is about.
        node: NodeId,
        /// The configuration wanted.
        config: PartitionConfig,
    },
    /// The answer to a client write (the client's operation id).
    Reply(u64, WriteResult),
    /// Fetch a learned checkpoint (its image travels in the checkpoint itself).
    Fetch(Checkpoint),
    /// The core committed a mutation in this status (for the invariant checks).
    Committed(Mutation, Status),
    /// Records for the node log (written to the replica's own log, not synced); the
    /// node log's sync answers with `appended`.
    LogSubmit {
        /// The copy's key in the node log.
        key: ReplicaKey,
        /// The replica's log file the records went to.
        plog: PlogFile,
        /// The records.
        records: Vec<u8>,
        /// Appends they bring the replica to.
        appended: u64,
    },
}

/// One simulated node's side of its replica's driver.
#[allow(
    missing_debug_implementations,
    reason = "holds a clock and disks; the simulator's trace is the debug view"
)]
pub struct SimHost {
    pub(crate) gpid: Gpid,
    /// The node's local monotonic time for this round, ms.
    pub(crate) now_ms: u64,
    /// The node's wall clock for this round, Unix µs (the planted uptime bug sets it).
    pub(crate) wall_us: u64,
    /// The node's lease for this round.
    pub(crate) lease: NodeLease,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) fs: MemFs,
    /// The disk the store serves from.
    pub(crate) disk: MemoryDisk,
    /// A learned checkpoint's disk between its open and its install.
    staged_disk: Option<MemoryDisk>,
    /// The last view published (the read gate).
    pub(crate) view: View,
    pub(crate) effects: Vec<Effect>,
    /// Which copy of the partition this is (`init.json`), its key in the node log.
    pub(crate) copy: u64,
    /// Answer node-log submissions at once with this (as the replica server's group
    /// commit does) instead of with a later input; for the driver's tests.
    pub inline_log_answer: Option<Result<(), LogFailure>>,
}

impl SimHost {
    /// A host for the replica of `gpid` on a node whose files are `fs` and `disk`.
    pub fn new(gpid: Gpid, clock: Arc<dyn Clock>, fs: MemFs, disk: MemoryDisk, view: View) -> Self {
        Self {
            gpid,
            now_ms: 0,
            wall_us: 0,
            lease: NodeLease::default(),
            clock,
            fs,
            disk,
            staged_disk: None,
            view,
            effects: Vec::new(),
            copy: 0,
            inline_log_answer: None,
        }
    }

    /// Sets the node's clocks for the next round: monotonic ms and wall-clock Unix µs.
    pub fn set_clock(&mut self, now_ms: u64, wall_us: u64) {
        self.now_ms = now_ms;
        self.wall_us = wall_us;
    }

    /// Sets the node's lease for the next round.
    pub fn set_lease(&mut self, lease: NodeLease) {
        self.lease = lease;
    }

    /// What the driver asked for since the last call.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// The view the driver published last (the read gate).
    pub fn view(&self) -> View {
        self.view
    }

    /// `init.json`, if the node has one.
    pub fn read_init(fs: &MemFs) -> Option<InitInfo> {
        let bytes = fs.read(Path::new(INIT_PATH)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

impl Host for SimHost {
    type Engine = MemoryEngine;
    type Reply = u64;
    type Staged = Bytes;

    fn gpid(&self) -> Gpid {
        self.gpid
    }

    fn now_ms(&self) -> u64 {
        self.now_ms
    }

    fn wall_us(&self) -> u64 {
        self.wall_us
    }

    fn node_lease(&self) -> NodeLease {
        self.lease
    }

    fn send(&mut self, to: NodeId, msg: PeerMessage) {
        self.effects.push(Effect::Send(to, msg));
    }

    fn request_config(&mut self, kind: ConfigType, node: NodeId, config: PartitionConfig) {
        self.effects
            .push(Effect::RequestConfig { kind, node, config });
    }

    fn reply(&mut self, to: u64, result: WriteResult) {
        self.effects.push(Effect::Reply(to, result));
    }

    fn log_submit(
        &mut self,
        plog: PlogFile,
        records: Vec<u8>,
        appended: u64,
    ) -> Option<Result<(), LogFailure>> {
        if let Some(answer) = &self.inline_log_answer {
            return Some(answer.clone());
        }
        let key = ReplicaKey {
            gpid: self.gpid,
            incarnation: self.copy,
        };
        self.effects.push(Effect::LogSubmit {
            key,
            plog,
            records,
            appended,
        });
        // The answer comes with the node log's sync, an event of its own.
        None
    }

    fn publish(&mut self, view: View, lower_only: bool) {
        if lower_only {
            if self.view.read != view.read {
                self.view.read = ReadGrant::None;
            }
        } else {
            self.view = view;
        }
    }

    fn refuses_writes(&mut self, _secondaries: &[NodeId]) -> bool {
        false
    }

    fn make_checkpoint(
        &mut self,
        store: &PartitionStore<MemoryEngine>,
    ) -> std::io::Result<Checkpoint> {
        let engine = store.engine();
        Ok(Checkpoint {
            decree: store.last_applied_decree(),
            timestamp_us: engine.applied_state().write_time_us,
            data: Bytes::from(engine.export_image()),
        })
    }

    fn fetch_checkpoint(&mut self, cp: Checkpoint) {
        self.effects.push(Effect::Fetch(cp));
    }

    fn open_checkpoint(
        &mut self,
        decree: Decree,
        staged: Bytes,
    ) -> std::io::Result<(MemoryEngine, String)> {
        let disk = MemoryEngine::import_image(&staged).map_err(std::io::Error::other)?;
        let engine = MemoryEngine::open(disk.clone(), self.clock.clone());
        engine.flush().map_err(std::io::Error::other)?;
        self.staged_disk = Some(disk);
        Ok((engine, format!("data.{decree}")))
    }

    fn store(&self, engine: MemoryEngine) -> PartitionStore<MemoryEngine> {
        PartitionStore::new(engine, self.clock.clone(), ReadLimits::default())
    }

    fn store_replaced(
        &mut self,
        _new: &Arc<PartitionStore<MemoryEngine>>,
        _old: Arc<PartitionStore<MemoryEngine>>,
        _old_data: String,
    ) {
        if let Some(disk) = self.staged_disk.take() {
            self.disk = disk;
        }
    }

    fn write_init(&mut self, info: &InitInfo) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(info).map_err(std::io::Error::other)?;
        self.fs.write_atomic(Path::new(INIT_PATH), &bytes)
    }

    fn housekeeping(
        &mut self,
        _store: &Arc<PartitionStore<MemoryEngine>>,
        _app: &pegasus_control::AppSummary,
    ) {
    }

    fn app_changed(
        &mut self,
        _store: &Arc<PartitionStore<MemoryEngine>>,
        _app: &pegasus_control::AppSummary,
    ) {
    }

    fn record_storage(&mut self, _store: &PartitionStore<MemoryEngine>) {}

    fn is_transient(&self, e: &std::io::Error) -> bool {
        pegasus_storage::error::is_resource_exhaustion(e)
    }

    fn committed(&mut self, m: &Mutation, status: Status) {
        self.effects.push(Effect::Committed(m.clone(), status));
    }
}
