//! End-to-end tests of `yibao import` on files of many chunks: a bad line
//! or a conflicting key after the first chunk appends nothing and is named;
//! a `kill -9` at any moment, then the same command, records every fact
//! exactly once; the chunking does not depend on one append's limit.

use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;
use common::run::{ok, stderr, yibao};

/// A generated prefecture-year (registrations, payments, subsidies and
/// facts the rules decide) as import lines.
fn generated_lines(seed: u64, persons: u64) -> Vec<String> {
    yibao::generate::facts(seed, persons).map(|event| yibao::facts::to_line(&event).to_string()).collect()
}

fn write_lines(path: &Path, lines: &[String]) -> String {
    let mut file = std::fs::File::create(path).expect("create a facts file");
    for line in lines {
        writeln!(file, "{line}").expect("write a line");
    }
    path.to_str().expect("utf-8 path").to_string()
}

fn new_ledger(dir: &Path, name: &str) -> PathBuf {
    let data = dir.join(name);
    ok(yibao(&data, &["init"]));
    data
}

/// Every record of the log: its idempotency key, by position.
fn recorded_keys(data: &Path) -> Vec<String> {
    let page = ok(yibao(data, &["log", "--json", "--limit", "100000000"]));
    page.lines()
        .map(|line| {
            let envelope: Value = serde_json::from_str(line).expect("an envelope as JSON");
            envelope["idempotency_key"].as_str().expect("a key").to_string()
        })
        .collect()
}

fn head_position(data: &Path) -> usize {
    recorded_keys(data).len()
}

/// The key each line of `lines` is recorded under.
fn keys_of(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .enumerate()
        .map(|(index, line)| yibao::facts::parse_line(line, index + 1, "test").expect("a valid line").idempotency_key)
        .collect()
}

/// A payment of the generated file with its amount changed: same channel
/// and reference (its key), other content.
fn changed_payment(lines: &[String], skip: usize) -> (usize, String) {
    let (index, line) = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.contains("\"payment_received\""))
        .nth(skip)
        .expect("payments in a generated year");
    let mut fact: Value = serde_json::from_str(line).expect("JSON");
    fact["amount"] = Value::from("1.23");
    (index, fact.to_string())
}

/// A payment of `lines` (among the first `within`) that no refund of the
/// file names.
fn unrefunded_payment(lines: &[String], within: usize) -> Value {
    let refunded: Vec<String> = lines
        .iter()
        .filter(|line| line.contains("\"refund_issued\""))
        .map(|line| serde_json::from_str::<Value>(line).expect("JSON")["payment"]["channel_ref"].to_string())
        .collect();
    lines
        .iter()
        .take(within)
        .map(|line| serde_json::from_str::<Value>(line).expect("JSON"))
        .find(|fact| fact["type"] == "payment_received" && !refunded.contains(&fact["channel_ref"].to_string()))
        .expect("a payment without a refund")
}

/// A refund of `amount` of `payment` to its channel, as an import line.
fn refund_line(payment: &Value, amount: &str, refund_ref: &str) -> String {
    serde_json::json!({
        "type": "refund_issued", "v": 1, "amount": amount, "coverage_year": payment["coverage_year"],
        "destination": "original_channel", "person": payment["person"], "reason": "重复缴费",
        "payment": {"channel": payment["channel"], "channel_ref": payment["channel_ref"]},
        "refund_ref": refund_ref, "refunded_at": "2021-06-01T10:00:00+08:00",
    })
    .to_string()
}

#[test]
fn a_bad_line_after_the_first_chunk_appends_nothing_and_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = new_ledger(dir.path(), "data");
    let mut lines = generated_lines(21, 600);
    let n_lines = lines.len();
    assert!(n_lines > 1000, "{n_lines} lines: more than the chunks below");
    // A field the writer refuses (a key longer than it keeps) and a field
    // the parser refuses, both after the first chunks.
    let mut long_key: Value = serde_json::from_str(&lines[n_lines - 10]).expect("JSON");
    long_key["idempotency_key"] = Value::from("k".repeat(300));
    lines[n_lines - 10] = long_key.to_string();
    let (payment, _) = changed_payment(&lines, 400);
    let mut bad_amount: Value = serde_json::from_str(&lines[payment]).expect("JSON");
    bad_amount["amount"] = Value::from("400.001");
    lines[payment] = bad_amount.to_string();
    let file = write_lines(&dir.path().join("facts.jsonl"), &lines);
    let refused = yibao(&data, &["import", &file, "--chunk-facts", "100"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert!(message.contains(&format!("facts.jsonl:line {}: field `amount`", payment + 1)), "{message}");
    assert!(message.contains(&format!("facts.jsonl:line {}: field `idempotency_key`", n_lines - 9)), "{message}");
    assert!(message.contains("nothing from this file was appended"), "{message}");
    assert_eq!(head_position(&data), 0, "nothing appended");
}

#[test]
fn a_key_the_log_or_the_file_holds_with_other_content_appends_nothing_and_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = new_ledger(dir.path(), "data");
    let recorded = generated_lines(31, 200);
    ok(yibao(&data, &["import", &write_lines(&dir.path().join("recorded.jsonl"), &recorded)]));
    let head = head_position(&data);
    // A new year of other persons, and late in it a payment the log holds
    // with another amount.
    let mut lines = generated_lines(32, 600);
    let (_, conflicting) = changed_payment(&recorded, 5);
    let at = lines.len() - 20;
    lines.insert(at, conflicting);
    let file = write_lines(&dir.path().join("facts.jsonl"), &lines);
    let refused = yibao(&data, &["import", &file, "--chunk-facts", "100"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert!(message.contains(&format!("facts.jsonl:line {}: field `idempotency_key`", at + 1)), "{message}");
    assert!(message.contains("recorded at position"), "{message}");
    assert_eq!(head_position(&data), head, "nothing appended");
    // The same key twice within the file, in different chunks.
    let mut lines = generated_lines(33, 600);
    let (first, changed) = changed_payment(&lines, 3);
    lines.push(changed);
    let file = write_lines(&dir.path().join("twice.jsonl"), &lines);
    let refused = yibao(&data, &["import", &file, "--chunk-facts", "100"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let message = stderr(&refused);
    let named = format!("twice.jsonl:line {}: field `idempotency_key`", lines.len());
    assert!(message.contains(&named) && message.contains(&format!("key of line {}", first + 1)), "{message}");
    assert_eq!(head_position(&data), head, "nothing appended");
}

/// One append's limit is 4,000,000 facts; a file is appended in chunks of
/// `--chunk-facts` whatever its size, from standard input too.
#[test]
fn a_file_is_appended_in_chunks_of_the_size_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = new_ledger(dir.path(), "data");
    let lines = generated_lines(41, 500);
    let n_facts = lines.len();
    let file = write_lines(&dir.path().join("facts.jsonl"), &lines);
    let answer: Value = serde_json::from_str(&ok(yibao(&data, &["import", &file, "--chunk-facts", "100", "--json"])))
        .expect("the answer as JSON");
    assert_eq!(answer["n_chunks"], Value::from(n_facts.div_ceil(100)), "{answer}");
    assert_eq!(
        (answer["n_facts"].as_u64(), answer["n_appended"].as_u64()),
        (Some(n_facts as u64), Some(n_facts as u64))
    );
    let positions: Vec<u64> = serde_json::from_value(answer["positions"].clone()).expect("positions");
    assert_eq!(positions, (1..=n_facts as u64).collect::<Vec<_>>());
    assert_eq!(recorded_keys(&data), keys_of(&lines), "every fact once, in the file's order");
    // Again from standard input, in chunks of another size: all repeats.
    let mut child = Command::new(env!("CARGO_BIN_EXE_yibao"))
        .arg("--data")
        .arg(&data)
        .args(["import", "-", "--chunk-facts", "7", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run yibao");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(std::fs::read(&file).expect("read the file").as_slice()).expect("write stdin");
    drop(input);
    let again: Value = serde_json::from_str(&ok(child.wait_with_output().expect("wait"))).expect("JSON");
    assert_eq!(again["n_chunks"], Value::from(n_facts.div_ceil(7)), "{again}");
    assert_eq!((again["n_repeated"].as_u64(), again["n_appended"].as_u64()), (Some(n_facts as u64), Some(0)));
    assert_eq!(head_position(&data), n_facts);
}

/// A small generator of the moments to kill at (xorshift), its seed printed.
struct Moments(u64);

impl Moments {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }
}

/// Starts an import, kills it with SIGKILL once `after_chunks` chunks were
/// reported recorded (0: during the first pass) and `delay` later.
fn import_killed(data: &Path, file: &str, chunk_facts: &str, after_chunks: u64, delay: Duration) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_yibao"))
        .arg("--data")
        .arg(data)
        .args(["import", file, "--chunk-facts", chunk_facts])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run yibao");
    let mut notes = BufReader::new(child.stderr.take().expect("stderr"));
    let mut n_recorded = 0;
    let mut line = String::new();
    while n_recorded < after_chunks {
        line.clear();
        if notes.read_line(&mut line).expect("read stderr") == 0 {
            break;
        }
        if line.contains(" recorded: ") {
            n_recorded += 1;
        }
    }
    std::thread::sleep(delay);
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    // Whatever it wrote after the kill's moment is of no interest.
    std::thread::spawn(move || std::io::copy(&mut notes, &mut std::io::sink()));
}

#[test]
fn an_import_killed_at_any_moment_is_completed_by_the_same_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = generated_lines(51, 1200);
    let n_facts = lines.len();
    let chunk_facts = 150;
    let n_chunks = n_facts.div_ceil(chunk_facts) as u64;
    let file = write_lines(&dir.path().join("facts.jsonl"), &lines);
    let mut expected = keys_of(&lines);
    expected.sort();
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64) | 1;
    println!("kill moments seed {seed}");
    let mut moments = Moments(seed);
    let mut n_interrupted = 0;
    for trial in 0..5 {
        let data = new_ledger(dir.path(), &format!("data-{trial}"));
        // The first trial is killed in the first pass, the others after a
        // chunk at random, at a random moment within the next one.
        let after_chunks = if trial == 0 { 0 } else { 1 + moments.below(n_chunks - 1) };
        let delay = Duration::from_micros(moments.below(if trial == 0 { 150_000 } else { 20_000 }));
        import_killed(&data, &file, &chunk_facts.to_string(), after_chunks, delay);
        let before = head_position(&data);
        assert!(before <= n_facts, "trial {trial}: {before} records from a file of {n_facts}");
        n_interrupted += usize::from(before > 0 && before < n_facts);
        let rerun = ok(yibao(&data, &["import", &file, "--chunk-facts", &chunk_facts.to_string(), "--json"]));
        let answer: Value = serde_json::from_str(&rerun).expect("JSON");
        let reported = (answer["n_repeated"].as_u64(), answer["n_appended"].as_u64());
        assert_eq!(reported, (Some(before as u64), Some((n_facts - before) as u64)), "trial {trial}: {answer}");
        let mut recorded = recorded_keys(&data);
        recorded.sort();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for key in &recorded {
            *counts.entry(key).or_default() += 1;
        }
        assert!(counts.values().all(|&n| n == 1), "trial {trial}: a fact recorded twice");
        assert_eq!(recorded, expected, "trial {trial} (killed after {after_chunks} chunks + {delay:?})");
        ok(yibao(&data, &["verify"]));
    }
    println!("{n_interrupted} of 5 kills left part of the file recorded");
}

/// A refund at the end of a file is judged against the file's payment in
/// its first chunk: above the payment, the rules refuse it, naming its line,
/// and nothing is appended; within it, the file is appended.
#[test]
fn a_decided_fact_in_a_late_chunk_is_judged_against_the_files_earlier_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = new_ledger(dir.path(), "data");
    let mut lines = generated_lines(61, 600);
    let payment = unrefunded_payment(&lines, 50);
    let refund = |amount: &str| refund_line(&payment, amount, "TK-LATE-1");
    lines.push(refund("9999.00"));
    let file = write_lines(&dir.path().join("facts.jsonl"), &lines);
    let refused = yibao(&data, &["import", &file, "--chunk-facts", "100"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert!(message.contains(&format!("facts.jsonl:line {}", lines.len())), "{message}");
    assert!(message.contains("refused by the rules"), "{message}");
    assert_eq!(head_position(&data), 0, "nothing appended");
    *lines.last_mut().expect("the refund") = refund("100.00");
    let file = write_lines(&dir.path().join("facts.jsonl"), &lines);
    let answer: Value =
        serde_json::from_str(&ok(yibao(&data, &["import", &file, "--chunk-facts", "100", "--json"]))).expect("JSON");
    assert_eq!(answer["n_appended"].as_u64(), Some(lines.len() as u64), "{answer}");
}

#[test]
fn a_decided_fact_on_a_ledger_with_history_is_judged_on_the_persons_it_names_from_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = new_ledger(dir.path(), "data");
    let lines = generated_lines(62, 400);
    let payment = unrefunded_payment(&lines, lines.len());
    ok(yibao(&data, &["import", &write_lines(&dir.path().join("year.jsonl"), &lines)]));
    let checkpoint = data.join("projections").join("coverage.ckpt");
    let _ = std::fs::remove_file(&checkpoint);
    let refund = |amount: &str| refund_line(&payment, amount, "TK-LATER-1");
    let head = head_position(&data);
    let file = write_lines(&dir.path().join("refund.jsonl"), &[refund("9999.00")]);
    let refused = yibao(&data, &["import", &file]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("refund.jsonl:line 1"), "{}", stderr(&refused));
    assert_eq!(head_position(&data), head, "nothing appended");
    let file = write_lines(&dir.path().join("refund.jsonl"), &[refund("100.00")]);
    ok(yibao(&data, &["import", &file]));
    assert_eq!(head_position(&data), head + 1);
    // The decision read the person from the store, not the whole projection.
    assert!(!checkpoint.exists(), "the whole coverage projection was folded for a decision about one person");
    let person = payment["person"].as_str().expect("an ID");
    let answer = ok(yibao(&data, &["coverage", person, "--json"]));
    assert!(answer.contains("TK-LATER-1") || answer.contains("100.00"), "{answer}");
}
