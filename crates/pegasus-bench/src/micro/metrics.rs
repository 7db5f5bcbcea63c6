//! `pegasus bench metrics`: what recording one request's metrics costs (the exact code every
//! request runs), without a recorder and with the Prometheus recorder the servers install.

use std::process::ExitCode;
use std::time::Duration;

use pegasus_rpc::http::MetricsRender;

use crate::error::{BenchError, Result};

/// Nanoseconds per `record_request` call, best of three runs.
fn time_recording(iterations: u64) -> f64 {
    use pegasus_replica::server::record_request;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        for i in 0..iterations {
            let took = Duration::from_nanos(50_000 + (i % 1000) * 100);
            record_request(std::hint::black_box("get"), 1, took, None);
        }
        best = best.min(started.elapsed().as_nanos() as f64 / iterations.max(1) as f64);
    }
    best
}

/// Runs `pegasus bench metrics`: `iterations` recorded requests per measurement, first
/// without a recorder, then after `install_recorder` installed the process-wide one (the
/// servers' Prometheus recorder; it returns its renderer).
pub fn bench_metrics(
    iterations: u64,
    install_recorder: impl FnOnce() -> std::result::Result<
        MetricsRender,
        Box<dyn std::error::Error + Send + Sync>,
    >,
) -> Result<ExitCode> {
    // Each measurement on a fresh thread: `record_request` caches metric handles per thread,
    // and handles taken before the recorder exists record nothing.
    let timed = || {
        std::thread::spawn(move || time_recording(iterations))
            .join()
            .map_err(|_| BenchError::TimingThreadPanicked)
    };
    let bare = timed()?;
    let render = install_recorder().map_err(BenchError::MetricsRecorder)?;
    let recorded = timed()?;
    // The recorder really counted them (3 timed runs).
    let text = render();
    let expected = format!(
        "pegasus_replica_requests_total{{op=\"get\",app_id=\"1\"}} {}",
        3 * iterations
    );
    if !text.contains(&expected) {
        return Err(BenchError::RecorderMissedCalls { expected });
    }
    println!("recording one request's metrics (count + latency histogram, labels op and app_id):");
    println!("  no recorder:         {bare:>8.0} ns");
    println!("  prometheus recorder: {recorded:>8.0} ns");
    println!("  cost per request:    {:>8.0} ns", recorded - bare);
    Ok(ExitCode::SUCCESS)
}
