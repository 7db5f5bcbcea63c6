//! How the replica server (and the simulator) turns client writes into mutation updates and
//! back: a tag byte, the RPC name, then the thrift-encoded args (or the new default TTL).

use bytes::{BufMut, Bytes, BytesMut};
use pegasus_proto::thrift::Reader;
use pegasus_proto::RrdbRequest;
use pegasus_storage::WriteRequest;

/// Encodes a write as a mutation update.
pub fn encode_write(req: &WriteRequest) -> Bytes {
    let rpc = match req {
        WriteRequest::Put(r) => RrdbRequest::Put(r.clone()),
        WriteRequest::Remove(k) => RrdbRequest::Remove(k.clone()),
        WriteRequest::MultiPut(r) => RrdbRequest::MultiPut(r.clone()),
        WriteRequest::MultiRemove(r) => RrdbRequest::MultiRemove(r.clone()),
        WriteRequest::Incr(r) => RrdbRequest::Incr(r.clone()),
        WriteRequest::CheckAndSet(r) => RrdbRequest::CheckAndSet(r.clone()),
        WriteRequest::CheckAndMutate(r) => RrdbRequest::CheckAndMutate(r.clone()),
        WriteRequest::SetDefaultTtl(ttl) => {
            let mut b = BytesMut::new();
            b.put_u8(0);
            b.put_u32(*ttl);
            return b.freeze();
        }
    };
    let name = rpc.name().as_bytes();
    let mut b = BytesMut::new();
    b.put_u8(1);
    b.put_u16(name.len() as u16);
    b.put_slice(name);
    b.put_slice(&rpc.encode_args());
    b.freeze()
}

/// Decodes [`encode_write`]'s output.
pub fn decode_write(b: &Bytes) -> Option<WriteRequest> {
    match b.first()? {
        0 => {
            let ttl = b.get(1..5)?;
            Some(WriteRequest::SetDefaultTtl(u32::from_be_bytes(
                ttl.try_into().ok()?,
            )))
        }
        1 => {
            let len = usize::from(u16::from_be_bytes(b.get(1..3)?.try_into().ok()?));
            let name = std::str::from_utf8(b.get(3..3 + len)?).ok()?;
            let mut r = Reader::new(b.slice(3 + len..));
            Some(match RrdbRequest::decode(name, &mut r).ok()?? {
                RrdbRequest::Put(x) => WriteRequest::Put(x),
                RrdbRequest::Remove(x) => WriteRequest::Remove(x),
                RrdbRequest::MultiPut(x) => WriteRequest::MultiPut(x),
                RrdbRequest::MultiRemove(x) => WriteRequest::MultiRemove(x),
                RrdbRequest::Incr(x) => WriteRequest::Incr(x),
                RrdbRequest::CheckAndSet(x) => WriteRequest::CheckAndSet(x),
                RrdbRequest::CheckAndMutate(x) => WriteRequest::CheckAndMutate(x),
                _ => return None,
            })
        }
        _ => None,
    }
}
