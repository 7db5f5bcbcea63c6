//! The driver's contract with what hosts it: the inputs of a round, the view it publishes,
//! how a run ends, its settings, `init.json`'s contents, and the [`Host`] trait the replica
//! server and the simulator implement.

use std::sync::Arc;

use bytes::Bytes;
use pegasus_control::{AppSummary, ReplicaReport};
use pegasus_core::config::{ConfigType, NodeId, PartitionConfig};
use pegasus_core::ids::{Decree, Gpid};
use pegasus_proto::ErrorCode;
use pegasus_storage::{PartitionStore, StorageEngine, WriteResponse};
use serde::{Deserialize, Serialize};

use crate::core::{Checkpoint, Event, NodeLease, PeerMessage, ReadGrant, Status};
use crate::mutation::Mutation;
use crate::nodelog::PlogFile;

/// The answer to one client write.
pub type WriteResult = Result<WriteResponse, ErrorCode>;

/// What a replica persists besides its data and log (`init.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitInfo {
    /// The last configuration it knew (its ballot survives restarts).
    pub config: PartitionConfig,
    /// Created empty and not yet caught up with a group.
    pub fresh: bool,
    /// Its table.
    pub app: AppSummary,
    /// The store's directory, relative to the replica's directory.
    #[serde(default = "default_data_dir")]
    pub data: String,
    /// Which copy of the partition this is on its node (chosen when it is created; a copy
    /// set aside and created again is a new one): the node log gives a copy back only its
    /// own records. 0 for copies created before there was a node log.
    #[serde(default)]
    pub incarnation: u64,
}

fn default_data_dir() -> String {
    "data".into()
}

/// What a replica's state looks like from outside, published after every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// Whether reads may be served, under which epoch of the node's lease (a reader checks
    /// it with [`NodeLease::allows`](crate::core::NodeLease::allows)).
    pub read: ReadGrant,
    /// The largest mutation timestamp held (Unix µs).
    pub last_timestamp_us: u64,
    /// The core's status.
    pub status: Status,
    /// What the replica reports to meta.
    pub report: ReplicaReport,
}

/// How a driver's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Told to close.
    Closed,
    /// The replica failed (corruption, an I/O error, a protocol anomaly, a panic): set its
    /// copy aside and rebuild it.
    Failed,
    /// A local operation ran out of a resource (descriptors, memory, disk space), or a
    /// learned checkpoint could not be fetched: the copy is intact as after a crash, so
    /// reopen it from its own files. The reason is for logs and the admin view.
    Reopen(String),
}

/// An input of one round.
#[derive(Debug)]
pub enum Input<R, S> {
    /// An event for the core.
    Core(Event),
    /// A client write and where its answer goes.
    Write {
        /// Encoded write.
        update: Bytes,
        /// Where the answer goes.
        reply: R,
    },
    /// Meta's proposal, with meta's configuration (delivered first).
    Proposal {
        /// Meta's configuration of the partition.
        config: PartitionConfig,
        /// The change.
        kind: ConfigType,
        /// The node it is about.
        node: NodeId,
    },
    /// The table's facts changed (envs).
    App(AppSummary),
    /// A checkpoint the host fetched for [`Host::fetch_checkpoint`], staged for install.
    CheckpointFetched {
        /// Its decree.
        decree: Decree,
        /// Where the host staged it.
        staged: S,
    },
    /// Fetching a checkpoint failed (why).
    CheckpointFailed(String),
    /// The node log made this replica's first `appended` log appends durable (the answer
    /// to [`Host::log_submit`]).
    LogSynced {
        /// Appends durable, counted from the driver's start.
        appended: u64,
    },
    /// The node log failed to make submitted appends durable: none of them count.
    LogFailed(LogFailure),
    /// Stop: answer waiting writes, flush, persist.
    Close,
}

/// Why the node log could not make a replica's appends durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFailure {
    /// What failed.
    pub reason: String,
    /// A lack of a resource (the files are intact as after a crash: reopen in place).
    pub transient: bool,
    /// The disk is full.
    pub disk_full: bool,
}

/// The driver's settings (`[replica_server]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverConfig {
    /// The core's clock tick, ms.
    pub tick_ms: u64,
    /// How often the store is flushed and the log trimmed, ms.
    pub checkpoint_interval_ms: u64,
    /// Decrees kept in the log below the durable one, for lagging secondaries.
    pub log_retain_decrees: i64,
    /// A planted bug, for the simulator's tests of its own checks only (false everywhere
    /// else): the driver stamps mutations with the host's monotonic uptime instead of its
    /// wall clock, as the replica server once did.
    pub plant_uptime_as_wall_clock: bool,
    /// The node has a node log: the driver writes its own log without syncing it and
    /// hands the bytes to [`Host::log_submit`]; the host answers with
    /// [`Input::LogSynced`] or [`Input::LogFailed`]. Otherwise the driver fsyncs its own
    /// log every round.
    pub node_log: bool,
}

/// Everything a driver needs from outside the partition.
pub trait Host {
    /// The storage engine.
    type Engine: StorageEngine;
    /// Where a client write's answer goes.
    type Reply;
    /// A fetched checkpoint waiting to be installed.
    type Staged;

    /// The partition.
    fn gpid(&self) -> Gpid;
    /// Monotonic time, ms (leases, timers).
    fn now_ms(&self) -> u64;
    /// The node's lease now (one for every replica of the node, renewed by beacons).
    fn node_lease(&self) -> NodeLease;
    /// Wall-clock time, Unix µs (what mutations are stamped with).
    fn wall_us(&self) -> u64;
    /// Sends a message to a peer replica (best effort).
    fn send(&mut self, to: NodeId, msg: PeerMessage);
    /// Asks meta for a configuration change; the answer comes back as core events.
    fn request_config(&mut self, kind: ConfigType, node: NodeId, config: PartitionConfig);
    /// Answers a client write.
    fn reply(&mut self, to: Self::Reply, result: WriteResult);
    /// Hands this round's log records (written to `plog`, not synced) to the node log.
    /// `Some`: the answer, now (the host waited for the group commit); `None`: it comes
    /// later as [`Input::LogSynced`] with `appended`, or [`Input::LogFailed`]. Only with
    /// [`DriverConfig::node_log`].
    fn log_submit(
        &mut self,
        plog: PlogFile,
        records: Vec<u8>,
        appended: u64,
    ) -> Option<Result<(), LogFailure>>;
    /// Publishes the replica's view. With `lower_only`, reads may only close, never open or
    /// change epoch (a step-down takes effect at once; reads open only after the event's
    /// commits): a host keeps its grant if it equals the view's, else publishes none.
    fn publish(&mut self, view: View, lower_only: bool);
    /// Whether a primary with these secondaries must refuse writes for lack of disk space.
    fn refuses_writes(&mut self, secondaries: &[NodeId]) -> bool;
    /// Makes a checkpoint of `store` a learner can fetch.
    fn make_checkpoint(
        &mut self,
        store: &PartitionStore<Self::Engine>,
    ) -> std::io::Result<Checkpoint>;
    /// Starts fetching a learned checkpoint; the result comes back as
    /// [`Input::CheckpointFetched`] or [`Input::CheckpointFailed`].
    fn fetch_checkpoint(&mut self, cp: Checkpoint);
    /// Opens a fetched checkpoint as an engine, under a new data name in the replica's
    /// directory. The driver points `init.json` at it before using it.
    fn open_checkpoint(
        &mut self,
        decree: Decree,
        staged: Self::Staged,
    ) -> std::io::Result<(Self::Engine, String)>;
    /// Wraps an engine as a store.
    fn store(&self, engine: Self::Engine) -> PartitionStore<Self::Engine>;
    /// The driver now serves from `new`; `old` (data name `old_data`) is the host's to
    /// drop once nobody reads it.
    fn store_replaced(
        &mut self,
        new: &Arc<PartitionStore<Self::Engine>>,
        old: Arc<PartitionStore<Self::Engine>>,
        old_data: String,
    );
    /// Writes `init.json` durably.
    fn write_init(&mut self, info: &InitInfo) -> std::io::Result<()>;
    /// Timed housekeeping before the store is flushed (collect retired stores, start a
    /// due manual compaction).
    fn housekeeping(&mut self, store: &Arc<PartitionStore<Self::Engine>>, app: &AppSummary);
    /// The table facts changed: start a due manual compaction.
    fn app_changed(&mut self, store: &Arc<PartitionStore<Self::Engine>>, app: &AppSummary);
    /// Records the store's figures (every few seconds).
    fn record_storage(&mut self, store: &PartitionStore<Self::Engine>);
    /// Whether an I/O error from the host (checkpoint, `init.json`) is a transient lack of
    /// a resource.
    fn is_transient(&self, e: &std::io::Error) -> bool;
    /// The core committed `m` while in `status` (before it is applied): an observer's hook
    /// (the simulator checks its invariants here).
    fn committed(&mut self, _m: &Mutation, _status: Status) {}
}
