//! `yibao serve` end to end: the real binary on 127.0.0.1, a temp ledger,
//! a tokens file, and a small HTTP client.

use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::server::{cli, Server, BIN};
const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/policies");
const OFFICE: &str = "office-token-0123456789";
const CHANNEL: &str = "channel-token-0123456789";
/// A second channel: Alipay's payments only.
const ALIPAY: &str = "alipay-token-0123456789";
const AUDITOR: &str = "auditor-token-0123456789";
const PERSON: &str = "520502198503121233";
/// Another resident behind the same mask as `PERSON`.
const SAME_MASK: &str = "520502198503201233";
/// A resident the demo does not know.
const PERSON_2: &str = "520502199102021228";

fn registration() -> Value {
    json!({"type": "person_registered", "v": 1, "person": PERSON, "name": "张伟", "region": "520500",
           "birth_date": "1985-03-12", "registered_on": "2024-09-25"})
}

fn payment() -> Value {
    json!({"type": "payment_received", "v": 1, "person": PERSON, "coverage_year": 2025, "amount": "400.00",
           "channel": "wechat", "channel_ref": "WX20241005093012001", "paid_at": "2024-10-05 09:30:12"})
}

fn start(data: &Path) -> Server {
    cli(data, &["init"]);
    cli(data, &["policy", "load", &format!("{POLICIES}/bijie-2025.toml")]);
    start_on_ledger(data)
}

/// The server on an existing ledger, with an office, a channel and an
/// auditor token.
fn start_on_ledger(data: &Path) -> Server {
    start_with(data, &[])
}

/// The alipay token's channel is spelled as an operator might type it: the
/// tokens file takes the ledger's spelling (`alipay`) from it.
fn start_with(data: &Path, flags: &[&str]) -> Server {
    let text = format!(
        "[[token]]\nname = \"office-1\"\ntoken = \"{OFFICE}\"\nrole = \"office\"\n\n\
         [[token]]\nname = \"wechat\"\ntoken = \"{CHANNEL}\"\nrole = \"channel\"\nchannels = [\"wechat\"]\n\n\
         [[token]]\nname = \"alipay\"\ntoken = \"{ALIPAY}\"\nrole = \"channel\"\nchannels = [\" AliPay \"]\n\n\
         [[token]]\ntoken = \"{AUDITOR}\"\nrole = \"auditor\"\n"
    );
    common::server::spawn(data, &text, flags)
}

/// (status, body as JSON or as a string).
fn call(server: &Server, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    let mut request = ureq::request(method, &format!("http://{}{path}", server.addr));
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let result = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    answered(result, &format!("{method} {path}"))
}

/// (status, body as JSON or as a string) of any answer, errors included.
fn answered(result: Result<ureq::Response, ureq::Error>, what: &str) -> (u16, Value) {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(other) => panic!("{what}: {other}"),
    };
    let status = response.status();
    let text = response.into_string().expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[test]
fn serve_answers_reads_and_writes_with_roles_and_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let server = start(data);

    let (status, health) = call(&server, "GET", "/v1/health", None, None);
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "ok");

    let path = format!("/v1/coverage/{PERSON}");
    assert_eq!(call(&server, "GET", &path, None, None).0, 401);
    assert_eq!(call(&server, "GET", &path, Some("wrong-token-0123456789"), None).0, 401);
    let (status, refused) = call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&registration()));
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["code"], "forbidden");
    assert_eq!(call(&server, "POST", "/v1/events", Some(AUDITOR), Some(&payment())).0, 403);
    assert_eq!(call(&server, "GET", &path, Some(CHANNEL), None).0, 403);

    let (status, unknown) = call(&server, "GET", &path, Some(OFFICE), None);
    assert_eq!(status, 404, "{unknown}");
    assert!(!unknown.to_string().contains(PERSON), "the error carries the full ID: {unknown}");

    let (status, registered) = call(&server, "POST", "/v1/events", Some(OFFICE), Some(&registration()));
    assert_eq!(status, 200, "{registered}");
    assert_eq!(registered["n_appended"], 1);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let between = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (status, paid) = call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&json!([payment()])));
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["n_appended"], 1);
    let (status, retried) = call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&json!([payment()])));
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["n_appended"], 0);
    assert_eq!(retried["positions"], paid["positions"]);

    let (status, answer) = call(&server, "GET", &format!("{path}?year=2025&on=2025-06-01"), Some(AUDITOR), None);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["years"][0]["year"]["state"], "received", "{answer}");
    assert_eq!(answer["years"][0]["covered_on"][1], true, "{answer}");
    assert_eq!(answer["person"]["id"], "520502********1233");
    assert_eq!(answer["log_position"], paid["head"]["position"]);
    assert!(!answer.to_string().contains(PERSON), "the answer carries the full ID: {answer}");
    // What the office knew before the payment was recorded.
    let (status, then) = call(&server, "GET", &format!("{path}?year=2025&as_of={between}"), Some(OFFICE), None);
    assert_eq!(status, 200, "{then}");
    assert_eq!(then["years"][0]["year"]["state"], "registered_unpaid", "{then}");
    let (status, bad) = call(&server, "GET", &format!("{path}?as_of=yesterday"), Some(OFFICE), None);
    assert_eq!(status, 400, "{bad}");

    let (status, history) = call(&server, "GET", &format!("/v1/persons/{PERSON}/history"), Some(OFFICE), None);
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["facts"].as_array().map(Vec::len), Some(2), "{history}");

    let (status, unpaid) = call(&server, "GET", "/v1/unpaid?region=520500&year=2025&per_page=10", Some(OFFICE), None);
    assert_eq!(status, 200, "{unpaid}");
    assert_eq!(unpaid["n_total"], 0, "{unpaid}");

    let mut bad = payment();
    bad["amount"] = json!("four hundred");
    let (status, error) = call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&bad));
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["code"], "bad_input");
    assert_eq!(error["field"], "amount", "{error}");

    let (status, error) = call(&server, "GET", "/v1/coverage/12345", Some(OFFICE), None);
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["field"], "id_number");

    let refund = json!({"type": "refund_issued", "v": 1, "person": PERSON, "coverage_year": 2025,
        "refund_ref": "TK-1", "payment": {"channel": "wechat", "channel_ref": "WX20241005093012001"},
        "amount": "400.01", "destination": "original_channel", "refunded_at": "2024-11-01 10:00:00", "reason": "退费"});
    let (status, rejected) = call(&server, "POST", "/v1/events", Some(OFFICE), Some(&refund));
    assert_eq!(status, 422, "{rejected}");
    assert_eq!(rejected["code"], "rule_refused");
    // Judged as an import's lines are: the fact by its number, and the field at fault.
    assert_eq!(rejected["field"], "amount", "{rejected}");
    let message = rejected["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("request: 1 line(s) refused by the rules; nothing from this request was appended; request:line 1: field `amount`: "), "{rejected}");
    assert!(!rejected.to_string().contains(PERSON), "the rejection carries the full ID: {rejected}");

    let mut keyed = payment();
    keyed["channel_ref"] = json!("WX-KEYED-1");
    keyed["idempotency_key"] = json!("client-key-1");
    assert_eq!(call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&keyed)).0, 200);
    keyed["amount"] = json!("10.00");
    let (status, conflict) = call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&keyed));
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["code"], "conflict");

    assert_eq!(post_declaring_length(&server, 9 * 1024 * 1024), 413);

    let (status, metrics) = call(&server, "GET", "/v1/metrics", None, None);
    assert_eq!(status, 200);
    let metrics = metrics.as_str().expect("text").to_string();
    assert!(metrics.contains("yibao_http_requests_total{route=\"/v1/events\",status=\"200\"}"), "{metrics}");
    assert!(metrics.contains("yibao_log_head_position 4"), "{metrics}");
    assert!(metrics.contains("# TYPE yibao_http_requests counter\n"), "{metrics}");
    assert!(metrics.ends_with("# EOF\n"), "OpenMetrics text ends with its EOF marker: {metrics}");

    let access = std::fs::read_to_string(data.join("access.log")).expect("access.log");
    let line: Value = serde_json::from_str(access.lines().next().expect("a line")).expect("JSON line");
    assert_eq!(line["person"], "520502********1233");
    assert_eq!(line["who"], "office-1");
    assert!(line["person_key"].as_str().is_some_and(|key| key.starts_with("hmac-sm3:")), "{line}");
    assert!(!access.contains(PERSON), "access.log holds a full ID");
    let n_lookups = access.lines().count();

    stop(server, data);
    // Who looked the person up: by the keyed digest, not by the mask,
    // which another person shares.
    let listed = Command::new(BIN).arg("--data").arg(data).args(["access", PERSON]).output().expect("access");
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listed.contains(&format!("{n_lookups} lookup(s) of 520502********1233")), "{listed}");
    assert!(listed.contains("office-1") && listed.contains("/v1/coverage/{id_number}"), "{listed}");
    assert_eq!(SAME_MASK[..6], PERSON[..6]);
    assert_eq!(SAME_MASK[14..], PERSON[14..]);
    let other = Command::new(BIN).arg("--data").arg(data).args(["access", SAME_MASK]).output().expect("access");
    assert!(String::from_utf8_lossy(&other.stdout).contains("0 lookup(s) of 520502********1233"));
}

/// The assessment is decided over HTTP as on the CLI: Shanxi 2022 after a
/// normal payment is refused quoting the rule, and nothing is appended.
#[test]
fn a_posted_assessment_the_rules_refuse_appends_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    cli(data, &["init"]);
    cli(data, &["policy", "load", &format!("{POLICIES}/shanxi-2022.toml")]);
    let server = start_on_ledger(data);
    let person = "140101198001010024";
    let registration = json!({"type": "person_registered", "v": 1, "person": person, "name": "周明",
        "region": "140101", "birth_date": "1980-01-01", "registered_on": "2021-12-01"});
    assert_eq!(call(&server, "POST", "/v1/events", Some(OFFICE), Some(&registration)).0, 200);
    let payment = json!({"type": "payment_received", "v": 1, "person": person, "coverage_year": 2022,
        "amount": "320.00", "channel": "wechat", "channel_ref": "SX-HTTP-1", "paid_at": "2021-12-10 10:00:00"});
    let (status, paid) = call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&payment));
    assert_eq!(status, 200, "{paid}");
    let head = |server: &Server| call(server, "GET", "/v1/health", None, None).1["head"].clone();
    let before = head(&server);
    let assessment = json!({"type": "hardship_assessed", "v": 1, "person": person, "coverage_year": 2022,
        "group": "minimum_living_allowance", "subsidy": "280.00", "amount_due": "40.00", "assessed_on": "2021-12-15"});
    let (status, refused) = call(&server, "POST", "/v1/events", Some(OFFICE), Some(&assessment));
    assert_eq!((status, refused["code"].as_str()), (422, Some("rule_refused")), "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("assessment refused"), "{refused}");
    assert!(message.contains("一旦按正常模块办理缴费,将无法再办理特殊缴费"), "{refused}");
    assert!(!message.contains(person), "the refusal carries the full ID: {refused}");
    assert_eq!(head(&server), before, "a refused assessment appended something");
    stop(server, data);
}

#[test]
fn serve_refuses_to_start_without_tokens_unless_told() {
    let dir = tempfile::tempdir().expect("tempdir");
    cli(dir.path(), &["init"]);
    let output = Command::new(BIN).arg("--data").arg(dir.path()).args(["serve", "--addr", "127.0.0.1:0"]).output();
    let output = output.expect("run yibao serve");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--insecure-no-auth"));
    // Nobody looked anyone up, and asking makes no secret.
    let asked = Command::new(BIN).arg("--data").arg(dir.path()).args(["access", PERSON]).output().expect("access");
    assert!(String::from_utf8_lossy(&asked.stdout).contains("no lookups recorded"));
    assert!(!dir.path().join("access.key").exists());
}

/// `yibao access` finds a person's lookups in both line formats: lines
/// written before HMAC-SM3 (SM3 of key ++ ID, unmarked) and `hmac-sm3:`
/// lines; another person behind the same mask in either format is not
/// listed.
#[test]
fn access_lists_lookups_under_the_older_digest_and_hmac_sm3() {
    use hmac::Mac;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let key = [0x5au8; 32];
    std::fs::write(data.join("access.key"), hex::encode(key)).expect("key");
    let older = |id: &str| hex::encode(&ledger::envelope::sm3(&[&key[..], id.as_bytes()].concat())[..16]);
    let hmac_sm3 = |id: &str| {
        let mut mac = hmac::Hmac::<sm3::Sm3>::new_from_slice(&key).expect("any key length");
        mac.update(id.as_bytes());
        format!("hmac-sm3:{}", hex::encode(&mac.finalize().into_bytes()[..16]))
    };
    let line = |who: &str, person_key: String| {
        json!({"who": who, "when": "2025-01-02 09:00:00", "person": "520502********1233",
               "person_key": person_key, "route": "/v1/coverage/{id_number}"})
        .to_string()
    };
    let lines = [
        line("office-old", older(PERSON)),
        line("office-new", hmac_sm3(PERSON)),
        line("office-other-old", older(SAME_MASK)),
        line("office-other-new", hmac_sm3(SAME_MASK)),
    ];
    std::fs::write(data.join("access.log"), lines.join("\n") + "\n").expect("log");
    let listed = Command::new(BIN).arg("--data").arg(data).args(["access", PERSON]).output().expect("access");
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listed.contains("2 lookup(s) of 520502********1233"), "{listed}");
    assert!(listed.contains("office-old") && listed.contains("office-new"), "{listed}");
    assert!(!listed.contains("office-other"), "{listed}");
}

/// Every route the OpenAPI document names is served (the unit test in
/// `serve::openapi` checks the other way, against the router's table).
#[test]
fn openapi_documents_every_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path());
    let (status, document) = call(&server, "GET", "/v1/openapi.json", None, None);
    assert_eq!(status, 200);
    let paths = document["paths"].as_object().expect("paths");
    assert!(paths.len() >= 10, "{document}");
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            let concrete = path
                .replace("{id_number}", PERSON)
                .replace("{year}", "2025")
                .replace("{application_id}", "DJ-NONE")
                .replace("{step}", "processing");
            let empty = json!({});
            let request_body = (method == "post").then_some(&empty);
            let (status, body) = call(&server, &method.to_uppercase(), &concrete, Some(OFFICE), request_body);
            assert_ne!(status, 405, "{method} {path} is served under another method");
            assert_ne!(
                body["message"], "no such route; see /v1/openapi.json",
                "{method} {path} is not served ({status})"
            );
        }
    }
}

/// A POST declaring a body above the limit; the answer comes before the body.
fn post_declaring_length(server: &Server, length: usize) -> u16 {
    let mut stream = std::net::TcpStream::connect(&server.addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {OFFICE}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n",
        server.addr
    );
    stream.write_all(head.as_bytes()).expect("write");
    let mut answer = [0u8; 64];
    let n = stream.read(&mut answer).expect("read");
    let text = String::from_utf8_lossy(&answer[..n]).to_string();
    text.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("answer: {text}"))
}

/// SIGTERM stops the server cleanly (exit 0); no family checkpoint is written.
fn stop(server: Server, data: &Path) {
    terminate(&server);
    wait_for_exit(server, data);
}

fn terminate(server: &Server) {
    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());
}

/// Waits (20 s at most) for the server told to stop to exit.
fn stopped(mut server: Server) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "the server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the server to exit 0 (the person store, with the family
/// records, is at the head already; the service writes no checkpoint).
fn wait_for_exit(server: Server, data: &Path) {
    let status = stopped(server);
    assert!(status.success(), "exit status {status}");
    assert!(!data.join("projections").join("family.ckpt").exists(), "a family checkpoint was written");
    assert!(data.join("projections").join("persons.sqlite").exists(), "no person store");
}

/// The demo's employee, who pays his relatives' premiums from his account.
const HOLDER: &str = "520502197811204159";

/// Bindings, a proxy application and its steps, the family view and the
/// certificate over HTTP; roles, refusals naming the rule, idempotent
/// retries; the certificate the service issued verifies against the log.
#[test]
fn family_accounts_and_certificates_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let server = start(data);
    assert_eq!(call(&server, "POST", "/v1/events", Some(OFFICE), Some(&registration())).0, 200);

    let binding = json!({"holder": HOLDER, "account_province": "520000", "member": PERSON, "relation": "配偶",
                         "bound_on": "2024-10-01"});
    assert_eq!(call(&server, "POST", "/v1/family/bindings", Some(CHANNEL), Some(&binding)).0, 403);
    let (status, bound) = call(&server, "POST", "/v1/family/bindings", Some(OFFICE), Some(&binding));
    assert_eq!(status, 200, "{bound}");
    assert_eq!(bound["n_appended"], 1, "{bound}");
    let (status, again) = call(&server, "POST", "/v1/family/bindings", Some(OFFICE), Some(&binding));
    assert_eq!(status, 200, "{again}");
    assert_eq!((again["n_appended"].clone(), again["position"].clone()), (json!(0), bound["position"].clone()));
    let mut friend = binding.clone();
    friend["relation"] = json!("friend");
    let (status, refused) = call(&server, "POST", "/v1/family/bindings", Some(OFFICE), Some(&friend));
    assert_eq!((status, refused["field"].as_str()), (400, Some("relation")), "{refused}");
    let mut outside = binding.clone();
    outside["account_province"] = json!("450000");
    let (status, refused) = call(&server, "POST", "/v1/family/bindings", Some(OFFICE), Some(&outside));
    assert_eq!((status, refused["code"].as_str()), (422, Some("rule_refused")), "{refused}");
    assert_eq!(refused["field"], "relation", "a refusal names its field: {refused}");

    let application = json!({"holder": HOLDER, "member": PERSON, "coverage_year": 2025, "amount": "400.00",
                             "application_id": " API-1 ", "at": "2024-10-02 10:00:00"});
    assert_eq!(call(&server, "POST", "/v1/family/applications", Some(OFFICE), Some(&application)).0, 403);
    let (status, applied) = call(&server, "POST", "/v1/family/applications", Some(CHANNEL), Some(&application));
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["application_id"], "API-1", "the canonical id: {applied}");
    let step = |name: &str, body: Value| {
        call(&server, "POST", &format!("/v1/family/applications/API-1/{name}"), Some(CHANNEL), Some(&body))
    };
    let (status, credited) = step("credited", json!({"at": "2024-10-03 10:00:00"}));
    assert_eq!(status, 200, "{credited}");
    let (status, refused) = step("failed", json!({"at": "2024-10-04 10:00:00", "reason": "余额不足"}));
    assert_eq!((status, refused["code"].as_str()), (422, Some("rule_refused")), "{refused}");
    assert!(refused["message"].as_str().is_some_and(|m| m.contains("credited")), "{refused}");
    assert_eq!(step("approved", json!({})).0, 400);
    assert_eq!(step("failed", json!({"at": "2024-10-04 10:00:00"})).1["field"], "reason");
    // The id of an application of other persons: judged on the id too, not
    // only on the holder's and member's records.
    let others = json!({"holder": "520502195205085226", "member": "520502198001156225", "coverage_year": 2025,
                        "amount": "100.00", "application_id": "API-1", "at": "2024-10-05 10:00:00"});
    let (status, refused) = call(&server, "POST", "/v1/family/applications", Some(CHANNEL), Some(&others));
    assert_eq!((status, refused["code"].as_str()), (422, Some("rule_refused")), "{refused}");
    assert!(refused["message"].as_str().is_some_and(|m| m.contains("already submitted")), "{refused}");

    let (status, view) = call(&server, "GET", &format!("/v1/family/persons/{HOLDER}"), Some(OFFICE), None);
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["as_holder"].as_array().map(Vec::len), Some(1), "{view}");
    assert_eq!(view["as_holder"][0]["other"], "520502********1233", "{view}");
    assert_eq!(view["applications"][0]["state"], "credited", "{view}");
    assert_eq!(view["account"][0]["credited"], "400.00", "{view}");
    assert!(!view.to_string().contains(HOLDER) && !view.to_string().contains(PERSON), "{view}");
    assert_eq!(call(&server, "GET", "/v1/family/stuck", Some(AUDITOR), None).0, 200);

    let (status, coverage) = call(&server, "GET", &format!("/v1/coverage/{PERSON}?year=2025"), Some(OFFICE), None);
    assert_eq!(status, 200, "{coverage}");
    assert_eq!(coverage["years"][0]["year"]["state"], "received", "{coverage}");

    let path = format!("/v1/certificates/{PERSON}/2025");
    assert_eq!(call(&server, "GET", &path, Some(CHANNEL), None).0, 403);
    let (status, data_block) = call(&server, "GET", &format!("{path}?format=json"), Some(AUDITOR), None);
    assert_eq!(status, 200, "{data_block}");
    assert_eq!(data_block["person"], "520502********1233", "{data_block}");
    assert_eq!(data_block["net_received"], "400.00", "{data_block}");
    assert_eq!(data_block["payments"][0]["kind"], "proxy", "{data_block}");
    let (status, html) = call(&server, "GET", &path, Some(OFFICE), None);
    assert_eq!(status, 200);
    let html = html.as_str().expect("HTML").to_string();
    let (status, text) = call(&server, "GET", &format!("{path}?format=text"), Some(OFFICE), None);
    assert_eq!(status, 200);
    let text = text.as_str().expect("text").to_string();
    assert!(html.contains("yibao-certificate-data") && !html.contains(PERSON), "{html}");
    let (status, unpaid) = call(&server, "GET", &format!("/v1/certificates/{PERSON}/2024"), Some(OFFICE), None);
    assert_eq!((status, unpaid["code"].as_str()), (422, Some("not_received")), "{unpaid}");
    let (status, _) = call(&server, "GET", "/v1/certificates/520502198001156225/2025", Some(OFFICE), None);
    assert_eq!(status, 404);
    let (status, bad) = call(&server, "GET", &format!("{path}?format=pdf"), Some(OFFICE), None);
    assert_eq!((status, bad["field"].as_str()), (400, Some("format")), "{bad}");

    // The history read through the stream index lists what a scan of the
    // whole log finds (`yibao history`), for the member and the holder.
    let mut histories = Vec::new();
    for id in [PERSON, HOLDER] {
        let (status, history) = call(&server, "GET", &format!("/v1/persons/{id}/history"), Some(OFFICE), None);
        assert_eq!(status, 200, "{history}");
        let positions: Vec<u64> =
            history["facts"].as_array().expect("facts").iter().filter_map(|f| f["position"].as_u64()).collect();
        histories.push((id, positions));
    }
    assert_eq!(histories[0].1.len(), 4, "registration, binding, application, credited: {histories:?}");

    stop(server, data);
    for (id, positions) in histories {
        let scanned = scanned_history(data, id);
        assert_eq!(positions, scanned, "history of {id}");
    }
    // Each form the service gives verifies, the data block alone too.
    for (name, certificate) in [("html", html), ("txt", text), ("json", data_block.to_string())] {
        let file = data.join(format!("certificate.{name}"));
        std::fs::write(&file, &certificate).expect("write certificate");
        cli(data, &["certificate", "verify", file.to_str().expect("path")]);
        std::fs::write(&file, certificate.replace("张伟", "李四")).expect("write certificate");
        let forged = Command::new(BIN).arg("--data").arg(data).args(["certificate", "verify"]).arg(&file).output();
        let forged = forged.expect("verify");
        assert_eq!(forged.status.code(), Some(1), "{name}: a changed name verifies");
        assert!(String::from_utf8_lossy(&forged.stdout).contains("field `name`"), "{name}");
    }
}

/// The coverage card is one answer: the service's JSON, `yibao coverage
/// --json` and the text agree on what is outstanding (0.00 once received;
/// the premium again once every yuan went back), and none carries the
/// birth date beside the masked ID.
#[test]
fn the_card_text_json_and_service_answer_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    demo_ledger(data);
    // 张伟 received; 刘芳's proxy payment failed and went back to the account.
    let cases = [("520502198503121233", "0.00"), ("520502198001156225", "400.00")];
    let server = start_on_ledger(data);
    let served: Vec<Value> = cases
        .iter()
        .map(|(id, _)| {
            let (status, answer) = call(&server, "GET", &format!("/v1/coverage/{id}?year=2025"), Some(OFFICE), None);
            assert_eq!(status, 200, "{answer}");
            answer
        })
        .collect();
    stop(server, data);
    for ((id, outstanding), served) in cases.iter().zip(served) {
        assert_eq!(served["years"][0]["year"]["outstanding"], *outstanding, "{served}");
        assert!(served["person"].get("birth_date").is_none(), "{served}");
        let coverage = |extra: &[&str]| {
            let mut command = Command::new(BIN);
            command.arg("--data").arg(data).args(["coverage", id, "--year", "2025"]).args(extra);
            String::from_utf8_lossy(&command.output().expect("coverage").stdout).into_owned()
        };
        let printed: Value = serde_json::from_str(&coverage(&["--json"])).expect("JSON");
        assert_eq!(printed, served, "yibao coverage --json and the service differ for {id}");
        let text = coverage(&[]);
        assert!(text.contains(&format!("outstanding {outstanding}\n")), "{text}");
        assert!(!text.contains("born"), "{text}");
    }
}

/// A ledger with Bijie 2025 and the demo facts; every ID the facts name.
fn demo_ledger(data: &Path) -> Vec<String> {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo/facts.jsonl");
    cli(data, &["init"]);
    cli(data, &["policy", "load", &format!("{POLICIES}/bijie-2025.toml")]);
    cli(data, &["import", demo]);
    let mut ids: Vec<String> = Vec::new();
    for line in std::fs::read_to_string(demo).expect("demo facts").lines() {
        let fact: Value = serde_json::from_str(line).expect("fact");
        let named = ["person", "holder", "member", "from", "to"].iter().filter_map(|f| fact[*f].as_str());
        ids.extend(named.map(str::to_string));
    }
    ids.sort();
    ids.dedup();
    ids
}

/// The positions `yibao history ID` lists (a scan of the whole log).
fn scanned_history(data: &Path, id: &str) -> Vec<u64> {
    let output = Command::new(BIN).arg("--data").arg(data).args(["history", id]).output().expect("history");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.contains("fact(s) about"))
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Every person of the demo ledger (registrations, conversions, bindings,
/// proxy steps, refunds): the history the service reads through the stream
/// index equals the one `yibao history` finds by scanning the log.
#[test]
fn history_through_the_stream_index_equals_a_scan_for_every_demo_person() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let ids = demo_ledger(data);
    assert!(ids.len() >= 8, "{ids:?}");
    let server = start_on_ledger(data);
    let mut served = Vec::new();
    for id in &ids {
        let (status, history) = call(&server, "GET", &format!("/v1/persons/{id}/history"), Some(OFFICE), None);
        assert_eq!(status, 200, "{id}: {history}");
        let positions: Vec<u64> =
            history["facts"].as_array().expect("facts").iter().filter_map(|f| f["position"].as_u64()).collect();
        served.push(positions);
    }
    stop(server, data);
    for (id, positions) in ids.iter().zip(served) {
        let scanned = scanned_history(data, id);
        assert!(!scanned.is_empty(), "{id}");
        assert_eq!(positions, scanned, "history of {id}");
    }
}

/// `as_of` answers from the person's own facts (the stream index): for
/// every demo person and several moments between later facts, the same
/// years as `yibao coverage --as-of`, which rebuilds the whole log.
#[test]
fn as_of_through_the_person_streams_equals_a_whole_rebuild() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let mut ids = demo_ledger(data);
    ids.push(PERSON_2.to_string());
    let server = start_on_ledger(data);
    let moment = || {
        std::thread::sleep(Duration::from_millis(15));
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        std::thread::sleep(Duration::from_millis(15));
        now
    };
    let mut moments = vec![moment()];
    let registration = json!({"type": "person_registered", "v": 1, "person": PERSON_2, "name": "赵敏",
        "region": "520500", "birth_date": "1991-02-02", "registered_on": "2024-09-26"});
    let payment = json!({"type": "payment_received", "v": 1, "person": PERSON_2, "coverage_year": 2025,
        "amount": "400.00", "channel": "alipay", "channel_ref": "AP-ASOF-1", "paid_at": "2024-10-08 09:00:00"});
    let refund = json!({"type": "refund_issued", "v": 1, "person": PERSON_2, "coverage_year": 2025,
        "refund_ref": "TK-ASOF-1", "payment": {"channel": "alipay", "channel_ref": "AP-ASOF-1"}, "amount": "400.00",
        "destination": "original_channel", "refunded_at": "2024-11-01 10:00:00", "reason": "重复参保"});
    for (token, fact) in [(OFFICE, registration), (ALIPAY, payment), (OFFICE, refund)] {
        let (status, answer) = call(&server, "POST", "/v1/events", Some(token), Some(&fact));
        assert_eq!(status, 200, "{answer}");
        moments.push(moment());
    }
    let mut served = Vec::new();
    for id in &ids {
        for at in &moments {
            let (status, answer) = call(&server, "GET", &format!("/v1/coverage/{id}?as_of={at}"), Some(AUDITOR), None);
            served.push((id.clone(), at.clone(), status, answer));
        }
    }
    stop(server, data);
    let states: HashSet<String> =
        served.iter().filter_map(|(_, _, _, a)| a["years"][0]["year"]["state"].as_str().map(str::to_string)).collect();
    assert!(states.len() >= 3, "the moments show too few states: {states:?}");
    for (id, at, status, answer) in served {
        let output = Command::new(BIN)
            .arg("--data")
            .arg(data)
            .args(["coverage", &id, "--as-of", &at, "--json"])
            .output()
            .expect("coverage");
        if status == 404 {
            assert!(answer["message"].as_str().is_some_and(|m| m.contains(&format!("as of {at}"))), "{answer}");
            assert_eq!(output.status.code(), Some(1), "{id} at {at}: unknown to the service, known to a rebuild");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains(&format!("as of {at} (facts recorded by then)")), "{id} at {at}: {stderr}");
            continue;
        }
        assert_eq!(status, 200, "{id} at {at}: {answer}");
        let rebuilt: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{id} at {at}: {e}"));
        let without_person = |years: &Value| -> Vec<Value> {
            years
                .as_array()
                .expect("years")
                .iter()
                .map(|entry| {
                    let mut entry = entry.clone();
                    entry["year"].as_object_mut().expect("year").remove("person");
                    entry
                })
                .collect()
        };
        assert_eq!(without_person(&answer["years"]), without_person(&rebuilt["years"]), "{id} at {at}");
    }
}

/// Follows an audit job until it has finished; its final status.
fn finished_job(server: &Server, started: &Value) -> Value {
    let path = started["status"].as_str().unwrap_or_else(|| panic!("no job address: {started}")).to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, job) = call(server, "GET", &path, Some(AUDITOR), None);
        assert_eq!(status, 200, "{job}");
        if job["state"] != "running" {
            return job;
        }
        assert!(Instant::now() < deadline, "the job did not finish: {job}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Verify and replay as jobs for auditors: 202 with the job's address, its
/// progress, a result equal to the CLI's (`yibao replay --json` digest),
/// the drift check against the live projection; other roles are refused.
#[test]
fn audit_jobs_verify_the_chain_and_replay_a_year_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    demo_ledger(data);
    let server = start_on_ledger(data);
    let (_, health) = call(&server, "GET", "/v1/health", None, None);
    let head = health["head"]["position"].as_u64().expect("head");

    assert_eq!(call(&server, "POST", "/v1/audit/verify", Some(OFFICE), Some(&json!({}))).0, 403);
    assert_eq!(call(&server, "POST", "/v1/audit/replay", Some(CHANNEL), Some(&json!({"year": 2025}))).0, 403);
    let (status, started) = call(&server, "POST", "/v1/audit/verify", Some(AUDITOR), Some(&json!({})));
    assert_eq!(status, 202, "{started}");
    let job = finished_job(&server, &started);
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["result"]["ok"], true, "{job}");
    assert_eq!(job["result"]["n_records"].as_u64(), Some(head), "{job}");
    assert_eq!(job["done"].as_u64(), Some(head), "{job}");
    assert_eq!(job["result"]["last_good"]["hash"], health["head"]["hash"], "{job}");
    let (status, empty) = call(&server, "POST", "/v1/audit/verify", Some(AUDITOR), Some(&json!({"from": 5, "to": 2})));
    assert_eq!((status, empty["field"].as_str()), (400, Some("to")), "{empty}");

    let (status, started) =
        call(&server, "POST", "/v1/audit/replay", Some(AUDITOR), Some(&json!({"year": 2025, "check": true})));
    assert_eq!(status, 202, "{started}");
    let job = finished_job(&server, &started);
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["result"]["drift"]["n_differing"], 0, "{job}");
    let digest = job["result"]["digest"].as_str().expect("digest").to_string();
    let (status, bad) = call(&server, "POST", "/v1/audit/replay", Some(AUDITOR), Some(&json!({"region": "520500"})));
    assert_eq!(status, 400, "{bad}");
    let (status, bad) = call(
        &server,
        "POST",
        "/v1/audit/replay",
        Some(AUDITOR),
        Some(&json!({"year": 2025, "check": true, "as_of": "2025-01-01T00:00:00Z"})),
    );
    assert_eq!((status, bad["field"].as_str()), (400, Some("check")), "{bad}");
    assert_eq!(call(&server, "GET", "/v1/audit/jobs/999", Some(AUDITOR), None).0, 404);
    assert_eq!(call(&server, "GET", "/v1/audit/jobs/1", Some(OFFICE), None).0, 403);

    stop(server, data);
    let output = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(["replay", "--year", "2025", "--json"])
        .output()
        .expect("replay");
    let report: Value = serde_json::from_slice(&output.stdout).expect("replay JSON");
    assert_eq!(report["digest"].as_str(), Some(digest.as_str()), "the job's digest is not the CLI's");
}

/// Payments the service takes without judging them against the
/// person-year can take its money beyond what an amount can be: the replay
/// job then fails, naming the person-year (masked), and never reports the
/// figure as 0.00.
#[test]
fn a_replay_job_over_money_that_is_no_amount_fails_naming_the_person_year() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let server = start(data);
    assert_eq!(call(&server, "POST", "/v1/events", Some(OFFICE), Some(&registration())).0, 200);
    let largest = |reference: &str| {
        let mut fact = payment();
        fact["amount"] = json!("1000000000000.00");
        fact["channel_ref"] = json!(reference);
        fact
    };
    let (status, paid) =
        call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&json!([largest("WX-1"), largest("WX-2")])));
    assert_eq!(status, 200, "{paid}");
    let (status, started) = call(&server, "POST", "/v1/audit/replay", Some(AUDITOR), Some(&json!({"year": 2025})));
    assert_eq!(status, 202, "{started}");
    let job = finished_job(&server, &started);
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap_or_default();
    let masked = PERSON.parse::<ledger::Identity>().expect("an ID").masked();
    assert!(error.contains(&format!("person-year {masked} 2025")), "{job}");
    assert!(error.contains("not an amount of money") && !error.contains(PERSON), "{job}");
    stop(server, data);
}

/// A body that stalls (head sent, body not) holds the only reading slot of
/// `--max-reading 1`: the next body is shed with 503 and Retry-After while
/// lookups, which have no body to read, are still answered; the stalled
/// one is answered 408 `body_timeout` after `--body-read-timeout`.
#[test]
fn load_is_shed_and_slow_bodies_time_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    cli(data, &["init"]);
    let server = start_with(data, &["--max-reading", "1", "--body-read-timeout", "3"]);
    assert_eq!(call(&server, "GET", "/v1/health", None, None).0, 200);

    let stall = || {
        let mut stalled = std::net::TcpStream::connect(&server.addr).expect("connect");
        stalled.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {OFFICE}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
            server.addr
        );
        stalled.write_all(head.as_bytes()).expect("write");
        stalled
    };
    let mut stalled = stall();
    // The stalled body takes the slot as soon as its head is read.
    let deadline = Instant::now() + Duration::from_secs(10);
    let shed = loop {
        let response = ureq::post(&format!("http://{}/v1/events", server.addr))
            .set("Authorization", &format!("Bearer {OFFICE}"))
            .send_json(registration());
        match response {
            Err(ureq::Error::Status(503, response)) => break response,
            // The stalled head may not have been read yet; or a post read
            // first held the slot and the stalled one was shed itself
            // (answered already): stall another.
            Ok(_) => {
                assert!(Instant::now() < deadline, "nothing was shed");
                stalled.set_nonblocking(true).expect("nonblocking");
                let answered =
                    !matches!(stalled.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
                stalled.set_nonblocking(false).expect("blocking");
                if answered {
                    stalled = stall();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(ureq::Error::Status(_, response)) => panic!("{}", response.into_string().expect("body")),
            Err(other) => panic!("{other}"),
        }
    };
    assert!(shed.header("Retry-After").is_some(), "no Retry-After on 503");
    let body: Value = serde_json::from_str(&shed.into_string().expect("body")).expect("JSON");
    assert_eq!(body["code"], "overloaded", "{body}");
    assert_eq!(call(&server, "GET", "/v1/health", None, None).0, 200, "a lookup waits for a slow body");

    let answer = read_answer(&mut stalled);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"body_timeout\""), "{answer}");
    assert_eq!(call(&server, "POST", "/v1/events", Some(OFFICE), Some(&registration())).0, 200);
    let (_, metrics) = call(&server, "GET", "/v1/metrics", None, None);
    let figure = |name: &str| {
        metrics
            .as_str()
            .and_then(|text| text.lines().find(|l| l.starts_with(&format!("{name} "))))
            .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
    };
    assert!(figure("yibao_http_requests_shed_total").is_some_and(|n| n >= 1), "{metrics}");
    assert_eq!(figure("yibao_http_body_timeouts_total"), Some(1), "{metrics}");
}

/// What the server answered on a raw connection, up to the JSON message.
fn read_answer(stream: &mut std::net::TcpStream) -> String {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&bytes).contains("\"message\"") {
        let n = stream.read(&mut chunk).expect("read the answer");
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&bytes).to_string()
}

/// A payment whose body is still arriving when the server is told to stop
/// (SIGTERM) is finished: answered 200, in the log after the server exited.
#[test]
fn a_write_in_flight_at_shutdown_is_finished_and_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let server = start(data);
    assert_eq!(call(&server, "POST", "/v1/events", Some(OFFICE), Some(&registration())).0, 200);
    let body = payment().to_string();
    let (first, rest) = body.as_bytes().split_at(20);
    let mut stream = std::net::TcpStream::connect(&server.addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {CHANNEL}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write the head");
    stream.write_all(first).expect("write part of the body");
    // Long enough for the server to have read the head: the request is in flight.
    std::thread::sleep(Duration::from_millis(300));
    terminate(&server);
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(rest).expect("write the rest of the body");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"n_appended\":1"), "{answer}");
    wait_for_exit(server, data);
    assert!(
        scanned_history(data, PERSON).len() == 2,
        "the registration and the payment are in the log: {:?}",
        scanned_history(data, PERSON)
    );
}

/// A payment by `channel` through `channel_ref`, for `PERSON`.
fn payment_via(channel: &str, channel_ref: &str) -> Value {
    let mut fact = payment();
    fact["channel"] = json!(channel);
    fact["channel_ref"] = json!(channel_ref);
    fact
}

/// A channel token posts its own channels' payments only, and a
/// caller-given idempotency key lives in the caller's namespace: another
/// channel cannot take it (nor the natural key of a payment to come), two
/// callers may use the same key, and a retry by the same caller is
/// idempotent. Every /v1 answer says `Cache-Control: no-store`.
#[test]
fn channel_tokens_post_their_own_channels_with_keys_of_their_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let server = start(data);
    assert_eq!(call(&server, "POST", "/v1/events", Some(OFFICE), Some(&registration())).0, 200);

    let (status, refused) =
        call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&json!([payment_via("alipay", "AP-1")])));
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["code"], "forbidden");
    assert!(refused["message"].as_str().is_some_and(|m| m.contains("alipay")), "{refused}");

    // WeChat's token tries to take Alipay's natural key for a payment of
    // its own: a key the ledger gives facts is refused, naming the field.
    let mut squatting = payment_via("wechat", "WX-SQUAT-1");
    squatting["idempotency_key"] = json!("payment/alipay/AP-1");
    let (status, squatted) = call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&squatting));
    assert_eq!((status, squatted["field"].clone()), (400, json!("idempotency_key")), "{squatted}");
    let (status, genuine) = call(&server, "POST", "/v1/events", Some(ALIPAY), Some(&payment_via("alipay", "AP-1")));
    assert_eq!(status, 200, "the genuine Alipay payment is refused: {genuine}");
    assert_eq!(genuine["n_appended"], 1, "{genuine}");

    // The same key from two channels: two payments.
    let mut wechat = payment_via("wechat", "WX-K");
    wechat["idempotency_key"] = json!("K");
    let mut alipay = payment_via("alipay", "AP-K");
    alipay["idempotency_key"] = json!("K");
    let (status, first) = call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&wechat));
    assert_eq!((status, first["n_appended"].clone()), (200, json!(1)), "{first}");
    let (status, second) = call(&server, "POST", "/v1/events", Some(ALIPAY), Some(&alipay));
    assert_eq!((status, second["n_appended"].clone()), (200, json!(1)), "{second}");
    assert_ne!(first["positions"], second["positions"]);
    let (status, retried) = call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&wechat));
    assert_eq!(status, 200, "{retried}");
    assert_eq!((retried["n_appended"].clone(), retried["positions"].clone()), (json!(0), first["positions"].clone()));
    wechat["amount"] = json!("10.00");
    assert_eq!(call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&wechat)).0, 409);

    for (path, token) in [
        (format!("/v1/coverage/{PERSON}"), Some(OFFICE)),
        (format!("/v1/coverage/{PERSON}"), None),
        (format!("/v1/persons/{PERSON}/history"), Some(OFFICE)),
        ("/v1/no-such-route".to_string(), Some(OFFICE)),
        ("/v1/health".to_string(), None),
    ] {
        let mut request = ureq::get(&format!("http://{}{path}", server.addr));
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let response = match request.call() {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(other) => panic!("{path}: {other}"),
        };
        assert_eq!(response.header("Cache-Control"), Some("no-store"), "{path} ({})", response.status());
    }
}

/// Runs `yibao serve` that must refuse to start: its exit code and stderr.
fn refused_start(data: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .arg("serve")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run yibao serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("yibao serve {args:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).to_string())
}

/// Exit 2 with a message saying what to do: a tokens file others may read
/// (`chmod 600 FILE`), a channel token naming no channels, and
/// `--insecure-no-auth` on an address other machines reach.
#[test]
fn serve_refuses_an_open_tokens_file_and_insecure_mode_off_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    cli(data, &["init"]);
    let tokens = data.join("tokens.toml");
    let tokens_arg = tokens.to_str().expect("path");
    let office = format!("[[token]]\ntoken = \"{OFFICE}\"\nrole = \"office\"\n");
    std::fs::write(&tokens, &office).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let (code, stderr) = refused_start(data, &["--addr", "127.0.0.1:0", "--tokens", tokens_arg]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(&format!("chmod 600 {tokens_arg}")), "{stderr}");
    }

    let channel = format!("[[token]]\ntoken = \"{CHANNEL}\"\nrole = \"channel\"\n");
    common::server::write_private(&tokens, &channel);
    let (code, stderr) = refused_start(data, &["--addr", "127.0.0.1:0", "--tokens", tokens_arg]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("channels = [\"wechat\"]"), "{stderr}");

    for addr in ["0.0.0.0:0", "[::]:0"] {
        let (code, stderr) = refused_start(data, &["--addr", addr, "--insecure-no-auth"]);
        assert_eq!(code, Some(2), "{addr}: {stderr}");
        assert!(stderr.contains("loopback"), "{addr}: {stderr}");
    }
}

/// A raw connection to the server.
fn connect(server: &Server) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(&server.addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    stream
}

/// 300 slow clients (40 heads sent a byte at a time; 260 bodies a byte at a
/// time, half without a token, half with one: more than `--max-in-flight`)
/// hold no slot a lookup needs: an office lookup is answered at once. The slow heads are cut off after
/// `--header-read-timeout`, the unauthenticated bodies answered 401 before
/// a byte is read, the authenticated ones 408 or shed.
#[test]
fn slow_clients_do_not_lock_lookups_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    cli(data, &["init"]);
    cli(data, &["policy", "load", &format!("{POLICIES}/bijie-2025.toml")]);
    let server = start_with(data, &["--header-read-timeout", "5", "--body-read-timeout", "5"]);
    assert_eq!(call(&server, "POST", "/v1/events", Some(OFFICE), Some(&registration())).0, 200);

    let body_head = |token: Option<&str>| {
        let authorization = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        format!(
            "POST /v1/events HTTP/1.1\r\nHost: {}\r\n{authorization}Content-Type: application/json\r\n\
             Content-Length: 1000\r\n\r\n ",
            server.addr
        )
    };
    let mut slow_heads = Vec::new();
    let mut slow_bodies = Vec::new();
    for index in 0..300 {
        let mut stream = connect(&server);
        let opening = match index {
            0..40 => "GET /v1/health HTTP/1.1\r\nX-Slow: ".to_string(),
            _ if index % 2 == 0 => body_head(None),
            _ => body_head(Some(CHANNEL)),
        };
        stream.write_all(opening.as_bytes()).expect("write");
        if index < 40 {
            slow_heads.push(stream);
        } else {
            slow_bodies.push(stream);
        }
    }
    // A byte on each connection every 200 ms, until the server closes it.
    let dribbled: Vec<std::net::TcpStream> =
        slow_heads.iter().chain(&slow_bodies).map(|s| s.try_clone().expect("clone")).collect();
    let dribbling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let dribbler = {
        let dribbling = std::sync::Arc::clone(&dribbling);
        std::thread::spawn(move || {
            let mut streams = dribbled;
            while dribbling.load(std::sync::atomic::Ordering::Relaxed) {
                for stream in &mut streams {
                    let _ = stream.write_all(b"a");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));

    let started = Instant::now();
    let (status, answer) = call(&server, "GET", &format!("/v1/coverage/{PERSON}"), Some(OFFICE), None);
    let elapsed = started.elapsed();
    println!("office lookup beside 300 slow clients: {} ms", elapsed.as_millis());
    assert_eq!(status, 200, "{answer}");
    assert!(elapsed < Duration::from_secs(5), "the lookup took {elapsed:?}");
    assert_eq!(call(&server, "GET", "/v1/health", None, None).0, 200);

    let mut n_unauthorized = 0;
    let mut n_late_or_shed = 0;
    for stream in &mut slow_bodies {
        let answer = read_answer(stream);
        if answer.starts_with("HTTP/1.1 401") {
            n_unauthorized += 1;
        } else if answer.starts_with("HTTP/1.1 408") || answer.starts_with("HTTP/1.1 503") {
            n_late_or_shed += 1;
        } else {
            panic!("a slow body was answered {answer}");
        }
    }
    assert_eq!((n_unauthorized, n_late_or_shed), (130, 130));
    // The slow heads were cut off: end of stream (or a reset), no answer.
    for stream in &mut slow_heads {
        let mut buffer = [0u8; 256];
        match stream.read(&mut buffer) {
            Ok(n) => assert!(
                n == 0 || String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 408"),
                "{}",
                String::from_utf8_lossy(&buffer[..n])
            ),
            Err(error) => assert!(
                !matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
                "a slow head is still open after a minute"
            ),
        }
    }
    dribbling.store(false, std::sync::atomic::Ordering::Relaxed);
    dribbler.join().expect("the dribbler");
}

/// A small tmpfs mounted for one test, unmounted when dropped (also when
/// the test fails). `None` when this machine cannot mount one: the test is
/// skipped loudly, or fails under `CI=true`.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size_mib: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::piped())
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(SmallDisk { dir }),
            Ok(output) => skip(&format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&output.stderr).trim())),
            Err(error) => skip(&format!("no mount command: {error}")),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn skip<T>(reason: &str) -> Option<T> {
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and the test cannot run: {reason}");
    eprintln!("SKIPPED (run as root to test a full disk): {reason}");
    None
}

/// Fills the filesystem holding `path` with one file, to the last page.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("create the filler");
    for chunk in [vec![0u8; 1 << 20], vec![0u8; 4096], vec![0u8; 512]] {
        while file.write_all(&chunk).is_ok() {}
    }
    let _ = file.sync_all();
}

/// Posts batches of payments until one is refused; that answer.
fn post_until_refused(server: &Server, batch_prefix: &str) -> (u16, Value) {
    for batch in 0..200 {
        let facts: Vec<Value> =
            (0..200).map(|index| payment_via("wechat", &format!("{batch_prefix}-{batch}-{index}"))).collect();
        let (status, answer) = call(server, "POST", "/v1/events", Some(CHANNEL), Some(&json!(facts)));
        if status != 200 {
            return (status, answer);
        }
    }
    panic!("the disk never filled up");
}

fn metric(server: &Server, name: &str) -> Option<u64> {
    let (_, metrics) = call(server, "GET", "/v1/metrics", None, None);
    let text = metrics.as_str()?.to_string();
    let line = text.lines().find(|l| l.starts_with(&format!("{name} ")))?.to_string();
    line.split_whitespace().nth(1)?.parse().ok()
}

/// On a small filesystem filled up: a post is refused 507 with the reason,
/// lookups are still answered, `/v1/health` says 503 with the reason and
/// the metrics count the failures; once the filler is deleted, posts
/// succeed again without a restart. SIGTERM on a full disk still stops
/// cleanly, and the log verifies afterwards.
#[test]
fn a_full_disk_refuses_writes_and_writes_resume_when_space_is_back() {
    let Some(disk) = SmallDisk::mount(24) else { return };
    let data = disk.path().join("ledger");
    let filler = disk.path().join("filler");
    let server = start(&data);
    assert_eq!(call(&server, "POST", "/v1/events", Some(OFFICE), Some(&registration())).0, 200);
    assert_eq!(call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&payment())).0, 200);

    fill(&filler);
    let (status, refused) = post_until_refused(&server, "WX-FULL");
    assert_eq!(status, 507, "{refused}");
    assert_eq!(refused["code"], "insufficient_storage", "{refused}");
    assert!(refused["message"].as_str().is_some_and(|m| m.contains("space")), "{refused}");
    let (status, again) = call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&payment_via("wechat", "WX-A")));
    assert_eq!((status, again["code"].clone()), (507, json!("insufficient_storage")), "{again}");

    let (status, coverage) = call(&server, "GET", &format!("/v1/coverage/{PERSON}?year=2025"), Some(OFFICE), None);
    assert_eq!(status, 200, "a lookup on a full disk: {coverage}");
    assert_eq!(coverage["person"]["id"], "520502********1233", "{coverage}");
    let (status, history) = call(&server, "GET", &format!("/v1/persons/{PERSON}/history"), Some(OFFICE), None);
    assert_eq!(status, 200, "history on a full disk: {history}");
    let (status, health) = call(&server, "GET", "/v1/health", None, None);
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "refusing_writes", "{health}");
    assert!(health["reason"].as_str().is_some_and(|r| r.contains("space")), "{health}");
    assert!(metric(&server, "yibao_store_write_failures_total").is_some_and(|n| n >= 1));
    assert!(metric(&server, "yibao_store_writes_refused_total").is_some_and(|n| n >= 1));
    assert_eq!(metric(&server, "yibao_store_refusing_writes"), Some(1));

    std::fs::remove_file(&filler).expect("delete the filler");
    let deadline = Instant::now() + Duration::from_secs(30);
    while call(&server, "GET", "/v1/health", None, None).0 != 200 {
        assert!(Instant::now() < deadline, "writes did not resume once space was back");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, resumed) = call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&payment_via("wechat", "WX-A")));
    assert_eq!((status, resumed["n_appended"].clone()), (200, json!(1)), "{resumed}");
    let (status, history) = call(&server, "GET", &format!("/v1/persons/{PERSON}/history"), Some(OFFICE), None);
    assert_eq!(status, 200, "{history}");
    let positions: Vec<u64> =
        history["facts"].as_array().expect("facts").iter().filter_map(|f| f["position"].as_u64()).collect();
    assert_eq!(positions.last(), resumed["positions"][0].as_u64().as_ref(), "{history}");
    assert_eq!(metric(&server, "yibao_store_refusing_writes"), Some(0));
    assert!(metric(&server, "yibao_store_reopens_total").is_some_and(|n| n >= 1));

    // Full again, then told to stop: a clean exit all the same.
    fill(&filler);
    assert_eq!(post_until_refused(&server, "WX-FULL-AGAIN").0, 507);
    terminate(&server);
    let status = stopped(server);
    assert!(status.success(), "SIGTERM on a full disk: exit status {status}");
    std::fs::remove_file(&filler).expect("delete the filler");
    cli(&data, &["verify"]);
    assert!(scanned_history(&data, PERSON).contains(&resumed["positions"][0].as_u64().expect("position")));
}

/// (status, body as JSON) for a raw body, which a `Value` could not hold
/// (a key given twice).
fn post_text(server: &Server, token: &str, body: &str) -> (u16, Value) {
    let request = ureq::post(&format!("http://{}/v1/events", server.addr))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json");
    answered(request.send_string(body), "POST /v1/events")
}

/// One payment posted six ways is one payment; a repeated key, an amount a
/// float would round, an invisible character, an unknown channel or a key
/// that takes another fact's natural key is refused, naming the field.
#[test]
fn spellings_of_one_payment_over_http_are_one_payment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let server = start(data);
    assert_eq!(call(&server, "POST", "/v1/events", Some(OFFICE), Some(&registration())).0, 200);
    let spellings = [
        ("wechat", "WX20241005093012001"),
        ("WeChat", "WX20241005093012001"),
        ("wechat ", "WX20241005093012001"),
        ("wechat", " WX20241005093012001 "),
        ("WECHAT", "ＷＸ20241005093012001"),
        ("ｗｅｃｈａｔ", "WX20241005093012001\u{3000}"),
    ];
    let mut positions = HashSet::new();
    for (channel, reference) in spellings {
        let mut fact = payment();
        fact["channel"] = json!(channel);
        fact["channel_ref"] = json!(reference);
        let (status, answer) = call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&fact));
        assert_eq!(status, 200, "{channel:?} {reference:?}: {answer}");
        positions.insert(answer["positions"][0].as_u64().expect("a position"));
    }
    assert_eq!(positions.len(), 1, "one payment: {positions:?}");
    let (status, card) = call(&server, "GET", &format!("/v1/coverage/{PERSON}?year=2025"), Some(OFFICE), None);
    assert_eq!(status, 200, "{card}");
    assert_eq!(card["years"][0]["year"]["net_received"], "400.00", "{card}");

    let refused = |body: String, field: &str, needle: &str| {
        let (status, error) = post_text(&server, CHANNEL, &body);
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["field"], field, "{body}: {error}");
        assert!(error.to_string().contains(needle), "{needle:?} in {error}");
    };
    let text = payment().to_string();
    refused(text.replace(r#""amount":"400.00""#, r#""amount":"400.00","amount":"1.00""#), "amount", "more than once");
    refused(format!("[{text},{}]", text.replace(r#""v":1"#, r#""v":1,"v":1"#)), "[1].v", "more than once");
    refused(text.replace(r#""amount":"400.00""#, r#""amount":400.00000000000001"#), "amount", "two decimals");
    refused(text.replace(r#""amount":"400.00""#, r#""amount":0.1e-400"#), "amount", "");
    refused(text.replace("WX20241005093012001", "WX20241005093012001\\u200b"), "channel_ref", "U+200B");
    refused(text.replace("WX20241005093012001", "WX2024100509\\u202e3012001"), "channel_ref", "U+202E");
    refused(text.replace(r#""wechat""#, r#""wechatpay""#), "channel", "known: alipay");
    let mut squatter = payment();
    squatter["channel_ref"] = json!("WX-OTHER-1");
    squatter["idempotency_key"] = json!("payment/wechat/WX20241005093012002");
    refused(squatter.to_string(), "idempotency_key", "payment/");
    let (status, card) = call(&server, "GET", &format!("/v1/coverage/{PERSON}?year=2025"), Some(OFFICE), None);
    assert_eq!(status, 200, "{card}");
    assert_eq!(card["years"][0]["year"]["net_received"], "400.00", "nothing more was appended: {card}");
}

/// A known person asked a year with no fact: that year's view (unpaid),
/// and a certificate refused for its state, never 404 "no person".
#[test]
fn a_known_person_asked_a_year_without_facts_is_not_a_404() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    demo_ledger(data);
    let server = start_on_ledger(data);
    let (status, answer) = call(&server, "GET", &format!("/v1/coverage/{PERSON}?year=2024"), Some(OFFICE), None);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["years"][0]["year"]["coverage_year"], 2024, "{answer}");
    assert_eq!(answer["years"][0]["year"]["state"], "registered_unpaid", "{answer}");
    let (status, answer) = call(&server, "GET", &format!("/v1/certificates/{PERSON}/2024"), Some(OFFICE), None);
    assert_eq!(status, 422, "{answer}");
    assert!(!answer.to_string().contains("no person"), "{answer}");
    let (status, answer) = call(&server, "GET", &format!("/v1/coverage/{PERSON_2}?year=2024"), Some(OFFICE), None);
    assert_eq!(status, 404, "{answer}");
    assert!(answer.to_string().contains("no person with ID"), "{answer}");
    stop(server, data);
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    keys.sort();
    keys
}

/// `yibao family stuck --json` and `GET /v1/family/stuck` are one answer:
/// the same fields (the service adds how far it had read), the same entries.
#[test]
fn the_stuck_list_is_one_answer_on_the_cli_and_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    demo_ledger(data);
    // 刘芳's first proxy payment went back; a second one is still in flight.
    let apply = ["family", "apply", "--holder", "520502197811204159", "--member", "520502198001156225"];
    let rest = ["--year", "2025", "--amount", "400", "--id", "ST-9", "--at", "2024-10-20 10:00:00"];
    cli(data, &[&apply[..], &rest[..]].concat());
    let server = start_on_ledger(data);
    let (status, served) = call(&server, "GET", "/v1/family/stuck?older_than_hours=1", Some(AUDITOR), None);
    stop(server, data);
    assert_eq!(status, 200, "{served}");
    let output =
        Command::new(BIN).arg("--data").arg(data).args(["family", "stuck", "--json", "--older-than", "1h"]).output();
    let printed: Value = serde_json::from_slice(&output.expect("family stuck").stdout).expect("JSON");

    let mut served_keys = keys(&served);
    served_keys.retain(|k| k != "log_position");
    assert_eq!(keys(&printed), served_keys, "CLI {printed}\nHTTP {served}");
    assert!(served["now"].is_string() && served["log_position"].is_u64(), "{served}");
    assert_eq!(served["stuck"].as_array().map(Vec::len), Some(1), "{served}");
    let (mut cli_entry, mut http_entry) = (printed["stuck"][0].clone(), served["stuck"][0].clone());
    assert_eq!(keys(&cli_entry), keys(&http_entry));
    assert!(http_entry["age_hours"].as_i64().is_some_and(|hours| hours > 24), "{http_entry}");
    // Both measured against the clock, a moment apart.
    for entry in [&mut cli_entry, &mut http_entry] {
        entry.as_object_mut().map(|o| o.remove("age_hours"));
    }
    assert_eq!(cli_entry, http_entry);
    assert_eq!(http_entry["application_id"], "ST-9");
}

/// `yibao unpaid --json` and `GET /v1/unpaid`'s entries are one answer.
#[test]
fn the_unpaid_list_is_one_answer_on_the_cli_and_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    demo_ledger(data);
    let server = start_on_ledger(data);
    let (status, served) = call(&server, "GET", "/v1/unpaid?region=520500&year=2025", Some(OFFICE), None);
    stop(server, data);
    assert_eq!(status, 200, "{served}");
    let output = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(["unpaid", "--region", "520500", "--year", "2025", "--json"])
        .output();
    let printed: Value = serde_json::from_slice(&output.expect("unpaid").stdout).expect("JSON");
    assert!(printed.as_array().is_some_and(|entries| !entries.is_empty()), "{printed}");
    assert_eq!(printed, served["entries"], "yibao unpaid --json and the service differ");
}

/// `yibao family list ID --json` and `GET /v1/family/persons/{id}` are one
/// answer: the bindings both ways, the applications and the account.
#[test]
fn the_family_view_is_one_answer_on_the_cli_and_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    demo_ledger(data);
    let server = start_on_ledger(data);
    let (status, served) = call(&server, "GET", &format!("/v1/family/persons/{HOLDER}"), Some(OFFICE), None);
    stop(server, data);
    assert_eq!(status, 200, "{served}");
    let output = Command::new(BIN).arg("--data").arg(data).args(["family", "list", HOLDER, "--json"]).output();
    let printed: Value = serde_json::from_slice(&output.expect("family list").stdout).expect("JSON");
    assert_eq!(printed, served, "yibao family list --json and the service differ");
    assert_eq!(served["as_holder"].as_array().map(Vec::len), Some(2), "{served}");
    assert_eq!(served["applications"][0]["state_zh"], "缴费到账成功", "{served}");
}

/// The persons a `yibao generate` file registers.
fn generated_ledger(data: &Path, n_persons: usize) -> Vec<String> {
    let facts = data.with_extension("jsonl");
    cli(data, &["init"]);
    let out = facts.to_str().expect("a UTF-8 path");
    cli(data, &["generate", "--persons", &n_persons.to_string(), "--out", out]);
    cli(data, &["import", out]);
    let text = std::fs::read_to_string(&facts).expect("the generated facts");
    let registered = text.lines().filter_map(|line| {
        let fact: Value = serde_json::from_str(line).ok()?;
        (fact["type"] == "person_registered").then(|| fact["person"].as_str().map(str::to_string))?
    });
    registered.collect()
}

/// The service does not load the whole coverage projection: started on a
/// ledger without its checkpoint nor a person store, it builds the store
/// from the log and reads persons one by one as they are asked for; the
/// persons it keeps stay within `--cache-mb` (the least recently used go
/// first, and are read again when asked for); it writes no coverage
/// checkpoint when it stops.
#[test]
fn the_service_reads_persons_from_the_store_within_its_cache() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("ledger");
    let persons = generated_ledger(&data, 3000);
    let checkpoint = data.join("projections").join("coverage.ckpt");
    let _ = std::fs::remove_file(&checkpoint);
    let _ = std::fs::remove_file(data.join("projections").join("persons.sqlite"));
    let server = start_with(&data, &["--cache-mb", "1"]);
    assert_eq!(metric(&server, "yibao_store_persons_loaded_total"), Some(0), "persons read before any lookup");
    assert_eq!(metric(&server, "yibao_cache_limit_bytes"), Some(1024 * 1024));

    let first = call(&server, "GET", &format!("/v1/coverage/{}", persons[0]), Some(OFFICE), None);
    assert_eq!(first.0, 200, "{}", first.1);
    for person in &persons {
        let (status, answer) = call(&server, "GET", &format!("/v1/coverage/{person}"), Some(OFFICE), None);
        assert_eq!(status, 200, "{answer}");
        let cached = metric(&server, "yibao_cache_bytes").expect("the cache's bytes");
        assert!(cached <= 1024 * 1024, "the cache holds {cached} bytes, above --cache-mb 1");
    }
    let loaded = metric(&server, "yibao_store_persons_loaded_total").expect("persons loaded");
    assert!(loaded >= persons.len() as u64, "{loaded} persons read for {} lookups", persons.len());
    let n_cached = metric(&server, "yibao_cache_persons").expect("persons cached");
    assert!(n_cached > 0 && n_cached < persons.len() as u64, "{n_cached} persons cached within 1 MiB");
    // Evicted long ago, read again: the same answer.
    let again = call(&server, "GET", &format!("/v1/coverage/{}", persons[0]), Some(OFFICE), None);
    assert_eq!(again, first);
    let hits = metric(&server, "yibao_cache_hits_total").expect("hits");
    let repeated = call(&server, "GET", &format!("/v1/coverage/{}", persons[0]), Some(OFFICE), None);
    assert_eq!(repeated, first);
    assert_eq!(metric(&server, "yibao_cache_hits_total"), Some(hits + 1), "a repeated lookup is a hit");

    terminate(&server);
    assert!(stopped(server).success());
    assert!(!checkpoint.exists(), "the service wrote the whole coverage projection");
}

/// The coverage answer's person and years, without the position.
fn person_and_years(answer: &Value) -> Value {
    json!({ "person": answer["person"], "years": answer["years"] })
}

/// A lookup after a write sees the write (the cached person is dropped when
/// the store folds it); after a kill -9, a second service answers every
/// person as a fold of their facts from position 1 does (`as_of` now).
#[test]
fn a_lookup_sees_the_write_before_it_and_a_restart_after_kill_answers_every_person() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("ledger");
    let ids = demo_ledger(&data);
    let server = start_on_ledger(&data);
    assert_eq!(call(&server, "POST", "/v1/events", Some(OFFICE), Some(&registration())).0, 200);
    let path = format!("/v1/coverage/{PERSON}?year=2025");
    let (status, before) = call(&server, "GET", &path, Some(OFFICE), None);
    assert_eq!(status, 200, "{before}");
    assert_eq!(call(&server, "GET", &path, Some(OFFICE), None).1, before, "read from the cache");
    let second = payment_via("wechat", "WX-SECOND");
    let (status, posted) = call(&server, "POST", "/v1/events", Some(CHANNEL), Some(&second));
    assert_eq!(status, 200, "{posted}");
    let (status, after) = call(&server, "GET", &path, Some(OFFICE), None);
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["log_position"], posted["head"]["position"], "{after}");
    assert_eq!(before["years"][0]["year"]["paid"]["total"], "400.00", "{before}");
    assert_eq!(after["years"][0]["year"]["paid"]["total"], "800.00", "the lookup missed the write: {after}");
    drop(server); // SIGKILL

    let server = start_on_ledger(&data);
    let everyone = ids.iter().map(String::as_str).chain([PERSON]);
    for id in everyone {
        let (status, live) = call(&server, "GET", &format!("/v1/coverage/{id}"), Some(OFFICE), None);
        let folded = call(&server, "GET", &format!("/v1/coverage/{id}?as_of=2999-01-01T00:00:00Z"), Some(OFFICE), None);
        assert_eq!(status, folded.0, "{id}: {live} / {}", folded.1);
        if status == 200 {
            assert_eq!(person_and_years(&live), person_and_years(&folded.1), "{id}");
        }
    }
}

/// A binding posted as a fact is judged on its member, as the family route
/// judges it: the member's region decides which provinces' accounts may
/// pay (the rules read the persons a request names from the store).
#[test]
fn a_binding_posted_as_a_fact_is_judged_on_its_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let server = start(data);
    assert_eq!(call(&server, "POST", "/v1/events", Some(OFFICE), Some(&registration())).0, 200);
    let binding = json!({"type": "family_binding_created", "v": 1, "holder": HOLDER, "account_province": "450000",
                         "member": PERSON, "relation": "spouse", "bound_on": "2024-10-01"});
    let (status, refused) = call(&server, "POST", "/v1/events", Some(OFFICE), Some(&binding));
    assert_eq!((status, refused["code"].as_str()), (422, Some("rule_refused")), "{refused}");
    assert_eq!(refused["field"], "account_province", "{refused}");
}

/// The unpaid list over HTTP walks the person store a few thousand persons
/// at a time: across those steps, each page is its slice of the CLI's list
/// (the whole projection's) and `n_total` that list's length.
#[test]
fn the_unpaid_pages_of_a_walked_store_are_the_whole_list() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("ledger");
    generated_ledger(&data, 5000);
    let output = Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .args(["unpaid", "--region", "520200", "--year", "2021", "--json"])
        .output()
        .expect("unpaid");
    let printed: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(printed.len() > 100, "{} unpaid", printed.len());
    let server = start_on_ledger(&data);
    let mut served: Vec<Value> = Vec::new();
    for page in 1.. {
        let path = format!("/v1/unpaid?region=520200&year=2021&page={page}&per_page=100");
        let (status, answer) = call(&server, "GET", &path, Some(OFFICE), None);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["n_total"].as_u64(), Some(printed.len() as u64), "page {page}");
        let entries = answer["entries"].as_array().expect("entries");
        if entries.is_empty() {
            break;
        }
        served.extend(entries.iter().cloned());
    }
    assert_eq!(served, printed);
}
