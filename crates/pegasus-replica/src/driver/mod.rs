//! The partition driver: the one interpreter of the PacificA core's actions. It owns one
//! replica's core, store and mutation log and runs them in rounds — the inputs that arrived
//! together go to the core (client writes batched into as few mutations as the core allows,
//! a tick first when one is due and always before writes), the log is flushed once for the
//! round (group commit), then timed maintenance and `init.json` — and it decides what a
//! failure means (rebuild, or reopen in place).
//!
//! Everything outside the partition is its [`Host`]'s: sockets, meta, threads, the read
//! gate, checkpoint directories, the node log, RocksDB's own figures. The replica server
//! runs drivers on its replication workers (`server::partition`), the simulator on its event
//! queue; the contract between them is in `host`. With a node log, the round's records are
//! written to the replica's own log unsynced and handed to the host, whose answer (now or
//! as a later input) is the `LogFlushed` event.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use pegasus_control::{AppSummary, ReplicaReport};
use pegasus_core::config::NodeId;
use pegasus_core::ids::Decree;
use pegasus_proto::ErrorCode;
use pegasus_storage::{PartitionStore, StorageEngine, StorageError, WriteRequest};

use crate::core::{
    Action, Checkpoint, Event, NodeLease, ReadGrant, Refusal, Replica, ReplicaOptions, Status,
};
use crate::log::{MutationLog, ReplayReport};
use crate::mutation::Mutation;
use crate::nodelog::PlogFile;
use crate::update::{decode_write, encode_write};

mod durable;
mod host;

pub use host::{DriverConfig, Exit, Host, InitInfo, Input, LogFailure, View, WriteResult};

/// The core of a replica opened from its own files: the last configuration `init.json`
/// holds, the store's applied decree and last stamp, the log's replayed mutations; fresh if
/// it was created empty and never caught up; what the replay read (a cut torn log tail, the
/// core then not leading before its group holds what the tail may have acknowledged; the
/// commit points it may commit from its own log at once).
pub fn open_core<E: StorageEngine>(
    me: NodeId,
    opts: ReplicaOptions,
    init: &InitInfo,
    store: &PartitionStore<E>,
    replayed: Vec<Mutation>,
    report: &ReplayReport,
) -> Replica {
    let mut core = Replica::new(
        me,
        opts,
        init.config.clone(),
        store.last_applied_decree(),
        replayed,
    );
    core.observe_timestamp(store.engine().applied_state().write_time_us);
    core.note_commit_points(report.commit_points.clone());
    if init.fresh {
        core.mark_fresh();
    }
    if report.truncated_bytes > 0 {
        tracing::warn!(
            "replica {:?}: cut {} bytes of torn mutation-log tail",
            init.config.gpid,
            report.truncated_bytes
        );
        core.mark_torn_tail();
    }
    core
}

/// How often each replica records its store's figures, ms.
const STORAGE_STATS_MS: u64 = 2_000;

/// One replica: its core, store and log, driven by a [`Host`].
pub struct PartitionDriver<H: Host> {
    host: H,
    cfg: DriverConfig,
    core: Replica,
    store: Arc<PartitionStore<H::Engine>>,
    log: MutationLog,
    appended: u64,
    flushed: u64,
    clients: BTreeMap<u64, H::Reply>,
    next_client: u64,
    persisted: InitInfo,
    last_tick: u64,
    last_checkpoint: u64,
    last_storage_stats: u64,
    /// Inputs arrived since the storage figures were last recorded (an idle replica
    /// records them only with its flush timer).
    active_since_stats: bool,
    /// The node's lease as this replica's core last took it.
    lease_taken: NodeLease,
    /// The `default_ttl` env last turned into a mutation by this node as primary.
    default_ttl: Option<u32>,
    /// A local operation of this round ran out of a resource: reads are off, nothing more
    /// is applied, and the round ends with [`Exit::Reopen`].
    transient: Option<String>,
}

impl<H: Host> std::fmt::Debug for PartitionDriver<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionDriver")
            .field("gpid", &self.host.gpid())
            .field("status", &self.core.status())
            .finish_non_exhaustive()
    }
}

impl<H: Host> PartitionDriver<H> {
    /// A driver for a core opened from `store` and `log` with `init` as last persisted.
    pub fn new(
        host: H,
        cfg: DriverConfig,
        core: Replica,
        store: Arc<PartitionStore<H::Engine>>,
        log: MutationLog,
        persisted: InitInfo,
    ) -> Self {
        let now = host.now_ms();
        let mut driver = Self {
            host,
            cfg,
            core,
            store,
            log,
            appended: 0,
            flushed: 0,
            clients: BTreeMap::new(),
            next_client: 1,
            persisted,
            last_tick: 0,
            last_checkpoint: now,
            last_storage_stats: 0,
            active_since_stats: true,
            lease_taken: NodeLease::default(),
            default_ttl: None,
            transient: None,
        };
        // What the log says was committed goes into the store first.
        for action in driver.core.catch_up_from_log() {
            driver.action(action);
        }
        driver
    }

    /// The host.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// The host, to change what it supplies (the simulator sets its clock per round).
    pub fn host_mut(&mut self) -> &mut H {
        &mut self.host
    }

    /// Takes the driver apart without closing anything (a crash): the host and the store.
    pub fn into_parts(self) -> (H, Arc<PartitionStore<H::Engine>>) {
        (self.host, self.store)
    }

    /// The core.
    pub fn core(&self) -> &Replica {
        &self.core
    }

    /// The store served from.
    pub fn store(&self) -> &Arc<PartitionStore<H::Engine>> {
        &self.store
    }

    /// The replica's view now.
    pub fn view(&self) -> View {
        View {
            read: self.read_grant(),
            last_timestamp_us: self.core.last_timestamp_us(),
            status: self.core.status(),
            report: ReplicaReport {
                gpid: self.host.gpid(),
                // The ballot of the data held, never a configuration ballot merely
                // adopted: meta's all-dead rule must not prefer an empty copy.
                ballot: self.core.data_ballot(),
                last_committed: self.core.last_committed(),
                last_prepared: self.core.last_prepared(),
                fresh: self.core.is_fresh(),
            },
        }
    }

    /// The wait until the next timed work is due (a tick), ms.
    pub fn tick_ms(&self) -> u64 {
        self.cfg.tick_ms.max(1)
    }

    /// When this replica next needs a round without input (the host's monotonic ms): its
    /// core's next deadline (no earlier than the next tick), the timed flush and log trim,
    /// and its storage figures while it is active. An idle secondary, and a quiet primary, need
    /// nothing before the flush timer. Waking it earlier is harmless; later only delays
    /// what is due.
    pub fn next_wake_ms(&self) -> u64 {
        let next_tick = self.last_tick.saturating_add(self.tick_ms());
        let mut wake = self
            .last_checkpoint
            .saturating_add(self.cfg.checkpoint_interval_ms.max(1));
        if let Some(due) = self.core.next_deadline_ms() {
            wake = wake.min(due.max(next_tick));
        }
        if self.active_since_stats {
            wake = wake.min(self.last_storage_stats.saturating_add(STORAGE_STATS_MS));
        }
        wake
    }

    /// Runs one round with the inputs that arrived together (possibly none: the timer).
    /// `Some` when the replica stops: told to close, failed, or to be reopened.
    pub fn round(&mut self, inputs: Vec<Input<H::Reply, H::Staged>>) -> Option<Exit> {
        // Tick before this round's inputs when it is due, and always before writes: the
        // core stamps writes with the wall clock of its last tick, and a write must not be
        // stamped earlier than a read this server answered before it arrived (an incr right
        // after a read found the record expired must find it expired too).
        let now = self.host.now_ms();
        if !inputs.is_empty() {
            self.active_since_stats = true;
        }
        // The node's lease first, before a tick could find the one last taken expired: a
        // replica takes renewals lazily (none while it sleeps), lapses included.
        let lease = self.host.node_lease();
        if lease != self.lease_taken {
            self.lease_taken = lease;
            self.event(Event::Lease {
                epoch: lease.epoch,
                until_ms: lease.until_ms,
            });
        }
        let has_writes = inputs.iter().any(|i| matches!(i, Input::Write { .. }));
        if has_writes || now.saturating_sub(self.last_tick) >= self.cfg.tick_ms {
            self.last_tick = now;
            let wall_us = if self.cfg.plant_uptime_as_wall_clock {
                now.saturating_mul(1000)
            } else {
                self.host.wall_us()
            };
            self.event(Event::Tick {
                now_ms: now,
                wall_us,
            });
        }
        // Client writes of one round go to the core together (in arrival order, cut only
        // by other inputs), so they share mutations: one prepare, one log record and one
        // ack per batch instead of per write.
        let mut writes: Vec<(u64, Bytes)> = Vec::new();
        for input in inputs {
            match input {
                Input::Close => return Some(self.close()),
                Input::Write { update, reply } => {
                    if let Some(id) = self.admit_write(reply) {
                        writes.push((id, update));
                    }
                }
                other => {
                    if !writes.is_empty() {
                        self.event(Event::ClientWrites(std::mem::take(&mut writes)));
                    }
                    self.input(other);
                }
            }
        }
        if !writes.is_empty() {
            self.event(Event::ClientWrites(writes));
        }
        // Group commit: one write + fsync for everything appended this round, here or in
        // the node log with every other replica's.
        if self.log.has_pending() {
            if self.cfg.node_log {
                self.submit_to_node_log();
            } else {
                self.flush_own_log();
            }
        }
        if let Some(exit) = self.failed_exit() {
            return Some(exit);
        }
        self.maybe_checkpoint(now);
        self.maybe_record_storage(now);
        self.persist();
        self.failed_exit()
    }

    /// How the run ends after a failure this round, if one happened: in error, it is
    /// rebuilt (this wins over a transient failure of the same round); after a transient
    /// failure, it is reopened in place. Writes still waiting are answered `ERR_TIMEOUT`.
    fn failed_exit(&mut self) -> Option<Exit> {
        let gpid = self.host.gpid();
        if self.core.status() == Status::Error {
            tracing::error!("replica {gpid:?} is in error: it will be rebuilt");
            self.fail_clients();
            return Some(Exit::Failed);
        }
        let reason = self.transient.take()?;
        tracing::warn!("replica {gpid:?} closes to be reopened in place ({reason})");
        self.fail_clients();
        Some(Exit::Reopen(reason))
    }

    /// A local operation failed. A transient lack of a resource (descriptors, memory, disk
    /// space) leaves the copy as a crash would: reads stop at once, nothing more is applied
    /// this round, and the round ends with [`Exit::Reopen`] — the core is not told, so a
    /// primary does not ask meta to drop it. Anything else is the core's `LocalError`: the
    /// replica goes to error and is rebuilt.
    fn local_failure(&mut self, op: &'static str, transient: bool, what: String) {
        let gpid = self.host.gpid();
        if !transient {
            tracing::error!("replica {gpid:?}: {what}");
            self.event(Event::LocalError);
            return;
        }
        metrics::counter!("pegasus_replica_transient_errors_total", "op" => op).increment(1);
        tracing::warn!(
            "replica {gpid:?}: {what}: not corruption: it closes and is reopened in place"
        );
        if self.transient.is_none() {
            self.transient = Some(format!("{op}: {what}"));
        }
        let view = self.view();
        self.host.publish(view, true);
    }

    /// After a panic while running a round: stop reads at once, have meta drop this
    /// replica if it led (the core's own failure path, itself guarded), and answer waiting
    /// writes `ERR_TIMEOUT` (they may have committed).
    pub fn after_panic(&mut self, what: &str) {
        let gpid = self.host.gpid();
        metrics::counter!("pegasus_replica_panics_total").increment(1);
        tracing::error!(
            "replica {gpid:?} panicked: {what}; it fails over like an I/O error and will be rebuilt"
        );
        let mut view = self.view();
        view.read = ReadGrant::None;
        self.host.publish(view, true);
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.event(Event::LocalError);
        }));
        if failed.is_err() {
            tracing::error!(
                "replica {gpid:?}: its failure path panicked too; meta drops it once beacons stop listing it"
            );
        }
        self.fail_clients();
        let mut view = self.view();
        view.read = ReadGrant::None;
        view.status = Status::Error;
        self.host.publish(view, false);
    }

    fn close(&mut self) -> Exit {
        self.fail_clients();
        let _ = self.log.flush();
        let _ = self.store.engine().flush();
        self.persist();
        Exit::Closed
    }

    /// Answers every write still waiting here when the replica fails or closes. They may
    /// have been proposed, and a proposed write can still commit under the next primary,
    /// so the answer is `ERR_TIMEOUT` (outcome unknown), never a refusal: a client retries
    /// a refused write, and a retried write that had committed is applied twice (found by
    /// `pegasus chaos --nemesis fail-point`, seed 15).
    fn fail_clients(&mut self) {
        for (_, c) in std::mem::take(&mut self.clients) {
            self.host.reply(c, Err(ErrorCode::Timeout));
        }
    }

    fn input(&mut self, input: Input<H::Reply, H::Staged>) {
        match input {
            Input::Core(ev) => self.event(ev),
            Input::Write { update, reply } => {
                if let Some(id) = self.admit_write(reply) {
                    self.event(Event::ClientWrite { id, update });
                }
            }
            Input::Proposal { config, kind, node } => {
                self.event(Event::Config(config));
                self.event(Event::Proposal { kind, node });
            }
            Input::App(app) => self.on_app(app),
            Input::CheckpointFetched { decree, staged } => self.install_checkpoint(decree, staged),
            Input::CheckpointFailed(why) => {
                // The core took the checkpoint's decree as committed when it asked for the
                // install, and has no way back: restart from this copy's own files (the
                // crash-restart path, proven safe mid-install), and the primary's next
                // invitation starts a new round from what the store really holds. Before,
                // the learner stayed `installing` for good and the group one copy short.
                self.local_failure(
                    "checkpoint_fetch",
                    true,
                    format!("fetching a learned checkpoint failed: {why}"),
                );
            }
            Input::LogSynced { appended } => self.log_synced(appended),
            Input::LogFailed(f) => self.log_failed(f),
            Input::Close => {}
        }
    }

    /// Takes a client write: its id for the core, or `None` when it was refused at once
    /// (`ERR_DISK_INSUFFICIENT`).
    fn admit_write(&mut self, reply: H::Reply) -> Option<u64> {
        if self.refuses_writes() {
            self.host.reply(reply, Err(ErrorCode::DiskInsufficient));
            return None;
        }
        let id = self.next_client;
        self.next_client += 1;
        self.clients.insert(id, reply);
        Some(id)
    }

    fn on_app(&mut self, app: AppSummary) {
        self.persisted.app = app;
        if let Err(e) = self.host.write_init(&self.persisted) {
            tracing::warn!(
                "replica {:?}: cannot persist table facts: {e}",
                self.host.gpid()
            );
        }
        self.host.app_changed(&self.store, &self.persisted.app);
        // The primary turns a changed `default_ttl` into a mutation, so every replica
        // switches policy at the same decree.
        let ttl = self
            .persisted
            .app
            .envs
            .get("default_ttl")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(0);
        if self.core.status() == Status::Primary
            && self.default_ttl != Some(ttl)
            && self.store.engine().ttl_policy().default_ttl != ttl
        {
            self.default_ttl = Some(ttl);
            let id = self.next_client;
            self.next_client += 1;
            self.event(Event::ClientWrite {
                id,
                update: encode_write(&WriteRequest::SetDefaultTtl(ttl)),
            });
        }
    }

    /// The read grant to publish: none while a transient failure is pending (the store may
    /// lack a decree the group committed).
    fn read_grant(&self) -> ReadGrant {
        if self.transient.is_some() {
            return ReadGrant::None;
        }
        self.core.read_grant()
    }

    /// A primary on an insufficient disk whose every secondary is short of space too (or
    /// that has none) refuses writes with `ERR_DISK_INSUFFICIENT`: a definite error instead
    /// of a write that would fail in the log. With a healthy secondary, meta is handing the
    /// role over and writes go on meanwhile.
    fn refuses_writes(&mut self) -> bool {
        let refused = self.core.status() == Status::Primary
            && self.host.refuses_writes(&self.core.config().secondaries);
        if refused {
            metrics::counter!("pegasus_replica_disk_insufficient_refusals_total").increment(1);
        }
        refused
    }

    fn event(&mut self, ev: Event) {
        let actions = self.core.handle(ev);
        // Before acting, only ever lower the read deadline: a step-down takes effect at
        // once, but reads must not open before this event's commits are applied (a new
        // primary's re-proposed decrees).
        let view = self.view();
        self.host.publish(view, true);
        for a in actions {
            self.action(a);
        }
        let view = self.view();
        self.host.publish(view, false);
    }

    fn action(&mut self, action: Action) {
        match action {
            Action::Send { to, msg } => self.host.send(to, msg),
            Action::AppendLog(m) => {
                self.log.append(&m);
                self.appended += 1;
            }
            Action::Commit { mutation, clients } => self.commit(mutation, clients),
            Action::Refuse { clients, reason } => {
                let code = match reason {
                    Refusal::NotPrimary => ErrorCode::InvalidState,
                    Refusal::NotEnoughMembers => ErrorCode::NotEnoughMember,
                    // Outcome unknown: it may still commit under the next primary.
                    Refusal::Aborted => ErrorCode::Timeout,
                };
                for c in clients {
                    if let Some(r) = self.clients.remove(&c) {
                        self.host.reply(r, Err(code));
                    }
                }
            }
            Action::RequestConfig { kind, node, config } => {
                self.host.request_config(kind, node, config);
            }
            Action::BuildLearnState {
                learner,
                signature,
                from,
            } => {
                let (checkpoint, mutations) = self.learn_state(from);
                tracing::info!(
                    "replica {:?}: learner {learner:?} asks from decree {from}: checkpoint {:?}, {} logged mutations",
                    self.host.gpid(),
                    checkpoint.as_ref().map(|c| c.decree),
                    mutations.len()
                );
                self.event(Event::LearnStateReady {
                    learner,
                    signature,
                    checkpoint,
                    mutations,
                });
            }
            Action::InstallCheckpoint(cp) => self.host.fetch_checkpoint(cp),
        }
    }

    fn commit(&mut self, m: Mutation, clients: Vec<u64>) {
        self.host.committed(&m, self.core.status());
        if self.core.status() == Status::Error || self.transient.is_some() {
            // An earlier decree of this round failed to apply (or the store cannot be
            // trusted to take more): the store has a hole and is about to be discarded or
            // reopened. Applying later decrees onto it would compute their answers (incr,
            // check_and_set) from a wrong state; their clients are left to `fail_clients`
            // (outcome unknown — the group did commit them). A reopened copy replays them
            // from its log.
            return;
        }
        metrics::counter!("pegasus_replica_committed_mutations_total").increment(1);
        let writes: Vec<WriteRequest> = m.updates.iter().filter_map(decode_write).collect();
        if writes.len() != m.updates.len() {
            tracing::error!(
                "replica {:?}: decree {} holds an update that does not decode",
                self.host.gpid(),
                m.decree
            );
            self.event(Event::LocalError);
            return;
        }
        if crate::failpoint::fire(crate::failpoint::FailPoint::ReplicaPanic) {
            #[expect(clippy::panic, reason = "a test-only fail point standing in for a bug")]
            {
                panic!("fail point replica_panic at decree {}", m.decree);
            }
        }
        let applied = if crate::failpoint::fire(crate::failpoint::FailPoint::StorageWrite) {
            Err(StorageError::Corruption(
                "fail point storage_write: injected corruption".into(),
            ))
        } else {
            self.store.apply(m.decree, m.timestamp_us, &writes)
        };
        match applied {
            Ok(responses) => {
                for (c, resp) in clients.into_iter().zip(responses) {
                    if let Some(r) = self.clients.remove(&c) {
                        self.host.reply(r, Ok(resp));
                    }
                }
            }
            Err(e) => {
                let transient = e.is_transient();
                self.local_failure(
                    "apply",
                    transient,
                    format!("cannot apply decree {}: {e}", m.decree),
                );
            }
        }
    }

    /// What a learner starting at `from` needs: the logged mutations from `from` if the log
    /// still has them all, else a checkpoint of the store plus the mutations after it.
    fn learn_state(&mut self, from: Decree) -> (Option<Checkpoint>, Vec<Mutation>) {
        let applied = self.store.last_applied_decree();
        let logged = self.log.read_from(from).unwrap_or_default();
        // The log must hold every decree from `from` on, without a hole: a replica that
        // installed a learned checkpoint keeps its older records, so its log can run
        // 169..171 and then 188.. (found by the simulator once it ran this driver: the
        // learner committed 171 and waited for 172 forever).
        let contiguous = logged
            .windows(2)
            .all(|w| w.get(1).map(|m| m.decree) == w.first().map(|m| m.decree.saturating_add(1)));
        // And it must reach the applied decree: after installing a learned checkpoint at 33
        // a replica may hold records through 31 only, and a response of 31 alone leaves the
        // learner waiting for 32 and 33 for good (found by the cluster simulator, seed
        // 56405).
        let complete = from > applied
            || (logged.first().is_some_and(|m| m.decree <= from)
                && logged.last().is_some_and(|m| m.decree >= applied)
                && contiguous);
        if complete {
            return (None, logged);
        }
        match self.host.make_checkpoint(&self.store) {
            Ok(cp) => {
                tracing::info!(
                    "replica {:?}: a learner needs decree {from}, the log starts later: sending a checkpoint at {}",
                    self.host.gpid(),
                    cp.decree
                );
                let after = self
                    .log
                    .read_from(cp.decree.saturating_add(1))
                    .unwrap_or_default();
                (Some(cp), after)
            }
            Err(e) => {
                tracing::warn!(
                    "replica {:?}: checkpoint for a learner failed: {e}",
                    self.host.gpid()
                );
                (None, logged)
            }
        }
    }

    fn install_checkpoint(&mut self, decree: Decree, staged: H::Staged) {
        match self.host.open_checkpoint(decree, staged) {
            Ok((engine, name)) => {
                let store = Arc::new(self.host.store(engine));
                // Point init.json at the new copy before using it: a crash in between
                // leaves the old copy current and the new one is cleaned up on reopen.
                let mut info = self.persisted.clone();
                let old_data = std::mem::replace(&mut info.data, name);
                if let Err(e) = self.host.write_init(&info) {
                    let transient = self.host.is_transient(&e);
                    self.local_failure(
                        "checkpoint_install",
                        transient,
                        format!("cannot persist init info: {e}"),
                    );
                    return;
                }
                self.persisted = info;
                let previous = std::mem::replace(&mut self.store, store);
                self.host.store_replaced(&self.store, previous, old_data);
                metrics::counter!("pegasus_replica_learn_checkpoints_total").increment(1);
                tracing::info!(
                    "replica {:?}: installed a learned checkpoint at decree {decree}",
                    self.host.gpid()
                );
                self.event(Event::CheckpointInstalled { decree });
            }
            Err(e) => {
                let transient = self.host.is_transient(&e);
                self.local_failure(
                    "checkpoint_install",
                    transient,
                    format!("installing checkpoint failed: {e}"),
                );
            }
        }
    }

    fn maybe_record_storage(&mut self, now: u64) {
        if !self.active_since_stats
            || now.saturating_sub(self.last_storage_stats) < STORAGE_STATS_MS
        {
            return;
        }
        self.record_storage(now);
    }

    fn record_storage(&mut self, now: u64) {
        self.last_storage_stats = now;
        self.active_since_stats = false;
        self.host.record_storage(&self.store);
    }

    /// Flushes the store and drops log segments it no longer needs, on a timer.
    fn maybe_checkpoint(&mut self, now: u64) {
        if now.saturating_sub(self.last_checkpoint) < self.cfg.checkpoint_interval_ms {
            return;
        }
        self.last_checkpoint = now;
        // An idle replica's figures are refreshed with its flush timer.
        self.record_storage(now);
        self.host.housekeeping(&self.store, &self.persisted.app);
        let engine = self.store.engine();
        let flushed = if crate::failpoint::fire(crate::failpoint::FailPoint::StorageFlushEmfile) {
            Err(StorageError::Io(crate::failpoint::os_error(
                pegasus_storage::error::EMFILE,
            )))
        } else {
            engine.flush()
        };
        if let Err(e) = flushed {
            // A failed flush leaves RocksDB in its background-error (read-only) state, and
            // the C API has no `Resume()`: closing and reopening the engine is the way back.
            let transient = e.is_transient();
            self.local_failure("rocksdb_flush", transient, format!("flush failed: {e}"));
            return;
        }
        // Keep what lagging secondaries or learners may still ask for.
        let durable = engine.durable_decree().unwrap_or(0);
        let keep_from = durable.saturating_sub(self.cfg.log_retain_decrees);
        if let Err(e) = self.log.gc(keep_from) {
            tracing::warn!("replica {:?}: log gc failed: {e}", self.host.gpid());
        }
    }

    /// Writes `init.json` when the ballot, the fresh flag or the table facts changed.
    fn persist(&mut self) {
        let config = self.core.config().clone();
        let fresh = self.core.is_fresh();
        if fresh == self.persisted.fresh && config == self.persisted.config {
            return;
        }
        let mut info = self.persisted.clone();
        info.config = config;
        info.fresh = fresh;
        match self.host.write_init(&info) {
            Ok(()) => self.persisted = info,
            Err(e) => {
                let transient = self.host.is_transient(&e);
                self.local_failure("init", transient, format!("cannot persist init info: {e}"));
            }
        }
    }
}
