//! What a benchmark drives: a Pegasus table through our client, or a redis-server over
//! plain RESP. Both run the same [`Op`]s.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use pegasus_client::{
    CasCheckType, CheckAndSetOptions, Client, ClientConfig, MultiGetOptions, Table,
};
use pegasus_redis::resp::{encode_command, Limits, Reply, ReplyCodec, RespError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use crate::error::{BenchError, Result};
use crate::keys::KEY_LEN;
use crate::workload::{Op, OpKind};

/// A parsed `--target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// Meta servers and a table.
    Pegasus {
        /// Meta server addresses.
        metas: Vec<SocketAddr>,
        /// Table name.
        table: String,
    },
    /// One redis-server.
    Redis(SocketAddr),
}

impl std::str::FromStr for TargetSpec {
    type Err = BenchError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || BenchError::InvalidTarget(s.to_string());
        if let Some(rest) = s.strip_prefix("redis://") {
            return rest.parse().map(Self::Redis).map_err(|_| bad());
        }
        let rest = s.strip_prefix("pegasus://").unwrap_or(s);
        let (hosts, table) = rest.split_once('/').unwrap_or((rest, "temp"));
        let metas = hosts
            .split(',')
            .map(|h| h.trim().parse::<SocketAddr>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| bad())?;
        if metas.is_empty() || table.is_empty() {
            return Err(bad());
        }
        Ok(Self::Pegasus {
            metas,
            table: table.to_string(),
        })
    }
}

impl std::fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pegasus { metas, table } => {
                let hosts: Vec<String> = metas.iter().map(ToString::to_string).collect();
                write!(f, "pegasus://{}/{table}", hosts.join(","))
            }
            Self::Redis(addr) => write!(f, "redis://{addr}"),
        }
    }
}

/// A connected target; hands out one [`Handle`] per client task.
#[derive(Debug, Clone)]
pub enum Target {
    /// A Pegasus table (one client, shared pipelined sessions).
    Pegasus(Table),
    /// redis-server: a connection per handle.
    Redis(SocketAddr),
}

/// Per-operation time budget of the Pegasus client in benchmarks.
const OP_TIMEOUT: Duration = Duration::from_secs(5);

impl Target {
    /// Connects (for Pegasus: resolves the table's routing).
    pub async fn connect(spec: &TargetSpec) -> Result<Self> {
        match spec {
            TargetSpec::Pegasus { metas, table } => {
                let client = Client::new(ClientConfig::new(metas.iter().copied()));
                let table = client.open_table(table).await?.with_timeout(OP_TIMEOUT);
                Ok(Self::Pegasus(table))
            }
            TargetSpec::Redis(addr) => {
                // Fail now rather than in every task.
                RedisConn::connect(*addr).await?;
                Ok(Self::Redis(*addr))
            }
        }
    }

    /// A handle for one client task.
    pub async fn handle(&self) -> Result<Handle> {
        match self {
            Self::Pegasus(t) => Ok(Handle::Pegasus(t.clone())),
            Self::Redis(addr) => Ok(Handle::Redis(RedisConn::connect(*addr).await?)),
        }
    }

    /// Checks up front that the target can run these operations.
    pub fn supports(&self, kinds: &[OpKind]) -> Result<()> {
        match self {
            Self::Redis(_) if kinds.contains(&OpKind::Scan) => Err(BenchError::Unsupported {
                target: "redis",
                op: "scan (YCSB-E needs ordered sort keys)",
            }),
            _ => Ok(()),
        }
    }

    /// `pegasus` or `redis`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Pegasus(_) => "pegasus",
            Self::Redis(_) => "redis",
        }
    }
}

/// How one operation ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done (a read found its record, a write applied).
    Ok,
    /// A read found nothing.
    NotFound,
    /// A read-modify-write lost its check to a concurrent write (not an error).
    CasFailed,
}

/// One client task's connection to the target.
#[derive(Debug)]
pub enum Handle {
    /// Pegasus.
    Pegasus(Table),
    /// Redis.
    Redis(RedisConn),
}

fn concat(hk: &[u8], sk: &[u8]) -> [u8; 2 * KEY_LEN] {
    let mut k = [0u8; 2 * KEY_LEN];
    for (dst, src) in k.iter_mut().zip(hk.iter().chain(sk.iter())) {
        *dst = *src;
    }
    k
}

fn batch_sort_keys(count: u32) -> Vec<[u8; KEY_LEN]> {
    (0..u64::from(count)).map(crate::keys::format_key).collect()
}

/// The Redis keys of a batch: its hash key followed by each of its sort keys.
fn batch_redis_keys(op: &Op) -> Vec<[u8; 2 * KEY_LEN]> {
    batch_sort_keys(op.count)
        .iter()
        .map(|s| concat(&op.hash_key, s))
        .collect()
}

impl Handle {
    /// Runs one operation.
    pub async fn execute(&mut self, op: &Op) -> Result<Outcome> {
        match self {
            Self::Pegasus(t) => pegasus_execute(t, op).await,
            Self::Redis(c) => {
                let r = redis_execute(c, op).await;
                if matches!(r, Err(BenchError::Io(_))) {
                    // The connection is gone; the next operation gets a new one.
                    if let Ok(fresh) = RedisConn::connect(c.addr).await {
                        *c = fresh;
                    }
                }
                r
            }
        }
    }
}

async fn pegasus_execute(t: &Table, op: &Op) -> Result<Outcome> {
    let (hk, sk) = (&op.hash_key[..], &op.sort_key[..]);
    match op.kind {
        OpKind::Read => Ok(match t.get(hk, sk).await? {
            Some(_) => Outcome::Ok,
            None => Outcome::NotFound,
        }),
        OpKind::Update | OpKind::Insert => {
            t.set(hk, sk, &op.value, None).await?;
            Ok(Outcome::Ok)
        }
        OpKind::Delete => {
            t.del(hk, sk).await?;
            Ok(Outcome::Ok)
        }
        OpKind::Scan => {
            let opts = MultiGetOptions {
                max_count: i32::try_from(op.count).unwrap_or(i32::MAX),
                max_size: -1,
                ..MultiGetOptions::default()
            };
            let r = t.multi_get_range(hk, sk, b"", &opts).await?;
            Ok(if r.kvs.is_empty() {
                Outcome::NotFound
            } else {
                Outcome::Ok
            })
        }
        OpKind::ReadModifyWrite => {
            let current = t.get(hk, sk).await?;
            let (check, operand) = match &current {
                Some(v) => (CasCheckType::ValueBytesEqual, &v[..]),
                None => (CasCheckType::ValueNotExist, &b""[..]),
            };
            let r = t
                .check_and_set(
                    hk,
                    sk,
                    check,
                    operand,
                    &op.value,
                    &CheckAndSetOptions::default(),
                )
                .await?;
            Ok(if r.set_succeed {
                Outcome::Ok
            } else {
                Outcome::CasFailed
            })
        }
        OpKind::MultiSet => {
            let sks = batch_sort_keys(op.count);
            let kvs: Vec<(&[u8], &[u8])> = sks.iter().map(|s| (&s[..], &op.value[..])).collect();
            t.multi_set(hk, &kvs, None).await?;
            Ok(Outcome::Ok)
        }
        OpKind::MultiGet => {
            let sks = batch_sort_keys(op.count);
            let refs: Vec<&[u8]> = sks.iter().map(|s| &s[..]).collect();
            let r = t.multi_get(hk, &refs).await?;
            Ok(if r.kvs.is_empty() {
                Outcome::NotFound
            } else {
                Outcome::Ok
            })
        }
    }
}

async fn redis_execute(c: &mut RedisConn, op: &Op) -> Result<Outcome> {
    let key = concat(&op.hash_key, &op.sort_key);
    match op.kind {
        OpKind::Read => Ok(match c.call(&[b"GET", &key]).await? {
            Reply::Bulk(Some(_)) => Outcome::Ok,
            _ => Outcome::NotFound,
        }),
        OpKind::Update | OpKind::Insert => {
            c.call(&[b"SET", &key, &op.value]).await?;
            Ok(Outcome::Ok)
        }
        OpKind::Delete => {
            c.call(&[b"DEL", &key]).await?;
            Ok(Outcome::Ok)
        }
        OpKind::ReadModifyWrite => {
            // YCSB's Redis binding: a read, then a write (two round trips, not atomic).
            c.call(&[b"GET", &key]).await?;
            c.call(&[b"SET", &key, &op.value]).await?;
            Ok(Outcome::Ok)
        }
        OpKind::MultiSet => {
            let keys = batch_redis_keys(op);
            let mut args: Vec<&[u8]> = vec![b"MSET"];
            for k in &keys {
                args.push(k);
                args.push(&op.value);
            }
            c.call(&args).await?;
            Ok(Outcome::Ok)
        }
        OpKind::MultiGet => {
            let keys = batch_redis_keys(op);
            let mut args: Vec<&[u8]> = vec![b"MGET"];
            args.extend(keys.iter().map(|k| &k[..]));
            Ok(match c.call(&args).await? {
                Reply::Array(items) if items.iter().any(|i| matches!(i, Reply::Bulk(Some(_)))) => {
                    Outcome::Ok
                }
                _ => Outcome::NotFound,
            })
        }
        OpKind::Scan => Err(BenchError::Unsupported {
            target: "redis",
            op: "scan",
        }),
    }
}

/// One RESP connection: a request, then its reply.
#[derive(Debug)]
pub struct RedisConn {
    addr: SocketAddr,
    read: FramedRead<tokio::net::tcp::OwnedReadHalf, ReplyCodec>,
    write: tokio::net::tcp::OwnedWriteHalf,
    buf: BytesMut,
}

impl RedisConn {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok(Self {
            addr,
            read: FramedRead::new(r, ReplyCodec::new(Limits::default())),
            write: w,
            buf: BytesMut::with_capacity(512),
        })
    }

    /// Sends one command and waits for its reply; an error reply is an error.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Reply> {
        self.buf.clear();
        encode_command(args, &mut self.buf);
        self.write.write_all(&self.buf).await?;
        match self.read.next().await {
            None => Err(BenchError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "redis closed the connection",
            ))),
            Some(Err(RespError::Io(e))) => Err(BenchError::Io(std::io::Error::other(e))),
            Some(Err(e)) => Err(e.into()),
            Some(Ok(Reply::Error(e))) => Err(BenchError::Redis(e)),
            Some(Ok(r)) => Ok(r),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            "redis://127.0.0.1:6379".parse::<TargetSpec>().unwrap(),
            TargetSpec::Redis("127.0.0.1:6379".parse().unwrap())
        );
        let t: TargetSpec = "pegasus://127.0.0.1:1,127.0.0.1:2/usertable"
            .parse()
            .unwrap();
        assert_eq!(t.to_string(), "pegasus://127.0.0.1:1,127.0.0.1:2/usertable");
        let t: TargetSpec = "127.0.0.1:34601".parse().unwrap();
        assert_eq!(t.to_string(), "pegasus://127.0.0.1:34601/temp");
        assert!("redis://nowhere".parse::<TargetSpec>().is_err());
        assert!("pegasus:///temp".parse::<TargetSpec>().is_err());
    }
}
