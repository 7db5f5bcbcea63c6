//! The replicated cluster state and the commands that change it.
//!
//! Every change goes through Raft as a [`Command`]; [`MetaState::apply`] is a pure,
//! deterministic function of the state and the command (the leader stamps the time into the
//! command), so every meta server that applies the same log holds the same state. Checks
//! that depend on the current state (name taken, ballot CAS) happen here, at apply time, so
//! two racing requests cannot both pass them.

use std::collections::{BTreeMap, BTreeSet};

use pegasus_core::config::{NodeId, PartitionConfig};
use pegasus_core::ids::{Ballot, Gpid};
use serde::{Deserialize, Serialize};

use crate::envs;
use crate::guardian::{self, ConfigUpdate, UpdateError, UpdateOutcome};

/// Largest partition count accepted at creation.
pub const MAX_PARTITION_COUNT: i32 = 1 << 16;
/// Replica counts accepted (`min_allowed_replica_count`, `max_allowed_replica_count`).
pub const REPLICA_COUNT_RANGE: std::ops::RangeInclusive<i32> = 1..=5;
/// Longest table name.
pub const MAX_APP_NAME_LEN: usize = 256;

/// A table's lifecycle state (only stable states are stored, as Pegasus does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppStatus {
    /// Serving.
    Available,
    /// Soft-deleted: recallable until `expire_ms`.
    Dropped,
}

/// One partition as meta keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// The configuration.
    pub config: PartitionConfig,
    /// When each of `config.last_drops` was dropped (ms since the epoch, leader's clock).
    pub drop_ms: BTreeMap<NodeId, u64>,
}

/// A table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// Table id (never reused).
    pub id: i32,
    /// Name.
    pub name: String,
    /// `pegasus`.
    pub app_type: String,
    /// Lifecycle state.
    pub status: AppStatus,
    /// Partition count (a power of two).
    pub partition_count: i32,
    /// Replicas per partition wanted.
    pub max_replica_count: i32,
    /// Table envs.
    pub envs: BTreeMap<String, String>,
    /// Created at, ms.
    pub create_ms: u64,
    /// Dropped at, ms (0 if never).
    pub drop_ms: u64,
    /// Recallable until, ms (0 if not dropped).
    pub expire_ms: u64,
    /// Partitions in index order.
    pub partitions: Vec<Partition>,
}

/// The whole replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    /// The next table id.
    pub next_app_id: i32,
    /// Tables by id (dropped ones included until purged).
    pub apps: BTreeMap<i32, App>,
    /// Every replica server that ever registered (so dead ones are listed too).
    pub nodes: BTreeSet<NodeId>,
    /// The meta function level (Pegasus's numeric values: 100 stopped … 500 lively).
    pub function_level: i32,
}

impl Default for MetaState {
    fn default() -> Self {
        Self {
            next_app_id: 1,
            apps: BTreeMap::new(),
            nodes: BTreeSet::new(),
            function_level: LEVEL_STEADY,
        }
    }
}

/// `fl_stopped`.
pub const LEVEL_STOPPED: i32 = 100;
/// `fl_blind`.
pub const LEVEL_BLIND: i32 = 200;
/// `fl_freezed`.
pub const LEVEL_FREEZED: i32 = 300;
/// `fl_steady` (the default: no balancing).
pub const LEVEL_STEADY: i32 = 400;
/// `fl_lively`.
pub const LEVEL_LIVELY: i32 = 500;

/// A change to the state. Times are stamped by the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `RPC_CM_CREATE_APP`.
    CreateApp {
        /// Name.
        name: String,
        /// Partition count.
        partition_count: i32,
        /// Replica count.
        replica_count: i32,
        /// Initial envs.
        envs: BTreeMap<String, String>,
        /// Answer OK if a table of this name exists.
        success_if_exist: bool,
        /// Now, ms.
        now_ms: u64,
    },
    /// `RPC_CM_DROP_APP`: soft delete.
    DropApp {
        /// Name.
        name: String,
        /// Answer OK if there is no such table.
        success_if_not_exist: bool,
        /// How long it stays recallable, seconds.
        reserve_seconds: u64,
        /// Now, ms.
        now_ms: u64,
    },
    /// `RPC_CM_RECALL_APP`.
    RecallApp {
        /// The dropped table's id.
        app_id: i32,
        /// New name, or empty to keep the old one.
        new_name: String,
        /// Now, ms.
        now_ms: u64,
    },
    /// Forget a dropped table whose reserve time has passed.
    PurgeApp {
        /// Table id.
        app_id: i32,
        /// Now, ms.
        now_ms: u64,
    },
    /// `RPC_CM_UPDATE_APP_ENV`.
    UpdateEnvs {
        /// Table name.
        name: String,
        /// What to do.
        op: EnvOp,
    },
    /// `RPC_CM_SET_MAX_REPLICA_COUNT`.
    SetMaxReplicaCount {
        /// Table name.
        name: String,
        /// New count.
        count: i32,
    },
    /// `RPC_CM_CONTROL_META`.
    SetFunctionLevel(i32),
    /// A replica server's first beacon.
    RegisterNode(NodeId),
    /// `RPC_CM_UPDATE_PARTITION_CONFIGURATION`: ballot CAS.
    UpdatePartition {
        /// The request.
        update: ConfigUpdate,
        /// Now, ms.
        now_ms: u64,
    },
    /// A change meta decides itself (a dead primary dropped): applied only if the ballot is
    /// still `expected_ballot`.
    WritePartition {
        /// The configuration meta saw.
        expected_ballot: Ballot,
        /// The new configuration (`ballot = expected_ballot + 1`).
        next: PartitionConfig,
        /// Now, ms.
        now_ms: u64,
    },
}

/// An env change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvOp {
    /// Set these keys.
    Set(Vec<(String, String)>),
    /// Delete these keys.
    Del(Vec<String>),
    /// Delete every key with this prefix (all keys if empty).
    Clear(String),
}

/// Why a command was refused. Mapped to Pegasus error codes at the RPC edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MetaError {
    /// `ERR_APP_EXIST`.
    #[error("table {0:?} exists")]
    AppExist(String),
    /// `ERR_APP_NOT_EXIST`.
    #[error("table {0} does not exist")]
    AppNotExist(String),
    /// `ERR_INVALID_PARAMETERS`.
    #[error("invalid parameters: {0}")]
    InvalidParameters(String),
    /// `ERR_INVALID_VERSION`: a configuration update with a stale ballot.
    #[error("stale ballot: {0}")]
    InvalidVersion(String),
    /// `ERR_STATE_FREEZED`: the function level (or too few live nodes) forbids the change.
    #[error("meta is freezed: {0}")]
    Freezed(String),
    /// `ERR_NOT_ENOUGH_MEMBER`-like: fewer live nodes than replicas asked for.
    #[error("not enough live replica servers: {0}")]
    NotEnoughNodes(String),
}

/// What an applied command answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Done, nothing to return.
    Done,
    /// A table id (create, recall).
    AppId(i32),
    /// The previous value of a setting (max replica count, function level).
    Old(i32),
    /// The partition's configuration after the command (config updates).
    Partition(PartitionConfig),
}

/// The result of applying a command.
pub type Outcome = Result<Reply, MetaError>;

fn bad(msg: impl Into<String>) -> MetaError {
    MetaError::InvalidParameters(msg.into())
}

/// Validates a table name: `[0-9a-zA-Z_.:]`, 1 to 256 bytes.
pub fn validate_app_name(name: &str) -> Result<(), MetaError> {
    if name.is_empty() || name.len() > MAX_APP_NAME_LEN {
        return Err(bad(format!(
            "table name must be 1 to {MAX_APP_NAME_LEN} bytes"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':')))
    {
        return Err(bad(format!(
            "table name {name:?} has {c:?}; only [0-9a-zA-Z_.:] are allowed"
        )));
    }
    Ok(())
}

/// Validates a partition count: a power of two in `1..=MAX_PARTITION_COUNT`.
pub fn validate_partition_count(n: i32) -> Result<(), MetaError> {
    if !(1..=MAX_PARTITION_COUNT).contains(&n) || (n & (n - 1)) != 0 {
        return Err(bad(format!(
            "partition count {n} must be a power of two in [1, {MAX_PARTITION_COUNT}]"
        )));
    }
    Ok(())
}

/// Validates a replica count.
pub fn validate_replica_count(n: i32) -> Result<(), MetaError> {
    if !REPLICA_COUNT_RANGE.contains(&n) {
        return Err(bad(format!(
            "replica count {n} must be in [{}, {}]",
            REPLICA_COUNT_RANGE.start(),
            REPLICA_COUNT_RANGE.end()
        )));
    }
    Ok(())
}

/// Validates a function level value as stored (what [`MetaState::apply`] accepts, so log
/// entries written before `lively` was refused replay unchanged). Requests go through
/// [`check_level_request`].
pub fn validate_level(level: i32) -> Result<(), MetaError> {
    match level {
        LEVEL_STOPPED | LEVEL_BLIND | LEVEL_FREEZED | LEVEL_STEADY | LEVEL_LIVELY => Ok(()),
        other => Err(bad(format!("unknown meta function level {other}"))),
    }
}

/// The hint of a refused `set_meta_level lively`.
pub const LIVELY_REFUSED: &str = "meta level lively needs the load balancer, which is not \
     built yet; steady is the highest level supported";

/// Whether a `RPC_CM_CONTROL_META` request may set `level`.
///
/// `lively` is refused rather than accepted as a no-op: at `lively` Pegasus balances
/// partitions, and tools that set it (e.g. Pegasus's `pegasus_rebalance_cluster.sh`, run
/// optionally at the end of `pegasus_rolling_update.sh`) then wait for the balancer to
/// finish. Accepting it would tell them balancing is under way when nothing moves; a
/// refusal makes the shell print `ERR_INVALID_PARAMETERS` and the script stop. Scripts only
/// *lower* the level to `steady` before maintenance, which stays accepted, so nothing
/// needed for safety breaks.
pub fn check_level_request(level: i32) -> Result<(), MetaError> {
    if level == LEVEL_LIVELY {
        return Err(bad(LIVELY_REFUSED));
    }
    validate_level(level)
}

fn update_error(e: UpdateError) -> MetaError {
    match e {
        UpdateError::InvalidVersion { .. } => MetaError::InvalidVersion(e.to_string()),
        UpdateError::InvalidChange(m) => MetaError::InvalidParameters(m),
    }
}

impl MetaState {
    /// The available table called `name`.
    pub fn app_by_name(&self, name: &str) -> Option<&App> {
        self.apps
            .values()
            .find(|a| a.status == AppStatus::Available && a.name == name)
    }

    fn app_by_name_mut(&mut self, name: &str) -> Result<&mut App, MetaError> {
        self.apps
            .values_mut()
            .find(|a| a.status == AppStatus::Available && a.name == name)
            .ok_or_else(|| MetaError::AppNotExist(name.to_owned()))
    }

    /// A partition.
    pub fn partition(&self, gpid: Gpid) -> Option<&Partition> {
        self.apps
            .get(&gpid.app_id)
            .and_then(|a| a.partitions.get(usize::try_from(gpid.pidx).ok()?))
    }

    fn partition_mut(&mut self, gpid: Gpid) -> Result<&mut Partition, MetaError> {
        let app = self
            .apps
            .get_mut(&gpid.app_id)
            .filter(|a| a.status == AppStatus::Available)
            .ok_or_else(|| MetaError::AppNotExist(format!("id {}", gpid.app_id)))?;
        usize::try_from(gpid.pidx)
            .ok()
            .and_then(|i| app.partitions.get_mut(i))
            .ok_or_else(|| bad(format!("no partition {}.{}", gpid.app_id, gpid.pidx)))
    }

    /// Applies a command. Deterministic: same state + same command → same result.
    pub fn apply(&mut self, cmd: &Command) -> Outcome {
        match cmd {
            Command::CreateApp {
                name,
                partition_count,
                replica_count,
                envs,
                success_if_exist,
                now_ms,
            } => self.create_app(
                name,
                *partition_count,
                *replica_count,
                envs,
                *success_if_exist,
                *now_ms,
            ),
            Command::DropApp {
                name,
                success_if_not_exist,
                reserve_seconds,
                now_ms,
            } => {
                let Ok(app) = self.app_by_name_mut(name) else {
                    return if *success_if_not_exist {
                        Ok(Reply::Done)
                    } else {
                        Err(MetaError::AppNotExist(name.clone()))
                    };
                };
                app.status = AppStatus::Dropped;
                app.drop_ms = *now_ms;
                app.expire_ms = now_ms.saturating_add(reserve_seconds.saturating_mul(1000));
                Ok(Reply::Done)
            }
            Command::RecallApp {
                app_id,
                new_name,
                now_ms,
            } => {
                let name = match self.apps.get(app_id) {
                    Some(a) if a.status == AppStatus::Dropped && *now_ms <= a.expire_ms => {
                        if new_name.is_empty() {
                            a.name.clone()
                        } else {
                            new_name.clone()
                        }
                    }
                    Some(a) if a.status == AppStatus::Available => {
                        return Err(MetaError::AppExist(a.name.clone()))
                    }
                    _ => return Err(MetaError::AppNotExist(format!("id {app_id}"))),
                };
                validate_app_name(&name)?;
                if self.app_by_name(&name).is_some() {
                    return Err(MetaError::AppExist(name));
                }
                if let Some(a) = self.apps.get_mut(app_id) {
                    a.name = name;
                    a.status = AppStatus::Available;
                    a.drop_ms = 0;
                    a.expire_ms = 0;
                }
                Ok(Reply::AppId(*app_id))
            }
            Command::PurgeApp { app_id, now_ms } => match self.apps.get(app_id) {
                Some(a) if a.status == AppStatus::Dropped && *now_ms > a.expire_ms => {
                    self.apps.remove(app_id);
                    Ok(Reply::Done)
                }
                _ => Err(bad(format!(
                    "table {app_id} is not an expired dropped table"
                ))),
            },
            Command::UpdateEnvs { name, op } => {
                let app = self.app_by_name_mut(name)?;
                match op {
                    EnvOp::Set(kvs) => {
                        if kvs.is_empty() {
                            return Err(bad("no envs to set"));
                        }
                        // Values only: whether a key is supported is checked when the
                        // request arrives (`envs::check_set`), so entries logged before a
                        // key was refused still apply.
                        for (k, v) in kvs {
                            envs::validate(k, v).map_err(bad)?;
                        }
                        for (k, v) in kvs {
                            app.envs.insert(k.clone(), v.clone());
                        }
                    }
                    EnvOp::Del(keys) => {
                        if keys.is_empty() {
                            return Err(bad("no env keys to delete"));
                        }
                        for k in keys {
                            app.envs.remove(k);
                        }
                    }
                    EnvOp::Clear(prefix) => app.envs.retain(|k, _| !k.starts_with(prefix.as_str())),
                }
                Ok(Reply::Done)
            }
            Command::SetMaxReplicaCount { name, count } => {
                validate_replica_count(*count)?;
                let app = self.app_by_name_mut(name)?;
                let old = app.max_replica_count;
                app.max_replica_count = *count;
                let wanted = u32::try_from(*count).unwrap_or(1);
                for p in &mut app.partitions {
                    p.config.max_replica_count = wanted;
                }
                Ok(Reply::Old(old))
            }
            Command::SetFunctionLevel(level) => {
                validate_level(*level)?;
                let old = self.function_level;
                self.function_level = *level;
                Ok(Reply::Old(old))
            }
            Command::RegisterNode(node) => {
                self.nodes.insert(*node);
                Ok(Reply::Done)
            }
            Command::UpdatePartition { update, now_ms } => {
                let part = self.partition_mut(update.config.gpid)?;
                match guardian::apply_update(&part.config, update).map_err(update_error)? {
                    UpdateOutcome::Applied(next) => {
                        set_config(part, next, *now_ms);
                        Ok(Reply::Partition(part.config.clone()))
                    }
                    UpdateOutcome::AlreadyApplied => Ok(Reply::Partition(part.config.clone())),
                }
            }
            Command::WritePartition {
                expected_ballot,
                next,
                now_ms,
            } => {
                let part = self.partition_mut(next.gpid)?;
                if part.config.ballot != *expected_ballot || next.ballot != expected_ballot + 1 {
                    return Err(MetaError::InvalidVersion(format!(
                        "partition {:?} is at ballot {}, not {}",
                        next.gpid, part.config.ballot, expected_ballot
                    )));
                }
                set_config(part, next.clone(), *now_ms);
                Ok(Reply::Partition(part.config.clone()))
            }
        }
    }

    fn create_app(
        &mut self,
        name: &str,
        partition_count: i32,
        replica_count: i32,
        envs_in: &BTreeMap<String, String>,
        success_if_exist: bool,
        now_ms: u64,
    ) -> Outcome {
        validate_app_name(name)?;
        if let Some(existing) = self.app_by_name(name) {
            return if success_if_exist {
                Ok(Reply::AppId(existing.id))
            } else {
                Err(MetaError::AppExist(name.to_owned()))
            };
        }
        validate_partition_count(partition_count)?;
        validate_replica_count(replica_count)?;
        for (k, v) in envs_in {
            envs::validate(k, v).map_err(bad)?;
        }
        let id = self.next_app_id;
        self.next_app_id = id
            .checked_add(1)
            .ok_or_else(|| bad("table ids exhausted"))?;
        let wanted = u32::try_from(replica_count).unwrap_or(1);
        let partitions = (0..partition_count)
            .map(|pidx| Partition {
                config: PartitionConfig {
                    gpid: Gpid::new(id, pidx),
                    ballot: 0,
                    max_replica_count: wanted,
                    ..PartitionConfig::default()
                },
                drop_ms: BTreeMap::new(),
            })
            .collect();
        self.apps.insert(
            id,
            App {
                id,
                name: name.to_owned(),
                app_type: "pegasus".into(),
                status: AppStatus::Available,
                partition_count,
                max_replica_count: replica_count,
                envs: envs_in.clone(),
                create_ms: now_ms,
                drop_ms: 0,
                expire_ms: 0,
                partitions,
            },
        );
        Ok(Reply::AppId(id))
    }
}

fn set_config(part: &mut Partition, next: PartitionConfig, now_ms: u64) {
    for d in &next.last_drops {
        if !part.config.last_drops.contains(d) {
            part.drop_ms.insert(*d, now_ms);
        }
    }
    part.drop_ms.retain(|n, _| next.last_drops.contains(n));
    part.config = next;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lively_is_refused_as_a_request_but_the_other_levels_are_accepted() {
        let err = check_level_request(LEVEL_LIVELY).unwrap_err();
        assert!(matches!(err, MetaError::InvalidParameters(_)), "{err:?}");
        assert!(err.to_string().contains(LIVELY_REFUSED), "{err}");
        assert!(
            LIVELY_REFUSED.contains("load balancer") && LIVELY_REFUSED.contains("steady"),
            "{LIVELY_REFUSED}"
        );
        for level in [LEVEL_STOPPED, LEVEL_BLIND, LEVEL_FREEZED, LEVEL_STEADY] {
            assert_eq!(check_level_request(level), Ok(()), "{level}");
        }
        assert!(check_level_request(0).is_err());
        assert!(check_level_request(450).is_err());
    }

    #[test]
    fn logged_commands_replay_unchanged() {
        // Support is checked at the RPC edge; apply keeps accepting what older binaries
        // logged, so every meta applying the same log reaches the same state.
        let mut s = MetaState::default();
        assert_eq!(
            s.apply(&Command::SetFunctionLevel(LEVEL_LIVELY)),
            Ok(Reply::Old(LEVEL_STEADY))
        );
        assert_eq!(
            s.apply(&Command::CreateApp {
                name: "t".into(),
                partition_count: 1,
                replica_count: 1,
                envs: BTreeMap::from([("business.info".to_string(), "shop".to_string())]),
                success_if_exist: false,
                now_ms: 1,
            }),
            Ok(Reply::AppId(1))
        );
        let set = |k: &str, v: &str| Command::UpdateEnvs {
            name: "t".into(),
            op: EnvOp::Set(vec![(k.to_string(), v.to_string())]),
        };
        assert_eq!(
            s.apply(&set("manual_compact.disabled", "true")),
            Ok(Reply::Done)
        );
        // Values are still checked, and unknown keys refused.
        assert!(s.apply(&set("manual_compact.disabled", "maybe")).is_err());
        assert!(s.apply(&set("no.such.key", "1")).is_err());
        // Delete and clear work for any stored key.
        let del = Command::UpdateEnvs {
            name: "t".into(),
            op: EnvOp::Del(vec!["business.info".into()]),
        };
        assert_eq!(s.apply(&del), Ok(Reply::Done));
        let clear = Command::UpdateEnvs {
            name: "t".into(),
            op: EnvOp::Clear("manual_compact.".into()),
        };
        assert_eq!(s.apply(&clear), Ok(Reply::Done));
        assert!(s.app_by_name("t").is_some_and(|a| a.envs.is_empty()));
    }
}
