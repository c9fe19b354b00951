//! The decision of a file of any size with facts the rules decide
//! (bindings, proxy applications and their steps, refunds, assessments),
//! in bounded memory. `family::check_batch` folds, besides the decided
//! facts, only policies, identity conversions and the registrations,
//! payments and subsidies of the persons the decided facts are about; so
//! the file's facts of that kind, in file order, are judged exactly as the
//! whole file would be. The first pass notes every identity a decided fact
//! or a conversion names (a superset of those persons); the decision
//! reads the file once more and keeps only the facts that may matter.

use super::{check_batch, Batch, ImportError};
use crate::facts;
use crate::handle::Projections;
use ledger::{Event, Identity, NewEvent};
use projections::coverage::Named as StoreNamed;
use projections::family;
use std::collections::HashSet;

/// What the decided facts and conversions of a file name.
#[derive(Default)]
pub(super) struct Named {
    identities: HashSet<Identity>,
    applications: HashSet<String>,
}

impl Named {
    /// Notes the identities and applications `event` names, if it is a
    /// decided fact or a conversion.
    pub fn note(&mut self, event: &Event) {
        let mut identities = |named: &[&Identity]| self.identities.extend(named.iter().map(|&id| id.clone()));
        match event {
            Event::FamilyBindingCreatedV1(e) => identities(&[&e.holder, &e.member]),
            Event::FamilyBindingRevokedV1(e) => identities(&[&e.holder, &e.member]),
            Event::ProxySubmittedV1(e) => {
                identities(&[&e.holder, &e.member]);
                self.note_application(&e.application_id);
            }
            Event::RefundIssuedV1(e) => {
                identities(&[&e.person]);
                // A refund of a proxy payment names its application there.
                self.note_application(&e.payment.channel_ref);
            }
            Event::HardshipAssessedV1(e) => identities(&[&e.person]),
            Event::IdentityConvertedV1(e) => identities(&[&e.from, &e.to]),
            Event::ProxyProcessingV1(e) => self.note_application(&e.application_id),
            Event::ProxyCreditedV1(e) => self.note_application(&e.application_id),
            Event::ProxyFailedV1(e) => self.note_application(&e.application_id),
            Event::ProxyReturnedV1(e) => self.note_application(&e.application_id),
            _ => {}
        }
    }

    fn note_application(&mut self, application_id: &str) {
        if !self.applications.contains(application_id) {
            self.applications.insert(application_id.to_string());
        }
    }

    /// What the person store reads for the decision: every identity and
    /// application named (the store adds each person's other identities,
    /// the family records of each, and each named application's holder and
    /// member).
    pub fn for_store(&self) -> StoreNamed {
        let mut named = StoreNamed::default();
        for identity in &self.identities {
            named.identity(identity);
        }
        for application_id in &self.applications {
            named.application(application_id);
        }
        named
    }

    /// The persons whose facts the decision may read: those named, the
    /// members and holders of the applications the log holds, and every
    /// identity each of them has had in the log.
    fn persons(&self, at: &Projections) -> HashSet<Identity> {
        let mut persons = self.identities.clone();
        for application in at.family.applications() {
            if self.applications.contains(&application.application_id) {
                persons.insert(application.holder.clone());
                persons.insert(application.member.clone());
            }
        }
        let known: Vec<Identity> = persons
            .iter()
            .filter_map(|identity| at.coverage.person(identity))
            .flat_map(|person| std::iter::once(person.current).chain(person.former))
            .collect();
        persons.extend(known);
        persons
    }
}

/// Whether the decision may read `event`: what `family::check_batch`
/// folds, and the decided facts themselves.
fn may_matter(event: &Event, persons: &HashSet<Identity>) -> bool {
    family::is_decided(event) || family::relevant(event, persons)
}

/// The fields of a line that say whether it may matter, read without the
/// rest of the fact (most lines of a file are payments of other persons).
#[derive(serde::Deserialize)]
struct Glance {
    #[serde(rename = "type")]
    type_name: String,
    person: Option<Identity>,
}

/// `false` only for a registration, payment or subsidy of a person the
/// decision does not read; every other line is read whole.
fn may_matter_at_a_glance(text: &str, persons: &HashSet<Identity>) -> bool {
    let Ok(glance) = serde_json::from_str::<Glance>(text) else { return true };
    match glance.type_name.as_str() {
        "person_registered" | "payment_received" | "subsidy_granted" => {
            glance.person.is_none_or(|person| persons.contains(&person))
        }
        _ => true,
    }
}

/// Judges the file's decided facts against `at` plus the file's earlier
/// facts; `parse` reads one line (the file was validated: an error means
/// it changed).
pub(super) fn judge(
    lines: impl Iterator<Item = (usize, Result<String, facts::LineError>)>,
    parse: impl Fn(usize, &str) -> Option<NewEvent>,
    named: &Named,
    at: &Projections,
    label: &str,
) -> Result<(), ImportError> {
    let persons = named.persons(at);
    let mut batch = Batch::default();
    for (line, text) in lines {
        let changed = || ImportError::Changed { label: label.to_string(), line };
        let text = text.map_err(|_| changed())?;
        if !may_matter_at_a_glance(&text, &persons) {
            continue;
        }
        let new = parse(line, &text).ok_or_else(changed)?;
        if may_matter(&new.event, &persons) {
            batch.events.push(new);
            batch.line_numbers.push(line);
        }
    }
    check_batch(&at.coverage, &at.family, &batch, label, "file")
}
