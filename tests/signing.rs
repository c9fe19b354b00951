//! The office's SM2 key, signed tree heads and certificates that verify
//! offline: `yibao keys`, `yibao checkpoint sign|verify|check`,
//! `yibao certificate verify FILE --public-key KEY`.

use serde_json::Value;
use sm3::{Digest, Sm3};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::run::{ok, stderr, stdout, yibao};

const FACTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo/facts.jsonl");
const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/policies");
/// Paid 400.00 himself (WeChat, WX20241005093012001): received 2025.
const ZHANG: &str = "520502198503121233";
const ZHANG_REFERENCE: &str = "WX20241005093012001";

/// A ledger of the demo facts in `data`, with a signing key when `keyed`.
fn ledger(data: &Path, keyed: bool) {
    ok(yibao(data, &["init"]));
    ok(yibao(data, &["policy", "load", &format!("{POLICIES}/bijie-2025.toml")]));
    ok(yibao(data, &["import", FACTS]));
    if keyed {
        ok(yibao(data, &["keys", "init"]));
    }
}

fn public_key(data: &Path) -> String {
    data.join("keys/signing.pub").to_str().expect("utf-8").to_string()
}

fn path(path: &Path) -> &str {
    path.to_str().expect("utf-8")
}

/// `yibao checkpoint sign --out FILE` (with `--size`), the file's path.
fn sign(data: &Path, name: &str, size: Option<u64>) -> PathBuf {
    let file = data.join(name);
    let size_text = size.map(|size| size.to_string());
    let mut args = vec!["checkpoint", "sign", "--out", path(&file)];
    if let Some(size) = &size_text {
        args.extend(["--size", size.as_str()]);
    }
    ok(yibao(data, &args));
    file
}

/// Exit code and the report on both streams.
fn run(data: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = yibao(data, args);
    report(&output)
}

fn report(output: &Output) -> (Option<i32>, String) {
    let text = format!("{}{}", stdout(output), stderr(output));
    assert!(!text.contains("panicked"), "{text}");
    (output.status.code(), text)
}

/// `yibao ARGS…` from an empty directory, with no data directory named
/// anywhere: what a hospital holding a file and a public key runs.
fn run_offline(args: &[&str]) -> (Option<i32>, String) {
    let cwd = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_yibao"))
        .args(args)
        .current_dir(cwd.path())
        .env_remove("YIBAO_DATA")
        .env_remove("YIBAO_STORE")
        .output()
        .expect("run yibao");
    let entries: Vec<_> = std::fs::read_dir(cwd.path()).expect("read cwd").collect();
    assert!(entries.is_empty(), "an offline check made files in its directory: {entries:?}");
    report(&output)
}

fn replace_line(file: &Path, field: &str, value: &str) -> PathBuf {
    let text = std::fs::read_to_string(file).expect("read head");
    let changed: Vec<String> = text
        .lines()
        .map(|line| if line.starts_with(&format!("{field}: ")) { format!("{field}: {value}") } else { line.into() })
        .collect();
    let out = file.with_extension(format!("{field}-changed"));
    std::fs::write(&out, changed.join("\n") + "\n").expect("write head");
    out
}

#[test]
fn a_private_key_is_mode_0600_and_never_overwritten() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data, true);
    let key_path = data.join("keys/signing.key");
    let mode = std::fs::metadata(&key_path).expect("key file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let before = std::fs::read(&key_path).expect("read key");
    let (code, text) = run(data, &["keys", "init"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("signing.key exists"), "{text}");
    assert_eq!(std::fs::read(&key_path).expect("read key"), before);
    let shown = ok(yibao(data, &["keys", "show"]));
    let published = std::fs::read_to_string(public_key(data)).expect("public key");
    assert!(shown.contains(&published), "{shown}");
    assert!(shown.starts_with("key id "), "{shown}");
}

#[test]
fn a_signed_head_verifies_offline_and_a_tampered_one_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ledger(&a, true);
    ledger(&b, true);
    let head = sign(&a, "head.txt", None);
    let (code, text) = run_offline(&["checkpoint", "verify", path(&head), "--public-key", &public_key(&a)]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("OK: ") && text.contains("tree size 27"), "{text}");

    let signature = std::fs::read_to_string(&head).expect("head");
    let signature = signature.lines().find_map(|l| l.strip_prefix("signature: ")).expect("signature line");
    let flipped = format!("{}{}", if signature.starts_with('0') { "1" } else { "0" }, &signature[1..]);
    let tampered = replace_line(&head, "signature", &flipped);
    let (code, text) = run_offline(&["checkpoint", "verify", path(&tampered), "--public-key", &public_key(&a)]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("signature: does not verify"), "{text}");

    let grown = replace_line(&head, "tree_size", "28");
    let (code, text) = run_offline(&["checkpoint", "verify", path(&grown), "--public-key", &public_key(&a)]);
    assert_eq!(code, Some(1), "{text}");

    let (code, text) = run_offline(&["checkpoint", "verify", path(&head), "--public-key", &public_key(&b)]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("signature: the head names key"), "{text}");

    // Another ledger's head, signed by its own key, against this log.
    let other = sign(&b, "head.txt", None);
    let (code, text) = run(&a, &["checkpoint", "check", path(&other), "--public-key", &public_key(&b)]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("ledger: the head is of ledger"), "{text}");
    let (code, text) = run(&a, &["checkpoint", "check", path(&head), "--public-key", &public_key(&a)]);
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn a_bad_head_file_names_its_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data, true);
    let head = sign(data, "head.txt", None);
    for (field, value, line) in [("tree_size", "many", 3), ("root", "abc", 4), ("signed_at", "yesterday", 5)] {
        let bad = replace_line(&head, field, value);
        let (code, text) = run_offline(&["checkpoint", "verify", path(&bad), "--public-key", &public_key(data)]);
        assert_eq!(code, Some(2), "{text}");
        assert!(text.contains(&format!("line {line}: field `{field}`")), "{text}");
    }
}

/// The export of `data` with Zhang's payment reference changed and the
/// chain hashed again from there: a history rewritten by someone holding
/// the store, restored into `into`.
fn rewrite_history(data: &Path, into: &Path) {
    let export = data.join("export.jsonl");
    ok(yibao(data, &["export", "--jsonl", "--out", path(&export)]));
    let text = std::fs::read_to_string(&export).expect("export");
    let from = hex::encode(ZHANG_REFERENCE);
    let to = hex::encode(ZHANG_REFERENCE.replace("001", "009"));
    let mut lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("export line")).collect();
    let mut prev = hex::decode(lines[0]["genesis_hash"].as_str().expect("genesis")).expect("hex");
    let mut changed = false;
    for record in lines.iter_mut().skip(1) {
        let stored = record["stored"].as_str().expect("stored").to_string();
        let rewritten = stored.replace(&from, &to);
        changed |= rewritten != stored;
        let bytes = hex::decode(&rewritten).expect("hex");
        let hash: Vec<u8> = Sm3::new().chain_update(&prev).chain_update(&bytes).finalize().to_vec();
        record["stored"] = Value::String(rewritten);
        record["hash"] = Value::String(hex::encode(&hash));
        prev = hash;
    }
    assert!(changed, "the payment's reference is in the export");
    lines[0]["head_hash"] = Value::String(hex::encode(&prev));
    let rewritten: String = lines.iter().map(|line| format!("{line}\n")).collect();
    let file = into.with_extension("jsonl");
    std::fs::write(&file, rewritten).expect("write export");
    ok(yibao(into, &["import", "--restore", path(&file)]));
}

#[test]
fn a_head_against_a_rewritten_history_names_the_root_mismatch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, rewritten) = (dir.path().join("a"), dir.path().join("rewritten"));
    ledger(&a, true);
    let head = sign(&a, "head.txt", None);
    rewrite_history(&a, &rewritten);
    let (code, text) = run(&rewritten, &["checkpoint", "check", path(&head), "--public-key", &public_key(&a)]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("root mismatch at size 27"), "{text}");
    let (code, text) = run(&a, &["checkpoint", "check", path(&head), "--public-key", &public_key(&a)]);
    assert_eq!(code, Some(0), "{text}");
    // `verify` checks the chain, then the signed heads it is given.
    let (code, text) = run(&rewritten, &["verify", "--signed-head", path(&head), "--public-key", &public_key(&a)]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("OK: head 27") && text.contains("root mismatch at size 27"), "{text}");
    let (code, text) = run(&a, &["verify", "--signed-head", path(&head), "--public-key", &public_key(&a)]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("the log's Merkle root at size 27 is the signed root"), "{text}");
    let (code, text) = run(&a, &["verify", "--signed-head", path(&head)]);
    assert_eq!(code, Some(2), "a signed head needs the key to check it with: {text}");
}

#[test]
fn a_later_head_of_a_growing_log_extends_an_earlier_and_another_log_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, rewritten) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("rewritten"));
    ledger(&a, true);
    let early = sign(&a, "early.txt", Some(5));
    let later = sign(&a, "later.txt", None);
    let key = public_key(&a);
    let (code, text) =
        run(&a, &["checkpoint", "verify", path(&later), "--public-key", &key, "--previous", path(&early)]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("extends") && text.contains("from size 5 to size 27"), "{text}");
    let (code, text) =
        run(&a, &["checkpoint", "verify", path(&early), "--public-key", &key, "--previous", path(&later)]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("not an extension"), "{text}");

    // The same ledger id, the history rewritten at position 3, signed
    // with the same key: its head does not extend the early one.
    rewrite_history(&a, &rewritten);
    common::copy_tree(&a.join("keys"), &rewritten.join("keys"));
    let forked = sign(&rewritten, "forked.txt", None);
    let (code, text) =
        run(&rewritten, &["checkpoint", "verify", path(&forked), "--public-key", &key, "--previous", path(&early)]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("not an extension: from size 5 to size 27"), "{text}");

    // Another ledger's head, under the same key.
    ledger(&b, false);
    common::copy_tree(&a.join("keys"), &b.join("keys"));
    let others = sign(&b, "others.txt", None);
    let (code, text) =
        run(&b, &["checkpoint", "verify", path(&others), "--public-key", &key, "--previous", path(&early)]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("ledger: the head is of ledger"), "{text}");
}

/// Zhang's certificate as a JSON data block.
fn certificate_json(data: &Path) -> Value {
    let text = ok(yibao(data, &["certificate", ZHANG, "--year", "2025", "--format", "json"]));
    serde_json::from_str(&text).expect("certificate JSON")
}

fn verify_offline(dir: &Path, name: &str, text: &str, key: &str) -> (Option<i32>, String) {
    let file = dir.join(name);
    std::fs::write(&file, text).expect("write certificate");
    run_offline(&["certificate", "verify", path(&file), "--public-key", key])
}

#[test]
fn a_certificate_verifies_offline_with_only_the_file_and_the_public_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, keyless) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("keyless"));
    ledger(&a, true);
    let key = public_key(&a);
    for format in ["text", "html", "json"] {
        let text = ok(yibao(&a, &["certificate", ZHANG, "--year", "2025", "--format", format]));
        let (code, report) = verify_offline(dir.path(), &format!("zhang.{format}"), &text, &key);
        assert_eq!(code, Some(0), "{format}: {report}");
        assert!(report.contains("1 money fact(s) proven"), "{report}");
        // And against the ledger, as before.
        let (code, report) = run(&a, &["certificate", "verify", path(&dir.path().join(format!("zhang.{format}")))]);
        assert_eq!(code, Some(0), "{format}: {report}");
    }

    // A changed amount, in the printed part and the data block alike.
    let text = ok(yibao(&a, &["certificate", ZHANG, "--year", "2025"]));
    let (code, report) = verify_offline(dir.path(), "changed.txt", &text.replace("400.00", "300.00"), &key);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("field `payments[0].amount`: 300.00 in the certificate, 400.00"), "{report}");
    assert!(report.contains("signature: the office's signature over the certificate's fields"), "{report}");

    // Proofs and heads from another ledger, with its own key.
    ledger(&b, true);
    let genuine = certificate_json(&a);
    let other = certificate_json(&b);
    let mut swapped = genuine.clone();
    swapped["proofs"]["facts"] = other["proofs"]["facts"].clone();
    let (code, report) = verify_offline(dir.path(), "swapped.json", &swapped.to_string(), &key);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("field `proofs.facts[0]`: the record at position 3 is not in the signed tree"), "{report}");
    let mut other_head = genuine.clone();
    other_head["proofs"]["signed_head"] = other["proofs"]["signed_head"].clone();
    let (code, report) = verify_offline(dir.path(), "other-head.json", &other_head.to_string(), &key);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("signed head: signature: the head names key"), "{report}");
    let (code, report) = verify_offline(dir.path(), "genuine.json", &genuine.to_string(), &public_key(&b));
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("signed head: signature"), "{report}");

    // Issued without a key: says so.
    ledger(&keyless, false);
    let unsigned = ok(yibao(&keyless, &["certificate", ZHANG, "--year", "2025"]));
    let (code, report) = verify_offline(dir.path(), "unsigned.txt", &unsigned, &key);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("carries no proofs; ask the office for one issued with a signing key"), "{report}");
}

#[test]
fn a_version_1_certificate_still_verifies_against_the_ledger() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data, false);
    let mut certificate = certificate_json(data);
    assert_eq!(certificate["version"], 2);
    certificate["version"] = Value::from(1);
    let file = data.join("v1.json");
    std::fs::write(&file, certificate.to_string()).expect("write");
    let (code, text) = run(data, &["certificate", "verify", path(&file)]);
    assert_eq!(code, Some(0), "{text}");
    certificate["version"] = Value::from(3);
    std::fs::write(&file, certificate.to_string()).expect("write");
    let (code, text) = run(data, &["certificate", "verify", path(&file)]);
    assert_eq!(code, Some(1), "{text}");
}

/// The service issues the same offline-verifiable certificate when the
/// office has a key.
#[test]
fn a_certificate_from_the_service_verifies_offline() {
    const OFFICE: &str = "office-token-0123456789";
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("a");
    ledger(&data, true);
    let tokens = format!("[[token]]\nname = \"office-1\"\ntoken = \"{OFFICE}\"\nrole = \"office\"\n");
    let server = common::server::spawn(&data, &tokens, &[]);
    for format in ["html", "json"] {
        let url = format!("http://{}/v1/certificates/{ZHANG}/2025?format={format}", server.addr);
        let response =
            ureq::get(&url).set("Authorization", &format!("Bearer {OFFICE}")).call().expect("GET certificate");
        let text = response.into_string().expect("body");
        let (code, report) = verify_offline(dir.path(), &format!("served.{format}"), &text, &public_key(&data));
        assert_eq!(code, Some(0), "{format}: {report}");
        assert!(report.contains("1 money fact(s) proven"), "{report}");
    }
}

/// On a PostgreSQL store the key lives in the data directory and heads
/// and certificates sign and verify as on sled.
#[test]
fn keys_heads_and_certificates_work_the_same_on_postgres() {
    let Some(server) = pgtest::TempPostgres::for_test("keys_heads_and_certificates_work_the_same_on_postgres") else {
        return;
    };
    let url = server.create_database("signing");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("office");
    let on_pg = |args: &[&str]| yibao(&data, &[&["--store", url.as_str()], args].concat());
    ok(on_pg(&["init"]));
    ok(on_pg(&["policy", "load", &format!("{POLICIES}/bijie-2025.toml")]));
    ok(on_pg(&["import", FACTS]));
    ok(on_pg(&["keys", "init"]));
    assert!(data.join("keys/signing.key").is_file());
    let head = data.join("head.txt");
    ok(on_pg(&["checkpoint", "sign", "--out", path(&head)]));
    let (code, text) = report(&on_pg(&["checkpoint", "check", path(&head), "--public-key", &public_key(&data)]));
    assert_eq!(code, Some(0), "{text}");
    let certificate = ok(on_pg(&["certificate", ZHANG, "--year", "2025"]));
    let (code, report) = verify_offline(dir.path(), "pg.txt", &certificate, &public_key(&data));
    assert_eq!(code, Some(0), "{report}");
}
