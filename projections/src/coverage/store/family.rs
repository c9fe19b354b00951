//! The family projection kept per binding and per application in the
//! person store (layout 3): a chunk of the log is folded into the records
//! it names (`load_family`), written back in the chunk's transaction; a
//! question reads the records of the identities it names (`family_of`),
//! one application (`application_record`), or the applications in flight
//! (`family_in_flight`) — never the whole.

use super::load::Named;
use super::{PersonStore, StoreError};
use crate::family::{Application, Binding, Family, Keys, Notes, ProxyState};
use crate::Tip;
use ledger::{BeijingTime, Identity};
use rusqlite::Transaction;
use std::collections::{BTreeMap, BTreeSet};

/// The tables, created with the store's others.
pub(super) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS bindings (holder TEXT NOT NULL, member TEXT NOT NULL, record BLOB NOT NULL,
        PRIMARY KEY (holder, member)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS bindings_by_member ON bindings (member);
    CREATE TABLE IF NOT EXISTS applications (id TEXT PRIMARY KEY, holder TEXT NOT NULL, member TEXT NOT NULL,
        state TEXT NOT NULL, submitted_at INTEGER NOT NULL, last_moved_at INTEGER NOT NULL, record BLOB NOT NULL)
        WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS applications_by_holder ON applications (holder);
    CREATE INDEX IF NOT EXISTS applications_by_member ON applications (member);
    CREATE INDEX IF NOT EXISTS applications_by_state ON applications (state, submitted_at);";

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

/// Writes `rows` in `transaction` (the one of the persons and the tip).
pub(super) fn write_rows(
    transaction: &Transaction<'_>,
    rows: &FamilyRows<'_>,
    failed: &dyn Fn(rusqlite::Error) -> StoreError,
    encoding: &dyn Fn(&str, bincode::Error) -> StoreError,
) -> Result<(), StoreError> {
    let mut binding = transaction
        .prepare_cached("INSERT OR REPLACE INTO bindings (holder, member, record) VALUES (?1, ?2, ?3)")
        .map_err(failed)?;
    for record in &rows.bindings {
        let bytes = bincode::serialize(record).map_err(|e| encoding("a binding", e))?;
        binding
            .execute(rusqlite::params![record.holder.to_string(), record.member.to_string(), bytes])
            .map_err(failed)?;
    }
    let mut application = transaction
        .prepare_cached(
            "INSERT OR REPLACE INTO applications (id, holder, member, state, submitted_at, last_moved_at, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(failed)?;
    for record in &rows.applications {
        let bytes = bincode::serialize(record).map_err(|e| encoding("an application", e))?;
        application
            .execute(rusqlite::params![
                record.application_id,
                record.holder.to_string(),
                record.member.to_string(),
                state_name(record.state),
                record.submitted_at.0,
                record.last_moved_at().0,
                bytes
            ])
            .map_err(failed)?;
    }
    if let Some(notes) = &rows.notes {
        let bytes = bincode::serialize(notes).map_err(|e| encoding("the family's notes", e))?;
        transaction
            .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('family_notes', ?1)")
            .and_then(|mut statement| statement.execute([bytes]))
            .map_err(failed)?;
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
            let sql = "SELECT record FROM bindings WHERE holder = ?1 AND member = ?2";
            bindings.extend(self.bindings_where(sql, &[&holder.to_string(), &member.to_string()])?);
        }
        let mut applications = Vec::new();
        for id in &keys.applications {
            applications.extend(self.applications_where("SELECT record FROM applications WHERE id = ?1", &[id])?);
        }
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
                ["SELECT record FROM bindings WHERE holder = ?1", "SELECT record FROM bindings WHERE member = ?1"]
            {
                for binding in self.bindings_where(sql, &[identity])? {
                    bindings.insert((binding.holder.clone(), binding.member.clone()), binding);
                }
            }
            for sql in [
                "SELECT record FROM applications WHERE holder = ?1",
                "SELECT record FROM applications WHERE member = ?1",
            ] {
                for application in self.applications_where(sql, &[identity])? {
                    applications.insert(application.application_id.clone(), application);
                }
            }
        }
        for id in named.application_ids() {
            for application in self.applications_where("SELECT record FROM applications WHERE id = ?1", &[id])? {
                applications.insert(application.application_id.clone(), application);
            }
        }
        for prefix in named.application_prefixes() {
            // Every id that starts with the prefix sorts between it and it
            // followed by the greatest character.
            let sql = "SELECT record FROM applications WHERE id >= ?1 AND id < ?2";
            for application in self.applications_where(sql, &[prefix, &format!("{prefix}\u{10FFFF}")])? {
                applications.insert(application.application_id.clone(), application);
            }
        }
        let bindings = bindings.into_values().collect();
        Ok(Family::subset_at(tip, bindings, applications.into_values().collect(), self.family_notes()?))
    }

    /// One application as the store holds it.
    pub fn application_record(&self, application_id: &str) -> Result<Option<Application>, StoreError> {
        let found = self.applications_where("SELECT record FROM applications WHERE id = ?1", &[&application_id])?;
        Ok(found.into_iter().next())
    }

    /// The family at the store's tip holding the applications in flight
    /// (申请成功 / 受理中) submitted before `submitted_before` (all of them
    /// without it): what `family::stuck` reads.
    pub fn family_in_flight(&self, submitted_before: Option<BeijingTime>) -> Result<Family, StoreError> {
        let tip = self.tip()?.ok_or_else(|| self.damaged("no tip"))?;
        let before = submitted_before.map_or(i64::MAX, |at| at.0);
        let sql = "SELECT record FROM applications WHERE state IN ('submitted', 'processing') AND submitted_at < ?1";
        let applications = self.applications_where(sql, &[&before])?;
        Ok(Family::subset_at(tip, Vec::new(), applications, self.family_notes()?))
    }

    /// The whole family projection as the store holds it, at its tip (to
    /// compare with the projection folded from position 1).
    pub fn family_all(&self) -> Result<Family, StoreError> {
        // Deferred and only read: dropped at the end, which rolls nothing back.
        let _snapshot = self.connection.unchecked_transaction().map_err(|e| self.failed(e))?;
        let tip = self.tip()?.ok_or_else(|| self.damaged("no tip"))?;
        let bindings = self.bindings_where("SELECT record FROM bindings", &[])?;
        let applications = self.applications_where("SELECT record FROM applications", &[])?;
        Ok(Family::subset_at(tip, bindings, applications, self.family_notes()?))
    }

    fn family_notes(&self) -> Result<Notes, StoreError> {
        let Some(bytes) = self.meta("family_notes")? else { return Ok((Vec::new(), 0)) };
        bincode::deserialize(&bytes).map_err(|e| self.damaged(format!("the family's notes: {e}")))
    }

    fn bindings_where(&self, sql: &str, parameters: &[&dyn rusqlite::ToSql]) -> Result<Vec<Binding>, StoreError> {
        self.records_where(sql, parameters, "a binding")
    }

    fn applications_where(
        &self,
        sql: &str,
        parameters: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Application>, StoreError> {
        self.records_where(sql, parameters, "an application")
    }

    fn records_where<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        parameters: &[&dyn rusqlite::ToSql],
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut statement = self.connection.prepare_cached(sql).map_err(|e| self.failed(e))?;
        let mut rows = statement.query(parameters).map_err(|e| self.failed(e))?;
        let mut records = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.failed(e))? {
            let bytes: Vec<u8> = row.get(0).map_err(|e| self.failed(e))?;
            records.push(bincode::deserialize(&bytes).map_err(|e| self.damaged(format!("{what}: {e}")))?);
        }
        Ok(records)
    }
}
