//! Every question of the coverage projection that derives a person-year
//! answers a figure that is no amount of money as the error naming the
//! person-year, never as 0.00 with a note; the other persons still answer.

use ledger::event::{EnrolmentBasis, Event, PaymentReceived, PersonRegistered, PolicyPublished};
use ledger::{Date, Identity, Money, NewEvent, OpenMode, RegionCode, SledLog};
use projections::coverage::{Coverage, CoverageState, MoneyOutOfRange};

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

fn paid(sequence: u16, amount: Money, reference: &str) -> Event {
    Event::PaymentReceivedV1(PaymentReceived {
        person: person(sequence),
        coverage_year: 2025,
        amount,
        channel: "wechat".into(),
        channel_ref: reference.into(),
        payer: Default::default(),
        paid_at: "2024-10-05 09:30:00".parse().expect("time"),
    })
}

/// Person 1 paid the largest amount twice for 2025; person 2 paid 400.00.
fn coverage() -> Coverage {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SledLog::open(dir.path(), OpenMode::Create).expect("a new ledger");
    let largest = Money::from_fen(Money::MAX_FEN).expect("the largest amount");
    let policy = Event::PolicyPublishedV1(PolicyPublished {
        region: RegionCode::new(520500).expect("region"),
        coverage_year: 2025,
        source: "fixture".into(),
        document: BIJIE.into(),
    });
    let events = vec![
        policy,
        registered(1),
        paid(1, largest, "WX-MAX-1"),
        paid(1, largest, "WX-MAX-2"),
        registered(2),
        paid(2, Money::from_yuan(400), "WX-PAID-1"),
    ];
    log.append_blocking(events.into_iter().map(|event| NewEvent::fact(event, "test")).collect()).expect("append");
    let mut coverage = Coverage::new();
    coverage.catch_up(&log).expect("caught up");
    coverage
}

fn assert_names_the_person_year(error: &MoneyOutOfRange) {
    let text = error.to_string();
    assert_eq!((error.person.as_str(), error.coverage_year), (person(1).masked().as_str(), 2025), "{text}");
    assert!(text.starts_with(&format!("person-year {} 2025: ", person(1).masked())), "{text}");
    assert!(text.contains("not an amount of money") && !text.contains(&person(1).to_string()), "{text}");
}

#[test]
fn every_question_of_the_year_is_the_error_naming_it() {
    let coverage = coverage();
    let day = date("2025-03-01");
    let region = RegionCode::new(520500).expect("region");
    let errors = [
        coverage.person_year(&person(1), 2025).expect_err("no amount"),
        coverage.person_year_as_of(&person(1), 2025, Some(day)).expect_err("no amount"),
        coverage.is_covered_on(&person(1), day).expect_err("no amount"),
        coverage.unpaid(region, 2025).expect_err("no amount"),
        coverage.person_years(None, 2025, None).expect_err("no amount"),
    ];
    for error in &errors {
        assert_names_the_person_year(error);
    }
    // Another year of the same person has no such figure.
    assert!(coverage.person_year(&person(1), 2024).expect("money").is_some());
    let other = coverage.person_year(&person(2), 2025).expect("money").expect("known");
    assert_eq!((other.state, other.net_received), (CoverageState::Received, Money::from_yuan(400)));
    assert_eq!(coverage.is_covered_on(&person(2), day), Ok(true));
    assert_eq!(coverage.is_covered_on(&person(3), day), Ok(false), "an unknown person is not covered");
    assert_eq!(coverage.person_year(&person(3), 2025), Ok(None));
}
