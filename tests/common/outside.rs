//! Outside programs a test needs (a browser, a database server): present,
//! the test runs; missing, it says so loudly and skips — except under CI
//! (`CI=true`), where a missing program fails the test, so CI always tests
//! everything while `cargo test --workspace` passes on a fresh machine.

use std::process::{Command, Stdio};

/// Whether `program` runs (`program --version`). Missing: under `CI=true`
/// the test fails with `install`; otherwise a banner on stderr names the
/// test that is skipped and how to install the program, and this is false.
pub fn available(program: &str, test: &str, install: &str) -> bool {
    available_under(under_ci(), program, test, install)
}

/// [`available`] with CI's setting given (for testing the rule itself).
pub fn available_under(ci: bool, program: &str, test: &str, install: &str) -> bool {
    let runs = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if runs {
        return true;
    }
    let message = format!("`{program}` is not on PATH: {test} needs it. Install it ({install}).");
    assert!(!ci, "{message} CI=true requires every outside program");
    eprintln!("\n========================================================================");
    eprintln!("SKIPPED {test}: {message}");
    eprintln!("========================================================================\n");
    false
}

/// `CI=true` (any case) in the environment.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true"))
}
