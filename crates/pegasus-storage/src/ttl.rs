//! Expiry rules, shared by reads and by compaction so that both hide the same records.

use pegasus_core::value::is_expired;

/// The table's `default_ttl` app env, with the moment it took effect.
///
/// Pegasus applies `default_ttl` in two places: writes without a TTL get
/// `expire_ts = now + default_ttl`, and its compaction filter rewrites records that have no
/// TTL to `compaction_time + default_ttl`. That second rule makes expiry depend on when each
/// replica happens to compact. We keep the first rule and replace the second by a
/// deterministic one: a record stored without a TTL expires `default_ttl` seconds after the
/// policy took effect (`since`). Reads and compaction use the same rule, so a record is
/// never visible on one path and gone on another, and no value needs rewriting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TtlPolicy {
    /// Seconds; 0 = no default TTL.
    pub default_ttl: u32,
    /// Pegasus-epoch second at which the policy took effect.
    pub since: u32,
}

impl TtlPolicy {
    /// The expiry a record stored with `stored_expire_ts` effectively has.
    pub fn effective_expire_ts(&self, stored_expire_ts: u32) -> u32 {
        if stored_expire_ts == 0 && self.default_ttl > 0 {
            self.since.saturating_add(self.default_ttl)
        } else {
            stored_expire_ts
        }
    }

    /// The expiry to store for a write carrying `requested` (0 = none), written at `now`.
    pub fn write_expire_ts(&self, requested: u32, now: u32) -> u32 {
        if requested == 0 && self.default_ttl > 0 {
            now.saturating_add(self.default_ttl)
        } else {
            requested
        }
    }

    /// Whether a record stored with `stored_expire_ts` is expired at `now`.
    pub fn is_expired(&self, stored_expire_ts: u32, now: u32) -> bool {
        is_expired(self.effective_expire_ts(stored_expire_ts), now)
    }

    /// Serialises for the meta column family.
    pub fn encode(&self) -> Vec<u8> {
        format!("{},{}", self.default_ttl, self.since).into_bytes()
    }

    /// Parses [`TtlPolicy::encode`]'s output.
    pub fn decode(raw: &[u8]) -> Option<Self> {
        let s = std::str::from_utf8(raw).ok()?;
        let (ttl, since) = s.split_once(',')?;
        Some(Self {
            default_ttl: ttl.parse().ok()?,
            since: since.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_without_ttl_expire_default_ttl_after_policy_start() {
        let p = TtlPolicy {
            default_ttl: 100,
            since: 1000,
        };
        assert_eq!(p.effective_expire_ts(0), 1100);
        assert_eq!(p.effective_expire_ts(500), 500);
        assert!(!p.is_expired(0, 1099));
        assert!(p.is_expired(0, 1100));
        assert_eq!(TtlPolicy::default().effective_expire_ts(0), 0);
    }

    #[test]
    fn writes_without_ttl_get_default_ttl_from_write_time() {
        let p = TtlPolicy {
            default_ttl: 100,
            since: 1000,
        };
        assert_eq!(p.write_expire_ts(0, 2000), 2100);
        assert_eq!(p.write_expire_ts(3000, 2000), 3000);
        assert_eq!(TtlPolicy::default().write_expire_ts(0, 2000), 0);
    }

    #[test]
    fn policy_round_trips_through_meta_encoding() {
        let p = TtlPolicy {
            default_ttl: 7,
            since: 99,
        };
        assert_eq!(TtlPolicy::decode(&p.encode()), Some(p));
        assert_eq!(TtlPolicy::decode(b"garbage"), None);
    }
}
