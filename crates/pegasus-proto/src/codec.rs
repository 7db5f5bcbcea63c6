//! Field codecs and the `thrift_struct!` macro that writes a struct's (de)serializer from
//! its field list.
//!
//! Every struct is hand-described (field id, name, codec) because Pegasus's placeholder types
//! (blob, error_code, gpid, rpc_address) are sent with the STRUCT type byte but a binary or
//! i64 payload: no generic thrift library can read them without the schema. Missing fields
//! keep their `Default` (the Java and Python clients omit null fields); unknown fields are
//! skipped.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use bytes::Bytes;
use pegasus_core::ids::Gpid;

use crate::thrift::{ttype, DecodeResult, Reader, Writer};

/// A thrift struct we can encode and decode.
pub trait ThriftStruct: Sized + Default {
    /// Writes the struct's fields and its STOP byte.
    fn write(&self, w: &mut Writer);
    /// Reads the struct's fields up to and including STOP.
    fn read(r: &mut Reader) -> DecodeResult<Self>;

    /// Encodes to a fresh buffer.
    fn to_bytes(&self) -> Bytes {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_inner().freeze()
    }

    /// A random value, for round-trip tests.
    #[cfg(test)]
    fn random(g: &mut crate::testgen::Gen) -> Self;

    /// Decodes from bytes holding exactly one struct (trailing bytes are an error).
    fn from_bytes(b: Bytes) -> DecodeResult<Self> {
        let mut r = Reader::new(b);
        let v = Self::read(&mut r)?;
        if r.remaining() != 0 {
            return Err(crate::thrift::DecodeError::Malformed(format!(
                "{} trailing bytes after struct",
                r.remaining()
            )));
        }
        Ok(v)
    }
}

/// How one field's value is encoded.
pub trait FieldCodec {
    /// The Rust type of the value.
    type Value: Default;
    /// The type byte written in the field header.
    const TTYPE: u8;
    /// Whether a received type byte can be decoded by this codec.
    fn accepts(t: u8) -> bool {
        t == Self::TTYPE
    }
    /// Reads a value.
    fn read(r: &mut Reader) -> DecodeResult<Self::Value>;
    /// Writes a value.
    fn write(w: &mut Writer, v: &Self::Value);
    /// Writes the field (header and value); optional codecs write nothing for `None`.
    fn write_field(w: &mut Writer, id: i16, v: &Self::Value) {
        w.write_field_header(Self::TTYPE, id);
        Self::write(w, v);
    }
    /// A random value, for round-trip tests.
    #[cfg(test)]
    fn random(g: &mut crate::testgen::Gen) -> Self::Value;
    /// Reads a field whose header was already read; skips it if its type does not fit.
    fn read_field(r: &mut Reader, t: u8, slot: &mut Self::Value) -> DecodeResult<()> {
        if Self::accepts(t) {
            *slot = Self::read(r)?;
            Ok(())
        } else {
            r.skip(t)
        }
    }
}

/// `bool`.
#[derive(Debug)]
pub struct BoolC;
impl FieldCodec for BoolC {
    type Value = bool;
    const TTYPE: u8 = ttype::BOOL;
    #[cfg(test)]
    fn random(g: &mut crate::testgen::Gen) -> Self::Value {
        g.bool()
    }
    fn read(r: &mut Reader) -> DecodeResult<bool> {
        r.read_bool()
    }
    fn write(w: &mut Writer, v: &bool) {
        w.write_bool(*v);
    }
}

/// `byte`.
#[derive(Debug)]
pub struct ByteC;
impl FieldCodec for ByteC {
    type Value = u8;
    const TTYPE: u8 = ttype::BYTE;
    #[cfg(test)]
    fn random(g: &mut crate::testgen::Gen) -> Self::Value {
        g.next_u64() as u8
    }
    fn read(r: &mut Reader) -> DecodeResult<u8> {
        r.read_u8()
    }
    fn write(w: &mut Writer, v: &u8) {
        w.write_u8(*v);
    }
}

/// `i16`.
#[derive(Debug)]
pub struct I16C;
impl FieldCodec for I16C {
    type Value = i16;
    const TTYPE: u8 = ttype::I16;
    #[cfg(test)]
    fn random(g: &mut crate::testgen::Gen) -> Self::Value {
        g.next_u64() as i16
    }
    fn read(r: &mut Reader) -> DecodeResult<i16> {
        r.read_i16()
    }
    fn write(w: &mut Writer, v: &i16) {
        w.write_i16(*v);
    }
}

/// `i32`.
#[derive(Debug)]
pub struct I32C;
impl FieldCodec for I32C {
    type Value = i32;
    const TTYPE: u8 = ttype::I32;
    #[cfg(test)]
    fn random(g: &mut crate::testgen::Gen) -> Self::Value {
        g.next_u64() as i32
    }
    fn read(r: &mut Reader) -> DecodeResult<i32> {
        r.read_i32()
    }
    fn write(w: &mut Writer, v: &i32) {
        w.write_i32(*v);
    }
}

/// `i64`.
#[derive(Debug)]
pub struct I64C;
impl FieldCodec for I64C {
    type Value = i64;
    const TTYPE: u8 = ttype::I64;
    #[cfg(test)]
    fn random(g: &mut crate::testgen::Gen) -> Self::Value {
        g.next_u64() as i64
    }
    fn read(r: &mut Reader) -> DecodeResult<i64> {
        r.read_i64()
    }
    fn write(w: &mut Writer, v: &i64) {
        w.write_i64(*v);
    }
}

/// `string` (UTF-8).
#[derive(Debug)]
pub struct StringC;
impl FieldCodec for StringC {
    type Value = String;
    const TTYPE: u8 = ttype::STRING;
    #[cfg(test)]
    fn random(g: &mut crate::testgen::Gen) -> Self::Value {
        g.string()
    }
    fn read(r: &mut Reader) -> DecodeResult<String> {
        r.read_string()
    }
    fn write(w: &mut Writer, v: &String) {
        w.write_binary(v.as_bytes());
    }
}

/// `dsn.blob`: STRUCT type byte, binary payload. Also accepts a plain STRING field.
#[derive(Debug)]
pub struct BlobC;
impl FieldCodec for BlobC {
    type Value = Bytes;
    const TTYPE: u8 = ttype::STRUCT;
    fn accepts(t: u8) -> bool {
        t == ttype::STRUCT || t == ttype::STRING
    }
    #[cfg(test)]
    fn random(g: &mut crate::testgen::Gen) -> Self::Value {
        Bytes::from(g.bytes())
    }
    fn read(r: &mut Reader) -> DecodeResult<Bytes> {
        r.read_binary()
    }
    fn write(w: &mut Writer, v: &Bytes) {
        w.write_binary(v);
    }
}

/// `dsn.error_code`: STRUCT type byte, string payload (the error's name).
#[derive(Debug)]
pub struct ErrorCodeC;
impl FieldCodec for ErrorCodeC {
    type Value = crate::error::ErrorCode;
    const TTYPE: u8 = ttype::STRUCT;
    fn accepts(t: u8) -> bool {
        t == ttype::STRUCT || t == ttype::STRING
    }
    #[cfg(test)]
    fn random(g: &mut crate::testgen::Gen) -> Self::Value {
        crate::error::ErrorCode::ALL[g.below(crate::error::ErrorCode::ALL.len())]
    }
    fn read(r: &mut Reader) -> DecodeResult<Self::Value> {
        Ok(crate::error::ErrorCode::from_name(&r.read_string()?))
    }
    fn write(w: &mut Writer, v: &Self::Value) {
        w.write_binary(v.name().as_bytes());
    }
}

/// `dsn.gpid`: STRUCT type byte, i64 payload `(pidx << 32) | app_id`.
#[derive(Debug)]
pub struct GpidC;
impl FieldCodec for GpidC {
    type Value = Gpid;
    const TTYPE: u8 = ttype::STRUCT;
    #[cfg(test)]
    fn random(g: &mut crate::testgen::Gen) -> Self::Value {
        Gpid::new(g.next_u64() as i32, g.next_u64() as i32)
    }
    fn read(r: &mut Reader) -> DecodeResult<Gpid> {
        Ok(Gpid::from_i64(r.read_i64()?))
    }
    fn write(w: &mut Writer, v: &Gpid) {
        w.write_i64(v.to_i64());
    }
}

/// `dsn.rpc_address`: STRUCT type byte, i64 payload.
#[derive(Debug)]
pub struct AddressC;
impl FieldCodec for AddressC {
    type Value = crate::address::RpcAddress;
    const TTYPE: u8 = ttype::STRUCT;
    #[cfg(test)]
    fn random(g: &mut crate::testgen::Gen) -> Self::Value {
        crate::address::RpcAddress::from_raw(g.next_u64())
    }
    fn read(r: &mut Reader) -> DecodeResult<Self::Value> {
        Ok(crate::address::RpcAddress::from_raw(r.read_i64()? as u64))
    }
    fn write(w: &mut Writer, v: &Self::Value) {
        w.write_i64(v.raw() as i64);
    }
}

/// A thrift enum (i32) mapped to a Rust enum that keeps unknown values.
#[derive(Debug)]
pub struct EnumC<E>(PhantomData<E>);

/// Enums that travel as i32.
pub trait WireEnum: Copy + Default {
    /// To the wire.
    fn to_wire(self) -> i32;
    /// From the wire (unknown values kept).
    fn from_wire(v: i32) -> Self;
}

impl<E: WireEnum> FieldCodec for EnumC<E> {
    type Value = E;
    const TTYPE: u8 = ttype::I32;
    #[cfg(test)]
    fn random(g: &mut crate::testgen::Gen) -> Self::Value {
        E::from_wire(g.below(24) as i32 - 3)
    }
    fn read(r: &mut Reader) -> DecodeResult<E> {
        Ok(E::from_wire(r.read_i32()?))
    }
    fn write(w: &mut Writer, v: &E) {
        w.write_i32(v.to_wire());
    }
}

/// A nested struct.
#[derive(Debug)]
pub struct StructC<S>(PhantomData<S>);
impl<S: ThriftStruct> FieldCodec for StructC<S> {
    type Value = S;
    const TTYPE: u8 = ttype::STRUCT;
    #[cfg(test)]
    fn random(g: &mut crate::testgen::Gen) -> Self::Value {
        S::random(g)
    }
    fn read(r: &mut Reader) -> DecodeResult<S> {
        r.enter()?;
        let v = S::read(r)?;
        r.leave();
        Ok(v)
    }
    fn write(w: &mut Writer, v: &S) {
        v.write(w);
    }
}

/// `list<T>` (a `set<T>` is read the same way).
#[derive(Debug)]
pub struct ListC<C>(PhantomData<C>);
impl<C: FieldCodec> FieldCodec for ListC<C> {
    type Value = Vec<C::Value>;
    const TTYPE: u8 = ttype::LIST;
    fn accepts(t: u8) -> bool {
        t == ttype::LIST || t == ttype::SET
    }
    #[cfg(test)]
    fn random(g: &mut crate::testgen::Gen) -> Self::Value {
        (0..g.below(4)).map(|_| C::random(g)).collect()
    }
    fn read(r: &mut Reader) -> DecodeResult<Vec<C::Value>> {
        let (et, n) = r.read_list_header()?;
        r.enter()?;
        let mut out = Vec::with_capacity(n);
        if C::accepts(et) {
            for _ in 0..n {
                out.push(C::read(r)?);
            }
        } else {
            for _ in 0..n {
                r.skip(et)?;
            }
        }
        r.leave();
        Ok(out)
    }
    fn write(w: &mut Writer, v: &Vec<C::Value>) {
        w.write_list_header(C::TTYPE, v.len());
        for item in v {
            C::write(w, item);
        }
    }
}

/// `map<string, string>` (table envs).
#[derive(Debug)]
pub struct StringMapC;
impl FieldCodec for StringMapC {
    type Value = BTreeMap<String, String>;
    const TTYPE: u8 = ttype::MAP;
    #[cfg(test)]
    fn random(g: &mut crate::testgen::Gen) -> Self::Value {
        (0..g.below(4)).map(|_| (g.string(), g.string())).collect()
    }
    fn read(r: &mut Reader) -> DecodeResult<Self::Value> {
        let (kt, vt, n) = r.read_map_header()?;
        r.enter()?;
        let mut out = BTreeMap::new();
        for _ in 0..n {
            if kt == ttype::STRING && vt == ttype::STRING {
                let k = r.read_string()?;
                let v = r.read_string()?;
                out.insert(k, v);
            } else {
                r.skip(kt)?;
                r.skip(vt)?;
            }
        }
        r.leave();
        Ok(out)
    }
    fn write(w: &mut Writer, v: &Self::Value) {
        w.write_map_header(ttype::STRING, ttype::STRING, v.len());
        for (k, val) in v {
            w.write_binary(k.as_bytes());
            w.write_binary(val.as_bytes());
        }
    }
}

/// An `optional` field: written only when `Some`.
#[derive(Debug)]
pub struct OptC<C>(PhantomData<C>);
impl<C: FieldCodec> FieldCodec for OptC<C> {
    type Value = Option<C::Value>;
    const TTYPE: u8 = C::TTYPE;
    fn accepts(t: u8) -> bool {
        C::accepts(t)
    }
    #[cfg(test)]
    fn random(g: &mut crate::testgen::Gen) -> Self::Value {
        g.bool().then(|| C::random(g))
    }
    fn read(r: &mut Reader) -> DecodeResult<Self::Value> {
        C::read(r).map(Some)
    }
    fn write(w: &mut Writer, v: &Self::Value) {
        if let Some(v) = v {
            C::write(w, v);
        }
    }
    fn write_field(w: &mut Writer, id: i16, v: &Self::Value) {
        if let Some(v) = v {
            C::write_field(w, id, v);
        }
    }
}

/// Declares the thrift encoding of a struct: `thrift_struct!(Type { id: field: Codec, ... })`.
#[macro_export]
macro_rules! thrift_struct {
    ($ty:ty { $($id:literal : $field:ident : $codec:ty),* $(,)? }) => {
        impl $crate::codec::ThriftStruct for $ty {
            fn write(&self, w: &mut $crate::thrift::Writer) {
                $( <$codec as $crate::codec::FieldCodec>::write_field(w, $id, &self.$field); )*
                w.write_stop();
            }

            #[cfg(test)]
            fn random(g: &mut $crate::testgen::Gen) -> Self {
                #[allow(unused_mut, reason = "structs without fields")]
                let mut out = <$ty>::default();
                $( out.$field = <$codec as $crate::codec::FieldCodec>::random(g); )*
                let _ = g;
                out
            }

            fn read(r: &mut $crate::thrift::Reader) -> $crate::thrift::DecodeResult<Self> {
                #[allow(unused_mut, reason = "structs without fields")]
                let mut out = <$ty>::default();
                while let Some((t, id)) = r.read_field_header()? {
                    match id {
                        $( $id => <$codec as $crate::codec::FieldCodec>::read_field(r, t, &mut out.$field)?, )*
                        _ => r.skip(t)?,
                    }
                }
                Ok(out)
            }
        }
    };
}
