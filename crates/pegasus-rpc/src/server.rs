//! The server loop: accept connections, decode THFT frames, run the handler for each call
//! (many in flight per connection, bounded), and write replies as they finish.
//!
//! A frame that does not decode (bad magic, bad header, a length above the limit — checked
//! before any allocation) closes that connection at once; other connections are unaffected.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use pegasus_proto::frame::{RequestFrame, ResponseFrame};
use pegasus_proto::{ServerCodec, DEFAULT_MAX_FRAME};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::Framed;

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
    /// Calls in flight per connection; the connection stops reading while at the limit.
    pub max_inflight_per_connection: usize,
    /// Serves connections that start with an HTTP request line.
    pub http: Option<Arc<dyn crate::http::HttpService>>,
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("max_frame", &self.max_frame)
            .field(
                "max_inflight_per_connection",
                &self.max_inflight_per_connection,
            )
            .field("http", &self.http.is_some())
            .finish()
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_frame: DEFAULT_MAX_FRAME,
            max_inflight_per_connection: 1024,
            http: None,
        }
    }
}

/// Accepts connections on `listener` until the task running this is aborted; aborting it
/// also closes every connection it accepted.
pub async fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>, opts: ServerOptions) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(dispatch(stream, peer, handler.clone(), opts.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// HTTP or THFT, by the first bytes.
async fn dispatch<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<H>,
    opts: ServerOptions,
) {
    if let Some(http) = opts.http.clone() {
        let mut first = [0u8; 4];
        let peeked = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                match stream.peek(&mut first).await {
                    Ok(n) if n >= first.len() => return true,
                    Ok(0) | Err(_) => return false,
                    Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                }
            }
        })
        .await
        .unwrap_or(false);
        if peeked && crate::http::is_http(&first) {
            crate::http::serve_connection(stream, http).await;
            return;
        }
    }
    connection(stream, peer, handler, opts).await;
}

/// Most replies written with one flush.
const WRITE_BATCH: usize = 64;

async fn connection<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<H>,
    opts: ServerOptions,
) {
    let framed = Framed::new(stream, ServerCodec::new(opts.max_frame));
    let (mut sink, mut frames) = framed.split();
    let limit = opts.max_inflight_per_connection.max(1);
    let (tx, mut rx) = mpsc::channel::<ResponseFrame>(limit);
    let writer = tokio::spawn(async move {
        while let Some(reply) = rx.recv().await {
            // Replies already finished go out with this one, in one flush.
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
            if let Err(e) = result {
                tracing::debug!("{peer}: write failed: {e}");
                break;
            }
        }
    });
    let inflight = Arc::new(Semaphore::new(limit));
    let mut malformed = false;
    while let Some(item) = frames.next().await {
        match item {
            Ok(frame) => {
                let Ok(permit) = inflight.clone().acquire_owned().await else {
                    break;
                };
                let handler = handler.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Some(reply) = handler.handle(peer, frame).await {
                        let _ = tx.send(reply).await;
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::debug!("{peer}: closing connection: {e}");
                malformed = true;
                break;
            }
        }
    }
    drop(tx);
    if malformed {
        writer.abort();
    } else {
        // The peer closed its side: finish the replies still running, then close.
        let _ = writer.await;
    }
}
