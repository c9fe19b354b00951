//! Who holds a ledger: `DIR/owner`, written by the process that opened the
//! store (and so holds sled's lock) and removed when it closes, so that a
//! second process refused the lock can say which process is in the way.
//!
//! The record is a hint, never the lock itself: a process killed while
//! holding the ledger leaves its record behind, so a reader checks that the
//! named process still runs (on Linux, by `/proc/PID` and the process's start
//! time, which tells a reused PID apart).

use crate::time::UtcTime;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

const OWNER_FILE: &str = "owner";
/// Longest command line recorded, in characters.
const MAX_COMMAND_CHARS: usize = 200;

/// What `DIR/owner` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct OwnerRecord {
    pid: u32,
    command: String,
    /// When the process opened the ledger.
    since: String,
    /// The process's start in clock ticks after boot (`/proc/PID/stat`
    /// field 22), when known: a PID reused by another process has another.
    start_ticks: Option<u64>,
}

/// This process's record in a ledger directory; removed when dropped.
pub(crate) struct OwnerFile {
    path: PathBuf,
}

impl OwnerFile {
    /// Records this process as the holder of the ledger in `dir`. Only a
    /// hint for others: a failure to write it does not stop the open.
    pub fn claim(dir: &Path) -> Option<OwnerFile> {
        let record = OwnerRecord {
            pid: std::process::id(),
            command: command_line(),
            since: UtcTime::now().to_string(),
            start_ticks: start_ticks(std::process::id()),
        };
        let path = dir.join(OWNER_FILE);
        let bytes = serde_json::to_vec(&record).expect("owner records serialize");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(&path).and_then(|mut file| file.write_all(&bytes)).ok()?;
        Some(OwnerFile { path })
    }
}

impl Drop for OwnerFile {
    fn drop(&mut self) {
        // Another process may have claimed the ledger since (after this one
        // was killed and its record left behind): remove only our own.
        if read_record(&self.path).is_some_and(|record| record.pid == std::process::id()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Who holds the ledger in `dir`, in words, for a refused open.
pub(crate) fn describe_holder(dir: &Path) -> String {
    let path = dir.join(OWNER_FILE);
    let Some(record) = read_record(&path) else {
        return format!("which one is not known: {} names none", path.display());
    };
    let named = format!("pid {}, `{}`, holding it since {}", record.pid, record.command, record.since);
    match is_running(&record) {
        Some(true) => named,
        Some(false) => format!("which one is not known: {} names {named}, which is no longer running", path.display()),
        None => format!("{named}, as {} says", path.display()),
    }
}

fn read_record(path: &Path) -> Option<OwnerRecord> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether the recorded process still runs: `None` where `/proc` cannot
/// tell.
fn is_running(record: &OwnerRecord) -> Option<bool> {
    if !Path::new("/proc/self").exists() {
        return None;
    }
    if !Path::new("/proc").join(record.pid.to_string()).exists() {
        return Some(false);
    }
    match (record.start_ticks, start_ticks(record.pid)) {
        (Some(recorded), Some(now)) => Some(recorded == now),
        _ => Some(true),
    }
}

/// Field 22 of `/proc/PID/stat`. The command name (field 2) is in
/// parentheses and may hold spaces, so fields are counted after its `)`.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields 3 onwards: state is the first, starttime the 20th.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

fn command_line() -> String {
    let mut words = std::env::args_os().map(|word| word.to_string_lossy().into_owned());
    let program = words.next().map(|program| {
        Path::new(&program).file_name().map_or(program.clone(), |name| name.to_string_lossy().into_owned())
    });
    let command = program.into_iter().chain(words).collect::<Vec<_>>().join(" ");
    command.chars().take(MAX_COMMAND_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_holder_is_named_and_its_record_removed_on_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let owner = OwnerFile::claim(dir.path()).expect("claimed");
        let said = describe_holder(dir.path());
        assert!(said.starts_with(&format!("pid {}, `", std::process::id())), "{said}");
        drop(owner);
        assert!(!dir.path().join(OWNER_FILE).exists());
        assert!(describe_holder(dir.path()).contains("which one is not known"));
    }

    #[test]
    fn a_record_of_a_reused_pid_names_no_holder() {
        let Some(ticks) = start_ticks(std::process::id()) else {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "/proc/self/stat is needed in CI");
            eprintln!("SKIPPED: no /proc/self/stat to tell processes apart");
            return;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let record = OwnerRecord {
            pid: std::process::id(),
            command: "yibao serve".into(),
            since: "2026-01-01T00:00:00Z".into(),
            // Our PID, started at another moment: the PID was reused.
            start_ticks: Some(ticks + 1),
        };
        std::fs::write(dir.path().join(OWNER_FILE), serde_json::to_vec(&record).expect("json")).expect("write");
        let said = describe_holder(dir.path());
        assert!(said.contains("`yibao serve`") && said.contains("no longer running"), "{said}");
    }
}
