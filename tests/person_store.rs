//! The per-person coverage store answers every question about a person as
//! the whole projection does: written whole, and written back after a fold
//! of more facts with only the persons that fold changed (identity
//! conversions merging persons of the first part, proxy steps, voided
//! pre-registrations among them). And a lookup through the command line
//! reads it once it is at the head.

use ledger::{Date, Event, Identity, NewEvent, OpenMode, SledLog};
use operations::coverage::{answer, CoverageQuery};
use projections::coverage::{Coverage, PersonStore};
use projections::Projection;

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
    store.write_all(&mut live).expect("written whole");
    assert_eq!(store.tip().expect("tip"), Some(live.tip()));

    log.append_blocking(second.into_iter().map(|e| NewEvent::fact(e, "test")).collect()).expect("append");
    live.catch_up(&log).expect("catch up");
    store.write_touched(&mut live).expect("written back");
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
    // The checkpoint gone: an answer now can only come from the store.
    std::fs::remove_file(data.join("projections").join("coverage.ckpt")).expect("remove");
    let second = yibao(data, &["coverage", DEMO_PERSON, "--json"]);
    assert_eq!(first, second);
    assert!(!data.join("projections").join("coverage.ckpt").exists(), "the second lookup read the store alone");
    // A new fact: the store is behind, the whole projection answers and
    // brings the store to the head.
    let pay =
        ["pay", "--id", DEMO_PERSON, "--year", "2026", "--amount", "400", "--channel", "wechat", "--ref", "WX-STORE-1"];
    yibao(data, &[&pay[..], &["--paid-at", "2025-10-01T09:00:00+08:00"]].concat());
    let third = yibao(data, &["coverage", DEMO_PERSON, "--json"]);
    assert!(third.contains("2026"), "{third}");
    let moved = PersonStore::open(&store).expect("open").tip().expect("tip").expect("a tip");
    assert!(moved.position > tip.position);
}
