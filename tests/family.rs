//! End-to-end tests of family-account proxy payments, refunds, the payment
//! certificate and the family projection in the person store: what a user types,
//! what they see, the exit codes (0 ok, 1 findings, 2 refused: nothing
//! appended).

use projections::Projection;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::run::{ok, stderr, stdout, yibao};

const FACTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo/facts.jsonl");
const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/policies");

/// The demo's employee, and the members the demo facts bind to him.
const HOLDER: &str = "520502197811204159";
const MOTHER: &str = "520502195205085226";
const WIFE: &str = "520502198001156225";
const ZHANG: &str = "520502198503121233";
const LI: &str = "520521199007012242";
const GUANGXI_HOLDER: &str = "450802198001010013";
const GUANGXI_RESIDENT: &str = "450802198505050027";

/// Exit 2 with the words wanted; returns the error text.
fn refused(output: Output, wanted: &[&str]) -> String {
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "stdout: {}\nstderr: {message}", stdout(&output));
    for word in wanted {
        assert!(message.contains(word), "`{word}` not in: {message}");
    }
    assert!(!message.contains("panicked"), "{message}");
    message
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

/// `family bind`: Zhang as the holder's sibling from `on`.
fn bind_sibling(data: &Path, on: &str) -> Output {
    yibao(
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
            on,
        ],
    )
}

fn json(output: Output) -> serde_json::Value {
    serde_json::from_str(&ok(output)).expect("JSON answer")
}

#[test]
fn bindings_follow_the_relations_and_the_province_rule_both_ways() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    ok(yibao(data, &["register", "--id", GUANGXI_RESIDENT, "--name", "黄丽", "--region", "450802"]));
    let before = head(data);
    let bind = |holder: &str, province: &str, member: &str, relation: &str| {
        yibao(
            data,
            &[
                "family",
                "bind",
                "--holder",
                holder,
                "--account-province",
                province,
                "--member",
                member,
                "--relation",
                relation,
                "--on",
                "2024-10-01",
            ],
        )
    };
    refused(
        bind(HOLDER, "520000", ZHANG, "cousin"),
        &["--relation", "`cousin` is not a near relative", "spouse (配偶)", "maternal_grandchild (外孙子女)"],
    );
    refused(
        bind(GUANGXI_HOLDER, "450000", ZHANG, "spouse"),
        &[
            "field `account_province`",
            "province 450000 cannot pay resident premiums in 520500",
            "policy 520500/2025",
            "nothing was appended",
        ],
    );
    refused(
        bind(HOLDER, "520000", GUANGXI_RESIDENT, "sibling"),
        &["field `account_province`", "cannot pay another province's", "450802 is in province 450000"],
    );
    refused(bind(HOLDER, "520500", ZHANG, "sibling"), &["not a province code"]);
    refused(bind(HOLDER, "520000", HOLDER, "spouse"), &["cannot bind themselves"]);
    assert_eq!(head(data), before, "refused bindings appended something");

    // A Guangxi account may pay a Guangxi resident (no rule there); the
    // Chinese word of a relation is read too.
    ok(bind(GUANGXI_HOLDER, "450000", GUANGXI_RESIDENT, "配偶"));
    let bound = ok(bind(HOLDER, "520000", ZHANG, "兄弟姐妹"));
    assert!(bound.contains("recorded at position"), "{bound}");
    let again = ok(bind(HOLDER, "520000", ZHANG, "sibling"));
    assert!(again.contains("already recorded") && again.contains("nothing appended"), "{again}");
    refused(bind(HOLDER, "520000", ZHANG, "spouse"), &["already bound", "sibling (兄弟姐妹)", "取消授权"]);

    let list = ok(yibao(data, &["family", "list", HOLDER]));
    assert!(list.contains("as holder (授权记录): 3 binding(s)"), "{list}");
    assert!(list.contains("520502********1233") && list.contains("sibling (兄弟姐妹)"), "{list}");
    assert!(list.contains("credited (缴费到账成功)") && list.contains("returned (原渠道返还)"), "{list}");
    assert!(!list.contains(ZHANG) && !list.contains(HOLDER), "IDs are masked in listings: {list}");
    let seen_by_member = ok(yibao(data, &["family", "list", ZHANG]));
    assert!(seen_by_member.contains("as member (被授权记录): 1 binding(s)"), "{seen_by_member}");
    assert!(seen_by_member.contains("520502********4159"), "{seen_by_member}");
}

#[test]
fn the_proxy_lifecycle_refuses_illegal_steps_and_repeats_identical_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    ok(bind_sibling(data, "2024-10-01"));
    let applied = ok(yibao(
        data,
        &[
            "family",
            "apply",
            "--holder",
            HOLDER,
            "--member",
            ZHANG,
            "--year",
            "2026",
            "--amount",
            "400",
            "--id",
            "APP-1",
            "--at",
            "2025-10-01 10:00:00",
        ],
    ));
    assert!(applied.contains("application APP-1"), "{applied}");
    let step = |name: &str, at: &str, extra: &[&str]| {
        yibao(data, &[&["family", name, "APP-1", "--at", at][..], extra].concat())
    };
    refused(
        step("returned", "2025-10-01 11:00:00", &[]),
        &["returned is not allowed", "submitted (申请成功)", "only after 受理失败"],
    );
    ok(step("processing", "2025-10-01 11:00:00", &[]));
    let before = head(data);
    let repeat = ok(step("processing", "2025-10-01 11:00:00", &[]));
    assert!(repeat.contains("already recorded") && repeat.contains("nothing appended"), "{repeat}");
    refused(
        step("processing", "2025-10-01 12:00:00", &[]),
        &["processing again is not allowed", "processing (受理中)"],
    );
    refused(step("failed", "2025-10-01 12:00:00", &[]), &["needs --reason"]);
    refused(step("credited", "2025-09-01 12:00:00", &[]), &["field `at`", "before the application's last step"]);
    assert_eq!(head(data), before, "refused and repeated steps appended something");
    ok(step("credited", "2025-10-02 09:00:00", &[]));
    refused(
        step("credited", "2025-10-03 09:00:00", &[]),
        &["credited again is not allowed", "credited (缴费到账成功)"],
    );
    refused(
        step("failed", "2025-10-03 09:00:00", &["--reason", "x"]),
        &["failed is not allowed", "credited (缴费到账成功)"],
    );
    refused(step("processing", "2025-10-03 09:00:00", &[]), &["credited (缴费到账成功)"]);
    refused(
        yibao(data, &["family", "credited", "NO-SUCH-APP"]),
        &["field `application_id`", "must be submitted first"],
    );

    // Failure and return: the year is refunded to source, the account whole.
    let other = ["family", "apply", "--holder", HOLDER, "--member", WIFE, "--year", "2026", "--amount", "400"];
    let applied = ok(yibao(data, &[&other[..], &["--at", "2025-10-01 10:00:00"]].concat()));
    let id = applied.lines().find_map(|l| l.strip_prefix("application ")).expect("default id").to_string();
    // The IDs' ends as their masks show them, no more.
    assert!(id.starts_with("DJ-2026-4159-6225-"), "{id}");
    refused(
        yibao(data, &[&other[..], &["--at", "2025-10-01 10:30:00"]].concat()),
        &["still submitted (申请成功)", "wait for its result"],
    );
    ok(yibao(data, &["family", "failed", &id, "--reason", "参保信息不匹配", "--at", "2025-10-02 10:00:00"]));
    refused(
        yibao(data, &["family", "credited", &id, "--at", "2025-10-02 11:00:00"]),
        &["credited is not allowed", "failed (受理失败)"],
    );
    // The id as typed with spaces around it is the same application.
    ok(yibao(data, &["family", "returned", &format!(" {id}\u{3000}"), "--at", "2025-10-02 11:00:00"]));
    let coverage = ok(yibao(data, &["coverage", WIFE, "--year", "2026"]));
    assert!(coverage.contains("coverage year 2026: refunded to source"), "{coverage}");

    let account = json(yibao(data, &["family", "account", HOLDER, "--json"]));
    let year =
        account["years"].as_array().expect("years").iter().find(|y| y["coverage_year"] == 2026).expect("2026").clone();
    assert_eq!(year["debited"], "800.00");
    assert_eq!(year["returned"], "400.00");
    assert_eq!(year["net"], "400.00");
    assert_eq!(year["credited"], "400.00");
}

#[test]
fn revocation_stops_new_applications_but_not_those_in_flight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    // The demo facts bound the wife on 2024-10-01; her 2025 application failed.
    let apply = |id: &str, year: &str, at: &str| {
        yibao(
            data,
            &[
                "family", "apply", "--holder", HOLDER, "--member", WIFE, "--year", year, "--amount", "400", "--id", id,
                "--at", at,
            ],
        )
    };
    ok(apply("RV-1", "2025", "2024-10-10 10:00:00"));
    ok(yibao(data, &["family", "processing", "RV-1", "--at", "2024-10-10 10:05:00"]));
    ok(yibao(data, &["family", "revoke", "--holder", HOLDER, "--member", WIFE, "--on", "2024-10-11"]));
    refused(apply("RV-2", "2026", "2024-10-12 10:00:00"), &["revoked on 2024-10-11", "no new applications"]);
    refused(
        yibao(data, &["family", "revoke", "--holder", HOLDER, "--member", WIFE, "--on", "2024-10-19"]),
        &["already revoked on 2024-10-11"],
    );
    let pending = ok(yibao(data, &["coverage", WIFE, "--year", "2025"]));
    assert!(pending.contains("coverage year 2025: pending"), "{pending}");
    ok(yibao(data, &["family", "credited", "RV-1", "--at", "2024-10-12 10:00:00"]));
    let coverage = ok(yibao(data, &["coverage", WIFE, "--year", "2025"]));
    assert!(coverage.contains("coverage year 2025: received"), "{coverage}");
    assert!(coverage.contains("covered from 2025-01-01 until 2025-12-31"), "{coverage}");
    let list = ok(yibao(data, &["family", "list", WIFE]));
    assert!(list.contains("revoked 2024-10-11 (取消授权)"), "{list}");
}

#[test]
fn an_import_with_an_illegal_step_is_refused_naming_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let before = head(data);
    let file = data.join("steps.jsonl");
    let lines = [
        format!(r#"{{"type":"family_binding_created","v":1,"holder":"{HOLDER}","account_province":"520000","member":"{ZHANG}","relation":"sibling","bound_on":"2024-10-01"}}"#),
        format!(r#"{{"type":"proxy_submitted","v":1,"application_id":"IM-1","holder":"{HOLDER}","member":"{ZHANG}","coverage_year":2026,"amount":"400","at":"2025-10-01 10:00:00"}}"#),
        r#"{"type":"proxy_credited","v":1,"application_id":"IM-1","at":"2025-10-02 10:00:00"}"#.to_string(),
        r#"{"type":"proxy_failed","v":1,"application_id":"IM-1","reason":"x","at":"2025-10-03 10:00:00"}"#.to_string(),
        r#"{"type":"proxy_returned","v":1,"application_id":"BJ-DJ-2024-000101","amount":"400","at":"2025-10-03 10:00:00"}"#.to_string(),
        format!(r#"{{"type":"refund_issued","v":1,"person":"{LI}","coverage_year":2025,"refund_ref":"TK-IM-1","payment":{{"channel":"alipay","channel_ref":"AP2025041016000042"}},"amount":"1070.01","destination":"original_channel","refunded_at":"2025-05-01 10:00:00","reason":"退费"}}"#),
    ];
    std::fs::write(&file, lines.join("\n")).expect("write");
    let message = refused(
        yibao(data, &["import", file.to_str().expect("utf-8")]),
        &[
            "3 line(s) refused by the rules; nothing from this file was appended",
            "steps.jsonl:line 4: application IM-1: failed is not allowed: the application is credited (缴费到账成功)",
            "line 5: application BJ-DJ-2024-000101: returned is not allowed",
            "line 6: field `amount`: refunds of alipay/AP2025041016000042 would total 1070.01, above the 1070.00 paid",
        ],
    );
    assert!(!message.contains("line 3:"), "line 3 follows the file's own earlier lines: {message}");
    assert_eq!(head(data), before, "a refused file appended something");
    // The legal lines alone are accepted: the file's earlier lines count.
    std::fs::write(&file, lines[..3].join("\n")).expect("write");
    let imported = ok(yibao(data, &["import", file.to_str().expect("utf-8")]));
    assert!(imported.contains("3 facts, 3 appended"), "{imported}");
    let again = ok(yibao(data, &["import", file.to_str().expect("utf-8")]));
    assert!(again.contains("0 appended, 3 already recorded"), "{again}");
    ok(yibao(data, &["import", FACTS]));
}

#[test]
fn refunds_go_back_where_the_money_came_from_and_never_exceed_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let refund = |id: &str, payment: &str, amount: &str, reference: &str| {
        yibao(
            data,
            &[
                "refund",
                "--id",
                id,
                "--year",
                "2025",
                "--payment",
                payment,
                "--amount",
                amount,
                "--reason",
                "退费",
                "--ref",
                reference,
                "--at",
                "2025-01-10 10:00:00",
            ],
        )
    };
    let before = head(data);
    refused(
        refund(ZHANG, "wechat:WX20241005093012001", "400.01", "TK-1"),
        &["field `amount`", "would total 400.01, above the 400.00 paid"],
    );
    refused(refund(ZHANG, "wechat:NOPE", "1", "TK-1"), &["field `payment`", "has no payment wechat/NOPE"]);
    refused(refund(ZHANG, "wechat", "1", "TK-1"), &["--payment", "CHANNEL:REF"]);
    assert_eq!(head(data), before);

    let partial = ok(refund(ZHANG, "wechat:WX20241005093012001", "100", "TK-1"));
    assert!(partial.contains("to original channel") && partial.contains("now partially paid"), "{partial}");
    let view = json(yibao(data, &["coverage", ZHANG, "--year", "2025", "--json"]));
    assert_eq!(view["years"][0]["year"]["state"], "partially_paid");
    assert_eq!(view["years"][0]["year"]["outstanding"], "100.00");
    assert_eq!(view["years"][0]["year"]["covered_from"], serde_json::Value::Null);
    refused(refund(ZHANG, "wechat:WX20241005093012001", "300.01", "TK-2"), &["already refunded 100.00, 300.00 left"]);
    let repeat = ok(refund(ZHANG, "wechat:WX20241005093012001", "100", "TK-1"));
    assert!(repeat.contains("already recorded"), "{repeat}");
    let full = ok(refund(ZHANG, "wechat:WX20241005093012001", "300", "TK-2"));
    assert!(full.contains("now refunded to source"), "{full}");

    // A proxy payment goes back to the personal account it came from.
    let proxy = ok(refund(MOTHER, "proxy:BJ-DJ-2024-000101", "400", "TK-P"));
    assert!(proxy.contains("the personal account of 520502********4159"), "{proxy}");
    let account = json(yibao(data, &["family", "account", HOLDER, "--json"]));
    assert_eq!(account["years"][0]["refunded"], "400.00");
    assert_eq!(account["years"][0]["net"], "0.00");
    // A subsidy goes back to its funders, in their split.
    let subsidy = ok(refund("520526196909097319", "subsidy:extreme_poverty", "100", "TK-S"));
    assert!(subsidy.contains("to funders") && subsidy.contains("medical_assistance_fund 100.00"), "{subsidy}");
}

#[test]
fn stuck_lists_applications_past_the_policys_three_days() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    ok(bind_sibling(data, "2024-10-01"));
    ok(yibao(
        data,
        &[
            "family",
            "apply",
            "--holder",
            HOLDER,
            "--member",
            ZHANG,
            "--year",
            "2025",
            "--amount",
            "400",
            "--id",
            "ST-1",
            "--at",
            "2024-10-10 10:00:00",
        ],
    ));
    ok(yibao(data, &["family", "processing", "ST-1", "--at", "2024-10-10 11:00:00"]));
    let at = |now: &str, extra: &[&str]| {
        json(yibao(data, &[&["family", "stuck", "--json", "--now", now][..], extra].concat()))
    };
    assert_eq!(at("2024-10-13 10:00:00", &[])["stuck"].as_array().map(Vec::len), Some(0));
    let late = at("2024-10-13 11:00:00", &[]);
    assert_eq!(late["stuck"][0]["application_id"], "ST-1");
    assert_eq!(late["stuck"][0]["limit_hours"], 72);
    assert_eq!(late["stuck"][0]["age_hours"], 73);
    assert_eq!(late["now"], "2024-10-13T11:00:00+08:00");
    assert_eq!(late["stuck"][0]["limit_from"], "policy 520500/2025");
    assert_eq!(late["stuck"][0]["member"], "520502********1233");
    let overridden = at("2024-10-11 11:00:00", &["--older-than", "1d"]);
    assert_eq!(overridden["stuck"][0]["limit_from"], "--older-than");
    let text = ok(yibao(data, &["family", "stuck", "--older-than", "3d", "--now", "2024-10-14 10:00:00"]));
    assert!(text.contains("ST-1") && text.contains("1 stuck application(s)"), "{text}");
    refused(yibao(data, &["family", "stuck", "--older-than", "3w"]), &["--older-than", "not a duration"]);
}

#[test]
fn certificates_issue_for_received_years_and_verify_against_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let refusal = refused(
        yibao(data, &["certificate", WIFE, "--year", "2025"]),
        &["no certificate", "refunded to source, not received"],
    );
    assert!(refusal.contains("520502********6225"), "{refusal}");
    assert_eq!(yibao(data, &["certificate", "140101198001010024", "--year", "2025"]).status.code(), Some(1));

    // The proxy-paid mother's certificate, in text, masked.
    let text_path = data.join("mother.txt");
    ok(yibao(data, &["certificate", MOTHER, "--year", "2025", "--out", text_path.to_str().expect("utf-8")]));
    let text = std::fs::read_to_string(&text_path).expect("certificate");
    for wanted in [
        "参保缴费证明",
        "520502********5226  王秀英",
        "520500 毕节市",
        "paid by         proxy 400.00",
        "covered         2025-01-01 until 2025-12-31",
        "application BJ-DJ-2024-000101",
        "SM3 ",
        "-----BEGIN YIBAO CERTIFICATE DATA-----",
    ] {
        assert!(text.contains(wanted), "`{wanted}` not in {text}");
    }
    assert!(!text.contains(MOTHER), "the ID is masked without --full-id");
    let verified = ok(yibao(data, &["certificate", "verify", text_path.to_str().expect("utf-8")]));
    assert!(verified.starts_with("OK:"), "{verified}");
    assert!(verified.contains("still current"), "{verified}");

    // HTML with the full ID verifies too.
    let html = ok(yibao(data, &["certificate", ZHANG, "--year", "2025", "--format", "html", "--full-id"]));
    assert!(
        html.contains("<!DOCTYPE html>") && html.contains(ZHANG) && html.contains("id=\"yibao-certificate-data\""),
        "{html}"
    );
    let html_path = data.join("zhang.html");
    std::fs::write(&html_path, &html).expect("write");
    ok(yibao(data, &["certificate", "verify", html_path.to_str().expect("utf-8")]));
    // A refund after issue: the certificate is genuine, and out of date.
    ok(yibao(
        data,
        &[
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
        ],
    ));
    let changed = yibao(data, &["certificate", "verify", html_path.to_str().expect("utf-8")]);
    assert_eq!(changed.status.code(), Some(4), "genuine, changed since issue: {}", stderr(&changed));
    let verified = stdout(&changed);
    assert!(verified.starts_with("OK:"), "{verified}");
    assert!(
        verified.contains("CHANGED SINCE ISSUE") && verified.contains("refund to original_channel 100.00"),
        "{verified}"
    );

    // Tampering is found and named, exit 1.
    let tampered_path = data.join("tampered.txt");
    let tampered = text.replace("\"amount\": \"400.00\"", "\"amount\": \"40.00\"");
    assert_ne!(tampered, text);
    std::fs::write(&tampered_path, &tampered).expect("write");
    let failed = yibao(data, &["certificate", "verify", tampered_path.to_str().expect("utf-8")]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let report = stdout(&failed);
    assert!(
        report.contains("FAILED: field `payments[0].amount`: 40.00 in the certificate, 400.00 applied for in the log"),
        "{report}"
    );
    assert!(report.contains("the printed certificate differs from its data block"), "{report}");
    let hash_line = text.lines().find(|l| l.contains("\"head_hash\"")).expect("head hash");
    let wrong_head = text.replace(hash_line, "  \"head_hash\": \"00\"");
    std::fs::write(&tampered_path, wrong_head).expect("write");
    let failed = yibao(data, &["certificate", "verify", tampered_path.to_str().expect("utf-8")]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(stdout(&failed).contains("field `head_hash`"), "{}", stdout(&failed));
    // Another ledger did not issue it.
    let other = tempfile::tempdir().expect("tempdir");
    ledger(other.path());
    let foreign = yibao(other.path(), &["certificate", "verify", text_path.to_str().expect("utf-8")]);
    assert_eq!(foreign.status.code(), Some(1));
    assert!(stdout(&foreign).contains("field `ledger_id`"), "{}", stdout(&foreign));
    let not_one = data.join("empty.txt");
    std::fs::write(&not_one, "hello").expect("write");
    refused(yibao(data, &["certificate", "verify", not_one.to_str().expect("utf-8")]), &["not a yibao certificate"]);
}

#[test]
fn the_demo_shows_the_family_account() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = ok(yibao(dir.path(), &["demo"]));
    assert!(text.contains("== 4c. the family account"), "{text}");
    assert!(text.contains("BJ-DJ-2024-000101") && text.contains("credited (缴费到账成功)"), "{text}");
    assert!(text.contains("BJ-DJ-2024-000102") && text.contains("returned (原渠道返还)"), "{text}");
    assert!(text.contains("refunded to source"), "{text}");
}

// The family projection in the person store (`DIR/projections/persons.sqlite`)
// as the CLI uses it: answers are the same from the store, from a store
// built again from the log, after the log grew, and with a store of
// another ledger (rebuilt); no family checkpoint is written.

fn store(data: &Path) -> PathBuf {
    data.join("projections").join("persons.sqlite")
}

fn list(data: &Path) -> String {
    ok(yibao(data, &["family", "list", HOLDER]))
}

/// `family list` with the person store removed first: built from the log.
fn list_rebuilt(data: &Path) -> String {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", store(data).display()));
    }
    let listed = list(data);
    assert!(store(data).exists(), "the store is built again");
    listed
}

/// The position the store's family records reflect.
fn stored_position(data: &Path) -> u64 {
    let store = projections::coverage::PersonStore::open(&store(data)).expect("open");
    store.family_all().expect("the family records").position()
}

#[test]
fn family_list_is_the_same_from_the_store_rebuilt_and_after_the_log_grew() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger(data);
    let listed = list(data);
    assert_eq!(stored_position(data), head(data));
    assert!(listed.contains("520502********5226") && listed.contains("BJ-DJ-2024-000101"), "{listed}");
    assert_eq!(list(data), listed);
    assert_eq!(list_rebuilt(data), listed);

    // The log grows by a binding through the CLI and a revocation imported:
    // the next command catches the store up.
    let bound = ok(bind_sibling(data, "2024-10-05"));
    assert!(bound.contains("recorded at position"), "{bound}");
    let revocation = dir.path().join("revoke.jsonl");
    let fact = format!(
        r#"{{"type": "family_binding_revoked", "v": 1, "holder": "{HOLDER}", "member": "{MOTHER}", "revoked_on": "2024-12-01"}}"#
    );
    std::fs::write(&revocation, format!("{fact}\n")).expect("write");
    ok(yibao(data, &["import", revocation.to_str().expect("utf-8 path")]));

    let grown = list(data);
    assert_eq!(stored_position(data), head(data));
    assert!(grown.contains("520502********1233") && grown.contains("revoked 2024-12-01"), "{grown}");
    assert!(grown.contains(&format!("answer reflects log position {}", head(data))), "{grown}");
    assert_eq!(list_rebuilt(data), grown);
    assert_eq!(list(data), grown);
    assert!(!data.join("projections").join("family.ckpt").exists(), "no family checkpoint is written");
}

#[test]
fn a_store_of_another_ledger_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, other) = (dir.path().join("a"), dir.path().join("b"));
    ledger(&data);
    ledger(&other);
    let listed = list(&data);
    list(&other);

    // The same facts in another ledger: the same positions, other hashes.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", store(&data).display()));
    }
    std::fs::copy(store(&other), store(&data)).expect("copy");
    assert_eq!(list(&data), listed);
    let output = yibao(&data, &["family", "list", HOLDER]);
    assert_eq!(stderr(&output), "", "the rebuilt store is usable");
    assert_eq!(ok(output), listed);
}
