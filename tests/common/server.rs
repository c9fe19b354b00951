//! A running `yibao serve` for end-to-end tests: the real binary on
//! 127.0.0.1 (port 0), killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_yibao");

pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a `yibao` command on `data`, which must succeed.
pub fn cli(data: &Path, args: &[&str]) {
    let output = Command::new(BIN).arg("--data").arg(data).args(args).output().expect("run yibao");
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// Writes `tokens_toml` beside the ledger and starts the server on it; the
/// address is the first line the server prints (`listening on ADDR`).
/// `flags`: more flags for `yibao serve`.
pub fn spawn(data: &Path, tokens_toml: &str, flags: &[&str]) -> Server {
    let tokens = data.join("tokens.toml");
    write_private(&tokens, tokens_toml);
    let mut child = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(["serve", "--addr", "127.0.0.1:0", "--tokens"])
        .arg(&tokens)
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start yibao serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).expect("read the first line");
    let addr = first.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {first}")).to_string();
    Server { child, addr }
}

/// Writes a file readable by its owner only, as the service wants its
/// tokens file.
pub fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write the file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    }
}
