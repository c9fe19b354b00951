//! 核定 is a decided fact: `family::decide` and `check_batch` refuse the
//! assessment the rules refuse (Shanxi 2022: 一旦按正常模块办理缴费,将无法再
//! 办理特殊缴费), judged against the batch's own earlier facts, and take the
//! assessment in force recorded again as a repeat.

mod common;

use common::envelope;
use ledger::event::{Event, HardshipAssessed, PaymentReceived, PersonRegistered, PolicyPublished};
use ledger::{Identity, Money, NewEvent};
use projections::coverage::Coverage;
use projections::family::{check_batch, decide, Family, Verdict};
use projections::Projection;

const SHANXI: &str = include_str!("../../fixtures/policies/shanxi-2022.toml");
const YEAR: u16 = 2022;

fn person() -> Identity {
    "140101198001010024".parse().expect("valid ID")
}

fn policy() -> Event {
    Event::PolicyPublishedV1(PolicyPublished {
        region: "140000".parse().expect("region"),
        coverage_year: YEAR,
        source: "test".into(),
        document: SHANXI.into(),
    })
}

fn registration() -> Event {
    Event::PersonRegisteredV1(PersonRegistered {
        person: person(),
        name: "周明".into(),
        region: "140101".parse().expect("region"),
        birth_date: "1980-01-01".parse().expect("date"),
        registered_on: "2021-12-01".parse().expect("date"),
        basis: Default::default(),
    })
}

fn payment() -> Event {
    Event::PaymentReceivedV1(PaymentReceived {
        person: person(),
        coverage_year: YEAR,
        amount: Money::from_yuan(320),
        channel: "wechat".into(),
        channel_ref: "SX-1".into(),
        payer: Default::default(),
        paid_at: "2021-12-10 10:00:00".parse().expect("time"),
    })
}

fn assessment() -> HardshipAssessed {
    HardshipAssessed {
        person: person(),
        coverage_year: YEAR,
        group: "minimum_living_allowance".into(),
        subsidy: Money::from_yuan(280),
        amount_due: Money::from_yuan(40),
        assessed_on: "2021-12-15".parse().expect("date"),
    }
}

fn batch(events: Vec<Event>) -> Vec<NewEvent> {
    events.into_iter().map(|event| NewEvent::fact(event, "test")).collect()
}

#[test]
fn an_assessment_after_a_normal_payment_in_the_same_batch_is_refused() {
    let assessed = Event::HardshipAssessedV1(assessment());
    let events = batch(vec![policy(), registration(), payment(), assessed]);
    let refusals = check_batch(&Family::new(), &Coverage::new(), &events);
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].index, 3);
    assert!(refusals[0].reason.starts_with("assessment refused: "), "{}", refusals[0].reason);
    assert!(refusals[0].reason.contains("一旦按正常模块办理缴费,将无法再办理特殊缴费"), "{}", refusals[0].reason);
}

#[test]
fn an_assessment_before_the_payment_is_allowed_and_a_repeat_once_in_force() {
    let assessed = Event::HardshipAssessedV1(assessment());
    let events = batch(vec![policy(), registration(), assessed.clone(), payment()]);
    assert_eq!(check_batch(&Family::new(), &Coverage::new(), &events), Vec::new());
    let mut coverage = Coverage::new();
    for (index, event) in [policy(), registration(), assessed.clone(), payment()].into_iter().enumerate() {
        coverage.apply(&envelope(index as u64 + 1, event));
    }
    let verdict = decide(&Family::new(), &coverage, &assessed).expect("the assessment in force");
    assert!(matches!(verdict, Verdict::Repeat { position: 3, .. }), "{verdict:?}");
    let mut later = assessment();
    later.assessed_on = "2021-12-20".parse().expect("date");
    let verdict = decide(&Family::new(), &coverage, &Event::HardshipAssessedV1(later));
    assert_eq!(verdict, Ok(Verdict::Append), "payments after an accepted assessment are the special path's");
}
