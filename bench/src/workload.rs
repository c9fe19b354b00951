//! The generated events: registrations and premium payments of resident
//! insurance in the counties of Bijie. Each event is a function of its index,
//! so that every store gets the same events and extra ones (for the single
//! appends) never repeat an idempotency key of the ingest.

use chrono::{Days, NaiveDate};
use ledger::event::{EnrolmentBasis, Payer, PaymentReceived, PersonRegistered};
use ledger::{BeijingTime, Date, Event, Identity, Money, NewEvent, RegionCode};
use std::ops::Range;

/// 七星关区, 大方县, 金沙县, 织金县, 纳雍县, 威宁县, 赫章县, 黔西市.
const COUNTIES: [u32; 8] = [520502, 520521, 520523, 520524, 520525, 520526, 520527, 520581];
/// Birth dates spread over about 74 years.
const BIRTH_DAYS: u64 = 27_000;
/// The 2025 individual premium in Guizhou, in yuan.
const PREMIUM_YUAN: i64 = 400;
/// 2024-09-01T00:00:00+08:00 in microseconds: the collection period opens.
const COLLECTION_OPENS_MICROS: i64 = 1_725_120_000_000_000;

/// Two events per person: even indexes register person `index / 2`, odd
/// indexes record that person's payment. N events cover N/2 persons.
pub fn event(index: u64) -> NewEvent {
    let person_index = index / 2;
    match index % 2 {
        0 => NewEvent::fact(registration(person_index), "import:registrations-2024-q4.jsonl"),
        _ => NewEvent::fact(payment(person_index), "import:tax-bureau-2025-collection.jsonl"),
    }
}

pub fn events(indexes: Range<u64>) -> Vec<NewEvent> {
    indexes.map(event).collect()
}

fn county(person_index: u64) -> RegionCode {
    let code = COUNTIES[(person_index % COUNTIES.len() as u64) as usize];
    RegionCode::new(code).expect("county codes are valid")
}

/// Distinct for every person index below 8 × 27,000 × 1,000.
fn identity(person_index: u64) -> Identity {
    let per_county = person_index / COUNTIES.len() as u64;
    let first_birth = NaiveDate::from_ymd_opt(1950, 1, 1).expect("a date");
    let birth = first_birth + Days::new(per_county % BIRTH_DAYS);
    let sequence = (per_county / BIRTH_DAYS % 1000) as u16;
    Identity::resident(county(person_index), birth, sequence)
}

fn registration(person_index: u64) -> Event {
    let person = identity(person_index);
    let birth_date = Date(person.birth_date().expect("resident IDs carry a birth date"));
    let basis = match person_index % 50 {
        0 => EnrolmentBasis::Interrupted { last_paid_year: 2022 },
        _ => EnrolmentBasis::Standard,
    };
    Event::PersonRegisteredV1(PersonRegistered {
        person,
        name: yibao::generate::name(person_index),
        region: county(person_index),
        birth_date,
        registered_on: Date::ymd(2024, 9 + (person_index % 4) as u32, 1 + (person_index % 28) as u32).expect("a date"),
        basis,
    })
}

fn payment(person_index: u64) -> Event {
    let (channel, prefix) = match person_index % 4 {
        0 => ("tax", "SW5205"),
        1 => ("wechat", "4200002025"),
        2 => ("alipay", "2025090122001"),
        _ => ("bank", "ZGYH5205"),
    };
    let payer = match person_index % 20 {
        0 => Payer::Collector("碧阳街道代收员".into()),
        1 => Payer::Other(identity(person_index + 1)),
        _ => Payer::Myself,
    };
    Event::PaymentReceivedV1(PaymentReceived {
        person: identity(person_index),
        coverage_year: 2025,
        amount: Money::from_yuan(PREMIUM_YUAN),
        channel: channel.into(),
        channel_ref: format!("{prefix}{person_index:012}"),
        payer,
        paid_at: BeijingTime(COLLECTION_OPENS_MICROS + person_index as i64 * 7_000_000),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_valid_and_keys_distinct() {
        let events = events(0..2_000);
        let keys: std::collections::HashSet<&str> = events.iter().map(|e| e.idempotency_key.as_str()).collect();
        assert_eq!(keys.len(), events.len());
        for new in &events {
            assert!(new.event.validate().is_ok(), "{:?}", new.event);
        }
    }
}
