//! The coverage projection kept per person on disk (SQLite, chosen by
//! `yibao-bench store`): each person's record as the fold keeps it, every
//! identity they had pointing at it, the policies, and the tip (position and
//! hash) the whole reflects, written in one transaction. A lookup reads one
//! person into a coverage of one (`coverage_of`), whose every answer about
//! that person is the whole projection's. The store is written only from a
//! complete projection — all of it, or the persons its fold changed since
//! the store's tip (`write_touched`) — so it is never ahead of what the fold
//! decided, and a store that cannot be read is rebuilt from it.

use super::policies::{PolicyBook, PolicyRecord};
use super::state::PersonState;
use super::Coverage;
use crate::Tip;
use ledger::{Hash, Identity};
use rustc_hash::FxHashSet;
use std::path::{Path, PathBuf};

/// The store's layout; another is rebuilt.
const FORMAT_VERSION: i64 = 1;

/// The person store failed, or holds what this build cannot read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the person store {}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the person store {} holds a record that does not read ({reason}); it is rebuilt from the projection", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("the person store {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An open person store.
pub struct PersonStore {
    connection: rusqlite::Connection,
    path: PathBuf,
}

impl Coverage {
    /// From now on, note every person the fold changes (`write_touched`
    /// writes them back).
    pub fn track_touched(&mut self) {
        self.touched.get_or_insert_with(FxHashSet::default);
    }

    /// Whether the persons the fold changes are noted (`track_touched`).
    pub fn is_tracking(&self) -> bool {
        self.touched.is_some()
    }
}

impl PersonStore {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<PersonStore, StoreError> {
        let failed = |source| StoreError::Sqlite { path: path.to_path_buf(), source };
        let connection = rusqlite::Connection::open(path).map_err(failed)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
                 CREATE TABLE IF NOT EXISTS persons (id TEXT PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID;
                 CREATE TABLE IF NOT EXISTS aliases (id TEXT PRIMARY KEY, current TEXT NOT NULL) WITHOUT ROWID;",
            )
            .map_err(failed)?;
        Ok(PersonStore { connection, path: path.to_path_buf() })
    }

    fn failed(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite { path: self.path.clone(), source }
    }

    fn damaged(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Damaged { path: self.path.clone(), reason: reason.into() }
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        use rusqlite::OptionalExtension;
        self.connection
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| row.get(0))
            .optional()
            .map_err(|e| self.failed(e))
    }

    /// The position and hash the store reflects; `None` for an empty store
    /// or one of another layout.
    pub fn tip(&self) -> Result<Option<Tip>, StoreError> {
        let format = self.meta("format")?;
        if format.as_deref() != Some(&FORMAT_VERSION.to_le_bytes()[..]) {
            return Ok(None);
        }
        let Some(bytes) = self.meta("tip")? else { return Ok(None) };
        let (position, hash) = bytes.split_at_checked(8).ok_or_else(|| self.damaged("the tip"))?;
        let position = u64::from_le_bytes(position.try_into().map_err(|_| self.damaged("the tip"))?);
        let hash: Hash = hash.try_into().map_err(|_| self.damaged("the tip's hash"))?;
        Ok(Some(Tip { position, hash }))
    }

    /// The person an identity names, alone with the policies, at the
    /// store's tip: every question about them answers as on the whole
    /// projection. No such person: a coverage that knows nobody.
    pub fn coverage_of(&self, identity: &Identity) -> Result<Coverage, StoreError> {
        use rusqlite::OptionalExtension;
        let tip = self.tip()?.ok_or_else(|| self.damaged("no tip"))?;
        let mut coverage = Coverage { tip, policies: self.policies()?, ..Coverage::default() };
        let state: Option<Vec<u8>> = self
            .connection
            .query_row(
                "SELECT persons.state FROM aliases JOIN persons ON persons.id = aliases.current WHERE aliases.id = ?1",
                [identity.to_string()],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.failed(e))?;
        if let Some(bytes) = state {
            let person: PersonState =
                bincode::deserialize(&bytes).map_err(|e| self.damaged(format!("a person: {e}")))?;
            for known in std::iter::once(&person.current).chain(&person.former) {
                coverage.ids.insert(known.clone(), 0);
            }
            coverage.persons.push(person);
        }
        Ok(coverage)
    }

    fn policies(&self) -> Result<PolicyBook, StoreError> {
        let bytes = self.meta("policies")?.ok_or_else(|| self.damaged("no policies"))?;
        let records: Vec<PolicyRecord> =
            bincode::deserialize(&bytes).map_err(|e| self.damaged(format!("the policies: {e}")))?;
        let mut policies = PolicyBook::default();
        for record in records {
            policies.restore(record).map_err(|e| self.damaged(format!("a policy: {e}")))?;
        }
        Ok(policies)
    }

    /// Replaces the whole store with `coverage`, and tracks its changes
    /// from here on.
    pub fn write_all(&mut self, coverage: &mut Coverage) -> Result<(), StoreError> {
        let everyone: Vec<u32> = (0..coverage.persons.len() as u32).collect();
        self.write(coverage, &everyone, true)?;
        coverage.touched = Some(FxHashSet::default());
        Ok(())
    }

    /// Writes back the persons the fold changed since tracking started (or
    /// since the last write) and the tip; the store must have been at the
    /// tip tracking started from.
    pub fn write_touched(&mut self, coverage: &mut Coverage) -> Result<(), StoreError> {
        let touched: Vec<u32> = coverage.touched.take().map(|t| t.into_iter().collect()).unwrap_or_default();
        self.write(coverage, &touched, false)?;
        coverage.touched = Some(FxHashSet::default());
        Ok(())
    }

    fn write(&mut self, coverage: &Coverage, ids: &[u32], replace: bool) -> Result<(), StoreError> {
        let path = self.path.clone();
        let failed = |source| StoreError::Sqlite { path: path.clone(), source };
        let policies: Vec<&PolicyRecord> = coverage.policies.records().collect();
        let policies = bincode::serialize(&policies).map_err(|e| StoreError::Damaged {
            path: path.clone(),
            reason: format!("the policies do not encode: {e}"),
        })?;
        let mut tip = coverage.tip.position.to_le_bytes().to_vec();
        tip.extend_from_slice(&coverage.tip.hash);
        let transaction = self.connection.transaction().map_err(failed)?;
        if replace {
            transaction.execute_batch("DELETE FROM persons; DELETE FROM aliases;").map_err(failed)?;
        }
        {
            let mut person = transaction
                .prepare_cached("INSERT OR REPLACE INTO persons (id, state) VALUES (?1, ?2)")
                .map_err(failed)?;
            let mut alias = transaction
                .prepare_cached("INSERT OR REPLACE INTO aliases (id, current) VALUES (?1, ?2)")
                .map_err(failed)?;
            for &id in ids {
                let Some(state) = coverage.persons.get(id as usize) else { continue };
                // Merged into another (touched too): its identities point there.
                if state.merged_into.is_some() {
                    continue;
                }
                let bytes = bincode::serialize(state).map_err(|e| StoreError::Damaged {
                    path: path.clone(),
                    reason: format!("a person does not encode: {e}"),
                })?;
                let current = state.current.to_string();
                person.execute(rusqlite::params![current, bytes]).map_err(failed)?;
                for known in std::iter::once(&state.current).chain(&state.former) {
                    alias.execute(rusqlite::params![known.to_string(), current]).map_err(failed)?;
                }
            }
        }
        let mut meta =
            transaction.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)").map_err(failed)?;
        meta.execute(rusqlite::params!["format", FORMAT_VERSION.to_le_bytes().to_vec()]).map_err(failed)?;
        meta.execute(rusqlite::params!["policies", policies]).map_err(failed)?;
        meta.execute(rusqlite::params!["tip", tip]).map_err(failed)?;
        drop(meta);
        transaction.commit().map_err(failed)
    }
}
