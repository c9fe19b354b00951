//! The certificate operations against a small ledger: what each error is
//! and which kind a frontend answers it by.

use ledger::event::{EnrolmentBasis, PaymentReceived, PersonRegistered, PolicyPublished};
use ledger::{Date, Event, Identity, Money, NewEvent, OpenMode, RegionCode};
use operations::certificate::{issue, render, verify, Format, IssueError, VerifyError};
use operations::{Classified, Kind, Ledger};

const BIJIE: &str = include_str!("../../fixtures/policies/bijie-2025.toml");

fn person(sequence: u16) -> Identity {
    let born = chrono::NaiveDate::from_ymd_opt(1985, 3, 12).expect("date");
    Identity::resident(RegionCode::new(520502).expect("region"), born, sequence)
}

fn date(text: &str) -> Date {
    text.parse().expect("test date")
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

fn paid(sequence: u16, yuan: i64, reference: &str) -> Event {
    Event::PaymentReceivedV1(PaymentReceived {
        person: person(sequence),
        coverage_year: 2025,
        amount: Money::from_yuan(yuan),
        channel: "wechat".into(),
        channel_ref: reference.into(),
        payer: Default::default(),
        paid_at: "2024-10-05 09:30:00".parse().expect("time"),
    })
}

fn append(ledger: &Ledger, events: Vec<Event>) {
    let facts = events.into_iter().map(|event| NewEvent::fact(event, "test")).collect();
    ledger.log().append_blocking(facts).expect("append");
}

/// Person 1 paid 400.00 for 2025 (received); person 2 is registered, unpaid.
fn ledger(dir: &std::path::Path) -> Ledger {
    let ledger = Ledger::open(&operations::Location::sled(dir), OpenMode::Create).expect("open");
    let policy = Event::PolicyPublishedV1(PolicyPublished {
        region: RegionCode::new(520500).expect("region"),
        coverage_year: 2025,
        source: "fixture".into(),
        document: BIJIE.into(),
    });
    append(&ledger, vec![policy, registered(1), registered(2), paid(1, 400, "WX1")]);
    ledger
}

#[test]
fn an_issued_certificate_verifies_in_every_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = ledger(dir.path());
    let issued = issue(&ledger, &person(1), 2025, false).expect("received");
    assert_eq!(issued.net_received, Money::from_yuan(400));
    assert_eq!(issued.person, person(1).masked());
    for format in [Format::Text, Format::Html, Format::Json] {
        let verified = verify(&ledger, &render(&issued, format)).expect("verifies");
        assert_eq!((verified.n_payments, verified.head_position), (1, 4), "{format:?}");
    }
}

#[test]
fn no_person_is_not_found_and_a_year_not_received_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = ledger(dir.path());
    let unknown = issue(&ledger, &person(3), 2025, false).expect_err("no such person");
    assert!(matches!(unknown, IssueError::NoPerson { .. }), "{unknown}");
    assert_eq!(unknown.kind(), Kind::NotFound);
    let unpaid = issue(&ledger, &person(2), 2025, false).expect_err("unpaid");
    assert_eq!(unpaid.kind(), Kind::Refused);
    assert!(unpaid.to_string().contains("registered unpaid, not received"), "{unpaid}");
}

#[test]
fn a_forgery_is_a_finding_and_not_a_certificate_is_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = ledger(dir.path());
    let text = render(&issue(&ledger, &person(1), 2025, false).expect("received"), Format::Text);
    let forged = verify(&ledger, &text.replace("张伟", "李四")).expect_err("forged");
    assert_eq!(forged.kind(), Kind::Findings);
    let VerifyError::Forged { failures } = &forged else { panic!("not a forgery: {forged}") };
    assert!(failures.iter().any(|failure| failure.starts_with("field `name`")), "{failures:?}");
    let unreadable = verify(&ledger, &text.replace("\"coverage_year\": 2025", "\"coverage_year\": \"x\""));
    let unreadable = unreadable.expect_err("a data block that does not read");
    assert_eq!((unreadable.kind(), unreadable.field()), (Kind::Findings, Some("coverage_year")));
    let not_one = verify(&ledger, "hello").expect_err("not a certificate");
    assert!(matches!(not_one, VerifyError::NoDataBlock), "{not_one}");
    assert_eq!(not_one.kind(), Kind::BadInput);
}

#[test]
fn a_genuine_certificate_of_a_changed_person_year_is_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = ledger(dir.path());
    let text = render(&issue(&ledger, &person(1), 2025, false).expect("received"), Format::Text);
    append(&ledger, vec![paid(1, 100, "WX2")]);
    let changed = verify(&ledger, &text).expect_err("changed since issue");
    assert_eq!(changed.kind(), Kind::Changed);
    let VerifyError::Changed(changed) = changed else { panic!("not changed: {changed}") };
    assert_eq!((changed.verified.head_position, changed.verified.head_now), (4, 5));
    assert!(changed.changes.iter().any(|change| change.starts_with("later: payment (self) 100.00")), "{changed:?}");
}
