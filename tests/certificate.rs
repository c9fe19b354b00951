//! `yibao certificate verify`: every field a reader relies on is checked
//! against the log, in the printed part and in the data block, for text,
//! HTML and JSON certificates; a genuine certificate whose person-year
//! changed since issue exits 4.

use std::path::Path;
use std::process::{Command, Output};

const FACTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo/facts.jsonl");
const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/policies");
/// Paid 400.00 himself in the concentrated period: received, covered all 2025.
const ZHANG: &str = "520502198503121233";

fn yibao(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yibao")).arg("--data").arg(data).args(args).output().expect("run yibao")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn ok(output: Output) -> String {
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "stdout: {}\nstderr: {err}", stdout(&output));
    stdout(&output)
}

fn ledger(data: &Path) {
    ok(yibao(data, &["init"]));
    ok(yibao(data, &["policy", "load", &format!("{POLICIES}/bijie-2025.toml")]));
    ok(yibao(data, &["import", FACTS]));
}

/// Zhang's 2025 certificate in `format`, as issued.
fn issue(data: &Path, format: &str) -> String {
    ok(yibao(data, &["certificate", ZHANG, "--year", "2025", "--format", format]))
}

/// `verify` of `text`: (exit code, report).
fn verify(data: &Path, text: &str) -> (Option<i32>, String) {
    let path = data.join("certificate.under-test");
    std::fs::write(&path, text).expect("write the certificate");
    let output = yibao(data, &["certificate", "verify", path.to_str().expect("utf-8")]);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
    (output.status.code(), stdout(&output))
}

/// Each change made alike in the printed part and the data block (so the
/// two agree with each other) is found against the log, naming the field.
#[test]
fn a_consistent_change_of_any_field_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let text = issue(data, "text");
    assert_eq!(verify(data, &text).0, Some(0), "{}", verify(data, &text).1);
    let issued_at = text.lines().find_map(|l| l.strip_prefix("issued ")?.split(' ').next()).expect("issue time");
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("张伟", "李四")], "name"),
        (&[("2025-01-01", "2024-06-01")], "covered_from"),
        (&[("2025-12-31", "2026-06-30")], "covered_until"),
        (&[("520500 毕节市", "520100 毕节市"), ("\"520500\"", "\"520100\"")], "region"),
        (&[("毕节市", "贵阳市")], "region_name"),
        (
            &[("coverage year   2025", "coverage year   2024"), ("\"coverage_year\": 2025", "\"coverage_year\": 2024")],
            "coverage_year",
        ),
        (
            &[
                ("premium due     400.00", "premium due     300.00"),
                ("\"premium_due\": \"400.00\"", "\"premium_due\": \"300.00\""),
            ],
            "premium_due",
        ),
        (&[("520502********1233", "520502********1234")], "person"),
        (&[(issued_at, "2020-01-01T09:00:00+08:00")], "issued_at"),
    ];
    for (replacements, field) in cases {
        let mut forged = text.clone();
        for (from, to) in replacements.iter() {
            assert!(forged.contains(from), "`{from}` not in the certificate");
            forged = forged.replace(from, to);
        }
        let (code, report) = verify(data, &forged);
        assert_eq!(code, Some(1), "{field}: {report}");
        assert!(report.contains(&format!("FAILED: field `{field}`")), "{field} not named: {report}");
        assert!(!report.contains("differs from its data block"), "{field}: the forgery is not consistent: {report}");
    }
}

/// A change in the printed part only is found against the log, named by
/// the printed line's label, and against the data block.
#[test]
fn a_printed_line_is_checked_against_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let text = issue(data, "text");
    let forged = text.replacen("covered         2025-01-01", "covered         2024-06-01", 1);
    assert_ne!(forged, text);
    let (code, report) = verify(data, &forged);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("FAILED: printed `covered` (line 12)"), "{report}");
    assert!(report.contains("the log gives `covered         2025-01-01 until 2025-12-31`"), "{report}");
    assert!(report.contains("differs from its data block at line 12"), "{report}");
    assert!(!report.contains("field `covered_from`"), "the data block was not changed: {report}");
}

/// HTML and JSON certificates verify, and a change of the name in them is
/// named.
#[test]
fn html_and_json_certificates_verify_every_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    for format in ["html", "json"] {
        let issued = issue(data, format);
        let (code, report) = verify(data, &issued);
        assert_eq!(code, Some(0), "{format}: {report}");
        assert!(report.contains("still current"), "{format}: {report}");
        let (code, report) = verify(data, &issued.replace("张伟", "李四"));
        assert_eq!(code, Some(1), "{format}: {report}");
        assert!(report.contains("FAILED: field `name`: the certificate says `李四`"), "{format}: {report}");
    }
    let json: serde_json::Value = serde_json::from_str(&issue(data, "json")).expect("the data block alone");
    assert_eq!(json["person"], "520502********1233");
}

/// A refund after issue: the certificate is genuine and out of date, exit
/// 4, naming what changed and the later money fact.
#[test]
fn a_person_year_changed_since_issue_exits_4() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let text = issue(data, "text");
    let refund = [
        "refund",
        "--id",
        ZHANG,
        "--year",
        "2025",
        "--payment",
        "wechat:WX20241005093012001",
        "--amount",
        "100",
        "--reason",
        "退费",
        "--ref",
        "TK-AFTER-1",
        "--at",
        "2025-01-10 10:00:00",
    ];
    ok(yibao(data, &refund));
    let (code, report) = verify(data, &text);
    assert_eq!(code, Some(4), "{report}");
    assert!(report.starts_with("OK: "), "genuine: {report}");
    assert!(report.contains("CHANGED SINCE ISSUE"), "{report}");
    assert!(report.contains("later: refund to original_channel 100.00"), "{report}");
    assert!(report.contains("no certificate now"), "{report}");
}
