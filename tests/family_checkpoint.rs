//! The family projection's checkpoint (`DIR/projections/family.ckpt`) as the
//! CLI uses it: answers are the same with it, without it, after the log
//! grew and with a checkpoint that cannot be used (rebuilt, with a note).

use projections::family::Family;
use projections::Projection;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FACTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo/facts.jsonl");
const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/policies");

/// The demo's employee, a member the demo binds to him, and one it does not.
const HOLDER: &str = "520502197811204159";
const MOTHER: &str = "520502195205085226";
const ZHANG: &str = "520502198503121233";

fn yibao(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yibao")).arg("--data").arg(data).args(args).output().expect("run yibao")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ok(output: Output) -> String {
    assert_eq!(output.status.code(), Some(0), "stdout: {}\nstderr: {}", stdout(&output), stderr(&output));
    stdout(&output)
}

fn head(data: &Path) -> u64 {
    let text = ok(yibao(data, &["verify"]));
    let line = text.lines().find(|l| l.starts_with("OK: head")).expect("head line");
    line.split_whitespace().nth(2).and_then(|n| n.parse().ok()).expect("position")
}

/// Bijie 2025 and Guigang 2021 policies, then the demo facts.
fn ledger(data: &Path) {
    ok(yibao(data, &["init"]));
    for name in ["bijie-2025.toml", "guigang-2021.toml"] {
        ok(yibao(data, &["policy", "load", &format!("{POLICIES}/{name}")]));
    }
    ok(yibao(data, &["import", FACTS]));
}

fn checkpoint(data: &Path) -> PathBuf {
    data.join("projections").join("family.ckpt")
}

fn list(data: &Path) -> String {
    ok(yibao(data, &["family", "list", HOLDER]))
}

/// `family list` with the checkpoint removed first: a rebuild from the log.
fn list_rebuilt(data: &Path) -> String {
    std::fs::remove_file(checkpoint(data)).expect("remove the checkpoint");
    let listed = list(data);
    assert!(checkpoint(data).exists(), "the rebuilt projection is saved");
    listed
}

fn saved_position(data: &Path) -> u64 {
    Family::load(&checkpoint(data)).expect("a usable checkpoint").position()
}

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path).expect("metadata").ino()
}

#[test]
fn family_list_is_the_same_with_and_without_a_checkpoint_and_after_the_log_grew() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    // The import's decision read the projection and saved it, before
    // appending; the next command catches it up.
    assert_eq!(saved_position(data), 2);
    let listed = list(data);
    assert_eq!(saved_position(data), head(data));
    assert!(listed.contains("520502********5226") && listed.contains("BJ-DJ-2024-000101"), "{listed}");
    let saved = inode(&checkpoint(data));
    assert_eq!(list(data), listed);
    assert_eq!(inode(&checkpoint(data)), saved, "nothing new: the checkpoint is not written again");
    assert_eq!(list_rebuilt(data), listed);

    // The log grows by a binding through the CLI and a revocation imported:
    // each command catches the checkpoint up and saves it.
    let bound = ok(yibao(
        data,
        &[
            "family",
            "bind",
            "--holder",
            HOLDER,
            "--account-province",
            "520000",
            "--member",
            ZHANG,
            "--relation",
            "sibling",
            "--on",
            "2024-10-05",
        ],
    ));
    assert!(bound.contains("recorded at position"), "{bound}");
    let revocation = dir.path().join("revoke.jsonl");
    let fact = format!(
        r#"{{"type": "family_binding_revoked", "v": 1, "holder": "{HOLDER}", "member": "{MOTHER}", "revoked_on": "2024-12-01"}}"#
    );
    std::fs::write(&revocation, format!("{fact}\n")).expect("write");
    ok(yibao(data, &["import", revocation.to_str().expect("utf-8 path")]));
    assert_eq!(saved_position(data), head(data) - 1, "saved by the import's decision, before appending");

    let grown = list(data);
    assert_eq!(saved_position(data), head(data));
    assert!(grown.contains("520502********1233") && grown.contains("revoked 2024-12-01"), "{grown}");
    assert!(grown.contains(&format!("answer reflects log position {}", head(data))), "{grown}");
    assert_eq!(list_rebuilt(data), grown);
    assert_eq!(list(data), grown);
}

#[test]
fn an_unusable_checkpoint_is_rebuilt_with_a_note() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, other) = (dir.path().join("a"), dir.path().join("b"));
    ledger(&data);
    ledger(&other);
    let listed = list(&data);

    std::fs::write(checkpoint(&data), b"garbage").expect("write");
    let output = yibao(&data, &["family", "list", HOLDER]);
    let note = stderr(&output);
    assert_eq!(ok(output), listed);
    assert!(note.contains("is not a family checkpoint") && note.contains("rebuilding"), "{note}");
    assert_eq!(saved_position(&data), head(&data), "the rebuilt projection replaces it");

    // The same facts in another ledger: the same positions, other hashes.
    std::fs::copy(checkpoint(&other), checkpoint(&data)).expect("copy");
    let output = yibao(&data, &["family", "list", HOLDER]);
    let note = stderr(&output);
    assert_eq!(ok(output), listed);
    assert!(note.contains("does not match the log") && note.contains("rebuilding"), "{note}");
    let output = yibao(&data, &["family", "list", HOLDER]);
    assert_eq!(stderr(&output), "", "the rebuilt checkpoint is usable");
    assert_eq!(ok(output), listed);
}
