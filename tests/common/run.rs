//! Running the `yibao` binary on a ledger and reading what it said.

use std::path::Path;
use std::process::{Command, Output};

/// `yibao --data DATA ARGS…`, run to its end.
pub fn yibao(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yibao")).arg("--data").arg(data).args(args).output().expect("run yibao")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The standard output of a run that must succeed.
pub fn ok(output: Output) -> String {
    assert_eq!(output.status.code(), Some(0), "stdout: {}\nstderr: {}", stdout(&output), stderr(&output));
    stdout(&output)
}
