//! Meta-server messages a client or admin tool uses (`dsn.layer2.thrift`,
//! `meta_admin.thrift`). The optional `hp_*` host_port fields are never written: clients
//! built before they existed (pypegasus3) cannot decode them.

use std::collections::BTreeMap;

use pegasus_core::ids::Gpid;

use crate::address::RpcAddress;
use crate::codec::{
    AddressC, BoolC, EnumC, ErrorCodeC, GpidC, ListC, OptC, StringC, StringMapC, StructC, WireEnum,
    I32C, I64C,
};
use crate::error::ErrorCode;
use crate::thrift_struct;

macro_rules! proto_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $val:expr),* $(,)? } default $def:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant,)*
            /// A value this version does not know.
            Unknown(i32),
        }
        impl Default for $name {
            fn default() -> Self {
                Self::$def
            }
        }
        impl WireEnum for $name {
            fn to_wire(self) -> i32 {
                match self {
                    $(Self::$variant => $val,)*
                    Self::Unknown(v) => v,
                }
            }
            fn from_wire(v: i32) -> Self {
                match v {
                    $($val => Self::$variant,)*
                    other => Self::Unknown(other),
                }
            }
        }
    };
}

proto_enum!(
    /// `app_status`.
    AppStatus {
        /// Not a status.
        Invalid = 0,
        /// Serving.
        Available = 1,
        /// Being created.
        Creating = 2,
        /// Deprecated.
        CreateFailed = 3,
        /// Being dropped.
        Dropping = 4,
        /// Deprecated.
        DropFailed = 5,
        /// Dropped (recallable until its reserve time ends).
        Dropped = 6,
        /// Being recalled.
        Recalling = 7,
    } default Invalid
);

proto_enum!(
    /// `node_status`.
    NodeStatus {
        /// Any (in requests) / unknown.
        Invalid = 0,
        /// Alive.
        Alive = 1,
        /// Not alive.
        Unalive = 2,
    } default Invalid
);

proto_enum!(
    /// `app_env_operation`.
    AppEnvOperation {
        /// Not an operation.
        Invalid = 0,
        /// Set keys to values.
        Set = 1,
        /// Delete keys.
        Del = 2,
        /// Clear keys with a prefix (all when empty).
        Clear = 3,
    } default Invalid
);

proto_enum!(
    /// `meta_function_level`.
    MetaFunctionLevel {
        /// Stopped.
        Stopped = 100,
        /// Blind: no changes at all.
        Blind = 200,
        /// Freezed: no automatic cure.
        Freezed = 300,
        /// Steady: cure, no balancing.
        Steady = 400,
        /// Lively: cure and balance.
        Lively = 500,
        /// Query only.
        Invalid = 10000,
    } default Invalid
);

proto_enum!(
    /// `pattern_match_type`.
    PatternMatchType {
        /// Not a type.
        Invalid = 0,
        /// Everything.
        MatchAll = 1,
        /// Equal.
        MatchExact = 2,
        /// Substring.
        MatchAnywhere = 3,
        /// Prefix.
        MatchPrefix = 4,
        /// Postfix.
        MatchPostfix = 5,
        /// Regular expression.
        MatchRegex = 6,
    } default Invalid
);

/// `partition_configuration`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionConfiguration {
    /// The partition.
    pub pid: Gpid,
    /// Configuration version; ≥ 1 for a serving partition.
    pub ballot: i64,
    /// Replica count of the table.
    pub max_replica_count: i32,
    /// The primary (invalid when none).
    pub primary: RpcAddress,
    /// The secondaries.
    pub secondaries: Vec<RpcAddress>,
    /// Recently dropped members.
    pub last_drops: Vec<RpcAddress>,
    /// Last committed decree known to meta.
    pub last_committed_decree: i64,
    /// Flags.
    pub partition_flags: i32,
}
thrift_struct!(PartitionConfiguration {
    1: pid: GpidC,
    2: ballot: I64C,
    3: max_replica_count: I32C,
    4: primary: AddressC,
    5: secondaries: ListC<AddressC>,
    6: last_drops: ListC<AddressC>,
    7: last_committed_decree: I64C,
    8: partition_flags: I32C,
});

/// `query_cfg_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryCfgRequest {
    /// Table name.
    pub app_name: String,
    /// Partitions wanted; empty = all.
    pub partition_indices: Vec<i32>,
}
thrift_struct!(QueryCfgRequest { 1: app_name: StringC, 2: partition_indices: ListC<I32C> });

/// `query_cfg_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryCfgResponse {
    /// Error (inside the body; the frame error is ERR_OK).
    pub err: ErrorCode,
    /// Table id.
    pub app_id: i32,
    /// Partition count.
    pub partition_count: i32,
    /// Always true for Pegasus tables.
    pub is_stateful: bool,
    /// Configurations in partition-index order. With ERR_FORWARD_TO_OTHERS, `[0].primary`
    /// is the meta leader.
    pub partitions: Vec<PartitionConfiguration>,
}
thrift_struct!(QueryCfgResponse {
    1: err: ErrorCodeC,
    2: app_id: I32C,
    3: partition_count: I32C,
    4: is_stateful: BoolC,
    5: partitions: ListC<StructC<PartitionConfiguration>>,
});

/// `app_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInfo {
    /// Status.
    pub status: AppStatus,
    /// `"pegasus"`.
    pub app_type: String,
    /// Name.
    pub app_name: String,
    /// Id.
    pub app_id: i32,
    /// Partition count.
    pub partition_count: i32,
    /// Table envs.
    pub envs: BTreeMap<String, String>,
    /// Always true for Pegasus tables.
    pub is_stateful: bool,
    /// Replica count.
    pub max_replica_count: i32,
    /// When a dropped table is gone for good (Unix seconds).
    pub expire_second: i64,
    /// Creation time (Unix seconds).
    pub create_second: i64,
    /// Drop time (Unix seconds).
    pub drop_second: i64,
    /// Duplication on.
    pub duplicating: Option<bool>,
    /// Partition count at creation (-1 unknown).
    pub init_partition_count: i32,
    /// Bulk load running.
    pub is_bulk_loading: Option<bool>,
    /// Atomic writes replicated as idempotent puts.
    pub atomic_idempotent: Option<bool>,
}

impl Default for AppInfo {
    fn default() -> Self {
        Self {
            status: AppStatus::Invalid,
            app_type: String::new(),
            app_name: String::new(),
            app_id: 0,
            partition_count: 0,
            envs: BTreeMap::new(),
            is_stateful: false,
            max_replica_count: 0,
            expire_second: 0,
            create_second: 0,
            drop_second: 0,
            duplicating: None,
            init_partition_count: -1,
            is_bulk_loading: None,
            atomic_idempotent: None,
        }
    }
}
thrift_struct!(AppInfo {
    1: status: EnumC<AppStatus>,
    2: app_type: StringC,
    3: app_name: StringC,
    4: app_id: I32C,
    5: partition_count: I32C,
    6: envs: StringMapC,
    7: is_stateful: BoolC,
    8: max_replica_count: I32C,
    9: expire_second: I64C,
    10: create_second: I64C,
    11: drop_second: I64C,
    12: duplicating: OptC<BoolC>,
    13: init_partition_count: I32C,
    14: is_bulk_loading: OptC<BoolC>,
    15: atomic_idempotent: OptC<BoolC>,
});

/// `create_app_options`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateAppOptions {
    /// Partition count (a power of two).
    pub partition_count: i32,
    /// Replica count.
    pub replica_count: i32,
    /// Succeed if the table exists.
    pub success_if_exist: bool,
    /// `"pegasus"`.
    pub app_type: String,
    /// True.
    pub is_stateful: bool,
    /// Initial envs.
    pub envs: BTreeMap<String, String>,
    /// Atomic idempotent mode.
    pub atomic_idempotent: Option<bool>,
}
thrift_struct!(CreateAppOptions {
    1: partition_count: I32C,
    2: replica_count: I32C,
    3: success_if_exist: BoolC,
    4: app_type: StringC,
    5: is_stateful: BoolC,
    6: envs: StringMapC,
    7: atomic_idempotent: OptC<BoolC>,
});

/// `configuration_create_app_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateAppRequest {
    /// Name.
    pub app_name: String,
    /// Options.
    pub options: CreateAppOptions,
}
thrift_struct!(CreateAppRequest { 1: app_name: StringC, 2: options: StructC<CreateAppOptions> });

/// `configuration_create_app_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateAppResponse {
    /// Error.
    pub err: ErrorCode,
    /// The new table's id.
    pub appid: i32,
}
thrift_struct!(CreateAppResponse { 1: err: ErrorCodeC, 2: appid: I32C });

/// `drop_app_options`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DropAppOptions {
    /// Succeed if the table does not exist.
    pub success_if_not_exist: bool,
    /// How long the dropped table stays recallable, seconds.
    pub reserve_seconds: Option<i64>,
}
thrift_struct!(DropAppOptions { 1: success_if_not_exist: BoolC, 2: reserve_seconds: OptC<I64C> });

/// `configuration_drop_app_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DropAppRequest {
    /// Name.
    pub app_name: String,
    /// Options.
    pub options: DropAppOptions,
}
thrift_struct!(DropAppRequest { 1: app_name: StringC, 2: options: StructC<DropAppOptions> });

/// `configuration_drop_app_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DropAppResponse {
    /// Error.
    pub err: ErrorCode,
}
thrift_struct!(DropAppResponse { 1: err: ErrorCodeC });

/// `configuration_recall_app_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecallAppRequest {
    /// The dropped table's id.
    pub app_id: i32,
    /// New name (empty = the old one).
    pub new_app_name: String,
}
thrift_struct!(RecallAppRequest { 1: app_id: I32C, 2: new_app_name: StringC });

/// `configuration_recall_app_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecallAppResponse {
    /// Error.
    pub err: ErrorCode,
    /// The recalled table.
    pub info: AppInfo,
}
thrift_struct!(RecallAppResponse { 1: err: ErrorCodeC, 2: info: StructC<AppInfo> });

/// `configuration_list_apps_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListAppsRequest {
    /// Filter by status (`Invalid` = all).
    pub status: AppStatus,
    /// Name pattern.
    pub app_name_pattern: Option<String>,
    /// How the pattern matches.
    pub match_type: Option<PatternMatchType>,
}
thrift_struct!(ListAppsRequest {
    1: status: EnumC<AppStatus>,
    2: app_name_pattern: OptC<StringC>,
    3: match_type: OptC<EnumC<PatternMatchType>>,
});

/// `configuration_list_apps_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListAppsResponse {
    /// Error.
    pub err: ErrorCode,
    /// Tables.
    pub infos: Vec<AppInfo>,
    /// Hint.
    pub hint_message: Option<String>,
}
thrift_struct!(ListAppsResponse {
    1: err: ErrorCodeC, 2: infos: ListC<StructC<AppInfo>>, 3: hint_message: OptC<StringC>,
});

/// `node_info`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    /// Status.
    pub status: NodeStatus,
    /// Address.
    pub node: RpcAddress,
}
thrift_struct!(NodeInfo { 1: status: EnumC<NodeStatus>, 2: node: AddressC });

/// `configuration_list_nodes_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListNodesRequest {
    /// Filter (`Invalid` = all).
    pub status: NodeStatus,
}
thrift_struct!(ListNodesRequest { 1: status: EnumC<NodeStatus> });

/// `configuration_list_nodes_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListNodesResponse {
    /// Error.
    pub err: ErrorCode,
    /// Nodes.
    pub infos: Vec<NodeInfo>,
}
thrift_struct!(ListNodesResponse { 1: err: ErrorCodeC, 2: infos: ListC<StructC<NodeInfo>> });

/// `configuration_cluster_info_request` (no fields).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterInfoRequest {}
thrift_struct!(ClusterInfoRequest {});

/// `configuration_cluster_info_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterInfoResponse {
    /// Error.
    pub err: ErrorCode,
    /// Keys.
    pub keys: Vec<String>,
    /// Values, same order.
    pub values: Vec<String>,
}
thrift_struct!(ClusterInfoResponse { 1: err: ErrorCodeC, 2: keys: ListC<StringC>, 3: values: ListC<StringC> });

/// `configuration_update_app_env_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateAppEnvRequest {
    /// Table.
    pub app_name: String,
    /// Operation.
    pub op: AppEnvOperation,
    /// Keys (set, del).
    pub keys: Option<Vec<String>>,
    /// Values (set).
    pub values: Option<Vec<String>>,
    /// Prefix (clear; empty = all).
    pub clear_prefix: Option<String>,
}
thrift_struct!(UpdateAppEnvRequest {
    1: app_name: StringC,
    2: op: EnumC<AppEnvOperation>,
    3: keys: OptC<ListC<StringC>>,
    4: values: OptC<ListC<StringC>>,
    5: clear_prefix: OptC<StringC>,
});

/// `configuration_update_app_env_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateAppEnvResponse {
    /// Error.
    pub err: ErrorCode,
    /// Hint.
    pub hint_message: String,
}
thrift_struct!(UpdateAppEnvResponse { 1: err: ErrorCodeC, 2: hint_message: StringC });

/// `configuration_meta_control_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetaControlRequest {
    /// New level (`Invalid` = query only).
    pub level: MetaFunctionLevel,
}
thrift_struct!(MetaControlRequest { 1: level: EnumC<MetaFunctionLevel> });

/// `configuration_meta_control_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetaControlResponse {
    /// Error.
    pub err: ErrorCode,
    /// Level before the call.
    pub old_level: MetaFunctionLevel,
}
thrift_struct!(MetaControlResponse { 1: err: ErrorCodeC, 2: old_level: EnumC<MetaFunctionLevel> });

/// `configuration_get_max_replica_count_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetMaxReplicaCountRequest {
    /// Table.
    pub app_name: String,
}
thrift_struct!(GetMaxReplicaCountRequest { 1: app_name: StringC });

/// `configuration_get_max_replica_count_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetMaxReplicaCountResponse {
    /// Error.
    pub err: ErrorCode,
    /// Replica count.
    pub max_replica_count: i32,
    /// Hint.
    pub hint_message: String,
}
thrift_struct!(GetMaxReplicaCountResponse {
    1: err: ErrorCodeC, 2: max_replica_count: I32C, 3: hint_message: StringC,
});

/// `configuration_set_max_replica_count_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetMaxReplicaCountRequest {
    /// Table.
    pub app_name: String,
    /// New replica count.
    pub max_replica_count: i32,
}
thrift_struct!(SetMaxReplicaCountRequest { 1: app_name: StringC, 2: max_replica_count: I32C });

/// `configuration_set_max_replica_count_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetMaxReplicaCountResponse {
    /// Error.
    pub err: ErrorCode,
    /// Replica count before.
    pub old_max_replica_count: i32,
    /// Hint.
    pub hint_message: String,
}
thrift_struct!(SetMaxReplicaCountResponse {
    1: err: ErrorCodeC, 2: old_max_replica_count: I32C, 3: hint_message: StringC,
});
