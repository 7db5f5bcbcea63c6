//! The replication workers: a fixed pool of threads that runs the rounds of every replica
//! the server hosts, and one timer thread. A replica is a mailbox plus its driver; it is
//! scheduled when input arrives or when the wake-up its driver asked for is due, and
//! otherwise costs nothing — no thread, no tick. What one replica's round does is exactly
//! what it did on a thread of its own: everything queued is one round (group commit falls
//! out of it), the log's fsync blocks only the worker that runs it.
//!
//! Scheduling rules (each replica runs on at most one worker at a time, rounds in order):
//! * A mailbox is idle, queued (in the ready queue once) or running. Posting to an idle
//!   mailbox queues it; posting to a queued or running one only adds the input.
//! * A worker takes a queued replica, drains up to [`BATCH`] inputs, runs one round, then
//!   registers the driver's next wake-up and requeues the replica if input is waiting.
//! * A wake-up is registered only if it is earlier than the one registered; the timer
//!   thread fires a registered wake-up when it is due and skips superseded ones. A wake-up
//!   earlier than needed is harmless (the driver does what is due), so keeping the earlier
//!   of two never loses one.
//! * The ready queue is FIFO: a replica with a steady stream of input goes to the back after
//!   each round, so one hot partition cannot starve the others.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Inputs handled per round before the log is flushed.
pub(crate) const BATCH: usize = 512;

/// What a worker runs: one replica's rounds.
pub(crate) trait Task: Send + 'static {
    /// The inputs this task receives.
    type Input: Send + 'static;
    /// Runs one round with `inputs` (possibly none: a wake-up). `Some(next)`: the local ms
    /// at which it wants its next round without input; `None`: it stopped and must not run
    /// again (it has cleaned up after itself).
    fn round(&mut self, inputs: Vec<Self::Input>) -> Option<u64>;
}

/// The pool: workers, the ready queue, the timers.
pub(crate) struct Workers<T: Task> {
    inner: Arc<Inner<T>>,
}

impl<T: Task> std::fmt::Debug for Workers<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").finish_non_exhaustive()
    }
}

struct Inner<T: Task> {
    started: Instant,
    ready: Mutex<VecDeque<Arc<Slot<T>>>>,
    ready_cv: Condvar,
    timers: Mutex<BinaryHeap<Reverse<Timer<T>>>>,
    timers_cv: Condvar,
    stop: AtomicBool,
}

/// One replica as the pool sees it.
pub(crate) struct Slot<T: Task> {
    mailbox: Mutex<Mailbox<T::Input>>,
    task: Mutex<Option<T>>,
    /// The registered wake-up (pool ms), `u64::MAX` if none.
    wake_at: AtomicU64,
}

struct Mailbox<I> {
    inputs: VecDeque<I>,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Queued,
    Running,
    Stopped,
}

struct Timer<T: Task> {
    at: u64,
    slot: Arc<Slot<T>>,
}

impl<T: Task> PartialEq for Timer<T> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl<T: Task> Eq for Timer<T> {}
impl<T: Task> PartialOrd for Timer<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: Task> Ord for Timer<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl<T: Task> Workers<T> {
    /// Starts `count` workers and the timer thread, named after `name`. `started` is the
    /// instant the tasks' local ms count from (their wake-ups are in that clock).
    pub(crate) fn start(name: &str, count: usize, started: Instant) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            started,
            ready: Mutex::new(VecDeque::new()),
            ready_cv: Condvar::new(),
            timers: Mutex::new(BinaryHeap::new()),
            timers_cv: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        for i in 0..count.max(1) {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || inner.work())?;
        }
        let timer = inner.clone();
        std::thread::Builder::new()
            .name(format!("{name}-timer"))
            .spawn(move || timer.fire_timers())?;
        Ok(Self { inner })
    }

    /// Adds a task; it runs its first round at once (with `first` as its input).
    pub(crate) fn spawn(&self, task: T, first: Vec<T::Input>) -> Handle<T> {
        let slot = Arc::new(Slot {
            mailbox: Mutex::new(Mailbox {
                inputs: first.into(),
                state: State::Idle,
            }),
            task: Mutex::new(Some(task)),
            wake_at: AtomicU64::new(u64::MAX),
        });
        self.inner.schedule(&slot);
        Handle {
            slot,
            pool: self.inner.clone(),
        }
    }
}

impl<T: Task> Workers<T> {
    /// Ends the threads once they finish the round they run (tasks not stopped by then
    /// run no more).
    pub(crate) fn stop(&self) {
        self.inner.stop.store(true, Ordering::Release);
        self.inner.ready_cv.notify_all();
        self.inner.timers_cv.notify_all();
    }
}

impl<T: Task> Drop for Workers<T> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Posts inputs to one task.
pub(crate) struct Handle<T: Task> {
    slot: Arc<Slot<T>>,
    pool: Arc<Inner<T>>,
}

impl<T: Task> std::fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl<T: Task> Handle<T> {
    /// Queues an input; false (and the input dropped) if the task stopped.
    pub(crate) fn post(&self, input: T::Input) -> bool {
        let mut mb = lock(&self.slot.mailbox);
        if mb.state == State::Stopped {
            return false;
        }
        mb.inputs.push_back(input);
        if mb.state == State::Idle {
            mb.state = State::Queued;
            drop(mb);
            self.pool.enqueue(self.slot.clone());
        }
        true
    }
}

impl<T: Task> Inner<T> {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Queues the slot if it is idle (a wake-up, or its first round).
    fn schedule(&self, slot: &Arc<Slot<T>>) {
        let mut mb = lock(&slot.mailbox);
        if mb.state == State::Idle {
            mb.state = State::Queued;
            drop(mb);
            self.enqueue(slot.clone());
        }
    }

    fn enqueue(&self, slot: Arc<Slot<T>>) {
        lock(&self.ready).push_back(slot);
        self.ready_cv.notify_one();
    }

    fn work(&self) {
        loop {
            let slot = {
                let mut ready = lock(&self.ready);
                loop {
                    if self.stop.load(Ordering::Acquire) {
                        return;
                    }
                    if let Some(s) = ready.pop_front() {
                        break s;
                    }
                    ready = match self.ready_cv.wait(ready) {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                }
            };
            self.run(&slot);
        }
    }

    /// One round of a queued slot.
    fn run(&self, slot: &Arc<Slot<T>>) {
        let inputs: Vec<T::Input> = {
            let mut mb = lock(&slot.mailbox);
            if mb.state != State::Queued {
                return;
            }
            mb.state = State::Running;
            let n = mb.inputs.len().min(BATCH);
            mb.inputs.drain(..n).collect()
        };
        let next = {
            let mut task = lock(&slot.task);
            // A task handles its own panics (a replica fails over); one that escapes only
            // stops this task, never the worker.
            let next = task.as_mut().and_then(|t| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.round(inputs)))
                    .unwrap_or(None)
            });
            if next.is_none() {
                *task = None;
            }
            next
        };
        let mut mb = lock(&slot.mailbox);
        match next {
            None => {
                // Stopped: what is still queued is dropped (a write's reply channel closes,
                // and its client gets an error), and nothing is accepted any more.
                mb.state = State::Stopped;
                let dropped = std::mem::take(&mut mb.inputs);
                drop(mb);
                drop(dropped);
            }
            Some(at) => {
                if mb.inputs.is_empty() {
                    mb.state = State::Idle;
                    drop(mb);
                } else {
                    mb.state = State::Queued;
                    drop(mb);
                    self.enqueue(slot.clone());
                }
                self.arm(slot, at);
            }
        }
    }

    /// Registers a wake-up at `at`, unless one as early is registered already.
    fn arm(&self, slot: &Arc<Slot<T>>, at: u64) {
        let mut cur = slot.wake_at.load(Ordering::Acquire);
        loop {
            if at >= cur {
                return;
            }
            match slot
                .wake_at
                .compare_exchange(cur, at, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        let mut timers = lock(&self.timers);
        let earliest = timers.peek().is_none_or(|Reverse(t)| at < t.at);
        timers.push(Reverse(Timer {
            at,
            slot: slot.clone(),
        }));
        drop(timers);
        if earliest {
            self.timers_cv.notify_one();
        }
    }

    /// The timer thread: fires each registered wake-up when it is due.
    fn fire_timers(&self) {
        let mut timers = lock(&self.timers);
        loop {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let now = self.now_ms();
            let next = timers.peek().map(|Reverse(t)| t.at);
            match next {
                Some(at) if at <= now => {
                    let Some(Reverse(t)) = timers.pop() else {
                        continue;
                    };
                    drop(timers);
                    // Superseded by an earlier wake-up (which fired) if it changed.
                    if t.slot
                        .wake_at
                        .compare_exchange(t.at, u64::MAX, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        self.schedule(&t.slot);
                    }
                    timers = lock(&self.timers);
                }
                _ => {
                    let wait = next.map_or(Duration::from_secs(3600), |at| {
                        Duration::from_millis(at.saturating_sub(now))
                    });
                    timers = match self.timers_cv.wait_timeout(timers, wait) {
                        Ok((g, _)) => g,
                        Err(p) => p.into_inner().0,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Records its rounds; asks to wake `wake_in` ms after each; stops on input 0.
    struct Probe {
        started: Instant,
        wake_in: u64,
        rounds: mpsc::Sender<Vec<u32>>,
        running: Arc<AtomicU64>,
    }

    impl Task for Probe {
        type Input = u32;
        fn round(&mut self, inputs: Vec<u32>) -> Option<u64> {
            assert_eq!(
                self.running.fetch_add(1, Ordering::SeqCst),
                0,
                "two workers ran one task at once"
            );
            std::thread::yield_now();
            self.running.fetch_sub(1, Ordering::SeqCst);
            let stop = inputs.contains(&0);
            let _ = self.rounds.send(inputs);
            if stop {
                return None;
            }
            let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            Some(now + self.wake_in)
        }
    }

    fn probe(started: Instant, wake_in: u64) -> (Probe, mpsc::Receiver<Vec<u32>>) {
        let (tx, rx) = mpsc::channel();
        (
            Probe {
                started,
                wake_in,
                rounds: tx,
                running: Arc::new(AtomicU64::new(0)),
            },
            rx,
        )
    }

    #[test]
    fn every_input_reaches_its_task_once_in_order_and_never_on_two_workers() {
        let started = Instant::now();
        let pool = Workers::start("t", 4, started).unwrap();
        let mut handles = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..8 {
            let (p, rx) = probe(started, 3_600_000);
            handles.push(pool.spawn(p, Vec::new()));
            receivers.push(rx);
        }
        for i in 1..=2_000u32 {
            for h in &handles {
                assert!(h.post(i));
            }
        }
        for h in &handles {
            assert!(h.post(0));
        }
        for rx in receivers {
            let mut seen = Vec::new();
            while let Ok(round) = rx.recv_timeout(Duration::from_secs(30)) {
                assert!(round.len() <= BATCH);
                let stop = round.contains(&0);
                seen.extend(round);
                if stop {
                    break;
                }
            }
            let want: Vec<u32> = (1..=2_000).chain([0]).collect();
            assert_eq!(seen, want);
        }
        assert!(!handles[0].post(5), "a stopped task takes no input");
    }

    #[test]
    fn a_task_wakes_when_it_asked_and_not_before() {
        let started = Instant::now();
        let pool = Workers::start("t", 2, started).unwrap();
        let (p, rx) = probe(started, 200);
        let _h = pool.spawn(p, Vec::new());
        // The first round at once, then one wake-up per 200 ms.
        let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(first.is_empty());
        let t0 = Instant::now();
        let woke = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(woke.is_empty());
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(150),
            "woke after {waited:?}, before it asked"
        );
    }

    #[test]
    fn an_idle_task_costs_no_rounds() {
        let started = Instant::now();
        let pool = Workers::start("t", 2, started).unwrap();
        let (p, rx) = probe(started, 3_600_000);
        let h = pool.spawn(p, Vec::new());
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap().is_empty());
        // Nothing is due for an hour: the next round is the one an input brings.
        assert!(h.post(7));
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), vec![7]);
    }
}
