//! The decision for a batch of new facts (an import file): each decided
//! fact is judged against the log *plus the batch's own earlier facts*, by
//! folding those into scratch copies of the projections at positions after
//! the head. Nothing is written; the copies are dropped.
//!
//! Only what the decisions read is folded: policies and identity
//! conversions, every accepted decided fact, and the registrations,
//! payments and subsidies of the persons those facts are about. A batch
//! without decided facts costs nothing.

use super::decide::{decide, is_decided};
use super::Family;
use crate::coverage::Coverage;
use crate::Projection;
use ledger::{Envelope, EnvelopeHead, Event, Identity, NewEvent, UtcTime};
use std::collections::HashSet;

/// A fact of a batch the rules refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRefusal {
    /// Index of the fact in the batch.
    pub index: usize,
    pub field: Option<&'static str>,
    pub reason: String,
}

/// Judges every decided fact of `events` in order; returns the refusals
/// (empty: the batch may be appended). `family` and `coverage` reflect the
/// same log position; the facts are folded into a copy of the family
/// projection and a copy of coverage restricted to the persons the batch
/// is about.
pub fn check_batch(family: &Family, coverage: &Coverage, events: &[NewEvent]) -> Vec<BatchRefusal> {
    if !events.iter().any(|new| is_decided(&new.event)) {
        return Vec::new();
    }
    let mut check = BatchCheck::new(family, coverage, persons_of_interest(family, coverage, events));
    for (index, new) in events.iter().enumerate() {
        check.check(index, new);
    }
    check.finish()
}

/// [`check_batch`] fed one fact at a time, for a caller that streams a
/// file instead of holding it: memory is the persons of interest's, not the
/// facts'. `persons` must hold every person the decided facts to come are
/// about, under every identity they have had (a superset decides the
/// same: a decision reads only the persons it is about).
pub struct BatchCheck {
    persons: HashSet<Identity>,
    coverage: Coverage,
    family: Family,
    position: u64,
    refusals: Vec<BatchRefusal>,
}

impl BatchCheck {
    pub fn new(family: &Family, coverage: &Coverage, persons: HashSet<Identity>) -> BatchCheck {
        let coverage = coverage.subset(&persons);
        let position = family.position().max(coverage.position());
        BatchCheck { persons, coverage, family: family.clone(), position, refusals: Vec::new() }
    }

    /// Judges `new` if it is decided, then folds it if the decision reads
    /// such facts; `index` is what a refusal names it by.
    pub fn check(&mut self, index: usize, new: &NewEvent) {
        if is_decided(&new.event) {
            if let Err(refusal) = decide(&self.family, &self.coverage, &new.event) {
                self.refusals.push(BatchRefusal { index, field: refusal.field, reason: refusal.reason });
                return;
            }
        } else if !relevant(&new.event, &self.persons) {
            return;
        }
        self.position += 1;
        let envelope = scratch_envelope(self.position, new);
        self.family.apply(&envelope);
        self.coverage.apply(&envelope);
    }

    /// The persons whose facts the decision reads.
    pub fn persons(&self) -> &HashSet<Identity> {
        &self.persons
    }

    /// The refusals, in the order of the facts.
    pub fn finish(self) -> Vec<BatchRefusal> {
        self.refusals
    }
}

/// The persons the decided facts of the batch are about, under every
/// identity they have had (a payment may name a newborn's former ID).
fn persons_of_interest(family: &Family, coverage: &Coverage, events: &[NewEvent]) -> HashSet<Identity> {
    let mut persons = HashSet::new();
    for new in events {
        match &new.event {
            Event::FamilyBindingCreatedV1(e) => {
                persons.insert(e.member.clone());
            }
            Event::ProxySubmittedV1(e) => {
                persons.insert(e.member.clone());
            }
            Event::RefundIssuedV1(e) => {
                persons.insert(e.person.clone());
            }
            Event::HardshipAssessedV1(e) => {
                persons.insert(e.person.clone());
            }
            Event::ProxyCreditedV1(e) => {
                if let Some(application) = family.application(&e.application_id) {
                    persons.insert(application.member.clone());
                }
            }
            // A conversion in the batch may merge a record into a person
            // of interest: both sides are folded.
            Event::IdentityConvertedV1(e) => {
                persons.insert(e.from.clone());
                persons.insert(e.to.clone());
            }
            _ => {}
        }
    }
    let known: Vec<Identity> = persons
        .iter()
        .filter_map(|identity| coverage.person(identity))
        .flat_map(|person| std::iter::once(person.current).chain(person.former))
        .collect();
    persons.extend(known);
    persons
}

/// Whether the batch's decision folds `event`, a fact no rule decides,
/// given the persons of interest: policies, conversions, and the
/// registrations, payments and subsidies of those persons. An import that
/// streams a file keeps these lines (and the decided ones) for it.
pub fn relevant(event: &Event, persons: &HashSet<Identity>) -> bool {
    match event {
        Event::PolicyPublishedV1(_) | Event::PolicyAmendedV1(_) | Event::IdentityConvertedV1(_) => true,
        Event::PersonRegisteredV1(e) => persons.contains(&e.person),
        Event::PaymentReceivedV1(e) => persons.contains(&e.person),
        Event::SubsidyGrantedV1(e) => persons.contains(&e.person),
        _ => false,
    }
}

fn scratch_envelope(position: u64, new: &NewEvent) -> Envelope {
    Envelope {
        head: EnvelopeHead {
            position,
            event_id: ledger::uuid::Uuid::nil(),
            recorded_at: UtcTime(0),
            stream: new.stream.clone(),
            stream_version: 0,
            actor: new.actor.clone(),
            idempotency_key: new.idempotency_key.clone(),
        },
        event: new.event.clone(),
        prev_hash: [0; 32],
        hash: [0; 32],
    }
}
