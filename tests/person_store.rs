//! The per-person coverage store answers every question about a person as
//! the whole projection does: written whole, and written back after a fold
//! of more facts with only the persons that fold changed (identity
//! conversions merging persons of the first part, proxy steps, voided
//! pre-registrations among them), or caught up from the log in chunks. A
//! lookup through the command line catches it up to the head and reads it,
//! without the whole projection, also when killed at any moment.

use ledger::{Date, Event, Identity, NewEvent, OpenMode, SledLog};
use operations::coverage::{answer, CoverageQuery};
use projections::coverage::{Coverage, PersonStore};
use projections::family::Family;
use projections::Projection;

mod common;

const DEMO_FACTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo/facts.jsonl");
/// 张伟, a holder in the demo.
const DEMO_PERSON: &str = "520502198503121233";

fn yibao(data: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_yibao"))
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("run yibao");
    assert!(output.status.success(), "yibao {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Every answer an office gets about `person`, as text.
fn answers(coverage: &Coverage, person: &Identity) -> String {
    let on: Date = "2021-07-01".parse().expect("a date");
    let everything = CoverageQuery { person: person.clone(), year: None, on: None };
    let one_year = CoverageQuery { person: person.clone(), year: Some(2021), on: Some(on) };
    let text = |query: &CoverageQuery| match answer(coverage, query) {
        Ok(found) => serde_json::to_string(&found).expect("an answer serializes"),
        Err(error) => format!("error: {error}"),
    };
    format!("{}\n{}", text(&everything), text(&one_year))
}

/// The family projection folded from position 1 to `upto`.
fn family_folded(log: &SledLog, upto: u64) -> Family {
    let mut family = Family::new();
    family.catch_up_to(log, upto).expect("folded from position 1");
    family
}

fn folded(log: &SledLog) -> Coverage {
    let mut coverage = Coverage::new();
    log.scan(1, u64::MAX, |envelope| {
        coverage.apply(&envelope);
        Ok(())
    })
    .expect("scan");
    coverage
}

/// Facts that change persons already folded: they go in the second part.
fn later(event: &Event) -> bool {
    matches!(
        event,
        Event::IdentityConvertedV1(_)
            | Event::PreRegistrationVoidedV1(_)
            | Event::ProxySubmittedV1(_)
            | Event::ProxyProcessingV1(_)
            | Event::ProxyCreditedV1(_)
            | Event::ProxyFailedV1(_)
            | Event::ProxyReturnedV1(_)
            | Event::RefundIssuedV1(_)
    )
}

#[test]
fn the_store_answers_every_person_as_the_whole_projection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SledLog::open(&dir.path().join("data"), OpenMode::Create).expect("create");
    let (second, first): (Vec<Event>, Vec<Event>) = yibao::generate::facts(7, 3_000).partition(later);
    assert!(second.iter().any(|e| matches!(e, Event::IdentityConvertedV1(_))), "conversions in the second part");
    log.append_blocking(first.into_iter().map(|e| NewEvent::fact(e, "test")).collect()).expect("append");
    let mut live = folded(&log);
    let mut store = PersonStore::open(&dir.path().join("persons.sqlite")).expect("a store");
    store.write_all(&mut live, &family_folded(&log, u64::MAX)).expect("written whole");
    assert_eq!(store.tip().expect("tip"), Some(live.tip()));

    log.append_blocking(second.into_iter().map(|e| NewEvent::fact(e, "test")).collect()).expect("append");
    live.catch_up(&log).expect("catch up");
    store.write_touched(&mut live, &family_folded(&log, u64::MAX)).expect("written back");
    assert_eq!(store.tip().expect("tip"), Some(live.tip()));

    let whole = folded(&log);
    let mut identities: Vec<Identity> = Vec::new();
    for (current, _) in whole.encoded_persons() {
        let summary = whole.person(current).expect("a person");
        identities.push(summary.current);
        identities.extend(summary.former);
    }
    let n_former = identities.len() - whole.encoded_persons().count();
    assert!(n_former > 10, "identities converted or merged: {n_former}");
    identities.push("other:NOBODY-0001".parse().expect("an ID"));
    for person in &identities {
        let from_store = store.coverage_of(person).expect("read");
        assert_eq!(answers(&from_store, person), answers(&whole, person), "{}", person.masked());
    }
}

#[test]
fn a_lookup_reads_the_store_once_it_is_at_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    yibao(data, &["init"]);
    yibao(data, &["import", DEMO_FACTS]);
    let store = data.join("projections").join("persons.sqlite");
    let first = yibao(data, &["coverage", DEMO_PERSON, "--json"]);
    assert!(store.exists(), "the first lookup writes the store");
    let tip = PersonStore::open(&store).expect("open").tip().expect("tip").expect("a tip");
    // No checkpoint (the first lookup built none; removed if an earlier
    // command did): an answer now can only come from the store.
    let _ = std::fs::remove_file(data.join("projections").join("coverage.ckpt"));
    let second = yibao(data, &["coverage", DEMO_PERSON, "--json"]);
    assert_eq!(first, second);
    assert!(!data.join("projections").join("coverage.ckpt").exists(), "the second lookup read the store alone");
    // A new fact: the store is behind; the lookup folds the new fact into
    // it and reads it, without the whole projection (not rebuilt: no
    // checkpoint appears).
    let pay =
        ["pay", "--id", DEMO_PERSON, "--year", "2026", "--amount", "400", "--channel", "wechat", "--ref", "WX-STORE-1"];
    yibao(data, &[&pay[..], &["--paid-at", "2025-10-01T09:00:00+08:00"]].concat());
    let _ = std::fs::remove_file(data.join("projections").join("coverage.ckpt"));
    let third = yibao(data, &["coverage", DEMO_PERSON, "--json"]);
    assert!(third.contains("2026"), "{third}");
    let moved = PersonStore::open(&store).expect("open").tip().expect("tip").expect("a tip");
    assert!(moved.position > tip.position);
    assert!(!data.join("projections").join("coverage.ckpt").exists(), "the store was caught up from the log alone");
}

/// An import brings the person store to the head before it returns: the
/// next lookup or service start reads it, however many facts it brought.
#[test]
fn an_import_leaves_the_person_store_at_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    yibao(data, &["init"]);
    let imported = yibao(data, &["import", DEMO_FACTS, "--json"]);
    let imported: serde_json::Value = serde_json::from_str(&imported).expect("json");
    let head = imported["head"]["position"].as_u64().expect("a head");
    assert!(head > 10, "{imported}");
    assert_eq!(imported["person_store"]["n_folded"].as_u64(), Some(head), "{imported}");
    let store = data.join("projections").join("persons.sqlite");
    let tip = PersonStore::open(&store).expect("open").tip().expect("tip").expect("a tip");
    assert_eq!(tip.position, head);
    // Again: every fact already recorded, nothing to fold.
    let again: serde_json::Value = serde_json::from_str(&yibao(data, &["import", DEMO_FACTS, "--json"])).expect("json");
    assert_eq!(again["person_store"]["n_folded"].as_u64(), Some(0), "{again}");
    // A store behind the log (an import killed after its appends): the
    // same command brings it to the head.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", store.display()));
    }
    let rerun: serde_json::Value = serde_json::from_str(&yibao(data, &["import", DEMO_FACTS, "--json"])).expect("json");
    assert_eq!(rerun["n_appended"].as_u64(), Some(0), "{rerun}");
    let tip = PersonStore::open(&store).expect("open").tip().expect("tip").expect("a tip");
    assert_eq!(tip.position, head, "{rerun}");
}

/// A person's certificate, its verification, a refund, an assessment and
/// the history read that person from the store at the head, and the unpaid
/// list walks the store: the whole coverage
/// projection is neither loaded nor written (no checkpoint appears), so
/// their cost is the person's, not the ledger's.
#[test]
fn a_certificate_a_refund_an_assessment_and_the_history_read_the_person_from_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    yibao(data, &["init"]);
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/policies/bijie-2025.toml");
    yibao(data, &["policy", "load", policy]);
    yibao(data, &["import", DEMO_FACTS]);
    let checkpoint = data.join("projections").join("coverage.ckpt");
    let _ = std::fs::remove_file(&checkpoint);
    let certificate = yibao(data, &["certificate", DEMO_PERSON, "--year", "2025"]);
    let path = data.join("certificate.txt");
    std::fs::write(&path, &certificate).expect("write");
    let verified = yibao(data, &["certificate", "verify", path.to_str().expect("utf-8")]);
    assert!(verified.starts_with("OK:"), "{verified}");
    let refund = [
        "refund",
        "--id",
        DEMO_PERSON,
        "--year",
        "2025",
        "--payment",
        "wechat:WX20241005093012001",
        "--amount",
        "100",
        "--reason",
        "退费",
        "--ref",
        "TK-STORE-1",
        "--at",
        "2025-01-10 10:00:00",
    ];
    let refunded = yibao(data, &refund);
    assert!(refunded.contains("TK-STORE-1") || refunded.contains("100.00"), "{refunded}");
    let assessed = std::process::Command::new(env!("CARGO_BIN_EXE_yibao"))
        .arg("--data")
        .arg(data)
        .args(["assess", "--id", DEMO_PERSON, "--year", "2026", "--group", "minimum_living_allowance"])
        .output()
        .expect("run yibao");
    // Recorded or refused by the rules: either way judged on the person.
    assert!(matches!(assessed.status.code(), Some(0 | 2)), "{}", String::from_utf8_lossy(&assessed.stderr));
    let history = yibao(data, &["history", DEMO_PERSON]);
    assert_eq!(history, yibao(data, &["history", DEMO_PERSON, "--scan"]), "the stream index and a scan agree");
    assert!(history.contains("refund_issued"), "{history}");
    let unpaid = yibao(data, &["unpaid", "--region", "520500", "--year", "2025"]);
    assert!(!unpaid.is_empty());
    assert!(!checkpoint.exists(), "the whole coverage projection was loaded and saved");
}

/// A ledger that never had a person store gets one from the log alone,
/// caught up from position 1 in chunks, whose every answer is the whole
/// projection's.
#[test]
fn a_ledger_without_a_store_gets_one_from_the_log_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    yibao(data, &["init"]);
    yibao(data, &["import", DEMO_FACTS]);
    let projections = data.join("projections");
    for file in ["coverage.ckpt", "persons.sqlite", "persons.sqlite-wal", "persons.sqlite-shm"] {
        let _ = std::fs::remove_file(projections.join(file));
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_yibao"))
        .arg("--data")
        .arg(data)
        .args(["coverage", DEMO_PERSON, "--json"])
        .env(operations::STORE_CHUNK_VARIABLE, "4")
        .output()
        .expect("run yibao");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!projections.join("coverage.ckpt").exists(), "the whole projection was not built");
    let store = PersonStore::open(&projections.join("persons.sqlite")).expect("open");
    let log = SledLog::open(data, OpenMode::Read).expect("a read open");
    let whole = folded(&log);
    assert_eq!(store.tip().expect("tip"), Some(whole.tip()));
    assert_eq!(store.load_all().expect("the whole store").digest(), whole.digest());
    let answered: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let person: Identity = DEMO_PERSON.parse().expect("an ID");
    let expected = answer(&whole, &CoverageQuery { person, year: None, on: None }).expect("a known person");
    assert_eq!(answered, serde_json::to_value(expected).expect("serializes"));
}

/// A lookup killed (`kill -9`) at any moment while it catches the person
/// store up (from position 1, or the facts imported since) leaves the
/// store at its previous tip or a later one, and never wrong: everything
/// it holds, the persons and the family records, is the projections
/// folded from position 1 to its tip. The next
/// lookups answer every person as the whole log.
#[test]
fn a_lookup_killed_while_catching_the_store_up_leaves_it_right() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    yibao(&data, &["init"]);
    let facts: Vec<Event> = yibao::generate::facts(11, 20_000).collect();
    let persons: Vec<Identity> = facts
        .iter()
        .filter_map(|e| match e {
            Event::PersonRegisteredV1(r) if !r.person.to_string().starts_with("other") => Some(r.person.clone()),
            _ => None,
        })
        .collect();
    let file = dir.path().join("facts.jsonl");
    let lines: Vec<String> = facts.iter().map(|e| yibao::facts::to_line(e).to_string()).collect();
    std::fs::write(&file, lines.join("\n")).expect("write");
    yibao(&data, &["import", file.to_str().expect("utf-8")]);
    let store_path = data.join("projections").join("persons.sqlite");
    let tip_of = || PersonStore::open(&store_path).expect("open").tip().expect("a tip that reads");
    // Kill moments spread over a catch-up, from a fixed seed.
    let mut seed = 0x9e37_79b9_u64;
    let mut n_rounds_with_applications = 0;
    for round in 0..8_usize {
        if round % 3 == 0 {
            // No store: caught up from position 1.
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", store_path.display()));
            }
        } else {
            // New facts for a few thousand persons: the store is behind.
            let batch: Vec<String> = persons
                .iter()
                .skip(round * 2_000)
                .take(2_000)
                .enumerate()
                .map(|(k, person)| {
                    format!(
                        r#"{{"type":"payment_received","v":1,"person":"{person}","coverage_year":2022,"amount":"350.00","channel":"wechat","channel_ref":"KILL-{round}-{k}","paid_at":"2021-10-05T09:30:12+08:00"}}"#
                    )
                })
                .collect();
            std::fs::write(&file, batch.join("\n")).expect("write");
            yibao(&data, &["import", file.to_str().expect("utf-8")]);
        }
        let before = if store_path.exists() { tip_of() } else { None };
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let delay_ms = 5 + (seed >> 33) % 600;
        let mut lookup = std::process::Command::new(env!("CARGO_BIN_EXE_yibao"))
            .arg("--data")
            .arg(&data)
            .args(["coverage", &persons[round].to_string()])
            .env(operations::STORE_CHUNK_VARIABLE, "1500")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("a lookup");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = lookup.kill();
        let _ = lookup.wait();
        if !store_path.exists() {
            continue;
        }
        let Some(after) = tip_of() else { continue };
        if let Some(before) = before {
            assert!(
                after.position >= before.position,
                "round {round}: the store went back from {before:?} to {after:?}"
            );
        }
        let log = SledLog::open(&data, OpenMode::Read).expect("a read open");
        let mut expected = Coverage::new();
        expected.catch_up_to(&log, after.position).expect("folded from position 1");
        assert_eq!(expected.tip(), after, "round {round}: the store's tip is on the log");
        let store = PersonStore::open(&store_path).expect("open");
        let held = store.load_all().expect("the whole store");
        assert_eq!(held.digest(), expected.digest(), "round {round}: killed after {delay_ms} ms at {}", after.position);
        let family = store.family_all().expect("the whole family");
        let expected_family = family_folded(&log, after.position);
        n_rounds_with_applications += usize::from(expected_family.applications().next().is_some());
        assert_eq!(family, expected_family, "round {round}: the family records at {}", after.position);
    }
    // A lookup killed early after the store was removed holds none yet;
    // the rounds after an import (which brings the store to the head) do.
    assert!(n_rounds_with_applications > 0, "family records were among what the kills left");
    // Whatever the kills left, the next lookups answer as the whole log.
    let checked: Vec<&Identity> = persons.iter().step_by(97).take(150).collect();
    let mut from_cli = Vec::new();
    for person in &checked {
        from_cli.push(yibao(&data, &["coverage", &person.to_string(), "--json"]));
    }
    let log = SledLog::open(&data, OpenMode::Read).expect("a read open");
    let whole = folded(&log);
    for (person, answered) in checked.iter().zip(&from_cli) {
        let expected =
            answer(&whole, &CoverageQuery { person: (*person).clone(), year: None, on: None }).expect("a known person");
        let expected = serde_json::to_value(expected).expect("serializes");
        let answered: serde_json::Value = serde_json::from_str(answered).expect("JSON");
        assert_eq!(answered, expected, "{}", person.masked());
    }
}

/// The service keeps the per-person store at the head (it catches it up
/// after each of its writes, and writes no coverage checkpoint), so the
/// next lookup reads the store alone.
#[test]
fn the_service_writes_the_persons_it_changed_back_when_it_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    yibao(data, &["init"]);
    yibao(data, &["import", DEMO_FACTS]);
    yibao(data, &["coverage", DEMO_PERSON]);
    let channel = "[[token]]\nname = \"channel-1\"\ntoken = \"channel-token-0123456789\"\nrole = \"channel\"\nchannels = [\"wechat\"]\n";
    let mut server = common::server::spawn(data, channel, &[]);
    let payment = serde_json::json!({
        "type": "payment_received", "v": 1, "person": DEMO_PERSON, "coverage_year": 2026,
        "amount": "400.00", "channel": "wechat", "channel_ref": "WX-SERVE-STORE-1",
        "paid_at": "2025-10-01T09:00:00+08:00"
    });
    let posted = ureq::post(&format!("http://{}/v1/events", server.addr))
        .set("Authorization", "Bearer channel-token-0123456789")
        .send_json(payment);
    let posted = posted.expect("posted").into_string().expect("an answer");
    assert!(posted.contains("\"n_appended\":1"), "{posted}");
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let stopped = server.child.wait().expect("wait");
    assert!(stopped.success(), "{stopped}");
    // Without the checkpoint (the service writes none), an answer can only
    // come from the store.
    let _ = std::fs::remove_file(data.join("projections").join("coverage.ckpt"));
    let answer = yibao(data, &["coverage", DEMO_PERSON, "--json"]);
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
    assert!(
        answer.to_string().contains("WX-SERVE-STORE-1") || answer["years"].to_string().contains("2026"),
        "{answer}"
    );
    assert_eq!(answer["log_position"], 27, "the store is at the head the service left");
    assert!(!data.join("projections").join("coverage.ckpt").exists(), "the lookup read the store alone");
}

/// A person store that does not read at all (not SQLite) is noted,
/// removed and caught up from the log: the lookup answers as the whole
/// projection.
#[test]
fn a_store_that_does_not_read_is_removed_and_caught_up_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    yibao(data, &["init"]);
    yibao(data, &["import", DEMO_FACTS]);
    let projections = data.join("projections");
    std::fs::create_dir_all(&projections).expect("mkdir");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(projections.join(format!("persons.sqlite{suffix}")));
    }
    std::fs::write(projections.join("persons.sqlite"), vec![0x5a_u8; 8_192]).expect("damage");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_yibao"))
        .arg("--data")
        .arg(data)
        .args(["coverage", DEMO_PERSON, "--json"])
        .output()
        .expect("run yibao");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("note:") && stderr.contains("persons.sqlite"), "{stderr}");
    let log = SledLog::open(data, OpenMode::Read).expect("a read open");
    let whole = folded(&log);
    let store = PersonStore::open(&projections.join("persons.sqlite")).expect("open");
    assert_eq!(store.tip().expect("tip"), Some(whole.tip()));
    let answered: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let person: Identity = DEMO_PERSON.parse().expect("an ID");
    let expected = answer(&whole, &CoverageQuery { person, year: None, on: None }).expect("a known person");
    assert_eq!(answered, serde_json::to_value(expected).expect("serializes"));
}

/// The first lookup after an import folds the new records into the family
/// records of the person store in the same scan as the persons (the store
/// keeps both under one tip); what it holds is the family projection
/// folded from position 1, and no family checkpoint is written.
#[test]
fn a_lookup_brings_the_family_records_to_the_head_with_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    yibao(data, &["init"]);
    yibao(data, &["import", DEMO_FACTS]);
    let projections = data.join("projections");
    for file in ["persons.sqlite", "persons.sqlite-wal", "persons.sqlite-shm"] {
        let _ = std::fs::remove_file(projections.join(file));
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_yibao"))
        .arg("--data")
        .arg(data)
        .args(["coverage", DEMO_PERSON, "--json"])
        .env(operations::STORE_CHUNK_VARIABLE, "3")
        .output()
        .expect("run yibao");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let store = PersonStore::open(&projections.join("persons.sqlite")).expect("open");
    let log = SledLog::open(data, OpenMode::Read).expect("a read open");
    let whole = family_folded(&log, u64::MAX);
    assert_eq!(whole.position(), log.durable_head().position);
    assert!(whole.applications().next().is_some(), "the demo has applications");
    assert_eq!(store.family_all().expect("the family records"), whole, "the family folded from position 1");
    assert!(!projections.join("family.ckpt").exists(), "no family checkpoint is written");
}
