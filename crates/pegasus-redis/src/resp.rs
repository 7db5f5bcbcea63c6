//! RESP2, sans-IO: requests (arrays of bulk strings, or inline commands) in, replies out;
//! and the client direction ([`encode_command`], [`ReplyCodec`]) that `pegasus bench` uses
//! to drive redis-server with the same workload.
//!
//! Every length is checked against a limit before anything is allocated for it; a request
//! that breaks the protocol or a limit is an error, and the connection is closed after an
//! error reply (as Redis does), without affecting other connections.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Limits on what a client may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string, bytes.
    pub max_bulk: usize,
    /// Most arguments in one command.
    pub max_args: usize,
    /// Longest inline command line, bytes.
    pub max_inline: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // Pegasus refuses writes above 1 MiB; leave room for the reply to say so.
            max_bulk: 4 << 20,
            max_args: 1 << 16,
            max_inline: 64 << 10,
        }
    }
}

/// A request that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    /// Not RESP.
    #[error("Protocol error: {0}")]
    Protocol(&'static str),
    /// A length above a limit.
    #[error("Protocol error: {what} {len} exceeds the limit of {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its declared length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The socket failed.
    #[error("io: {0}")]
    Io(String),
}

impl From<std::io::Error> for RespError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...` (the text includes the error prefix, e.g. `ERR` or `WRONGTYPE`).
    Error(String),
    /// `:n`.
    Int(i64),
    /// `$n\r\n...` or `$-1` (nil).
    Bulk(Option<Bytes>),
    /// `*n` of replies.
    Array(Vec<Reply>),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Self {
        Self::Simple("OK".into())
    }

    /// `-ERR <msg>`.
    pub fn err(msg: impl std::fmt::Display) -> Self {
        Self::Error(format!("ERR {msg}"))
    }

    fn encode(&self, dst: &mut BytesMut) {
        match self {
            Self::Simple(s) => {
                dst.put_u8(b'+');
                dst.put_slice(clean_line(s).as_bytes());
                dst.put_slice(b"\r\n");
            }
            Self::Error(s) => {
                dst.put_u8(b'-');
                dst.put_slice(clean_line(s).as_bytes());
                dst.put_slice(b"\r\n");
            }
            Self::Int(n) => {
                dst.put_slice(format!(":{n}\r\n").as_bytes());
            }
            Self::Bulk(None) => dst.put_slice(b"$-1\r\n"),
            Self::Bulk(Some(b)) => {
                dst.put_slice(format!("${}\r\n", b.len()).as_bytes());
                dst.put_slice(b);
                dst.put_slice(b"\r\n");
            }
            Self::Array(items) => {
                dst.put_slice(format!("*{}\r\n", items.len()).as_bytes());
                for i in items {
                    i.encode(dst);
                }
            }
        }
    }
}

/// Status and error lines may not hold CR or LF.
fn clean_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// The server side codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct RespCodec {
    limits: Limits,
}

impl RespCodec {
    /// A codec with these limits.
    pub fn new(limits: Limits) -> Self {
        Self { limits }
    }
}

/// Finds `\r\n` from `at`; returns the index of `\r`.
fn find_crlf(buf: &[u8], at: usize) -> Option<usize> {
    buf.get(at..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| at + p)
}

fn parse_len(line: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(RespError::Protocol("invalid length"))
}

fn check(what: &'static str, len: i64, max: usize) -> Result<usize, RespError> {
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(n),
        _ if len < 0 => Err(RespError::Protocol("negative length")),
        _ => Err(RespError::TooLarge {
            what,
            len: len.unsigned_abs(),
            max,
        }),
    }
}

impl RespCodec {
    /// Parses one request from the front of `src` without consuming it; returns the args
    /// and how many bytes they took, or `None` if more bytes are needed.
    fn parse(&self, src: &[u8]) -> Result<Option<(Vec<Bytes>, usize)>, RespError> {
        let Some(&first) = src.first() else {
            return Ok(None);
        };
        if first != b'*' {
            // Inline command: one line (LF or CRLF), words split by spaces.
            let Some(nl) = src.iter().position(|b| *b == b'\n') else {
                if src.len() > self.limits.max_inline {
                    return Err(RespError::TooLarge {
                        what: "inline command",
                        len: src.len() as u64,
                        max: self.limits.max_inline,
                    });
                }
                return Ok(None);
            };
            let mut line = src.get(..nl).unwrap_or_default();
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            let consumed = nl + 1;
            let args: Vec<Bytes> = line
                .split(|b| *b == b' ' || *b == b'\t')
                .filter(|w| !w.is_empty())
                .map(Bytes::copy_from_slice)
                .collect();
            if args.len() > self.limits.max_args {
                return Err(RespError::TooLarge {
                    what: "argument count",
                    len: args.len() as u64,
                    max: self.limits.max_args,
                });
            }
            return Ok(Some((args, consumed)));
        }
        let Some(end) = find_crlf(src, 1) else {
            if src.len() > 32 {
                return Err(RespError::Protocol("array header too long"));
            }
            return Ok(None);
        };
        let n = check(
            "argument count",
            parse_len(src.get(1..end).unwrap_or_default())?,
            self.limits.max_args,
        )?;
        let mut at = end + 2;
        let mut args = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            match src.get(at) {
                None => return Ok(None),
                Some(b'$') => {}
                Some(_) => return Err(RespError::Protocol("expected '$'")),
            }
            let Some(end) = find_crlf(src, at + 1) else {
                if src.len() - at > 32 {
                    return Err(RespError::Protocol("bulk header too long"));
                }
                return Ok(None);
            };
            let len = check(
                "bulk length",
                parse_len(src.get(at + 1..end).unwrap_or_default())?,
                self.limits.max_bulk,
            )?;
            let start = end + 2;
            let Some(data) = src.get(start..start + len) else {
                return Ok(None);
            };
            match src.get(start + len..start + len + 2) {
                None => return Ok(None),
                Some(b"\r\n") => {}
                Some(_) => return Err(RespError::Protocol("bulk string not followed by CRLF")),
            }
            args.push(Bytes::copy_from_slice(data));
            at = start + len + 2;
        }
        Ok(Some((args, at)))
    }
}

impl Decoder for RespCodec {
    type Item = Vec<Bytes>;
    type Error = RespError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Vec<Bytes>>, RespError> {
        loop {
            match self.parse(src)? {
                None => return Ok(None),
                Some((args, used)) => {
                    src.advance(used);
                    // Empty inline lines are skipped, as Redis does.
                    if !args.is_empty() {
                        return Ok(Some(args));
                    }
                }
            }
        }
    }
}

impl Encoder<Reply> for RespCodec {
    type Error = RespError;

    fn encode(&mut self, item: Reply, dst: &mut BytesMut) -> Result<(), RespError> {
        item.encode(dst);
        Ok(())
    }
}

/// Appends one command (an array of bulk strings) to `dst`.
pub fn encode_command(args: &[&[u8]], dst: &mut BytesMut) {
    dst.put_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        dst.put_slice(format!("${}\r\n", a.len()).as_bytes());
        dst.put_slice(a);
        dst.put_slice(b"\r\n");
    }
}

/// The client side codec: decodes replies, with the same limits on lengths.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplyCodec {
    limits: Limits,
}

impl ReplyCodec {
    /// A codec with these limits.
    pub fn new(limits: Limits) -> Self {
        Self { limits }
    }

    /// Parses one reply at `at`; returns it and where it ends, or `None` if more bytes
    /// are needed. `depth` bounds nesting.
    fn parse_at(
        &self,
        src: &[u8],
        at: usize,
        depth: u32,
    ) -> Result<Option<(Reply, usize)>, RespError> {
        if depth > 8 {
            return Err(RespError::Protocol("reply nested too deeply"));
        }
        let Some(&kind) = src.get(at) else {
            return Ok(None);
        };
        let Some(end) = find_crlf(src, at + 1) else {
            if src.len() - at > self.limits.max_inline {
                return Err(RespError::Protocol("reply line too long"));
            }
            return Ok(None);
        };
        let line = src.get(at + 1..end).unwrap_or_default();
        let next = end + 2;
        let text = || String::from_utf8_lossy(line).into_owned();
        match kind {
            b'+' => Ok(Some((Reply::Simple(text()), next))),
            b'-' => Ok(Some((Reply::Error(text()), next))),
            b':' => Ok(Some((Reply::Int(parse_len(line)?), next))),
            b'$' => {
                let len = parse_len(line)?;
                if len < 0 {
                    return Ok(Some((Reply::Bulk(None), next)));
                }
                let len = check("bulk length", len, self.limits.max_bulk)?;
                let Some(data) = src.get(next..next + len) else {
                    return Ok(None);
                };
                match src.get(next + len..next + len + 2) {
                    None => Ok(None),
                    Some(b"\r\n") => Ok(Some((
                        Reply::Bulk(Some(Bytes::copy_from_slice(data))),
                        next + len + 2,
                    ))),
                    Some(_) => Err(RespError::Protocol("bulk string not followed by CRLF")),
                }
            }
            b'*' => {
                let len = parse_len(line)?;
                if len < 0 {
                    return Ok(Some((Reply::Bulk(None), next)));
                }
                let n = check("array length", len, self.limits.max_args)?;
                let mut items = Vec::with_capacity(n.min(1024));
                let mut pos = next;
                for _ in 0..n {
                    match self.parse_at(src, pos, depth + 1)? {
                        None => return Ok(None),
                        Some((item, end)) => {
                            items.push(item);
                            pos = end;
                        }
                    }
                }
                Ok(Some((Reply::Array(items), pos)))
            }
            _ => Err(RespError::Protocol("unknown reply type")),
        }
    }
}

impl Decoder for ReplyCodec {
    type Item = Reply;
    type Error = RespError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Reply>, RespError> {
        match self.parse_at(src, 0, 0)? {
            None => Ok(None),
            Some((reply, used)) => {
                src.advance(used);
                Ok(Some(reply))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<Vec<Vec<Bytes>>, RespError> {
        let mut c = RespCodec::default();
        let mut b = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(cmd) = c.decode(&mut b)? {
            out.push(cmd);
        }
        Ok(out)
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn arrays_and_inline_commands_decode() {
        let got = decode_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n\r\nset a  b\n").unwrap();
        assert_eq!(
            got,
            vec![
                vec![b("GET"), b("k")],
                vec![b("PING")],
                vec![b("set"), b("a"), b("b")]
            ]
        );
    }

    #[test]
    fn every_split_point_waits_for_more_bytes() {
        let frame = b"*3\r\n$3\r\nSET\r\n$5\r\nhello\r\n$5\r\nwor\x00d\r\n";
        for cut in 0..frame.len() {
            let mut c = RespCodec::default();
            let mut buf = BytesMut::from(&frame[..cut]);
            assert_eq!(c.decode(&mut buf).unwrap(), None, "cut at {cut}");
            buf.extend_from_slice(&frame[cut..]);
            let cmd = c.decode(&mut buf).unwrap().unwrap();
            assert_eq!(cmd[2], Bytes::from_static(b"wor\x00d"));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn huge_lengths_are_refused_before_allocation() {
        let err = decode_all(b"*2\r\n$3\r\nGET\r\n$4294967296\r\n").unwrap_err();
        assert!(
            matches!(
                err,
                RespError::TooLarge {
                    what: "bulk length",
                    ..
                }
            ),
            "{err:?}"
        );
        let err = decode_all(b"*99999999999\r\n").unwrap_err();
        assert!(
            matches!(
                err,
                RespError::TooLarge {
                    what: "argument count",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn malformed_requests_are_errors() {
        for bad in [
            &b"*1\r\n:3\r\n"[..],
            b"*x\r\n",
            b"*1\r\n$-5\r\n",
            b"*1\r\n$3\r\nabcXY",
        ] {
            assert!(decode_all(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn replies_encode_as_resp2() {
        let mut out = BytesMut::new();
        let mut c = RespCodec::default();
        for r in [
            Reply::ok(),
            Reply::err("bad\r\nthing"),
            Reply::Int(-3),
            Reply::Bulk(None),
            Reply::Bulk(Some(b("v"))),
            Reply::Array(vec![Reply::Int(1), Reply::Bulk(None)]),
        ] {
            c.encode(r, &mut out).unwrap();
        }
        assert_eq!(
            &out[..],
            &b"+OK\r\n-ERR bad  thing\r\n:-3\r\n$-1\r\n$1\r\nv\r\n*2\r\n:1\r\n$-1\r\n"[..]
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = decode_all(&data);
        }

        #[test]
        fn encoded_commands_decode_back(args in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 1..8)) {
            let mut frame = format!("*{}\r\n", args.len()).into_bytes();
            for a in &args {
                frame.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                frame.extend_from_slice(a);
                frame.extend_from_slice(b"\r\n");
            }
            let got = decode_all(&frame).unwrap();
            proptest::prop_assert_eq!(got.len(), 1);
            let want: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
            proptest::prop_assert_eq!(&got[0], &want);
        }
    }

    #[test]
    fn replies_round_trip_through_the_client_codec() {
        let replies = vec![
            Reply::ok(),
            Reply::err("boom"),
            Reply::Int(-42),
            Reply::Bulk(None),
            Reply::Bulk(Some(b("va\r\nl"))),
            Reply::Array(vec![
                Reply::Int(1),
                Reply::Bulk(Some(b("x"))),
                Reply::Bulk(None),
            ]),
        ];
        let mut wire = BytesMut::new();
        for r in &replies {
            r.encode(&mut wire);
        }
        let all = wire.clone();
        // Every prefix of the stream waits for more bytes rather than failing.
        for cut in 0..all.len() {
            let mut part = BytesMut::from(&all[..cut]);
            let mut c = ReplyCodec::default();
            while c.decode(&mut part).unwrap().is_some() {}
        }
        let mut c = ReplyCodec::default();
        let mut got = Vec::new();
        while let Some(r) = c.decode(&mut wire).unwrap() {
            got.push(r);
        }
        assert_eq!(got, replies);
        assert!(wire.is_empty());
    }

    #[test]
    fn commands_encode_as_the_server_decodes_them() {
        let mut wire = BytesMut::new();
        encode_command(&[b"SET", b"k", b"v\r\n"], &mut wire);
        assert_eq!(
            decode_all(&wire).unwrap(),
            vec![vec![b("SET"), b("k"), b("v\r\n")]]
        );
    }

    #[test]
    fn huge_reply_lengths_are_refused_before_allocation() {
        let mut c = ReplyCodec::default();
        let err = c
            .decode(&mut BytesMut::from(&b"$99999999999\r\n"[..]))
            .unwrap_err();
        assert!(matches!(err, RespError::TooLarge { .. }), "{err:?}");
    }
}
