//! The replica server's node log: recovery into the replicas' own logs at start, then one
//! syncer thread that writes and fsyncs what every replica submitted since its last sync
//! as one batch (group commit across partitions), answers each replica, and forgets
//! segments once their replicas' logs are synced.
//!
//! While the syncer writes one batch the next one gathers: under load every sync carries
//! the appends of many partitions, and one `fdatasync` per server acknowledges them all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Instant;

use pegasus_core::ids::Gpid;

use super::layout;
use super::partition::{Input, Shared};
use crate::fs::{FileSystem, StdFs, WithFailPoints};
use crate::log::{LogError, LogOptions, MutationLog};
use crate::nodelog::{self, NodeLog, NodeLogOptions, PlogFile, ReplicaKey};

/// What recovery at start found, for the replicas opened afterwards.
#[derive(Debug, Default)]
struct StartState {
    /// Replicas whose own log lost bytes the node log does not hold
    /// ([`crate::log::Merged::lost_acknowledged`]): none
    /// of them may reassert itself as primary before re-learning.
    torn: BTreeSet<Gpid>,
    /// Replicas whose log could not take their recovered records, or every replica when
    /// the node log is damaged before its tail: set them aside and rebuild them.
    unusable: Vec<(Gpid, String)>,
}

/// At start, before any replica opens: with `node_log`, recovers the node log into the
/// replicas' own logs and starts a new one; without it, a node log left by a run with it on
/// is recovered the same way and then removed (its records are acknowledged writes).
/// Replicas whose logs cannot take their records are set aside. Returns the node log to
/// run, if any, and the replicas that must not lead before re-learning.
pub(super) fn open(
    root: &Path,
    cfg: &super::ReplicaServerConfig,
    found: &[Gpid],
) -> std::io::Result<(Option<NodeLog>, BTreeSet<Gpid>)> {
    let dir = root.join("nlog");
    if !cfg.node_log && !dir.exists() {
        return Ok((None, BTreeSet::new()));
    }
    let opts = NodeLogOptions {
        segment_bytes: cfg.node_log_segment_bytes,
        sync: cfg.plog_force_flush,
        ..NodeLogOptions::default()
    };
    let (log, state) = recover(root, super::partition::log_options(cfg), opts, found)?;
    for (gpid, why) in &state.unusable {
        tracing::error!("replica {gpid:?}: node-log recovery failed ({why}): moving it aside");
        let _ = layout::retire(root, *gpid, "err", super::wall_ms());
    }
    if cfg.node_log {
        return Ok((Some(log), state.torn));
    }
    drop(log);
    std::fs::remove_dir_all(&dir)?;
    Ok((None, state.torn))
}

/// Reads the node log under `root`, writes each replica's recovered records into its own
/// log (synced), and starts a new node log. Errors only when the node log cannot be read
/// or started at all.
fn recover(
    root: &Path,
    log_opts: LogOptions,
    opts: NodeLogOptions,
    gpids: &[Gpid],
) -> std::io::Result<(NodeLog, StartState)> {
    let fs: Arc<dyn FileSystem> = Arc::new(WithFailPoints(StdFs));
    let dir = root.join("nlog");
    let mut state = StartState::default();
    match nodelog::recover(fs.as_ref(), &dir) {
        Ok(found) => {
            let nlog_torn = found.torn_bytes > 0;
            if nlog_torn {
                tracing::warn!("node log: cut {} bytes of torn tail", found.torn_bytes);
            }
            for (key, records) in &found.records {
                let replica = layout::replica_dir(root, key.gpid);
                // Another copy's records (set aside since), or a copy that is gone.
                match layout::read_init(&replica) {
                    Ok(init) if init.incarnation == key.incarnation => {}
                    _ => continue,
                }
                let plog = replica.join("plog");
                match MutationLog::merge(fs.clone(), &plog, log_opts, records.from, &records.bytes)
                {
                    Ok(merged) => {
                        if merged.lost_acknowledged(nlog_torn) {
                            state.torn.insert(key.gpid);
                        }
                    }
                    // Out of descriptors or space: nothing is lost yet, try the start again.
                    Err(LogError::Io(e)) if pegasus_storage::error::is_resource_exhaustion(&e) => {
                        return Err(e)
                    }
                    Err(e) => state.unusable.push((key.gpid, e.to_string())),
                }
            }
        }
        Err(LogError::Io(e)) => return Err(e),
        Err(e) => {
            // Damage before the tail: any replica's log may lack records this node
            // acknowledged, and the node log cannot say whose. Every copy is rebuilt.
            tracing::error!("node log damaged ({e}): every replica here is set aside");
            state.unusable = gpids.iter().map(|g| (*g, e.to_string())).collect();
        }
    }
    let log = NodeLog::create(fs, &dir, opts).map_err(|e| match e {
        LogError::Io(io) => io,
        other => std::io::Error::other(other),
    })?;
    Ok((log, state))
}

/// One replica's submission.
struct Submission {
    key: ReplicaKey,
    plog: PlogFile,
    records: Vec<u8>,
    appended: u64,
    to: Weak<Shared>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Submission>,
    stop: bool,
}

/// The syncer: replicas submit, one thread syncs.
pub(super) struct NodeLogService {
    queue: Mutex<Queue>,
    cv: Condvar,
}

impl std::fmt::Debug for NodeLogService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeLogService").finish_non_exhaustive()
    }
}

impl NodeLogService {
    /// Starts the syncer thread over `log`.
    pub(super) fn start(log: NodeLog) -> std::io::Result<Arc<Self>> {
        let service = Arc::new(Self {
            queue: Mutex::new(Queue::default()),
            cv: Condvar::new(),
        });
        let weak = Arc::downgrade(&service);
        std::thread::Builder::new()
            .name("nodelog-sync".into())
            .spawn(move || sync_loop(&weak, log))?;
        Ok(service)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a replica's records for the next batch; the answer goes to `to`.
    pub(super) fn submit(
        &self,
        key: ReplicaKey,
        plog: PlogFile,
        records: Vec<u8>,
        appended: u64,
        to: Weak<Shared>,
    ) {
        let mut q = self.lock();
        q.waiting.push(Submission {
            key,
            plog,
            records,
            appended,
            to,
        });
        drop(q);
        self.cv.notify_one();
    }

    /// Stops the syncer once what is queued is synced.
    pub(super) fn stop(&self) {
        self.lock().stop = true;
        self.cv.notify_one();
    }
}

fn sync_loop(service: &Weak<NodeLogService>, mut log: NodeLog) {
    loop {
        let Some(svc) = service.upgrade() else {
            return;
        };
        let batch = {
            let mut q = svc.lock();
            while q.waiting.is_empty() && !q.stop {
                q = svc.cv.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            if q.waiting.is_empty() {
                return;
            }
            std::mem::take(&mut q.waiting)
        };
        drop(svc);
        sync_batch(&mut log, batch);
        if log.segment_count() > 1 {
            if let Err(e) = log.retire() {
                // Kept until a later try succeeds: nothing is lost, the log only grows.
                tracing::warn!("node log: cannot forget old segments yet: {e}");
            }
        }
    }
}

/// Writes and syncs one batch, then answers every replica in it.
fn sync_batch(log: &mut NodeLog, batch: Vec<Submission>) {
    let mut answers: BTreeMap<ReplicaKey, (u64, Weak<Shared>)> = BTreeMap::new();
    for s in batch {
        log.append(s.key, &s.plog, &s.records);
        let a = answers.entry(s.key).or_insert((0, s.to.clone()));
        a.0 = a.0.max(s.appended);
        a.1 = s.to;
    }
    let started = Instant::now();
    let result = log.flush();
    metrics::histogram!("pegasus_replica_nodelog_sync_seconds")
        .record(started.elapsed().as_secs_f64());
    metrics::histogram!("pegasus_replica_nodelog_batch_replicas").record(answers.len() as f64);
    match result {
        Ok(bytes) => {
            metrics::counter!("pegasus_replica_nodelog_bytes_total").increment(bytes as u64);
            for (appended, to) in answers.into_values() {
                if let Some(shared) = to.upgrade() {
                    shared.send(Input::LogSynced { appended });
                }
            }
        }
        Err(e) => {
            tracing::error!(
                "node log: a batch of {} replicas failed: {e}",
                answers.len()
            );
            let (transient, disk_full) = (e.is_transient(), e.is_disk_full());
            for (_, to) in answers.into_values() {
                if let Some(shared) = to.upgrade() {
                    shared.send(Input::LogFailed {
                        reason: format!("node log: {e}"),
                        transient,
                        disk_full,
                    });
                }
            }
        }
    }
}
