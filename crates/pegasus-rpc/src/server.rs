//! The server loop: admit connections, decode THFT frames, run the handler for each call
//! (many in flight per connection, bounded), and write replies as they finish.
//!
//! A frame that does not decode (bad magic, bad header, a length above the limit — checked
//! before any allocation) closes that connection at once; other connections are unaffected.
//! A connection that sends no complete first header in time, stalls inside a frame, or
//! takes no replies is closed too; one idle between requests stays (see [`NetworkConfig`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use bytes::BytesMut;
use futures::SinkExt;
use pegasus_proto::frame::{RequestFrame, ResponseFrame};
use pegasus_proto::{ServerCodec, DEFAULT_MAX_FRAME};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, FramedWrite};

use crate::limits::{raise_fd_limit, Gate, NetworkConfig, Throttled};

/// Serves calls. `None` means no reply (one-way calls).
pub trait Handler: Send + Sync + 'static {
    /// Handles one call from `peer`.
    fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        frame: RequestFrame,
    ) -> impl Future<Output = Option<ResponseFrame>> + Send;
}

/// Server limits, and the HTTP service sharing the port.
#[derive(Clone)]
pub struct ServerOptions {
    /// Largest frame accepted; a larger header closes the connection before allocation.
    pub max_frame: usize,
    /// `[network]`: connection caps, timeouts and the request-byte budget.
    pub network: NetworkConfig,
    /// Serves connections that start with an HTTP request line.
    pub http: Option<Arc<dyn crate::http::HttpService>>,
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("max_frame", &self.max_frame)
            .field("network", &self.network)
            .field("http", &self.http.is_some())
            .finish()
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_frame: DEFAULT_MAX_FRAME,
            network: NetworkConfig::default(),
            http: None,
        }
    }
}

/// What every connection of one server shares.
struct Port<H> {
    handler: Arc<H>,
    opts: ServerOptions,
    /// Bytes of requests received and not yet answered.
    budget: Arc<Semaphore>,
}

static ACCEPT_FAILED: Throttled = Throttled::new(10_000);
static REFUSED: Throttled = Throttled::new(10_000);
static REAPED: Throttled = Throttled::new(10_000);

/// The accept queue a server port asks for (the kernel caps it at `net.core.somaxconn`).
/// Under a flood the server refuses what it cannot admit at once; a short queue would
/// instead leave new clients in SYN retries (1 s, 3 s, ...) that look like a hang.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a server port (`SO_REUSEADDR`, like tokio's `bind`) with a [`LISTEN_BACKLOG`]
/// accept queue instead of the standard library's 128.
pub async fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accepts connections on `listener` until the task running this is aborted; aborting it
/// also closes every connection it accepted.
///
/// Each connection is admitted against the caps of [`NetworkConfig`] (over a cap it is
/// closed at once, counted and logged at most every 10 s); the process's descriptor limit
/// is raised to its hard limit first.
pub async fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>, opts: ServerOptions) {
    let fd = raise_fd_limit();
    let caps = opts.network.caps(fd.now);
    let port = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(
        "{port}: descriptor limit {} (was {}); at most {} connections here, {} in the process, {} descriptors kept for the server's own files",
        fd.now,
        fd.before,
        caps.server,
        caps.process,
        caps.reserve
    );
    let gate = Gate::new(caps);
    // Never less than one frame, or a frame of the maximum size could never be taken.
    let budget_bytes = usize::try_from(opts.network.max_inflight_bytes)
        .unwrap_or(usize::MAX)
        .max(opts.max_frame)
        .min(Semaphore::MAX_PERMITS);
    let shared = Arc::new(Port {
        handler,
        opts,
        budget: Arc::new(Semaphore::new(budget_bytes)),
    });
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match gate.admit(peer.ip()) {
                    Ok(admission) => {
                        let _ = stream.set_nodelay(true);
                        metrics::gauge!("pegasus_rpc_connections").increment(1.0);
                        let shared = shared.clone();
                        connections.spawn(async move {
                            dispatch(stream, peer, shared).await;
                            drop(admission);
                            metrics::gauge!("pegasus_rpc_connections").decrement(1.0);
                        });
                    }
                    Err(refusal) => {
                        // Closed at once: the peer sees a reset, never a hang.
                        drop(stream);
                        metrics::counter!("pegasus_rpc_connections_refused_total", "reason" => refusal.label())
                            .increment(1);
                        REFUSED.warn(format_args!(
                            "{port}: refused a connection from {peer}: {} reached ({} open here)",
                            refusal.label(),
                            gate.open()
                        ));
                    }
                },
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning; the
                    // peer waits in the backlog.
                    metrics::counter!("pegasus_rpc_accept_errors_total").increment(1);
                    ACCEPT_FAILED.warn(format_args!("{port}: accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Why a connection was closed by the server for being too slow.
#[derive(Debug, Clone, Copy)]
enum Slow {
    /// No complete first frame header within `header_timeout_ms` of connecting.
    Header,
    /// An unfinished frame got no byte for `stall_timeout_ms`.
    Stall,
    /// A frame waited `stall_timeout_ms` for room in the request-byte budget.
    Budget,
    /// The peer took no reply bytes for `stall_timeout_ms`.
    Write,
}

impl Slow {
    fn label(self) -> &'static str {
        match self {
            Self::Header => "header_timeout",
            Self::Stall => "stall_timeout",
            Self::Budget => "inflight_bytes",
            Self::Write => "write_stall",
        }
    }
}

fn reaped(peer: SocketAddr, why: Slow) {
    metrics::counter!("pegasus_rpc_connections_reaped_total", "reason" => why.label()).increment(1);
    REAPED.warn(format_args!(
        "closed the connection from {peer}: {}",
        why.label()
    ));
}

/// HTTP or THFT, by the first bytes.
async fn dispatch<H: Handler>(mut stream: TcpStream, peer: SocketAddr, port: Arc<Port<H>>) {
    let net = &port.opts.network;
    let header_deadline = Instant::now() + Duration::from_millis(net.header_timeout_ms);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    // The first bytes say which protocol this is; both must come within the header timeout.
    while buf.len() < 4 {
        match tokio::time::timeout_at(header_deadline, stream.read_buf(&mut buf)).await {
            Err(_) => return reaped(peer, Slow::Header),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
    }
    if let Some(http) = port.opts.http.clone() {
        if crate::http::is_http(&buf) {
            let write_timeout = Duration::from_millis(net.stall_timeout_ms);
            crate::http::serve_connection(
                stream,
                buf.to_vec(),
                header_deadline,
                write_timeout,
                http,
            )
            .await;
            return;
        }
    }
    connection(stream, buf, header_deadline, peer, port).await;
}

/// Most replies written with one flush.
const WRITE_BATCH: usize = 64;
/// Bytes read at a time while no frame is being received; a connection between frames
/// holds about this much.
const READ_CHUNK: usize = 4096;
/// A connection's read or write buffer larger than this is released once empty.
const KEEP_BUFFER: usize = 64 << 10;

async fn connection<H: Handler>(
    stream: TcpStream,
    mut buf: BytesMut,
    header_deadline: Instant,
    peer: SocketAddr,
    port: Arc<Port<H>>,
) {
    let net = port.opts.network.clone();
    let stall = Duration::from_millis(net.stall_timeout_ms);
    let (mut rd, wr) = stream.into_split();
    let mut sink = FramedWrite::new(wr, ServerCodec::new(port.opts.max_frame));
    let limit = (net.max_inflight_per_connection as usize).max(1);
    let (tx, mut rx) = mpsc::channel::<ResponseFrame>(limit);
    let writer = tokio::spawn(async move {
        while let Some(reply) = rx.recv().await {
            // Replies already finished go out with this one, in one flush; a peer that
            // takes none of them for the stall timeout is dropped.
            let written = tokio::time::timeout(stall, async {
                let mut result = sink.feed(reply).await;
                let mut queued = 1;
                while result.is_ok() && queued < WRITE_BATCH {
                    let Ok(more) = rx.try_recv() else { break };
                    result = sink.feed(more).await;
                    queued += 1;
                }
                if result.is_ok() {
                    result = sink.flush().await;
                }
                // A large reply (a scan, a multi_get) must not stay allocated for as long
                // as the connection lives.
                if sink.write_buffer().capacity() > KEEP_BUFFER {
                    *sink.write_buffer_mut() = BytesMut::new();
                }
                result
            })
            .await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!("{peer}: write failed: {e}");
                    break;
                }
                Err(_) => {
                    reaped(peer, Slow::Write);
                    break;
                }
            }
        }
    });
    let codec = ServerCodec::new(port.opts.max_frame);
    let inflight = Arc::new(Semaphore::new(limit));
    let mut framed_any = false;
    let mut last_progress = Instant::now();
    let mut bytes: Option<OwnedSemaphorePermit> = None;
    let mut malformed = false;
    loop {
        let deadline = match codec.frame_len(&buf) {
            Err(e) => {
                tracing::debug!("{peer}: closing connection: {e}");
                malformed = true;
                break;
            }
            Ok(Some(total)) => {
                if bytes.is_none() {
                    // Room for the whole frame before reading (and allocating) its body.
                    let want = u32::try_from(total).unwrap_or(u32::MAX);
                    let acquired =
                        tokio::time::timeout(stall, port.budget.clone().acquire_many_owned(want))
                            .await;
                    match acquired {
                        Ok(Ok(permit)) => {
                            metrics::gauge!("pegasus_rpc_inflight_request_bytes")
                                .increment(f64::from(want));
                            bytes = Some(permit);
                        }
                        Ok(Err(_)) => break,
                        Err(_) => {
                            reaped(peer, Slow::Budget);
                            break;
                        }
                    }
                }
                if buf.len() >= total {
                    let frame = match Decoder::decode(&mut codec.clone(), &mut buf) {
                        Ok(Some(frame)) => frame,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::debug!("{peer}: closing connection: {e}");
                            malformed = true;
                            break;
                        }
                    };
                    framed_any = true;
                    let Ok(permit) = inflight.clone().acquire_owned().await else {
                        break;
                    };
                    let held = bytes.take();
                    let handler = port.handler.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        if let Some(reply) = handler.handle(peer, frame).await {
                            let _ = tx.send(reply).await;
                        }
                        if let Some(held) = held {
                            metrics::gauge!("pegasus_rpc_inflight_request_bytes")
                                .decrement(held.num_permits() as f64);
                        }
                        drop(permit);
                    });
                    continue;
                }
                buf.reserve(total - buf.len());
                Some(if framed_any {
                    last_progress + stall
                } else {
                    // The header came in time; the first body must keep arriving.
                    (last_progress + stall).max(header_deadline)
                })
            }
            Ok(None) if !framed_any => Some(header_deadline),
            Ok(None) if buf.is_empty() => None,
            Ok(None) => Some(last_progress + stall),
        };
        if buf.is_empty() && buf.capacity() > KEEP_BUFFER {
            // Between frames after a large one: give its memory back.
            buf = BytesMut::new();
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(READ_CHUNK);
        }
        let read = async {
            tokio::select! {
                r = rd.read_buf(&mut buf) => Some(r),
                // The writer gave up on the peer: stop reading too.
                () = tx.closed() => None,
            }
        };
        let outcome = match deadline {
            Some(d) => match tokio::time::timeout_at(d, read).await {
                Ok(r) => r,
                Err(_) => {
                    reaped(
                        peer,
                        if framed_any || bytes.is_some() {
                            Slow::Stall
                        } else {
                            Slow::Header
                        },
                    );
                    break;
                }
            },
            None => read.await,
        };
        match outcome {
            Some(Ok(0)) | Some(Err(_)) | None => break,
            Some(Ok(_)) => last_progress = Instant::now(),
        }
    }
    if let Some(held) = bytes.take() {
        metrics::gauge!("pegasus_rpc_inflight_request_bytes").decrement(held.num_permits() as f64);
    }
    drop(tx);
    if malformed {
        writer.abort();
    } else {
        // The peer closed its side: finish the replies still running, then close.
        let _ = writer.await;
    }
}
