//! THFT framing (sans-IO `tokio_util` codecs).
//!
//! Requests (client → server), all integers big-endian:
//! * **v0** (Go, Python, Node): 48-byte header — `"THFT"`, `u32 version=0`, `u32 hdr_len=48`,
//!   `u32 hdr_crc`, `u32 body_len`, `u32 body_crc`, `i32 app_id`, `i32 partition_index`,
//!   `i32 client_timeout_ms`, `i32 thread_hash`, `u64 partition_hash` — then the body.
//! * **v1** (Java): `"THFT"`, `u32 version=1`, `u32 meta_len`, `u32 body_len`, a thrift
//!   `request_meta` struct of `meta_len` bytes, then the body.
//!
//! The body is a thrift message: message begin (strict or not), the args struct.
//!
//! Responses (server → client): `i32 total_len` (counting itself), the error name as a thrift
//! string, then a strict message begin (`<name>_ACK`, the request's seqid) and, only when the
//! error is `ERR_OK`, the result struct `{0: response}`.
//!
//! Every length is checked against the configured maximum frame before any buffer grows.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::codec::{BoolC, FieldCodec, ThriftStruct, I32C, I64C};
use crate::error::ErrorCode;
use crate::thrift::{DecodeError, Reader, Writer};
use crate::thrift_struct;

/// The 4 bytes that open every THFT request.
pub const THFT_MAGIC: [u8; 4] = *b"THFT";
/// Size of a v0 request header.
pub const V0_HEADER_LEN: usize = 48;
/// Size of the fixed part of a v1 request header.
pub const V1_HEADER_LEN: usize = 16;
/// Default largest frame accepted (header + body), bytes.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;
/// Largest v1 meta struct accepted.
const MAX_V1_META: usize = 4096;

/// Thrift message types.
pub mod message_type {
    /// A call.
    pub const CALL: u8 = 1;
    /// A reply.
    pub const REPLY: u8 = 2;
    /// An exception.
    pub const EXCEPTION: u8 = 3;
    /// A one-way call.
    pub const ONEWAY: u8 = 4;
}

const VERSION_1: u32 = 0x8001_0000;
const VERSION_MASK: u32 = 0xffff_0000;

/// A framing failure. Any of these ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The connection speaks HTTP (`GET ` / `POST`), not THFT.
    #[error("HTTP request on the thrift port")]
    Http,
    /// The first bytes are not a known protocol.
    #[error("unknown protocol magic {0:02x?}")]
    BadMagic([u8; 4]),
    /// A header version this server does not speak.
    #[error("unsupported THFT header version {0}")]
    UnsupportedVersion(u32),
    /// A v0 header whose declared length is not 48.
    #[error("v0 header length {0}, expected 48")]
    BadHeaderLength(u32),
    /// A frame larger than the configured maximum.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Declared size.
        len: u64,
        /// Limit.
        max: usize,
    },
    /// Bytes inside a frame do not decode.
    #[error("malformed frame: {0}")]
    Decode(#[from] DecodeError),
}

/// What a request header carries besides the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestHeader {
    /// 0 or 1.
    pub version: u32,
    /// Target table (0 or -1 for meta calls).
    pub app_id: i32,
    /// Target partition.
    pub partition_index: i32,
    /// The client's timeout, ms.
    pub client_timeout_ms: i32,
    /// The key's hash (unordered scanners send the partition index; some clients send 0).
    pub partition_hash: u64,
    /// A backup request (may be served by a secondary).
    pub is_backup_request: bool,
}

/// v1's `request_meta` struct.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RequestMetaV1 {
    app_id: i32,
    partition_index: i32,
    client_timeout: i32,
    client_partition_hash: i64,
    is_backup_request: bool,
}
thrift_struct!(RequestMetaV1 {
    1: app_id: I32C, 2: partition_index: I32C, 3: client_timeout: I32C,
    4: client_partition_hash: I64C, 5: is_backup_request: BoolC,
});

/// A received request: its header and the thrift message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFrame {
    /// Routing header.
    pub header: RequestHeader,
    /// The thrift message (message begin + args).
    pub body: Bytes,
}

/// A thrift message begin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBegin {
    /// RPC name, e.g. `RPC_RRDB_RRDB_GET`.
    pub name: String,
    /// [`message_type`].
    pub kind: u8,
    /// Sequence id, echoed in the reply.
    pub seqid: i32,
}

/// Reads a message begin, strict (`0x8001000t`) or not (name first, then a type byte).
pub fn read_message_begin(r: &mut Reader) -> Result<MessageBegin, DecodeError> {
    let first = r.read_i32()?;
    if first < 0 {
        let v = first as u32;
        if v & VERSION_MASK != VERSION_1 {
            return Err(DecodeError::Malformed(format!(
                "bad thrift version {v:#010x}"
            )));
        }
        let kind = (v & 0xff) as u8;
        let name = r.read_string()?;
        let seqid = r.read_i32()?;
        Ok(MessageBegin { name, kind, seqid })
    } else {
        // Non-strict: `first` is the name's length.
        let len = first as usize;
        if len > r.remaining() {
            return Err(DecodeError::TooLong {
                what: "message name",
                len,
                left: r.remaining(),
            });
        }
        let mut name = Vec::with_capacity(len);
        for _ in 0..len {
            name.push(r.read_u8()?);
        }
        let name = String::from_utf8(name).map_err(|_| DecodeError::InvalidUtf8("message name"))?;
        let kind = r.read_u8()?;
        let seqid = r.read_i32()?;
        Ok(MessageBegin { name, kind, seqid })
    }
}

/// Writes a strict message begin.
pub fn write_message_begin(w: &mut Writer, name: &str, kind: u8, seqid: i32) {
    w.write_i32((VERSION_1 | u32::from(kind)) as i32);
    w.write_binary(name.as_bytes());
    w.write_i32(seqid);
}

/// A reply to send: error name, message name (with `_ACK`), seqid, and the encoded response
/// struct when the error is `ERR_OK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseFrame {
    /// The frame error.
    pub error: ErrorCode,
    /// The reply's message name (`<request name>_ACK`).
    pub name: String,
    /// The request's seqid.
    pub seqid: i32,
    /// The encoded response struct (fields + STOP), present only with `ERR_OK`.
    pub result: Option<Bytes>,
}

fn check_len(len: u64, max: usize) -> Result<usize, FrameError> {
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(FrameError::TooLarge { len, max }),
    }
}

fn peek_u32(src: &[u8], at: usize) -> Option<u32> {
    src.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
}

/// Server side: decodes requests, encodes responses.
#[derive(Debug, Clone, Copy)]
pub struct ServerCodec {
    max_frame: usize,
}

impl ServerCodec {
    /// A codec refusing frames above `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame }
    }
}

impl ServerCodec {
    /// The size of the frame `src` starts with, once its header is complete (`None` before):
    /// what a server must hold to receive it, known before the body arrives. Errors are the
    /// ones [`Decoder::decode`] would return for the same bytes.
    pub fn frame_len(&self, src: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(magic) = src.get(..4) else {
            return Ok(None);
        };
        if magic != THFT_MAGIC {
            if magic == b"GET " || magic == b"POST" {
                return Err(FrameError::Http);
            }
            let mut m = [0u8; 4];
            m.copy_from_slice(magic);
            return Err(FrameError::BadMagic(m));
        }
        let Some(version) = peek_u32(src, 4) else {
            return Ok(None);
        };
        match version {
            0 => {
                let (Some(hdr_len), Some(body_len)) = (peek_u32(src, 8), peek_u32(src, 16)) else {
                    return Ok(None);
                };
                if hdr_len as usize != V0_HEADER_LEN {
                    return Err(FrameError::BadHeaderLength(hdr_len));
                }
                check_len(V0_HEADER_LEN as u64 + u64::from(body_len), self.max_frame).map(Some)
            }
            1 => {
                let (Some(meta_len), Some(body_len)) = (peek_u32(src, 8), peek_u32(src, 12)) else {
                    return Ok(None);
                };
                if meta_len as usize > MAX_V1_META {
                    return Err(FrameError::TooLarge {
                        len: u64::from(meta_len),
                        max: MAX_V1_META,
                    });
                }
                check_len(
                    V1_HEADER_LEN as u64 + u64::from(meta_len) + u64::from(body_len),
                    self.max_frame,
                )
                .map(Some)
            }
            other => Err(FrameError::UnsupportedVersion(other)),
        }
    }
}

impl Default for ServerCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder for ServerCodec {
    type Item = RequestFrame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RequestFrame>, FrameError> {
        let Some(total) = self.frame_len(src)? else {
            return Ok(None);
        };
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(total).freeze();
        if peek_u32(&frame, 4) == Some(0) {
            frame.advance(24);
            let app_id = frame.get_i32();
            let partition_index = frame.get_i32();
            let client_timeout_ms = frame.get_i32();
            let _thread_hash = frame.get_i32();
            let partition_hash = frame.get_u64();
            return Ok(Some(RequestFrame {
                header: RequestHeader {
                    version: 0,
                    app_id,
                    partition_index,
                    client_timeout_ms,
                    partition_hash,
                    is_backup_request: false,
                },
                body: frame,
            }));
        }
        // Version 1 (`frame_len` refused every other).
        let meta_len = peek_u32(&frame, 8).unwrap_or(0) as usize;
        frame.advance(V1_HEADER_LEN);
        let meta_bytes = frame.split_to(meta_len);
        let meta = RequestMetaV1::from_bytes(meta_bytes)?;
        Ok(Some(RequestFrame {
            header: RequestHeader {
                version: 1,
                app_id: meta.app_id,
                partition_index: meta.partition_index,
                client_timeout_ms: meta.client_timeout,
                partition_hash: meta.client_partition_hash as u64,
                is_backup_request: meta.is_backup_request,
            },
            body: frame,
        }))
    }
}

impl Encoder<ResponseFrame> for ServerCodec {
    type Error = FrameError;

    fn encode(&mut self, item: ResponseFrame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let mut w = Writer::new();
        w.write_i32(0); // total length, patched below
        w.write_binary(item.error.name().as_bytes());
        write_message_begin(&mut w, &item.name, message_type::REPLY, item.seqid);
        if let (true, Some(result)) = (item.error.is_ok(), &item.result) {
            w.write_field_header(crate::thrift::ttype::STRUCT, 0);
            w.write_raw(result);
            w.write_stop();
        }
        let mut buf = w.into_inner();
        let total = check_len(buf.len() as u64, self.max_frame)?;
        if let Some(len) = buf.get_mut(..4) {
            len.copy_from_slice(&(total as u32).to_be_bytes());
        }
        dst.put_slice(&buf);
        Ok(())
    }
}

/// A request to send: routing header, RPC name, seqid, and the encoded args struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRequest {
    /// Routing header (sent as v0).
    pub header: RequestHeader,
    /// RPC name.
    pub name: &'static str,
    /// Sequence id.
    pub seqid: i32,
    /// The args struct, encoded (fields + STOP).
    pub args: Bytes,
}

/// A received reply, before its result struct is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingResponse {
    /// The frame error.
    pub error: ErrorCode,
    /// The message begin.
    pub message: MessageBegin,
    /// The result struct `{0: response}` (empty unless `ERR_OK`).
    pub result: Bytes,
}

impl IncomingResponse {
    /// Decodes the response struct from the result (`{0: response}`).
    pub fn decode_result<T: ThriftStruct>(&self) -> Result<T, DecodeError> {
        let mut r = Reader::new(self.result.clone());
        let mut out = None;
        while let Some((t, id)) = r.read_field_header()? {
            if id == 0 && t == crate::thrift::ttype::STRUCT {
                out = Some(crate::codec::StructC::<T>::read(&mut r)?);
            } else {
                r.skip(t)?;
            }
        }
        out.ok_or_else(|| DecodeError::Malformed("reply has no result field".into()))
    }
}

/// Client side: encodes requests (v0 header), decodes responses.
#[derive(Debug, Clone, Copy)]
pub struct ClientCodec {
    max_frame: usize,
}

impl ClientCodec {
    /// A codec refusing frames above `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame }
    }
}

impl Default for ClientCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

/// Encodes a request as a v0 frame.
pub fn encode_request_v0(req: &OutgoingRequest, dst: &mut BytesMut) {
    let mut body = Writer::new();
    write_message_begin(&mut body, req.name, message_type::CALL, req.seqid);
    body.write_raw(&req.args);
    let body = body.into_inner();
    let h = &req.header;
    dst.reserve(V0_HEADER_LEN + body.len());
    dst.put_slice(&THFT_MAGIC);
    dst.put_u32(0);
    dst.put_u32(V0_HEADER_LEN as u32);
    dst.put_u32(0);
    dst.put_u32(body.len() as u32);
    dst.put_u32(0);
    dst.put_i32(h.app_id);
    dst.put_i32(h.partition_index);
    dst.put_i32(h.client_timeout_ms);
    dst.put_i32(h.app_id.wrapping_mul(7919).wrapping_add(h.partition_index));
    dst.put_u64(h.partition_hash);
    dst.put_slice(&body);
}

/// Encodes a request as a v1 frame (what the Java client sends).
pub fn encode_request_v1(req: &OutgoingRequest, dst: &mut BytesMut) {
    let h = &req.header;
    let meta = RequestMetaV1 {
        app_id: h.app_id,
        partition_index: h.partition_index,
        client_timeout: h.client_timeout_ms,
        client_partition_hash: h.partition_hash as i64,
        is_backup_request: h.is_backup_request,
    }
    .to_bytes();
    let mut body = Writer::new();
    write_message_begin(&mut body, req.name, message_type::CALL, req.seqid);
    body.write_raw(&req.args);
    let body = body.into_inner();
    dst.put_slice(&THFT_MAGIC);
    dst.put_u32(1);
    dst.put_u32(meta.len() as u32);
    dst.put_u32(body.len() as u32);
    dst.put_slice(&meta);
    dst.put_slice(&body);
}

impl Encoder<OutgoingRequest> for ClientCodec {
    type Error = FrameError;

    fn encode(&mut self, item: OutgoingRequest, dst: &mut BytesMut) -> Result<(), FrameError> {
        check_len(
            (V0_HEADER_LEN + 64 + item.args.len()) as u64,
            self.max_frame,
        )?;
        encode_request_v0(&item, dst);
        Ok(())
    }
}

impl Decoder for ClientCodec {
    type Item = IncomingResponse;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<IncomingResponse>, FrameError> {
        let Some(total) = peek_u32(src, 0) else {
            return Ok(None);
        };
        let total = check_len(u64::from(total), self.max_frame)?;
        if total < 4 {
            return Err(FrameError::Decode(DecodeError::Malformed(format!(
                "response length {total}"
            ))));
        }
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(total).freeze();
        frame.advance(4);
        let mut r = Reader::new(frame);
        let error = ErrorCode::from_name(&r.read_string()?);
        let message = read_message_begin(&mut r)?;
        Ok(Some(IncomingResponse {
            error,
            message,
            result: r.rest(),
        }))
    }
}

/// Decodes the single-field args struct `{1: T}` of a request, the way Pegasus's server
/// does: the first field is the argument whatever its id; later fields are skipped.
pub fn read_args<C: FieldCodec>(r: &mut Reader) -> Result<C::Value, DecodeError> {
    let mut value = C::Value::default();
    let mut first = true;
    while let Some((t, _id)) = r.read_field_header()? {
        if first {
            C::read_field(r, t, &mut value)?;
            first = false;
        } else {
            r.skip(t)?;
        }
    }
    Ok(value)
}

/// Encodes the args struct `{1: value}`.
pub fn write_args<C: FieldCodec>(value: &C::Value) -> Bytes {
    let mut w = Writer::new();
    C::write_field(&mut w, 1, value);
    w.write_stop();
    w.into_inner().freeze()
}
