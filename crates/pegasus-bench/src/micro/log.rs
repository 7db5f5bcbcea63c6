//! `pegasus bench log`: mutation-log appends/s with fsync and group commit at 1, 8 and 64
//! writers, next to raw fdatasync calls/s on the same disk.

use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{BenchError, Result};

/// Runs `pegasus bench log`: `seconds` per configuration, `value_size` B puts, in `dir`
/// (default `./bench-log`, removed afterwards).
pub fn bench_log(seconds: u64, value_size: usize, dir: Option<PathBuf>) -> Result<ExitCode> {
    use pegasus_replica::bench::{group_commit, raw_fdatasync};
    let dir = dir.unwrap_or_else(|| PathBuf::from("bench-log"));
    std::fs::create_dir_all(&dir).map_err(BenchError::Local)?;
    let d = std::time::Duration::from_secs(seconds);
    let bar = ProgressBar::new(4);
    bar.set_style(
        ProgressStyle::with_template("{msg:>24} [{bar:20}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("raw fdatasync");
    let raw = raw_fdatasync(&dir, value_size + 60, d).map_err(BenchError::Local)?;
    let mut rows = Vec::new();
    for writers in [1usize, 8, 64] {
        bar.inc(1);
        bar.set_message(format!("{writers} writers"));
        rows.push(group_commit(&dir, writers, value_size, d)?);
    }
    bar.finish_and_clear();
    let _ = std::fs::remove_dir(&dir);
    println!(
        "mutation log on {}: {value_size} B values, fsync on every batch",
        dir.display()
    );
    println!(
        "{:<22}{:>14}{:>14}{:>16}",
        "", "ops/s", "per fsync", "vs fdatasync/s"
    );
    println!(
        "{:<22}{:>14.0}{:>14.1}{:>16}",
        "raw fdatasync",
        raw.ops_per_sec(),
        1.0,
        "1.00x"
    );
    for r in rows {
        println!(
            "{:<22}{:>14.0}{:>14.1}{:>15.2}x",
            format!("log, {} writers", r.writers),
            r.ops_per_sec(),
            r.batch(),
            r.ops_per_sec() / raw.ops_per_sec().max(f64::MIN_POSITIVE)
        );
    }
    Ok(ExitCode::SUCCESS)
}
