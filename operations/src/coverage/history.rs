//! `yibao history ID` and `GET /v1/persons/{id}/history`: the facts about
//! a person, under every identity they had, in log order.

use super::streams::{concerns, history_by_streams};
use super::LookupError;
use ledger::{Envelope, Identity, LogReader};
use projections::coverage::Coverage;
use projections::family::Family;
use projections::Projection;
use serde::Serialize;
use std::collections::HashSet;

/// A person's facts, at the log position they were read to. Fields in
/// alphabetical order, as the service has always written them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryAnswer {
    pub facts: Vec<HistoryFact>,
    pub log_position: u64,
    /// The ID asked for, masked.
    pub person: String,
    /// The identity the person is known by now, masked (the text names
    /// it; the JSON names the ID asked).
    #[serde(skip)]
    pub known_as: String,
}

/// One fact, summarised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryFact {
    pub position: u64,
    /// Transaction time (`recorded_at`), RFC 3339 in UTC.
    pub recorded_at: String,
    pub summary: String,
    #[serde(rename = "type")]
    pub type_name: &'static str,
}

/// Every identity the person had; an account holder who is not insured
/// here has bindings and proxy applications, and no coverage record.
fn identities_of(coverage: &Coverage, person: &Identity) -> (Identity, HashSet<Identity>) {
    match coverage.person(person) {
        Some(summary) => (summary.current.clone(), std::iter::once(summary.current).chain(summary.former).collect()),
        None => (person.clone(), HashSet::from([person.clone()])),
    }
}

/// A scan of the log up to `coverage`'s position.
pub(super) fn scanned(
    log: &dyn LogReader,
    coverage: &Coverage,
    person: &Identity,
) -> Result<HistoryAnswer, LookupError> {
    let (current, identities) = identities_of(coverage, person);
    let mut applications: HashSet<String> = HashSet::new();
    let mut facts = Vec::new();
    log.scan(1, coverage.position(), |envelope| {
        if concerns(&envelope, &identities, &mut applications) {
            facts.push(fact(&envelope));
        }
        Ok(())
    })?;
    finish(coverage, person, &current, facts)
}

/// Through the stream index (`history_by_streams`), against projections
/// at one position.
pub(super) fn of_streams(
    log: &dyn LogReader,
    coverage: &Coverage,
    family: &Family,
    person: &Identity,
) -> Result<HistoryAnswer, LookupError> {
    let (current, identities) = identities_of(coverage, person);
    let envelopes = history_by_streams(log, family, &identities, coverage.position())?;
    finish(coverage, person, &current, envelopes.iter().map(fact).collect())
}

fn fact(envelope: &Envelope) -> HistoryFact {
    HistoryFact {
        position: envelope.head.position,
        recorded_at: envelope.head.recorded_at.to_string(),
        summary: crate::facts::summary(&envelope.event),
        type_name: envelope.event.type_name(),
    }
}

/// A person with no facts and no coverage record is unknown.
fn finish(
    coverage: &Coverage,
    person: &Identity,
    current: &Identity,
    facts: Vec<HistoryFact>,
) -> Result<HistoryAnswer, LookupError> {
    if facts.is_empty() && coverage.person(person).is_none() {
        return Err(LookupError::unknown(person, None));
    }
    Ok(HistoryAnswer { facts, log_position: coverage.position(), person: person.masked(), known_as: current.masked() })
}
