//! Issuing a certificate: the person-year from the projections at one log
//! position, each money fact with its place and hash in the log.

use super::data::{Certificate, Entry, FORMAT, VERSION};
use crate::error::{Classified, Kind, StorageError};
use crate::keys::KeyError;
use ledger::{BeijingTime, Envelope, Event, Identity, LogReader, Money};
use projections::coverage::{Coverage, CoverageState, MoneyEvent, MoneyKind, MoneyOutOfRange, PersonYear};
use projections::family::Family;
use projections::Projection;
use std::collections::BTreeMap;

/// Most money facts listed on one certificate.
pub const MAX_ENTRIES: usize = 256;

/// No certificate was issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The ledger knows no person by this ID (`person` masked).
    #[error("no person with ID {person} in the ledger")]
    NoPerson { person: String },
    /// The person-year is not received: nothing to certify yet (or any more).
    #[error("{}", not_received_text(.0))]
    NotReceived(Box<NotReceived>),
    #[error("{n_facts} money facts for the year: more than a certificate lists")]
    TooManyFacts { n_facts: usize },
    /// The projections and the log disagree: a bug or a damaged store.
    #[error("{0}")]
    Inconsistent(String),
    /// A figure of the person-year is no amount of money: nothing to
    /// certify, and never a certificate showing 0.00.
    #[error(transparent)]
    MoneyOutOfRange(#[from] MoneyOutOfRange),
    /// The office's signing key could not be read.
    #[error("the signing key: {0}")]
    Key(#[from] KeyError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a person-year has no certificate: its state and what keeps it
/// from being received.
#[derive(Debug)]
pub struct NotReceived {
    /// Masked.
    pub person: String,
    pub coverage_year: u16,
    pub state: CoverageState,
    /// Proxy money applied for and not yet credited or failed.
    pub in_flight: Money,
    pub outstanding: Option<Money>,
    /// Above the premium, to be refunded.
    pub excess: Money,
}

impl Classified for IssueError {
    fn kind(&self) -> Kind {
        match self {
            IssueError::NoPerson { .. } => Kind::NotFound,
            IssueError::NotReceived(_) | IssueError::TooManyFacts { .. } => Kind::Refused,
            IssueError::Inconsistent(_) | IssueError::MoneyOutOfRange(_) => Kind::Failure,
            IssueError::Key(error) => error.kind(),
            IssueError::Storage(error) => error.kind(),
        }
    }
}

fn not_received_text(why: &NotReceived) -> String {
    let mut text = format!(
        "no certificate for {} {}: the person-year is {}, not received (参保缴费证明 is issued once the premium is paid in full and credited, 缴费到账成功)",
        why.person,
        why.coverage_year,
        why.state.words()
    );
    if why.in_flight != Money::ZERO {
        text.push_str(&format!("; {} is still in flight in a proxy application", why.in_flight));
    }
    if let Some(outstanding) = why.outstanding.filter(|o| *o != Money::ZERO) {
        text.push_str(&format!("; {outstanding} is outstanding"));
    }
    if why.excess != Money::ZERO {
        text.push_str(&format!("; {} above the premium is to be refunded first", why.excess));
    }
    text
}

/// The certificate of a received person-year from projections at one log
/// position (the service's live ones, or the CLI's).
pub fn issue_from(
    log: &dyn LogReader,
    coverage: &Coverage,
    family: &Family,
    identity: &Identity,
    year: u16,
    full_id: bool,
) -> Result<Certificate, IssueError> {
    // A known person has a view of every year (unpaid when nothing
    // happened), so only an unknown identity is "no person".
    let (Some(person), Some(view)) = (coverage.person(identity), coverage.person_year(identity, year)?) else {
        return Err(IssueError::NoPerson { person: identity.masked() });
    };
    let (Some(from), Some(until), CoverageState::Received) = (view.covered_from, view.covered_until, view.state) else {
        return Err(not_received(identity, &view));
    };
    let show = |who: &Identity| if full_id { who.to_string() } else { who.masked() };
    let events = coverage.money_events(identity, year);
    if events.len() > MAX_ENTRIES {
        return Err(IssueError::TooManyFacts { n_facts: events.len() });
    }
    let payments = events.iter().map(|event| entry(log, family, event)).collect::<Result<Vec<Entry>, _>>()?;
    let region = person.region.map_or_else(String::new, |r| r.to_string());
    let region_name =
        person.region.and_then(|r| coverage.policy(r, year)).map_or_else(String::new, |p| p.region_name().to_string());
    Ok(Certificate {
        format: FORMAT.into(),
        version: VERSION,
        ledger_id: log.ledger_id().to_string(),
        person: show(&person.current),
        full_id,
        former: person.former.iter().map(show).collect(),
        name: person.name.unwrap_or_default(),
        region,
        region_name,
        coverage_year: year,
        state: "received".into(),
        premium_due: view.premium_due.unwrap_or(view.net_received),
        paid_by: paid_by(&view),
        refunded: view.refunds.total,
        net_received: view.net_received,
        covered_from: from,
        covered_until: until,
        payments,
        issued_at: BeijingTime::now().to_string(),
        head_position: coverage.position(),
        head_hash: hex::encode(coverage.head_hash()),
        proofs: None,
    })
}

fn not_received(identity: &Identity, view: &PersonYear) -> IssueError {
    IssueError::NotReceived(Box::new(NotReceived {
        person: identity.masked(),
        coverage_year: view.coverage_year,
        state: view.state,
        in_flight: view.in_flight,
        outstanding: view.outstanding,
        excess: view.excess,
    }))
}

/// Money in by source: `self`, `other`, `collector`, `proxy`, `subsidy:FUNDER`.
fn paid_by(view: &PersonYear) -> BTreeMap<String, Money> {
    let paid = &view.paid;
    let mut by: BTreeMap<String, Money> = paid
        .by_source()
        .into_iter()
        .filter(|(_, amount)| *amount != Money::ZERO)
        .map(|(source, amount)| (source.to_string(), amount))
        .collect();
    by.extend(paid.subsidy.iter().map(|(funder, amount)| (format!("subsidy:{funder}"), *amount)));
    by
}

/// The record at `position`, if the log holds one there.
pub(super) fn record_at(log: &dyn LogReader, position: u64) -> Result<Option<Envelope>, StorageError> {
    let mut found = None;
    if position == 0 || position > log.durable_head().position {
        return Ok(None);
    }
    log.scan(position, position, |envelope| {
        found = Some(envelope);
        Ok(())
    })?;
    Ok(found)
}

fn entry(log: &dyn LogReader, family: &Family, event: &MoneyEvent) -> Result<Entry, IssueError> {
    let envelope = record_at(log, event.position)?.ok_or_else(|| {
        IssueError::Inconsistent(format!("the coverage projection names position {}, beyond the log", event.position))
    })?;
    let hash = hex::encode(envelope.hash);
    let base = |kind: &str, source: &str, amount: Money, at: String, channel: &str, reference: &str| Entry {
        kind: kind.into(),
        source: source.into(),
        amount,
        at,
        channel: channel.into(),
        reference: reference.into(),
        position: event.position,
        hash: hash.clone(),
        payer: None,
        application_position: None,
        application_hash: None,
        parts: BTreeMap::new(),
    };
    let entry = match (&event.kind, &envelope.event) {
        (MoneyKind::Payment { source }, Event::PaymentReceivedV1(e)) => {
            base("payment", source, e.amount, e.paid_at.to_string(), &e.channel, &e.channel_ref)
        }
        (MoneyKind::Payment { .. }, Event::ProxyCreditedV1(e)) => {
            let application = family.application(&e.application_id).ok_or_else(|| {
                IssueError::Inconsistent(format!(
                    "proxy application {} is not in the family projection",
                    e.application_id
                ))
            })?;
            let submitted = record_at(log, application.submitted_position)?.ok_or_else(|| {
                IssueError::Inconsistent(format!("no record at position {}", application.submitted_position))
            })?;
            let mut entry = base(
                "proxy",
                "proxy",
                application.amount,
                e.at.to_string(),
                "employee_personal_account",
                &e.application_id,
            );
            entry.payer = Some(application.holder.masked());
            entry.application_position = Some(application.submitted_position);
            entry.application_hash = Some(hex::encode(submitted.hash));
            entry
        }
        (MoneyKind::Subsidy { group, parts }, Event::SubsidyGrantedV1(e)) => {
            let mut entry = base("subsidy", "funders", event.amount, e.granted_on.to_string(), "subsidy", group);
            entry.parts = parts.clone();
            entry
        }
        (MoneyKind::Refund { destination, .. }, Event::RefundIssuedV1(e)) => {
            base("refund", destination, e.amount, e.refunded_at.to_string(), &e.payment.channel, &e.payment.channel_ref)
        }
        (_, other) => {
            return Err(IssueError::Inconsistent(format!(
                "position {} holds a {} fact, not the money fact the coverage projection names",
                event.position,
                other.type_name()
            )))
        }
    };
    Ok(entry)
}
