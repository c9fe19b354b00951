//! Catching up in two steps (read the records holding no lock, then fold):
//! the same state as a catch-up in one, whoever folded in between; a tip
//! the log does not hold is named as divergence.

use ledger::event::{EnrolmentBasis, Event, PaymentReceived, PersonRegistered, PolicyPublished};
use ledger::{Date, Identity, Money, NewEvent, OpenMode, RegionCode, SledLog};
use projections::coverage::{Coverage, CoverageError, CoverageState, Pending, Tip};

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
    let unpaid = live.person_year(&person(1), 2025).expect("a view");
    assert_eq!(unpaid.state, CoverageState::RegisteredUnpaid, "nothing folded yet");
    let pending = Pending::read(&log, live.tip()).expect("read");
    assert_eq!(live.fold_pending(&pending).expect("fold"), 1);
    assert_eq!(live.person_year(&person(1), 2025).expect("a view").state, CoverageState::Received);
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
    let view = live.person_year(&person(1), 2025).expect("a view");
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
