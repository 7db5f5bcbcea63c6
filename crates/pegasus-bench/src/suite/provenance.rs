//! The suite's provenance line: git revision, date, CPU, memory, kernel and redis-server
//! version, for the record.

use std::process::Command;

fn shell_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Git revision, date and machine, for the record.
pub(super) fn provenance(redis_server: &str) -> String {
    let mut sha = shell_line("git", &["rev-parse", "--short", "HEAD"]);
    if !shell_line("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty()
        && sha != "unknown"
    {
        sha.push_str("-dirty");
    }
    let date = shell_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let redis = shell_line(redis_server, &["--version"]);
    format!(
        "git {sha}, {date}; {cpu}, {cores} cores, {mem_gib:.0} GiB, Linux {}; {redis}",
        kernel.trim()
    )
}
