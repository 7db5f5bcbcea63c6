//! `pegasus bench run` against a real redis-server started by the test: the same workload
//! code that drives Pegasus writes what it says, and the open loop keeps its schedule.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod onebox;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Redis {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A redis-server of this test's own on a free port. Ready means *this* process answers
/// (its `process_id` in `INFO server`): a port found free a moment ago can be taken by
/// someone else before redis binds it, and then redis exits while a readiness check that
/// only connects would talk to the other listener — the cause of this file's old flake
/// ("Connection refused" once that other listener went away). On such a race, another port.
fn start_redis() -> Redis {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let port = onebox::free_range(1);
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/setup.sh installs it)");
        let ours = format!("process_id:{}", child.id());
        for _ in 0..100 {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            let info = Command::new("redis-cli")
                .args(["-p", &port.to_string(), "INFO", "server"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&info.stdout).contains(&ours) {
                return Redis {
                    port,
                    child,
                    _dir: dir,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("redis-server did not start on any of 5 free ports");
}

fn redis_cli(r: &Redis, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &r.port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn bench(r: &Redis, args: &[&str]) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("runs.json");
    let out = Command::new(env!("CARGO_BIN_EXE_pegasus"))
        .args([
            "bench",
            "run",
            "--target",
            &format!("redis://127.0.0.1:{}", r.port),
        ])
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
}

#[test]
fn bench_run_against_redis_writes_every_record_and_reads_them_back() {
    let r = start_redis();
    let runs = bench(
        &r,
        &[
            "--workload",
            "load,a,f,multi_set_pegasus",
            "--records",
            "1500",
            "--duration",
            "2",
        ],
    );
    let runs = [
        runs,
        bench(
            &r,
            &["--workload", "c", "--records", "1500", "--duration", "1"],
        ),
    ]
    .concat();
    let by = |w: &str| runs.iter().find(|r| r["workload"] == w).unwrap();
    assert_eq!(by("load")["ops"], 1500);
    assert_eq!(by("load")["errors"], 0);
    for w in ["a", "f", "c"] {
        assert_eq!(
            by(w)["not_found"],
            0,
            "{w} read a record the load did not write"
        );
        assert_eq!(by(w)["errors"], 0);
        // A floor that only says the workload ran: the rate itself is the benchmarks' to
        // measure.
        let ops = by(w)["ops"].as_u64().unwrap();
        eprintln!("{w}: {ops} ops in {} s", by(w)["seconds"]);
        assert!(ops > 100, "{w}: {ops} ops");
    }
    // YCSB-F is half reads, half read-modify-writes.
    let f = by("f");
    let (reads, rmw) = (
        f["per_op"]["read"]["count"].as_u64().unwrap(),
        f["per_op"]["read_modify_write"]["count"].as_u64().unwrap(),
    );
    assert!(reads.abs_diff(rmw) * 5 < reads + rmw, "{reads} vs {rmw}");
    // The load wrote 1500 keys (hash key + sort key, 100-byte values); multi_set wrote
    // batches of 10 under other hash keys.
    let v = redis_cli(&r, &["STRLEN", "00000000000014990000000000000000"]);
    assert_eq!(v, "100");
    assert_eq!(
        redis_cli(&r, &["EXISTS", "00000000000015000000000000000000"]),
        "0"
    );
    let keys: u64 = redis_cli(&r, &["DBSIZE"]).parse().unwrap();
    let batches = by("multi_set_pegasus")["ops"].as_u64().unwrap();
    assert!(keys > 1500 && keys <= 1500 + batches * 10, "{keys}");
}

#[test]
fn open_loop_sends_at_the_scheduled_rate() {
    let r = start_redis();
    bench(&r, &["--workload", "load", "--records", "200"]);
    let runs = bench(
        &r,
        &[
            "--workload",
            "c",
            "--records",
            "200",
            "--rate",
            "2000",
            "--duration",
            "2",
        ],
    );
    let ops = runs[0]["ops"].as_u64().unwrap();
    // 2000/s for 2 s is 4000 scheduled sends; none is skipped, none sent early.
    assert!((3900..=4000).contains(&ops), "{ops}");
    assert_eq!(runs[0]["mode"]["open"]["rate"], 2000.0);
    assert_eq!(runs[0]["not_found"], 0);
}

#[test]
fn scans_are_refused_against_redis_with_a_clear_error() {
    let r = start_redis();
    let out = Command::new(env!("CARGO_BIN_EXE_pegasus"))
        .args([
            "bench",
            "run",
            "--target",
            &format!("redis://127.0.0.1:{}", r.port),
        ])
        .args(["--workload", "e", "--duration", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("redis cannot run scan"), "{err}");
}
