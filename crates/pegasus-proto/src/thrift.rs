//! The thrift binary protocol (TBinaryProtocol), written for untrusted input.
//!
//! [`Reader`] never panics and never allocates more than the input holds: every length is
//! checked against the bytes that remain before anything is reserved, container lengths are
//! bounded by the smallest encoding of their elements, and nesting is bounded. Blobs are
//! zero-copy slices of the input [`Bytes`].

use bytes::{BufMut, Bytes, BytesMut};

/// Thrift type ids (the byte in a field header).
pub mod ttype {
    /// End of a struct's fields.
    pub const STOP: u8 = 0;
    /// `bool`.
    pub const BOOL: u8 = 2;
    /// `byte`.
    pub const BYTE: u8 = 3;
    /// `double`.
    pub const DOUBLE: u8 = 4;
    /// `i16`.
    pub const I16: u8 = 6;
    /// `i32` (also enums).
    pub const I32: u8 = 8;
    /// `i64`.
    pub const I64: u8 = 10;
    /// `string` / `binary`.
    pub const STRING: u8 = 11;
    /// `struct` (also Pegasus's hand-serialized placeholders: blob, error_code, gpid, address).
    pub const STRUCT: u8 = 12;
    /// `map`.
    pub const MAP: u8 = 13;
    /// `set`.
    pub const SET: u8 = 14;
    /// `list`.
    pub const LIST: u8 = 15;
}

/// Deepest struct/container nesting accepted.
pub const MAX_DEPTH: usize = 32;

/// Bytes that cannot be decoded. Any of these closes the connection that sent them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended early.
    #[error("truncated input: need {need} more bytes, {left} left")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes left.
        left: usize,
    },
    /// A length field is negative.
    #[error("negative length {0}")]
    NegativeLength(i32),
    /// A length or element count cannot fit in what remains.
    #[error("{what} of {len} does not fit in the {left} bytes left")]
    TooLong {
        /// What was being read.
        what: &'static str,
        /// The declared length.
        len: usize,
        /// Bytes left.
        left: usize,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A type byte that is not a thrift type.
    #[error("invalid thrift type {0}")]
    InvalidType(u8),
    /// Text that is not UTF-8 where a string is expected.
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// A malformed message or frame header.
    #[error("{0}")]
    Malformed(String),
}

/// Result of decoding.
pub type DecodeResult<T> = Result<T, DecodeError>;

/// Smallest encoding of one value of a type, for bounding container lengths.
fn min_size(t: u8) -> DecodeResult<usize> {
    Ok(match t {
        ttype::BOOL | ttype::BYTE => 1,
        ttype::I16 => 2,
        ttype::I32 => 4,
        ttype::I64 | ttype::DOUBLE => 8,
        ttype::STRING => 4,
        ttype::STRUCT => 1,
        ttype::MAP => 6,
        ttype::SET | ttype::LIST => 5,
        other => return Err(DecodeError::InvalidType(other)),
    })
}

/// A cursor over thrift-encoded bytes.
#[derive(Debug, Clone)]
pub struct Reader {
    buf: Bytes,
    pos: usize,
    depth: usize,
}

impl Reader {
    /// A reader over `buf`.
    pub fn new(buf: Bytes) -> Self {
        Self {
            buf,
            pos: 0,
            depth: 0,
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unread bytes, without consuming them.
    pub fn rest(&self) -> Bytes {
        self.buf.slice(self.pos.min(self.buf.len())..)
    }

    fn take(&mut self, n: usize) -> DecodeResult<Bytes> {
        let left = self.remaining();
        if n > left {
            return Err(DecodeError::Truncated { need: n, left });
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> DecodeResult<[u8; N]> {
        let left = self.remaining();
        let slice = self
            .buf
            .get(self.pos..self.pos.saturating_add(N))
            .ok_or(DecodeError::Truncated { need: N, left })?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        self.pos += N;
        Ok(out)
    }

    /// Reads a `byte`.
    pub fn read_u8(&mut self) -> DecodeResult<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads a `bool` (any non-zero byte is true).
    pub fn read_bool(&mut self) -> DecodeResult<bool> {
        Ok(self.read_u8()? != 0)
    }

    /// Reads an `i16`.
    pub fn read_i16(&mut self) -> DecodeResult<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    /// Reads an `i32`.
    pub fn read_i32(&mut self) -> DecodeResult<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    /// Reads a `u32` (frame headers).
    pub fn read_u32(&mut self) -> DecodeResult<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Reads an `i64`.
    pub fn read_i64(&mut self) -> DecodeResult<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// Reads a `double`.
    pub fn read_double(&mut self) -> DecodeResult<f64> {
        Ok(f64::from_bits(u64::from_be_bytes(self.array()?)))
    }

    fn read_len(&mut self, what: &'static str, min_elem: usize) -> DecodeResult<usize> {
        let n = self.read_i32()?;
        let n = usize::try_from(n).map_err(|_| DecodeError::NegativeLength(n))?;
        let left = self.remaining();
        if n.saturating_mul(min_elem) > left {
            return Err(DecodeError::TooLong { what, len: n, left });
        }
        Ok(n)
    }

    /// Reads a `binary`: i32 length then bytes (a zero-copy slice).
    pub fn read_binary(&mut self) -> DecodeResult<Bytes> {
        let n = self.read_len("binary", 1)?;
        self.take(n)
    }

    /// Reads a `string` that must be UTF-8.
    pub fn read_string(&mut self) -> DecodeResult<String> {
        let b = self.read_binary()?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::InvalidUtf8("string"))
    }

    /// Reads a field header; `None` at STOP.
    pub fn read_field_header(&mut self) -> DecodeResult<Option<(u8, i16)>> {
        let t = self.read_u8()?;
        if t == ttype::STOP {
            return Ok(None);
        }
        min_size(t)?;
        Ok(Some((t, self.read_i16()?)))
    }

    /// Reads a list or set header: element type and count (bounded by what remains).
    pub fn read_list_header(&mut self) -> DecodeResult<(u8, usize)> {
        let t = self.read_u8()?;
        let n = self.read_len("list", min_size(t)?)?;
        Ok((t, n))
    }

    /// Reads a map header: key type, value type, count.
    pub fn read_map_header(&mut self) -> DecodeResult<(u8, u8, usize)> {
        let k = self.read_u8()?;
        let v = self.read_u8()?;
        let n = self.read_len("map", min_size(k)? + min_size(v)?)?;
        Ok((k, v, n))
    }

    /// Enters a nested struct or container.
    pub fn enter(&mut self) -> DecodeResult<()> {
        if self.depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        self.depth += 1;
        Ok(())
    }

    /// Leaves a nested struct or container.
    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Skips a value of type `t`.
    pub fn skip(&mut self, t: u8) -> DecodeResult<()> {
        match t {
            ttype::BOOL | ttype::BYTE => self.take(1).map(drop),
            ttype::I16 => self.take(2).map(drop),
            ttype::I32 => self.take(4).map(drop),
            ttype::I64 | ttype::DOUBLE => self.take(8).map(drop),
            ttype::STRING => self.read_binary().map(drop),
            ttype::STRUCT => {
                self.enter()?;
                while let Some((ft, _)) = self.read_field_header()? {
                    self.skip(ft)?;
                }
                self.leave();
                Ok(())
            }
            ttype::LIST | ttype::SET => {
                let (et, n) = self.read_list_header()?;
                self.enter()?;
                for _ in 0..n {
                    self.skip(et)?;
                }
                self.leave();
                Ok(())
            }
            ttype::MAP => {
                let (kt, vt, n) = self.read_map_header()?;
                self.enter()?;
                for _ in 0..n {
                    self.skip(kt)?;
                    self.skip(vt)?;
                }
                self.leave();
                Ok(())
            }
            other => Err(DecodeError::InvalidType(other)),
        }
    }
}

/// Appends thrift-encoded values to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: BytesMut,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer appending to `buf`.
    pub fn with_buffer(buf: BytesMut) -> Self {
        Self { buf }
    }

    /// The bytes written.
    pub fn into_inner(self) -> BytesMut {
        self.buf
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Writes a `byte`.
    pub fn write_u8(&mut self, v: u8) {
        self.buf.put_u8(v);
    }

    /// Writes a `bool`.
    pub fn write_bool(&mut self, v: bool) {
        self.buf.put_u8(u8::from(v));
    }

    /// Writes an `i16`.
    pub fn write_i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }

    /// Writes an `i32`.
    pub fn write_i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    /// Writes a `u32` (frame headers).
    pub fn write_u32(&mut self, v: u32) {
        self.buf.put_u32(v);
    }

    /// Writes an `i64`.
    pub fn write_i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    /// Writes a `double`.
    pub fn write_double(&mut self, v: f64) {
        self.buf.put_u64(v.to_bits());
    }

    /// Writes raw bytes (no length).
    pub fn write_raw(&mut self, v: &[u8]) {
        self.buf.put_slice(v);
    }

    /// Writes a `binary` / `string`.
    pub fn write_binary(&mut self, v: &[u8]) {
        self.buf.put_i32(len_i32(v.len()));
        self.buf.put_slice(v);
    }

    /// Writes a field header.
    pub fn write_field_header(&mut self, t: u8, id: i16) {
        self.buf.put_u8(t);
        self.buf.put_i16(id);
    }

    /// Ends a struct.
    pub fn write_stop(&mut self) {
        self.buf.put_u8(ttype::STOP);
    }

    /// Writes a list header.
    pub fn write_list_header(&mut self, elem: u8, n: usize) {
        self.buf.put_u8(elem);
        self.buf.put_i32(len_i32(n));
    }

    /// Writes a map header.
    pub fn write_map_header(&mut self, k: u8, v: u8, n: usize) {
        self.buf.put_u8(k);
        self.buf.put_u8(v);
        self.buf.put_i32(len_i32(n));
    }
}

/// Lengths above `i32::MAX` cannot be encoded; frames are limited far below that, so this
/// saturates rather than wraps if it were ever reached.
fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_beyond_the_input_are_refused_before_allocating() {
        let mut r = Reader::new(Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 1, 2]));
        assert!(matches!(r.read_binary(), Err(DecodeError::TooLong { .. })));
        // A list of a billion i64 in 10 bytes.
        let mut r = Reader::new(Bytes::from_static(&[10, 0x40, 0, 0, 0, 0, 0, 0, 0, 0]));
        assert!(matches!(
            r.read_list_header(),
            Err(DecodeError::TooLong { .. })
        ));
        let mut r = Reader::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]));
        assert_eq!(r.read_binary(), Err(DecodeError::NegativeLength(-1)));
    }

    #[test]
    fn deep_nesting_is_refused() {
        // struct { field 1: struct { field 1: struct { ... } } } nested 100 deep.
        let mut v = Vec::new();
        for _ in 0..100 {
            v.extend_from_slice(&[ttype::STRUCT, 0, 1]);
        }
        let mut r = Reader::new(Bytes::from(v));
        assert_eq!(r.skip(ttype::STRUCT), Err(DecodeError::TooDeep));
    }

    #[test]
    fn invalid_type_bytes_are_refused() {
        let mut r = Reader::new(Bytes::from_static(&[7, 0, 1]));
        assert_eq!(r.read_field_header(), Err(DecodeError::InvalidType(7)));
        let mut r = Reader::new(Bytes::from_static(&[99, 0, 0, 0, 1]));
        assert_eq!(r.read_list_header(), Err(DecodeError::InvalidType(99)));
    }

    #[test]
    fn primitives_round_trip() {
        let mut w = Writer::new();
        w.write_bool(true);
        w.write_u8(7);
        w.write_i16(-2);
        w.write_i32(-3);
        w.write_i64(i64::MIN);
        w.write_double(1.5);
        w.write_binary(b"abc");
        let mut r = Reader::new(w.into_inner().freeze());
        assert!(r.read_bool().unwrap());
        assert_eq!(r.read_u8().unwrap(), 7);
        assert_eq!(r.read_i16().unwrap(), -2);
        assert_eq!(r.read_i32().unwrap(), -3);
        assert_eq!(r.read_i64().unwrap(), i64::MIN);
        assert_eq!(r.read_double().unwrap(), 1.5);
        assert_eq!(r.read_binary().unwrap(), Bytes::from_static(b"abc"));
        assert_eq!(r.remaining(), 0);
        assert!(matches!(
            r.read_i32(),
            Err(DecodeError::Truncated { need: 4, left: 0 })
        ));
    }
}
