//! Reading the store back into a `Coverage`: the few persons and
//! applications a chunk of the log names (what `catch_up` folds into), or
//! everything (`load_all`, to compare with the whole projection).

use super::backend::Param;
use super::{PersonStore, StoreError};
use crate::coverage::state::{PersonId, PersonState};
use crate::coverage::Coverage;
use crate::Tip;
use ledger::{Envelope, Event, Identity};
use rustc_hash::FxHashSet;

/// The identities and proxy application ids facts name: what the fold of
/// those facts, or the rules judging them, read or change
/// (`PersonStore::coverage_named` reads those persons).
#[derive(Clone, Debug, Default)]
pub struct Named {
    identities: FxHashSet<Identity>,
    applications: FxHashSet<String>,
    /// Application ids by their start (a default id's stem): the family
    /// read for a decision holds every application whose id starts so.
    application_prefixes: Vec<String>,
}

impl Named {
    pub(super) fn of(envelopes: &[Envelope]) -> Named {
        Named::of_events(envelopes.iter().map(|envelope| &envelope.event))
    }

    /// What `events` name.
    pub fn of_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Named {
        let mut named = Named::default();
        for event in events {
            named.add(event);
        }
        named
    }

    /// A person named besides the facts (a request's holder and member).
    pub fn identity(&mut self, identity: &Identity) {
        self.identities.insert(identity.clone());
    }

    /// Every identity named (an application's member is not among them
    /// until it is read from the store).
    pub fn identities(&self) -> impl Iterator<Item = &Identity> {
        self.identities.iter()
    }

    /// Adds what `event` names.
    pub fn add(&mut self, event: &Event) {
        let person = match event {
            Event::PersonRegisteredV1(e) => &e.person,
            Event::PreRegistrationVoidedV1(e) => &e.person,
            Event::HardshipCertifiedV1(e) => &e.person,
            Event::HardshipAssessedV1(e) => &e.person,
            Event::PaymentReceivedV1(e) => &e.person,
            Event::SubsidyGrantedV1(e) => &e.person,
            Event::RefundIssuedV1(e) => {
                // A refund of a proxy payment names its application there.
                self.applications.insert(e.payment.channel_ref.clone());
                &e.person
            }
            // Both sides: a conversion may merge two persons.
            Event::IdentityConvertedV1(e) => {
                self.identities.insert(e.from.clone());
                &e.to
            }
            Event::ProxySubmittedV1(e) => {
                self.applications.insert(e.application_id.clone());
                &e.member
            }
            Event::ProxyProcessingV1(e) => return self.application(&e.application_id),
            Event::ProxyCreditedV1(e) => return self.application(&e.application_id),
            Event::ProxyFailedV1(e) => return self.application(&e.application_id),
            Event::ProxyReturnedV1(e) => return self.application(&e.application_id),
            Event::PolicyPublishedV1(_)
            | Event::PolicyAmendedV1(_)
            | Event::FamilyBindingCreatedV1(_)
            | Event::FamilyBindingRevokedV1(_)
            | Event::ReconciliationRecordedV1(_) => return,
        };
        self.identities.insert(person.clone());
    }

    /// A proxy application named besides the facts (a step asked for).
    pub fn application(&mut self, application_id: &str) {
        self.applications.insert(application_id.to_string());
    }

    /// Every application whose id starts with `prefix` (the ids a default
    /// id is chosen among).
    pub fn applications_starting(&mut self, prefix: &str) {
        self.application_prefixes.push(prefix.to_string());
    }

    /// Every application id named.
    pub fn application_ids(&self) -> impl Iterator<Item = &String> {
        self.applications.iter()
    }

    pub(super) fn application_prefixes(&self) -> impl Iterator<Item = &String> {
        self.application_prefixes.iter()
    }

    /// These and the holder and member of every application named that
    /// `family` (read for them) holds: the persons a decision about those
    /// applications asks the coverage about.
    pub fn linked_by(&self, family: &crate::family::Family) -> Named {
        let mut linked = self.clone();
        for application in self.applications.iter().filter_map(|id| family.application(id)) {
            linked.identities.insert(application.holder.clone());
            linked.identities.insert(application.member.clone());
        }
        linked
    }

    /// Adds what `other` names.
    pub fn extend(&mut self, other: &Named) {
        self.identities.extend(other.identities.iter().cloned());
        self.applications.extend(other.applications.iter().cloned());
        self.application_prefixes.extend(other.application_prefixes.iter().cloned());
    }
}

impl PersonStore {
    /// A coverage at `tip` with the policies, the notes, the persons
    /// `named` speaks of (under every identity they had) and its
    /// applications with their members: folding the chunk into it changes
    /// those persons as folding it into the whole projection would.
    pub(super) fn load_named(&self, named: &Named, tip: Tip) -> Result<Coverage, StoreError> {
        let mut coverage = self.empty_at(tip)?;
        self.add_named(&mut coverage, named)?;
        coverage.touched = Some(FxHashSet::default());
        Ok(coverage)
    }

    /// The persons and proxy applications `named` speaks of, at the
    /// store's tip, with the policies: every rule judging facts that name
    /// no one else answers on it as on the whole projection (the service's
    /// writes).
    pub fn coverage_named(&self, named: &Named) -> Result<Coverage, StoreError> {
        let tip = self.tip()?.ok_or_else(|| self.damaged("no tip"))?;
        self.load_named(named, tip)
    }

    /// The persons `identities` name (each under every identity they had),
    /// with the policies, at the store's tip; as `coverage_of`, without the
    /// ledger-wide notes (no answer about a person reads them).
    pub fn coverage_of_many(&self, identities: &[Identity]) -> Result<Coverage, StoreError> {
        let tip = self.tip()?.ok_or_else(|| self.damaged("no tip"))?;
        let mut coverage = Coverage { tip, policies: self.policies()?, ..Coverage::default() };
        let mut named = Named::default();
        identities.iter().for_each(|identity| named.identity(identity));
        self.add_named(&mut coverage, &named)?;
        Ok(coverage)
    }

    /// Reads the persons `named` speaks of into `coverage` (read from this
    /// store at its tip: the policies and the tip are taken as they are),
    /// skipping those it knows. Who reads the policies once (`coverage_of_many`
    /// with no one) reads each person after without parsing them again.
    pub fn add_named(&self, coverage: &mut Coverage, named: &Named) -> Result<(), StoreError> {
        let mut application_ids: Vec<String> = named.applications.iter().cloned().collect();
        application_ids.sort_unstable();
        let applications = self.applications_named(&application_ids)?;
        let members = applications.iter().map(|(_, member, _)| member);
        let mut keys: Vec<String> = named
            .identities
            .iter()
            .chain(members)
            .filter(|identity| !coverage.ids.contains_key(*identity))
            .map(Identity::to_string)
            .collect();
        // In key order: the B-tree's pages are read once each.
        keys.sort_unstable();
        keys.dedup();
        let mut found: Vec<(String, Vec<u8>)> = Vec::new();
        let sql = "SELECT persons.id, persons.state FROM aliases JOIN persons ON persons.id = aliases.current
                   WHERE aliases.id {keys}";
        self.backend.query_keys(sql, &keys, &mut |mut row| {
            let (Some(key), Some(bytes)) = (row.text(0), row.bytes(1)) else { return Err(self.damaged("a person")) };
            found.push((key, bytes));
            Ok(())
        })?;
        // Each person once (several identities may name them), in key
        // order on either database.
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        found.dedup_by(|a, b| a.0 == b.0);
        for (_, bytes) in found {
            coverage.adopt(self.person_in(Some(bytes))?);
        }
        coverage
            .adopt_applications(applications)
            .map_err(|application| self.damaged(format!("application {application} names no person")))?;
        Ok(())
    }

    /// The whole projection as the store holds it, at its tip: its digest
    /// and every answer are those of the projection folded from position 1.
    /// Read in one transaction: a process writing the store meanwhile
    /// (the service catching it up) is not seen half way.
    pub fn load_all(&self) -> Result<Coverage, StoreError> {
        self.backend.snapshot(|| {
            let tip = self.tip()?.ok_or_else(|| self.damaged("no tip"))?;
            let mut coverage = self.empty_at(tip)?;
            // In key order on either database: the same coverage from the same store.
            self.rows("SELECT state FROM persons ORDER BY id", &[], |mut row| {
                coverage.adopt(self.person_in(row.bytes(0))?);
                Ok(())
            })?;
            let mut applications = Vec::new();
            self.rows("SELECT id, person, year FROM proxies ORDER BY id", &[], |row| {
                applications.push(self.proxy_in(row)?);
                Ok(())
            })?;
            coverage
                .adopt_applications(applications)
                .map_err(|application| self.damaged(format!("application {application} names no person")))?;
            Ok(coverage)
        })?
    }

    /// A person's state as stored.
    fn person_in(&self, bytes: Option<Vec<u8>>) -> Result<PersonState, StoreError> {
        let bytes = bytes.ok_or_else(|| self.damaged("a person"))?;
        bincode::deserialize(&bytes).map_err(|e| self.damaged(format!("a person: {e}")))
    }

    /// Reads up to `limit` persons whose key (their current identity as
    /// text) comes after `after` into `coverage` (read from this store at
    /// its tip), in key order; returns the last key read, `None` past the
    /// last person. A listing walks the store this way in bounded memory.
    pub fn add_persons_after(
        &self,
        coverage: &mut Coverage,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Option<String>, StoreError> {
        let sql = "SELECT id, state FROM persons WHERE id > $1 ORDER BY id LIMIT $2";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut last = None;
        self.rows(sql, &[Param::Text(after.unwrap_or("")), Param::Integer(limit)], |mut row| {
            let key = row.text(0).ok_or_else(|| self.damaged("a person's key"))?;
            coverage.adopt(self.person_in(row.bytes(1))?);
            last = Some(key);
            Ok(())
        })?;
        Ok(last)
    }

    fn empty_at(&self, tip: Tip) -> Result<Coverage, StoreError> {
        let (notes, n_notes_dropped) = self.notes()?;
        Ok(Coverage { tip, policies: self.policies()?, notes, n_notes_dropped, ..Coverage::default() })
    }

    /// The applications among `ids` the store holds, with their member
    /// (an identity they had) and year, by id.
    fn applications_named(&self, ids: &[String]) -> Result<Vec<(String, Identity, u16)>, StoreError> {
        let mut applications = Vec::new();
        self.backend.query_keys("SELECT id, person, year FROM proxies WHERE id {keys}", ids, &mut |row| {
            applications.push(self.proxy_in(row)?);
            Ok(())
        })?;
        applications.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(applications)
    }

    /// A row (id, person, year) of `proxies`.
    fn proxy_in(&self, mut row: super::Row) -> Result<(String, Identity, u16), StoreError> {
        let (Some(application), member, year) = (row.text(0), row.text(1), row.integer(2)) else {
            return Err(self.damaged("an application's row"));
        };
        let damaged = || self.damaged(format!("the member of application {application}"));
        let member = member.and_then(|member| member.parse().ok()).ok_or_else(damaged)?;
        let year = year.and_then(|year| u16::try_from(year).ok()).ok_or_else(damaged)?;
        Ok((application, member, year))
    }
}

impl Coverage {
    /// Takes in a live person read from a store, under every identity
    /// they had: PersonIds are indices of this coverage, so renumbered.
    fn adopt(&mut self, person: PersonState) {
        let Ok(id) = PersonId::try_from(self.persons.len()) else { return };
        for known in std::iter::once(&person.current).chain(&person.former) {
            self.ids.insert(known.clone(), id);
        }
        self.persons.push(person);
    }

    /// Takes in applications by their member's identity; the first whose
    /// member is not here is returned (every member is in the store under
    /// every identity they had, so the store is damaged).
    fn adopt_applications(&mut self, applications: Vec<(String, Identity, u16)>) -> Result<(), String> {
        for (application, member, year) in applications {
            let Some(&id) = self.ids.get(&member) else { return Err(application) };
            self.proxies.insert(application.into_boxed_str(), (id, year));
        }
        Ok(())
    }
}
