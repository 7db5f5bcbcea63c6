//! openraft glue: the type config, a durable log and vote on local disk, the state machine
//! ([`MetaState`] plus snapshots on disk), and the network between meta servers over
//! internal THFT calls.
//!
//! On-disk layout under `<data_dir>/raft/`:
//! - `vote.json`: the vote, written to a temp file, fsynced, renamed, directory fsynced.
//! - `log`: append-only records `[len u32][crc32 u32][json]` — entries, truncations, purges
//!   and the committed id. Appends are fsynced before openraft is told they are durable. A
//!   torn or corrupt tail (a crash mid-append) is cut off at the last good record on open.
//!   After a purge the file is rewritten (temp + rename) once it holds mostly dead records.
//! - `snapshot.json`: the latest snapshot (state machine + last applied id + membership),
//!   written atomically. The state machine is rebuilt from it plus the log on restart.

#![allow(
    clippy::result_large_err,
    reason = "openraft's storage traits fix the error type"
)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Cursor, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftLogReader, RaftNetwork, RaftNetworkFactory,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use pegasus_fs::atomic_write;
use pegasus_rpc::{internal, RpcError, Session};
use serde::{Deserialize, Serialize};

use crate::state::{Command, MetaState, Outcome, Reply};

openraft::declare_raft_types!(
    /// The meta servers' Raft types: commands in, outcomes out, nodes named by address.
    pub TypeConfig:
        D = Command,
        R = Outcome,
);

/// The Raft handle.
pub type Raft = openraft::Raft<TypeConfig>;
/// A Raft node id (1-based position in the meta server list).
pub type RaftNodeId = u64;

type StorageResult<T> = Result<T, StorageError<RaftNodeId>>;

fn io_err(e: &(impl std::error::Error + 'static)) -> StorageError<RaftNodeId> {
    StorageIOError::write(e).into()
}

#[derive(Debug, Serialize, Deserialize)]
enum Record {
    Entry(Entry<TypeConfig>),
    Truncate(u64),
    Purge(LogId<RaftNodeId>),
    Committed(Option<LogId<RaftNodeId>>),
}

fn frame(rec: &Record, out: &mut Vec<u8>) -> std::io::Result<()> {
    let body = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(std::io::Error::other)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

/// Reads framed records; returns them and the length of the good prefix.
fn read_records(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(hdr) = bytes.get(at..at + 8) {
        let mut len4 = [0u8; 4];
        let mut crc4 = [0u8; 4];
        len4.copy_from_slice(hdr.get(..4).unwrap_or(&[0; 4]));
        crc4.copy_from_slice(hdr.get(4..8).unwrap_or(&[0; 4]));
        let len = u32::from_be_bytes(len4) as usize;
        let Some(body) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32fast::hash(body) != u32::from_be_bytes(crc4) {
            break;
        }
        let Ok(rec) = serde_json::from_slice::<Record>(body) else {
            break;
        };
        out.push(rec);
        at += 8 + len;
    }
    (out, at)
}

#[derive(Debug)]
struct LogInner {
    dir: PathBuf,
    file: File,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<RaftNodeId>>,
    committed: Option<LogId<RaftNodeId>>,
    vote: Option<Vote<RaftNodeId>>,
    records_in_file: usize,
}

impl LogInner {
    fn write(&mut self, recs: &[Record], sync: bool) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for r in recs {
            frame(r, &mut buf)?;
        }
        self.file.write_all(&buf)?;
        if sync {
            self.file.sync_data()?;
        }
        self.records_in_file += recs.len();
        Ok(())
    }

    /// Rewrites the file with only the live state.
    fn compact(&mut self) -> std::io::Result<()> {
        let mut buf = Vec::new();
        let mut n = 0;
        if let Some(p) = self.last_purged {
            frame(&Record::Purge(p), &mut buf)?;
            n += 1;
        }
        for e in self.entries.values() {
            frame(&Record::Entry(e.clone()), &mut buf)?;
            n += 1;
        }
        frame(&Record::Committed(self.committed), &mut buf)?;
        n += 1;
        let path = self.dir.join("log");
        atomic_write(&path, &buf)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        self.records_in_file = n;
        Ok(())
    }
}

/// The durable Raft log and vote.
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

impl LogStore {
    /// Opens (or creates) the log under `dir`, cutting off a torn tail.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("log");
        let mut bytes = Vec::new();
        if path.exists() {
            File::open(&path)?.read_to_end(&mut bytes)?;
        }
        let (records, good) = read_records(&bytes);
        if good < bytes.len() {
            tracing::warn!(
                "raft log {}: cutting {} bytes of torn or corrupt tail",
                path.display(),
                bytes.len() - good
            );
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            f.set_len(good as u64)?;
            f.sync_all()?;
        }
        let mut entries = BTreeMap::new();
        let mut last_purged = None;
        let mut committed = None;
        let n = records.len();
        for r in records {
            match r {
                Record::Entry(e) => {
                    entries.insert(e.log_id.index, e);
                }
                Record::Truncate(from) => {
                    entries.split_off(&from);
                }
                Record::Purge(upto) => {
                    entries = entries.split_off(&(upto.index + 1));
                    last_purged = Some(upto);
                }
                Record::Committed(c) => committed = c,
            }
        }
        let vote_path = dir.join("vote.json");
        let vote = if vote_path.exists() {
            let b = std::fs::read(&vote_path)?;
            Some(serde_json::from_slice(&b).map_err(std::io::Error::other)?)
        } else {
            None
        };
        let file = OpenOptions::new().append(true).create(true).open(&path)?;
        Ok(Self {
            inner: Arc::new(Mutex::new(LogInner {
                dir: dir.to_owned(),
                file,
                entries,
                last_purged,
                committed,
                vote,
                records_in_file: n,
            })),
        })
    }

    fn lock(&self) -> StorageResult<std::sync::MutexGuard<'_, LogInner>> {
        self.inner.lock().map_err(|_| {
            StorageIOError::read_logs(&std::io::Error::other("log lock poisoned")).into()
        })
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let g = self.lock()?;
        Ok(g.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let g = self.lock()?;
        let last = g
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(g.last_purged);
        Ok(LogState {
            last_purged_log_id: g.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<RaftNodeId>) -> StorageResult<()> {
        let mut g = self.lock()?;
        let bytes = serde_json::to_vec(vote).map_err(|e| io_err(&e))?;
        atomic_write(&g.dir.join("vote.json"), &bytes).map_err(|e| io_err(&e))?;
        g.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<RaftNodeId>>> {
        Ok(self.lock()?.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<RaftNodeId>>) -> StorageResult<()> {
        // Not synced: a stale committed id is safe (openraft learns the real one again);
        // the next append syncs it anyway.
        let mut g = self.lock()?;
        g.committed = committed;
        g.write(&[Record::Committed(committed)], false)
            .map_err(|e| io_err(&e))
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<RaftNodeId>>> {
        Ok(self.lock()?.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut g = self.lock()?;
        let entries: Vec<_> = entries.into_iter().collect();
        let recs: Vec<Record> = entries.iter().cloned().map(Record::Entry).collect();
        let res = g.write(&recs, true);
        if res.is_ok() {
            for e in entries {
                g.entries.insert(e.log_id.index, e);
            }
        }
        let err = res.as_ref().err().map(io_err);
        callback.log_io_completed(res);
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<RaftNodeId>) -> StorageResult<()> {
        let mut g = self.lock()?;
        g.write(&[Record::Truncate(log_id.index)], true)
            .map_err(|e| io_err(&e))?;
        g.entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<RaftNodeId>) -> StorageResult<()> {
        let mut g = self.lock()?;
        g.write(&[Record::Purge(log_id)], true)
            .map_err(|e| io_err(&e))?;
        g.entries = g.entries.split_off(&(log_id.index + 1));
        g.last_purged = Some(log_id);
        if g.records_in_file > 2 * g.entries.len() + 64 {
            g.compact().map_err(|e| io_err(&e))?;
        }
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotBody {
    state: MetaState,
    last_applied: Option<LogId<RaftNodeId>>,
    membership: StoredMembership<RaftNodeId, BasicNode>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<RaftNodeId, BasicNode>,
    data: Vec<u8>,
}

#[derive(Debug, Default)]
struct SmInner {
    last_applied: Option<LogId<RaftNodeId>>,
    membership: StoredMembership<RaftNodeId, BasicNode>,
    snapshot: Option<StoredSnapshot>,
    snapshot_seq: u64,
}

/// The state machine: the shared [`MetaState`] the server reads, plus snapshots on disk.
#[derive(Debug, Clone)]
pub struct StateMachine {
    dir: PathBuf,
    state: Arc<RwLock<MetaState>>,
    inner: Arc<Mutex<SmInner>>,
}

impl StateMachine {
    /// Opens the state machine under `dir`, loading the last snapshot if any.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut inner = SmInner::default();
        let mut state = MetaState::default();
        let path = dir.join("snapshot.json");
        if path.exists() {
            let stored: StoredSnapshot =
                serde_json::from_slice(&std::fs::read(&path)?).map_err(std::io::Error::other)?;
            let body: SnapshotBody =
                serde_json::from_slice(&stored.data).map_err(std::io::Error::other)?;
            state = body.state;
            inner.last_applied = body.last_applied;
            inner.membership = body.membership;
            inner.snapshot = Some(stored);
        }
        Ok(Self {
            dir: dir.to_owned(),
            state: Arc::new(RwLock::new(state)),
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    /// The applied state, shared with the server.
    pub fn state(&self) -> Arc<RwLock<MetaState>> {
        self.state.clone()
    }

    fn lock(&self) -> StorageResult<std::sync::MutexGuard<'_, SmInner>> {
        self.inner.lock().map_err(|_| {
            StorageIOError::read_state_machine(&std::io::Error::other("lock poisoned")).into()
        })
    }

    fn state_write(&self) -> StorageResult<std::sync::RwLockWriteGuard<'_, MetaState>> {
        self.state.write().map_err(|_| {
            StorageIOError::write_state_machine(&std::io::Error::other("lock poisoned")).into()
        })
    }

    fn persist(&self, stored: &StoredSnapshot) -> StorageResult<()> {
        let bytes = serde_json::to_vec(stored).map_err(|e| io_err(&e))?;
        atomic_write(&self.dir.join("snapshot.json"), &bytes).map_err(|e| io_err(&e))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let state = self
            .state
            .read()
            .map_err(|_| io_err(&std::io::Error::other("lock poisoned")))?
            .clone();
        let stored = {
            let mut g = self.lock()?;
            g.snapshot_seq += 1;
            let body = SnapshotBody {
                state,
                last_applied: g.last_applied,
                membership: g.membership.clone(),
            };
            let data = serde_json::to_vec(&body).map_err(|e| io_err(&e))?;
            let id = match g.last_applied {
                Some(l) => format!("{}-{}-{}", l.leader_id, l.index, g.snapshot_seq),
                None => format!("none-{}", g.snapshot_seq),
            };
            StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: g.last_applied,
                    last_membership: g.membership.clone(),
                    snapshot_id: id,
                },
                data,
            }
        };
        self.persist(&stored)?;
        self.lock()?.snapshot = Some(stored.clone());
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(
        Option<LogId<RaftNodeId>>,
        StoredMembership<RaftNodeId, BasicNode>,
    )> {
        let g = self.lock()?;
        Ok((g.last_applied, g.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Outcome>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        let mut g = self.lock()?;
        let mut state = self.state_write()?;
        for e in entries {
            g.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => out.push(Ok(Reply::Done)),
                EntryPayload::Normal(cmd) => out.push(state.apply(&cmd)),
                EntryPayload::Membership(m) => {
                    g.membership = StoredMembership::new(Some(e.log_id), m);
                    out.push(Ok(Reply::Done));
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<RaftNodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let data = snapshot.into_inner();
        let body: SnapshotBody = serde_json::from_slice(&data)
            .map_err(|e| StorageError::from(StorageIOError::read_snapshot(None, &e)))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        self.persist(&stored)?;
        {
            let mut state = self.state_write()?;
            *state = body.state;
        }
        let mut g = self.lock()?;
        g.last_applied = meta.last_log_id;
        g.membership = meta.last_membership.clone();
        g.snapshot = Some(stored);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let g = self.lock()?;
        Ok(g.snapshot.clone().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

/// Internal RPC names between meta servers.
pub mod rpc_names {
    /// AppendEntries.
    pub const APPEND: &str = "RPC_PEGASUS_RS_RAFT_APPEND";
    /// RequestVote.
    pub const VOTE: &str = "RPC_PEGASUS_RS_RAFT_VOTE";
    /// InstallSnapshot (chunked).
    pub const SNAPSHOT: &str = "RPC_PEGASUS_RS_RAFT_SNAPSHOT";
}

/// Creates connections to other meta servers.
#[derive(Debug, Clone, Default)]
pub struct Network {
    /// Largest frame accepted from a peer.
    pub max_frame: usize,
}

/// A connection to one meta server.
#[derive(Debug)]
pub struct Peer {
    target: RaftNodeId,
    session: Option<Session>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: RaftNodeId, node: &BasicNode) -> Peer {
        let session = node
            .addr
            .parse()
            .ok()
            .map(|a| Session::new(a, self.max_frame.max(pegasus_proto::DEFAULT_MAX_FRAME)));
        Peer { target, session }
    }
}

impl Peer {
    async fn call<Req: Serialize, Resp: serde::de::DeserializeOwned, E>(
        &self,
        name: &'static str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<RaftNodeId, BasicNode, RaftError<RaftNodeId, E>>>
    where
        E: std::error::Error + serde::de::DeserializeOwned,
    {
        let Some(session) = &self.session else {
            return Err(RPCError::Unreachable(Unreachable::new(
                &RpcError::Transport("meta server address does not parse".into()),
            )));
        };
        let reply: Result<Resp, RaftError<RaftNodeId, E>> =
            internal::call(session, name, req, timeout)
                .await
                .map_err(|e| match e {
                    RpcError::Transport(_) => RPCError::Unreachable(Unreachable::new(&e)),
                    other => RPCError::Network(NetworkError::new(&other)),
                })?;
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        AppendEntriesResponse<RaftNodeId>,
        RPCError<RaftNodeId, BasicNode, RaftError<RaftNodeId>>,
    > {
        self.call(rpc_names::APPEND, &rpc, option.soft_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<RaftNodeId>,
        RPCError<RaftNodeId, BasicNode, RaftError<RaftNodeId, InstallSnapshotError>>,
    > {
        self.call(rpc_names::SNAPSHOT, &rpc, option.soft_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<RaftNodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<RaftNodeId>, RPCError<RaftNodeId, BasicNode, RaftError<RaftNodeId>>>
    {
        self.call(rpc_names::VOTE, &rpc, option.soft_ttl()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Command::RegisterNode(pegasus_core::config::NodeId(
                index,
            ))),
        }
    }

    fn append_sync(store: &LogStore, entries: Vec<Entry<TypeConfig>>) {
        let mut g = store.inner.lock().unwrap();
        let recs: Vec<Record> = entries.iter().cloned().map(Record::Entry).collect();
        g.write(&recs, true).unwrap();
        for e in entries {
            g.entries.insert(e.log_id.index, e);
        }
    }

    #[tokio::test]
    async fn log_survives_reopen_with_truncate_and_purge_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        append_sync(&store, (1..=10).map(|i| entry(1, i)).collect());
        store
            .truncate(LogId::new(openraft::CommittedLeaderId::new(1, 1), 8))
            .await
            .unwrap();
        append_sync(&store, vec![entry(2, 8)]);
        store
            .purge(LogId::new(openraft::CommittedLeaderId::new(1, 1), 3))
            .await
            .unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        let got = store.try_get_log_entries(0..100).await.unwrap();
        let ids: Vec<(u64, u64)> = got
            .iter()
            .map(|e| (e.log_id.leader_id.term, e.log_id.index))
            .collect();
        assert_eq!(ids, vec![(1, 4), (1, 5), (1, 6), (1, 7), (2, 8)]);
        let st = store.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id.map(|l| l.index), Some(3));
        assert_eq!(st.last_log_id.map(|l| l.index), Some(8));
    }

    #[tokio::test]
    async fn torn_log_tail_is_cut_at_the_last_good_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        append_sync(&store, (1..=5).map(|i| entry(1, i)).collect());
        drop(store);
        let path = dir.path().join("log");
        let len = std::fs::metadata(&path).unwrap().len();
        // Tear the last record in half, as a crash mid-append would.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 10).unwrap();
        drop(f);
        let mut store = LogStore::open(dir.path()).unwrap();
        let got = store.try_get_log_entries(0..100).await.unwrap();
        assert_eq!(
            got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        append_sync(&store, vec![entry(1, 5)]);
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(
            store.try_get_log_entries(0..100).await.unwrap().len(),
            5,
            "appends after the cut are readable"
        );
    }

    #[tokio::test]
    async fn vote_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        let v = Vote::new(7, 2);
        store.save_vote(&v).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(store.read_vote().await.unwrap(), Some(v));
    }
}
