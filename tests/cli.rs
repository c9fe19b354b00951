//! End-to-end tests of the `yibao` binary: what a user types, what they see,
//! and the exit codes README documents.

use std::path::Path;

mod common;
use common::run::{stderr, stdout, yibao};

const FACTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo/facts.jsonl");
const BAD_FACTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo/bad.jsonl");

fn head_line(data: &Path) -> String {
    let output = yibao(data, &["verify"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    stdout(&output).lines().find(|l| l.starts_with("OK: head")).expect("head line").to_string()
}

#[test]
fn import_is_atomic_idempotent_and_names_bad_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let missing = yibao(data, &["import", FACTS]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("run `yibao init`"), "{}", stderr(&missing));

    assert_eq!(yibao(data, &["init"]).status.code(), Some(0));
    let first = yibao(data, &["import", FACTS]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(stdout(&first).contains("26 facts, 26 appended"), "{}", stdout(&first));
    let again = yibao(data, &["import", FACTS]);
    assert!(stdout(&again).contains("0 appended, 26 already recorded"), "{}", stdout(&again));
    let before = head_line(data);

    let bad = yibao(data, &["import", BAD_FACTS]);
    assert_eq!(bad.status.code(), Some(2));
    let message = stderr(&bad);
    assert!(message.contains("bad.jsonl:line 2: field `person`"), "{message}");
    assert!(message.contains("line 3: field `amount`"), "{message}");
    assert!(message.contains("line 4: field `paid_at`"), "{message}");
    assert!(message.contains("line 5: malformed JSON"), "{message}");
    assert!(message.contains("nothing from this file was appended"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    assert_eq!(head_line(data), before, "a refused file appends nothing");

    let unreadable = yibao(data, &["import", "/nonexistent/facts.jsonl"]);
    assert_eq!(unreadable.status.code(), Some(2));
    assert!(stderr(&unreadable).contains("/nonexistent/facts.jsonl"));
}

#[test]
fn a_changed_fact_under_a_used_key_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    yibao(data, &["init"]);
    yibao(data, &["import", FACTS]);
    let changed = std::fs::read_to_string(FACTS).expect("facts").replace("\"1070.00\"", "\"1000.00\"");
    let changed_path = dir.path().join("changed.jsonl");
    std::fs::write(&changed_path, changed).expect("write");
    let output = yibao(data, &["import", changed_path.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("payment/alipay/AP2025041016000042"), "{}", stderr(&output));
    assert!(stderr(&output).contains("position 4"), "{}", stderr(&output));
}

#[test]
fn export_and_restore_reproduce_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("source");
    yibao(&data, &["init"]);
    yibao(&data, &["import", FACTS]);
    let export_path = dir.path().join("export.jsonl");
    let export = yibao(&data, &["export", "--jsonl", "--out", export_path.to_str().expect("path")]);
    assert_eq!(export.status.code(), Some(0), "{}", stderr(&export));
    let lines = std::fs::read_to_string(&export_path).expect("export");
    assert_eq!(lines.lines().count(), 27, "header + 26 records");
    assert!(lines.lines().next().expect("header").contains("\"hash_algorithm\":\"SM3\""));

    let target = dir.path().join("target");
    let restore = yibao(&target, &["import", "--restore", export_path.to_str().expect("path")]);
    assert_eq!(restore.status.code(), Some(0), "{}", stderr(&restore));
    assert_eq!(head_line(&target), head_line(&data));
    // The restored ledger replays to the same state digest.
    let digest = |dir: &Path| {
        let log = ledger::SledLog::open(dir, ledger::OpenMode::Existing).expect("open");
        let totals: projections::LedgerTotals = replay::rebuild(&log, 0, &mut |_| {}).expect("replay");
        replay::state_digest(&totals)
    };
    assert_eq!(digest(&target), digest(&data));
    let restore_again = yibao(&target, &["import", "--restore", export_path.to_str().expect("path")]);
    assert_eq!(restore_again.status.code(), Some(2), "restoring over records is refused");

    // A changed amount in an export is caught by the chain.
    let mut tampered_lines: Vec<String> = lines.lines().map(str::to_string).collect();
    let record: serde_json::Value = serde_json::from_str(&tampered_lines[4]).expect("json");
    let stored = record["stored"].as_str().expect("stored");
    let flipped = format!("{}{}", &stored[..stored.len() - 1], if stored.ends_with('0') { '1' } else { '0' });
    tampered_lines[4] = tampered_lines[4].replace(stored, &flipped);
    let tampered_path = dir.path().join("tampered.jsonl");
    std::fs::write(&tampered_path, tampered_lines.join("\n")).expect("write");
    let fresh = dir.path().join("fresh");
    let output = yibao(&fresh, &["import", "--restore", tampered_path.to_str().expect("path")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("position 4"), "{}", stderr(&output));
}

/// A line of an export that is not a record is named by its line and
/// field, exit 2, and nothing is restored: never a record at "position 0".
#[test]
fn a_bad_restore_line_names_its_line_and_field_and_restores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("source");
    yibao(&data, &["init"]);
    yibao(&data, &["import", FACTS]);
    let export_path = dir.path().join("export.jsonl");
    yibao(&data, &["export", "--jsonl", "--out", export_path.to_str().expect("path")]);
    let lines: Vec<String> = std::fs::read_to_string(&export_path).expect("export").lines().map(String::from).collect();
    let cases: [(usize, &str, &str); 3] = [
        (3, "hash", "field `hash`: missing or not a string"),
        (5, "stored", "field `stored`: not hex"),
        (7, "position", "field `position`: missing or not a number"),
    ];
    for (index, field, expected) in cases {
        let mut record: serde_json::Value = serde_json::from_str(&lines[index]).expect("json");
        match field {
            "stored" => record[field] = "zz".into(),
            _ => {
                record.as_object_mut().expect("object").remove(field);
            }
        }
        let mut changed = lines.clone();
        changed[index] = record.to_string();
        let path = dir.path().join(format!("bad-{field}.jsonl"));
        std::fs::write(&path, changed.join("\n")).expect("write");
        let target = dir.path().join(format!("target-{field}"));
        let output = yibao(&target, &["import", "--restore", path.to_str().expect("path")]);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{message}");
        let line = format!("bad-{field}.jsonl:line {}: {expected}", index + 1);
        assert!(message.contains(&line) && message.contains("nothing was restored"), "{field}: {message}");
        assert!(!message.contains("record at position 0"), "{message}");
        yibao(&target, &["init"]);
        assert!(head_line(&target).starts_with("OK: head 0 "), "{field}: nothing restored");
    }
}

#[test]
fn log_shows_masked_ids_and_json_shows_envelopes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    yibao(data, &["init"]);
    yibao(data, &["import", FACTS]);
    let human = stdout(&yibao(data, &["log", "--from", "2", "--limit", "3"]));
    assert!(human.contains("payment_received v1"), "{human}");
    assert!(human.contains("520502********1233"), "{human}");
    assert!(!human.contains("520502198503121233"), "listings mask ID numbers: {human}");
    assert!(human.contains("22 more"), "{human}");
    let json = stdout(&yibao(data, &["log", "--json", "--limit", "2"]));
    let first: serde_json::Value = serde_json::from_str(json.lines().next().expect("line")).expect("json");
    assert_eq!(first["position"], 1);
    assert_eq!(first["type"], "person_registered");
    assert_eq!(first["event"]["name"], "张伟");
    assert_eq!(first["hash"].as_str().map(str::len), Some(64));
}

#[test]
fn demo_runs_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    for _ in 0..2 {
        let output = yibao(dir.path(), &["demo"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let text = stdout(&output);
        assert!(text.contains("matches the exported head"), "{text}");
        assert!(text.contains("nothing appended"), "{text}");
        assert!(text.contains("second replay: same digest"), "{text}");
        assert!(text.contains("nothing new since position"), "the second backup run: {text}");
        assert!(
            text.contains("proven in the Merkle tree") && text.contains("every field signed by the office"),
            "{text}"
        );
    }
}

const BIJIE_2025: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/policies/bijie-2025.toml");

#[test]
fn policies_load_once_amend_on_change_and_refuse_bad_documents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    assert_eq!(yibao(data, &["init"]).status.code(), Some(0));
    let first = yibao(data, &["policy", "load", BIJIE_2025]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(stdout(&first).contains("published policy 毕节市 520500 2025 at position 1"), "{}", stdout(&first));
    let again = yibao(data, &["policy", "load", BIJIE_2025]);
    assert!(stdout(&again).contains("already recorded at position 1; nothing appended"), "{}", stdout(&again));

    // The same policy with another sporadic full premium is an amendment.
    let original = std::fs::read_to_string(BIJIE_2025).expect("fixture");
    let changed_path = data.join("bijie-2025-changed.toml");
    let changed = original
        .replace("fiscal_subsidy = \"670\"", "fiscal_subsidy = \"680\"")
        .replace("full = \"1070\"", "full = \"1080\"");
    assert_ne!(changed, original, "the fixture's figures moved; update this test");
    std::fs::write(&changed_path, changed).expect("write");
    let amended = yibao(data, &["policy", "load", changed_path.to_str().expect("utf-8"), "--reason", "new figures"]);
    assert_eq!(amended.status.code(), Some(0), "{}", stderr(&amended));
    assert!(stdout(&amended).contains("amended policy 毕节市 520500 2025 at position 2"), "{}", stdout(&amended));

    // A document that breaks a rule is refused with the field and line.
    let bad_path = data.join("bad.toml");
    std::fs::write(&bad_path, original.replace("full = \"1070\"", "full = \"1000\"")).expect("write");
    let bad = yibao(data, &["policy", "load", bad_path.to_str().expect("utf-8")]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("field `premium.full`"), "{}", stderr(&bad));
    assert!(stderr(&bad).contains(", line "), "{}", stderr(&bad));
    assert_eq!(head_line(data).split_whitespace().nth(2), Some("2"), "a refused policy appended something");
}

#[test]
fn register_and_pay_record_single_facts_with_import_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    assert_eq!(yibao(data, &["init"]).status.code(), Some(0));
    let id = "520502198503121233";
    let registered = yibao(data, &["register", "--id", id, "--name", "张伟", "--region", "520500"]);
    assert_eq!(registered.status.code(), Some(0), "{}", stderr(&registered));
    // The birth date comes from the ID; the masked echo does not show it.
    assert!(stdout(&registered).contains("520502********1233 region 520500"), "{}", stdout(&registered));
    // (The echo carries the head's hash, in which "1985" alone may appear.)
    for hidden in ["19850312", "1985-03-12"] {
        assert!(!stdout(&registered).contains(hidden), "{}", stdout(&registered));
    }
    let stored = stdout(&yibao(data, &["log", "--json", "--limit", "1"]));
    assert!(stored.contains(r#""birth_date":"1985-03-12""#), "{stored}");
    let pay = |reference: &str, amount: &str| {
        let args = ["pay", "--id", id, "--year", "2025", "--amount", amount, "--channel", "wechat", "--ref", reference];
        yibao(data, &[&args[..], &["--paid-at", "2024-10-05 09:30:12"]].concat())
    };
    let paid = pay("WX1", "400");
    assert_eq!(paid.status.code(), Some(0), "{}", stderr(&paid));
    assert!(stdout(&paid).contains("recorded at position 2"), "{}", stdout(&paid));
    let repeated = pay("WX1", "400");
    assert!(stdout(&repeated).contains("already recorded"), "{}", stdout(&repeated));
    let bad = pay("WX2", "400.001");
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("field `amount`"), "{}", stderr(&bad));
    let bad_id = yibao(data, &["register", "--id", "520502198503121234", "--name", "张伟", "--region", "520500"]);
    assert_eq!(bad_id.status.code(), Some(2));
    assert!(stderr(&bad_id).contains("check character"), "{}", stderr(&bad_id));
    assert_eq!(head_line(data).split_whitespace().nth(2), Some("2"));
}

#[test]
fn generated_prefecture_imports_and_is_reproducible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let file = data.join("facts.jsonl");
    let file_text = file.to_str().expect("utf-8");
    let generated = yibao(data, &["generate", "--persons", "2000", "--seed", "9", "--out", file_text]);
    assert_eq!(generated.status.code(), Some(0), "{}", stderr(&generated));
    let again = yibao(data, &["generate", "--persons", "2000", "--seed", "9"]);
    assert_eq!(again.stdout, std::fs::read(&file).expect("read"), "the same seed wrote other facts");
    assert_eq!(yibao(data, &["init"]).status.code(), Some(0));
    let imported = yibao(data, &["import", file_text]);
    assert_eq!(imported.status.code(), Some(0), "{}", stderr(&imported));
    let n_lines = stdout(&again).lines().count();
    assert!(stdout(&imported).contains(&format!("{n_lines} facts, {n_lines} appended")), "{}", stdout(&imported));
}

const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/policies");

fn ledger_with_policies_and_demo(data: &Path) {
    assert_eq!(yibao(data, &["init"]).status.code(), Some(0));
    for name in ["bijie-2025.toml", "shanxi-2022.toml"] {
        let loaded = yibao(data, &["policy", "load", &format!("{POLICIES}/{name}")]);
        assert_eq!(loaded.status.code(), Some(0), "{}", stderr(&loaded));
    }
    assert_eq!(yibao(data, &["import", FACTS]).status.code(), Some(0));
}

#[test]
fn coverage_lookup_answers_with_the_position_it_reflects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger_with_policies_and_demo(data);
    let found = yibao(data, &["coverage", "520502198503121233", "--year", "2025", "--on", "2025-06-01"]);
    assert_eq!(found.status.code(), Some(0), "{}", stderr(&found));
    let text = stdout(&found);
    assert!(text.contains("coverage year 2025: received"), "{text}");
    assert!(text.contains("covered from 2025-01-01 until 2025-12-31"), "{text}");
    assert!(text.contains("on 2025-06-01: covered"), "{text}");
    assert!(text.contains("answer reflects log position 28"), "{text}");
    let as_json = yibao(data, &["coverage", "520502198503121233", "--json"]);
    let answer: serde_json::Value = serde_json::from_slice(&as_json.stdout).expect("JSON");
    assert_eq!(answer["years"][0]["year"]["state"], "received");
    assert_eq!(answer["years"][0]["year"]["amount_due"], "400.00");
    assert_eq!(answer["log_position"], 28);
    // The person store was written; a second answer comes from it and agrees.
    assert!(data.join("projections").join("persons.sqlite").exists());
    assert_eq!(yibao(data, &["coverage", "520502198503121233", "--json"]).stdout, as_json.stdout);
    // A damaged checkpoint is rebuilt from the log, with a note, by what
    // reads the whole projection; a lookup catches the per-person store up
    // from the log and never reads it.
    std::fs::remove_file(data.join("projections").join("persons.sqlite")).expect("remove the store");
    std::fs::write(data.join("projections").join("coverage.ckpt"), b"garbage").expect("write");
    let looked_up = yibao(data, &["coverage", "520502198503121233", "--json"]);
    assert_eq!(looked_up.stdout, as_json.stdout);
    assert!(stderr(&looked_up).is_empty(), "{}", stderr(&looked_up));
    let rebuilt = yibao(data, &["replay", "--year", "2025", "--check"]);
    assert!(stderr(&rebuilt).contains("rebuilding from the log"), "{}", stderr(&rebuilt));
    // A person store that is no database: the answer is the same, with a
    // note, and the next lookup writes the store again.
    std::fs::write(data.join("projections").join("persons.sqlite"), b"garbage").expect("write");
    let noted = yibao(data, &["coverage", "520502198503121233", "--json"]);
    assert_eq!(noted.stdout, as_json.stdout);
    assert!(stderr(&noted).contains("the person store"), "{}", stderr(&noted));
    let again = yibao(data, &["coverage", "520502198503121233", "--json"]);
    assert_eq!(again.stdout, as_json.stdout);
    assert!(stderr(&again).is_empty(), "{}", stderr(&again));

    let unknown = yibao(data, &["coverage", "140101198001010024"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("no person with ID 140101********0024"), "{}", stderr(&unknown));
    let invalid = yibao(data, &["coverage", "140101198001010025"]);
    assert_eq!(invalid.status.code(), Some(2));
    assert!(stderr(&invalid).contains("check character"), "{}", stderr(&invalid));
}

/// One masking rule everywhere an ID is shown masked (the card, its JSON,
/// the history, the log listing, the unpaid list), and no birth date beside
/// a masked ID: the mask hides it.
#[test]
fn listings_and_cards_mask_ids_by_one_rule_without_birth_dates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger_with_policies_and_demo(data);
    let zhang = "520502198503121233";
    let card = stdout(&yibao(data, &["coverage", zhang]));
    assert!(card.starts_with("520502********1233 张伟, region 520500\n"), "{card}");
    assert!(!card.contains("born") && !card.contains("1985-03-12"), "{card}");
    let answer: serde_json::Value =
        serde_json::from_str(&stdout(&yibao(data, &["coverage", zhang, "--json"]))).expect("JSON");
    assert_eq!(answer["person"]["id"], "520502********1233", "{answer}");
    assert!(answer["person"].get("birth_date").is_none(), "{answer}");
    assert!(!answer.to_string().contains(zhang) && !answer.to_string().contains("1985-03-12"), "{answer}");

    // A newborn's other certificate: the last 4 of 14 characters, no more.
    let newborn = stdout(&yibao(data, &["coverage", "other:BJFY-2025-0001"]));
    assert!(newborn.contains("formerly other:**********0001"), "{newborn}");
    let history = stdout(&yibao(data, &["history", "other:BJFY-2025-0001"]));
    assert!(history.contains("other:**********0001 region 520500"), "{history}");
    assert!(!history.contains("BJFY") && !history.contains("2025-02-03"), "{history}");
    let listed = stdout(&yibao(data, &["log", "--limit", "100"]));
    assert!(!listed.contains("born") && !listed.contains("1985-03-12"), "{listed}");
    assert!(!listed.contains("BJFY"), "{listed}");
}

#[test]
fn history_follows_a_converted_newborn_and_unpaid_lists_masked_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger_with_policies_and_demo(data);
    let history = yibao(data, &["history", "other:BJFY-2025-0001"]);
    assert_eq!(history.status.code(), Some(0), "{}", stderr(&history));
    let text = stdout(&history);
    for kind in ["person_registered", "identity_converted", "payment_received"] {
        assert!(text.contains(kind), "{text}");
    }
    assert!(text.contains("3 fact(s) about 520502********3011"), "{text}");
    let unpaid = yibao(data, &["unpaid", "--region", "520500", "--year", "2025"]);
    assert_eq!(unpaid.status.code(), Some(0), "{}", stderr(&unpaid));
    let text = stdout(&unpaid);
    assert!(text.contains("520502********6225") && text.contains("refunded to source"), "{text}");
    assert!(!text.contains("520502198001156225"), "an unmasked ID in a listing: {text}");
    assert!(!text.contains("1233"), "a paid person is listed: {text}");
}

#[test]
fn assessments_take_the_highest_group_and_respect_the_closed_special_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger_with_policies_and_demo(data);
    for (id, name) in [("140101198001010024", "周明"), ("140101198502020036", "吴霞")] {
        let registered = yibao(
            data,
            &["register", "--id", id, "--name", name, "--region", "140101", "--registered-on", "2021-12-01"],
        );
        assert_eq!(registered.status.code(), Some(0), "{}", stderr(&registered));
    }
    let assessed = yibao(
        data,
        &[
            "assess",
            "--id",
            "140101198502020036",
            "--year",
            "2022",
            "--group",
            "at_risk_of_poverty",
            "--group",
            "extreme_poverty",
            "--on",
            "2021-12-15",
        ],
    );
    assert_eq!(assessed.status.code(), Some(0), "{}", stderr(&assessed));
    assert!(
        stdout(&assessed).contains("group extreme_poverty: subsidy 320.00, the person pays 0.00"),
        "{}",
        stdout(&assessed)
    );
    // Paid through the normal path first: the special path is closed.
    let paid = yibao(
        data,
        &[
            "pay",
            "--id",
            "140101198001010024",
            "--year",
            "2022",
            "--amount",
            "320",
            "--channel",
            "wechat",
            "--ref",
            "SX-1",
            "--paid-at",
            "2021-12-10 10:00:00",
        ],
    );
    assert_eq!(paid.status.code(), Some(0), "{}", stderr(&paid));
    let before = head_line(data);
    let refused =
        yibao(data, &["assess", "--id", "140101198001010024", "--year", "2022", "--group", "minimum_living_allowance"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("the special path is closed"), "{}", stderr(&refused));
    // The decision an import line and a posted fact get (the tests
    // `an_imported_assessment_the_rules_refuse_appends_nothing` and
    // `a_posted_assessment_the_rules_refuse_appends_nothing`), in its words.
    assert!(stderr(&refused).contains("assessment refused: "), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("一旦按正常模块办理缴费,将无法再办理特殊缴费"), "{}", stderr(&refused));
    assert_eq!(head_line(data), before, "a refused assessment appended something");
}

/// The assessment is a decided fact: an import line the rules refuse (Shanxi
/// 2022, after a normal payment, here in the same file) refuses the file,
/// quoting the rule, as `yibao assess` does.
#[test]
fn an_imported_assessment_the_rules_refuse_appends_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger_with_policies_and_demo(data);
    let registered = yibao(
        data,
        &[
            "register",
            "--id",
            "140101198001010024",
            "--name",
            "周明",
            "--region",
            "140101",
            "--registered-on",
            "2021-12-01",
        ],
    );
    assert_eq!(registered.status.code(), Some(0), "{}", stderr(&registered));
    let lines = [
        r#"{"type":"payment_received","v":1,"person":"140101198001010024","coverage_year":2022,"amount":"320.00","channel":"wechat","channel_ref":"SX-IMPORT-1","paid_at":"2021-12-10 10:00:00"}"#,
        r#"{"type":"hardship_assessed","v":1,"person":"140101198001010024","coverage_year":2022,"group":"minimum_living_allowance","subsidy":"280.00","amount_due":"40.00","assessed_on":"2021-12-15"}"#,
    ];
    let file = dir.path().join("assessed.jsonl");
    std::fs::write(&file, lines.join("\n")).expect("write");
    let before = head_line(data);
    let refused = yibao(data, &["import", file.to_str().expect("utf-8 path")]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert!(message.contains("assessed.jsonl:line 2: assessment refused"), "{message}");
    assert!(message.contains("一旦按正常模块办理缴费,将无法再办理特殊缴费"), "{message}");
    assert_eq!(head_line(data), before, "a refused assessment appended something");
    // The demo's own (accepted) assessment imports again as a repeat.
    let again = yibao(data, &["import", FACTS]);
    assert!(stdout(&again).contains("0 appended, 26 already recorded"), "{}", stdout(&again));
}

/// A fact built from flags is checked as an import line is, and an error
/// names the flag the user typed as well as the field.
#[test]
fn flag_errors_name_the_flag_and_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger_with_policies_and_demo(data);
    let before = head_line(data);
    let id = "520502198503121233";
    let pay = |amount: &str, reference: &str| {
        let args = ["pay", "--id", id, "--year", "2025", "--amount", amount, "--channel", "wechat", "--ref", reference];
        yibao(data, &args)
    };
    let bad_amount = pay("400.001", "WX-FLAG-1");
    assert_eq!(bad_amount.status.code(), Some(2));
    assert!(stderr(&bad_amount).contains("--amount (field `amount`)"), "{}", stderr(&bad_amount));
    let hidden = pay("400", "WX-FLAG\u{200B}1");
    assert_eq!(hidden.status.code(), Some(2));
    assert!(stderr(&hidden).contains("--ref (field `channel_ref`): contains U+200B"), "{}", stderr(&hidden));
    let unknown =
        yibao(data, &["pay", "--id", id, "--year", "2025", "--amount", "1", "--channel", "wechatt", "--ref", "X"]);
    assert!(stderr(&unknown).contains("--channel (field `channel`): unknown channel"), "{}", stderr(&unknown));
    let bind = yibao(
        data,
        &[
            "family",
            "bind",
            "--holder",
            "520502197811204158",
            "--account-province",
            "520000",
            "--member",
            id,
            "--relation",
            "配偶",
        ],
    );
    assert_eq!(bind.status.code(), Some(2));
    assert!(stderr(&bind).contains("--holder (field `holder`)"), "{}", stderr(&bind));
    assert!(!stderr(&bind).contains("panicked"), "{}", stderr(&bind));
    assert_eq!(head_line(data), before, "a refused flag appended something");
}

/// "What did we know then": a payment refunded later shows `received` as of
/// a moment before the refund was recorded.
#[test]
fn coverage_and_replay_as_of_a_moment_answer_with_what_was_known_then() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    assert_eq!(yibao(data, &["init"]).status.code(), Some(0));
    assert_eq!(yibao(data, &["policy", "load", BIJIE_2025]).status.code(), Some(0));
    let id = "520502198503121233";
    assert_eq!(yibao(data, &["register", "--id", id, "--name", "张伟", "--region", "520502"]).status.code(), Some(0));
    let paid = yibao(
        data,
        &[
            "pay",
            "--id",
            id,
            "--year",
            "2025",
            "--amount",
            "400",
            "--channel",
            "wechat",
            "--ref",
            "WX9",
            "--paid-at",
            "2024-10-05 09:30:00",
        ],
    );
    assert_eq!(paid.status.code(), Some(0), "{}", stderr(&paid));
    std::thread::sleep(std::time::Duration::from_millis(20));
    let between = chrono::Utc::now().to_rfc3339();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let refund = format!(
        r#"{{"type": "refund_issued", "v": 1, "person": "{id}", "coverage_year": 2025, "refund_ref": "TK1", "payment": {{"channel": "wechat", "channel_ref": "WX9"}}, "amount": "400.00", "destination": "original_channel", "refunded_at": "2024-11-01 10:00:00", "reason": "退保"}}"#
    );
    let refund_file = data.join("refund.jsonl");
    std::fs::write(&refund_file, refund + "\n").expect("write");
    assert_eq!(yibao(data, &["import", refund_file.to_str().expect("utf-8")]).status.code(), Some(0));

    let state = |extra: &[&str]| {
        let output = yibao(data, &[&["coverage", id, "--year", "2025", "--json"][..], extra].concat());
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let answer: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        answer["years"][0]["year"]["state"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(state(&[]), "refunded_to_source");
    assert_eq!(state(&["--as-of", &between]), "received");

    let report = |extra: &[&str]| {
        let output = yibao(data, &[&["replay", "--year", "2025", "--json"][..], extra].concat());
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).expect("JSON")
    };
    let now = report(&[]);
    let then = report(&["--as-of", &between]);
    assert_eq!(now["refunded"]["total"], "400.00");
    assert_eq!(then["refunded"]["total"], "0.00");
    assert_eq!(then["persons_by_state"]["received"], 1);
    assert_ne!(now["digest"], then["digest"]);
    assert_eq!(report(&[])["digest"], now["digest"], "two replays, two digests");
    let checked = yibao(data, &["replay", "--year", "2025", "--check"]);
    assert_eq!(checked.status.code(), Some(0), "{}", stderr(&checked));
    assert!(stdout(&checked).contains("state digest"), "{}", stdout(&checked));
    let csv = yibao(data, &["replay", "--year", "2025", "--csv"]);
    assert!(stdout(&csv).starts_with("section,item,value\n"), "{}", stdout(&csv));
    // The report words each payer source as `yibao coverage` does.
    let text = stdout(&yibao(data, &["replay", "--year", "2025"]));
    for words in ["self", "paid by another person", "collector", "employee account (proxy)"] {
        assert!(text.contains(&format!("\n  {words} ")), "{words}: {text}");
    }
    let bad = yibao(data, &["replay", "--year", "2025", "--as-of", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Dates, moments, durations and region codes are parsed by their own types as the
/// command line is read: a bad value is a usage error (exit 2) naming the
/// flag and the value, before any ledger is opened or created.
#[test]
fn typed_flags_name_the_flag_and_the_value_before_the_ledger_is_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("never-created");
    let person = "520502198503121233";
    for (args, flag, value) in [
        (&["coverage", person, "--on", "2025-02-30"][..], "--on", "2025-02-30"),
        (&["coverage", person, "--as-of", "yesterday"][..], "--as-of", "yesterday"),
        (&["replay", "--year", "2025", "--region", "52x"][..], "--region", "52x"),
        (&["replay", "--year", "2025", "--on", "2025-6-1x"][..], "--on", "2025-6-1x"),
        (&["unpaid", "--region", "5205", "--year", "2025"][..], "--region", "5205"),
        (&["assess", "--id", person, "--year", "2025", "--group", "g", "--on", "tomorrow"][..], "--on", "tomorrow"),
        (&["reconcile", "statement.xml", "--from", "2024-13-01", "--to", "2024-11-30"][..], "--from", "2024-13-01"),
        (&["family", "stuck", "--now", "soon"][..], "--now", "soon"),
        (&["family", "stuck", "--older-than", "3w"][..], "--older-than", "3w"),
    ] {
        let output = yibao(&data, args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        let message = stderr(&output);
        assert!(message.contains(&format!("'{value}' for '{flag} <")), "{args:?}: {message}");
        assert!(!data.exists(), "{args:?}: the ledger was touched");
    }
}

/// A known person has every coverage year, unpaid when nothing happened in
/// it: asking a year with no fact answers that year (what is due), never
/// "no person", for the card and the certificate alike.
#[test]
fn a_known_person_asked_a_year_without_facts_is_not_an_unknown_person() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    ledger_with_policies_and_demo(data);
    let card = yibao(data, &["coverage", "520502198503121233", "--year", "2024"]);
    assert_eq!(card.status.code(), Some(0), "{}", stderr(&card));
    assert!(stdout(&card).contains("coverage year 2024: registered unpaid"), "{}", stdout(&card));
    let certificate = yibao(data, &["certificate", "520502198503121233", "--year", "2024"]);
    assert_eq!(certificate.status.code(), Some(2), "{}", stderr(&certificate));
    assert!(stderr(&certificate).contains("registered unpaid, not received"), "{}", stderr(&certificate));
    assert!(!stderr(&certificate).contains("no person"), "{}", stderr(&certificate));
    let unknown = yibao(data, &["certificate", "520502199102021228", "--year", "2024"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("no person with ID"), "{}", stderr(&unknown));
}

/// Every answer names a coverage state by one function, and that name is
/// the JSON spelling serde gives the state.
#[test]
fn each_coverage_state_is_named_as_json_spells_it() {
    for state in projections::coverage::CoverageState::ALL {
        let json = serde_json::to_value(state).expect("a state as JSON");
        assert_eq!(json.as_str(), Some(state.name()), "{state:?}");
        assert_eq!(state.words(), state.name().replace('_', " "));
    }
}
