//! The server loop over real TCP on 127.0.0.1: internal calls round-trip, bad frames close
//! only their own connection.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pegasus_proto::frame::{RequestFrame, ResponseFrame};
use pegasus_proto::ErrorCode;
use pegasus_rpc::internal::{self, InternalCall};
use pegasus_rpc::{serve, Handler, RpcError, ServerOptions, Session};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Add {
    a: i64,
    b: i64,
}

struct Adder;

impl Handler for Adder {
    async fn handle(
        self: Arc<Self>,
        _peer: SocketAddr,
        frame: RequestFrame,
    ) -> Option<ResponseFrame> {
        let call: InternalCall = internal::parse(&frame.body).ok()??;
        match call.message.name.as_str() {
            "RPC_PEGASUS_RS_ADD" => match call.decode::<Add>() {
                Ok(add) => Some(call.reply(&(add.a + add.b))),
                Err(_) => Some(call.error(ErrorCode::InvalidParameters)),
            },
            "RPC_PEGASUS_RS_SLOW" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Some(call.reply(&0))
            }
            _ => Some(call.error(ErrorCode::HandlerNotFound)),
        }
    }
}

async fn start() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, Arc::new(Adder), ServerOptions::default()));
    addr
}

#[tokio::test]
async fn internal_call_round_trips_a_serde_payload() {
    let addr = start().await;
    let s = Session::new(addr, 1 << 20);
    let sum: i64 = internal::call(
        &s,
        "RPC_PEGASUS_RS_ADD",
        &Add { a: 40, b: 2 },
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(sum, 42);
    let err = internal::call::<_, i64>(&s, "RPC_PEGASUS_RS_NOPE", &1, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err, RpcError::Remote(ErrorCode::HandlerNotFound));
}

#[tokio::test]
async fn replies_come_back_out_of_order_on_one_connection() {
    let addr = start().await;
    let s = Session::new(addr, 1 << 20);
    let slow = internal::call::<_, i64>(&s, "RPC_PEGASUS_RS_SLOW", &0, Duration::from_millis(300));
    let fast = internal::call::<_, i64>(
        &s,
        "RPC_PEGASUS_RS_ADD",
        &Add { a: 1, b: 2 },
        Duration::from_secs(5),
    );
    let (slow, fast) = tokio::join!(slow, fast);
    assert_eq!(slow, Err(RpcError::Timeout));
    assert_eq!(fast, Ok(3));
}

async fn closed_by_server(mut c: TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn garbage_and_oversize_frames_close_only_their_connection() {
    let addr = start().await;
    let s = Session::new(addr, 1 << 20);

    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage
        .write_all(b"\x00\x01garbage that is not THFT")
        .await
        .unwrap();
    assert!(
        closed_by_server(garbage).await,
        "garbage must close the connection"
    );

    // A v0 header announcing a 4 GiB body: refused from the header alone.
    let mut huge = TcpStream::connect(addr).await.unwrap();
    let mut hdr = Vec::new();
    hdr.extend_from_slice(b"THFT");
    hdr.extend_from_slice(&0u32.to_be_bytes());
    hdr.extend_from_slice(&48u32.to_be_bytes());
    hdr.extend_from_slice(&0u32.to_be_bytes());
    hdr.extend_from_slice(&u32::MAX.to_be_bytes());
    hdr.resize(48, 0);
    huge.write_all(&hdr).await.unwrap();
    assert!(
        closed_by_server(huge).await,
        "a 4 GiB frame must close the connection"
    );

    let sum: i64 = internal::call(
        &s,
        "RPC_PEGASUS_RS_ADD",
        &Add { a: 2, b: 3 },
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(sum, 5, "the server keeps serving other connections");
}
