//! Frame-level error codes (`dsn::error_code`), sent by name.
//!
//! Only names the official Go client knows are defined here: an unknown name makes the Go and
//! Java clients fail to decode the whole reply. Names Pegasus added later (after
//! `ERR_DISK_INSUFFICIENT`) and the few the Go client lacks are deliberately absent, so the
//! server cannot send them.

/// An error code, in Pegasus's registration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ErrorCode {
    /// `ERR_OK`.
    #[default]
    Ok,
    /// `ERR_UNKNOWN`.
    Unknown,
    /// `ERR_SERVICE_NOT_FOUND`.
    ServiceNotFound,
    /// `ERR_SERVICE_ALREADY_RUNNING`.
    ServiceAlreadyRunning,
    /// `ERR_IO_PENDING`.
    IoPending,
    /// `ERR_TIMEOUT`.
    Timeout,
    /// `ERR_SERVICE_NOT_ACTIVE`.
    ServiceNotActive,
    /// `ERR_BUSY`.
    Busy,
    /// `ERR_NETWORK_INIT_FAILED`.
    NetworkInitFailed,
    /// `ERR_FORWARD_TO_OTHERS`.
    ForwardToOthers,
    /// `ERR_OBJECT_NOT_FOUND`.
    ObjectNotFound,
    /// `ERR_HANDLER_NOT_FOUND`.
    HandlerNotFound,
    /// `ERR_LEARN_FILE_FAILED`.
    LearnFileFailed,
    /// `ERR_GET_LEARN_STATE_FAILED`.
    GetLearnStateFailed,
    /// `ERR_INVALID_VERSION`.
    InvalidVersion,
    /// `ERR_INVALID_PARAMETERS`.
    InvalidParameters,
    /// `ERR_CAPACITY_EXCEEDED`.
    CapacityExceeded,
    /// `ERR_INVALID_STATE`.
    InvalidState,
    /// `ERR_INACTIVE_STATE`.
    InactiveState,
    /// `ERR_NOT_ENOUGH_MEMBER`.
    NotEnoughMember,
    /// `ERR_FILE_OPERATION_FAILED`.
    FileOperationFailed,
    /// `ERR_HANDLE_EOF`.
    HandleEof,
    /// `ERR_WRONG_CHECKSUM`.
    WrongChecksum,
    /// `ERR_INVALID_DATA`.
    InvalidData,
    /// `ERR_INVALID_HANDLE`.
    InvalidHandle,
    /// `ERR_INCOMPLETE_DATA`.
    IncompleteData,
    /// `ERR_VERSION_OUTDATED`.
    VersionOutdated,
    /// `ERR_PATH_NOT_FOUND`.
    PathNotFound,
    /// `ERR_PATH_ALREADY_EXIST`.
    PathAlreadyExist,
    /// `ERR_ADDRESS_ALREADY_USED`.
    AddressAlreadyUsed,
    /// `ERR_STATE_FREEZED`.
    StateFreezed,
    /// `ERR_LOCAL_APP_FAILURE`.
    LocalAppFailure,
    /// `ERR_BIND_IOCP_FAILED`.
    BindIocpFailed,
    /// `ERR_NETWORK_START_FAILED`.
    NetworkStartFailed,
    /// `ERR_NOT_IMPLEMENTED`.
    NotImplemented,
    /// `ERR_CHECKPOINT_FAILED`.
    CheckpointFailed,
    /// `ERR_WRONG_TIMING`.
    WrongTiming,
    /// `ERR_NO_NEED_OPERATE`.
    NoNeedOperate,
    /// `ERR_CORRUPTION`.
    Corruption,
    /// `ERR_TRY_AGAIN`.
    TryAgain,
    /// `ERR_CLUSTER_NOT_FOUND`.
    ClusterNotFound,
    /// `ERR_CLUSTER_ALREADY_EXIST`.
    ClusterAlreadyExist,
    /// `ERR_SERVICE_ALREADY_EXIST`.
    ServiceAlreadyExist,
    /// `ERR_INJECTED`.
    Injected,
    /// `ERR_REPLICATION_FAILURE`.
    ReplicationFailure,
    /// `ERR_APP_EXIST`.
    AppExist,
    /// `ERR_APP_NOT_EXIST`.
    AppNotExist,
    /// `ERR_BUSY_CREATING`.
    BusyCreating,
    /// `ERR_BUSY_DROPPING`.
    BusyDropping,
    /// `ERR_NETWORK_FAILURE`.
    NetworkFailure,
    /// `ERR_UNDER_RECOVERY`.
    UnderRecovery,
    /// `ERR_OPERATION_DISABLED`.
    OperationDisabled,
    /// `ERR_EXPIRED`.
    Expired,
    /// `ERR_LOCK_ALREADY_EXIST`.
    LockAlreadyExist,
    /// `ERR_HOLD_BY_OTHERS`.
    HoldByOthers,
    /// `ERR_RECURSIVE_LOCK`.
    RecursiveLock,
    /// `ERR_NO_OWNER`.
    NoOwner,
    /// `ERR_NODE_ALREADY_EXIST`.
    NodeAlreadyExist,
    /// `ERR_INCONSISTENT_STATE`.
    InconsistentState,
    /// `ERR_ARRAY_INDEX_OUT_OF_RANGE`.
    ArrayIndexOutOfRange,
    /// `ERR_APP_DROPPED`.
    AppDropped,
    /// `ERR_ZOOKEEPER_OPERATION`.
    ZookeeperOperation,
    /// `ERR_CHILD_REGISTERED`.
    ChildRegistered,
    /// `ERR_INGESTION_FAILED`.
    IngestionFailed,
    /// `ERR_UNAUTHENTICATED`.
    Unauthenticated,
    /// `ERR_KRB5_INTERNAL`.
    Krb5Internal,
    /// `ERR_SASL_INTERNAL`.
    SaslInternal,
    /// `ERR_SASL_INCOMPLETE`.
    SaslIncomplete,
    /// `ERR_ACL_DENY`.
    AclDeny,
    /// `ERR_SPLITTING`.
    Splitting,
    /// `ERR_PARENT_PARTITION_MISUSED`.
    ParentPartitionMisused,
    /// `ERR_CHILD_NOT_READY`.
    ChildNotReady,
    /// `ERR_DISK_INSUFFICIENT`.
    DiskInsufficient,
}

impl ErrorCode {
    /// Every code, in order.
    pub const ALL: &'static [ErrorCode] = &[
        Self::Ok,
        Self::Unknown,
        Self::ServiceNotFound,
        Self::ServiceAlreadyRunning,
        Self::IoPending,
        Self::Timeout,
        Self::ServiceNotActive,
        Self::Busy,
        Self::NetworkInitFailed,
        Self::ForwardToOthers,
        Self::ObjectNotFound,
        Self::HandlerNotFound,
        Self::LearnFileFailed,
        Self::GetLearnStateFailed,
        Self::InvalidVersion,
        Self::InvalidParameters,
        Self::CapacityExceeded,
        Self::InvalidState,
        Self::InactiveState,
        Self::NotEnoughMember,
        Self::FileOperationFailed,
        Self::HandleEof,
        Self::WrongChecksum,
        Self::InvalidData,
        Self::InvalidHandle,
        Self::IncompleteData,
        Self::VersionOutdated,
        Self::PathNotFound,
        Self::PathAlreadyExist,
        Self::AddressAlreadyUsed,
        Self::StateFreezed,
        Self::LocalAppFailure,
        Self::BindIocpFailed,
        Self::NetworkStartFailed,
        Self::NotImplemented,
        Self::CheckpointFailed,
        Self::WrongTiming,
        Self::NoNeedOperate,
        Self::Corruption,
        Self::TryAgain,
        Self::ClusterNotFound,
        Self::ClusterAlreadyExist,
        Self::ServiceAlreadyExist,
        Self::Injected,
        Self::ReplicationFailure,
        Self::AppExist,
        Self::AppNotExist,
        Self::BusyCreating,
        Self::BusyDropping,
        Self::NetworkFailure,
        Self::UnderRecovery,
        Self::OperationDisabled,
        Self::Expired,
        Self::LockAlreadyExist,
        Self::HoldByOthers,
        Self::RecursiveLock,
        Self::NoOwner,
        Self::NodeAlreadyExist,
        Self::InconsistentState,
        Self::ArrayIndexOutOfRange,
        Self::AppDropped,
        Self::ZookeeperOperation,
        Self::ChildRegistered,
        Self::IngestionFailed,
        Self::Unauthenticated,
        Self::Krb5Internal,
        Self::SaslInternal,
        Self::SaslIncomplete,
        Self::AclDeny,
        Self::Splitting,
        Self::ParentPartitionMisused,
        Self::ChildNotReady,
        Self::DiskInsufficient,
    ];

    /// The wire name, e.g. `"ERR_OK"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ok => "ERR_OK",
            Self::Unknown => "ERR_UNKNOWN",
            Self::ServiceNotFound => "ERR_SERVICE_NOT_FOUND",
            Self::ServiceAlreadyRunning => "ERR_SERVICE_ALREADY_RUNNING",
            Self::IoPending => "ERR_IO_PENDING",
            Self::Timeout => "ERR_TIMEOUT",
            Self::ServiceNotActive => "ERR_SERVICE_NOT_ACTIVE",
            Self::Busy => "ERR_BUSY",
            Self::NetworkInitFailed => "ERR_NETWORK_INIT_FAILED",
            Self::ForwardToOthers => "ERR_FORWARD_TO_OTHERS",
            Self::ObjectNotFound => "ERR_OBJECT_NOT_FOUND",
            Self::HandlerNotFound => "ERR_HANDLER_NOT_FOUND",
            Self::LearnFileFailed => "ERR_LEARN_FILE_FAILED",
            Self::GetLearnStateFailed => "ERR_GET_LEARN_STATE_FAILED",
            Self::InvalidVersion => "ERR_INVALID_VERSION",
            Self::InvalidParameters => "ERR_INVALID_PARAMETERS",
            Self::CapacityExceeded => "ERR_CAPACITY_EXCEEDED",
            Self::InvalidState => "ERR_INVALID_STATE",
            Self::InactiveState => "ERR_INACTIVE_STATE",
            Self::NotEnoughMember => "ERR_NOT_ENOUGH_MEMBER",
            Self::FileOperationFailed => "ERR_FILE_OPERATION_FAILED",
            Self::HandleEof => "ERR_HANDLE_EOF",
            Self::WrongChecksum => "ERR_WRONG_CHECKSUM",
            Self::InvalidData => "ERR_INVALID_DATA",
            Self::InvalidHandle => "ERR_INVALID_HANDLE",
            Self::IncompleteData => "ERR_INCOMPLETE_DATA",
            Self::VersionOutdated => "ERR_VERSION_OUTDATED",
            Self::PathNotFound => "ERR_PATH_NOT_FOUND",
            Self::PathAlreadyExist => "ERR_PATH_ALREADY_EXIST",
            Self::AddressAlreadyUsed => "ERR_ADDRESS_ALREADY_USED",
            Self::StateFreezed => "ERR_STATE_FREEZED",
            Self::LocalAppFailure => "ERR_LOCAL_APP_FAILURE",
            Self::BindIocpFailed => "ERR_BIND_IOCP_FAILED",
            Self::NetworkStartFailed => "ERR_NETWORK_START_FAILED",
            Self::NotImplemented => "ERR_NOT_IMPLEMENTED",
            Self::CheckpointFailed => "ERR_CHECKPOINT_FAILED",
            Self::WrongTiming => "ERR_WRONG_TIMING",
            Self::NoNeedOperate => "ERR_NO_NEED_OPERATE",
            Self::Corruption => "ERR_CORRUPTION",
            Self::TryAgain => "ERR_TRY_AGAIN",
            Self::ClusterNotFound => "ERR_CLUSTER_NOT_FOUND",
            Self::ClusterAlreadyExist => "ERR_CLUSTER_ALREADY_EXIST",
            Self::ServiceAlreadyExist => "ERR_SERVICE_ALREADY_EXIST",
            Self::Injected => "ERR_INJECTED",
            Self::ReplicationFailure => "ERR_REPLICATION_FAILURE",
            Self::AppExist => "ERR_APP_EXIST",
            Self::AppNotExist => "ERR_APP_NOT_EXIST",
            Self::BusyCreating => "ERR_BUSY_CREATING",
            Self::BusyDropping => "ERR_BUSY_DROPPING",
            Self::NetworkFailure => "ERR_NETWORK_FAILURE",
            Self::UnderRecovery => "ERR_UNDER_RECOVERY",
            Self::OperationDisabled => "ERR_OPERATION_DISABLED",
            Self::Expired => "ERR_EXPIRED",
            Self::LockAlreadyExist => "ERR_LOCK_ALREADY_EXIST",
            Self::HoldByOthers => "ERR_HOLD_BY_OTHERS",
            Self::RecursiveLock => "ERR_RECURSIVE_LOCK",
            Self::NoOwner => "ERR_NO_OWNER",
            Self::NodeAlreadyExist => "ERR_NODE_ALREADY_EXIST",
            Self::InconsistentState => "ERR_INCONSISTENT_STATE",
            Self::ArrayIndexOutOfRange => "ERR_ARRAY_INDEX_OUT_OF_RANGE",
            Self::AppDropped => "ERR_APP_DROPPED",
            Self::ZookeeperOperation => "ERR_ZOOKEEPER_OPERATION",
            Self::ChildRegistered => "ERR_CHILD_REGISTERED",
            Self::IngestionFailed => "ERR_INGESTION_FAILED",
            Self::Unauthenticated => "ERR_UNAUTHENTICATED",
            Self::Krb5Internal => "ERR_KRB5_INTERNAL",
            Self::SaslInternal => "ERR_SASL_INTERNAL",
            Self::SaslIncomplete => "ERR_SASL_INCOMPLETE",
            Self::AclDeny => "ERR_ACL_DENY",
            Self::Splitting => "ERR_SPLITTING",
            Self::ParentPartitionMisused => "ERR_PARENT_PARTITION_MISUSED",
            Self::ChildNotReady => "ERR_CHILD_NOT_READY",
            Self::DiskInsufficient => "ERR_DISK_INSUFFICIENT",
        }
    }

    /// The code for a wire name; names this version does not know map to `ERR_UNKNOWN`.
    pub fn from_name(name: &str) -> Self {
        match name {
            "ERR_OK" => Self::Ok,
            "ERR_UNKNOWN" => Self::Unknown,
            "ERR_SERVICE_NOT_FOUND" => Self::ServiceNotFound,
            "ERR_SERVICE_ALREADY_RUNNING" => Self::ServiceAlreadyRunning,
            "ERR_IO_PENDING" => Self::IoPending,
            "ERR_TIMEOUT" => Self::Timeout,
            "ERR_SERVICE_NOT_ACTIVE" => Self::ServiceNotActive,
            "ERR_BUSY" => Self::Busy,
            "ERR_NETWORK_INIT_FAILED" => Self::NetworkInitFailed,
            "ERR_FORWARD_TO_OTHERS" => Self::ForwardToOthers,
            "ERR_OBJECT_NOT_FOUND" => Self::ObjectNotFound,
            "ERR_HANDLER_NOT_FOUND" => Self::HandlerNotFound,
            "ERR_LEARN_FILE_FAILED" => Self::LearnFileFailed,
            "ERR_GET_LEARN_STATE_FAILED" => Self::GetLearnStateFailed,
            "ERR_INVALID_VERSION" => Self::InvalidVersion,
            "ERR_INVALID_PARAMETERS" => Self::InvalidParameters,
            "ERR_CAPACITY_EXCEEDED" => Self::CapacityExceeded,
            "ERR_INVALID_STATE" => Self::InvalidState,
            "ERR_INACTIVE_STATE" => Self::InactiveState,
            "ERR_NOT_ENOUGH_MEMBER" => Self::NotEnoughMember,
            "ERR_FILE_OPERATION_FAILED" => Self::FileOperationFailed,
            "ERR_HANDLE_EOF" => Self::HandleEof,
            "ERR_WRONG_CHECKSUM" => Self::WrongChecksum,
            "ERR_INVALID_DATA" => Self::InvalidData,
            "ERR_INVALID_HANDLE" => Self::InvalidHandle,
            "ERR_INCOMPLETE_DATA" => Self::IncompleteData,
            "ERR_VERSION_OUTDATED" => Self::VersionOutdated,
            "ERR_PATH_NOT_FOUND" => Self::PathNotFound,
            "ERR_PATH_ALREADY_EXIST" => Self::PathAlreadyExist,
            "ERR_ADDRESS_ALREADY_USED" => Self::AddressAlreadyUsed,
            "ERR_STATE_FREEZED" => Self::StateFreezed,
            "ERR_LOCAL_APP_FAILURE" => Self::LocalAppFailure,
            "ERR_BIND_IOCP_FAILED" => Self::BindIocpFailed,
            "ERR_NETWORK_START_FAILED" => Self::NetworkStartFailed,
            "ERR_NOT_IMPLEMENTED" => Self::NotImplemented,
            "ERR_CHECKPOINT_FAILED" => Self::CheckpointFailed,
            "ERR_WRONG_TIMING" => Self::WrongTiming,
            "ERR_NO_NEED_OPERATE" => Self::NoNeedOperate,
            "ERR_CORRUPTION" => Self::Corruption,
            "ERR_TRY_AGAIN" => Self::TryAgain,
            "ERR_CLUSTER_NOT_FOUND" => Self::ClusterNotFound,
            "ERR_CLUSTER_ALREADY_EXIST" => Self::ClusterAlreadyExist,
            "ERR_SERVICE_ALREADY_EXIST" => Self::ServiceAlreadyExist,
            "ERR_INJECTED" => Self::Injected,
            "ERR_REPLICATION_FAILURE" => Self::ReplicationFailure,
            "ERR_APP_EXIST" => Self::AppExist,
            "ERR_APP_NOT_EXIST" => Self::AppNotExist,
            "ERR_BUSY_CREATING" => Self::BusyCreating,
            "ERR_BUSY_DROPPING" => Self::BusyDropping,
            "ERR_NETWORK_FAILURE" => Self::NetworkFailure,
            "ERR_UNDER_RECOVERY" => Self::UnderRecovery,
            "ERR_OPERATION_DISABLED" => Self::OperationDisabled,
            "ERR_EXPIRED" => Self::Expired,
            "ERR_LOCK_ALREADY_EXIST" => Self::LockAlreadyExist,
            "ERR_HOLD_BY_OTHERS" => Self::HoldByOthers,
            "ERR_RECURSIVE_LOCK" => Self::RecursiveLock,
            "ERR_NO_OWNER" => Self::NoOwner,
            "ERR_NODE_ALREADY_EXIST" => Self::NodeAlreadyExist,
            "ERR_INCONSISTENT_STATE" => Self::InconsistentState,
            "ERR_ARRAY_INDEX_OUT_OF_RANGE" => Self::ArrayIndexOutOfRange,
            "ERR_APP_DROPPED" => Self::AppDropped,
            "ERR_ZOOKEEPER_OPERATION" => Self::ZookeeperOperation,
            "ERR_CHILD_REGISTERED" => Self::ChildRegistered,
            "ERR_INGESTION_FAILED" => Self::IngestionFailed,
            "ERR_UNAUTHENTICATED" => Self::Unauthenticated,
            "ERR_KRB5_INTERNAL" => Self::Krb5Internal,
            "ERR_SASL_INTERNAL" => Self::SaslInternal,
            "ERR_SASL_INCOMPLETE" => Self::SaslIncomplete,
            "ERR_ACL_DENY" => Self::AclDeny,
            "ERR_SPLITTING" => Self::Splitting,
            "ERR_PARENT_PARTITION_MISUSED" => Self::ParentPartitionMisused,
            "ERR_CHILD_NOT_READY" => Self::ChildNotReady,
            "ERR_DISK_INSUFFICIENT" => Self::DiskInsufficient,
            _ => Self::Unknown,
        }
    }

    /// Whether this is `ERR_OK`.
    pub const fn is_ok(self) -> bool {
        matches!(self, Self::Ok)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_map_to_err_unknown() {
        for &c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_name(c.name()), c);
        }
        assert_eq!(ErrorCode::from_name("ERR_HTTP_ERROR"), ErrorCode::Unknown);
        assert_eq!(ErrorCode::default(), ErrorCode::Ok);
    }

    #[test]
    fn names_the_go_client_lacks_are_not_sendable() {
        for n in [
            "ERR_LEARNER_NOT_FOUND",
            "ERR_DIR_NOT_EMPTY",
            "ERR_FS_INTERNAL",
            "ERR_IGNORE_BAD_DATA",
            "ERR_MOCK_INTERNAL",
            "ERR_RETRY_EXHAUSTED",
            "ERR_DISK_IO_ERROR",
            "ERR_RDB_CORRUPTION",
        ] {
            assert!(ErrorCode::ALL.iter().all(|c| c.name() != n), "{n}");
        }
    }
}
