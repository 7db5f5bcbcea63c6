//! Time: the Pegasus epoch and an injectable clock.
//!
//! Pegasus stores expiry times as seconds since 2016-01-01T00:00:00Z in a `u32`. Everything
//! that needs "now" takes a [`Clock`], so tests and the simulator can drive time by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Unix time of the Pegasus epoch, 2016-01-01T00:00:00Z.
pub const PEGASUS_EPOCH_UNIX_SECS: u64 = 1_451_606_400;

/// A source of wall-clock time, in microseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Microseconds since the Unix epoch.
    fn now_micros(&self) -> u64;

    /// Seconds since the Pegasus epoch, saturating at the ends of the `u32` range.
    fn pegasus_now(&self) -> u32 {
        unix_micros_to_pegasus_secs(self.now_micros())
    }
}

/// Converts Unix microseconds to Pegasus-epoch seconds (0 before the epoch, `u32::MAX` after
/// 2152).
pub fn unix_micros_to_pegasus_secs(micros: u64) -> u32 {
    let secs = (micros / 1_000_000).saturating_sub(PEGASUS_EPOCH_UNIX_SECS);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_micros(&self) -> u64 {
        #[expect(
            clippy::disallowed_methods,
            reason = "SystemClock is the one place real wall-clock time is read"
        )]
        let now = std::time::SystemTime::now();
        now.duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to. Cloning shares the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    micros: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock that reads `unix_micros`.
    pub fn new(unix_micros: u64) -> Self {
        Self {
            micros: Arc::new(AtomicU64::new(unix_micros)),
        }
    }

    /// A clock at the given Pegasus-epoch second.
    pub fn at_pegasus_secs(secs: u32) -> Self {
        Self::new((PEGASUS_EPOCH_UNIX_SECS + u64::from(secs)) * 1_000_000)
    }

    /// Moves the clock forward by `micros`.
    pub fn advance_micros(&self, micros: u64) {
        self.micros.fetch_add(micros, Ordering::SeqCst);
    }

    /// Moves the clock forward by whole seconds.
    pub fn advance_secs(&self, secs: u64) {
        self.advance_micros(secs.saturating_mul(1_000_000));
    }

    /// Sets the clock.
    pub fn set_micros(&self, micros: u64) {
        self.micros.store(micros, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> u64 {
        self.micros.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pegasus_epoch_is_2016() {
        let c = ManualClock::new(PEGASUS_EPOCH_UNIX_SECS * 1_000_000 + 5_500_000);
        assert_eq!(c.pegasus_now(), 5);
        assert_eq!(unix_micros_to_pegasus_secs(0), 0);
    }

    #[test]
    fn system_clock_is_after_2026() {
        // 2026-01-01 is 315_532_800 seconds after the Pegasus epoch.
        assert!(SystemClock.pegasus_now() > 315_532_800);
    }

    #[test]
    fn manual_clock_clones_share_time() {
        let a = ManualClock::at_pegasus_secs(100);
        let b = a.clone();
        a.advance_secs(10);
        assert_eq!(b.pegasus_now(), 110);
    }
}
