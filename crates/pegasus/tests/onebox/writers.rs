//! Writers for onebox tests: each writes `w<id>-<n>` for n = 0, 1, 2, … (the value is the
//! key), retrying a key every 100 ms until it is acknowledged (a key not written within
//! 60 s fails the test), and records every error the client saw.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pegasus_client::Table;

/// Writers that retry each key until it is acknowledged (so nothing is skipped), keeping
/// every error with the time it happened.
pub struct Writers {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<(Instant, String)>>>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Writers {
    pub fn start(t: &Table, n: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..n)
            .map(|w| {
                let (t, stop, acked, errors) =
                    (t.clone(), stop.clone(), acked.clone(), errors.clone());
                tokio::spawn(async move {
                    let mut done = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("w{w}-{i}");
                        let started = Instant::now();
                        loop {
                            match t.set(key.as_bytes(), b"s", key.as_bytes(), None).await {
                                Ok(()) => break,
                                Err(e) => {
                                    errors.lock().unwrap().push((Instant::now(), e.to_string()));
                                    assert!(
                                        started.elapsed() < Duration::from_secs(60),
                                        "{key} not written within 60 s: {e}"
                                    );
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                }
                            }
                        }
                        acked.fetch_add(1, Ordering::Relaxed);
                        done.push(key);
                        i += 1;
                    }
                    done
                })
            })
            .collect();
        Self {
            stop,
            acked,
            errors,
            tasks,
        }
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Writes per second over `window`.
    pub async fn rate(&self, window: Duration) -> f64 {
        let before = self.acked();
        tokio::time::sleep(window).await;
        (self.acked() - before) as f64 / window.as_secs_f64()
    }

    pub async fn stop(self) -> (Vec<String>, Vec<(Instant, String)>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut keys = Vec::new();
        for t in self.tasks {
            keys.extend(t.await.unwrap());
        }
        let errors = self.errors.lock().unwrap().clone();
        (keys, errors)
    }
}
