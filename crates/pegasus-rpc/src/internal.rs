//! Server-to-server calls. The payload is a serde value encoded with `postcard` (compact,
//! varint-based, a stable wire format) carried as field 1 of a thrift args / result struct,
//! inside ordinary THFT frames. Client-facing RPCs keep their exact thrift encodings; only
//! our own servers send these, so their encoding is ours to choose — compact, because
//! replication traffic (prepares carrying client values) goes through it.

use std::time::Duration;

use bytes::Bytes;
use pegasus_proto::frame::{read_message_begin, MessageBegin, RequestHeader, ResponseFrame};
use pegasus_proto::rpc::InternalPayload as Payload;
use pegasus_proto::thrift::Reader;
use pegasus_proto::{ErrorCode, ThriftStruct};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Result, RpcError};
use crate::session::Session;

/// Every internal RPC name starts with this, so a server can tell them from client RPCs.
pub const PREFIX: &str = "RPC_PEGASUS_RS_";

/// Encodes a value as an internal args / result struct.
pub fn encode<T: Serialize>(value: &T) -> Result<Bytes> {
    let data = postcard::to_stdvec(value).map_err(|e| RpcError::Decode(e.to_string()))?;
    Ok(Payload {
        data: Bytes::from(data),
    }
    .to_bytes())
}

fn decode_payload<T: DeserializeOwned>(data: &[u8]) -> Result<T> {
    postcard::from_bytes(data).map_err(|e| RpcError::Decode(e.to_string()))
}

/// An internal call as a server receives it.
#[derive(Debug, Clone)]
pub struct InternalCall {
    /// Name and seqid (echo them in the reply).
    pub message: MessageBegin,
    payload: Bytes,
}

impl InternalCall {
    /// The request value.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        decode_payload(&self.payload)
    }

    /// A reply carrying `value`.
    pub fn reply<T: Serialize>(&self, value: &T) -> ResponseFrame {
        match encode(value) {
            Ok(result) => ResponseFrame {
                error: ErrorCode::Ok,
                name: pegasus_proto::rpc::ack_name(&self.message.name),
                seqid: self.message.seqid,
                result: Some(result),
            },
            Err(_) => self.error(ErrorCode::InvalidData),
        }
    }

    /// A reply with a frame error and no body.
    pub fn error(&self, error: ErrorCode) -> ResponseFrame {
        ResponseFrame {
            error,
            name: pegasus_proto::rpc::ack_name(&self.message.name),
            seqid: self.message.seqid,
            result: None,
        }
    }
}

/// If `body` is an internal call, its name, seqid and payload; `Ok(None)` for any other
/// RPC (the caller parses it as a client RPC).
pub fn parse(body: &Bytes) -> std::result::Result<Option<InternalCall>, RpcError> {
    let mut r = Reader::new(body.clone());
    let message = read_message_begin(&mut r).map_err(|e| RpcError::Decode(e.to_string()))?;
    if !message.name.starts_with(PREFIX) {
        return Ok(None);
    }
    let payload = Payload::read(&mut r).map_err(|e| RpcError::Decode(e.to_string()))?;
    Ok(Some(InternalCall {
        message,
        payload: payload.data,
    }))
}

/// Calls `name` on the session's server with `request`, waiting at most `timeout`.
pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
    session: &Session,
    name: &'static str,
    request: &Req,
    timeout: Duration,
) -> Result<Resp> {
    let args = encode(request)?;
    let reply = tokio::time::timeout(timeout, session.call(RequestHeader::default(), name, args))
        .await
        .map_err(|_| RpcError::Timeout)??;
    if !reply.error.is_ok() {
        return Err(RpcError::Remote(reply.error));
    }
    let payload: Payload = reply
        .decode_result()
        .map_err(|e| RpcError::Decode(e.to_string()))?;
    decode_payload(&payload.data)
}

/// Sends a one-way internal message (no reply).
pub async fn send<Req: Serialize>(
    session: &Session,
    name: &'static str,
    request: &Req,
) -> Result<()> {
    let args = encode(request)?;
    session
        .send_one_way(RequestHeader::default(), name, args)
        .await
}
