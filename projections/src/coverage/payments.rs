//! The payments of a person-year as things a refund can name and a
//! certificate can list: what each was, what is left of it, and the log
//! position of its fact. Refunds are matched exactly as the figures match
//! them (`flows::apply_refunds`), so a refund the decision accepts is one
//! the view applies whole.

use super::flows::{apply_refunds, find_payment, named_grants, AppliedRefund, RefundTarget, RefundsApplied};
use super::state::{sum, Destination, Source, YearState};
use super::Coverage;
use crate::policy::{funder_key, Policy};
use ledger::event::PaymentRef;
use ledger::{Date, Identity, Money, RegionCode};
use serde::Serialize;
use std::collections::BTreeMap;

/// The channel name a refund uses to name the year's subsidies: a
/// subsidy's refund goes back to the funders of the grants it names, and to
/// no other. `subsidy:GROUP` (or `subsidy:GROUP-…`) names every grant of
/// that group in the year, `subsidy:GROUP@POSITION` the one grant of the
/// group recorded at that log position. A refund to funders whose
/// reference names no grant of the year (none is accepted now; a log may
/// hold one from before) is taken from all the year's grants, in their
/// split, as it always was.
pub const SUBSIDY_CHANNEL: &str = "subsidy";

/// Where a payment came from, and so where its refunds go back to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentKind {
    /// A payment through a channel (self, another person, a collector):
    /// refunds go back through that channel.
    Channel,
    /// A credited proxy payment: refunds go back to the personal account.
    Proxy { application_id: String },
    /// Subsidy grants: refunds go back to those grants' funders, in their split.
    Subsidy,
}

/// A payment a refund names, with what is left to refund of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refundable {
    pub kind: PaymentKind,
    /// What was paid (for subsidies: every grant the reference names).
    pub amount: Money,
    /// Refunds already applied against it.
    pub refunded: Money,
    /// Log position of the payment's fact (the first named grant's for subsidies).
    pub position: u64,
}

impl Refundable {
    pub fn left(&self) -> Money {
        self.amount.saturating_sub(self.refunded)
    }
}

/// A refund as recorded: where, of which payment reference, how much.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordedRefund {
    pub position: u64,
    pub channel_ref: String,
    pub amount: Money,
}

/// One fact that moved money for a person-year, for certificates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MoneyEvent {
    /// Log position of the fact (for a proxy payment: its 缴费到账成功).
    pub position: u64,
    pub kind: MoneyKind,
    pub amount: Money,
    /// Business date (UTC+8).
    pub on: Date,
}

/// What kind of money a [`MoneyEvent`] is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MoneyKind {
    /// A payment: `self`, `other`, `collector` or `proxy`.
    Payment { source: &'static str },
    /// A subsidy grant, by funder.
    Subsidy { group: String, parts: BTreeMap<String, Money> },
    /// A refund: `applied` is what the figures count of it.
    Refund { destination: &'static str, applied: Money },
}

impl Coverage {
    /// The payment of the person-year a refund names, or `None` if the
    /// year has no such payment: `subsidy:GROUP` names the year's grants of
    /// that group (`GROUP-…` also matches), `subsidy:GROUP@POSITION` one
    /// grant of it (see [`SUBSIDY_CHANNEL`]), anything else a
    /// payment by channel and reference, or a credited proxy payment by its
    /// application id.
    pub fn refund_target(&self, person: &Identity, coverage_year: u16, payment: &PaymentRef) -> Option<Refundable> {
        let year = self.persons[self.lookup(person)? as usize].year(coverage_year)?;
        let applied = apply_refunds(year);
        if payment.channel == SUBSIDY_CHANNEL {
            return subsidy_target(year, &payment.channel_ref, &applied);
        }
        let index = find_payment(&year.contributions, &payment.channel, &payment.channel_ref)?;
        let contribution = &year.contributions[index];
        let refunded = sum(applied
            .refunds
            .iter()
            .filter(|a| a.target == RefundTarget::Contribution(index))
            .map(AppliedRefund::taken));
        let kind = match contribution.source {
            Source::Proxy => PaymentKind::Proxy { application_id: payment.channel_ref.clone() },
            _ => PaymentKind::Channel,
        };
        Some(Refundable { kind, amount: contribution.amount, refunded, position: contribution.position })
    }

    /// A refund already recorded for the person-year under this reference
    /// and payment channel (the fold counts it once).
    pub fn refund_recorded(
        &self,
        person: &Identity,
        coverage_year: u16,
        channel: &str,
        refund_ref: &str,
    ) -> Option<RecordedRefund> {
        let year = self.persons[self.lookup(person)? as usize].year(coverage_year)?;
        let refunds = year.extra().map_or(&[][..], |e| &e.refunds);
        refunds.iter().find(|r| *r.refund_ref == *refund_ref && *r.channel == *channel).map(|r| RecordedRefund {
            position: r.position,
            channel_ref: r.channel_ref.to_string(),
            amount: r.amount,
        })
    }

    /// Every fact that moved money for the person-year, in log order.
    pub fn money_events(&self, person: &Identity, coverage_year: u16) -> Vec<MoneyEvent> {
        let Some(year) = self.lookup(person).and_then(|id| self.persons[id as usize].year(coverage_year)) else {
            return Vec::new();
        };
        let mut events: Vec<MoneyEvent> = year
            .contributions
            .iter()
            .map(|c| MoneyEvent {
                position: c.position,
                kind: MoneyKind::Payment { source: source_name(c.source) },
                amount: c.amount,
                on: c.on,
            })
            .collect();
        let extra = year.extra();
        for grant in extra.map_or(&[][..], |e| &e.grants) {
            let mut parts: BTreeMap<String, Money> = BTreeMap::new();
            for (funder, amount) in &grant.parts {
                let entry = parts.entry(funder_key(funder).to_string()).or_insert(Money::ZERO);
                *entry = sum([*entry, *amount]);
            }
            let total = sum(grant.parts.iter().map(|(_, amount)| *amount));
            let kind = MoneyKind::Subsidy { group: grant.group.to_string(), parts };
            events.push(MoneyEvent { position: grant.position, kind, amount: total, on: grant.on });
        }
        let refunds = extra.map_or(&[][..], |e| &e.refunds);
        for (refund, applied) in refunds.iter().zip(apply_refunds(year).refunds) {
            let kind =
                MoneyKind::Refund { destination: destination_name(refund.destination), applied: applied.taken() };
            events.push(MoneyEvent { position: refund.position, kind, amount: refund.amount, on: refund.on });
        }
        events.sort_by_key(|e| e.position);
        events
    }

    /// Every policy of `coverage_year` for a region in `province` (the
    /// province's own included), in region order.
    pub fn policies_in_province(&self, province: RegionCode, coverage_year: u16) -> Vec<&Policy> {
        self.policies.in_province(province, coverage_year).map(|entry| &entry.policy).collect()
    }
}

fn subsidy_target(year: &YearState, reference: &str, applied: &RefundsApplied) -> Option<Refundable> {
    let grants = year.extra().map_or(&[][..], |e| &e.grants);
    let named = named_grants(grants, reference)?;
    let amount = sum(named.iter().flat_map(|&index| &grants[index].parts).map(|(_, amount)| *amount));
    let refunded = Money::from_fen(applied.refunded_of(year, &named))?;
    let position = named.iter().map(|&index| grants[index].position).min()?;
    Some(Refundable { kind: PaymentKind::Subsidy, amount, refunded, position })
}

/// The one name of a payer source, in JSON, CSV and text.
pub(super) fn source_name(source: Source) -> &'static str {
    match source {
        Source::Myself => "self",
        Source::Other => "other",
        Source::Collector => "collector",
        Source::Proxy => "proxy",
    }
}

fn destination_name(destination: Destination) -> &'static str {
    match destination {
        Destination::Channel => "original_channel",
        Destination::PersonalAccount => "personal_account",
        Destination::Funders => "funders",
    }
}
