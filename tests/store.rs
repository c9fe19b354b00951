//! What operators and auditors see of the store itself, end to end: the
//! modes of the files yibao writes, a damaged store, a ledger held by
//! another process, and `verify` right after a crash inside an append.

mod common;

use common::server::{cli, spawn, BIN};
use ledger::log::block::{self, BlockView};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const FACTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo/facts.jsonl");
const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/policies");
const PERSON: &str = "520502198503121233";

fn yibao(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("--data").arg(data).args(args).output().expect("run yibao")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ok(data: &Path, args: &[&str]) -> Output {
    let output = yibao(data, args);
    assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
    output
}

fn demo_ledger(data: &Path) {
    cli(data, &["init"]);
    cli(data, &["policy", "load", &format!("{POLICIES}/bijie-2025.toml")]);
    cli(data, &["import", FACTS]);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// Every file and directory under `dir`, with its mode.
fn modes_under(dir: &Path, out: &mut Vec<(String, u32)>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        out.push((path.display().to_string(), mode(&path)));
        if path.is_dir() {
            modes_under(&path, out);
        }
    }
}

/// The ledger holds full ID numbers and names: what yibao writes is the
/// owner's only, whatever the umask it was started with, and a data
/// directory made open to others beforehand is closed when yibao opens it.
#[test]
fn everything_yibao_writes_is_the_owners_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    demo_ledger(&data);
    ok(&data, &["coverage", PERSON]);
    let export = dir.path().join("export.jsonl");
    ok(&data, &["export", "--jsonl", "--out", export.to_str().expect("utf-8 path")]);
    // The service creates the access log (and its key) when it starts.
    let tokens = "[[token]]\nname = \"office-1\"\ntoken = \"office-token-0123456789\"\nrole = \"office\"\n";
    drop(spawn(&data, tokens, &[]));
    assert_eq!(mode(&data), 0o700, "the data directory");
    assert_eq!(mode(&export), 0o600, "the export");
    let mut modes = Vec::new();
    modes_under(&data, &mut modes);
    for written in ["persons.sqlite", "manifest", "access.log"] {
        assert!(modes.iter().any(|(path, _)| path.ends_with(written)), "{written}: {modes:?}");
    }
    assert!(modes.iter().any(|(path, _)| path.ends_with("access.log")), "{modes:?}");
    for (path, mode) in modes {
        // The tokens file is the test's own, not yibao's.
        if path.ends_with("tokens.toml") {
            continue;
        }
        let expected = if Path::new(&path).is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, expected, "{path} is {mode:o}");
    }
}

/// Flips one byte in the middle of every copy of `pattern` in sled's file.
fn flip_in_sled_file(data: &Path, pattern: &[u8]) -> usize {
    let path = data.join("log/db");
    let mut bytes = std::fs::read(&path).expect("read sled's file");
    let mut n_copies = 0;
    let mut at = 0;
    while at + pattern.len() <= bytes.len() {
        if &bytes[at..at + pattern.len()] == pattern {
            bytes[at + pattern.len() / 2] ^= 0x20;
            n_copies += 1;
            at += pattern.len();
        } else {
            at += 1;
        }
    }
    std::fs::write(&path, bytes).expect("write sled's file");
    n_copies
}

/// A byte changed in sled's own file: every command says that the store is
/// damaged and to restore from an export, with exit 3, never sled's bare
/// text; `verify` reports it as its finding (exit 1), reads the files
/// without sled and names the first damaged position.
#[test]
fn a_damaged_store_says_so_and_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    demo_ledger(data);
    // Reopened, sled keeps a snapshot and checks its pages when it reads them.
    for _ in 0..3 {
        ok(data, &["log", "--limit", "1"]);
    }
    // A payment's channel reference, stored in its event and its key.
    assert!(flip_in_sled_file(data, b"AP2025041016000042") > 0);
    let export = dir.path().join("export.jsonl");
    for args in [
        vec!["log"],
        vec!["coverage", PERSON],
        vec!["history", PERSON],
        vec!["import", FACTS],
        vec!["export", "--out", export.to_str().expect("utf-8 path")],
        vec!["pay", "--id", PERSON, "--year", "2026", "--amount", "400.00", "--channel", "wechat", "--ref", "X1"],
    ] {
        let output = yibao(data, &args);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(3), "{args:?}: {message}");
        assert!(message.contains("the ledger store is damaged"), "{args:?}: {message}");
        assert!(message.contains("restore from an export (`yibao import --restore FILE`)"), "{args:?}: {message}");
        assert!(!message.contains("backtrace") && !message.contains("panicked"), "{args:?}: {message}");
    }
    let verify = yibao(data, &["verify"]);
    let (report, message) = (stdout(&verify), stderr(&verify));
    assert_eq!(verify.status.code(), Some(1), "{report}{message}");
    assert!(report.contains("FAILED: the ledger store"), "{report}");
    // Read without sled, the report names the first damaged position.
    assert!(report.contains("read without sled: ") && report.contains("first damaged position: "), "{report}");
    assert!(message.contains("yibao salvage --out FILE"), "{message}");
    assert!(message.contains("restore from an export (`yibao import --restore FILE`)"), "{message}");
}

/// While the service holds the ledger, another command says so and names
/// it (pid, command, since when), with exit 3; once it is gone, the ledger
/// opens again and its stale record is replaced.
#[test]
fn a_ledger_in_use_names_the_process_that_holds_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    demo_ledger(data);
    let tokens = "[[token]]\nname = \"office-1\"\ntoken = \"office-token-0123456789\"\nrole = \"office\"\n";
    let server = spawn(data, tokens, &[]);
    let pid = server.child.id();
    for args in [vec!["log"], vec!["verify"], vec!["import", FACTS]] {
        let output = yibao(data, &args);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(3), "{args:?}: {message}");
        assert!(message.contains("in use by another process"), "{args:?}: {message}");
        assert!(message.contains(&format!("pid {pid}, `yibao --data")), "{args:?}: {message}");
        assert!(message.contains(" serve --addr 127.0.0.1:0"), "{args:?}: {message}");
        assert!(message.contains("holding it since"), "{args:?}: {message}");
        assert!(!message.contains("WouldBlock"), "{args:?}: {message}");
    }
    // The refused commands did not disturb the service.
    let health = ureq::get(&format!("http://{}/v1/health", server.addr)).call().expect("health");
    assert_eq!(health.status(), 200);
    // Killed, the service leaves its record behind; the lock goes with it.
    drop(server);
    assert!(data.join("owner").exists());
    ok(data, &["log", "--limit", "1"]);
    assert!(!data.join("owner").exists(), "a clean close removes the record");
}

/// Right after a crash inside an import, `verify` reports what readers
/// see: the head of the whole requests, and the unfinished import after
/// it, which the next ordinary open removes (and the head stays).
#[test]
fn verify_after_a_crash_inside_an_import_reports_the_durable_head_and_the_discarded_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    demo_ledger(&data);
    let durable =
        stdout(&ok(&data, &["verify"])).lines().find(|l| l.starts_with("OK: head")).expect("head").to_string();
    let after: u64 = durable.split(' ').nth(2).and_then(|p| p.parse().ok()).expect("head position");
    let facts = dir.path().join("generated.jsonl");
    ok(&data, &["generate", "--persons", "1500", "--out", facts.to_str().expect("utf-8 path")]);
    // The anchor (`DIR/head`) as the import found it: a crash inside the
    // import leaves that one, the import never closed the log.
    let anchor_before = std::fs::read(data.join("head")).expect("the anchor of the last close");
    ok(&data, &["import", facts.to_str().expect("utf-8 path")]);
    std::fs::write(data.join("head"), anchor_before).expect("the anchor as the crash left it");
    // The crash: the import's last block never reached the disk.
    let n_discarded = {
        let db = ledger::log::open_store(&data).expect("sled");
        let blocks = db.open_tree("blocks").expect("tree");
        let (last, _) = blocks.last().expect("read").expect("a block");
        let last_first = block::position_of_key(&last).expect("key");
        assert!(last_first > after + 1, "the import is one block; the scenario did not happen");
        blocks.remove(last).expect("remove");
        db.flush().expect("flush");
        let mut n_records = 0;
        for item in blocks.range(block::key(after + 1)..) {
            let (_, value) = item.expect("read");
            n_records += u64::from(BlockView::parse(&value).expect("a block").n_records);
        }
        n_records
    };
    for _ in 0..2 {
        let verify = ok(&data, &["verify"]);
        let report = stdout(&verify);
        assert!(report.contains(&format!("{durable}\n")), "{report}");
        let said = format!(
            "an unfinished append of {n_discarded} records after position {after} was found and is discarded (never acknowledged"
        );
        assert!(report.contains(&said), "{report}");
    }
    // A read open (`log`) reads up to the durable head and leaves the
    // unfinished append where it is.
    ok(&data, &["log", "--limit", "1"]);
    assert!(stdout(&ok(&data, &["verify"])).contains("unfinished append"), "a read open removed it");
    // The next writing open removes it; the head is the one verify named.
    ok(&data, &["init"]);
    let report = stdout(&ok(&data, &["verify"]));
    assert!(report.contains(&format!("{durable}\n")) && !report.contains("unfinished"), "{report}");
}

/// A byte changed anywhere in sled's file, in a store that was never
/// reopened (sled has no snapshot yet and reads everything at open, where
/// sled 0.34 may stop early without an error, or panic): `verify` reports
/// the whole log or names the damage, never a shorter log as OK, and every
/// answer is a result or "the ledger store is damaged", never a panic.
#[test]
fn a_flipped_byte_anywhere_is_found_or_harmless_never_a_shorter_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pristine = dir.path().join("pristine");
    demo_ledger(&pristine);
    let db = std::fs::read(pristine.join("log").join("db")).expect("read sled's file");
    // The head as written, read from a copy (a read reopens the store).
    let reference = dir.path().join("reference");
    common::copy_tree(&pristine, &reference);
    let full = stdout(&ok(&reference, &["verify"]));
    let full_head = full.lines().find(|line| line.starts_with("OK: head")).expect("verify's head line").to_string();
    assert!(!full_head.starts_with("OK: head 0 "), "{full}");
    let used = db.iter().rposition(|&byte| byte != 0).expect("a written store");
    for eighth in 1..8 {
        let offset = used * eighth / 8;
        let data = dir.path().join(format!("flipped-{eighth}"));
        common::copy_tree(&pristine, &data);
        let mut bytes = db.clone();
        bytes[offset] ^= 0x5a;
        std::fs::write(data.join("log").join("db"), bytes).expect("write the flipped file");
        let verify = yibao(&data, &["verify"]);
        let report = stdout(&verify);
        match verify.status.code() {
            Some(0) => assert!(report.contains(&full_head), "byte {offset}: a shorter log verified:\n{report}"),
            Some(1) => assert!(report.contains("FAILED"), "byte {offset}:\n{report}"),
            other => panic!("byte {offset}: verify exited {other:?}:\n{report}{}", stderr(&verify)),
        }
        for args in [&["verify"][..], &["log", "--limit", "3"][..], &["coverage", PERSON][..]] {
            let output = yibao(&data, args);
            let message = stderr(&output);
            assert!(!message.contains("panicked"), "byte {offset}, {args:?}: {message}");
            if output.status.code() == Some(3) {
                assert!(message.contains("the ledger store is damaged"), "byte {offset}, {args:?}: {message}");
            }
        }
    }
}
