//! `pegasus bench log`: the disk's fdatasync (appending vs overwriting a preallocated file,
//! one file vs three synced at once) and mutation-log appends/s with group commit at 1, 8
//! and 64 writers, in one run.

use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{BenchError, Result};

/// Runs `pegasus bench log`: `seconds` per configuration, `value_size` B puts, in `dir`
/// (default `./bench-log`, removed afterwards).
pub fn bench_log(seconds: u64, value_size: usize, dir: Option<PathBuf>) -> Result<ExitCode> {
    use pegasus_replica::bench::{group_commit, raw_fdatasync, RawMode};
    let dir = dir.unwrap_or_else(|| PathBuf::from("bench-log"));
    std::fs::create_dir_all(&dir).map_err(BenchError::Local)?;
    let d = std::time::Duration::from_secs(seconds);
    let raw_rows = [
        ("append, 1 file", RawMode::Append, 1usize),
        ("overwrite, 1 file", RawMode::Overwrite, 1),
        ("append, 3 files", RawMode::Append, 3),
        ("overwrite, 3 files", RawMode::Overwrite, 3),
    ];
    let bar = ProgressBar::new((raw_rows.len() + 3) as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>24} [{bar:20}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let record = value_size + 60;
    let mut raw = Vec::new();
    for (label, mode, files) in raw_rows {
        bar.set_message(label);
        raw.push((
            label,
            raw_fdatasync(&dir, record, d, mode, files).map_err(BenchError::Local)?,
        ));
        bar.inc(1);
    }
    let mut rows = Vec::new();
    for writers in [1usize, 8, 64] {
        bar.set_message(format!("{writers} writers"));
        rows.push(group_commit(&dir, writers, value_size, d)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let _ = std::fs::remove_dir(&dir);
    let base = raw.first().map_or(f64::MIN_POSITIVE, |(_, r)| {
        r.ops_per_sec().max(f64::MIN_POSITIVE)
    });
    println!(
        "disk under {}: {record} B records; every row fdatasyncs before it counts an op",
        dir.display()
    );
    println!(
        "{:<34}{:>12}{:>12}{:>14}{:>16}",
        "", "ops/s", "per fsync", "µs per fsync", "vs row 1"
    );
    for (label, r) in &raw {
        println!(
            "{:<34}{:>12.0}{:>12.1}{:>14.0}{:>15.2}x",
            format!("raw fdatasync, {label}"),
            r.ops_per_sec(),
            1.0,
            r.sync_us(),
            r.ops_per_sec() / base
        );
    }
    for r in rows {
        println!(
            "{:<34}{:>12.0}{:>12.1}{:>14.0}{:>15.2}x",
            format!("log, {} writers", r.writers),
            r.ops_per_sec(),
            r.batch(),
            r.secs * 1e6 / r.syncs.max(1) as f64,
            r.ops_per_sec() / base
        );
    }
    Ok(ExitCode::SUCCESS)
}
