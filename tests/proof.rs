//! `yibao proof`: a proof written with --json verifies offline against the
//! tree head (exit 0); a changed hash does not (exit 1, naming what
//! failed); a file that is not a proof is bad input (exit 2, naming the
//! line and field); a position past the head names the head. `import`
//! keeps the tree store current.

mod common;

use common::run::{ok, stderr, stdout, yibao};
use std::path::Path;

/// A ledger of a generated prefecture: several hundred records.
fn ledger(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    let facts = dir.join("facts.jsonl");
    ok(yibao(&data, &["init"]));
    ok(yibao(&data, &["generate", "--persons", "150", "--out", &facts.to_string_lossy()]));
    ok(yibao(&data, &["import", &facts.to_string_lossy()]));
    data
}

fn head_of(data: &Path, tree_size: Option<u64>) -> (u64, String) {
    let mut args = vec!["proof", "head", "--json"];
    let size = tree_size.map(|size| size.to_string());
    if let Some(size) = &size {
        args.extend(["--tree-size", size]);
    }
    let head: serde_json::Value = serde_json::from_str(&ok(yibao(data, &args))).expect("head json");
    (head["tree_size"].as_u64().expect("size"), head["root"].as_str().expect("root").to_string())
}

fn verify(data: &Path, file: &Path, root: &str, tree_size: u64) -> std::process::Output {
    let size = tree_size.to_string();
    yibao(data, &["proof", "verify", &file.to_string_lossy(), "--root", root, "--tree-size", &size])
}

#[test]
fn an_inclusion_proof_verifies_offline_and_a_changed_hash_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = ledger(dir.path());
    let (size, root) = head_of(&data, None);
    assert!(size > 300, "several chunks: {size}");
    let store = std::fs::metadata(data.join("merkle/tree")).expect("import wrote the tree store").len();
    assert_eq!(store, 56 + 64 * (size / 256) + 32, "the store is current after the import");

    let file = dir.path().join("inclusion.json");
    std::fs::write(&file, ok(yibao(&data, &["proof", "inclusion", "200", "--json"]))).expect("write");
    // Verification opens no ledger: a data directory that does not exist.
    let nowhere = dir.path().join("nowhere");
    let verified = ok(verify(&nowhere, &file, &root, size));
    assert!(verified.starts_with("verified: position 200"), "{verified}");
    assert!(!nowhere.exists());

    let text = std::fs::read_to_string(&file).expect("read");
    let proof: serde_json::Value = serde_json::from_str(&text).expect("json");
    let second = proof["path"][1].as_str().expect("a path hash").to_string();
    let changed = format!("{}{}", if second.starts_with('0') { "1" } else { "0" }, &second[1..]);
    std::fs::write(&file, text.replace(&second, &changed)).expect("write");
    let refused = verify(&nowhere, &file, &root, size);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("not verified") && stderr(&refused).contains("root"), "{}", stderr(&refused));

    // The right proof against another head is not verified either.
    std::fs::write(&file, &text).expect("write");
    let (_, old_root) = head_of(&data, Some(size - 1));
    let other = verify(&nowhere, &file, &old_root, size - 1);
    assert_eq!(other.status.code(), Some(1), "{}", stderr(&other));
}

#[test]
fn a_consistency_proof_verifies_against_either_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = ledger(dir.path());
    let (size, root) = head_of(&data, None);
    let (_, old_root) = head_of(&data, Some(100));
    let file = dir.path().join("consistency.json");
    std::fs::write(&file, ok(yibao(&data, &["proof", "consistency", "100", "--json"]))).expect("write");
    ok(verify(&data, &file, &root, size));
    ok(verify(&data, &file, &old_root, 100));
    let wrong = verify(&data, &file, &root, 100);
    assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("old_size and old_root"), "{}", stderr(&wrong));
}

#[test]
fn a_file_that_is_not_a_proof_names_the_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = ledger(dir.path());
    let (size, root) = head_of(&data, None);
    let file = dir.path().join("inclusion.json");
    let text = ok(yibao(&data, &["proof", "inclusion", "3", "--json"]));
    let proof: serde_json::Value = serde_json::from_str(&text).expect("json");
    let third = proof["path"][2].as_str().expect("a path hash").to_string();
    std::fs::write(&file, text.replace(&third, "not-hex")).expect("write");
    let bad = verify(&data, &file, &root, size);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    // The pretty JSON has the path's third hash on line 9.
    assert!(stderr(&bad).contains("line 9: field `path[2]`"), "{}", stderr(&bad));

    std::fs::write(&file, text.replace(&format!("\"tree_size\": {size}"), "\"tree_size\": \"many\"")).expect("write");
    let bad = verify(&data, &file, &root, size);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("line 4: field `tree_size`"), "{}", stderr(&bad));
}

#[test]
fn a_position_past_the_head_names_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = ledger(dir.path());
    let (size, _) = head_of(&data, None);
    let past = (size + 1).to_string();
    let refused = yibao(&data, &["proof", "inclusion", &past]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains(&format!("head is at position {size}")), "{}", stderr(&refused));
    assert!(stdout(&refused).is_empty());
}

#[test]
fn proofs_on_postgres_equal_those_on_sled() {
    let Some(server) = pgtest::TempPostgres::for_test("proofs_on_postgres_equal_those_on_sled") else { return };
    let url = server.create_database("proofs");
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = ledger(dir.path());
    let export = dir.path().join("export.jsonl");
    ok(yibao(&sled, &["export", "--out", &export.to_string_lossy()]));
    let pg = dir.path().join("pg");
    ok(yibao(&pg, &["--store", &url, "import", "--restore", &export.to_string_lossy()]));
    let asked: [&[&str]; 4] = [
        &["proof", "head", "--json"],
        &["proof", "inclusion", "200", "--json"],
        &["proof", "inclusion", "3", "--tree-size", "300", "--json"],
        &["proof", "consistency", "100", "--json"],
    ];
    for args in asked {
        let on_pg = ok(yibao(&pg, &[&["--store", url.as_str()], args].concat()));
        assert_eq!(on_pg, ok(yibao(&sled, args)), "{args:?}");
    }
    assert!(pg.join("merkle/tree").exists(), "the tree store is kept beside the PostgreSQL ledger");
}
