//! Human-readable and markdown renderings of [`RunReport`]s.

use std::fmt::Write as _;

use crate::run::{LatencySummary, Mode, RunReport};

fn mode_text(mode: &Mode) -> String {
    match mode {
        Mode::Closed { concurrency } => format!("closed c={concurrency}"),
        Mode::Open { rate, max_inflight } => format!("open {rate:.0}/s (≤{max_inflight} out)"),
    }
}

/// Microseconds with a unit that fits.
pub fn fmt_us(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn latency_cells(l: &LatencySummary) -> String {
    format!(
        "avg {} p50 {} p99 {} p99.9 {} p99.99 {} max {}",
        fmt_us(l.avg_us),
        fmt_us(l.p50_us),
        fmt_us(l.p99_us),
        fmt_us(l.p999_us),
        fmt_us(l.p9999_us),
        fmt_us(l.max_us)
    )
}

/// Several lines describing one run, for a terminal.
pub fn text(r: &RunReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} {} ({}, {}): {} ops in {:.1} s = {:.0} ops/s, errors {}, not found {}, cas lost {}",
        r.target,
        r.workload,
        r.distribution,
        mode_text(&r.mode),
        r.ops,
        r.seconds,
        r.throughput,
        r.errors,
        r.not_found,
        r.cas_failed
    );
    let _ = writeln!(s, "  all     {}", latency_cells(&r.overall));
    for (op, l) in &r.per_op {
        let _ = writeln!(s, "  {op:<7} {}", latency_cells(l));
    }
    if let Some(e) = &r.first_error {
        let _ = writeln!(s, "  first error: {e}");
    }
    s
}

/// A markdown table with one row per run.
pub fn markdown_table(reports: &[&RunReport]) -> String {
    let mut s = String::from(
        "| target | workload | mode | ops/s | P50 | P99 | P99.9 | P99.99 | errors |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in reports {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            r.target,
            r.workload,
            mode_text(&r.mode),
            r.throughput,
            fmt_us(r.overall.p50_us),
            fmt_us(r.overall.p99_us),
            fmt_us(r.overall.p999_us),
            fmt_us(r.overall.p9999_us),
            r.errors
        );
    }
    s
}

/// Replaces the text between `<!-- {tag}:begin -->` and `<!-- {tag}:end -->` in `doc`
/// with `body`, or appends a marked section when the markers are absent.
pub fn replace_section(doc: &str, tag: &str, body: &str) -> String {
    let begin = format!("<!-- {tag}:begin -->");
    let end = format!("<!-- {tag}:end -->");
    let section = format!("{begin}\n{body}\n{end}");
    match (doc.find(&begin), doc.find(&end)) {
        (Some(b), Some(e)) if b < e => {
            let (head, rest) = doc.split_at(b);
            let tail = rest.get(e - b + end.len()..).unwrap_or_default();
            format!("{head}{section}{tail}")
        }
        _ => {
            let sep = if doc.ends_with('\n') || doc.is_empty() {
                ""
            } else {
                "\n"
            };
            format!("{doc}{sep}\n{section}\n")
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn sections_are_replaced_in_place_or_appended() {
        let doc = "# B\n\nbefore\n<!-- s:begin -->\nold\n<!-- s:end -->\nafter\n";
        let got = replace_section(doc, "s", "new");
        assert_eq!(
            got,
            "# B\n\nbefore\n<!-- s:begin -->\nnew\n<!-- s:end -->\nafter\n"
        );
        assert_eq!(replace_section(&got, "s", "new"), got);
        let appended = replace_section("# B\n", "s", "x");
        assert_eq!(appended, "# B\n\n<!-- s:begin -->\nx\n<!-- s:end -->\n");
    }

    #[test]
    fn latencies_print_with_fitting_units() {
        assert_eq!(fmt_us(87.4), "87 µs");
        assert_eq!(fmt_us(25_300.0), "25.3 ms");
    }
}
