//! Pegasus's partition hash: a reflected, table-driven CRC-64.
//!
//! Polynomial `0x9a6c9329ac4bc9b5` (reflected form), initial value `!0`, final xor `!0`.
//! This is neither CRC-64/XZ nor Jones; it is the one every Pegasus client uses to pick a
//! partition, so it must match bit for bit.

const POLY_REFLECTED: u64 = 0x9a6c_9329_ac4b_c9b5;

#[expect(
    clippy::indexing_slicing,
    reason = "i < 256 by the loop condition; const fn cannot use get_mut"
)]
const fn build_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static TABLE: [u64; 256] = build_table();

/// Continues a CRC-64 over `data`, starting from a previous result (`0` for a fresh hash).
pub fn crc64_update(prev: u64, data: &[u8]) -> u64 {
    let mut crc = !prev;
    for &b in data {
        // The index is `(crc ^ b) & 0xff`, always < 256.
        let idx = ((crc ^ u64::from(b)) & 0xff) as u8;
        #[expect(clippy::indexing_slicing, reason = "a u8 index into a 256-entry table")]
        let entry = TABLE[usize::from(idx)];
        crc = entry ^ (crc >> 8);
    }
    !crc
}

/// The CRC-64 of `data`.
pub fn crc64(data: &[u8]) -> u64 {
    crc64_update(0, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_matches_pegasus_test_vectors() {
        assert_eq!(crc64(b""), 0);
        assert_eq!(crc64(b"123456789"), 0xae8b_1486_0a79_9888);
        assert_eq!(crc64(b"hk"), 0x5d9a_d5b5_1c9a_4ab3);
        assert_eq!(crc64(b"a"), 0x8c2f_8445_b4cb_fc3c);
        assert_eq!(TABLE[1], 0x7f6e_f0c8_3035_8979);
    }

    #[test]
    fn crc64_hk_lands_in_partition_3_of_4() {
        assert_eq!(crc64(b"hk") % 4, 3);
    }

    #[test]
    fn crc64_update_is_incremental() {
        let whole = crc64(b"hello world");
        let split = crc64_update(crc64(b"hello "), b"world");
        assert_eq!(whole, split);
    }
}
