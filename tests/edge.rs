//! The edge, end to end: one payment spelled six ways is one payment, from
//! the command line and from an import; a repeated key, an amount that a
//! float would round, an invisible character or an unknown channel is
//! refused, naming file, line and field, with exit 2 and nothing appended.

use std::path::Path;

mod common;
use common::run::{stderr, stdout, yibao};

const POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/policies/bijie-2025.toml");
/// 七星关区, Bijie: the region of the policy loaded.
const REGION: u32 = 520502;

fn person_id() -> String {
    let region = ledger::RegionCode::new(REGION).expect("region");
    let birth = chrono::NaiveDate::from_ymd_opt(1985, 3, 12).expect("date");
    ledger::Identity::resident(region, birth, 771).to_string()
}

/// A ledger with the Bijie 2025 policy and one registered person.
fn registered_person(data: &Path) -> String {
    assert_eq!(yibao(data, &["init"]).status.code(), Some(0));
    let loaded = yibao(data, &["policy", "load", POLICY]);
    assert_eq!(loaded.status.code(), Some(0), "{}", stderr(&loaded));
    let id = person_id();
    let registered = yibao(
        data,
        &[
            "register",
            "--id",
            &id,
            "--name",
            " 王 小明 ",
            "--region",
            &REGION.to_string(),
            "--registered-on",
            "2024-09-01",
        ],
    );
    assert_eq!(registered.status.code(), Some(0), "{}", stderr(&registered));
    id
}

/// The spellings of one WeChat payment a person or a system might send.
const SPELLINGS: [(&str, &str); 6] = [
    ("wechat", "WX20241005093012777"),
    ("WeChat", "WX20241005093012777"),
    (" WECHAT ", "WX20241005093012777"),
    ("wechat", "WX20241005093012777 "),
    ("wechat", "ＷＸ20241005093012777"),
    ("ｗｅｃｈａｔ", "\u{3000}WX20241005093012777"),
];

fn card(data: &Path, id: &str) -> String {
    let output = yibao(data, &["coverage", id, "--year", "2025"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    stdout(&output)
}

fn n_payments(data: &Path) -> usize {
    let output = yibao(data, &["log", "--json"]);
    stdout(&output).lines().filter(|line| line.contains(r#""type":"payment_received""#)).count()
}

#[test]
fn six_spellings_of_one_payment_are_one_payment_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let id = registered_person(data);
    for (channel, reference) in SPELLINGS {
        let paid = yibao(
            data,
            &[
                "pay",
                "--id",
                &id,
                "--year",
                "2025",
                "--amount",
                "400",
                "--channel",
                channel,
                "--ref",
                reference,
                "--paid-at",
                "2024-10-05 09:30:12",
            ],
        );
        assert_eq!(paid.status.code(), Some(0), "{channel:?} {reference:?}: {}", stderr(&paid));
    }
    assert_eq!(n_payments(data), 1);
    let card = card(data, &id);
    assert!(card.contains("received 400.00"), "{card}");
    let log = stdout(&yibao(data, &["log", "--json"]));
    assert!(log.contains(r#""idempotency_key":"payment/wechat/WX20241005093012777""#), "{log}");
    assert!(log.contains(r#""name":"王 小明""#), "the name is trimmed: {log}");

    for hidden in ["WX20241005093012777\u{200B}", "WX2024100509301277\u{202E}7"] {
        let refused = yibao(
            data,
            &["pay", "--id", &id, "--year", "2025", "--amount", "400", "--channel", "wechat", "--ref", hidden],
        );
        assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
        assert!(stderr(&refused).contains("field `channel_ref`"), "{}", stderr(&refused));
        assert!(stderr(&refused).contains("U+20"), "{}", stderr(&refused));
    }
    assert_eq!(n_payments(data), 1, "a refused payment appends nothing");
}

fn payment_line(id: &str, channel: &str, reference: &str, amount: &str) -> String {
    let fact = serde_json::json!({
        "type": "payment_received", "v": 1, "person": id, "coverage_year": 2025, "amount": "AMOUNT",
        "channel": channel, "channel_ref": reference, "paid_at": "2024-10-05 09:30:12",
    });
    fact.to_string().replace(r#""AMOUNT""#, amount)
}

#[test]
fn six_spellings_in_an_import_are_one_payment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("ledger");
    let id = registered_person(&data);
    let lines: Vec<String> =
        SPELLINGS.iter().map(|(channel, reference)| payment_line(&id, channel, reference, r#""400.00""#)).collect();
    let file = dir.path().join("spellings.jsonl");
    std::fs::write(&file, lines.join("\n")).expect("write");
    let imported = yibao(&data, &["import", file.to_str().expect("utf-8 path")]);
    assert_eq!(imported.status.code(), Some(0), "{}", stderr(&imported));
    assert!(stdout(&imported).contains("6 facts, 1 appended, 5 already recorded"), "{}", stdout(&imported));
    assert!(card(&data, &id).contains("received 400.00"));
    // Again from a second file: still nothing new.
    let again = yibao(&data, &["import", file.to_str().expect("utf-8 path")]);
    assert!(stdout(&again).contains("0 appended, 6 already recorded"), "{}", stdout(&again));
    assert_eq!(n_payments(&data), 1);
}

#[test]
fn refused_lines_name_file_line_and_field_and_append_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("ledger");
    let id = registered_person(&data);
    let good = payment_line(&id, "wechat", "WX-OK-1", r#""400.00""#);
    let repeated = payment_line(&id, "wechat", "WX-DUP-1", r#""400.00""#)
        .replace(r#""amount":"400.00""#, r#""amount":"400.00","amount":"1.00""#);
    let lines = [
        good,
        repeated,
        payment_line(&id, "wechat", "WX-NUM-1", "400.00000000000001"),
        payment_line(&id, "wechat", "WX-NUM-2", "0.1e-400"),
        payment_line(&id, "wechat", "WX\u{200B}-ZW-1", r#""400.00""#),
        payment_line(&id, "wechatt", "WX-CH-1", r#""400.00""#),
        payment_line(&id, "wechat", "WX-KEY-1", r#""400.00""#)
            .replace(r#""v":1"#, r#""v":1,"idempotency_key":"payment/wechat/WX-OK-1""#),
    ];
    let file = dir.path().join("bad.jsonl");
    std::fs::write(&file, lines.join("\n")).expect("write");
    let refused = yibao(&data, &["import", file.to_str().expect("utf-8 path")]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let message = stderr(&refused);
    for expected in [
        "bad.jsonl: 6 bad line(s); nothing from this file was appended",
        "bad.jsonl:line 2: field `amount`: key `amount` appears more than once",
        "bad.jsonl:line 3: field `amount`: `400.00000000000001` has more than two decimals",
        "bad.jsonl:line 4: field `amount`",
        "bad.jsonl:line 5: field `channel_ref`: contains U+200B",
        "bad.jsonl:line 6: field `channel`: unknown channel `wechatt`; known: alipay",
        "bad.jsonl:line 7: field `idempotency_key`",
    ] {
        assert!(message.contains(expected), "expected {expected:?} in:\n{message}");
    }
    assert!(!message.contains("panicked"), "{message}");
    assert_eq!(n_payments(&data), 0);
}

#[test]
fn a_channel_is_added_in_the_data_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let id = registered_person(data);
    let pay = |channel: &str| {
        yibao(
            data,
            &["pay", "--id", &id, "--year", "2025", "--amount", "400", "--channel", channel, "--ref", "RCC-0001"],
        )
    };
    let unknown = pay("RCC_Bank");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("unknown channel `rcc_bank`"), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains(r#"channels.toml: extra = ["rcc_bank"]"#), "{}", stderr(&unknown));
    std::fs::write(data.join("channels.toml"), "extra = [\"rcc_bank\"]\n").expect("write");
    let known = pay("RCC_Bank");
    assert_eq!(known.status.code(), Some(0), "{}", stderr(&known));
    std::fs::write(data.join("channels.toml"), "extra = [\"rcc bank\"]\n").expect("write");
    let broken = pay("rcc_bank");
    assert_eq!(broken.status.code(), Some(2));
    assert!(stderr(&broken).contains("channels.toml: field `extra[0]`"), "{}", stderr(&broken));
    // A file that cannot be used refuses what names a channel, not what an
    // office asks: lookups go on answering.
    for lookup in [vec!["coverage", id.as_str()], vec!["history", id.as_str()], vec!["log", "--limit", "1"]] {
        let answered = yibao(data, &lookup);
        assert_eq!(answered.status.code(), Some(0), "{lookup:?}: {}", stderr(&answered));
    }
    let file = data.join("facts.jsonl");
    let line = payment_line(&id, "wechat", "WX-CH-1", r#""400.00""#);
    std::fs::write(&file, format!("{line}\n")).expect("write");
    let import = yibao(data, &["import", file.to_str().expect("utf-8")]);
    assert_eq!(import.status.code(), Some(2), "{}", stderr(&import));
    assert!(stderr(&import).contains("channels.toml"), "{}", stderr(&import));
}
