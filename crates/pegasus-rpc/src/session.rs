//! One pipelined client connection to one server: many requests in flight, replies matched by
//! seqid. A failed connection fails every pending call with a transport error; the next call
//! reconnects.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pegasus_proto::frame::{IncomingResponse, OutgoingRequest, RequestHeader};
use pegasus_proto::ClientCodec;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_util::codec::Framed;

use crate::error::{Result, RpcError};

type Reply = oneshot::Sender<Result<IncomingResponse>>;

/// How long a connect may take before the call fails as not sent. A partitioned peer
/// drops SYNs silently; without a bound the kernel retries for about two minutes while
/// every caller of the session waits.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

static OUTGOING_IP: OnceLock<IpAddr> = OnceLock::new();

/// Binds every outgoing connection of this process to `ip` (a server's own listen address),
/// so peers, and packet filters, see connections coming from that node. Used when several
/// nodes share one host on distinct loopback addresses (`pegasus onebox
/// --ip-per-instance`); the first call wins.
pub fn bind_outgoing_to(ip: IpAddr) {
    let _ = OUTGOING_IP.set(ip);
}

async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let attempt = async {
        match OUTGOING_IP.get() {
            None => TcpStream::connect(addr).await,
            Some(ip) => {
                let socket = if ip.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket.bind(SocketAddr::new(*ip, 0))?;
                socket.connect(addr).await
            }
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

struct Call {
    request: OutgoingRequest,
    reply: Option<Reply>,
    /// Not written before this (an injected network delay).
    due: Option<tokio::time::Instant>,
}

/// Injected send delay: base ms in the high half, jitter ms in the low half; 0 is off.
static SEND_DELAY: AtomicU64 = AtomicU64::new(0);
static DELAY_SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);

/// Test-only fault: every request this process sends afterwards waits `base_ms` ±
/// `jitter_ms` before it is written (order on a connection is kept, as on a slow link;
/// `0, 0` turns it off). Armed by the replica server's fail-point endpoint for `pegasus
/// chaos` (netem is not available, so the delay is injected at the sender).
pub fn set_send_delay(base_ms: u32, jitter_ms: u32) {
    SEND_DELAY.store(
        (u64::from(base_ms) << 32) | u64::from(jitter_ms),
        Ordering::Release,
    );
}

fn send_delay() -> Option<Duration> {
    let packed = SEND_DELAY.load(Ordering::Relaxed);
    if packed == 0 {
        return None;
    }
    let (base, jitter) = (packed >> 32, packed & 0xFFFF_FFFF);
    // xorshift: cheap, and quality does not matter for jitter.
    let mut x = DELAY_SEED.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    DELAY_SEED.store(x, Ordering::Relaxed);
    Some(jittered(base, jitter, x))
}

/// `base` ± `jitter` ms, picked by the random `x`.
fn jittered(base: u64, jitter: u64, x: u64) -> Duration {
    let offset = x % (2 * jitter + 1);
    Duration::from_millis((base + offset).saturating_sub(jitter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_delay_stays_within_base_plus_minus_jitter() {
        let mut seen = std::collections::BTreeSet::new();
        for x in 0..1000u64 {
            let d = jittered(75, 50, x.wrapping_mul(0x9E37_79B9));
            assert!((25..=125).contains(&d.as_millis()), "{d:?}");
            seen.insert(d.as_millis());
        }
        assert!(seen.len() > 50, "spread: {}", seen.len());
        assert_eq!(jittered(10, 0, 12345), Duration::from_millis(10));
        assert_eq!(jittered(5, 20, 0), Duration::ZERO);
    }
}

/// A handle to a connection task.
#[derive(Debug, Clone)]
pub struct Session {
    addr: SocketAddr,
    seq: Arc<AtomicI32>,
    tx: Arc<Mutex<Option<mpsc::Sender<Call>>>>,
    max_frame: usize,
}

impl Session {
    /// A session to `addr` (connects on first use) refusing replies above `max_frame`.
    pub fn new(addr: SocketAddr, max_frame: usize) -> Self {
        Self {
            addr,
            seq: Arc::new(AtomicI32::new(1)),
            tx: Arc::new(Mutex::new(None)),
            max_frame,
        }
    }

    async fn sender(&self) -> Result<mpsc::Sender<Call>> {
        let mut guard = self.tx.lock().await;
        if let Some(tx) = guard.as_ref().filter(|tx| !tx.is_closed()) {
            return Ok(tx.clone());
        }
        let stream = connect(self.addr)
            .await
            .map_err(|e| RpcError::NotSent(format!("connect {}: {e}", self.addr)))?;
        let _ = stream.set_nodelay(true);
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(run_connection(
            Framed::new(stream, ClientCodec::new(self.max_frame)),
            rx,
        ));
        *guard = Some(tx.clone());
        Ok(tx)
    }

    /// Queues a request on the connection (connecting first if needed).
    async fn submit(
        &self,
        header: RequestHeader,
        name: &'static str,
        args: bytes::Bytes,
        reply: Option<Reply>,
    ) -> Result<()> {
        let seqid = self.seq.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        let call = Call {
            request: OutgoingRequest {
                header,
                name,
                seqid,
                args,
            },
            reply,
            due: send_delay().map(|d| tokio::time::Instant::now() + d),
        };
        self.sender()
            .await?
            .send(call)
            .await
            .map_err(|_| RpcError::NotSent(format!("connection to {} closed", self.addr)))
    }

    fn closed(&self) -> RpcError {
        RpcError::Transport(format!("connection to {} closed", self.addr))
    }

    /// The server this session talks to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends a call and waits for its reply (no timeout here: the caller bounds it).
    pub async fn call(
        &self,
        header: RequestHeader,
        name: &'static str,
        args: bytes::Bytes,
    ) -> Result<IncomingResponse> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.submit(header, name, args, Some(reply_tx)).await?;
        reply_rx.await.map_err(|_| self.closed())?
    }

    /// Sends a one-way call (no reply expected).
    pub async fn send_one_way(
        &self,
        header: RequestHeader,
        name: &'static str,
        args: bytes::Bytes,
    ) -> Result<()> {
        self.submit(header, name, args, None).await
    }
}

/// One session per server address, created on first use and shared by every caller.
#[derive(Debug, Default)]
pub struct SessionPool {
    max_frame: usize,
    sessions: std::sync::Mutex<HashMap<SocketAddr, Session>>,
}

impl SessionPool {
    /// A pool whose sessions refuse replies above `max_frame`.
    pub fn new(max_frame: usize) -> Self {
        Self {
            max_frame,
            sessions: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The session to `addr`.
    pub fn get(&self, addr: SocketAddr) -> Session {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.entry(addr)
            .or_insert_with(|| Session::new(addr, self.max_frame))
            .clone()
    }
}

/// Most requests written with one flush.
const WRITE_BATCH: usize = 64;

async fn run_connection(mut framed: Framed<TcpStream, ClientCodec>, mut rx: mpsc::Receiver<Call>) {
    let mut pending: HashMap<i32, Reply> = HashMap::new();
    let failure = loop {
        tokio::select! {
            call = rx.recv() => {
                let Some(call) = call else { break None };
                // Queue every call already waiting, then write them with one flush: under
                // load many requests share a write system call.
                let mut next = Some(call);
                let mut queued = 0;
                let mut failed = None;
                while let Some(call) = next.take() {
                    if let Some(due) = call.due.filter(|d| *d > tokio::time::Instant::now()) {
                        // An injected delay: what is queued goes out first.
                        if queued > 0 {
                            if let Err(e) = framed.flush().await {
                                failed = Some(e.to_string());
                                break;
                            }
                        }
                        tokio::time::sleep_until(due).await;
                    }
                    let seqid = call.request.seqid;
                    if let Some(r) = call.reply {
                        pending.insert(seqid, r);
                    }
                    if let Err(e) = framed.feed(call.request).await {
                        failed = Some(e.to_string());
                        break;
                    }
                    queued += 1;
                    if queued < WRITE_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                if failed.is_none() {
                    if let Err(e) = framed.flush().await {
                        failed = Some(e.to_string());
                    }
                }
                if let Some(e) = failed {
                    break Some(e);
                }
            }
            reply = framed.next() => {
                match reply {
                    Some(Ok(resp)) => {
                        if let Some(r) = pending.remove(&resp.message.seqid) {
                            let _ = r.send(Ok(resp));
                        }
                    }
                    Some(Err(e)) => break Some(e.to_string()),
                    None => break Some("connection closed by server".into()),
                }
            }
        }
    };
    let reason = failure.unwrap_or_else(|| "client dropped".into());
    for (_, r) in pending.drain() {
        let _ = r.send(Err(RpcError::Transport(reason.clone())));
    }
}
