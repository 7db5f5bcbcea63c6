//! Command-line behaviour of the binary: log level and log file options.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn logs_go_to_the_file_given_with_the_level_given() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("meta.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pegasus"))
        .args(["--log-level", "debug,openraft=warn", "--log-file"])
        .arg(&log)
        .args([
            "meta",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--meta",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("serving on") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no log line in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(!text.contains("\u{1b}["), "no colour codes in a log file");
    assert!(text.contains("INFO"), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).trim().is_empty(),
        "nothing on stderr"
    );

    let bad = Command::new(env!("CARGO_BIN_EXE_pegasus"))
        .args(["--log-level", "nonsense==", "check-config", "/dev/null"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--log-level"));
}
