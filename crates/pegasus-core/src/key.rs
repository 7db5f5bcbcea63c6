//! The storage key schema: `[u16 BE hash_key_len][hash_key][sort_key]`.
//!
//! Ordering is raw bytewise, so records of one hash key are contiguous and ordered by sort
//! key, and hash keys are grouped by length first (`"b" < "aa"`). A hash key must be shorter
//! than 65535 bytes; `0xFFFF` as a length is invalid.

use crate::crc64::crc64;

/// The longest hash key allowed, in bytes (`< u16::MAX`).
pub const MAX_HASH_KEY_LEN: usize = u16::MAX as usize - 1;

/// A key that cannot be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The hash key is 65535 bytes or longer.
    #[error("hash key is {0} bytes; it must be shorter than 65535")]
    HashKeyTooLong(usize),
    /// The encoded key is shorter than its 2-byte header or than the length it declares.
    #[error("encoded key of {0} bytes is malformed")]
    Malformed(usize),
}

/// Checks that a hash key can be encoded.
pub fn check_hash_key(hash_key: &[u8]) -> Result<u16, KeyError> {
    if hash_key.len() > MAX_HASH_KEY_LEN {
        return Err(KeyError::HashKeyTooLong(hash_key.len()));
    }
    u16::try_from(hash_key.len()).map_err(|_| KeyError::HashKeyTooLong(hash_key.len()))
}

/// Encodes `(hash_key, sort_key)` into a storage key.
pub fn encode_key(hash_key: &[u8], sort_key: &[u8]) -> Result<Vec<u8>, KeyError> {
    let len = check_hash_key(hash_key)?;
    let mut out = Vec::with_capacity(2 + hash_key.len() + sort_key.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(hash_key);
    out.extend_from_slice(sort_key);
    Ok(out)
}

/// The prefix shared by every key of `hash_key`: `[len][hash_key]`.
pub fn hash_key_prefix(hash_key: &[u8]) -> Result<Vec<u8>, KeyError> {
    encode_key(hash_key, b"")
}

/// Splits an encoded key into `(hash_key, sort_key)`.
pub fn decode_key(key: &[u8]) -> Result<(&[u8], &[u8]), KeyError> {
    let (len_bytes, rest) = key
        .split_first_chunk::<2>()
        .ok_or(KeyError::Malformed(key.len()))?;
    let len = usize::from(u16::from_be_bytes(*len_bytes));
    if len == usize::from(u16::MAX) {
        return Err(KeyError::Malformed(key.len()));
    }
    if rest.len() < len {
        return Err(KeyError::Malformed(key.len()));
    }
    Ok(rest.split_at(len))
}

/// The smallest byte string greater than every string that starts with `prefix`: the last
/// byte that is not `0xFF` is incremented and everything after it dropped. `None` when the
/// prefix is empty or all `0xFF` (no such bound exists: the range is open to the end).
pub fn next_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let pos = prefix.iter().rposition(|&b| b != 0xFF)?;
    let mut out = prefix.get(..=pos)?.to_vec();
    if let Some(last) = out.last_mut() {
        *last += 1;
    }
    Some(out)
}

/// The hash Pegasus routes a record by: `crc64(hash_key)`, or `crc64(sort_key)` when the hash
/// key is empty.
pub fn key_hash(hash_key: &[u8], sort_key: &[u8]) -> u64 {
    if hash_key.is_empty() {
        crc64(sort_key)
    } else {
        crc64(hash_key)
    }
}

/// The routing hash of an encoded key (see [`key_hash`]).
pub fn encoded_key_hash(key: &[u8]) -> Result<u64, KeyError> {
    let (hk, sk) = decode_key(key)?;
    Ok(key_hash(hk, sk))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn key_layout_is_length_prefixed_big_endian() {
        assert_eq!(encode_key(b"hk", b"sk").unwrap(), b"\x00\x02hksk".to_vec());
        assert_eq!(encode_key(b"", b"sk").unwrap(), b"\x00\x00sk".to_vec());
    }

    #[test]
    fn hash_key_of_65535_bytes_is_rejected() {
        let hk = vec![b'a'; 65535];
        assert_eq!(encode_key(&hk, b""), Err(KeyError::HashKeyTooLong(65535)));
        let ok = vec![b'a'; 65534];
        assert!(encode_key(&ok, b"").is_ok());
    }

    #[test]
    fn malformed_keys_are_errors_not_panics() {
        assert!(decode_key(b"").is_err());
        assert!(decode_key(b"\x00").is_err());
        assert!(decode_key(b"\x00\x05abc").is_err());
        assert!(decode_key(b"\xff\xffabc").is_err());
    }

    #[test]
    fn hash_keys_group_by_length_first() {
        assert!(encode_key(b"b", b"").unwrap() < encode_key(b"aa", b"").unwrap());
    }

    #[test]
    fn next_prefix_increments_last_non_ff_byte() {
        assert_eq!(next_prefix(b"\x00\x02ab"), Some(b"\x00\x02ac".to_vec()));
        assert_eq!(next_prefix(b"\x00\x02a\xff"), Some(b"\x00\x02b".to_vec()));
        assert_eq!(next_prefix(b"\xff\xff"), None);
        assert_eq!(next_prefix(b""), None);
    }

    #[test]
    fn empty_hash_key_routes_by_sort_key() {
        assert_eq!(key_hash(b"", b"hk"), crc64(b"hk"));
        assert_eq!(key_hash(b"hk", b"zz"), crc64(b"hk"));
        assert_eq!(encoded_key_hash(b"\x00\x02hksk").unwrap(), crc64(b"hk"));
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(hk in proptest::collection::vec(any::<u8>(), 0..300),
                                    sk in proptest::collection::vec(any::<u8>(), 0..300)) {
            let k = encode_key(&hk, &sk).unwrap();
            let (h, s) = decode_key(&k).unwrap();
            prop_assert_eq!(h, &hk[..]);
            prop_assert_eq!(s, &sk[..]);
        }

        #[test]
        fn every_key_of_a_hash_key_is_below_next_prefix(hk in proptest::collection::vec(any::<u8>(), 0..20),
                                                         sk in proptest::collection::vec(any::<u8>(), 0..20)) {
            let prefix = hash_key_prefix(&hk).unwrap();
            let k = encode_key(&hk, &sk).unwrap();
            prop_assert!(k >= prefix);
            if let Some(end) = next_prefix(&prefix) {
                prop_assert!(k < end);
            }
        }
    }
}
