//! Projections: state derived from the log, never written back to it.
//!
//! A projection folds envelopes in position order. It remembers the last
//! position it reflects, so that it can be caught up from there and compared
//! with a rebuild from position 1.

pub mod checkpoint;
pub mod coverage;
#[cfg(feature = "failpoints")]
pub mod failpoints;
pub mod family;
pub mod policy;
use ledger::event::RefundDestination;
use ledger::{Envelope, Event, Hash, Money};
use serde::Serialize;
use std::collections::BTreeMap;

pub use coverage::Coverage;
pub use family::Family;

/// Where a projection stands: the last position it folded and the hash of
/// the record there (zeros before the first). Coverage and family keep one
/// and fold each envelope once, in order, through it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tip {
    pub position: u64,
    pub hash: Hash,
}

impl Tip {
    /// Whether `envelope` is new to a state at this tip (an older one was
    /// folded already).
    pub fn admits(&self, envelope: &Envelope) -> bool {
        envelope.head.position > self.position
    }

    /// Moves the tip to `envelope`, once it is folded.
    pub fn advance(&mut self, envelope: &Envelope) {
        self.position = envelope.head.position;
        self.hash = envelope.hash;
    }
}

/// State folded from the log.
pub trait Projection {
    /// Folds one envelope; envelopes arrive in position order, each once.
    fn apply(&mut self, envelope: &Envelope);
    /// The last position folded (0: none).
    fn position(&self) -> u64;
}

/// Money that moved for one coverage year, by kind, in fen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct YearTotals {
    pub n_payments: u64,
    pub paid: Money,
    pub n_subsidies: u64,
    pub subsidised: Money,
    pub n_proxy_credited: u64,
    pub proxy_credited: Money,
    pub n_refunds: u64,
    pub refunded_to_channel: Money,
    pub refunded_to_personal_account: Money,
    pub refunded_to_funders: Money,
}

/// Counts of every fact by type, and the money of each coverage year: the
/// first figures an auditor compares after a replay.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LedgerTotals {
    position: u64,
    pub events_by_type: BTreeMap<&'static str, u64>,
    pub years: BTreeMap<u16, YearTotals>,
    /// Proxy applications by id: year and amount, until credited.
    #[serde(skip)]
    proxy_applications: BTreeMap<String, (u16, Money)>,
}

fn add(total: &mut Money, amount: Money) {
    // Sums stay far below Money::MAX_FEN for any real prefecture; saturate
    // rather than wrap if a fabricated log says otherwise.
    *total = total.checked_add(amount).unwrap_or(Money::from_fen(Money::MAX_FEN).unwrap_or(Money::ZERO));
}

impl Projection for LedgerTotals {
    fn apply(&mut self, envelope: &Envelope) {
        debug_assert!(envelope.head.position > self.position, "envelopes arrive in position order");
        self.position = envelope.head.position;
        *self.events_by_type.entry(envelope.event.type_name()).or_default() += 1;
        match &envelope.event {
            Event::PaymentReceivedV1(e) => {
                let year = self.years.entry(e.coverage_year).or_default();
                year.n_payments += 1;
                add(&mut year.paid, e.amount);
            }
            Event::SubsidyGrantedV1(e) => {
                let year = self.years.entry(e.coverage_year).or_default();
                year.n_subsidies += 1;
                for part in &e.parts {
                    add(&mut year.subsidised, part.amount);
                }
            }
            Event::ProxySubmittedV1(e) => {
                self.proxy_applications.insert(e.application_id.clone(), (e.coverage_year, e.amount));
            }
            Event::ProxyCreditedV1(e) => {
                if let Some((coverage_year, amount)) = self.proxy_applications.remove(&e.application_id) {
                    let year = self.years.entry(coverage_year).or_default();
                    year.n_proxy_credited += 1;
                    add(&mut year.proxy_credited, amount);
                }
            }
            Event::RefundIssuedV1(e) => {
                let year = self.years.entry(e.coverage_year).or_default();
                year.n_refunds += 1;
                let total = match e.destination {
                    RefundDestination::OriginalChannel => &mut year.refunded_to_channel,
                    RefundDestination::PersonalAccount(_) => &mut year.refunded_to_personal_account,
                    RefundDestination::Funders => &mut year.refunded_to_funders,
                };
                add(total, e.amount);
            }
            _ => {}
        }
    }

    fn position(&self) -> u64 {
        self.position
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::event::{Payer, PaymentReceived};
    use ledger::{BeijingTime, EnvelopeHead, Identity, UtcTime};

    fn envelope(position: u64, event: Event) -> Envelope {
        Envelope {
            head: EnvelopeHead {
                position,
                event_id: uuid_from(position),
                recorded_at: UtcTime(0),
                stream: event.stream(),
                stream_version: 1,
                actor: "test".into(),
                idempotency_key: format!("k{position}"),
            },
            event,
            prev_hash: [0; 32],
            hash: [0; 32],
        }
    }

    fn uuid_from(n: u64) -> ledger::uuid::Uuid {
        ledger::uuid::Uuid::from_u64_pair(0, n)
    }

    #[test]
    fn payments_are_summed_per_year() {
        let person: Identity = "11010519491231002X".parse().expect("id");
        let payment = |amount: i64, year: u16, reference: &str| {
            Event::PaymentReceivedV1(PaymentReceived {
                person: person.clone(),
                coverage_year: year,
                amount: Money::from_yuan(amount),
                channel: "wechat".into(),
                channel_ref: reference.into(),
                payer: Payer::Myself,
                paid_at: BeijingTime(0),
            })
        };
        let mut totals = LedgerTotals::default();
        totals.apply(&envelope(1, payment(400, 2025, "a")));
        totals.apply(&envelope(2, payment(1070, 2025, "b")));
        totals.apply(&envelope(3, payment(380, 2024, "c")));
        assert_eq!(totals.position(), 3);
        assert_eq!(totals.years[&2025].paid, Money::from_yuan(1470));
        assert_eq!(totals.years[&2025].n_payments, 2);
        assert_eq!(totals.years[&2024].paid, Money::from_yuan(380));
        assert_eq!(totals.events_by_type["payment_received"], 3);
    }
}
