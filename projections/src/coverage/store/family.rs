//! The family projection kept per binding and per application in the
//! person store (layout 3): a chunk of the log is folded into the records
//! it names (`load_family`), written back in the chunk's transaction; a
//! question reads the records of the identities it names (`family_of`),
//! one application (`application_record`), or the applications in flight
//! (`family_in_flight`) — never the whole.

use super::backend::{Param, Rows};
use super::load::Named;
use super::{PersonStore, StoreError};
use crate::family::{Application, Binding, Family, Keys, Notes, ProxyState};
use crate::Tip;
use ledger::{BeijingTime, Identity};
use std::collections::{BTreeMap, BTreeSet};

/// What a write puts in the family tables, beside the persons.
#[derive(Default)]
pub(super) struct FamilyRows<'a> {
    pub bindings: Vec<&'a Binding>,
    pub applications: Vec<&'a Application>,
    /// The notes, when the fold changed them.
    pub notes: Option<Notes>,
}

impl<'a> FamilyRows<'a> {
    /// Every record and the notes of `family`.
    pub fn whole(family: &'a Family) -> FamilyRows<'a> {
        FamilyRows {
            bindings: family.bindings().collect(),
            applications: family.applications().collect(),
            notes: Some(family.notes_kept()),
        }
    }

    /// What the fold changed since `before`.
    pub fn changed(family: &'a Family, before: &Family) -> FamilyRows<'a> {
        let (bindings, applications) = family.changed_since(before);
        let notes = family.notes_changed_since(before).then(|| family.notes_kept());
        FamilyRows { bindings, applications, notes }
    }
}

/// The state column: where an application stands, as its name.
fn state_name(state: ProxyState) -> &'static str {
    match state {
        ProxyState::Submitted => "submitted",
        ProxyState::Processing => "processing",
        ProxyState::Credited => "credited",
        ProxyState::Failed => "failed",
        ProxyState::Returned => "returned",
    }
}

/// Adds `family`'s rows to a write's `rows` (the transaction of the persons
/// and the tip); what does not encode is named.
pub(super) fn add_rows(family: &FamilyRows<'_>, rows: &mut Rows) -> Result<(), (&'static str, bincode::Error)> {
    for record in &family.bindings {
        let bytes = bincode::serialize(record).map_err(|e| ("a binding", e))?;
        rows.bindings.push((record.holder.to_string(), record.member.to_string(), bytes));
    }
    for record in &family.applications {
        let bytes = bincode::serialize(record).map_err(|e| ("an application", e))?;
        rows.applications.push((
            record.application_id.clone(),
            record.holder.to_string(),
            record.member.to_string(),
            state_name(record.state),
            record.submitted_at.0,
            record.last_moved_at().0,
            bytes,
        ));
    }
    if let Some(notes) = &family.notes {
        let bytes = bincode::serialize(notes).map_err(|e| ("the family's notes", e))?;
        rows.meta.push(("family_notes", bytes));
    }
    Ok(())
}

impl PersonStore {
    /// A family at `tip` of the records the fold of a chunk reads (`keys`)
    /// and the notes: folding the chunk into it changes them as folding it
    /// into the whole projection would.
    pub(super) fn load_family(&self, keys: &Keys, tip: Tip) -> Result<Family, StoreError> {
        let mut bindings = Vec::new();
        for (holder, member) in &keys.bindings {
            let sql = "SELECT record FROM bindings WHERE holder = $1 AND member = $2";
            let (holder, member) = (holder.to_string(), member.to_string());
            bindings.extend(self.bindings_where(sql, &[Param::Text(&holder), Param::Text(&member)])?);
        }
        let ids: Vec<String> = keys.applications.iter().cloned().collect();
        let mut applications = Vec::new();
        self.backend.query_keys("SELECT record FROM applications WHERE id {keys}", &ids, &mut |mut row| {
            let bytes = row.bytes(0).ok_or_else(|| self.damaged("an application"))?;
            applications.push(bincode::deserialize(&bytes).map_err(|e| self.damaged(format!("an application: {e}")))?);
            Ok(())
        })?;
        Ok(Family::subset_at(tip, bindings, applications, self.family_notes()?))
    }

    /// The family at the store's tip as far as `named` speaks of it: every
    /// binding and application whose holder or member is one of its
    /// identities (under every identity the person had), the applications
    /// it names, and those whose id starts with a prefix it names. Every
    /// rule judging facts that name no one else, and every answer about
    /// these persons (their bindings, applications and account), is the
    /// whole projection's.
    pub fn family_of(&self, named: &Named) -> Result<Family, StoreError> {
        let tip = self.tip()?.ok_or_else(|| self.damaged("no tip"))?;
        let mut identities: BTreeSet<String> = BTreeSet::new();
        for identity in named.identities() {
            identities.insert(identity.to_string());
            if let Some((_, person)) = self.person_named(identity)? {
                identities.extend(std::iter::once(&person.current).chain(&person.former).map(Identity::to_string));
            }
        }
        let mut bindings = BTreeMap::new();
        let mut applications = BTreeMap::new();
        for identity in &identities {
            for sql in
                ["SELECT record FROM bindings WHERE holder = $1", "SELECT record FROM bindings WHERE member = $1"]
            {
                for binding in self.bindings_where(sql, &[Param::Text(identity)])? {
                    bindings.insert((binding.holder.clone(), binding.member.clone()), binding);
                }
            }
            for sql in [
                "SELECT record FROM applications WHERE holder = $1",
                "SELECT record FROM applications WHERE member = $1",
            ] {
                for application in self.applications_where(sql, &[Param::Text(identity)])? {
                    applications.insert(application.application_id.clone(), application);
                }
            }
        }
        for id in named.application_ids() {
            let sql = "SELECT record FROM applications WHERE id = $1";
            for application in self.applications_where(sql, &[Param::Text(id)])? {
                applications.insert(application.application_id.clone(), application);
            }
        }
        for prefix in named.application_prefixes() {
            // Every id that starts with the prefix sorts between it and it
            // followed by the greatest character.
            let sql = "SELECT record FROM applications WHERE id >= $1 AND id < $2";
            let past = format!("{prefix}\u{10FFFF}");
            for application in self.applications_where(sql, &[Param::Text(prefix), Param::Text(&past)])? {
                applications.insert(application.application_id.clone(), application);
            }
        }
        let bindings = bindings.into_values().collect();
        Ok(Family::subset_at(tip, bindings, applications.into_values().collect(), self.family_notes()?))
    }

    /// One application as the store holds it.
    pub fn application_record(&self, application_id: &str) -> Result<Option<Application>, StoreError> {
        let sql = "SELECT record FROM applications WHERE id = $1";
        let found = self.applications_where(sql, &[Param::Text(application_id)])?;
        Ok(found.into_iter().next())
    }

    /// The family at the store's tip holding the applications in flight
    /// (申请成功 / 受理中) submitted before `submitted_before` (all of them
    /// without it): what `family::stuck` reads.
    pub fn family_in_flight(&self, submitted_before: Option<BeijingTime>) -> Result<Family, StoreError> {
        let tip = self.tip()?.ok_or_else(|| self.damaged("no tip"))?;
        let before = submitted_before.map_or(i64::MAX, |at| at.0);
        let sql = "SELECT record FROM applications WHERE state IN ('submitted', 'processing') AND submitted_at < $1";
        let applications = self.applications_where(sql, &[Param::Integer(before)])?;
        Ok(Family::subset_at(tip, Vec::new(), applications, self.family_notes()?))
    }

    /// The whole family projection as the store holds it, at its tip (to
    /// compare with the projection folded from position 1).
    pub fn family_all(&self) -> Result<Family, StoreError> {
        self.backend.snapshot(|| {
            let tip = self.tip()?.ok_or_else(|| self.damaged("no tip"))?;
            let bindings = self.bindings_where("SELECT record FROM bindings", &[])?;
            let applications = self.applications_where("SELECT record FROM applications", &[])?;
            Ok(Family::subset_at(tip, bindings, applications, self.family_notes()?))
        })?
    }

    fn family_notes(&self) -> Result<Notes, StoreError> {
        let Some(bytes) = self.meta("family_notes")? else { return Ok((Vec::new(), 0)) };
        bincode::deserialize(&bytes).map_err(|e| self.damaged(format!("the family's notes: {e}")))
    }

    fn bindings_where(&self, sql: &str, parameters: &[Param<'_>]) -> Result<Vec<Binding>, StoreError> {
        self.records_where(sql, parameters, "a binding")
    }

    fn applications_where(&self, sql: &str, parameters: &[Param<'_>]) -> Result<Vec<Application>, StoreError> {
        self.records_where(sql, parameters, "an application")
    }

    fn records_where<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        parameters: &[Param<'_>],
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut records = Vec::new();
        self.rows(sql, parameters, |mut row| {
            let bytes = row.bytes(0).ok_or_else(|| self.damaged(what))?;
            records.push(bincode::deserialize(&bytes).map_err(|e| self.damaged(format!("{what}: {e}")))?);
            Ok(())
        })?;
        Ok(records)
    }
}
