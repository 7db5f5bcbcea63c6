//! The cluster handle: configuration, connections, meta calls.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pegasus_proto::frame::RequestHeader;
use pegasus_proto::meta::QueryCfgRequest;
use pegasus_proto::{ErrorCode, MetaRequest, MetaResponse};
use tokio::time::Instant;

use crate::error::{ClientError, Result};
use crate::table::Table;
use pegasus_rpc::{Session, SessionPool};

/// Client settings. Defaults follow the Java client (1 s per operation, 5 s per meta query).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Meta servers to ask for table configurations.
    pub meta_servers: Vec<SocketAddr>,
    /// Time budget of one operation, retries included.
    pub operation_timeout: Duration,
    /// Time budget of one meta query.
    pub meta_query_timeout: Duration,
    /// Largest reply accepted.
    pub max_frame: usize,
}

impl ClientConfig {
    /// Settings with default timeouts for these meta servers.
    pub fn new(meta_servers: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self {
            meta_servers: meta_servers.into_iter().collect(),
            operation_timeout: Duration::from_millis(1000),
            meta_query_timeout: Duration::from_millis(5000),
            max_frame: pegasus_proto::DEFAULT_MAX_FRAME,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    sessions: SessionPool,
    /// Meta servers, the one believed to be the leader first.
    metas: Mutex<Vec<SocketAddr>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Backoff between retries: 10 ms doubling to 200 ms.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(10u64.saturating_mul(1 << attempt.min(5)).min(200))
}

impl Inner {
    pub(crate) fn session(&self, addr: SocketAddr) -> Session {
        self.sessions.get(addr)
    }

    fn metas(&self) -> Vec<SocketAddr> {
        self.metas.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn promote_meta(&self, leader: SocketAddr) {
        let mut metas = self.metas.lock().unwrap_or_else(|e| e.into_inner());
        metas.retain(|m| *m != leader);
        metas.insert(0, leader);
    }

    fn rotate_metas(&self) {
        let mut metas = self.metas.lock().unwrap_or_else(|e| e.into_inner());
        if !metas.is_empty() {
            metas.rotate_left(1);
        }
    }

    /// Calls the meta leader: follows ERR_FORWARD_TO_OTHERS hints, moves on from meta servers
    /// that cannot be reached, retries ERR_SERVICE_NOT_ACTIVE, until `timeout`.
    pub(crate) async fn meta_call(
        &self,
        req: MetaRequest,
        timeout: Duration,
    ) -> Result<MetaResponse> {
        let deadline = Instant::now() + timeout;
        let mut attempt = 0u32;
        let mut last_err = String::from("no meta servers configured");
        loop {
            let Some(addr) = self.metas().first().copied() else {
                return Err(ClientError::MetaUnreachable(last_err));
            };
            let header = RequestHeader {
                client_timeout_ms: i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX),
                ..RequestHeader::default()
            };
            let session = self.session(addr);
            let call = session.call(header, req.name(), req.encode_args());
            let outcome = tokio::time::timeout_at(deadline, call).await;
            let next = match outcome {
                Err(_) => return Err(ClientError::Timeout(timeout)),
                Ok(Err(e)) => {
                    last_err = format!("{addr}: {e}");
                    self.rotate_metas();
                    None
                }
                Ok(Ok(reply)) if !reply.error.is_ok() => {
                    last_err = format!("{addr}: {}", reply.error);
                    self.rotate_metas();
                    None
                }
                Ok(Ok(reply)) => {
                    let resp = MetaResponse::decode(req.name(), &reply)
                        .map_err(|e| ClientError::BadReply(e.to_string()))?
                        .ok_or_else(|| ClientError::BadReply("unknown meta rpc".into()))?;
                    match meta_err(&resp) {
                        ErrorCode::ForwardToOthers => {
                            last_err = format!("{addr}: not the leader");
                            match leader_hint(&resp) {
                                Some(leader) if leader != addr => self.promote_meta(leader),
                                _ => self.rotate_metas(),
                            }
                            None
                        }
                        ErrorCode::ServiceNotActive => {
                            last_err = format!("{addr}: meta not active yet");
                            None
                        }
                        _ => Some(resp),
                    }
                }
            };
            if let Some(resp) = next {
                return Ok(resp);
            }
            let pause = backoff(attempt);
            attempt += 1;
            if Instant::now() + pause >= deadline {
                return Err(ClientError::MetaUnreachable(last_err));
            }
            tokio::time::sleep(pause).await;
        }
    }
}

/// The `err` field of any meta response.
fn meta_err(resp: &MetaResponse) -> ErrorCode {
    match resp {
        MetaResponse::QueryConfig(r) => r.err,
        MetaResponse::CreateApp(r) => r.err,
        MetaResponse::DropApp(r) => r.err,
        MetaResponse::RecallApp(r) => r.err,
        MetaResponse::ListApps(r) => r.err,
        MetaResponse::ListNodes(r) => r.err,
        MetaResponse::ClusterInfo(r) => r.err,
        MetaResponse::UpdateAppEnv(r) => r.err,
        MetaResponse::ControlMeta(r) => r.err,
        MetaResponse::GetMaxReplicaCount(r) => r.err,
        MetaResponse::SetMaxReplicaCount(r) => r.err,
    }
}

/// The leader named by a follower's query-config answer (`partitions[0].primary`).
fn leader_hint(resp: &MetaResponse) -> Option<SocketAddr> {
    match resp {
        MetaResponse::QueryConfig(r) => r.partitions.first()?.primary.to_socket_addr(),
        _ => None,
    }
}

/// A connection to a cluster. Cheap to clone; connections are shared and pipelined.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl Client {
    /// A client for the cluster behind `config.meta_servers`. Connects lazily.
    pub fn new(config: ClientConfig) -> Self {
        let metas = config.meta_servers.clone();
        let sessions = SessionPool::new(config.max_frame);
        Self {
            inner: Arc::new(Inner {
                config,
                sessions,
                metas: Mutex::new(metas),
            }),
        }
    }

    /// Opens a table: fetches its partition configuration from the meta servers.
    pub async fn open_table(&self, name: &str) -> Result<Table> {
        Table::open(self.inner.clone(), name).await
    }

    /// Sends any meta request (table DDL, node lists, envs) to the meta leader.
    pub async fn meta(&self, req: MetaRequest) -> Result<MetaResponse> {
        self.inner
            .meta_call(req, self.inner.config.meta_query_timeout)
            .await
    }

    /// Queries a table's partition configuration.
    pub async fn query_config(&self, name: &str) -> Result<pegasus_proto::meta::QueryCfgResponse> {
        match self
            .meta(MetaRequest::QueryConfig(QueryCfgRequest {
                app_name: name.to_string(),
                partition_indices: Vec::new(),
            }))
            .await?
        {
            MetaResponse::QueryConfig(r) => Ok(r),
            other => Err(ClientError::BadReply(format!("unexpected {other:?}"))),
        }
    }
}
