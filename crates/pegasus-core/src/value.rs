//! The storage value schema.
//!
//! Version 1, the one Pegasus writes by default: `[u32 BE expire_ts][u64 BE timetag][user data]`.
//! `expire_ts` is in seconds since the Pegasus epoch, 0 meaning "no TTL". The timetag is
//! `timestamp_us << 8 | cluster_id << 1 | deleted_tag`, used by duplication for
//! last-writer-wins.

/// Bytes of the v1 header.
pub const V1_HEADER_LEN: usize = 12;

/// A value that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored value of {0} bytes is shorter than the 12-byte header")]
pub struct ValueError(pub usize);

/// Builds a timetag from a write time in microseconds, a cluster id (7 bits) and the
/// deleted flag.
pub fn make_timetag(timestamp_us: u64, cluster_id: u8, deleted: bool) -> u64 {
    (timestamp_us << 8) | (u64::from(cluster_id & 0x7f) << 1) | u64::from(deleted)
}

/// The write time (microseconds) inside a timetag.
pub fn timetag_timestamp_us(timetag: u64) -> u64 {
    timetag >> 8
}

/// Encodes a v1 value.
pub fn encode_value(expire_ts: u32, timetag: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(V1_HEADER_LEN + data.len());
    out.extend_from_slice(&expire_ts.to_be_bytes());
    out.extend_from_slice(&timetag.to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// A decoded v1 value, borrowing the user data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredValue<'a> {
    /// Absolute expiry, Pegasus-epoch seconds; 0 = no TTL.
    pub expire_ts: u32,
    /// Write timetag.
    pub timetag: u64,
    /// The user's value.
    pub data: &'a [u8],
}

/// Decodes a v1 value.
pub fn decode_value(raw: &[u8]) -> Result<StoredValue<'_>, ValueError> {
    let (ts, rest) = raw.split_first_chunk::<4>().ok_or(ValueError(raw.len()))?;
    let (tag, data) = rest.split_first_chunk::<8>().ok_or(ValueError(raw.len()))?;
    Ok(StoredValue {
        expire_ts: u32::from_be_bytes(*ts),
        timetag: u64::from_be_bytes(*tag),
        data,
    })
}

/// Reads only the expiry of a stored value.
pub fn decode_expire_ts(raw: &[u8]) -> Result<u32, ValueError> {
    raw.first_chunk::<4>()
        .map(|b| u32::from_be_bytes(*b))
        .ok_or(ValueError(raw.len()))
}

/// Whether a record with `expire_ts` is expired at `now` (both Pegasus-epoch seconds):
/// `expire_ts > 0 && expire_ts <= now`.
pub fn is_expired(expire_ts: u32, now: u32) -> bool {
    expire_ts > 0 && expire_ts <= now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_v1_layout() {
        let v = encode_value(0x01020304, 0x1112131415161718, b"data");
        assert_eq!(&v[..4], &[1, 2, 3, 4]);
        assert_eq!(&v[4..12], &[0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]);
        assert_eq!(&v[12..], b"data");
        let d = decode_value(&v).unwrap();
        assert_eq!(d.expire_ts, 0x01020304);
        assert_eq!(d.timetag, 0x1112131415161718);
        assert_eq!(d.data, b"data");
    }

    #[test]
    fn short_value_is_an_error() {
        assert_eq!(decode_value(b"12345678901"), Err(ValueError(11)));
        assert!(decode_expire_ts(b"123").is_err());
    }

    #[test]
    fn expiry_rule_is_inclusive_of_now() {
        assert!(!is_expired(0, 100));
        assert!(!is_expired(101, 100));
        assert!(is_expired(100, 100));
        assert!(is_expired(99, 100));
    }

    #[test]
    fn timetag_packs_time_cluster_and_delete_flag() {
        let t = make_timetag(123_456, 5, true);
        assert_eq!(timetag_timestamp_us(t), 123_456);
        assert_eq!((t >> 1) & 0x7f, 5);
        assert_eq!(t & 1, 1);
    }
}
