//! Key choice: YCSB's scrambled zipfian, uniform and "latest" distributions over record ids,
//! and how a record id becomes a 16-byte hash key and sort key.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Length of generated hash keys and sort keys (Pegasus's bench default).
pub const KEY_LEN: usize = 16;

/// A record id as a 16-byte zero-padded decimal key.
pub fn format_key(id: u64) -> [u8; KEY_LEN] {
    let mut out = [b'0'; KEY_LEN];
    let mut n = id;
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out
}

/// How record ids are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Every record equally likely.
    Uniform,
    /// YCSB's scrambled zipfian (theta 0.99): a few hot records spread over the key space.
    Zipfian,
    /// Recently inserted records are the hottest (YCSB-D).
    Latest,
}

impl std::fmt::Display for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Uniform => "uniform",
            Self::Zipfian => "zipfian",
            Self::Latest => "latest",
        })
    }
}

impl std::str::FromStr for Distribution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "uniform" => Ok(Self::Uniform),
            "zipfian" => Ok(Self::Zipfian),
            "latest" => Ok(Self::Latest),
            other => Err(format!(
                "unknown distribution {other:?} (uniform, zipfian, latest)"
            )),
        }
    }
}

/// YCSB's zipfian theta.
pub const ZIPFIAN_THETA: f64 = 0.99;

/// Gray et al.'s zipfian generator over `[0, items)`, as YCSB implements it: item 0 is the
/// most popular.
#[derive(Debug, Clone)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Zipfian {
    /// A generator over `items` items (at least 1).
    pub fn new(items: u64, theta: f64) -> Self {
        let items = items.max(1);
        let zetan = zeta(items, theta);
        let zeta2 = zeta(2, theta);
        let eta = (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Self {
            items,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
        }
    }

    /// One draw in `[0, items)`.
    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.items - 1);
        }
        let v = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        v.min(self.items - 1)
    }
}

/// FNV-1a over the id's bytes: YCSB scrambles zipfian ranks this way so that hot records
/// are not neighbours.
fn fnv1a(v: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Picks record ids for reads and updates.
#[derive(Debug, Clone)]
pub struct KeyChooser {
    dist: Distribution,
    records: u64,
    zipf: Zipfian,
}

impl KeyChooser {
    /// A chooser over `records` loaded records.
    pub fn new(dist: Distribution, records: u64) -> Self {
        let records = records.max(1);
        Self {
            dist,
            records,
            // Uniform never draws from it; keep its setup cheap.
            zipf: Zipfian::new(
                if dist == Distribution::Uniform {
                    1
                } else {
                    records
                },
                ZIPFIAN_THETA,
            ),
        }
    }

    /// A record id; `inserted` is how many records exist now (loaded plus inserted), which
    /// "latest" counts back from.
    pub fn choose(&self, rng: &mut impl Rng, inserted: u64) -> u64 {
        match self.dist {
            Distribution::Uniform => rng.random_range(0..self.records),
            Distribution::Zipfian => fnv1a(self.zipf.sample(rng)) % self.records,
            Distribution::Latest => {
                let newest = inserted.max(1) - 1;
                newest.saturating_sub(self.zipf.sample(rng))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn keys_are_sixteen_zero_padded_digits() {
        assert_eq!(&format_key(0), b"0000000000000000");
        assert_eq!(&format_key(1234), b"0000000000001234");
        assert_eq!(&format_key(9_999_999_999_999_999), b"9999999999999999");
    }

    #[test]
    fn zipfian_makes_the_first_items_hot_and_stays_in_range() {
        let z = Zipfian::new(1000, ZIPFIAN_THETA);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            counts[z.sample(&mut rng) as usize] += 1;
        }
        // With theta 0.99 over 1000 items, item 0 takes ~13 % of draws and the top 10 ~39 %.
        assert!(counts[0] > 10_000 && counts[0] < 16_000, "{}", counts[0]);
        let top10: u32 = counts[..10].iter().sum();
        assert!(top10 > 33_000 && top10 < 45_000, "{top10}");
        assert!(counts[0] > counts[1] && counts[1] > counts[10]);
    }

    #[test]
    fn uniform_and_scrambled_choices_cover_the_records() {
        let mut rng = SmallRng::seed_from_u64(1);
        for dist in [Distribution::Uniform, Distribution::Zipfian] {
            let c = KeyChooser::new(dist, 100);
            let mut seen = [false; 100];
            for _ in 0..50_000 {
                let id = c.choose(&mut rng, 100);
                seen[id as usize] = true;
            }
            let covered = seen.iter().filter(|s| **s).count();
            // Hashing ranks mod n is not a permutation: some ids get no rank.
            assert!(covered > 75, "{dist}: {covered}");
        }
    }

    #[test]
    fn latest_prefers_the_newest_records() {
        let mut rng = SmallRng::seed_from_u64(3);
        let c = KeyChooser::new(Distribution::Latest, 1000);
        let newest = (0..10_000)
            .filter(|_| c.choose(&mut rng, 1500) >= 1490)
            .count();
        assert!(newest > 3_000, "{newest}");
        assert!((0..1000).all(|_| c.choose(&mut rng, 1500) < 1500));
    }
}
