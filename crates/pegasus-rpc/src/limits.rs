//! What a server port may cost its process: the `[network]` configuration, the descriptor
//! limit and the reserve kept for the server's own files, the caps on connections (per
//! server, per process, per client IP), and the budget of request bytes held in memory.
//!
//! A flood of connections must never take the descriptors RocksDB, the mutation logs and
//! learning need (a flush failing with `EMFILE` used to cost a replica its data), nor the
//! memory the process needs: each connection is admitted against these caps when it is
//! accepted, and each frame against the byte budget once its header says how large it is.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

/// `[network]`: connection admission, timeouts and memory bounds of every server port
/// (meta and replica, THFT and the HTTP admin endpoints sharing it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Pegasus's `conn_threshold_per_ip`: connections one client IP may hold open to one
    /// server; 0 means no limit.
    pub conn_threshold_per_ip: u32,
    /// Connections one server holds open at most; 0 derives it from the descriptor limit
    /// (the limit minus `fd_reserve`). The process as a whole never exceeds that either.
    pub max_connections: u32,
    /// Descriptors never given to connections: RocksDB's files, mutation logs, learning,
    /// outgoing sessions. 0 derives it: a quarter of the limit, at least 1024.
    pub fd_reserve: u32,
    /// A new connection must deliver its first complete frame header (or HTTP request
    /// head) within this many milliseconds of connecting, or it is closed. Pegasus's
    /// clients send their first request right after connecting.
    pub header_timeout_ms: u64,
    /// A frame that has started must keep arriving: a connection that delivers no byte
    /// of an unfinished frame for this many milliseconds is closed. A connection idle
    /// between complete requests stays open.
    pub stall_timeout_ms: u64,
    /// Calls in flight per connection; the connection stops reading while at the limit.
    pub max_inflight_per_connection: u32,
    /// Bytes of requests received and not yet answered, per server. A frame whose header
    /// asks for more than is left waits for it (reading nothing more from that
    /// connection) for at most `stall_timeout_ms`; then its connection is closed.
    pub max_inflight_bytes: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            conn_threshold_per_ip: 0,
            max_connections: 0,
            fd_reserve: 0,
            header_timeout_ms: 5_000,
            stall_timeout_ms: 10_000,
            max_inflight_per_connection: 1024,
            max_inflight_bytes: 256 << 20,
        }
    }
}

impl NetworkConfig {
    /// Checks ranges; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.header_timeout_ms < 100 {
            return Err("header_timeout_ms must be at least 100".into());
        }
        if self.stall_timeout_ms < 100 {
            return Err("stall_timeout_ms must be at least 100".into());
        }
        if self.max_inflight_per_connection == 0 {
            return Err("max_inflight_per_connection must be at least 1".into());
        }
        if self.max_inflight_bytes < 1 << 20 {
            return Err("max_inflight_bytes must be at least 1048576".into());
        }
        Ok(())
    }

    /// The connection caps this configuration gives under the descriptor limit `limit`.
    pub fn caps(&self, limit: u64) -> Caps {
        let reserve = if self.fd_reserve > 0 {
            u64::from(self.fd_reserve)
        } else {
            (limit / 4).max(1024)
        };
        // Never below a handful: a server with a tiny limit still answers someone.
        let process = limit.saturating_sub(reserve).max(16);
        let server = match self.max_connections {
            0 => process,
            n => u64::from(n).min(process),
        };
        Caps {
            limit,
            reserve,
            process: usize::try_from(process).unwrap_or(usize::MAX),
            server: usize::try_from(server).unwrap_or(usize::MAX),
            per_ip: self.conn_threshold_per_ip as usize,
        }
    }
}

/// Connection caps derived from the configuration and the descriptor limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// The descriptor limit (`RLIMIT_NOFILE`, soft, after raising it).
    pub limit: u64,
    /// Descriptors kept from connections.
    pub reserve: u64,
    /// Connections the whole process holds at most.
    pub process: usize,
    /// Connections this server holds at most.
    pub server: usize,
    /// Connections per client IP (0: no limit).
    pub per_ip: usize,
}

/// The descriptor limit before and after [`raise_fd_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now (the hard limit if raising worked).
    pub now: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, once per process, and returns the
/// figures (later calls return the first answer). A failure leaves the limit as it was.
pub fn raise_fd_limit() -> FdLimit {
    static RAISED: OnceLock<FdLimit> = OnceLock::new();
    *RAISED.get_or_init(|| {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
            return FdLimit {
                before: 1024,
                now: 1024,
            };
        };
        // An unlimited hard limit still has the kernel's `nr_open` ceiling; stay at a
        // figure every kernel accepts.
        let target = hard.min(1 << 20);
        let now = if target > soft && setrlimit(Resource::RLIMIT_NOFILE, target, hard).is_ok() {
            target
        } else {
            soft
        };
        FdLimit { before: soft, now }
    })
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The process holds its cap of connections (descriptors are kept for its own work).
    Process,
    /// This server holds `max_connections`.
    Server,
    /// This client IP holds `conn_threshold_per_ip`.
    PerIp,
}

impl Refusal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Process => "process_cap",
            Self::Server => "max_connections",
            Self::PerIp => "conn_threshold_per_ip",
        }
    }
}

/// Connections open in this process, over every server it runs.
static PROCESS_CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

/// Counts one server's connections against its caps.
#[derive(Debug)]
pub struct Gate {
    caps: Caps,
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it gives the slot back.
#[derive(Debug)]
pub struct Admission {
    gate: Arc<Gate>,
    ip: IpAddr,
}

impl Gate {
    /// A gate with these caps.
    pub fn new(caps: Caps) -> Arc<Self> {
        Arc::new(Self {
            caps,
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// The caps.
    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// Connections this server holds.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Admits a connection from `ip`, or says which cap it hits.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        if !take(&PROCESS_CONNECTIONS, self.caps.process) {
            return Err(Refusal::Process);
        }
        if !take(&self.open, self.caps.server) {
            PROCESS_CONNECTIONS.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Server);
        }
        if self.caps.per_ip > 0 {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let n = per_ip.entry(ip).or_insert(0);
            if *n >= self.caps.per_ip {
                drop(per_ip);
                self.open.fetch_sub(1, Ordering::AcqRel);
                PROCESS_CONNECTIONS.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::PerIp);
            }
            *n += 1;
        }
        Ok(Admission {
            gate: self.clone(),
            ip,
        })
    }
}

/// Increments `counter` unless it is at `cap`.
fn take(counter: &AtomicUsize, cap: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < cap).then_some(n + 1)
        })
        .is_ok()
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.gate.caps.per_ip > 0 {
            let mut per_ip = self.gate.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = per_ip.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_ip.remove(&self.ip);
                }
            }
        }
        self.gate.open.fetch_sub(1, Ordering::AcqRel);
        PROCESS_CONNECTIONS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A warning logged at most once per interval, with the count of the ones held back.
#[derive(Debug)]
pub struct Throttled {
    interval_ms: u64,
    last_ms: AtomicU64,
    held_back: AtomicU64,
}

impl Throttled {
    /// At most one line per `interval_ms`.
    pub const fn new(interval_ms: u64) -> Self {
        Self {
            interval_ms,
            last_ms: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// Logs `msg` unless a line went out within the interval.
    pub fn warn(&self, msg: std::fmt::Arguments<'_>) {
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        // Offset by one interval so that the first line always goes out.
        let now = (START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis() as u64)
            .saturating_add(self.interval_ms);
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < self.interval_ms
            || self
                .last_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.held_back.swap(0, Ordering::AcqRel) {
            0 => tracing::warn!("{msg}"),
            n => tracing::warn!("{msg} ({n} more like it since the last line)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_cap_keeps_a_quarter_of_the_descriptors_and_at_least_1024() {
        let c = NetworkConfig::default().caps(20_000);
        assert_eq!((c.reserve, c.process, c.server), (5_000, 15_000, 15_000));
        let c = NetworkConfig::default().caps(2_048);
        assert_eq!((c.reserve, c.process), (1_024, 1_024));
        let small = NetworkConfig {
            max_connections: 100,
            ..NetworkConfig::default()
        };
        assert_eq!(small.caps(20_000).server, 100);
    }

    #[test]
    fn a_gate_refuses_at_its_caps_and_frees_slots_on_drop() {
        let gate = Gate::new(Caps {
            limit: 1 << 20,
            reserve: 0,
            process: usize::MAX,
            server: 3,
            per_ip: 2,
        });
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).unwrap_err(), Refusal::PerIp);
        let _b1 = gate.admit(b).unwrap();
        assert_eq!(gate.admit(b).unwrap_err(), Refusal::Server);
        assert_eq!(gate.open(), 3);
        drop(a1);
        assert_eq!(gate.open(), 2);
        let _a3 = gate.admit(a).unwrap();
    }

    #[test]
    fn raising_the_descriptor_limit_never_lowers_it() {
        let l = raise_fd_limit();
        assert!(l.now >= l.before, "{l:?}");
    }

    #[test]
    fn out_of_range_values_are_refused_with_their_key() {
        let bad = NetworkConfig {
            max_inflight_bytes: 10,
            ..NetworkConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("max_inflight_bytes"));
    }
}
