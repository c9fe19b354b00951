//! A reader that goes away (`yibao history ID | head -1`, `… | true`) ends
//! a command quietly with exit 0, as `log` and `export` always did: never a
//! panic (exit 101), never "the ledger failed" (exit 3).

use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;

use common::server::BIN;

const PERSON: &str = "520502198503121233";
const HOLDER: &str = "520502197811204159";

/// Runs `yibao ARGS` with standard output a pipe whose reading end is
/// already closed: every write fails with a broken pipe.
fn with_closed_stdout(data: &Path, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .output()
        .expect("run yibao")
}

#[test]
fn every_answer_stops_quietly_when_its_reader_goes_away() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let demo = Command::new(BIN).arg("--data").arg(&data).arg("demo").output().expect("run demo");
    assert!(demo.status.success(), "demo: {}", String::from_utf8_lossy(&demo.stderr));
    let commands: &[&[&str]] = &[
        &["history", PERSON],
        &["unpaid", "--region", "520500", "--year", "2025"],
        &["coverage", PERSON],
        &["coverage", PERSON, "--json"],
        &["verify"],
        &["replay", "--year", "2025"],
        &["replay", "--year", "2025", "--json"],
        &["family", "list", HOLDER],
        &["family", "account", HOLDER],
        &["access", PERSON],
        &["certificate", PERSON, "--year", "2025"],
        &["log", "--from", "1", "--limit", "5"],
        &["log", "--json"],
        &["export", "--jsonl"],
        &["generate", "--persons", "2000"],
    ];
    for args in commands {
        let output = with_closed_stdout(&data, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "yibao {args:?} panicked on a closed stdout:\n{stderr}");
        assert_eq!(output.status.code(), Some(0), "yibao {args:?} on a closed stdout:\n{stderr}");
    }
}
