//! The coverage projection kept per person on disk (SQLite, chosen by
//! `yibao-bench store`): each person's record as the fold keeps it, every
//! identity they had pointing at it, every proxy application id with its
//! member and year, the policies, the ledger notes, and the tip (position
//! and hash) the whole reflects, written in one transaction. A lookup reads
//! one person into a coverage of one (`coverage_of`), whose every answer
//! about that person is the whole projection's.
//!
//! The store is brought to a position by folding the log in chunks
//! (`catch_up`, `catch_up.rs`): each chunk is folded by the one
//! `Coverage::fold` into a small coverage holding just the persons and
//! applications it names, loaded from the store, and written back with the
//! new tip — so memory is bounded by the chunk, not by the ledger, and the
//! store is never ahead of what the fold decided. The family projection is
//! kept beside it per binding and per application (`family.rs`), folded
//! in the same chunks and written in the same transactions, under the one
//! tip. A whole projection can
//! also be written (`write_all`, or the persons its fold changed since the
//! store's tip, `write_touched`).

mod catch_up;
mod family;
mod load;

use super::policies::{PolicyBook, PolicyRecord};
use super::state::PersonState;
use super::Coverage;
use crate::family::Family;
use crate::Tip;
use family::FamilyRows;
use ledger::{Hash, Identity, LedgerError};
use rustc_hash::FxHashSet;
use std::path::{Path, PathBuf};

pub use catch_up::{Changed, DEFAULT_CHUNK_ENVELOPES};
pub use load::Named;

/// The store's layout; another is rebuilt. Version 2: proxy applications
/// and the ledger notes are kept, so the store folds on its own. Version 3:
/// the family projection too, per binding and per application.
const FORMAT_VERSION: i64 = 3;

/// The person store failed, or holds what this build cannot read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the person store {}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the person store {} holds a record that does not read ({reason}); it is rebuilt from the log", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("the person store {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The PostgreSQL database holding the store failed; `location` names
    /// it without its password.
    #[error("the person store in {location}: {detail}")]
    Database { location: String, detail: String },
    /// Reading the log to catch the store up failed; the store is as it was.
    #[error("reading the log to catch the person store {} up", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: LedgerError,
    },
}

/// How `PersonStore::write` treats what the store holds.
#[derive(Clone, Copy)]
enum Write {
    /// Everything is replaced.
    Replace,
    /// The persons given are written over theirs.
    Update,
    /// As `Update`, only if the store is still at this tip.
    From(Tip),
}

/// An open person store.
pub struct PersonStore {
    connection: rusqlite::Connection,
    path: PathBuf,
    /// The policies and notes as last read or written, with their stored
    /// bytes: a process that catches up after every write (the service)
    /// neither parses the policy documents nor rewrites the notes each time.
    meta_read: std::cell::RefCell<MetaRead>,
}

/// The ledger-wide notes and the number dropped past the cap.
type Notes = (Vec<String>, u64);

#[derive(Default)]
struct MetaRead {
    policies: Option<(Vec<u8>, PolicyBook)>,
    notes: Option<(Vec<u8>, Notes)>,
}

impl Coverage {
    /// This coverage of persons read from a person store, at the store's
    /// later `tip`: for a reader that knows no fact in between changed
    /// them or the policies (the service's cache drops what each catch-up
    /// reports `Changed`).
    pub fn at_tip(&self, tip: Tip) -> Coverage {
        Coverage { tip, touched: None, ..self.clone() }
    }

    /// About the bytes this coverage's persons take in memory, beside the
    /// policies it shares (`PolicyBook`): three times their stored size,
    /// for the vectors and maps the stored form flattens, and a map entry
    /// per identity. What the service's cache is bounded by.
    pub fn estimated_person_bytes(&self) -> usize {
        const BYTES_PER_IDENTITY: usize = 96;
        const BYTES_PER_COVERAGE: usize = 512;
        let persons: u64 = self.persons.iter().map(|person| bincode::serialized_size(person).unwrap_or(0)).sum();
        let persons = usize::try_from(persons).unwrap_or(usize::MAX);
        persons.saturating_mul(3) + self.ids.len() * BYTES_PER_IDENTITY + BYTES_PER_COVERAGE
    }

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
                 PRAGMA cache_size = -65536;
                 CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
                 CREATE TABLE IF NOT EXISTS persons (id TEXT PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID;
                 CREATE TABLE IF NOT EXISTS aliases (id TEXT PRIMARY KEY, current TEXT NOT NULL) WITHOUT ROWID;
                 CREATE TABLE IF NOT EXISTS proxies (id TEXT PRIMARY KEY, person TEXT NOT NULL, year INTEGER NOT NULL) WITHOUT ROWID;",
            )
            .map_err(failed)?;
        connection.execute_batch(family::SCHEMA).map_err(failed)?;
        Ok(PersonStore { connection, path: path.to_path_buf(), meta_read: Default::default() })
    }

    /// Opens (creating its tables) the store in the PostgreSQL database at
    /// `url`: the projections several service processes share.
    pub fn connect(url: &str) -> Result<PersonStore, StoreError> {
        Err(StoreError::Database {
            location: url.to_string(),
            detail: "the PostgreSQL person store is not built yet".into(),
        })
    }

    /// Limits SQLite's page cache of this connection (64 MiB when
    /// opened): a process holding several connections keeps their sum
    /// within its budget.
    pub fn set_page_cache_kib(&self, kib: u32) -> Result<(), StoreError> {
        self.connection.execute_batch(&format!("PRAGMA cache_size = -{kib};")).map_err(|e| self.failed(e))
    }

    /// Runs `read` in one read transaction: everything it reads is the
    /// store at one tip, while another connection may write meanwhile
    /// (a listing walking the store a step at a time).
    pub fn in_snapshot<T>(&self, read: impl FnOnce(&PersonStore) -> T) -> Result<T, StoreError> {
        // Deferred and only read: dropped at the end, which rolls nothing back.
        let snapshot = self.connection.unchecked_transaction().map_err(|e| self.failed(e))?;
        // The snapshot starts at the first read: taken now, before `read`.
        snapshot.query_row("SELECT count(*) FROM meta", [], |_| Ok(())).map_err(|e| self.failed(e))?;
        Ok(read(self))
    }

    /// Where the store is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn failed(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite { path: self.path.clone(), source }
    }

    fn damaged(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Damaged { path: self.path.clone(), reason: reason.into() }
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        use rusqlite::OptionalExtension;
        // Prepared once per connection: a lookup or a small catch-up runs
        // these a few times each.
        self.connection
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut statement| statement.query_row([key], |row| row.get(0)).optional())
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
        let tip = self.tip()?.ok_or_else(|| self.damaged("no tip"))?;
        let mut coverage = Coverage { tip, policies: self.policies()?, ..Coverage::default() };
        if let Some((_, person)) = self.person_named(identity)? {
            for known in std::iter::once(&person.current).chain(&person.former) {
                coverage.ids.insert(known.clone(), 0);
            }
            coverage.persons.push(person);
        }
        Ok(coverage)
    }

    /// The live person an identity names (any identity they had), with the
    /// key of their row.
    fn person_named(&self, identity: &Identity) -> Result<Option<(String, PersonState)>, StoreError> {
        use rusqlite::OptionalExtension;
        let row: Option<(String, Vec<u8>)> = self
            .connection
            .prepare_cached(
                "SELECT persons.id, persons.state FROM aliases JOIN persons ON persons.id = aliases.current WHERE aliases.id = ?1",
            )
            .and_then(|mut statement| {
                statement.query_row([identity.to_string()], |row| Ok((row.get(0)?, row.get(1)?))).optional()
            })
            .map_err(|e| self.failed(e))?;
        let Some((key, bytes)) = row else { return Ok(None) };
        let person: PersonState = bincode::deserialize(&bytes).map_err(|e| self.damaged(format!("a person: {e}")))?;
        Ok(Some((key, person)))
    }

    fn policies(&self) -> Result<PolicyBook, StoreError> {
        let Some(bytes) = self.meta("policies")? else { return Ok(PolicyBook::default()) };
        if let Some((read, policies)) = &self.meta_read.borrow().policies {
            if *read == bytes {
                return Ok(policies.clone());
            }
        }
        let records: Vec<PolicyRecord> =
            bincode::deserialize(&bytes).map_err(|e| self.damaged(format!("the policies: {e}")))?;
        let mut policies = PolicyBook::default();
        for record in records {
            policies.restore(record).map_err(|e| self.damaged(format!("a policy: {e}")))?;
        }
        self.meta_read.borrow_mut().policies = Some((bytes, policies.clone()));
        Ok(policies)
    }

    /// The ledger-wide notes and the number dropped past the cap.
    fn notes(&self) -> Result<Notes, StoreError> {
        let Some(bytes) = self.meta("notes")? else { return Ok((Vec::new(), 0)) };
        if let Some((read, notes)) = &self.meta_read.borrow().notes {
            if *read == bytes {
                return Ok(notes.clone());
            }
        }
        let notes: Notes = bincode::deserialize(&bytes).map_err(|e| self.damaged(format!("the notes: {e}")))?;
        self.meta_read.borrow_mut().notes = Some((bytes, notes.clone()));
        Ok(notes)
    }

    /// Whether `bytes` are what the store holds under `key` as this
    /// connection last read or wrote it (then they need not be written).
    fn meta_unchanged(&self, key: &str, bytes: &[u8]) -> bool {
        let read = self.meta_read.borrow();
        let known = match key {
            "policies" => read.policies.as_ref().map(|(known, _)| known),
            _ => read.notes.as_ref().map(|(known, _)| known),
        };
        known.is_some_and(|known| known.as_slice() == bytes)
    }

    /// Replaces the whole store with `coverage` and `family` (at the same
    /// position), and tracks coverage's changes from here on.
    pub fn write_all(&mut self, coverage: &mut Coverage, family: &Family) -> Result<(), StoreError> {
        let everyone: Vec<u32> = (0..coverage.persons.len() as u32).collect();
        self.write(coverage, &everyone, &FamilyRows::whole(family), Write::Replace)?;
        coverage.touched = Some(FxHashSet::default());
        Ok(())
    }

    /// Writes back the persons the fold changed since tracking started (or
    /// since the last write), their proxy applications, the notes, every
    /// record of `family` (at the same position) and the tip; the store
    /// must have been at the tip tracking started from.
    pub fn write_touched(&mut self, coverage: &mut Coverage, family: &Family) -> Result<(), StoreError> {
        let touched: Vec<u32> = coverage.touched.take().map(|t| t.into_iter().collect()).unwrap_or_default();
        self.write(coverage, &touched, &FamilyRows::whole(family), Write::Update)?;
        coverage.touched = Some(FxHashSet::default());
        Ok(())
    }

    /// Writes back the persons and the family records a chunk's fold
    /// changed, and its tip, when the store is still at `base` (another
    /// process may have moved it meanwhile: then nothing is written and
    /// `false` returned).
    fn write_chunk(&mut self, chunk: &Coverage, family: &FamilyRows<'_>, base: Tip) -> Result<bool, StoreError> {
        let touched: Vec<u32> = chunk.touched.iter().flatten().copied().collect();
        self.write(chunk, &touched, family, Write::From(base))
    }

    /// Empties the store (another ledger's, or another layout): it is then
    /// caught up from position 1.
    fn clear(&mut self) -> Result<(), StoreError> {
        self.connection
            .execute_batch(
                "BEGIN; DELETE FROM meta; DELETE FROM persons; DELETE FROM aliases; DELETE FROM proxies;
                 DELETE FROM bindings; DELETE FROM applications; COMMIT;",
            )
            .map_err(|e| self.failed(e))
    }

    /// Writes persons `ids` of `coverage` (their rows, every identity
    /// they had, the applications of which they are the member), the
    /// policies, the notes, the family's records and the tip in one
    /// transaction.
    fn write(
        &mut self,
        coverage: &Coverage,
        ids: &[u32],
        family: &FamilyRows<'_>,
        how: Write,
    ) -> Result<bool, StoreError> {
        let path = self.path.clone();
        let failed = |source| StoreError::Sqlite { path: path.clone(), source };
        let encoding = |what: &str, e: bincode::Error| StoreError::Damaged {
            path: path.clone(),
            reason: format!("{what} does not encode: {e}"),
        };
        let policies: Vec<&PolicyRecord> = coverage.policies.records().collect();
        let policies = bincode::serialize(&policies).map_err(|e| encoding("the policies", e))?;
        let notes =
            bincode::serialize(&(&coverage.notes, coverage.n_notes_dropped)).map_err(|e| encoding("the notes", e))?;
        let mut tip = coverage.tip.position.to_le_bytes().to_vec();
        tip.extend_from_slice(&coverage.tip.hash);
        let written: FxHashSet<u32> = ids.iter().copied().collect();
        // Unchanged since this connection read them for a chunk (whose tip
        // is checked below: nobody wrote in between): not written again,
        // as they are in most chunks.
        let keep = |key: &str, bytes: &[u8]| matches!(how, Write::From(_)) && self.meta_unchanged(key, bytes);
        let (policies_kept, notes_kept) = (keep("policies", &policies), keep("notes", &notes));
        // Immediate: the tip read below stays the store's until the commit.
        let transaction =
            self.connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(failed)?;
        if let Write::From(base) = how {
            use rusqlite::OptionalExtension;
            let stored: Option<Vec<u8>> = transaction
                .query_row("SELECT value FROM meta WHERE key = 'tip'", [], |row| row.get(0))
                .optional()
                .map_err(failed)?;
            let mut expected = base.position.to_le_bytes().to_vec();
            expected.extend_from_slice(&base.hash);
            if stored.is_some_and(|stored| stored != expected) {
                return Ok(false);
            }
        }
        if matches!(how, Write::Replace) {
            transaction
                .execute_batch(
                    "DELETE FROM persons; DELETE FROM aliases; DELETE FROM proxies;
                     DELETE FROM bindings; DELETE FROM applications;",
                )
                .map_err(failed)?;
        }
        {
            let mut person = transaction
                .prepare_cached("INSERT OR REPLACE INTO persons (id, state) VALUES (?1, ?2)")
                .map_err(failed)?;
            let mut renamed = transaction.prepare_cached("DELETE FROM persons WHERE id = ?1").map_err(failed)?;
            let mut alias = transaction
                .prepare_cached("INSERT OR REPLACE INTO aliases (id, current) VALUES (?1, ?2)")
                .map_err(failed)?;
            // In key order: the B-tree's pages are visited once each, not
            // at random (a chunk's persons are scattered over the store).
            let mut live: Vec<(String, &PersonState)> = ids
                .iter()
                .filter_map(|&id| coverage.persons.get(id as usize))
                // Merged into another (written too): its identities point there.
                .filter(|state| state.merged_into.is_none())
                .map(|state| (state.current.to_string(), state))
                .collect();
            live.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (current, state) in live {
                let bytes = bincode::serialize(state).map_err(|e| encoding("a person", e))?;
                // A row under an identity the person no longer goes by
                // (converted): an identity names one person only, so the
                // row was theirs.
                for former in state.former.iter().filter(|former| **former != state.current) {
                    renamed.execute([former.to_string()]).map_err(failed)?;
                }
                person.execute(rusqlite::params![current, bytes]).map_err(failed)?;
                for known in std::iter::once(&state.current).chain(&state.former) {
                    alias.execute(rusqlite::params![known.to_string(), current]).map_err(failed)?;
                }
            }
            let mut proxy = transaction
                .prepare_cached("INSERT OR REPLACE INTO proxies (id, person, year) VALUES (?1, ?2, ?3)")
                .map_err(failed)?;
            for (application, &(member, year)) in &coverage.proxies {
                let member = coverage.live(member);
                if written.contains(&member) {
                    let current = coverage.persons[member as usize].current.to_string();
                    proxy.execute(rusqlite::params![&**application, current, year]).map_err(failed)?;
                }
            }
        }
        family::write_rows(&transaction, family, &failed, &encoding)?;
        let mut meta =
            transaction.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)").map_err(failed)?;
        meta.execute(rusqlite::params!["format", FORMAT_VERSION.to_le_bytes().to_vec()]).map_err(failed)?;
        if !policies_kept {
            meta.execute(rusqlite::params!["policies", &policies]).map_err(failed)?;
        }
        if !notes_kept {
            meta.execute(rusqlite::params!["notes", &notes]).map_err(failed)?;
        }
        meta.execute(rusqlite::params!["tip", tip]).map_err(failed)?;
        drop(meta);
        transaction.commit().map_err(failed)?;
        let mut read = self.meta_read.borrow_mut();
        read.policies = Some((policies, coverage.policies.clone()));
        if !notes_kept {
            read.notes = Some((notes, (coverage.notes.clone(), coverage.n_notes_dropped)));
        }
        Ok(true)
    }
}
