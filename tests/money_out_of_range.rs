//! A person-year whose money is no amount (two payments of the largest
//! amount: payments are not judged against the person-year before they are
//! appended) is an error wherever it is derived, naming the person-year
//! (masked): `yibao coverage`, `unpaid` and `certificate` exit 3, the
//! service answers 500 `internal` with the message in its log. Never an
//! answer with 0.00. The other persons of the same ledger still answer.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;

use common::server::{write_private, Server, BIN};

const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/policies");
const OFFICE: &str = "office-token-0123456789";
/// Paid the largest amount twice for 2025.
const BEYOND: &str = "520502198503121233";
/// Paid 400.00 in the concentrated period: received, covered all 2025.
const PAID: &str = "520502199102021228";

fn yibao(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("--data").arg(data).args(args).output().expect("run yibao")
}

fn registration(person: &str, birth_date: &str) -> String {
    format!(
        r#"{{"type": "person_registered", "v": 1, "person": "{person}", "name": "张伟", "region": "520502", "birth_date": "{birth_date}", "registered_on": "2024-09-25"}}"#
    )
}

fn payment(person: &str, amount: &str, reference: &str) -> String {
    format!(
        r#"{{"type": "payment_received", "v": 1, "person": "{person}", "coverage_year": 2025, "amount": "{amount}", "channel": "wechat", "channel_ref": "{reference}", "paid_at": "2024-10-05 09:30:12"}}"#
    )
}

/// The ledger under `data/ledger`: the Bijie 2025 policy, both persons.
fn ledger(data: &Path) -> std::path::PathBuf {
    let dir = data.join("ledger");
    let largest = ledger::Money::from_fen(ledger::Money::MAX_FEN).expect("the largest amount").to_string();
    let facts = [
        registration(BEYOND, "1985-03-12"),
        payment(BEYOND, &largest, "WX-MAX-1"),
        payment(BEYOND, &largest, "WX-MAX-2"),
        registration(PAID, "1991-02-02"),
        payment(PAID, "400.00", "WX-PAID-1"),
    ];
    let file = data.join("facts.jsonl");
    std::fs::write(&file, facts.join("\n") + "\n").expect("write facts");
    for args in [
        &["init"][..],
        &["policy", "load", &format!("{POLICIES}/bijie-2025.toml")],
        &["import", file.to_str().expect("utf-8")],
    ] {
        let output = yibao(&dir, args);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    dir
}

fn masked(person: &str) -> String {
    person.parse::<ledger::Identity>().expect("an ID").masked()
}

/// The message names the person-year and the figure, masked; nothing else.
fn assert_names_the_person_year(text: &str) {
    assert!(text.contains(&format!("person-year {} 2025", masked(BEYOND))), "{text}");
    assert!(text.contains("not an amount of money") && !text.contains(BEYOND), "{text}");
}

#[test]
fn the_command_line_fails_naming_the_person_year_and_answers_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = ledger(dir.path());
    let failing: [&[&str]; 6] = [
        &["coverage", BEYOND],
        &["coverage", BEYOND, "--json"],
        &["coverage", BEYOND, "--year", "2025", "--on", "2025-03-01"],
        &["coverage", BEYOND, "--as-of", "2999-01-01T00:00:00Z"],
        &["unpaid", "--region", "520500", "--year", "2025"],
        &["certificate", BEYOND, "--year", "2025"],
    ];
    for args in failing {
        let output = yibao(&data, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&output.stdout));
        assert_names_the_person_year(&stderr);
    }
    let answered: [&[&str]; 3] = [
        &["coverage", PAID],
        &["coverage", PAID, "--year", "2025", "--json"],
        &["certificate", PAID, "--year", "2025"],
    ];
    for args in answered {
        let output = yibao(&data, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(String::from_utf8_lossy(&output.stdout).contains(&masked(PAID)), "{args:?}");
    }
}

/// The server on `data`, its standard error (the server's log) in `log`.
fn serve(data: &Path, log: &Path) -> Server {
    let tokens = data.join("tokens.toml");
    write_private(&tokens, &format!("[[token]]\nname = \"office-1\"\ntoken = \"{OFFICE}\"\nrole = \"office\"\n"));
    let mut child = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(["serve", "--addr", "127.0.0.1:0", "--tokens"])
        .arg(&tokens)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("the server's log"))
        .spawn()
        .expect("start yibao serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first).expect("read the first line");
    let addr = first.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {first}")).to_string();
    Server { child, addr }
}

/// (status, body as JSON or as a string).
fn get(server: &Server, path: &str) -> (u16, Value) {
    let request = ureq::get(&format!("http://{}{path}", server.addr)).set("Authorization", &format!("Bearer {OFFICE}"));
    let response = match request.call() {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(other) => panic!("GET {path}: {other}"),
    };
    let status = response.status();
    let text = response.into_string().expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[test]
fn the_service_answers_500_with_the_person_year_in_its_log_and_answers_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = ledger(dir.path());
    let log = dir.path().join("serve.log");
    let server = serve(&data, &log);
    let failing = [
        format!("/v1/coverage/{BEYOND}"),
        format!("/v1/coverage/{BEYOND}?year=2025&on=2025-03-01"),
        format!("/v1/coverage/{BEYOND}?as_of=2999-01-01T00:00:00Z"),
        "/v1/unpaid?region=520500&year=2025".to_string(),
        format!("/v1/certificates/{BEYOND}/2025"),
    ];
    for path in &failing {
        let before = std::fs::read_to_string(&log).expect("the server's log").len();
        let (status, body) = get(&server, path);
        assert_eq!((status, body["code"].as_str()), (500, Some("internal")), "{path}: {body}");
        assert!(!body.to_string().contains(BEYOND), "{path}: {body}");
        let logged = std::fs::read_to_string(&log).expect("the server's log");
        let line = logged[before..].lines().find(|line| line.starts_with("error: ")).unwrap_or_default();
        assert_names_the_person_year(line);
    }
    let (status, body) = get(&server, &format!("/v1/coverage/{PAID}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["years"][0]["year"]["state"], "received", "{body}");
    let (status, body) = get(&server, &format!("/v1/certificates/{PAID}/2025?format=json"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["person"].as_str(), Some(masked(PAID).as_str()), "{body}");
}
