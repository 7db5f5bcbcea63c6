//! `pegasus bench storage`: partition-store puts and gets against raw RocksDB, same keys
//! and values, same run.

use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use pegasus_storage::bench::{run_storage_bench, StorageBenchOptions};

use crate::error::{BenchError, Result};

/// Runs `pegasus bench storage`: `records` puts and gets of `value_size` B values, raw
/// RocksDB next to the store, in `dir` (a fresh temporary directory by default).
pub fn bench_storage(records: u64, value_size: usize, dir: Option<PathBuf>) -> Result<ExitCode> {
    let tmp = tempfile::tempdir().map_err(BenchError::Local)?;
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).map_err(BenchError::Local)?;
    let opts = StorageBenchOptions {
        records,
        value_len: value_size,
        ..StorageBenchOptions::default()
    };
    let bar = ProgressBar::new(records);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = run_storage_bench(&dir, &opts, &mut |phase, done, _total| {
        bar.set_message(phase.to_string());
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    println!(
        "storage bench: {} records, {} B hash key, {} B sort key, {} B value, RocksDB WAL off",
        opts.records, opts.hash_key_len, opts.sort_key_len, opts.value_len
    );
    println!(
        "{:<28}{:>14}{:>14}{:>10}",
        "", "raw rocksdb", "store", "ratio"
    );
    println!(
        "{:<28}{:>14.0}{:>14.0}{:>9.1}%",
        "put ops/s (one per mutation)",
        report.raw_put.ops_per_sec(),
        report.store_put.ops_per_sec(),
        report.put_ratio() * 100.0
    );
    println!(
        "{:<28}{:>14.0}{:>14.0}{:>9.1}%",
        "get ops/s",
        report.raw_get.ops_per_sec(),
        report.store_get.ops_per_sec(),
        report.get_ratio() * 100.0
    );
    Ok(ExitCode::SUCCESS)
}
