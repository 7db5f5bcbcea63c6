//! The proxy: replies come back in request order; the requests a client pipelined run
//! concurrently in waves of distinct keys, so one connection's commands on one key still
//! apply in order; many connections run at once. A pipeline's replies are flushed together.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use pegasus_client::{
    CasCheckType, CheckAndSetOptions, ClientError, Mutate, MutateOperation, Table,
};
use pegasus_rpc::limits::{raise_fd_limit, Gate, Throttled};
use pegasus_rpc::NetworkConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Decoder, Framed};

use crate::resp::{Limits, Reply, RespCodec, RespError};

const NOT_INTEGER: &str = "value is not an integer or out of range";
/// Pipelined requests taken from a connection's buffer at once.
const MAX_BATCH: usize = 256;
/// Redis's default `maxclients`.
pub const DEFAULT_MAXCLIENTS: u32 = 10_000;
/// What Redis answers a client over `maxclients` before closing it.
const MAX_CLIENTS_REACHED: &[u8] = b"-ERR max number of clients reached\r\n";

static REFUSED: Throttled = Throttled::new(10_000);

/// A Redis front end for one table.
#[derive(Debug, Clone)]
pub struct Proxy {
    table: Table,
    limits: Limits,
    maxclients: u32,
}

fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

fn int_arg(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn wrong_args(cmd: &str) -> Reply {
    Reply::err(format!(
        "wrong number of arguments for '{}' command",
        cmd.to_ascii_lowercase()
    ))
}

fn internal(e: &ClientError) -> Reply {
    Reply::err(format!("internal error: {e}"))
}

/// `SET` options.
#[derive(Debug, Default, PartialEq, Eq)]
struct SetOpts {
    ttl: Option<Duration>,
    nx: bool,
    xx: bool,
}

fn parse_set_opts(args: &[Bytes]) -> Result<SetOpts, Reply> {
    let mut o = SetOpts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match upper(a).as_str() {
            "NX" if !o.xx => o.nx = true,
            "XX" if !o.nx => o.xx = true,
            u @ ("EX" | "PX") if o.ttl.is_none() => {
                let n = it
                    .next()
                    .and_then(|v| int_arg(v))
                    .ok_or_else(|| Reply::err(NOT_INTEGER))?;
                if n <= 0 {
                    return Err(Reply::err("invalid expire time in 'set' command"));
                }
                let n = n.unsigned_abs();
                o.ttl = Some(if u == "EX" {
                    Duration::from_secs(n)
                } else {
                    Duration::from_millis(n)
                });
            }
            _ => return Err(Reply::err("syntax error")),
        }
    }
    Ok(o)
}

/// Pegasus keeps TTLs in whole seconds: a millisecond TTL rounds up.
fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

impl Proxy {
    /// A proxy for `table`.
    pub fn new(table: Table) -> Self {
        Self {
            table,
            limits: Limits::default(),
            maxclients: DEFAULT_MAXCLIENTS,
        }
    }

    /// Redis's `maxclients`: client connections held at once (at least 1). The process's
    /// descriptor limit lowers it further, keeping descriptors for the proxy's own
    /// sessions to the cluster, as Redis lowers it to fit its limit.
    pub fn with_maxclients(mut self, maxclients: u32) -> Self {
        self.maxclients = maxclients.max(1);
        self
    }

    /// Serves connections on `listener` until the task is aborted. A client over the cap
    /// gets Redis's `max number of clients reached` error and is closed at once.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        let fd = raise_fd_limit();
        let caps = NetworkConfig {
            max_connections: self.maxclients,
            ..NetworkConfig::default()
        }
        .caps(fd.now);
        tracing::info!(
            "redis proxy: descriptor limit {} (was {}); at most {} clients",
            fd.now,
            fd.before,
            caps.server
        );
        let gate = Gate::new(caps);
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => match gate.admit(peer.ip()) {
                        Ok(admission) => {
                            let _ = stream.set_nodelay(true);
                            let proxy = self.clone();
                            conns.spawn(async move {
                                proxy.connection(stream).await;
                                drop(admission);
                            });
                        }
                        Err(refusal) => {
                            // Best effort, never waiting: a fresh socket's send buffer
                            // takes the line, and the client reads it before the close.
                            let _ = stream.try_write(MAX_CLIENTS_REACHED);
                            drop(stream);
                            metrics::counter!("pegasus_redis_connections_refused_total", "reason" => refusal.label())
                                .increment(1);
                            REFUSED.warn(format_args!(
                                "redis proxy: refused a client from {peer}: {} reached ({} open)",
                                refusal.label(),
                                gate.open()
                            ));
                        }
                    },
                    Err(e) => {
                        tracing::warn!("redis proxy accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    }

    async fn connection(self: Arc<Self>, stream: TcpStream) {
        let mut framed = Framed::new(stream, RespCodec::new(self.limits));
        let mut extra = RespCodec::new(self.limits);
        while let Some(first) = framed.next().await {
            // Everything the client pipelined that is already here.
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match extra.decode(framed.read_buffer_mut()) {
                    Ok(Some(a)) => batch.push(Ok(a)),
                    Ok(None) => break,
                    Err(e) => {
                        batch.push(Err(e));
                        break;
                    }
                }
            }
            let mut wave: Vec<Vec<Bytes>> = Vec::new();
            for req in batch {
                let args = match req {
                    Ok(a) => a,
                    Err(e) => {
                        // Answer what came before, then say why and close (as Redis does).
                        if self
                            .run_wave(&mut framed, std::mem::take(&mut wave))
                            .await
                            .is_ok()
                        {
                            if let RespError::Io(_) = e {
                                return;
                            }
                            let _ = framed.send(Reply::err(e)).await;
                        }
                        return;
                    }
                };
                if args.first().is_some_and(|c| upper(c) == "QUIT") {
                    if self
                        .run_wave(&mut framed, std::mem::take(&mut wave))
                        .await
                        .is_ok()
                    {
                        let _ = framed.send(Reply::ok()).await;
                    }
                    return;
                }
                // Commands of one wave run concurrently: a command touching a key an
                // earlier one in the wave touches waits for the next wave, so one
                // connection's writes to a key apply in order.
                let clash = wave.iter().any(|w| {
                    w.get(1..)
                        .unwrap_or_default()
                        .iter()
                        .any(|k| args.get(1..).unwrap_or_default().contains(k))
                });
                if clash
                    && self
                        .run_wave(&mut framed, std::mem::take(&mut wave))
                        .await
                        .is_err()
                {
                    return;
                }
                wave.push(args);
            }
            if self.run_wave(&mut framed, wave).await.is_err() || framed.flush().await.is_err() {
                return;
            }
        }
    }

    /// Runs commands concurrently and queues their replies in request order.
    async fn run_wave(
        &self,
        framed: &mut Framed<TcpStream, RespCodec>,
        wave: Vec<Vec<Bytes>>,
    ) -> Result<(), RespError> {
        let replies = futures::future::join_all(wave.iter().map(|a| self.execute(a))).await;
        for r in replies {
            framed.feed(r).await?;
        }
        Ok(())
    }

    /// Runs one command.
    pub async fn execute(&self, args: &[Bytes]) -> Reply {
        let Some((cmd, rest)) = args.split_first() else {
            return Reply::err("empty command");
        };
        let name = upper(cmd);
        let t = &self.table;
        match (name.as_str(), rest) {
            ("PING", []) => Reply::Simple("PONG".into()),
            ("PING", [msg]) | ("ECHO", [msg]) => Reply::Bulk(Some(msg.clone())),
            ("SELECT", [db]) => match int_arg(db) {
                Some(0) => Reply::ok(),
                Some(_) => {
                    Reply::err("DB index is out of range (this proxy serves one table as db 0)")
                }
                None => Reply::err(NOT_INTEGER),
            },
            ("HELLO", _) => {
                Reply::Error("NOPROTO this proxy speaks RESP2 only; HELLO is not supported".into())
            }
            ("COMMAND", _) => Reply::err("COMMAND is not supported by pegasus redis-proxy"),
            ("CONFIG", [sub, rest @ ..]) if upper(sub) == "GET" && !rest.is_empty() => {
                // What redis-benchmark and tools ask about persistence, answered for a
                // store that is always durable.
                let mut out = Vec::new();
                for p in rest {
                    let v = match String::from_utf8_lossy(p).to_ascii_lowercase().as_str() {
                        "save" => Some(""),
                        "appendonly" => Some("no"),
                        "databases" => Some("1"),
                        "maxmemory" => Some("0"),
                        _ => None,
                    };
                    if let Some(v) = v {
                        out.push(Reply::Bulk(Some(p.clone())));
                        out.push(Reply::Bulk(Some(Bytes::copy_from_slice(v.as_bytes()))));
                    }
                }
                Reply::Array(out)
            }
            ("CONFIG", _) => Reply::err("only CONFIG GET is supported by pegasus redis-proxy"),
            ("GET", [key]) => match t.get(key, b"").await {
                Ok(v) => Reply::Bulk(v),
                Err(e) => internal(&e),
            },
            ("SET", [key, value, opts @ ..]) => match parse_set_opts(opts) {
                Ok(o) => self.set(key, value, o).await,
                Err(r) => r,
            },
            ("SETEX", [key, secs, value]) | ("PSETEX", [key, secs, value]) => {
                let ms = name == "PSETEX";
                match int_arg(secs) {
                    Some(n) if n > 0 => {
                        let d = if ms {
                            Duration::from_millis(n.unsigned_abs())
                        } else {
                            Duration::from_secs(n.unsigned_abs())
                        };
                        self.set(
                            key,
                            value,
                            SetOpts {
                                ttl: Some(d),
                                ..SetOpts::default()
                            },
                        )
                        .await
                    }
                    Some(_) => Reply::err(format!(
                        "invalid expire time in '{}' command",
                        name.to_ascii_lowercase()
                    )),
                    None => Reply::err(NOT_INTEGER),
                }
            }
            ("DEL", keys) if !keys.is_empty() => {
                let mut n = 0;
                for k in keys {
                    match self.delete(k).await {
                        Ok(true) => n += 1,
                        Ok(false) => {}
                        Err(e) => return internal(&e),
                    }
                }
                Reply::Int(n)
            }
            ("EXISTS", keys) if !keys.is_empty() => {
                let mut n = 0;
                for k in keys {
                    match t.exist(k, b"").await {
                        Ok(true) => n += 1,
                        Ok(false) => {}
                        Err(e) => return internal(&e),
                    }
                }
                Reply::Int(n)
            }
            ("TTL", [key]) | ("PTTL", [key]) => match t.ttl(key, b"").await {
                Ok(None) => Reply::Int(-2),
                Ok(Some(-1)) => Reply::Int(-1),
                Ok(Some(s)) => Reply::Int(if name == "PTTL" {
                    i64::from(s) * 1000
                } else {
                    i64::from(s)
                }),
                Err(e) => internal(&e),
            },
            ("EXPIRE", [key, secs]) => match int_arg(secs) {
                Some(n) => self.expire(key, n).await,
                None => Reply::err(NOT_INTEGER),
            },
            ("INCR", [key]) => self.incr(key, 1).await,
            ("DECR", [key]) => self.incr(key, -1).await,
            ("INCRBY", [key, by]) => match int_arg(by) {
                Some(n) => self.incr(key, n).await,
                None => Reply::err(NOT_INTEGER),
            },
            ("DECRBY", [key, by]) => match int_arg(by).and_then(i64::checked_neg) {
                Some(n) => self.incr(key, n).await,
                None => Reply::err(NOT_INTEGER),
            },
            ("MGET", keys) if !keys.is_empty() => {
                let pairs: Vec<(&[u8], &[u8])> =
                    keys.iter().map(|k| (k.as_ref(), &b""[..])).collect();
                match t.batch_get(&pairs).await {
                    Ok(values) => Reply::Array(values.into_iter().map(Reply::Bulk).collect()),
                    Err(e) => internal(&e),
                }
            }
            ("MSET", kvs) if !kvs.is_empty() && kvs.len().is_multiple_of(2) => {
                // Keys live in different partitions: the sets are not atomic together.
                let sets = kvs.chunks(2).filter_map(|c| match c {
                    [k, v] => Some(t.set(k, b"", v, None)),
                    _ => None,
                });
                match futures::future::join_all(sets)
                    .await
                    .into_iter()
                    .find_map(Result::err)
                {
                    None => Reply::ok(),
                    Some(e) => internal(&e),
                }
            }
            (
                "PING" | "ECHO" | "SELECT" | "GET" | "SET" | "SETEX" | "PSETEX" | "DEL" | "EXISTS"
                | "TTL" | "PTTL" | "EXPIRE" | "INCR" | "DECR" | "INCRBY" | "DECRBY" | "MGET"
                | "MSET",
                _,
            ) => wrong_args(&name),
            _ => Reply::err(format!(
                "unknown command '{}'",
                String::from_utf8_lossy(cmd)
            )),
        }
    }

    async fn set(&self, key: &[u8], value: &[u8], o: SetOpts) -> Reply {
        let ttl = o.ttl.map(whole_seconds);
        if !o.nx && !o.xx {
            return match self.table.set(key, b"", value, ttl).await {
                Ok(()) => Reply::ok(),
                Err(e) => internal(&e),
            };
        }
        let check = if o.nx {
            CasCheckType::ValueNotExist
        } else {
            CasCheckType::ValueExist
        };
        let opts = CheckAndSetOptions {
            ttl,
            ..CheckAndSetOptions::default()
        };
        match self
            .table
            .check_and_set(key, b"", check, b"", value, &opts)
            .await
        {
            Ok(r) if r.set_succeed => Reply::ok(),
            Ok(_) => Reply::Bulk(None),
            Err(e) => internal(&e),
        }
    }

    /// Deletes a key; whether it existed, decided atomically with the delete.
    async fn delete(&self, key: &[u8]) -> Result<bool, ClientError> {
        let r = self
            .table
            .check_and_mutate(
                key,
                b"",
                CasCheckType::ValueExist,
                b"",
                vec![Mutate {
                    operation: MutateOperation::Delete,
                    sort_key: Bytes::new(),
                    value: Bytes::new(),
                    set_expire_ts_seconds: 0,
                }],
                false,
            )
            .await?;
        Ok(r.set_succeed)
    }

    /// `EXPIRE`: rewrites the value with a TTL if it did not change meanwhile (compare and
    /// set on the value read), retrying a few times under contention.
    async fn expire(&self, key: &[u8], secs: i64) -> Reply {
        if secs <= 0 {
            return match self.delete(key).await {
                Ok(existed) => Reply::Int(i64::from(existed)),
                Err(e) => internal(&e),
            };
        }
        let ttl = Duration::from_secs(secs.unsigned_abs());
        for _ in 0..5 {
            let value = match self.table.get(key, b"").await {
                Ok(Some(v)) => v,
                Ok(None) => return Reply::Int(0),
                Err(e) => return internal(&e),
            };
            let opts = CheckAndSetOptions {
                ttl: Some(ttl),
                ..CheckAndSetOptions::default()
            };
            match self
                .table
                .check_and_set(
                    key,
                    b"",
                    CasCheckType::ValueBytesEqual,
                    &value,
                    &value,
                    &opts,
                )
                .await
            {
                Ok(r) if r.set_succeed => return Reply::Int(1),
                Ok(_) => continue,
                Err(e) => return internal(&e),
            }
        }
        Reply::err("EXPIRE lost too many races with concurrent writers; try again")
    }

    async fn incr(&self, key: &[u8], by: i64) -> Reply {
        match self.table.incr(key, b"", by, None).await {
            Ok(v) => Reply::Int(v),
            // Storage status 4 (invalid argument): the stored value is not an integer,
            // or the result would overflow.
            Err(ClientError::Storage(_)) => Reply::err(NOT_INTEGER),
            Err(e) => internal(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn set_options_parse_like_redis() {
        assert_eq!(
            parse_set_opts(&[b("ex"), b("10"), b("NX")]),
            Ok(SetOpts {
                ttl: Some(Duration::from_secs(10)),
                nx: true,
                xx: false
            })
        );
        assert_eq!(
            parse_set_opts(&[b("PX"), b("1500")]).map(|o| o.ttl),
            Ok(Some(Duration::from_millis(1500)))
        );
        assert!(parse_set_opts(&[b("NX"), b("XX")]).is_err());
        assert!(parse_set_opts(&[b("EX")]).is_err());
        assert!(parse_set_opts(&[b("EX"), b("0")]).is_err());
        assert!(parse_set_opts(&[b("EX"), b("1"), b("PX"), b("5")]).is_err());
        assert!(parse_set_opts(&[b("KEEPTTL")]).is_err());
    }

    #[test]
    fn millisecond_ttls_round_up_to_seconds() {
        assert_eq!(
            whole_seconds(Duration::from_millis(1500)),
            Duration::from_secs(2)
        );
        assert_eq!(
            whole_seconds(Duration::from_millis(2000)),
            Duration::from_secs(2)
        );
        assert_eq!(
            whole_seconds(Duration::from_millis(1)),
            Duration::from_secs(1)
        );
    }
}
