//! The node log in the simulator: each node's replicas hand their log records to one
//! node log on the node's own `MemFs`, as the replica server's do; one sync (a virtual
//! millisecond later) acknowledges every replica in the batch. A crash or power loss drops
//! or tears what the node log and the replicas' logs had not synced; a restart recovers
//! the node log into the replicas' logs before any replica opens — the server's order.

use super::*;
use pegasus_replica::driver::LogFailure;
use pegasus_replica::nodelog::{self, NodeLog, NodeLogOptions, PlogFile, ReplicaKey};

/// Where a node keeps its node log on its `MemFs`.
const NLOG_DIR: &str = "/nlog";

/// Virtual time one node-log sync takes, ms: what gathers meanwhile is the next batch.
const SYNC_MS: u64 = 1;

/// A node's node log: its files (they survive crashes), the open log (while up), and the
/// replicas waiting for its next sync.
#[derive(Default)]
pub(crate) struct NodeLogState {
    pub(crate) fs: MemFs,
    log: Option<NodeLog>,
    /// (partition, driver incarnation, appends) in the batch being gathered.
    waiting: Vec<(Gpid, u64, u64)>,
    sync_scheduled: bool,
    /// Replicas the last recovery found may have lost acknowledged records (each marked on
    /// its first open, as the server does).
    pub(crate) torn: BTreeSet<Gpid>,
}

impl NodeLogState {
    /// The process went down: the open log and the waiting batch are gone.
    pub(crate) fn crash(&mut self, mode: CrashMode) {
        self.fs.crash(mode);
        self.log = None;
        self.waiting.clear();
        self.sync_scheduled = false;
    }
}

impl Sim {
    fn node_log_options(&self) -> NodeLogOptions {
        NodeLogOptions {
            // Small segments, so old ones are forgotten (and replicas' logs synced by path)
            // all through a run.
            segment_bytes: 8192,
            sync: !self.opts.async_log,
            plant_forget_unsynced: self.opts.planted == Some(PlantedBug::NodeLogForgetsUnsynced),
        }
    }

    /// Before a node's replicas open: every replica's records in the node log go into its
    /// own log (synced), then a new node log starts. False if the node cannot start now (a
    /// disk error): it tries again later, never dropping the old node log.
    pub(crate) fn recover_node_log(&mut self, id: NodeId, log_opts: LogOptions) -> bool {
        let nlog_opts = self.node_log_options();
        let Some(node) = self.nodes.get_mut(&id) else {
            return false;
        };
        let dir = Path::new(NLOG_DIR);
        let mut traces = Vec::new();
        let ok = match nodelog::recover(&node.nlog.fs, dir) {
            Ok(found) => {
                let nlog_torn = found.torn_bytes > 0;
                if nlog_torn {
                    traces.push(format!(
                        "{id} node log: cut a torn tail of {}",
                        found.torn_bytes
                    ));
                }
                let mut ok = true;
                for (key, records) in &found.records {
                    let Some(replica) = node.replicas.get(&key.gpid) else {
                        continue;
                    };
                    if SimHost::read_init(&replica.fs).map(|i| i.incarnation)
                        != Some(key.incarnation)
                    {
                        continue;
                    }
                    let fs: Arc<dyn FileSystem> = Arc::new(replica.fs.clone());
                    let merged = MutationLog::merge(
                        fs,
                        Path::new("/plog"),
                        log_opts,
                        records.from,
                        &records.bytes,
                    );
                    match merged {
                        // The server's rule (`Merged::lost_acknowledged`).
                        Ok(m) => {
                            if m.lost_acknowledged(nlog_torn) {
                                node.nlog.torn.insert(key.gpid);
                            }
                        }
                        Err(e) if e.is_transient() => ok = false,
                        Err(e) => {
                            traces.push(format!(
                                "{id} {}: node-log merge failed, set aside: {e}",
                                g(key.gpid)
                            ));
                            node.replicas.remove(&key.gpid);
                        }
                    }
                }
                ok
            }
            Err(e) if e.is_transient() => false,
            Err(e) => {
                traces.push(format!(
                    "{id} node log damaged, every replica set aside: {e}"
                ));
                node.replicas.clear();
                true
            }
        };
        let created = ok
            .then(|| NodeLog::create(Arc::new(node.nlog.fs.clone()), dir, nlog_opts).ok())
            .flatten();
        let started = created.is_some();
        node.nlog.log = created;
        for t in traces {
            self.trace(|| t);
        }
        started
    }

    /// A replica's records join the node's next batch; its sync is scheduled.
    pub(crate) fn node_log_submit(
        &mut self,
        id: NodeId,
        key: ReplicaKey,
        plog: &PlogFile,
        records: &[u8],
        appended: u64,
    ) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let instance = node.replicas.get(&key.gpid).map_or(0, |r| r.incarnation);
        let Some(log) = node.nlog.log.as_mut() else {
            return;
        };
        log.append(key, plog, records);
        node.nlog.waiting.push((key.gpid, instance, appended));
        if !node.nlog.sync_scheduled {
            node.nlog.sync_scheduled = true;
            self.at(now + SYNC_MS, Ev::NodeLogSync(id));
        }
    }

    /// The node log writes and syncs its batch and answers every replica in it (the
    /// driver incarnation that submitted), then forgets what it can.
    pub(crate) fn node_log_sync(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id).filter(|n| n.up) else {
            return;
        };
        node.nlog.sync_scheduled = false;
        let Some(log) = node.nlog.log.as_mut() else {
            return;
        };
        let result = log.flush();
        if log.segment_count() > 1 {
            let _ = log.retire();
        }
        let waiting = std::mem::take(&mut node.nlog.waiting);
        let mut answers: BTreeMap<Gpid, (u64, u64)> = BTreeMap::new();
        for (gpid, instance, appended) in waiting {
            let a = answers.entry(gpid).or_insert((instance, 0));
            if a.0 != instance {
                *a = (instance, 0);
            }
            a.1 = a.1.max(appended);
        }
        for (gpid, (instance, appended)) in answers {
            let current = self
                .nodes
                .get(&id)
                .and_then(|n| n.replicas.get(&gpid))
                .is_some_and(|r| r.driver.is_some() && r.incarnation == instance);
            if !current {
                continue;
            }
            let input = match &result {
                Ok(_) => DriverInput::LogSynced { appended },
                Err(e) => DriverInput::LogFailed(LogFailure::from(e)),
            };
            self.round(id, gpid, vec![input]);
        }
    }
}
