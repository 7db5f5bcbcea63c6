//! A mutation: one decree of a partition's write sequence.

use bytes::Bytes;
use pegasus_core::ids::{Ballot, Decree};

/// A batch of client writes proposed at one decree.
///
/// The updates are opaque to the replication layer: the runtime encodes client writes into
/// them and decodes them when it applies a committed mutation to storage.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Mutation {
    /// The ballot of the primary that proposed it.
    pub ballot: Ballot,
    /// Its position in the partition's sequence.
    pub decree: Decree,
    /// The proposer's committed decree when it proposed this (piggybacked commit point).
    pub last_committed: Decree,
    /// The proposer's timestamp (Unix µs): every replica applies writes "as of" this time.
    pub timestamp_us: u64,
    /// Encoded client writes; empty for the no-op mutations that fill holes.
    pub updates: Vec<Bytes>,
}

/// Bytes that do not decode as a mutation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed mutation: {0}")]
pub struct MutationDecodeError(pub &'static str);

const HEADER_LEN: usize = 8 + 8 + 8 + 8 + 4;
/// Most updates one mutation may carry (bounds decoding of hostile bytes).
pub const MAX_UPDATES: usize = 1 << 20;

impl Mutation {
    /// An empty mutation (fills a hole when a new primary re-proposes).
    pub fn empty(
        ballot: Ballot,
        decree: Decree,
        last_committed: Decree,
        timestamp_us: u64,
    ) -> Self {
        Self {
            ballot,
            decree,
            last_committed,
            timestamp_us,
            updates: Vec::new(),
        }
    }

    /// Encoded size.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.updates.iter().map(|u| 4 + u.len()).sum::<usize>()
    }

    /// Appends the encoding: `i64 ballot, i64 decree, i64 last_committed, u64 timestamp,
    /// u32 count, count × (u32 len, bytes)`, all big-endian.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&self.ballot.to_be_bytes());
        out.extend_from_slice(&self.decree.to_be_bytes());
        out.extend_from_slice(&self.last_committed.to_be_bytes());
        out.extend_from_slice(&self.timestamp_us.to_be_bytes());
        out.extend_from_slice(&(self.updates.len() as u32).to_be_bytes());
        for u in &self.updates {
            out.extend_from_slice(&(u.len() as u32).to_be_bytes());
            out.extend_from_slice(u);
        }
    }

    /// The encoding as a fresh buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decodes [`Mutation::encode`]'s output; the whole input must be consumed.
    pub fn decode(buf: &Bytes) -> Result<Self, MutationDecodeError> {
        let mut r = Cursor { buf, pos: 0 };
        let ballot = r.i64()?;
        let decree = r.i64()?;
        let last_committed = r.i64()?;
        let timestamp_us = r.i64()? as u64;
        let count = r.u32()? as usize;
        if count > MAX_UPDATES || count.saturating_mul(4) > r.left() {
            return Err(MutationDecodeError("update count exceeds the record"));
        }
        let mut updates = Vec::with_capacity(count);
        for _ in 0..count {
            let len = r.u32()? as usize;
            updates.push(r.take(len)?);
        }
        if r.left() != 0 {
            return Err(MutationDecodeError("trailing bytes"));
        }
        Ok(Self {
            ballot,
            decree,
            last_committed,
            timestamp_us,
            updates,
        })
    }
}

struct Cursor<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl Cursor<'_> {
    fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<Bytes, MutationDecodeError> {
        if n > self.left() {
            return Err(MutationDecodeError("truncated"));
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    fn i64(&mut self) -> Result<i64, MutationDecodeError> {
        let b = self.take(8)?;
        Ok(i64::from_be_bytes(b.as_ref().try_into().unwrap_or([0; 8])))
    }

    fn u32(&mut self) -> Result<u32, MutationDecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes(b.as_ref().try_into().unwrap_or([0; 4])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutation_round_trips_and_rejects_truncation() {
        let m = Mutation {
            ballot: 3,
            decree: 17,
            last_committed: 15,
            timestamp_us: 123_456,
            updates: vec![
                Bytes::from_static(b"put a"),
                Bytes::new(),
                Bytes::from_static(b"x"),
            ],
        };
        let enc = Bytes::from(m.encode());
        assert_eq!(enc.len(), m.encoded_len());
        assert_eq!(Mutation::decode(&enc).unwrap(), m);
        for cut in 0..enc.len() {
            assert!(Mutation::decode(&enc.slice(..cut)).is_err(), "prefix {cut}");
        }
        let mut long = enc.to_vec();
        long.push(0);
        assert!(Mutation::decode(&Bytes::from(long)).is_err());
    }

    #[test]
    fn a_huge_update_count_is_refused_without_allocating() {
        let mut b = Mutation::empty(1, 1, 0, 0).encode();
        let n = b.len();
        b[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Mutation::decode(&Bytes::from(b)).is_err());
    }
}
