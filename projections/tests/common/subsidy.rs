//! Facts of one person-year with subsidies from several groups: a
//! registration, grants by funder, refunds to funders naming grants
//! (`projections/tests/subsidy_refunds.rs`, `replay/tests/funders.rs`).
#![allow(dead_code)]

use ledger::event::{
    EnrolmentBasis, Event, Funder, PaymentRef, PersonRegistered, RefundDestination, RefundIssued, SubsidyGranted,
    SubsidyPart,
};
use ledger::{Date, Identity, Money, RegionCode};

pub const YEAR: u16 = 2021;

pub fn person() -> Identity {
    let born = chrono::NaiveDate::from_ymd_opt(1980, 5, 5).expect("a date");
    Identity::resident(RegionCode::new(520203).expect("a region"), born, 11)
}

pub fn money(fen: i64) -> Money {
    Money::from_fen(fen).expect("test amount")
}

pub fn date(text: &str) -> Date {
    text.parse().expect("test date")
}

pub fn registered() -> Event {
    Event::PersonRegisteredV1(PersonRegistered {
        person: person(),
        name: "测试".into(),
        region: RegionCode::new(520203).expect("region"),
        birth_date: date("1980-05-05"),
        registered_on: date("2020-11-01"),
        basis: EnrolmentBasis::Standard,
    })
}

pub fn grant(group: &str, parts: &[(Funder, i64)]) -> Event {
    Event::SubsidyGrantedV1(SubsidyGranted {
        person: person(),
        coverage_year: YEAR,
        group: group.into(),
        parts: parts.iter().map(|(funder, fen)| SubsidyPart { funder: funder.clone(), amount: money(*fen) }).collect(),
        granted_on: date("2020-12-01"),
    })
}

pub fn refund(index: usize, reference: String, fen: i64) -> Event {
    Event::RefundIssuedV1(RefundIssued {
        person: person(),
        coverage_year: YEAR,
        refund_ref: format!("TK{index}"),
        payment: PaymentRef { channel: "subsidy".into(), channel_ref: reference },
        amount: money(fen),
        destination: RefundDestination::Funders,
        refunded_at: "2021-03-01 10:00:00".parse().expect("a time"),
        reason: "资助退回".into(),
    })
}
