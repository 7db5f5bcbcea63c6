//! A tiny deterministic generator for round-trip tests (no external RNG needed).

/// Xorshift64* generator.
#[derive(Debug)]
pub struct Gen(u64);

impl Gen {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn bool(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    pub fn bytes(&mut self) -> Vec<u8> {
        (0..self.below(24)).map(|_| self.next_u64() as u8).collect()
    }

    pub fn string(&mut self) -> String {
        (0..self.below(16))
            .map(|_| char::from(b' ' + (self.next_u64() % 95) as u8))
            .collect()
    }
}
