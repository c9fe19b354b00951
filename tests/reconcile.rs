//! `yibao reconcile` end to end: receipts against the demo ledger, each
//! break kind, the recorded run, bad input.

use std::path::Path;
use std::process::{Command, Output};

const RECEIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/receipts");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo/facts.jsonl");

fn yibao(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yibao")).arg("--data").arg(data).args(args).output().expect("run yibao")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ledger(data: &Path) {
    assert_eq!(yibao(data, &["init"]).status.code(), Some(0));
    for file in [DEMO.to_string(), format!("{RECEIPTS}/ledger-payments.jsonl")] {
        let imported = yibao(data, &["import", &file]);
        assert_eq!(imported.status.code(), Some(0), "{}", text(&imported.stderr));
    }
}

fn head(data: &Path) -> String {
    text(&yibao(data, &["verify"]).stdout).lines().find(|l| l.starts_with("OK: head")).unwrap_or_default().to_string()
}

#[test]
fn a_clean_statement_reconciles_and_the_run_is_recorded_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let clean = format!("{RECEIPTS}/camt053-clean.xml");
    let args = ["reconcile", clean.as_str(), "--from", "2024-10-01", "--to", "2024-11-30"];
    let first = yibao(data, &args);
    assert_eq!(first.status.code(), Some(0), "{}{}", text(&first.stdout), text(&first.stderr));
    assert!(text(&first.stdout).contains("fully reconciled"), "{}", text(&first.stdout));
    assert!(text(&first.stderr).contains("recorded at position 53"), "{}", text(&first.stderr));
    let log = yibao(data, &["log", "--from", "53", "--json"]);
    assert!(text(&log.stdout).contains("reconciliation_recorded"), "{}", text(&log.stdout));
    // The same files against the same head: the run is already recorded.
    let again = yibao(data, &args);
    assert_eq!(again.status.code(), Some(0));
    assert!(text(&again.stderr).contains("already recorded at position 53"), "{}", text(&again.stderr));
}

#[test]
fn every_break_is_listed_with_its_source_and_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let breaks = format!("{RECEIPTS}/camt053-breaks.xml");
    let csv_out = data.join("findings.csv");
    let csv_text = csv_out.to_str().expect("utf-8");
    let output = yibao(data, &["reconcile", &breaks, "--from", "2024-10-01", "--to", "2024-11-30", "--csv", csv_text]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let report = text(&output.stdout);
    for expected in [
        "amount mismatch: receipt GZYB20241020101500 380.00",
        "ledger position 43",
        "duplicate receipt: receipt NX20241108000102",
        "receipt only: receipt AP2024102699990001",
        "Ntry[4]",
        "ledger only; ledger position 44 alipay/AP2024102514300018",
        "matched by amount payer date",
    ] {
        assert!(report.contains(expected), "missing `{expected}` in:\n{report}");
    }
    let findings = std::fs::read_to_string(&csv_out).expect("csv written");
    assert!(findings.starts_with("result,side,"), "{findings}");
    assert!(findings.contains("amount_mismatch,payment,"), "{findings}");
    let as_json =
        yibao(data, &["reconcile", &breaks, "--from", "2024-10-01", "--to", "2024-11-30", "--json", "--no-record"]);
    let value: serde_json::Value = serde_json::from_slice(&as_json.stdout).expect("JSON");
    assert_eq!(value["clean"], false);
    assert_eq!(value["breaks"].as_array().map(Vec::len), Some(4));
}

#[test]
fn other_formats_and_unreadable_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let gbk = format!("{RECEIPTS}/nongxin-20241108-20241112.csv");
    let mapping = format!("{RECEIPTS}/nongxin.toml");
    let mapped = yibao(
        data,
        &["reconcile", &gbk, "--mapping", &mapping, "--from", "2024-11-08", "--to", "2024-11-12", "--no-record"],
    );
    assert_eq!(mapped.status.code(), Some(0), "{}{}", text(&mapped.stdout), text(&mapped.stderr));
    let wechat = format!("{RECEIPTS}/wechat-20241101.csv");
    let bill = yibao(data, &["reconcile", &wechat, "--from", "2024-11-01", "--to", "2024-11-01", "--no-record"]);
    assert_eq!(bill.status.code(), Some(0), "{}{}", text(&bill.stdout), text(&bill.stderr));

    let before = head(data);
    let bad = data.join("bad.xml");
    std::fs::write(&bad, "<Document><BkToCstmrStmt>").expect("write");
    let refused = yibao(data, &["reconcile", bad.to_str().expect("utf-8")]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("bad.xml"), "{}", text(&refused.stderr));
    assert_eq!(head(data), before, "an unreadable file recorded something");
    let no_mapping = yibao(data, &["reconcile", &gbk, "--format", "csv"]);
    assert_eq!(no_mapping.status.code(), Some(2));
    assert!(text(&no_mapping.stderr).contains("--mapping"), "{}", text(&no_mapping.stderr));
}
