//! Unit tests of the partition driver — the replica server's runtime of one replica —
//! through the simulator's host: rounds, group commit, stamping, answers on close, and
//! which local failure reopens the copy and which sets it aside.

#![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use pegasus_control::{AppSummary, ReplicaReport};
use pegasus_core::config::{ConfigType, NodeId, PartitionConfig};
use pegasus_core::ids::Gpid;
use pegasus_core::rrdb::UpdateRequest;
use pegasus_core::time::{Clock, ManualClock};
use pegasus_fs::{FileSystem, MemFs};
use pegasus_proto::ErrorCode;
use pegasus_replica::core::{Event, NodeLease, ReadGrant, ReplicaOptions};
use pegasus_replica::driver::{
    self, DriverConfig, Exit, InitInfo, Input, LogFailure, PartitionDriver, View,
};
use pegasus_replica::log::{LogOptions, MutationLog};
use pegasus_replica::update::encode_write;
use pegasus_sim::host::{Effect, SimHost};
use pegasus_storage::{MemoryDisk, MemoryEngine, PartitionStore, ReadLimits, WriteRequest};

const ME: NodeId = NodeId(1);
const WALL0: u64 = 1_767_225_600_000_000;

fn gpid() -> Gpid {
    Gpid::new(1, 0)
}

fn config(ballot: i64, primary: Option<NodeId>, secondaries: &[NodeId]) -> PartitionConfig {
    PartitionConfig {
        gpid: gpid(),
        ballot,
        max_replica_count: 1 + secondaries.len() as u32,
        primary,
        secondaries: secondaries.to_vec(),
        ..PartitionConfig::default()
    }
}

struct Harness {
    driver: PartitionDriver<SimHost>,
    fs: MemFs,
    now_ms: u64,
}

impl Harness {
    /// A fresh replica on `ME`, made primary of a group with `secondaries` by meta.
    fn primary(secondaries: &[NodeId]) -> Self {
        Self::primary_with(secondaries, false)
    }

    /// As [`Harness::primary`]; with `node_log`, the node log's syncs are this harness's
    /// to deliver (setup answers them at once).
    fn primary_with(secondaries: &[NodeId], node_log: bool) -> Self {
        let fs = MemFs::new();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(WALL0));
        let store = Arc::new(PartitionStore::new(
            MemoryEngine::open(MemoryDisk::new(), clock.clone()),
            clock.clone(),
            ReadLimits::default(),
        ));
        let files: Arc<dyn FileSystem> = Arc::new(fs.clone());
        let (log, replayed, report) = MutationLog::open(
            files,
            Path::new("/plog"),
            LogOptions {
                sync: true,
                segment_bytes: 1 << 20,
            },
        )
        .unwrap();
        let init = InitInfo {
            config: config(0, None, &[]),
            fresh: true,
            app: AppSummary {
                app_id: 1,
                name: "t".into(),
                partition_count: 1,
                envs: BTreeMap::new(),
                dropped: false,
            },
            data: "data".into(),
            incarnation: 1,
        };
        let opts = ReplicaOptions {
            min_2pc_replicas: 1 + secondaries.len(),
            ..ReplicaOptions::default()
        };
        let core = driver::open_core(ME, opts, &init, &store, replayed, &report);
        let view = View {
            read: ReadGrant::None,
            last_timestamp_us: 0,
            status: core.status(),
            report: ReplicaReport {
                gpid: gpid(),
                ballot: 0,
                last_committed: 0,
                last_prepared: 0,
                fresh: true,
            },
        };
        let host = SimHost::new(gpid(), clock, fs.clone(), MemoryDisk::new(), view);
        let cfg = DriverConfig {
            tick_ms: 50,
            checkpoint_interval_ms: 1_000_000,
            log_retain_decrees: 0,
            plant_uptime_as_wall_clock: false,
            node_log,
        };
        let driver = PartitionDriver::new(host, cfg, core, store, log, init);
        let mut h = Self {
            driver,
            fs,
            now_ms: 0,
        };
        // Meta assigns the primary; the replica asks for the configuration; meta writes it
        // with the group.
        let exit = h.round(vec![Input::Proposal {
            config: config(0, None, &[]),
            kind: ConfigType::AssignPrimary,
            node: ME,
        }]);
        assert!(exit.is_none());
        let asked = h.effects().into_iter().any(|e| {
            matches!(
                e,
                Effect::RequestConfig {
                    kind: ConfigType::AssignPrimary,
                    ..
                }
            )
        });
        assert!(
            asked,
            "a fresh replica asks meta to be primary of a new partition"
        );
        // A primary serves only under a lease from meta's beacon acknowledgements.
        // The node's lease reaches the replica with its next round.
        let now_ms = h.now_ms;
        let mut lease = NodeLease::default();
        lease.renew(now_ms, now_ms + 3_600_000, now_ms);
        h.driver.host_mut().set_lease(lease);
        h.round(vec![Input::Core(Event::Config(config(
            1,
            Some(ME),
            secondaries,
        )))]);
        let effects = h.effects();
        if let Some((appended, _)) = submitted(&effects) {
            h.round(vec![Input::LogSynced { appended }]);
            h.effects();
        }
        h
    }

    fn round(&mut self, inputs: Vec<Input<u64, Bytes>>) -> Option<Exit> {
        self.round_at(WALL0 + self.now_ms * 1000, inputs)
    }

    fn round_at(&mut self, wall_us: u64, inputs: Vec<Input<u64, Bytes>>) -> Option<Exit> {
        self.now_ms += 1;
        self.driver.host_mut().set_clock(self.now_ms, wall_us);
        self.driver.round(inputs)
    }

    fn effects(&mut self) -> Vec<Effect> {
        self.driver.host_mut().take_effects()
    }
}

fn put(op: u64) -> Input<u64, Bytes> {
    let update = encode_write(&WriteRequest::Put(UpdateRequest {
        key: Bytes::from(pegasus_core::key::encode_key(format!("k{op}").as_bytes(), b"").unwrap()),
        value: Bytes::from("v"),
        expire_ts_seconds: 0,
    }));
    Input::Write { update, reply: op }
}

fn replies(effects: &[Effect]) -> Vec<(u64, Result<(), ErrorCode>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply(op, r) => Some((*op, r.as_ref().map(|_| ()).map_err(|c| *c))),
            _ => None,
        })
        .collect()
}

/// What the driver handed the node log in these effects: the last appends count and the
/// records' bytes.
fn submitted(effects: &[Effect]) -> Option<(u64, usize)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::LogSubmit {
                appended, records, ..
            } => Some((*appended, records.len())),
            _ => None,
        })
        .last()
}

/// Bytes synced in the mutation log's segments.
fn synced(fs: &MemFs) -> usize {
    fs.list(Path::new("/plog"))
        .unwrap_or_default()
        .iter()
        .filter_map(|name| fs.synced_len(&Path::new("/plog").join(name)))
        .sum()
}

#[test]
fn the_writes_of_one_round_share_one_mutation_and_one_log_flush() {
    let mut h = Harness::primary(&[]);
    let before = synced(&h.fs);
    assert!(h.round((1..=10).map(put).collect()).is_none());
    let effects = h.effects();
    let committed: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Committed(m, _) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(committed.len(), 1, "one mutation for the round's writes");
    assert_eq!(committed[0].updates.len(), 10);
    assert_eq!(
        replies(&effects),
        (1..=10).map(|op| (op, Ok(()))).collect::<Vec<_>>(),
        "every write answered, in arrival order"
    );
    let after = synced(&h.fs);
    assert!(
        after > before,
        "the round's mutation is synced before it is answered"
    );
}

#[test]
fn a_round_with_writes_ticks_first_so_writes_carry_the_wall_clock_of_their_round() {
    let mut h = Harness::primary(&[]);
    // Less than a tick after the last round, with the wall clock moved on by a minute: the
    // write must still be stamped with this round's wall clock, not the last tick's.
    let later = WALL0 + 60_000_000;
    assert!(h.round_at(later, vec![put(1)]).is_none());
    let stamp = h
        .effects()
        .into_iter()
        .find_map(|e| match e {
            Effect::Committed(m, _) => Some(m.timestamp_us),
            _ => None,
        })
        .unwrap();
    assert_eq!(stamp, later);
}

#[test]
fn closing_answers_every_waiting_write_with_timeout_in_arrival_order() {
    // A secondary that never acknowledges: the writes stay prepared, not committed.
    let mut h = Harness::primary(&[NodeId(2)]);
    assert!(h.round(vec![put(3), put(1), put(2)]).is_none());
    assert!(
        replies(&h.effects()).is_empty(),
        "nothing commits without the secondary"
    );
    assert_eq!(h.round(vec![Input::Close]), Some(Exit::Closed));
    // Their outcome is unknown (the next primary may commit them): never a refusal.
    assert_eq!(
        replies(&h.effects()),
        vec![
            (3, Err(ErrorCode::Timeout)),
            (1, Err(ErrorCode::Timeout)),
            (2, Err(ErrorCode::Timeout))
        ]
    );
}

#[test]
fn a_full_disk_reopens_the_copy_in_place_and_an_io_error_sets_it_aside() {
    let mut h = Harness::primary(&[]);
    h.fs.set_fail_os_error(Some(28));
    let exit = h.round(vec![put(1)]);
    assert!(
        matches!(exit, Some(Exit::Reopen(_))),
        "ENOSPC is transient: {exit:?}"
    );
    let mut h = Harness::primary(&[]);
    h.fs.set_fail_io(true);
    assert_eq!(h.round(vec![put(1)]), Some(Exit::Failed));
}

/// Bytes written (synced or not) to the mutation log's segments.
fn written(fs: &MemFs) -> usize {
    fs.list(Path::new("/plog"))
        .unwrap_or_default()
        .iter()
        .filter_map(|name| fs.read(&Path::new("/plog").join(name)).ok())
        .map(|b| b.len())
        .sum()
}

#[test]
fn with_a_node_log_writes_are_answered_only_once_the_node_log_synced_them() {
    let mut h = Harness::primary_with(&[], true);
    let (synced_before, written_before) = (synced(&h.fs), written(&h.fs));
    assert!(h.round(vec![put(1), put(2)]).is_none());
    let effects = h.effects();
    assert!(
        replies(&effects).is_empty(),
        "nothing is answered before the node log syncs"
    );
    let (appended, bytes) = submitted(&effects).expect("the round's records go to the node log");
    assert_eq!(
        written(&h.fs),
        written_before + bytes,
        "its own log is written"
    );
    assert_eq!(synced(&h.fs), synced_before, "and not synced");
    // A stale answer (fewer appends) commits nothing new.
    assert!(h
        .round(vec![Input::LogSynced {
            appended: appended - 1
        }])
        .is_none());
    assert!(replies(&h.effects()).is_empty());
    assert!(h.round(vec![Input::LogSynced { appended }]).is_none());
    assert_eq!(replies(&h.effects()), vec![(1, Ok(())), (2, Ok(()))]);
}

#[test]
fn a_failed_node_log_sync_reopens_or_sets_aside_the_copy_like_its_own_log_failing() {
    for (transient, want) in [(true, "reopen"), (false, "failed")] {
        let mut h = Harness::primary_with(&[], true);
        assert!(h.round(vec![put(1)]).is_none());
        let exit = h.round(vec![Input::LogFailed(LogFailure {
            reason: "injected".into(),
            transient,
            disk_full: transient,
        })]);
        match (want, exit) {
            ("reopen", Some(Exit::Reopen(_))) | ("failed", Some(Exit::Failed)) => {}
            (_, other) => panic!("transient={transient}: {other:?}"),
        }
        // The write's outcome is unknown to the client, never a refusal.
        assert_eq!(replies(&h.effects()), vec![(1, Err(ErrorCode::Timeout))]);
    }
}

#[test]
fn a_node_log_that_answers_at_once_commits_the_writes_in_the_same_round() {
    // The replica server's group commit: the worker waits for the batch, then goes on.
    let mut h = Harness::primary_with(&[], true);
    h.driver.host_mut().inline_log_answer = Some(Ok(()));
    assert!(h.round(vec![put(1), put(2)]).is_none());
    assert_eq!(replies(&h.effects()), vec![(1, Ok(())), (2, Ok(()))]);
    h.driver.host_mut().inline_log_answer = Some(Err(LogFailure {
        reason: "injected".into(),
        transient: false,
        disk_full: false,
    }));
    assert_eq!(h.round(vec![put(3)]), Some(Exit::Failed));
    assert_eq!(replies(&h.effects()), vec![(3, Err(ErrorCode::Timeout))]);
}
