//! The import, policy, single-fact and record operations against a ledger
//! in a temporary directory: their typed answers and the kinds of their
//! errors.

use ledger::event::{Payer, PaymentReceived};
use ledger::{BeijingTime, OpenMode};
use operations::import::{self, ImportError};
use operations::policy::{self, LoadOutcome, PolicyDocument};
use operations::records::{self, RestoreError};
use operations::register::{self, WriteError};
use operations::{Classified, Kind, Ledger, Location};

const FACTS: &str = include_str!("../../fixtures/demo/facts.jsonl");
const BAD_FACTS: &str = include_str!("../../fixtures/demo/bad.jsonl");
const POLICY: &str = include_str!("../../fixtures/policies/bijie-2025.toml");

fn ledger(dir: &tempfile::TempDir, name: &str) -> Ledger {
    Ledger::open(&Location::sled(&dir.path().join(name)), OpenMode::Create).expect("open")
}

#[test]
fn an_import_appends_once_and_a_repeat_appends_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = ledger(&dir, "data");
    let first = import::import(&ledger, FACTS.as_bytes(), "facts.jsonl", "test", Default::default()).expect("import");
    assert_eq!((first.n_facts, first.appended.n_appended, first.n_repeated), (26, 26, 0));
    let again = import::import(&ledger, FACTS.as_bytes(), "facts.jsonl", "test", Default::default()).expect("again");
    assert_eq!((again.appended.n_appended, again.n_repeated), (0, 26));
    assert_eq!((again.appended.positions, again.appended.head), (first.appended.positions, first.appended.head));

    let refused =
        import::import(&ledger, BAD_FACTS.as_bytes(), "bad.jsonl", "test", Default::default()).expect_err("bad lines");
    assert!(matches!(refused, ImportError::Lines { .. }), "{refused}");
    assert_eq!(refused.kind(), Kind::BadInput);
    assert!(refused.to_string().contains("bad.jsonl:line "), "{refused}");
    assert_eq!(ledger.log().durable_head().position, 26, "nothing of a bad file is appended");
}

#[test]
fn a_policy_is_published_once_and_then_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = ledger(&dir, "data");
    let document = || PolicyDocument { path: "bijie-2025.toml".into(), text: POLICY.into(), reason: None };
    let published = policy::load(ledger.log(), document()).expect("load");
    assert_eq!((published.outcome, published.position, published.coverage_year), (LoadOutcome::Published, 1, 2025));
    let unchanged = policy::load(ledger.log(), document()).expect("again");
    assert_eq!((unchanged.outcome, unchanged.position), (LoadOutcome::Unchanged, 1));
    let broken = PolicyDocument { path: "broken.toml".into(), text: "region = ".into(), reason: None };
    let error = policy::load(ledger.log(), broken).expect_err("not a policy");
    assert_eq!(error.kind(), Kind::BadInput);
    assert!(error.to_string().starts_with("broken.toml: "), "{error}");
}

#[test]
fn a_payment_on_an_unknown_channel_names_the_field_and_appends_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = ledger(&dir, "data");
    let payment = |channel: &str| PaymentReceived {
        person: "520502198503121233".parse().expect("id"),
        coverage_year: 2025,
        amount: "400.00".parse().expect("amount"),
        channel: channel.into(),
        channel_ref: "WX1".into(),
        payer: Payer::Myself,
        paid_at: BeijingTime::now(),
    };
    let error = register::pay(&ledger, payment("carrier-pigeon"), "test").expect_err("unknown channel");
    assert!(matches!(error, WriteError::Field(_)), "{error}");
    assert_eq!((error.kind(), error.field()), (Kind::BadInput, Some("channel")));
    assert_eq!(ledger.log().durable_head().position, 0);
    let written = register::pay(&ledger, payment("wechat"), "test").expect("pay");
    assert_eq!((written.position, written.repeat), (1, false));
}

#[test]
fn an_export_restores_to_its_head_and_a_bad_line_is_named_by_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = ledger(&dir, "data");
    import::import(&ledger, FACTS.as_bytes(), "facts.jsonl", "test", Default::default()).expect("import");
    let mut exported = Vec::new();
    let answer = records::export(ledger.log(), &mut exported).expect("export");
    assert_eq!(answer.n_records, 26);
    let text = String::from_utf8(exported).expect("UTF-8");

    let restored_dir = dir.path().join("restored");
    let restored =
        records::restore(&Location::sled(&restored_dir), import::numbered_lines(text.as_bytes()), "export.jsonl")
            .expect("restore");
    assert_eq!(restored.head, answer.head);
    assert!(restored.matches_export());

    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut record: serde_json::Value = serde_json::from_str(&lines[4]).expect("JSON");
    record.as_object_mut().expect("object").remove("hash");
    lines[4] = record.to_string();
    let bad = lines.join("\n");
    let error = records::restore(
        &Location::sled(&dir.path().join("bad")),
        import::numbered_lines(bad.as_bytes()),
        "export.jsonl",
    )
    .expect_err("a line without its hash");
    assert!(matches!(&error, RestoreError::Line { error, .. } if error.line == 5), "{error}");
    assert_eq!((error.kind(), error.field()), (Kind::BadInput, Some("hash")));
}
