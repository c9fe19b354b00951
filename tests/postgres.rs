//! The commands and the service on a PostgreSQL store (`--store
//! postgres://…`): the same answers as on sled, a ledger moved between the
//! backends by export and restore, and two service replicas on one
//! database. Each test needs PostgreSQL (`pgtest`): without it, it says so
//! loudly and passes, except under `CI=true`, where it fails.

use pgtest::TempPostgres;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::run::{ok, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_yibao");
const OFFICE: &str = "office-token-0123456789";
const CHANNEL: &str = "channel-token-0123456789";
/// How long a replica may take to answer what the other appended: a bound
/// on a poll, far above the `--follow-ms` it polls the head at.
const REPLICA_WAIT: Duration = Duration::from_secs(60);

/// `yibao --data DATA [--store URL] ARGS…`, run to its end.
fn yibao(data: &Path, store: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command.arg("--data").arg(data).env_remove("YIBAO_STORE");
    if let Some(url) = store {
        command.args(["--store", url]);
    }
    command.args(args).output().expect("run yibao")
}

/// A generated prefecture-year (its policy first) in `dir/facts.jsonl`.
fn generated_facts(dir: &Path, persons: &str) -> String {
    let path = dir.join("facts.jsonl");
    let text = path.to_str().expect("a UTF-8 path").to_string();
    ok(yibao(dir, None, &["generate", "--persons", persons, "--seed", "5", "--out", &text]));
    text
}

/// The first person the facts register.
fn first_person(facts: &str) -> String {
    let text = std::fs::read_to_string(facts).expect("the facts");
    let registered = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("JSON"))
        .find(|fact| fact["type"] == "person_registered");
    registered.expect("a registration")["person"].as_str().expect("an ID").to_string()
}

/// What a coverage answer says of the person, without the log's position
/// and hash (two ledgers have other genesis hashes).
fn coverage_years(output: Output) -> Value {
    let answer: Value = serde_json::from_str(&ok(output)).expect("coverage --json");
    json!({ "person": answer["person"], "years": answer["years"] })
}

fn replay_digest(output: Output) -> String {
    let report: Value = serde_json::from_str(&ok(output)).expect("replay --json");
    report["digest"].as_str().expect("a digest").to_string()
}

#[test]
fn a_store_that_is_not_postgres_is_refused_naming_the_option() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    for store in ["mysql://yibao:secret@db/ledger", "sled", "postgres://"] {
        let output = yibao(&data, Some(store), &["init"]);
        assert_eq!(output.status.code(), Some(2), "{store}: {}", stderr(&output));
        let said = stderr(&output);
        assert!(said.contains("--store") && said.contains("postgres://"), "{store}: {said}");
        assert!(!said.contains("secret"), "the password was printed: {said}");
        assert!(!data.exists(), "{store}: something was created");
    }
    let output = Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .env("YIBAO_STORE", "file:///tmp/ledger")
        .arg("verify")
        .output()
        .expect("run yibao");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--store"), "{}", stderr(&output));
    // The help shows no value of the variable (it may hold a password).
    let help = Command::new(BIN).env("YIBAO_STORE", "postgres://u:secret@h/d").arg("--help").output().expect("help");
    assert!(stdout(&help).contains("--store") && !stdout(&help).contains("secret"), "{}", stdout(&help));
}

#[test]
fn the_commands_on_postgres_answer_as_on_sled() {
    let Some(server) = TempPostgres::for_test("the_commands_on_postgres_answer_as_on_sled") else { return };
    let url = server.create_database("commands");
    let dir = tempfile::tempdir().expect("tempdir");
    let facts = generated_facts(dir.path(), "120");
    let person = first_person(&facts);
    let (sled, pg) = (dir.path().join("sled"), dir.path().join("pg"));
    for (data, store) in [(&sled, None), (&pg, Some(url.as_str()))] {
        ok(yibao(data, store, &["init"]));
        ok(yibao(data, store, &["import", &facts]));
    }
    let again = ok(yibao(&pg, Some(&url), &["init"]));
    assert!(again.contains("already holds") && !again.contains("secret"), "{again}");
    let sled_answer = coverage_years(yibao(&sled, None, &["coverage", &person, "--json"]));
    let pg_answer = coverage_years(yibao(&pg, Some(&url), &["coverage", &person, "--json"]));
    assert_eq!(pg_answer, sled_answer);
    // Another machine's process: a data directory of its own, made on first use.
    let elsewhere = dir.path().join("another-machine");
    assert_eq!(coverage_years(yibao(&elsewhere, Some(&url), &["coverage", &person, "--json"])), sled_answer);
    assert!(elsewhere.is_dir());
    assert!(pg_answer["years"].as_array().is_some_and(|years| !years.is_empty()), "{pg_answer}");
    let verified = ok(yibao(&pg, Some(&url), &["verify"]));
    assert!(verified.contains("OK: head"), "{verified}");
    let replay = ["replay", "--year", "2021", "--json"];
    assert_eq!(replay_digest(yibao(&pg, Some(&url), &replay)), replay_digest(yibao(&sled, None, &replay)));
    // Importing the same file again appends nothing, as on sled.
    let repeated = ok(yibao(&pg, Some(&url), &["import", &facts]));
    assert!(repeated.contains(" 0 appended"), "{repeated}");
}

/// A person store in the database that does not read is noted, emptied
/// in place (a database is not a file to remove) and caught up again: the
/// next lookup finds it whole.
#[test]
fn a_person_store_that_does_not_read_is_emptied_in_the_database_and_caught_up() {
    let test = "a_person_store_that_does_not_read_is_emptied_in_the_database_and_caught_up";
    let Some(server) = TempPostgres::for_test(test) else { return };
    let url = server.create_database("damaged");
    let dir = tempfile::tempdir().expect("tempdir");
    let facts = generated_facts(dir.path(), "40");
    let person = first_person(&facts);
    let data = dir.path().join("pg");
    ok(yibao(&data, Some(&url), &["init"]));
    ok(yibao(&data, Some(&url), &["import", &facts]));
    let answer = coverage_years(yibao(&data, Some(&url), &["coverage", &person, "--json"]));
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("a connection");
    let n_damaged =
        client.execute("UPDATE yibao_projection.persons SET state = '\\x00ff'::bytea", &[]).expect("damaged");
    assert!(n_damaged > 0);
    let first = yibao(&data, Some(&url), &["coverage", &person, "--json"]);
    assert!(stderr(&first).contains("emptied and caught up"), "{}", stderr(&first));
    assert_eq!(coverage_years(first), answer);
    let second = yibao(&data, Some(&url), &["coverage", &person, "--json"]);
    assert!(!stderr(&second).contains("note:"), "the store was not emptied: {}", stderr(&second));
    assert_eq!(coverage_years(second), answer);
}

/// The head line `yibao export --out` prints: `… head POSITION HASH`.
fn exported_head(output: Output) -> String {
    let said = ok(output);
    said.split_once("; head ").map(|(_, head)| head.trim().to_string()).unwrap_or_else(|| panic!("{said}"))
}

#[test]
fn export_and_restore_move_a_ledger_from_sled_to_postgres_and_back() {
    let Some(server) = TempPostgres::for_test("export_and_restore_move_a_ledger_from_sled_to_postgres_and_back") else {
        return;
    };
    let url = server.create_database("moved");
    let dir = tempfile::tempdir().expect("tempdir");
    let facts = generated_facts(dir.path(), "80");
    let person = first_person(&facts);
    let sled = dir.path().join("sled");
    ok(yibao(&sled, None, &["init"]));
    ok(yibao(&sled, None, &["import", &facts]));
    let from_sled = dir.path().join("from-sled.jsonl");
    let head = exported_head(yibao(&sled, None, &["export", "--out", from_sled.to_str().expect("UTF-8")]));

    let pg = dir.path().join("pg");
    let restored = ok(yibao(&pg, Some(&url), &["import", "--restore", from_sled.to_str().expect("UTF-8")]));
    assert!(restored.contains(&format!("head {head}")) && restored.contains("matches the exported head"), "{restored}");
    let from_pg = dir.path().join("from-pg.jsonl");
    assert_eq!(exported_head(yibao(&pg, Some(&url), &["export", "--out", from_pg.to_str().expect("UTF-8")])), head);
    let (sled_bytes, pg_bytes) = (std::fs::read(&from_sled).expect("export"), std::fs::read(&from_pg).expect("export"));
    assert!(sled_bytes == pg_bytes, "the PostgreSQL export differs from the sled export it was restored from");

    let back = dir.path().join("back");
    let restored = ok(yibao(&back, None, &["import", "--restore", from_pg.to_str().expect("UTF-8")]));
    assert!(restored.contains(&format!("head {head}")), "{restored}");
    let verified = ok(yibao(&back, None, &["verify"]));
    assert!(verified.contains(&format!("OK: head {head}")), "{verified}");
    let sled_answer = coverage_years(yibao(&sled, None, &["coverage", &person, "--json"]));
    assert_eq!(coverage_years(yibao(&pg, Some(&url), &["coverage", &person, "--json"])), sled_answer);
    assert_eq!(coverage_years(yibao(&back, None, &["coverage", &person, "--json"])), sled_answer);
    // A restore into a database that holds a ledger is refused whole.
    let refused = yibao(&pg, Some(&url), &["import", "--restore", from_sled.to_str().expect("UTF-8")]);
    assert_ne!(refused.status.code(), Some(0), "{}", stdout(&refused));
}

/// A `yibao serve` on the shared database, killed when dropped.
struct Replica {
    child: Child,
    addr: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A replica polling the head every `follow_ms`.
fn replica(data: &Path, url: &str, follow_ms: &str) -> Replica {
    std::fs::create_dir_all(data).expect("the data directory");
    let tokens = data.join("tokens.toml");
    let text = format!(
        "[[token]]\nname = \"office\"\ntoken = \"{OFFICE}\"\nrole = \"office\"\n\n\
         [[token]]\nname = \"wechat\"\ntoken = \"{CHANNEL}\"\nrole = \"channel\"\nchannels = [\"wechat\"]\n"
    );
    common::server::write_private(&tokens, &text);
    let mut child = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .env("YIBAO_STORE", url)
        .args(["serve", "--addr", "127.0.0.1:0", "--follow-ms", follow_ms, "--tokens"])
        .arg(&tokens)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(data.join("stderr.log")).expect("the replica's stderr file"))
        .spawn()
        .expect("start yibao serve");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("the first line");
    let addr = first.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {first}")).to_string();
    Replica { child, addr }
}

fn get(replica: &Replica, path: &str) -> (u16, String) {
    let request =
        ureq::get(&format!("http://{}{path}", replica.addr)).set("Authorization", &format!("Bearer {OFFICE}"));
    match request.call() {
        Ok(response) => (response.status(), response.into_string().expect("a body")),
        Err(ureq::Error::Status(status, response)) => (status, response.into_string().expect("a body")),
        Err(other) => panic!("GET {path}: {other}"),
    }
}

/// The net amount received for the person's year, as a replica answers.
fn net_received(replica: &Replica, person: &str) -> Option<String> {
    let (status, body) = get(replica, &format!("/v1/coverage/{person}?year=2021"));
    let answer: Value = serde_json::from_str(&body).ok()?;
    (status == 200).then(|| answer["years"][0]["year"]["net_received"].as_str().map(str::to_string)).flatten()
}

/// A gauge of a replica's metrics (`-1` when it is not there).
fn gauge(metrics: &str, name: &str) -> f64 {
    let line = metrics.lines().find(|line| line.starts_with(&format!("{name} ")));
    line.and_then(|line| line.split(' ').nth(1)).and_then(|value| value.parse().ok()).unwrap_or(-1.0)
}

fn post_payment(replica: &Replica, person: &str, reference: &str) {
    let payment = json!({"type": "payment_received", "v": 1, "person": person, "coverage_year": 2021,
        "amount": "12.34", "channel": "wechat", "channel_ref": reference, "paid_at": "2021-03-05 10:00:00"});
    let posted = ureq::post(&format!("http://{}/v1/events", replica.addr))
        .set("Authorization", &format!("Bearer {CHANNEL}"))
        .send_json(&payment);
    let posted = posted.map_err(|e| format!("{e:?}")).expect("the payment is accepted");
    assert_eq!(posted.status(), 200);
}

/// Two replicas with their own data directories on one database. The
/// second polls the head too rarely to matter here: its lookup finds the
/// shared store moved by the first, and must not answer from the person
/// it cached before. The first must follow the second's write on its own
/// (its metrics show the head folded, with no lookup asking).
#[test]
fn two_replicas_on_one_database_answer_each_others_writes() {
    let Some(server) = TempPostgres::for_test("two_replicas_on_one_database_answer_each_others_writes") else { return };
    let url = server.create_database("replicas");
    let dir = tempfile::tempdir().expect("tempdir");
    let facts = generated_facts(dir.path(), "60");
    let person = first_person(&facts);
    let setup = dir.path().join("setup");
    ok(yibao(&setup, Some(&url), &["init"]));
    ok(yibao(&setup, Some(&url), &["import", &facts]));
    let first = replica(&dir.path().join("a"), &url, "50");
    let second = replica(&dir.path().join("b"), &url, "60000");
    let before = net_received(&second, &person).expect("the person's year on the second replica");
    assert_eq!(net_received(&first, &person).as_deref(), Some(before.as_str()));

    post_payment(&first, &person, "WX-REPLICA-0001");
    let after = net_received(&second, &person).expect("the person's year");
    let expected = ledger::Money::from_fen(before.replace('.', "").parse::<i64>().expect("fen") + 1234);
    assert_eq!(after, expected.expect("money").to_string(), "the second replica answered from a stale cache");
    assert_eq!(net_received(&first, &person).as_deref(), Some(after.as_str()));

    post_payment(&second, &person, "WX-REPLICA-0002");
    let started = Instant::now();
    loop {
        let (status, metrics) = get(&first, "/v1/metrics");
        assert_eq!(status, 200, "{metrics}");
        let (head, folded) = (gauge(&metrics, "yibao_log_head_position"), gauge(&metrics, "yibao_projection_position"));
        let (lag_records, lag_seconds) =
            (gauge(&metrics, "yibao_replica_lag_records"), gauge(&metrics, "yibao_replica_lag_seconds"));
        assert!(lag_records >= 0.0 && lag_seconds >= 0.0, "no lag gauges in:\n{metrics}");
        if folded == head && lag_records == 0.0 && lag_seconds == 0.0 {
            break;
        }
        assert!(started.elapsed() < REPLICA_WAIT, "the first replica never followed the head:\n{metrics}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let expected = ledger::Money::from_fen(before.replace('.', "").parse::<i64>().expect("fen") + 2 * 1234);
    assert_eq!(net_received(&first, &person), Some(expected.expect("money").to_string()));
    // Stopped as an operator stops it: the in-flight requests finish and it exits cleanly.
    for (mut replica, data) in [(first, "a"), (second, "b")] {
        let _ = Command::new("kill").arg("-TERM").arg(replica.child.id().to_string()).status();
        let status = replica.child.wait().expect("the replica exits");
        let stderr = std::fs::read_to_string(dir.path().join(data).join("stderr.log")).expect("its stderr");
        assert!(status.success() && !stderr.contains("panicked"), "stopped by SIGTERM: {status}\n{stderr}");
    }
}

fn post(replica: &Replica, token: &str, fact: &Value) -> (u16, String) {
    let request = ureq::post(&format!("http://{}/v1/events", replica.addr))
        .set("Authorization", &format!("Bearer {token}"))
        .send_json(fact);
    match request {
        Ok(response) => (response.status(), response.into_string().expect("a body")),
        Err(ureq::Error::Status(status, response)) => (status, response.into_string().expect("a body")),
        Err(other) => panic!("POST /v1/events: {other}"),
    }
}

/// Two refunds of the whole of one payment posted at the same moment, one
/// to each replica: the rules allow one, and the replicas judge them one
/// after the other across processes, so the other is refused — never
/// both recorded against a view without the first.
#[test]
fn decided_facts_posted_to_two_replicas_at_once_are_judged_one_after_the_other() {
    let test = "decided_facts_posted_to_two_replicas_at_once_are_judged_one_after_the_other";
    let Some(server) = TempPostgres::for_test(test) else { return };
    let url = server.create_database("decisions");
    let dir = tempfile::tempdir().expect("tempdir");
    let facts = generated_facts(dir.path(), "20");
    let person = first_person(&facts);
    let setup = dir.path().join("setup");
    ok(yibao(&setup, Some(&url), &["init"]));
    ok(yibao(&setup, Some(&url), &["import", &facts]));
    let replicas = [replica(&dir.path().join("a"), &url, "50"), replica(&dir.path().join("b"), &url, "50")];
    const N_PAYMENTS: usize = 12;
    for payment in 0..N_PAYMENTS {
        let fact = json!({"type": "payment_received", "v": 1, "person": person, "coverage_year": 2021,
            "amount": "100.00", "channel": "wechat", "channel_ref": format!("WX-TWICE-{payment}"),
            "paid_at": "2021-03-05 10:00:00"});
        let (status, body) = post(&replicas[payment % 2], CHANNEL, &fact);
        assert_eq!(status, 200, "{body}");
    }
    for payment in 0..N_PAYMENTS {
        let start = std::sync::Barrier::new(2);
        let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
            let posts: Vec<_> = (0..2)
                .map(|side| {
                    let (replica, start, person) = (&replicas[side], &start, &person);
                    scope.spawn(move || {
                        let refund = json!({"type": "refund_issued", "v": 1, "person": person, "coverage_year": 2021,
                            "refund_ref": format!("TK-TWICE-{payment}-{side}"),
                            "payment": {"channel": "wechat", "channel_ref": format!("WX-TWICE-{payment}")},
                            "amount": "100.00", "destination": "original_channel",
                            "refunded_at": "2021-03-06 10:00:00", "reason": "重复缴费"});
                        start.wait();
                        post(replica, OFFICE, &refund)
                    })
                })
                .collect();
            posts.into_iter().map(|post| post.join().expect("a post")).collect()
        });
        let n_recorded = answers.iter().filter(|(status, _)| *status == 200).count();
        assert_eq!(n_recorded, 1, "payment {payment}: {answers:?}");
        assert!(answers.iter().any(|(status, _)| *status == 422), "payment {payment}: {answers:?}");
    }
}

/// A command that decides facts on a PostgreSQL ledger waits for the
/// decision lock another process holds (a replica judging a refund), and
/// goes on once it is released.
#[test]
fn a_command_deciding_facts_waits_for_the_decision_lock_of_another_process() {
    let test = "a_command_deciding_facts_waits_for_the_decision_lock_of_another_process";
    let Some(server) = TempPostgres::for_test(test) else { return };
    let url = server.create_database("waiting");
    let dir = tempfile::tempdir().expect("tempdir");
    let facts = generated_facts(dir.path(), "10");
    let data = dir.path().join("pg");
    ok(yibao(&data, Some(&url), &["init"]));
    let mut holder = postgres::Client::connect(&url, postgres::NoTls).expect("a connection");
    holder.execute("SELECT pg_advisory_lock($1)", &[&operations::location::DECISION_LOCK]).expect("the lock");
    let mut import = Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .args(["--store", &url, "import", &facts])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start yibao import");
    let waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted";
    let started = Instant::now();
    while holder.query_one(waiting, &[]).expect("pg_locks").get::<_, i64>(0) == 0 {
        assert!(import.try_wait().expect("the import").is_none(), "the import did not wait for the decision lock");
        assert!(started.elapsed() < REPLICA_WAIT, "the import never asked for the decision lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let head = |client: &mut postgres::Client| client.query_one("SELECT count(*) FROM yibao.records", &[]);
    assert_eq!(head(&mut holder).expect("the records").get::<_, i64>(0), 0, "appended while waiting");
    holder.execute("SELECT pg_advisory_unlock($1)", &[&operations::location::DECISION_LOCK]).expect("released");
    let output = import.wait_with_output().expect("the import");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(head(&mut holder).expect("the records").get::<_, i64>(0) > 0);
}

/// The database restarts or fails over under a running replica: every
/// connection it had is closed. The replica answers again once the
/// database does — lookups and payments (the log's pool, the person
/// store's connections and the decision lock's connect again) — instead of
/// failing until it is restarted.
#[test]
fn a_replica_answers_again_after_its_database_connections_were_closed() {
    let test = "a_replica_answers_again_after_its_database_connections_were_closed";
    let Some(server) = TempPostgres::for_test(test) else { return };
    let url = server.create_database("failover");
    let dir = tempfile::tempdir().expect("tempdir");
    let facts = generated_facts(dir.path(), "40");
    let person = first_person(&facts);
    let setup = dir.path().join("setup");
    ok(yibao(&setup, Some(&url), &["init"]));
    ok(yibao(&setup, Some(&url), &["import", &facts]));
    let only = replica(&dir.path().join("a"), &url, "50");
    let before = net_received(&only, &person).expect("an answer before");
    server.close_connections(&url);
    let payment = json!({"type": "payment_received", "v": 1, "person": person, "coverage_year": 2021,
        "amount": "12.34", "channel": "wechat", "channel_ref": "FAILOVER-1", "paid_at": "2021-03-05 10:00:00"});
    let started = Instant::now();
    loop {
        // A request may still meet a closed connection and fail (503 or 500,
        // saying why); the next ones must succeed.
        let (status, body) = post(&only, CHANNEL, &payment);
        if status == 200 {
            break;
        }
        assert!(started.elapsed() < REPLICA_WAIT, "the replica never took a payment again: {status} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let expected = ledger::Money::from_fen(before.replace('.', "").parse::<i64>().expect("fen") + 1234);
    let expected = Some(expected.expect("money").to_string());
    let started = Instant::now();
    while net_received(&only, &person) != expected {
        assert!(
            started.elapsed() < REPLICA_WAIT,
            "the replica never answered the payment: {:?}",
            net_received(&only, &person)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A database that does not answer: the commands exit 3 naming it once,
/// without its password, and say what to check (no PostgreSQL needed).
#[test]
fn a_database_that_does_not_answer_is_named_once_with_what_to_check() {
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a port");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("postgres://yibao:hunter2@127.0.0.1:{port}/ledger");
    let named = format!("postgres://yibao@127.0.0.1:{port}/ledger");
    for args in [&["verify"][..], &["coverage", "520201194001010006"], &["export"]] {
        let output = yibao(&dir.path().join("data"), Some(&url), args);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(3), "{args:?}: {text}");
        assert_eq!(text.matches(&named).count(), 1, "{args:?} names the database once: {text}");
        assert!(!text.contains("hunter2") && text.contains("check that PostgreSQL runs"), "{args:?}: {text}");
    }
}
