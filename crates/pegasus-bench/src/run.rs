//! Running a workload: closed loop (N tasks, each sends its next operation when the last
//! one returns) or open loop (operations scheduled at a fixed rate; latency is measured
//! from the scheduled send time, so a slow server is charged for the queueing it causes —
//! no coordinated omission).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::target::{Outcome, Target};
use crate::workload::{OpKind, Shared, WorkloadSpec};

/// How operations are issued.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `concurrency` tasks, each with one operation outstanding.
    Closed {
        /// Outstanding operations.
        concurrency: usize,
    },
    /// Operations sent at `rate` per second, at most `max_inflight` outstanding (beyond that
    /// sends wait, and the wait counts in their latency).
    Open {
        /// Operations per second.
        rate: f64,
        /// Cap on outstanding operations.
        max_inflight: usize,
    },
}

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How operations are issued.
    pub mode: Mode,
    /// Longest run time.
    pub duration: Duration,
    /// Stop after this many operations (a load also stops when every record is in).
    pub max_ops: Option<u64>,
    /// Seed of the task random generators.
    pub seed: u64,
}

/// Latency figures, microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Operations measured.
    pub count: u64,
    /// Mean.
    pub avg_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// 99.99th percentile.
    pub p9999_us: f64,
    /// Largest.
    pub max_us: f64,
}

fn summarize(h: &Histogram<u64>) -> LatencySummary {
    let us = |ns: u64| ns as f64 / 1000.0;
    LatencySummary {
        count: h.len(),
        avg_us: h.mean() / 1000.0,
        p50_us: us(h.value_at_quantile(0.5)),
        p99_us: us(h.value_at_quantile(0.99)),
        p999_us: us(h.value_at_quantile(0.999)),
        p9999_us: us(h.value_at_quantile(0.9999)),
        max_us: us(h.max()),
    }
}

/// What one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// `pegasus` or `redis`, or the suite's label.
    pub target: String,
    /// Workload name.
    pub workload: String,
    /// Key distribution.
    pub distribution: String,
    /// How operations were issued.
    pub mode: Mode,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Operations completed (including failed ones).
    pub ops: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Reads that found nothing.
    pub not_found: u64,
    /// Read-modify-writes whose check lost to a concurrent write.
    pub cas_failed: u64,
    /// Completed operations per second.
    pub throughput: f64,
    /// Latency of every successful operation.
    pub overall: LatencySummary,
    /// Latency by operation kind.
    pub per_op: BTreeMap<String, LatencySummary>,
    /// Operations completed in each second of the run.
    pub per_second: Vec<u64>,
    /// The first error seen, if any.
    pub first_error: Option<String>,
}

impl RunReport {
    /// Latency of one operation kind, if the run had any.
    pub fn op(&self, kind: OpKind) -> Option<&LatencySummary> {
        self.per_op.get(kind.name())
    }

    /// Concurrency of a closed-loop run.
    pub fn concurrency(&self) -> Option<usize> {
        match self.mode {
            Mode::Closed { concurrency } => Some(concurrency),
            Mode::Open { .. } => None,
        }
    }
}

#[allow(clippy::expect_used, reason = "constant, valid bounds")]
fn new_histogram() -> Histogram<u64> {
    // 1 ns .. 100 s at 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// Per-task measurements, merged at the end.
#[derive(Debug)]
struct Recorder {
    start: Instant,
    hist: BTreeMap<OpKind, Histogram<u64>>,
    ops: u64,
    errors: u64,
    not_found: u64,
    cas_failed: u64,
    per_second: Vec<u64>,
    first_error: Option<String>,
}

impl Recorder {
    fn new(start: Instant) -> Self {
        Self {
            start,
            hist: BTreeMap::new(),
            ops: 0,
            errors: 0,
            not_found: 0,
            cas_failed: 0,
            per_second: Vec::new(),
            first_error: None,
        }
    }

    fn record(&mut self, kind: OpKind, latency: Duration, result: &Result<Outcome>, now: Instant) {
        self.ops += 1;
        let second = usize::try_from(now.saturating_duration_since(self.start).as_secs())
            .unwrap_or(usize::MAX)
            .min(100_000);
        if self.per_second.len() <= second {
            self.per_second.resize(second + 1, 0);
        }
        if let Some(slot) = self.per_second.get_mut(second) {
            *slot += 1;
        }
        match result {
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(e.to_string());
                }
                return;
            }
            Ok(Outcome::NotFound) => self.not_found += 1,
            Ok(Outcome::CasFailed) => self.cas_failed += 1,
            Ok(Outcome::Ok) => {}
        }
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.hist
            .entry(kind)
            .or_insert_with(new_histogram)
            .saturating_record(ns);
    }

    fn merge(&mut self, other: Recorder) {
        self.ops += other.ops;
        self.errors += other.errors;
        self.not_found += other.not_found;
        self.cas_failed += other.cas_failed;
        if self.per_second.len() < other.per_second.len() {
            self.per_second.resize(other.per_second.len(), 0);
        }
        for (a, b) in self.per_second.iter_mut().zip(other.per_second) {
            *a += b;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        for (kind, h) in other.hist {
            let mine = self.hist.entry(kind).or_insert_with(new_histogram);
            // Same bounds on both sides: adding cannot fail.
            let _ = mine.add(&h);
        }
    }

    fn report(self, target: &Target, spec: &WorkloadSpec, mode: Mode, seconds: f64) -> RunReport {
        let mut overall = new_histogram();
        for h in self.hist.values() {
            let _ = overall.add(h);
        }
        RunReport {
            target: target.kind().to_string(),
            workload: spec.name.to_string(),
            distribution: spec.distribution.to_string(),
            mode,
            seconds,
            ops: self.ops,
            errors: self.errors,
            not_found: self.not_found,
            cas_failed: self.cas_failed,
            throughput: if seconds > 0.0 {
                self.ops as f64 / seconds
            } else {
                0.0
            },
            overall: summarize(&overall),
            per_op: self
                .hist
                .iter()
                .map(|(k, h)| (k.name().to_string(), summarize(h)))
                .collect(),
            per_second: self.per_second,
            first_error: self.first_error,
        }
    }
}

/// Runs `spec` against `target`. `progress` is advanced by one per completed operation.
pub async fn run(
    target: &Target,
    spec: &WorkloadSpec,
    opts: &RunOptions,
    progress: &ProgressBar,
) -> Result<RunReport> {
    let kinds: Vec<OpKind> = spec.name.mix().iter().map(|(k, _)| *k).collect();
    target.supports(&kinds)?;
    let spec = Arc::new(spec.clone());
    let shared = Arc::new(Shared::new(&spec));
    let start = Instant::now();
    let deadline = start + opts.duration;
    let budget = opts.max_ops.unwrap_or(u64::MAX);
    let ctx = LoopCtx {
        target,
        spec: &spec,
        shared: &shared,
        deadline,
        budget,
        seed: opts.seed,
        progress,
        start,
    };
    let recorder = match opts.mode {
        Mode::Closed { concurrency } => closed_loop(&ctx, concurrency.max(1)).await?,
        Mode::Open { rate, max_inflight } => open_loop(&ctx, rate, max_inflight.max(1)).await?,
    };
    let seconds = start.elapsed().as_secs_f64();
    Ok(recorder.report(target, &spec, opts.mode, seconds))
}

/// What both loops need.
struct LoopCtx<'a> {
    target: &'a Target,
    spec: &'a Arc<WorkloadSpec>,
    shared: &'a Arc<Shared>,
    deadline: Instant,
    budget: u64,
    seed: u64,
    progress: &'a ProgressBar,
    start: Instant,
}

async fn closed_loop(ctx: &LoopCtx<'_>, concurrency: usize) -> Result<Recorder> {
    let (deadline, budget, start) = (ctx.deadline, ctx.budget, ctx.start);
    let issued = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let mut handle = ctx.target.handle().await?;
        let (spec, shared, issued, progress) = (
            ctx.spec.clone(),
            ctx.shared.clone(),
            issued.clone(),
            ctx.progress.clone(),
        );
        let mut rng = SmallRng::seed_from_u64(ctx.seed.wrapping_add(i as u64));
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::new(start);
            loop {
                if Instant::now() >= deadline
                    || issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= budget
                {
                    break;
                }
                let Some(op) = spec.next_op(&shared, &mut rng) else {
                    break;
                };
                let t0 = Instant::now();
                let result = handle.execute(&op).await;
                let now = Instant::now();
                rec.record(op.kind, now - t0, &result, now);
                progress.inc(1);
            }
            rec
        }));
    }
    let mut total = Recorder::new(start);
    for t in tasks {
        if let Ok(rec) = t.await {
            total.merge(rec);
        }
    }
    Ok(total)
}

async fn open_loop(ctx: &LoopCtx<'_>, rate: f64, max_inflight: usize) -> Result<Recorder> {
    let (deadline, budget, start) = (ctx.deadline, ctx.budget, ctx.start);
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let slots = Arc::new(tokio::sync::Semaphore::new(max_inflight));
    let pool: Arc<Mutex<Vec<crate::target::Handle>>> = Arc::new(Mutex::new(Vec::new()));
    let total = Arc::new(Mutex::new(Recorder::new(start)));
    let mut rng = SmallRng::seed_from_u64(ctx.seed);
    let mut sent: u64 = 0;
    while sent < budget {
        let Some(scheduled) = interval
            .checked_mul(u32::try_from(sent).unwrap_or(u32::MAX))
            .and_then(|d| start.checked_add(d))
        else {
            break;
        };
        if scheduled >= deadline {
            break;
        }
        tokio::time::sleep_until(scheduled.into()).await;
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let Some(op) = ctx.spec.next_op(ctx.shared, &mut rng) else {
            break;
        };
        sent += 1;
        let reusable = pool.lock().ok().and_then(|mut p| p.pop());
        let mut handle = match reusable {
            Some(h) => h,
            None => ctx.target.handle().await?,
        };
        let (pool, total, progress) = (pool.clone(), total.clone(), ctx.progress.clone());
        tokio::spawn(async move {
            let result = handle.execute(&op).await;
            let now = Instant::now();
            if let Ok(mut rec) = total.lock() {
                rec.record(op.kind, now - scheduled, &result, now);
            }
            if let Ok(mut p) = pool.lock() {
                p.push(handle);
            }
            progress.inc(1);
            drop(permit);
        });
    }
    // Wait for the operations still out.
    let all = u32::try_from(max_inflight).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    let rec = std::mem::replace(
        &mut *total
            .lock()
            .map_err(|_| crate::error::BenchError::Redis("recorder poisoned".into()))?,
        Recorder::new(start),
    );
    Ok(rec)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn recorder_counts_outcomes_and_merges_histograms() {
        let start = Instant::now();
        let mut a = Recorder::new(start);
        let mut b = Recorder::new(start);
        for i in 1..=100u64 {
            a.record(
                OpKind::Read,
                Duration::from_micros(i),
                &Ok(Outcome::Ok),
                start,
            );
        }
        b.record(
            OpKind::Read,
            Duration::from_micros(1000),
            &Ok(Outcome::NotFound),
            start + Duration::from_secs(2),
        );
        b.record(
            OpKind::Update,
            Duration::from_micros(5),
            &Err(crate::error::BenchError::Redis("x".into())),
            start,
        );
        a.merge(b);
        assert_eq!((a.ops, a.errors, a.not_found), (102, 1, 1));
        assert_eq!(a.per_second, vec![101, 0, 1]);
        let h = &a.hist[&OpKind::Read];
        assert_eq!(h.len(), 101);
        let s = summarize(h);
        assert!((49.0..=52.0).contains(&s.p50_us), "{s:?}");
        assert!((999.0..=1001.0).contains(&s.max_us), "{s:?}");
        assert!(
            !a.hist.contains_key(&OpKind::Update),
            "errors have no latency"
        );
    }
}
