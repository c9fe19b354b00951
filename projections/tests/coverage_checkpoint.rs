//! Checkpoints of the coverage projection: saved, loaded and caught up from
//! a sled log they equal a rebuild; damaged, foreign, old, missing or
//! diverged ones are named as such, and the remedy is a rebuild. Catching up
//! in two steps (read the records holding no lock, then fold) gives the same
//! state as in one, whoever folded in between; a tip the log does not hold
//! is named as divergence.

use ledger::event::{EnrolmentBasis, Event, PaymentReceived, PersonRegistered, PolicyPublished};
use ledger::{Date, Identity, Money, NewEvent, OpenMode, RegionCode, SledLog};
use projections::coverage::{Coverage, CoverageError, CoverageState, Pending, Tip, CHECKPOINT_FORMAT_VERSION};
use projections::Projection;
use std::path::Path;

const BIJIE: &str = include_str!("../../fixtures/policies/bijie-2025.toml");

fn person(sequence: u16) -> Identity {
    let born = chrono::NaiveDate::from_ymd_opt(1985, 3, 12).expect("date");
    Identity::resident(RegionCode::new(520502).expect("region"), born, sequence)
}

fn date(text: &str) -> Date {
    text.parse().expect("test date")
}

fn bijie() -> Event {
    Event::PolicyPublishedV1(PolicyPublished {
        region: RegionCode::new(520500).expect("region"),
        coverage_year: 2025,
        source: "fixture".into(),
        document: BIJIE.into(),
    })
}

fn registered(sequence: u16) -> Event {
    Event::PersonRegisteredV1(PersonRegistered {
        person: person(sequence),
        name: "张伟".into(),
        region: RegionCode::new(520502).expect("region"),
        birth_date: date("1985-03-12"),
        registered_on: date("2024-09-25"),
        basis: EnrolmentBasis::Standard,
    })
}

fn paid(sequence: u16, reference: &str) -> Event {
    Event::PaymentReceivedV1(PaymentReceived {
        person: person(sequence),
        coverage_year: 2025,
        amount: Money::from_yuan(400),
        channel: "wechat".into(),
        channel_ref: reference.into(),
        payer: Default::default(),
        paid_at: "2024-10-05 09:30:00".parse().expect("time"),
    })
}

fn append(log: &SledLog, events: Vec<Event>) {
    let events = events.into_iter().map(|event| NewEvent::fact(event, "test")).collect();
    log.append_blocking(events).expect("append");
}

fn rebuilt(log: &SledLog) -> Coverage {
    let mut coverage = Coverage::default();
    coverage.catch_up(log).expect("rebuild");
    coverage
}

fn open(dir: &Path) -> SledLog {
    SledLog::open(dir, OpenMode::Create).expect("open log")
}

#[test]
fn a_checkpoint_caught_up_equals_a_rebuild() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir.path().join("ledger"));
    append(&log, vec![bijie(), registered(1), registered(2), paid(1, "WX1")]);
    let checkpoint = dir.path().join("coverage.checkpoint");
    let mut live = rebuilt(&log);
    live.save(&checkpoint).expect("save");
    assert!(!dir.path().join("coverage.checkpoint.tmp").exists(), "the temporary file is renamed");

    append(&log, vec![paid(2, "WX2"), paid(1, "WX3")]);
    let mut loaded = Coverage::load(&checkpoint).expect("load");
    assert_eq!(loaded.position(), 4);
    assert_eq!(loaded.head_hash(), live.head_hash());
    assert_eq!(loaded.catch_up(&log).expect("catch up"), 2);
    assert_eq!(live.catch_up(&log).expect("catch up"), 2);
    let rebuild = rebuilt(&log);
    assert_eq!(loaded.digest(), rebuild.digest());
    assert_eq!(live.digest(), rebuild.digest());
    assert_eq!(loaded.position(), 6);
    let view = loaded.person_year(&person(1), 2025).expect("money").expect("known");
    assert_eq!(view.state, CoverageState::Overpaid);
    assert_eq!(loaded.person_year(&person(2), 2025).expect("money").expect("known").state, CoverageState::Received);
    assert_eq!(loaded.catch_up(&log).expect("nothing new"), 0);
}

#[test]
fn damaged_foreign_old_and_missing_checkpoints_ask_for_a_rebuild() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir.path().join("ledger"));
    append(&log, vec![bijie(), registered(1), paid(1, "WX1")]);
    let path = dir.path().join("coverage.checkpoint");
    rebuilt(&log).save(&path).expect("save");
    let good = std::fs::read(&path).expect("read");

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    std::fs::write(&path, &flipped).expect("write");
    let error = Coverage::load(&path).expect_err("damaged");
    assert!(matches!(error, CoverageError::Damaged { .. }), "{error}");
    assert!(error.needs_rebuild());

    std::fs::write(&path, &good[..good.len() - 10]).expect("write");
    assert!(matches!(Coverage::load(&path), Err(CoverageError::Damaged { .. })));

    let mut old = good.clone();
    old[16..20].copy_from_slice(&(CHECKPOINT_FORMAT_VERSION - 1).to_le_bytes());
    std::fs::write(&path, &old).expect("write");
    let error = Coverage::load(&path).expect_err("old");
    assert!(
        matches!(error, CoverageError::OldFormat { found, .. } if found == CHECKPOINT_FORMAT_VERSION - 1),
        "{error}"
    );
    assert!(error.needs_rebuild());

    std::fs::write(&path, b"{\"not\": \"a checkpoint\"}").expect("write");
    assert!(matches!(Coverage::load(&path), Err(CoverageError::NotACheckpoint { .. })));
    std::fs::write(&path, b"").expect("write");
    assert!(matches!(Coverage::load(&path), Err(CoverageError::NotACheckpoint { .. })));

    let error = Coverage::load(&dir.path().join("missing")).expect_err("missing");
    assert!(matches!(&error, CoverageError::Io { .. }) && error.needs_rebuild(), "{error}");

    std::fs::write(&path, &good).expect("write");
    assert_eq!(Coverage::load(&path).expect("intact").digest(), rebuilt(&log).digest());
}

#[test]
fn a_checkpoint_of_another_log_or_ahead_of_the_log_diverges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = open(&dir.path().join("first"));
    let second = open(&dir.path().join("second"));
    append(&first, vec![bijie(), registered(1), paid(1, "WX1")]);
    append(&second, vec![bijie(), registered(1), paid(1, "WX1"), paid(1, "WX2")]);
    let mut coverage = rebuilt(&first);
    let error = coverage.catch_up(&second).expect_err("another log: another genesis, other hashes");
    assert!(matches!(error, CoverageError::Diverged { position: 3, .. }), "{error}");
    assert!(error.needs_rebuild());

    let empty = open(&dir.path().join("empty"));
    let error = coverage.catch_up(&empty).expect_err("ahead");
    assert!(matches!(error, CoverageError::Diverged { .. }), "{error}");
    assert_eq!(coverage.position(), 3, "a refused catch-up folds nothing");
}

#[test]
fn digests_differ_when_the_state_differs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir.path().join("ledger"));
    append(&log, vec![bijie(), registered(1)]);
    let before = rebuilt(&log).digest();
    append(&log, vec![paid(1, "WX1")]);
    assert_ne!(rebuilt(&log).digest(), before);
    assert_ne!(Coverage::default().digest(), before);
}

#[test]
fn reading_then_folding_equals_a_catch_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SledLog::open(dir.path(), OpenMode::Create).expect("open log");
    let mut live = Coverage::default();
    let empty = Pending::read(&log, live.tip()).expect("read an empty log");
    assert_eq!(live.fold_pending(&empty).expect("fold"), 0);

    append(&log, vec![bijie(), registered(1), registered(2)]);
    let pending = Pending::read(&log, live.tip()).expect("read");
    assert_eq!(pending.last_position(), 3);
    assert_eq!(live.fold_pending(&pending).expect("fold"), 3);
    assert_eq!(live.digest(), rebuilt(&log).digest());

    append(&log, vec![paid(1, "WX1")]);
    let unpaid = live.person_year(&person(1), 2025).expect("money").expect("a view");
    assert_eq!(unpaid.state, CoverageState::RegisteredUnpaid, "nothing folded yet");
    let pending = Pending::read(&log, live.tip()).expect("read");
    assert_eq!(live.fold_pending(&pending).expect("fold"), 1);
    assert_eq!(live.person_year(&person(1), 2025).expect("money").expect("a view").state, CoverageState::Received);
    assert_eq!(live.digest(), rebuilt(&log).digest());
    assert_eq!(live.head_hash(), log.durable_head().hash);
}

#[test]
fn records_folded_meanwhile_are_not_folded_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SledLog::open(dir.path(), OpenMode::Create).expect("open log");
    append(&log, vec![bijie(), registered(1)]);
    let mut live = rebuilt(&log);
    let stale_tip = live.tip();
    append(&log, vec![paid(1, "WX1")]);
    let first = Pending::read(&log, stale_tip).expect("read");
    append(&log, vec![paid(1, "WX2")]);
    // Another catch-up got further first.
    live.catch_up(&log).expect("catch up");
    assert_eq!(live.fold_pending(&first).expect("fold"), 0);
    let view = live.person_year(&person(1), 2025).expect("money").expect("a view");
    assert_eq!(view.paid.total, Money::from_yuan(800), "each payment once");
    assert_eq!(live.digest(), rebuilt(&log).digest());
}

#[test]
fn a_tip_the_log_does_not_hold_is_divergence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SledLog::open(dir.path(), OpenMode::Create).expect("open log");
    append(&log, vec![bijie(), registered(1)]);
    let live = rebuilt(&log);
    let wrong_hash = Tip { hash: [7; 32], ..live.tip() };
    assert!(matches!(Pending::read(&log, wrong_hash), Err(CoverageError::Diverged { position: 2, .. })));
    let beyond = Tip { position: 9, ..live.tip() };
    assert!(matches!(Pending::read(&log, beyond), Err(CoverageError::Diverged { position: 9, .. })));

    append(&log, vec![paid(1, "WX1")]);
    let pending = Pending::read(&log, live.tip()).expect("read");
    let mut behind = Coverage::default();
    assert!(matches!(behind.fold_pending(&pending), Err(CoverageError::Diverged { position: 0, .. })));
}
