//! The replica server's node log: recovery into the replicas' own logs at start, then
//! group commit across partitions by the replication workers themselves (leader and
//! followers, [`NodeLogService::write`]), and a thread that forgets old segments once
//! their replicas' logs are synced.
//!
//! While one batch is written and synced the next one gathers: under load every sync
//! carries the appends of many partitions, and one `fdatasync` per server acknowledges
//! them all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, Weak};

use crate::driver::LogFailure;
use std::time::Instant;

use pegasus_core::ids::Gpid;

use super::layout;
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
        // The wording of any replica that cannot be opened (operators and chaos look for it).
        tracing::error!(
            "replica {gpid:?} does not open (node-log recovery: {why}): moving it aside"
        );
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
                        if merged.cut {
                            tracing::warn!(
                                "replica {:?}: cut a torn mutation-log tail; {}",
                                key.gpid,
                                if merged.covered {
                                    "the node log holds what it had acknowledged"
                                } else {
                                    "it lost records that had been synced"
                                }
                            );
                        }
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

/// What the leader of a batch and its followers share.
#[derive(Default)]
struct Batches {
    /// Entries for the next batch.
    pending: Vec<(ReplicaKey, PlogFile, Vec<u8>)>,
    /// Batches written (successfully or not) so far.
    done: u64,
    /// A leader is writing batch `done + 1`.
    writing: bool,
    /// Why recent batches failed, by number.
    failures: BTreeMap<u64, LogFailure>,
    /// Stop the retirer.
    stop: bool,
}

/// The node log as the replication workers use it: group commit by leader and followers.
/// A worker whose round has records adds them to the next batch and waits; the first to
/// find no batch being written leads: it writes and syncs everything pending (its own and
/// whoever joined meanwhile) and wakes the others. A worker blocks on the fsync as it did
/// on its own log's, but one fsync now answers every partition in the batch. A separate
/// thread forgets old segments (it syncs their replicas' logs first), off the write path.
pub(super) struct NodeLogService {
    batches: Mutex<Batches>,
    /// Followers wait here for their batch.
    cv: Condvar,
    /// The retirer waits here for a finished segment (or the stop).
    retire_cv: Condvar,
    log: Mutex<NodeLog>,
}

impl std::fmt::Debug for NodeLogService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeLogService").finish_non_exhaustive()
    }
}

/// Failed batches remembered for their followers to read.
const FAILURES_KEPT: u64 = 1024;

impl NodeLogService {
    /// Starts the service over `log`, with its retirer thread.
    pub(super) fn start(log: NodeLog) -> std::io::Result<Arc<Self>> {
        let service = Arc::new(Self {
            batches: Mutex::new(Batches::default()),
            cv: Condvar::new(),
            retire_cv: Condvar::new(),
            log: Mutex::new(log),
        });
        let weak = Arc::downgrade(&service);
        std::thread::Builder::new()
            .name("nodelog-retire".into())
            .spawn(move || retire_loop(&weak))?;
        Ok(service)
    }

    fn batches(&self) -> std::sync::MutexGuard<'_, Batches> {
        self.batches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes a replica's records durable with whatever else is pending: returns once the
    /// batch holding them is synced, or why it failed (none of it counts then).
    pub(super) fn write(
        &self,
        key: ReplicaKey,
        plog: PlogFile,
        records: Vec<u8>,
    ) -> Result<(), LogFailure> {
        let mut b = self.batches();
        b.pending.push((key, plog, records));
        let mine = b.done + 1 + u64::from(b.writing);
        loop {
            if b.done >= mine {
                return match b.failures.get(&mine) {
                    Some(f) => Err(f.clone()),
                    None => Ok(()),
                };
            }
            if b.writing {
                b = self.cv.wait(b).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            // Lead the next batch: everything pending, this worker's records among them.
            b.writing = true;
            let entries = std::mem::take(&mut b.pending);
            drop(b);
            let result = self.write_batch(entries);
            b = self.batches();
            b.writing = false;
            b.done += 1;
            let n = b.done;
            if let Err(f) = result {
                b.failures.insert(n, f);
                let keep_from = n.saturating_sub(FAILURES_KEPT);
                b.failures = b.failures.split_off(&keep_from);
            }
            self.cv.notify_all();
        }
    }

    fn write_batch(&self, entries: Vec<(ReplicaKey, PlogFile, Vec<u8>)>) -> Result<(), LogFailure> {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let mut replicas = BTreeSet::new();
        let mut mutations = 0;
        for (key, plog, records) in &entries {
            log.append(*key, plog, records);
            replicas.insert(*key);
            mutations += crate::log::count_records(records);
        }
        let started = Instant::now();
        let result = log.flush();
        // The same figures as a replica's own log flush (dashboards read them either way),
        // and the batch's replicas.
        metrics::histogram!("pegasus_replica_log_flush_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("pegasus_replica_log_flush_mutations").record(mutations as f64);
        metrics::histogram!("pegasus_replica_nodelog_batch_replicas").record(replicas.len() as f64);
        let rolled = log.segment_count() > 1;
        drop(log);
        if rolled {
            self.retire_cv.notify_one();
        }
        match result {
            Ok(bytes) => {
                metrics::counter!("pegasus_replica_nodelog_bytes_total").increment(bytes as u64);
                Ok(())
            }
            Err(e) => {
                tracing::error!(
                    "node log: a batch of {} replicas failed: {e}",
                    replicas.len()
                );
                let f = LogFailure::from(&e);
                Err(LogFailure {
                    reason: format!("node log: {}", f.reason),
                    ..f
                })
            }
        }
    }

    /// Stops the retirer.
    pub(super) fn stop(&self) {
        self.batches().stop = true;
        self.retire_cv.notify_one();
    }
}

/// Forgets finished segments: their replicas' logs are synced (by path) without holding
/// the node log, so batches go on meanwhile.
fn retire_loop(service: &Weak<NodeLogService>) {
    loop {
        let Some(svc) = service.upgrade() else {
            return;
        };
        let retirable = {
            let log = svc.log.lock().unwrap_or_else(|e| e.into_inner());
            log.retirable()
        };
        if let Some((index, plogs)) = retirable {
            match plogs.iter().try_for_each(crate::nodelog::sync_plog) {
                Ok(()) => {
                    let mut log = svc.log.lock().unwrap_or_else(|e| e.into_inner());
                    if let Err(e) = log.forget(index) {
                        tracing::warn!("node log: cannot delete segment {index}: {e}");
                    }
                    continue;
                }
                // Kept until a later try succeeds: nothing is lost, the log only grows.
                Err(e) => tracing::warn!("node log: cannot forget segment {index} yet: {e}"),
            }
        }
        let b = svc.batches();
        if b.stop {
            return;
        }
        let _ = svc
            .retire_cv
            .wait_timeout(b, std::time::Duration::from_secs(1))
            .unwrap_or_else(|e| e.into_inner());
    }
}
