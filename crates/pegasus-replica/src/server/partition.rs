//! One hosted replica: a thread that owns the PacificA core, the RocksDB partition store and
//! the mutation log, fed by a channel. Blocking I/O (RocksDB writes, fsync) happens on this
//! thread, never on the async runtime. Everything queued while the thread was busy is
//! handled in one go and then the log is flushed once: group commit falls out of the loop.
//!
//! Reads do not go through the thread: it publishes the read deadline (lease, primary,
//! re-proposals committed) after every event, and readers use the shared store directly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use pegasus_control::{AppSummary, ReplicaReport};
use pegasus_core::config::{ConfigType, NodeId, PartitionConfig};
use pegasus_core::ids::{Decree, Gpid};
use pegasus_proto::ErrorCode;
use pegasus_storage::error::is_resource_exhaustion;
use pegasus_storage::{
    PartitionStore, RocksEngine, StorageEngine, StorageError, WriteRequest, WriteResponse,
};
use tokio::sync::oneshot;

use super::layout::{self, InitInfo};
use super::Ctx;
use crate::core::{Action, Checkpoint, Event, Refusal, Replica, Status};
use crate::fs::{StdFs, WithFailPoints};
use crate::log::{LogError, LogOptions, MutationLog};
use crate::mutation::Mutation;
use crate::update::{decode_write, encode_write};

/// The storage a replica serves from.
pub type Store = PartitionStore<RocksEngine>;

/// The answer to one client write.
pub type WriteResult = Result<WriteResponse, ErrorCode>;

/// What the replica thread is told.
#[derive(Debug)]
pub enum Input {
    /// An event for the core.
    Core(Event),
    /// A client write.
    Write {
        /// Encoded write.
        update: Bytes,
        /// Where the answer goes.
        reply: oneshot::Sender<WriteResult>,
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
    /// Table facts from meta (envs: `default_ttl` becomes a mutation on the primary).
    App(AppSummary),
    /// A learned checkpoint was fetched into `dir`.
    CheckpointFetched {
        /// Its decree.
        decree: Decree,
        /// Where its files are.
        dir: PathBuf,
    },
    /// Fetching a checkpoint failed (why).
    CheckpointFailed(String),
    /// Stop (table dropped, garbage collected, or shutdown).
    Close,
}

/// What the server sees of a replica.
#[derive(Debug)]
pub struct Shared {
    /// The partition.
    pub gpid: Gpid,
    /// Its directory.
    pub dir: PathBuf,
    /// The store reads are served from; taken out when the thread ends, so that RocksDB
    /// closes as soon as the last reader is done.
    store: RwLock<Option<Arc<Store>>>,
    /// The store last served, without keeping it open.
    last_store: Mutex<Weak<Store>>,
    read_until_ms: AtomicU64,
    last_timestamp_us: AtomicU64,
    report: Mutex<(Status, ReplicaReport)>,
    tx: Mutex<Sender<Input>>,
    closed: AtomicBool,
    app: Mutex<AppSummary>,
    /// Client writes handed to the thread and not answered yet.
    pub pending_writes: std::sync::atomic::AtomicUsize,
}

impl Shared {
    /// The store, if reads may be served at `now_ms`.
    pub fn readable_store(&self, now_ms: u64) -> Option<Arc<Store>> {
        if now_ms >= self.read_until_ms.load(Ordering::Acquire) {
            return None;
        }
        self.store.read().ok().and_then(|s| s.clone())
    }

    fn set_store(&self, store: &Arc<Store>) {
        if let Ok(mut s) = self.store.write() {
            *s = Some(store.clone());
        }
        if let Ok(mut w) = self.last_store.lock() {
            *w = Arc::downgrade(store);
        }
    }

    fn release_store(&self) {
        let released = self.store.write().ok().and_then(|mut s| s.take());
        drop(released);
    }

    /// The store this replica served last, without keeping it open: while it is still
    /// alive (a reader or a background compaction holds it), RocksDB holds its directory
    /// and refuses to open it again in this process.
    pub fn store_handle(&self) -> Weak<Store> {
        match self.last_store.lock() {
            Ok(w) => w.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Sends an input to the replica thread (false if it stopped).
    pub fn send(&self, input: Input) -> bool {
        self.tx
            .lock()
            .map(|tx| tx.send(input).is_ok())
            .unwrap_or(false)
    }

    /// Status and what the replica reports to meta.
    pub fn report(&self) -> (Status, ReplicaReport) {
        match self.report.lock() {
            Ok(r) => *r,
            Err(p) => *p.into_inner(),
        }
    }

    /// The largest mutation timestamp the replica holds (Unix µs).
    pub fn last_timestamp_us(&self) -> u64 {
        self.last_timestamp_us.load(Ordering::Acquire)
    }

    /// Whether the thread has stopped.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The table facts.
    pub fn app(&self) -> AppSummary {
        match self.app.lock() {
            Ok(a) => a.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// How a replica thread ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Told to close.
    Closed,
    /// The replica failed (corruption, an I/O error, a protocol anomaly, a panic): set its
    /// copy aside and rebuild it.
    Failed,
    /// A local operation ran out of a resource (descriptors, memory, disk space): the copy
    /// is intact as after a crash, so reopen it from its directory once the resource may
    /// be back. The reason is for logs and the admin view.
    Reopen(String),
}

/// A storage error as an I/O error, keeping what classifies it: an OS error stays itself
/// (its number), anything else is wrapped whole (see [`is_transient_io`]).
fn storage_error(e: StorageError) -> std::io::Error {
    match e {
        StorageError::Io(e) => e,
        other => std::io::Error::other(other),
    }
}

/// A mutation-log error as an I/O error, the same way.
fn log_error(e: LogError) -> std::io::Error {
    match e {
        LogError::Io(e) => e,
        other => std::io::Error::other(other),
    }
}

/// Whether an error of [`open`] (or of any local file operation) is a transient lack of a
/// resource: an OS error EMFILE, ENFILE, ENOMEM or ENOSPC, or a storage error that says so.
pub fn is_transient_io(e: &std::io::Error) -> bool {
    is_resource_exhaustion(e)
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<StorageError>())
            .is_some_and(StorageError::is_transient)
}

/// Opens (or creates) the replica of `gpid` and starts its thread. `fresh_config` is used
/// when the directory does not exist yet (the replica is created empty).
pub fn open(
    ctx: &Arc<Ctx>,
    gpid: Gpid,
    create_with: Option<(PartitionConfig, AppSummary)>,
    on_exit: impl FnOnce(Gpid, Exit) + Send + 'static,
) -> std::io::Result<Arc<Shared>> {
    let dir = layout::replica_dir(&ctx.root, gpid);
    let existed = dir.join("init.json").exists();
    let init = if existed {
        layout::read_init(&dir)?
    } else {
        let Some((config, app)) = create_with else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no replica {gpid:?} here"),
            ));
        };
        std::fs::create_dir_all(&dir)?;
        let info = InitInfo {
            config: PartitionConfig {
                gpid,
                ballot: 0,
                max_replica_count: config.max_replica_count,
                ..PartitionConfig::default()
            },
            fresh: true,
            app,
            // A name of its own, not `data`: RocksDB refuses to open a path this process
            // still holds open, and the failed copy this one replaces may still be closing
            // (readers, a learner task) under the same path, now moved aside.
            data: format!("data.0.{}", super::wall_ms()),
        };
        layout::write_init(&dir, &info)?;
        info
    };
    // Leftovers: copies replaced by a learned checkpoint, half-fetched checkpoints,
    // checkpoints made for learners.
    for entry in std::fs::read_dir(&dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if (name.starts_with("data") && name != init.data) || name == "learn" || name == "learn.tmp"
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let engine = RocksEngine::open(&ctx.env, &dir.join(&init.data)).map_err(storage_error)?;
    let store = Arc::new(PartitionStore::new(engine, ctx.clock.clone(), ctx.limits));
    let committed = store.last_applied_decree();
    let fs: Arc<dyn crate::fs::FileSystem> = Arc::new(WithFailPoints(StdFs));
    let (log, replayed, report) = MutationLog::open(
        fs,
        &dir.join("plog"),
        LogOptions {
            segment_bytes: ctx.cfg.log_segment_bytes,
            sync: true,
        },
    )
    .map_err(log_error)?;
    let mut core = Replica::new(ctx.me, ctx.opts, init.config.clone(), committed, replayed);
    core.observe_timestamp(store.engine().applied_state().write_time_us);
    if init.fresh {
        core.mark_fresh();
    }
    if report.truncated_bytes > 0 {
        tracing::warn!(
            "replica {gpid:?}: cut {} bytes of torn mutation-log tail",
            report.truncated_bytes
        );
        core.mark_torn_tail();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let shared = Arc::new(Shared {
        gpid,
        dir: dir.clone(),
        store: RwLock::new(Some(store.clone())),
        last_store: Mutex::new(Arc::downgrade(&store)),
        read_until_ms: AtomicU64::new(0),
        last_timestamp_us: AtomicU64::new(core.last_timestamp_us()),
        report: Mutex::new((
            core.status(),
            ReplicaReport {
                gpid,
                ballot: core.data_ballot(),
                last_committed: core.last_committed(),
                last_prepared: core.last_prepared(),
            },
        )),
        tx: Mutex::new(tx),
        closed: AtomicBool::new(false),
        app: Mutex::new(init.app.clone()),
        pending_writes: std::sync::atomic::AtomicUsize::new(0),
    });
    let mut actor = Actor {
        ctx: ctx.clone(),
        shared: shared.clone(),
        core,
        store,
        log,
        appended: 0,
        flushed: 0,
        clients: HashMap::new(),
        next_client: 1,
        persisted: init,
        last_tick: 0,
        last_checkpoint: ctx.now_ms(),
        learn_dirs: Vec::new(),
        default_ttl: None,
        manual_compact: ManualCompact::default(),
        retired: Vec::new(),
        checkpoints_made: 0,
        last_storage_stats: 0,
        transient: None,
    };
    let thread_shared = shared.clone();
    std::thread::Builder::new()
        .name(format!("replica-{}.{}", gpid.app_id, gpid.pidx))
        .spawn(move || {
            // A panic (a bug) fails this replica over exactly like an I/O error: it must
            // never leave the partition wedged with a thread gone and a status still
            // reported as healthy.
            let exit =
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| actor.run(rx))) {
                    Ok(exit) => exit,
                    Err(panic) => {
                        actor.after_panic(&panic_message(panic.as_ref()));
                        Exit::Failed
                    }
                };
            // Close RocksDB and the log before the directory may be moved aside (or opened
            // again): RocksDB closes once the last reader lets go of the store.
            drop(actor);
            thread_shared.release_store();
            thread_shared.closed.store(true, Ordering::Release);
            thread_shared.read_until_ms.store(0, Ordering::Release);
            on_exit(gpid, exit);
        })?;
    Ok(shared)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into())
}

struct Actor {
    ctx: Arc<Ctx>,
    shared: Arc<Shared>,
    core: Replica,
    store: Arc<Store>,
    log: MutationLog,
    appended: u64,
    flushed: u64,
    clients: HashMap<u64, oneshot::Sender<WriteResult>>,
    next_client: u64,
    persisted: InitInfo,
    last_tick: u64,
    last_checkpoint: u64,
    learn_dirs: Vec<PathBuf>,
    /// The `default_ttl` env last turned into a mutation by this node as primary.
    default_ttl: Option<u32>,
    manual_compact: ManualCompact,
    /// Stores replaced by a learned checkpoint, removed once no reader holds them.
    retired: Vec<(Arc<Store>, PathBuf)>,
    /// Checkpoints made for learners (names them uniquely).
    checkpoints_made: u64,
    /// When RocksDB figures were last recorded.
    last_storage_stats: u64,
    /// A local operation of this round ran out of a resource: reads are off, nothing more
    /// is applied, and the round ends with [`Exit::Reopen`].
    transient: Option<String>,
}

/// Pegasus's `manual_compact.once.trigger_time` env: a Unix time in seconds; every replica
/// of the table flushes and fully compacts its store once the time has come, once per
/// trigger value. Compaction drops expired records (the TTL filter) and deleted ones.
pub const MANUAL_COMPACT_ONCE_TRIGGER_TIME: &str = "manual_compact.once.trigger_time";

/// A replica's manual compaction: the trigger it last started, and whether one runs.
#[derive(Debug, Default)]
struct ManualCompact {
    started_for: u64,
    running: Arc<AtomicBool>,
}

/// How often each replica records its RocksDB figures, ms.
const STORAGE_STATS_MS: u64 = 2_000;

/// Inputs handled per round before the log is flushed.
const BATCH: usize = 512;

impl Actor {
    fn run(&mut self, rx: Receiver<Input>) -> Exit {
        let tick = Duration::from_millis(self.ctx.cfg.tick_ms.max(1));
        loop {
            let first = match rx.recv_timeout(tick) {
                Ok(i) => Some(i),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return self.close(),
            };
            let mut inputs: Vec<Input> = first.into_iter().collect();
            while inputs.len() < BATCH {
                match rx.try_recv() {
                    Ok(i) => inputs.push(i),
                    Err(_) => break,
                }
            }
            // Tick before this round's inputs when it is due, and always before writes: the
            // core stamps writes with the wall clock of its last tick, and a write must not
            // be stamped earlier than a read this server answered before it arrived (an incr
            // right after a read found the record expired must find it expired too).
            let now = self.ctx.now_ms();
            let has_writes = inputs.iter().any(|i| matches!(i, Input::Write { .. }));
            if has_writes || now.saturating_sub(self.last_tick) >= self.ctx.cfg.tick_ms {
                self.last_tick = now;
                self.event(Event::Tick {
                    now_ms: now,
                    wall_us: self.ctx.wall_us(),
                });
            }
            // Client writes of one round go to the core together (in arrival order, cut
            // only by other inputs), so they share mutations: one prepare, one log
            // record and one ack per batch instead of per write.
            let mut writes: Vec<(u64, Bytes)> = Vec::new();
            for input in inputs {
                match input {
                    Input::Close => return self.close(),
                    Input::Write { update, reply } => {
                        if self.refuses_writes() {
                            let _ = reply.send(Err(ErrorCode::DiskInsufficient));
                            continue;
                        }
                        let id = self.next_client;
                        self.next_client += 1;
                        self.clients.insert(id, reply);
                        writes.push((id, update));
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
            // Group commit: one write + fsync for everything appended this round.
            if self.log.has_pending() {
                let started = std::time::Instant::now();
                let batch = self.appended - self.flushed;
                match self.log.flush() {
                    Ok(_) => {
                        metrics::histogram!("pegasus_replica_log_flush_seconds")
                            .record(started.elapsed().as_secs_f64());
                        metrics::histogram!("pegasus_replica_log_flush_mutations")
                            .record(batch as f64);
                        self.flushed = self.appended;
                        self.event(Event::LogFlushed {
                            appended: self.flushed,
                        });
                    }
                    Err(e) => {
                        let transient = e.is_transient();
                        if e.is_disk_full() {
                            self.event(Event::LogFull);
                        }
                        self.local_failure(
                            "log_flush",
                            transient,
                            format!("mutation log flush failed: {e}"),
                        );
                    }
                }
            }
            if let Some(exit) = self.failed_exit() {
                return exit;
            }
            self.maybe_checkpoint(now);
            self.maybe_record_storage(now);
            self.persist();
            if let Some(exit) = self.failed_exit() {
                return exit;
            }
        }
    }

    /// How the thread ends after a failure this round, if one happened: in error, it is
    /// rebuilt (this wins over a transient failure of the same round); after a transient
    /// failure, it is reopened in place. Writes still waiting are answered `ERR_TIMEOUT`.
    fn failed_exit(&mut self) -> Option<Exit> {
        if self.core.status() == Status::Error {
            tracing::error!(
                "replica {:?} is in error: it will be rebuilt",
                self.shared.gpid
            );
            self.fail_clients();
            return Some(Exit::Failed);
        }
        let reason = self.transient.take()?;
        tracing::warn!(
            "replica {:?} closes to be reopened in place ({reason})",
            self.shared.gpid
        );
        self.fail_clients();
        Some(Exit::Reopen(reason))
    }

    /// A local operation failed. A transient lack of a resource (descriptors, memory, disk
    /// space) leaves the copy as a crash would: reads stop at once, nothing more is applied
    /// this round, and the round ends with [`Exit::Reopen`] — the core is not told, so a
    /// primary does not ask meta to drop it. Anything else is the core's `LocalError`: the
    /// replica goes to error and is rebuilt.
    fn local_failure(&mut self, op: &'static str, transient: bool, what: String) {
        let gpid = self.shared.gpid;
        if !transient {
            tracing::error!("replica {gpid:?}: {what}");
            self.event(Event::LocalError);
            return;
        }
        metrics::counter!("pegasus_replica_transient_errors_total", "op" => op).increment(1);
        tracing::warn!(
            "replica {gpid:?}: {what}: not corruption: it closes and is reopened in place"
        );
        self.shared.read_until_ms.store(0, Ordering::Release);
        if self.transient.is_none() {
            self.transient = Some(format!("{op}: {what}"));
        }
    }

    /// After the thread panicked: stop reads at once, have meta drop this replica if it
    /// led (the core's own failure path, itself guarded), and answer waiting writes
    /// `ERR_TIMEOUT` (they may have committed).
    fn after_panic(&mut self, what: &str) {
        self.shared.read_until_ms.store(0, Ordering::Release);
        metrics::counter!("pegasus_replica_panics_total").increment(1);
        tracing::error!(
            "replica {:?} panicked: {what}; it fails over like an I/O error and will be rebuilt",
            self.shared.gpid
        );
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.event(Event::LocalError);
        }));
        if failed.is_err() {
            tracing::error!(
                "replica {:?}: its failure path panicked too; meta drops it once beacons stop listing it",
                self.shared.gpid
            );
        }
        self.fail_clients();
        if let Ok(mut r) = self.shared.report.lock() {
            r.0 = Status::Error;
        }
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
        for (_, c) in self.clients.drain() {
            let _ = c.send(Err(ErrorCode::Timeout));
        }
    }

    fn input(&mut self, input: Input) {
        match input {
            Input::Core(ev) => self.event(ev),
            Input::Write { update, reply } => {
                if self.refuses_writes() {
                    let _ = reply.send(Err(ErrorCode::DiskInsufficient));
                    return;
                }
                let id = self.next_client;
                self.next_client += 1;
                self.clients.insert(id, reply);
                self.event(Event::ClientWrite { id, update });
            }
            Input::Proposal { config, kind, node } => {
                self.event(Event::Config(config));
                self.event(Event::Proposal { kind, node });
            }
            Input::App(app) => self.on_app(app),
            Input::CheckpointFetched { decree, dir } => self.install_checkpoint(decree, &dir),
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
            Input::Close => {}
        }
    }

    fn on_app(&mut self, app: AppSummary) {
        if let Ok(mut a) = self.shared.app.lock() {
            *a = app.clone();
        }
        self.persisted.app = app;
        if let Err(e) = layout::write_init(&self.shared.dir, &self.persisted) {
            tracing::warn!(
                "replica {:?}: cannot persist table facts: {e}",
                self.shared.gpid
            );
        }
        self.maybe_manual_compact();
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

    /// Starts the compaction `manual_compact.once.trigger_time` asks for, if its time has
    /// come and this replica has not run it for that trigger yet. It runs on a thread of its
    /// own: RocksDB compacts in the background while the replica keeps serving.
    fn maybe_manual_compact(&mut self) {
        let Some(trigger) = self
            .persisted
            .app
            .envs
            .get(MANUAL_COMPACT_ONCE_TRIGGER_TIME)
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            return;
        };
        let now_s = self.ctx.wall_us() / 1_000_000;
        let mc = &mut self.manual_compact;
        if trigger == 0
            || trigger <= mc.started_for
            || trigger > now_s
            || mc.running.load(Ordering::Acquire)
        {
            return;
        }
        mc.started_for = trigger;
        mc.running.store(true, Ordering::Release);
        let running = mc.running.clone();
        let store = self.store.clone();
        let gpid = self.shared.gpid;
        let spawned = std::thread::Builder::new()
            .name(format!("compact-{}.{}", gpid.app_id, gpid.pidx))
            .spawn(move || {
                let started = std::time::Instant::now();
                tracing::info!("replica {gpid:?}: manual compaction (trigger {trigger}) starts");
                match store.engine().compact_all() {
                    Ok(()) => {
                        metrics::counter!("pegasus_replica_manual_compactions_total").increment(1);
                        tracing::info!(
                            "replica {gpid:?}: manual compaction done in {:?}",
                            started.elapsed()
                        );
                    }
                    Err(e) => tracing::warn!("replica {gpid:?}: manual compaction failed: {e}"),
                }
                running.store(false, Ordering::Release);
            });
        if let Err(e) = spawned {
            tracing::warn!("replica {gpid:?}: cannot start a manual compaction: {e}");
            self.manual_compact.running.store(false, Ordering::Release);
        }
    }

    /// The read deadline to publish: none while a transient failure is pending (the store
    /// may lack a decree the group committed).
    fn read_deadline(&self) -> u64 {
        if self.transient.is_some() {
            return 0;
        }
        self.core.read_deadline().unwrap_or(0)
    }

    /// A primary on an insufficient disk whose every secondary is short of space too (or
    /// that has none) refuses writes with `ERR_DISK_INSUFFICIENT`: a definite error instead
    /// of a write that would fail in the log. With a healthy secondary, meta is handing the
    /// role over and writes go on meanwhile.
    fn refuses_writes(&self) -> bool {
        let refused = self.core.status() == Status::Primary
            && self
                .ctx
                .disk
                .refuses_writes(&self.core.config().secondaries);
        if refused {
            metrics::counter!("pegasus_replica_disk_insufficient_refusals_total").increment(1);
        }
        refused
    }

    fn publish(&self) {
        let until = self.read_deadline();
        self.shared.read_until_ms.store(until, Ordering::Release);
        self.shared
            .last_timestamp_us
            .store(self.core.last_timestamp_us(), Ordering::Release);
        if let Ok(mut r) = self.shared.report.lock() {
            *r = (
                self.core.status(),
                ReplicaReport {
                    gpid: self.shared.gpid,
                    // The ballot of the data held, never a configuration ballot merely
                    // adopted: meta's all-dead rule must not prefer an empty copy.
                    ballot: self.core.data_ballot(),
                    last_committed: self.core.last_committed(),
                    last_prepared: self.core.last_prepared(),
                },
            );
        }
    }

    fn event(&mut self, ev: Event) {
        let actions = self.core.handle(ev);
        // Before acting, only ever lower the read deadline: a step-down takes effect at
        // once, but reads must not open before this event's commits are applied (a new
        // primary's re-proposed decrees).
        self.publish_lowered();
        for a in actions {
            self.action(a);
        }
        self.publish();
    }

    fn publish_lowered(&self) {
        let until = self.read_deadline();
        self.shared.read_until_ms.fetch_min(until, Ordering::AcqRel);
    }

    fn action(&mut self, action: Action) {
        let gpid = self.shared.gpid;
        match action {
            Action::Send { to, msg } => self.ctx.send_peer(to, gpid, msg),
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
                        let _ = r.send(Err(code));
                    }
                }
            }
            Action::RequestConfig { kind, node, config } => {
                self.ctx
                    .request_config(self.shared.clone(), kind, node, config);
            }
            Action::BuildLearnState {
                learner,
                signature,
                from,
            } => {
                let (checkpoint, mutations) = self.learn_state(from);
                tracing::info!(
                    "replica {:?}: learner {:?} asks from decree {from}: checkpoint {:?}, {} logged mutations",
                    gpid,
                    super::addr_of(learner),
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
            Action::InstallCheckpoint(cp) => self.ctx.fetch_checkpoint(self.shared.clone(), cp),
        }
    }

    fn commit(&mut self, m: Mutation, clients: Vec<u64>) {
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
                self.shared.gpid,
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
            Err(pegasus_storage::StorageError::Corruption(
                "fail point storage_write: injected corruption".into(),
            ))
        } else {
            self.store.apply(m.decree, m.timestamp_us, &writes)
        };
        match applied {
            Ok(responses) => {
                for (c, resp) in clients.into_iter().zip(responses) {
                    if let Some(r) = self.clients.remove(&c) {
                        let _ = r.send(Ok(resp));
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
        let complete = from > applied || logged.first().is_some_and(|m| m.decree <= from);
        if complete {
            return (None, logged);
        }
        match self.make_checkpoint() {
            Ok((cp, decree)) => {
                tracing::info!(
                    "replica {:?}: a learner needs decree {from}, the log starts later: sending a checkpoint at {decree}",
                    self.shared.gpid
                );
                let after = self.log.read_from(decree + 1).unwrap_or_default();
                (Some(cp), after)
            }
            Err(e) => {
                tracing::warn!(
                    "replica {:?}: checkpoint for a learner failed: {e}",
                    self.shared.gpid
                );
                (None, logged)
            }
        }
    }

    fn make_checkpoint(&mut self) -> std::io::Result<(Checkpoint, Decree)> {
        self.checkpoints_made += 1;
        let name = format!("cp-{}-{}", self.ctx.now_ms(), self.checkpoints_made);
        let learn = self.shared.dir.join("learn");
        std::fs::create_dir_all(&learn)?;
        let dir = learn.join(&name);
        let state = self
            .store
            .engine()
            .checkpoint(&dir)
            .map_err(storage_error)?;
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                files.push((
                    entry.file_name().to_string_lossy().into_owned(),
                    entry.metadata()?.len(),
                ));
            }
        }
        self.learn_dirs.push(dir);
        // Keep the last few checkpoints for learners still fetching them.
        while self.learn_dirs.len() > 3 {
            let old = self.learn_dirs.remove(0);
            let _ = std::fs::remove_dir_all(old);
        }
        let handle = super::CheckpointHandle {
            server: self.ctx.addr,
            gpid: self.shared.gpid,
            name,
            files,
        };
        let data = postcard::to_stdvec(&handle).map_err(std::io::Error::other)?;
        Ok((
            Checkpoint {
                decree: state.decree,
                timestamp_us: state.write_time_us,
                data: Bytes::from(data),
            },
            state.decree,
        ))
    }

    fn install_checkpoint(&mut self, decree: Decree, fetched: &Path) {
        let name = format!("data.{decree}.{}", super::wall_ms());
        let target = self.shared.dir.join(&name);
        let opened = std::fs::rename(fetched, &target)
            .and_then(|()| RocksEngine::open(&self.ctx.env, &target).map_err(storage_error));
        match opened {
            Ok(engine) => {
                let store = Arc::new(PartitionStore::new(
                    engine,
                    self.ctx.clock.clone(),
                    self.ctx.limits,
                ));
                // Point init.json at the new copy before using it: a crash in between
                // leaves the old copy current and the new one is cleaned up on reopen.
                let mut info = self.persisted.clone();
                let old = self.shared.dir.join(&info.data);
                info.data = name;
                if let Err(e) = layout::write_init(&self.shared.dir, &info) {
                    let transient = is_transient_io(&e);
                    self.local_failure(
                        "checkpoint_install",
                        transient,
                        format!("cannot persist init info: {e}"),
                    );
                    return;
                }
                self.persisted = info;
                self.shared.set_store(&store);
                let previous = std::mem::replace(&mut self.store, store);
                self.retired.push((previous, old));
                metrics::counter!("pegasus_replica_learn_checkpoints_total").increment(1);
                tracing::info!(
                    "replica {:?}: installed a learned checkpoint at decree {decree}",
                    self.shared.gpid
                );
                self.event(Event::CheckpointInstalled { decree });
            }
            Err(e) => {
                let transient = is_transient_io(&e);
                self.local_failure(
                    "checkpoint_install",
                    transient,
                    format!("installing checkpoint failed: {e}"),
                );
            }
        }
    }

    /// Drops replaced stores nobody reads any more and removes their directories.
    fn collect_retired(&mut self) {
        let (free, busy): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retired)
            .into_iter()
            .partition(|(store, _)| Arc::strong_count(store) == 1);
        self.retired = busy;
        for (store, dir) in free {
            drop(store);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(
                    "replica {:?}: cannot remove {}: {e}",
                    self.shared.gpid,
                    dir.display()
                );
            }
        }
    }

    /// RocksDB figures of this replica as gauges, every few seconds.
    fn maybe_record_storage(&mut self, now: u64) {
        if now.saturating_sub(self.last_storage_stats) < STORAGE_STATS_MS {
            return;
        }
        self.last_storage_stats = now;
        let app = self.shared.gpid.app_id.to_string();
        let pidx = self.shared.gpid.pidx.to_string();
        let engine = self.store.engine();
        for (metric, property) in [
            (
                "pegasus_replica_rdb_memtable_bytes",
                "rocksdb.cur-size-all-mem-tables",
            ),
            (
                "pegasus_replica_rdb_sst_bytes",
                "rocksdb.total-sst-files-size",
            ),
            (
                "pegasus_replica_rdb_estimated_keys",
                "rocksdb.estimate-num-keys",
            ),
            (
                "pegasus_replica_rdb_pending_compaction_bytes",
                "rocksdb.estimate-pending-compaction-bytes",
            ),
            (
                "pegasus_replica_rdb_running_compactions",
                "rocksdb.num-running-compactions",
            ),
        ] {
            if let Ok(Some(v)) = engine.property_int(property) {
                metrics::gauge!(metric, "app_id" => app.clone(), "partition" => pidx.clone())
                    .set(v as f64);
            }
        }
        if let Some((hits, misses)) = engine.block_cache_counts() {
            metrics::counter!("pegasus_replica_rdb_block_cache_hits_total", "app_id" => app.clone(), "partition" => pidx.clone())
                .absolute(hits);
            metrics::counter!("pegasus_replica_rdb_block_cache_misses_total", "app_id" => app, "partition" => pidx)
                .absolute(misses);
        }
    }

    /// Flushes RocksDB and drops log segments it no longer needs, on a timer.
    fn maybe_checkpoint(&mut self, now: u64) {
        let every = self.ctx.cfg.checkpoint_interval_ms;
        if now.saturating_sub(self.last_checkpoint) < every {
            return;
        }
        self.last_checkpoint = now;
        self.collect_retired();
        self.maybe_manual_compact();
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
        let keep_from = durable.saturating_sub(self.ctx.cfg.log_retain_decrees);
        if let Err(e) = self.log.gc(keep_from) {
            tracing::warn!("replica {:?}: log gc failed: {e}", self.shared.gpid);
        }
    }

    /// Writes `init.json` when the ballot, the fresh flag or the table facts changed.
    fn persist(&mut self) {
        let config = self.core.config().clone();
        let fresh = self.core.is_fresh();
        if config.ballot == self.persisted.config.ballot
            && fresh == self.persisted.fresh
            && config == self.persisted.config
        {
            return;
        }
        let mut info = self.persisted.clone();
        info.config = config;
        info.fresh = fresh;
        match layout::write_init(&self.shared.dir, &info) {
            Ok(()) => self.persisted = info,
            Err(e) => {
                let transient = is_transient_io(&e);
                self.local_failure("init", transient, format!("cannot persist init info: {e}"));
            }
        }
    }
}
