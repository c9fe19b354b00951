//! Shared helpers for the ledger's integration tests.
#![allow(dead_code)]

use chrono::NaiveDate;
use ledger::event::{Payer, PaymentReceived, PersonRegistered};
use ledger::{BeijingTime, Date, Event, Identity, Money, NewEvent, RegionCode};

pub fn bijie() -> RegionCode {
    "520500".parse().expect("region")
}

pub fn person(n: u32) -> Identity {
    let birth = NaiveDate::from_ymd_opt(1960 + (n % 50) as i32, 1 + n % 12, 1 + n % 28).expect("date");
    Identity::resident(bijie(), birth, (n % 1000) as u16)
}

pub fn payment(n: u32) -> Event {
    Event::PaymentReceivedV1(PaymentReceived {
        person: person(n),
        coverage_year: 2025,
        amount: Money::from_yuan(400),
        channel: "wechat".into(),
        channel_ref: format!("WX{n:010}"),
        payer: Payer::Myself,
        paid_at: BeijingTime(1_730_000_000_000_000 + i64::from(n)),
    })
}

pub fn registration(n: u32) -> Event {
    let id = person(n);
    Event::PersonRegisteredV1(PersonRegistered {
        birth_date: Date(id.birth_date().expect("resident id")),
        person: id,
        name: format!("参保人{n}"),
        region: bijie(),
        registered_on: Date::ymd(2024, 10, 1).expect("date"),
        basis: Default::default(),
    })
}

pub fn fact(event: Event) -> NewEvent {
    NewEvent::fact(event, "test")
}
