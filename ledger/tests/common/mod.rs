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

/// A payment whose channel reference is `reference`, so that a test can tell
/// its events apart by their idempotency keys (`payment/wechat/<reference>`).
pub fn payment_with_ref(reference: &str, n: u32) -> Event {
    let mut event = payment(n);
    if let Event::PaymentReceivedV1(p) = &mut event {
        p.channel_ref = reference.to_string();
    }
    event
}

/// The channel reference of a payment, `None` for other events.
pub fn channel_ref(event: &Event) -> Option<&str> {
    match event {
        Event::PaymentReceivedV1(p) => Some(&p.channel_ref),
        _ => None,
    }
}

/// A small seeded generator (SplitMix64): reproducible from a printed seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

/// A seed from the environment variable `var` if set, else from the clock.
pub fn seed_from_env(var: &str) -> u64 {
    match std::env::var(var) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| panic!("{var}={text} is not a u64 seed")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5EED),
    }
}

// Not every test binary that includes these helpers runs a child.
#[allow(unused_imports)]
pub use ledger::conformance::{run_child_until_killed, KilledChild};

#[path = "../../../tests/common/tree.rs"]
mod tree;

// Not every test binary that includes these helpers copies a tree.
#[allow(unused_imports)]
pub use tree::copy_tree;
