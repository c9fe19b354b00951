//! The coverage operations against a ledger on disk: an unknown person,
//! what was known before a refund, the unpaid list, and the assessment
//! decided as an import line or a posted fact is.

use super::*;
use crate::handle::Ledger;
use ledger::event::{PaymentReceived, PaymentRef, PersonRegistered, PolicyPublished, RefundDestination, RefundIssued};
use ledger::{Event, Identity, Money, NewEvent, OpenMode};

const BIJIE: &str = include_str!("../../../fixtures/policies/bijie-2025.toml");
const SHANXI: &str = include_str!("../../../fixtures/policies/shanxi-2022.toml");
const PAID: &str = "520502198503121233";
const UNPAID: &str = "520502199001011231";

fn id(text: &str) -> Identity {
    text.parse().expect("a valid ID")
}

fn policy(region: &str, year: u16, document: &str) -> Event {
    Event::PolicyPublishedV1(PolicyPublished {
        region: region.parse().expect("region"),
        coverage_year: year,
        source: "test".into(),
        document: document.into(),
    })
}

fn registration(person: &str, region: &str, registered_on: &str) -> Event {
    Event::PersonRegisteredV1(PersonRegistered {
        person: id(person),
        name: "张伟".into(),
        region: region.parse().expect("region"),
        // The birth date the ID number carries.
        birth_date: format!("{}-{}-{}", &person[6..10], &person[10..12], &person[12..14]).parse().expect("date"),
        registered_on: registered_on.parse().expect("date"),
        basis: Default::default(),
    })
}

fn payment(person: &str, year: u16, yuan: i64, reference: &str, paid_at: &str) -> Event {
    Event::PaymentReceivedV1(PaymentReceived {
        person: id(person),
        coverage_year: year,
        amount: Money::from_yuan(yuan),
        channel: "wechat".into(),
        channel_ref: reference.into(),
        payer: Default::default(),
        paid_at: paid_at.parse().expect("time"),
    })
}

fn refund() -> Event {
    Event::RefundIssuedV1(RefundIssued {
        person: id(PAID),
        coverage_year: 2025,
        refund_ref: "TK1".into(),
        payment: PaymentRef { channel: "wechat".into(), channel_ref: "WX9".into() },
        amount: Money::from_yuan(400),
        destination: RefundDestination::OriginalChannel,
        refunded_at: "2024-11-01 10:00:00".parse().expect("time"),
        reason: "退保".into(),
    })
}

fn append(ledger: &Ledger, events: Vec<Event>) -> u64 {
    let events = events.into_iter().map(|event| NewEvent::fact(event, "test")).collect();
    ledger.log().append_blocking(events).expect("appended").head.position
}

/// Bijie 2025: one person paid (and, with `refunded`, refunded later), one
/// registered and unpaid.
fn bijie(dir: &std::path::Path, refunded: bool) -> Ledger {
    let ledger = Ledger::open(&crate::Location::sled(dir), OpenMode::Create).expect("a new ledger");
    append(
        &ledger,
        vec![
            policy("520500", 2025, BIJIE),
            registration(PAID, "520502", "2024-09-30"),
            registration(UNPAID, "520502", "2024-09-30"),
            payment(PAID, 2025, 400, "WX9", "2024-10-05 09:30:00"),
        ],
    );
    if refunded {
        append(&ledger, vec![refund()]);
    }
    ledger
}

fn query(person: &str) -> CoverageQuery {
    CoverageQuery { person: id(person), year: None, on: None }
}

fn state(answer: &CoverageAnswer) -> String {
    let value = serde_json::to_value(answer.years[0].year.state).expect("JSON");
    value.as_str().unwrap_or_default().to_string()
}

#[test]
fn an_unknown_person_is_not_found_in_every_lookup() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ledger = bijie(dir.path(), false);
    let stranger = query("110101199003074477");
    let at = ledger.projections().expect("projections");
    let moment = ledger::UtcTime::now();
    let errors = [
        ledger.coverage_of(&stranger, None).expect_err("unknown"),
        ledger.coverage_of(&stranger, Some(moment)).expect_err("unknown"),
        answer(&at.coverage, &stranger).expect_err("unknown"),
        answer_as_of(ledger.log(), &at.coverage, &at.family, &stranger, moment).expect_err("unknown"),
        ledger.history(&stranger.person).expect_err("unknown"),
        history_of_streams(ledger.log(), &at.coverage, &at.family, &stranger.person).expect_err("unknown"),
    ];
    for error in errors {
        assert_eq!(error.kind(), Kind::NotFound, "{error}");
        assert!(error.to_string().starts_with("no person with ID 110101********4477 in the ledger"), "{error}");
    }
}

/// A known person asked a year without facts gets that year (what is due),
/// not "no person".
#[test]
fn a_known_person_asked_a_year_without_facts_gets_the_year() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ledger = bijie(dir.path(), false);
    let asked = CoverageQuery { year: Some(2024), ..query(PAID) };
    let answer = ledger.coverage_of(&asked, None).expect("a known person");
    assert_eq!(answer.person.id, "520502********1233");
    assert_eq!(answer.years.len(), 1, "{answer:?}");
    assert_eq!(answer.years[0].year.coverage_year, 2024);
    assert_eq!(answer.log_position, ledger.log().durable_head().position);
}

#[test]
fn as_of_a_moment_before_the_refund_shows_the_payment() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ledger = bijie(dir.path(), true);
    let refund_position = ledger.log().durable_head().position;
    let mut refund_recorded_at = None;
    let log: &dyn ledger::LogReader = ledger.log();
    log.scan(refund_position, refund_position, |envelope| {
        refund_recorded_at = Some(envelope.head.recorded_at);
        Ok(())
    })
    .expect("scanned");
    let before = ledger::UtcTime(refund_recorded_at.expect("the refund's record").0 - 1);
    let asked = CoverageQuery { year: Some(2025), ..query(PAID) };
    let now = ledger.coverage_of(&asked, None).expect("now");
    assert_eq!(state(&now), "refunded_to_source", "{now:?}");
    let at = ledger.projections().expect("projections");
    let streams = answer_as_of(ledger.log(), &at.coverage, &at.family, &asked, before).expect("as of");
    let rebuilt = ledger.coverage_of(&asked, Some(before)).expect("as of");
    for then in [&streams, &rebuilt] {
        assert_eq!(state(then), "received", "{then:?}");
        assert_eq!(then.years[0].year.refunds.total, Money::ZERO);
        assert_eq!(then.years[0].year.net_received, Money::from_yuan(400));
    }
    assert_eq!(streams.years, rebuilt.years, "the person's streams and a whole rebuild differ");
}

#[test]
fn the_unpaid_list_names_the_unpaid_masked_and_pages() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ledger = bijie(dir.path(), false);
    let region = "520502".parse().expect("region");
    let listed = ledger.unpaid(region, 2025).expect("the list");
    assert_eq!(listed.n_total, 1, "{listed:?}");
    assert_eq!(listed.entries.len(), 1);
    assert_eq!(listed.entries[0].person, "520502********1231");
    let coverage = ledger.coverage().expect("coverage");
    let second = unpaid(&coverage, region, 2025, Page::new(Some(2), Some(1)).expect("a page")).expect("the page");
    assert_eq!((second.n_total, second.entries.len(), second.page), (1, 0, 2));
    for (page, per_page, field) in
        [(Some(0), None, "page"), (None, Some(0), "per_page"), (None, Some(1001), "per_page")]
    {
        let refused = Page::new(page, per_page).expect_err("a bad page");
        assert_eq!((refused.kind(), refused.field()), (Kind::BadInput, Some(field)), "{refused}");
    }
}

/// Two payments of the largest amount: the year's money is no amount
/// (payments are not judged against the person-year before they are
/// appended). Every lookup that derives that year fails naming it, as a
/// failure (exit 3, HTTP 500), never an answer with 0.00; the other
/// person of the ledger still answers.
#[test]
fn a_year_whose_money_is_no_amount_fails_every_lookup_naming_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ledger = bijie(dir.path(), false);
    let largest_yuan = Money::MAX_FEN / 100;
    let paid_at = "2024-10-05 09:30:00";
    append(
        &ledger,
        vec![
            payment(UNPAID, 2025, largest_yuan, "WX-MAX-1", paid_at),
            payment(UNPAID, 2025, largest_yuan, "WX-MAX-2", paid_at),
        ],
    );
    let at = ledger.projections().expect("projections");
    let moment = ledger::UtcTime::now();
    let region = "520502".parse().expect("region");
    let on_a_day = CoverageQuery { year: Some(2025), on: Some("2025-03-01".parse().expect("a date")), ..query(UNPAID) };
    let errors: Vec<Box<dyn Classified>> = vec![
        Box::new(ledger.coverage_of(&query(UNPAID), None).expect_err("no amount")),
        Box::new(ledger.coverage_of(&on_a_day, None).expect_err("no amount")),
        Box::new(ledger.coverage_of(&query(UNPAID), Some(moment)).expect_err("no amount")),
        Box::new(answer(&at.coverage, &query(UNPAID)).expect_err("no amount")),
        Box::new(answer_as_of(ledger.log(), &at.coverage, &at.family, &query(UNPAID), moment).expect_err("no amount")),
        Box::new(ledger.unpaid(region, 2025).expect_err("no amount")),
    ];
    for error in errors {
        let text = error.to_string();
        assert_eq!(error.kind(), Kind::Failure, "{text}");
        assert!(text.starts_with("person-year 520502********1231 2025: "), "{text}");
        assert!(text.contains("not an amount of money") && !text.contains(UNPAID), "{text}");
    }
    let paid = ledger.coverage_of(&query(PAID), None).expect("the other person answers");
    assert_eq!(state(&paid), "received", "{paid:?}");
    assert_eq!(paid.years[0].year.net_received, Money::from_yuan(400));
}

/// Shanxi 2022: after a normal payment the special path is closed; the
/// assessment is refused by the rule an import line or a posted fact gets
/// (`family::decide`), and nothing is appended.
#[test]
fn an_assessment_after_a_normal_payment_is_refused_and_appends_nothing() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ledger = Ledger::open(&crate::Location::sled(dir.path()), OpenMode::Create).expect("a new ledger");
    let person = "140101198001010024";
    let query = AssessmentQuery {
        person: id(person),
        coverage_year: 2022,
        groups: vec!["minimum_living_allowance".into()],
        assessed_on: "2021-12-15".parse().expect("date"),
    };
    append(&ledger, vec![policy("140000", 2022, SHANXI), registration(person, "140101", "2021-12-01")]);
    let at = ledger.projections().expect("projections");
    let assessment = assessment_of(&at.coverage, &query).expect("an assessment");
    assert_eq!((assessment.subsidy, assessment.amount_due), (Money::from_yuan(280), Money::from_yuan(40)));
    append(&ledger, vec![payment(person, 2022, 320, "SX-1", "2021-12-10 10:00:00")]);
    let head = ledger.log().durable_head();
    let refused = ledger.assess(&query, "test").expect_err("the special path is closed");
    assert_eq!(refused.kind(), Kind::Refused, "{refused}");
    assert!(refused.to_string().contains("一旦按正常模块办理缴费,将无法再办理特殊缴费"), "{refused}");
    assert_eq!(ledger.log().durable_head(), head, "a refused assessment appended something");
    let stranger = AssessmentQuery { person: id("110101199003074477"), ..query };
    let unknown = ledger.assess(&stranger, "test").expect_err("not registered");
    assert_eq!((unknown.kind(), unknown.field()), (Kind::BadInput, Some("person")), "{unknown}");
}

#[test]
fn an_assessment_is_recorded_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ledger = Ledger::open(&crate::Location::sled(dir.path()), OpenMode::Create).expect("a new ledger");
    let person = "140101198502020036";
    append(&ledger, vec![policy("140000", 2022, SHANXI), registration(person, "140101", "2021-12-01")]);
    let query = AssessmentQuery {
        person: id(person),
        coverage_year: 2022,
        groups: vec!["at_risk_of_poverty".into(), "extreme_poverty".into()],
        assessed_on: "2021-12-15".parse().expect("date"),
    };
    let first = ledger.assess(&query, "test").expect("assessed");
    assert_eq!(first.group, "extreme_poverty");
    assert_eq!((first.subsidy, first.person_pays, first.appended), (Money::from_yuan(320), Money::ZERO, true));
    let again = ledger.assess(&query, "test").expect("a repeat");
    assert_eq!((again.position, again.appended), (first.position, false));
}
