//! The official Pegasus Python client (PyPI `pypegasus3==0.0.1.1`, unchanged) against a
//! real onebox: set/get/ttl/exist/remove, TTL expiry, multi_set/multi_get (keys and range),
//! sort keys, multi_del, sort_key_count, an ordered scanner and unordered scanners.
//!
//! The venv comes from `scripts/setup.sh` (`compat/python/requirements.txt`);
//! `PEGASUS_PYVENV` overrides its location.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod onebox;

use std::path::PathBuf;
use std::process::Command;

use onebox::{serial, Onebox};

fn python() -> PathBuf {
    let venv = std::env::var_os("PEGASUS_PYVENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/pegasus-rs/pyvenv")
        });
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "{} is missing: run scripts/setup.sh (or scripts/test.sh), which creates the venv",
        py.display()
    );
    py
}

#[test]
fn official_python_client_works_unchanged() {
    let py = python();
    let _g = serial();
    let ob = Onebox::start(3, 8);
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../compat/python/test_pypegasus3.py");
    let metas = ob
        .metas
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let out = Command::new(py)
        .arg("-W")
        .arg("ignore")
        .arg(&script)
        .arg(&metas)
        .arg("temp")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pypegasus3 failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- onebox\n{}",
        ob.logs()
    );
    for check in [
        "ok init",
        "ok get",
        "ok ttl",
        "ok expired value is gone",
        "ok multi_get range",
        "ok get_scanner",
        "ok unordered scanners",
    ] {
        assert!(
            stdout.lines().any(|l| l == check),
            "missing {check:?} in\n{stdout}"
        );
    }
}
