//! The two workloads: per-key registers recorded for the linearizability checker, and
//! Pegasus's kill-test verifier (sequential ids, retried until acknowledged, read back).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pegasus_check::{Op, OpKind, OpResult, Value};
use pegasus_client::{CasCheckType, CheckAndSetOptions, Client, ClientConfig, Table};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Counts of operation outcomes.
#[derive(Debug, Default)]
pub struct Counters {
    /// Operations invoked.
    pub invoked: AtomicU64,
    /// Operations with a definite success.
    pub ok: AtomicU64,
    /// Operations that definitely did not take effect (failed reads).
    pub fail: AtomicU64,
    /// Operations whose effect is unknown (a write that errored or timed out).
    pub info: AtomicU64,
}

/// Shared state of a run's workloads.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    /// The register history.
    pub history: Mutex<Vec<Op>>,
    /// Outcome counts of the register workload.
    pub counters: Counters,
    /// Latencies (µs) of successful register operations, with their completion time (ms
    /// since start), for percentiles per phase.
    pub latencies: Mutex<Vec<(u64, u64)>>,
    /// Stale-read probes answered (see `stale_read_probe`).
    pub stale_probes: AtomicU64,
    stop: AtomicBool,
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            history: Mutex::new(Vec::new()),
            counters: Counters::default(),
            latencies: Mutex::new(Vec::new()),
            stale_probes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        })
    }

    /// Microseconds since the run started.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Tells every workload task to finish its current operation and stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn push(&self, op: Op) {
        if let Ok(mut h) = self.history.lock() {
            h.push(op);
        }
    }

    /// Records one operation of the register history.
    pub fn push_op(&self, key: u64, kind: OpKind, invoke: u64, complete: Option<(u64, OpResult)>) {
        self.push(Op {
            key,
            kind,
            invoke,
            complete,
        });
    }
}

/// The hash key of register `k`.
pub fn register_key(k: u64) -> Vec<u8> {
    format!("chaos_reg_{k}").into_bytes()
}

/// The partition of `temp` a register lives in.
pub fn partition_of(hash_key: &[u8], partitions: i32) -> u64 {
    pegasus_core::key::key_hash(hash_key, b"") % u64::try_from(partitions.max(1)).unwrap_or(1)
}

/// A register's value as read: every value this workload writes is a decimal integer;
/// anything else is reported as a value no operation wrote, which the checker rejects.
pub fn read_value(raw: Option<bytes::Bytes>) -> Value {
    raw.map(|b| {
        std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(i64::MIN)
    })
}

/// Options of the register workload.
#[derive(Debug, Clone, Copy)]
pub struct RegisterOptions {
    /// Registers.
    pub keys: u64,
    /// Client tasks, each with its own `Client` (its own routing cache, as separate
    /// application processes would have).
    pub clients: u64,
    /// Per-operation time budget of the client.
    pub op_timeout: Duration,
    /// Seed.
    pub seed: u64,
}

/// Runs the register workload until the recorder is stopped.
pub async fn registers(
    metas: Vec<std::net::SocketAddr>,
    opts: RegisterOptions,
    rec: Arc<Recorder>,
) {
    let mut tasks = Vec::new();
    for c in 0..opts.clients {
        let rec = rec.clone();
        let metas = metas.clone();
        tasks.push(tokio::spawn(async move {
            let client = Client::new(ClientConfig::new(metas));
            let table = loop {
                match client.open_table("temp").await {
                    Ok(t) => break t.with_timeout(opts.op_timeout),
                    Err(_) if !rec.stopped() => {
                        tokio::time::sleep(Duration::from_millis(200)).await
                    }
                    Err(_) => return,
                }
            };
            let mut rng = SmallRng::seed_from_u64(opts.seed.wrapping_mul(1000).wrapping_add(c));
            let mut next_value = (c + 1) * 1_000_000_000;
            let mut last_read: std::collections::HashMap<u64, Value> = Default::default();
            while !rec.stopped() {
                let key = rng.random_range(0..opts.keys.max(1));
                let roll: u32 = rng.random_range(0..100);
                let kind = if roll < 40 {
                    OpKind::Get
                } else if roll < 70 {
                    next_value += 1;
                    OpKind::Set(i64::try_from(next_value).unwrap_or(i64::MAX))
                } else if roll < 90 {
                    next_value += 1;
                    OpKind::Cas {
                        expect: last_read.get(&key).copied().flatten(),
                        new: i64::try_from(next_value).unwrap_or(i64::MAX),
                    }
                } else {
                    OpKind::Incr(1)
                };
                one_op(&table, &rec, key, kind, &mut last_read).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn one_op(
    table: &Table,
    rec: &Recorder,
    key: u64,
    kind: OpKind,
    last_read: &mut std::collections::HashMap<u64, Value>,
) {
    let hk = register_key(key);
    rec.counters.invoked.fetch_add(1, Ordering::Relaxed);
    let invoke = rec.now_us();
    let started = Instant::now();
    let result: Result<OpResult, ()> = match kind {
        OpKind::Get => table
            .get(&hk, b"")
            .await
            .map(|v| OpResult::Read(read_value(v)))
            .map_err(|_| ()),
        OpKind::Set(v) => table
            .set(&hk, b"", v.to_string().as_bytes(), None)
            .await
            .map(|()| OpResult::Written)
            .map_err(|_| ()),
        OpKind::Cas { expect, new } => {
            let (check, operand) = match expect {
                Some(e) => (CasCheckType::ValueBytesEqual, e.to_string()),
                None => (CasCheckType::ValueNotExist, String::new()),
            };
            table
                .check_and_set(
                    &hk,
                    b"",
                    check,
                    operand.as_bytes(),
                    new.to_string().as_bytes(),
                    &CheckAndSetOptions::default(),
                )
                .await
                .map(|r| OpResult::Cas(r.set_succeed))
                .map_err(|_| ())
        }
        OpKind::Incr(d) => table
            .incr(&hk, b"", d, None)
            .await
            .map(OpResult::Incr)
            .map_err(|_| ()),
    };
    let complete = rec.now_us();
    match result {
        Ok(r) => {
            if let OpResult::Read(v) = r {
                last_read.insert(key, v);
            }
            rec.counters.ok.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut l) = rec.latencies.lock() {
                l.push((
                    complete / 1000,
                    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                ));
            }
            rec.push(Op {
                key,
                kind,
                invoke,
                complete: Some((complete, r)),
            });
        }
        // A failed read changed nothing: it leaves the history.
        Err(()) if kind == OpKind::Get => {
            rec.counters.fail.fetch_add(1, Ordering::Relaxed);
        }
        // A failed write may still have taken effect (a timeout after sending, a primary
        // change): it stays in the history with an unknown outcome.
        Err(()) => {
            rec.counters.info.fetch_add(1, Ordering::Relaxed);
            rec.push(Op {
                key,
                kind,
                invoke,
                complete: None,
            });
        }
    }
}

/// State of the kill-test verifier.
#[derive(Debug, Default)]
pub struct NoLoss {
    next: AtomicU64,
    /// Ids whose write was acknowledged, in acknowledgement order.
    pub acked: Mutex<Vec<u64>>,
    /// Acknowledged ids a read-back did not find (or found wrong) while the run went on.
    pub lost_during: Mutex<BTreeSet<u64>>,
}

/// Key, sort key and value of kill-test id `id` (Pegasus's kill_test format).
pub fn kill_test_record(id: u64) -> (String, String, String) {
    (
        format!("kill_test_hash_key_{id}"),
        format!("kill_test_sort_key_{id}"),
        format!("kill_test_value_{id}"),
    )
}

/// Pegasus's kill-test verifier: `writers` tasks write sequential ids, each retried until
/// acknowledged; one task keeps reading acknowledged ids back.
pub async fn no_loss(
    table: Table,
    writers: u64,
    state: Arc<NoLoss>,
    rec: Arc<Recorder>,
    seed: u64,
) {
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (table, state, rec) = (table.clone(), state.clone(), rec.clone());
        tasks.push(tokio::spawn(async move {
            while !rec.stopped() {
                let id = state.next.fetch_add(1, Ordering::Relaxed);
                let (hk, sk, v) = kill_test_record(id);
                while !rec.stopped() {
                    if table
                        .set(hk.as_bytes(), sk.as_bytes(), v.as_bytes(), None)
                        .await
                        .is_ok()
                    {
                        if let Ok(mut a) = state.acked.lock() {
                            a.push(id);
                        }
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    let (reader_state, reader_rec) = (state.clone(), rec.clone());
    tasks.push(tokio::spawn(async move {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
        while !reader_rec.stopped() {
            let pick = reader_state.acked.lock().ok().and_then(|a| {
                let n = a.len();
                (n > 0)
                    .then(|| a.get(rng.random_range(0..n)).copied())
                    .flatten()
            });
            let Some(id) = pick else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let (hk, sk, v) = kill_test_record(id);
            if let Ok(got) = table.get(hk.as_bytes(), sk.as_bytes()).await {
                if got.as_deref() != Some(v.as_bytes()) {
                    if let Ok(mut l) = reader_state.lost_during.lock() {
                        l.insert(id);
                    }
                }
            }
        }
    }));
    for t in tasks {
        let _ = t.await;
    }
}

/// After heal: reads every acknowledged id back (32 at a time); returns the ids missing or
/// wrong, or unreadable after five tries.
pub async fn verify_all(table: &Table, state: &NoLoss, within: Duration) -> Verified {
    use futures::StreamExt;
    let deadline = Instant::now() + within;
    let ids: Vec<u64> = state.acked.lock().map(|a| a.clone()).unwrap_or_default();
    let checks = futures::stream::iter(ids).map(|id| {
        let table = table.clone();
        async move {
            let (hk, sk, v) = kill_test_record(id);
            for _ in 0..5 {
                if Instant::now() >= deadline {
                    break;
                }
                match table.get(hk.as_bytes(), sk.as_bytes()).await {
                    Ok(got) => return (id, Some(got.as_deref() == Some(v.as_bytes()))),
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            (id, None)
        }
    });
    let outcomes: Vec<(u64, Option<bool>)> = checks.buffer_unordered(32).collect().await;
    let mut lost: Vec<u64> = outcomes
        .iter()
        .filter(|(_, ok)| *ok == Some(false))
        .map(|(id, _)| *id)
        .collect();
    lost.sort_unstable();
    Verified {
        lost,
        unverified: outcomes.iter().filter(|(_, ok)| ok.is_none()).count() as u64,
    }
}

/// What the final read-back found.
#[derive(Debug, Default)]
pub struct Verified {
    /// Acknowledged ids read back missing or wrong.
    pub lost: Vec<u64>,
    /// Acknowledged ids that could not be read (their partition unavailable, or the time
    /// ran out): neither lost nor confirmed.
    pub unverified: u64,
}
