//! A family projection of a few bindings and applications, as a store
//! keeping the projection per binding and per application (the person
//! store) reads it back: the one fold (`Family::apply`) runs on it, and
//! every question about what it holds answers as on the whole projection.
//!
//! `Keys` says what the fold of some envelopes reads and changes, so that a
//! chunk of the log is folded into just those records; what a decision or
//! a person's view reads is every record of the identities it names
//! (`PersonStore::family_of`).

use super::{Application, Binding, Family};
use crate::Tip;
use ledger::{Envelope, Event, Identity};
use std::collections::{BTreeMap, BTreeSet};

/// The bindings and applications the fold of some envelopes reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    /// By (holder, member).
    pub bindings: BTreeSet<(Identity, Identity)>,
    /// By id: the proxy steps', and a refund's payment reference (a refund
    /// of a proxy payment names its application there).
    pub applications: BTreeSet<String>,
}

impl Keys {
    /// What the fold of `envelopes` reads (see `fold.rs`).
    pub fn of(envelopes: &[Envelope]) -> Keys {
        let mut keys = Keys::default();
        for envelope in envelopes {
            keys.add(&envelope.event);
        }
        keys
    }

    pub fn add(&mut self, event: &Event) {
        let application = match event {
            Event::FamilyBindingCreatedV1(e) => {
                self.bindings.insert((e.holder.clone(), e.member.clone()));
                return;
            }
            Event::FamilyBindingRevokedV1(e) => {
                self.bindings.insert((e.holder.clone(), e.member.clone()));
                return;
            }
            Event::ProxySubmittedV1(e) => &e.application_id,
            Event::ProxyProcessingV1(e) => &e.application_id,
            Event::ProxyCreditedV1(e) => &e.application_id,
            Event::ProxyFailedV1(e) => &e.application_id,
            Event::ProxyReturnedV1(e) => &e.application_id,
            Event::RefundIssuedV1(e) => &e.payment.channel_ref,
            _ => return,
        };
        self.applications.insert(application.clone());
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty() && self.applications.is_empty()
    }
}

/// The ledger-wide notes of the family projection and the number dropped
/// past the cap, as a store keeps them.
pub type Notes = (Vec<String>, u64);

impl Family {
    /// A family at `tip` holding `bindings` and `applications` (read from a
    /// store at that tip) and the ledger-wide notes. Folding envelopes that
    /// name only these records changes them as it would change the whole
    /// projection's; a question about them answers the same.
    pub fn subset_at(tip: Tip, bindings: Vec<Binding>, applications: Vec<Application>, notes: Notes) -> Family {
        let bindings: BTreeMap<_, _> =
            bindings.into_iter().map(|b| ((b.holder.clone(), b.member.clone()), b)).collect();
        let applications: BTreeMap<_, _> = applications.into_iter().map(|a| (a.application_id.clone(), a)).collect();
        let (notes, n_notes_dropped) = notes;
        Family { tip, bindings, applications, notes, n_notes_dropped }
    }

    /// The last record folded.
    pub fn tip(&self) -> Tip {
        self.tip
    }

    /// Every binding held, by (holder, member).
    pub fn bindings(&self) -> impl Iterator<Item = &Binding> {
        self.bindings.values()
    }

    /// The notes and the number dropped past the cap.
    pub fn notes_kept(&self) -> Notes {
        (self.notes.clone(), self.n_notes_dropped)
    }

    /// The records this family holds that `before` (the same family before
    /// a fold) did not hold as they are now: what a store writes back.
    pub fn changed_since<'a>(&'a self, before: &Family) -> (Vec<&'a Binding>, Vec<&'a Application>) {
        let bindings = self.bindings.iter().filter(|(key, b)| before.bindings.get(*key) != Some(*b)).map(|(_, b)| b);
        let applications =
            self.applications.iter().filter(|(id, a)| before.applications.get(*id) != Some(*a)).map(|(_, a)| a);
        (bindings.collect(), applications.collect())
    }

    /// Whether the fold since `before` added a note.
    pub fn notes_changed_since(&self, before: &Family) -> bool {
        self.notes.len() != before.notes.len() || self.n_notes_dropped != before.n_notes_dropped
    }
}
