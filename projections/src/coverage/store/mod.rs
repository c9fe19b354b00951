//! The coverage projection kept per person on disk (SQLite, chosen by
//! `yibao-bench store`) or in a PostgreSQL database several service
//! processes share (`backend.rs`: the few operations the two differ in):
//! each person's record as the fold keeps it, every
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
//!
//! Several processes may catch one store up at once (replicas on one
//! PostgreSQL database, or processes on one SQLite file): each chunk is
//! written only if the store is still at the tip it was folded from,
//! checked under the write lock, and a store not on the log is emptied
//! only if no other process moved it meanwhile; so no chunk is applied
//! twice and none is lost.

mod backend;
mod catch_up;
mod family;
mod load;
mod postgresql;
mod sqlite;

use super::policies::{PolicyBook, PolicyRecord};
use super::state::PersonState;
use super::Coverage;
use crate::family::Family;
use crate::Tip;
use backend::{Backend, Clear, Guard, Param, Row, Rows, Stored};
use family::FamilyRows;
use ledger::{Hash, Identity, LedgerError};
use rustc_hash::FxHashSet;
use std::collections::BTreeMap;
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
    /// `location` names the file, or the database without its password.
    #[error("the person store {location} holds a record that does not read ({reason}); it is rebuilt from the log")]
    Damaged { location: String, reason: String },
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
    #[error("reading the log to catch the person store {location} up")]
    Log {
        location: String,
        #[source]
        source: LedgerError,
    },
}

/// How `PersonStore::write` treats what the store holds.
#[derive(Clone, Copy)]
enum Write<'a> {
    /// Everything is replaced.
    Replace,
    /// The persons given are written over theirs.
    Update,
    /// As `Update`, only if the store is still at this tip.
    From(Tip),
    /// Everything (the tip too) is replaced, only if the store still
    /// holds these layout and tip rows (another process may have caught
    /// it up meanwhile).
    Reset(&'a Stored),
}

/// An open person store, in a SQLite file or a PostgreSQL database.
pub struct PersonStore {
    backend: Backend,
    /// The policies and notes as last read or written, with their stored
    /// bytes: a process that catches up after every write (the service)
    /// neither parses the policy documents nor rewrites the notes each time.
    meta_read: std::cell::RefCell<MetaRead>,
}

// A store is handed between threads (one at a time): it stays `Send`.
const _: () = {
    const fn send<T: Send>() {}
    send::<PersonStore>()
};

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
    /// Opens (creating) the store in the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<PersonStore, StoreError> {
        let backend = Backend::Sqlite(sqlite::Sqlite::open(path)?);
        Ok(PersonStore { backend, meta_read: Default::default() })
    }

    /// Opens (creating its schema `yibao_projection` and its tables) the
    /// store in the PostgreSQL database at `url`: the projections several
    /// service processes share.
    pub fn connect(url: &str) -> Result<PersonStore, StoreError> {
        let backend = Backend::Postgres(Box::new(postgresql::Postgres::connect(url)?));
        Ok(PersonStore { backend, meta_read: Default::default() })
    }

    /// Limits SQLite's page cache of this connection (64 MiB when
    /// opened): a process holding several connections keeps their sum
    /// within its budget. Nothing on PostgreSQL (the server's
    /// `shared_buffers` is its cache).
    pub fn set_page_cache_kib(&self, kib: u32) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.set_page_cache_kib(kib),
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// Runs `read` in one read transaction: everything it reads is the
    /// store at one tip, while another connection may write meanwhile
    /// (a listing walking the store a step at a time). On PostgreSQL a
    /// REPEATABLE READ READ ONLY transaction.
    pub fn in_snapshot<T>(&self, read: impl FnOnce(&PersonStore) -> T) -> Result<T, StoreError> {
        self.backend.snapshot(|| read(self))
    }

    /// Where the store is: the file, or the database without password
    /// (`postgres://user@host:port/db`).
    pub fn location(&self) -> String {
        self.backend.location()
    }

    fn damaged(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Damaged { location: self.location(), reason: reason.into() }
    }

    /// Every row of `sql` with `params`, each shown to `visit`.
    fn rows(
        &self,
        sql: &str,
        params: &[Param<'_>],
        mut visit: impl FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.backend.query(sql, params, &mut visit)
    }

    /// The first row of `sql` with `params`.
    fn row(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, StoreError> {
        let mut first = None;
        self.rows(sql, params, |row| {
            first.get_or_insert(row);
            Ok(())
        })?;
        Ok(first)
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self.row("SELECT value FROM meta WHERE key = $1", &[Param::Text(key)])?;
        row.map(|mut row| row.bytes(0).ok_or_else(|| self.damaged(format!("the meta row {key}")))).transpose()
    }

    /// The layout and tip rows as stored, read together.
    fn stored(&self) -> Result<Stored, StoreError> {
        let mut stored = Stored::default();
        self.rows(backend::STORED_SQL, &[], |mut row| {
            let (Some(key), Some(value)) = (row.text(0), row.bytes(1)) else {
                return Err(self.damaged("the meta rows"));
            };
            stored.add(&key, value);
            Ok(())
        })?;
        Ok(stored)
    }

    /// The position and hash the store reflects; `None` for an empty store
    /// or one of another layout.
    pub fn tip(&self) -> Result<Option<Tip>, StoreError> {
        self.tip_of(&self.stored()?)
    }

    /// The tip `stored` holds; `None` when empty or of another layout.
    fn tip_of(&self, stored: &Stored) -> Result<Option<Tip>, StoreError> {
        if stored.format.as_deref() != Some(&FORMAT_VERSION.to_le_bytes()[..]) {
            return Ok(None);
        }
        let Some(bytes) = &stored.tip else { return Ok(None) };
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
        let sql = "SELECT persons.id, persons.state FROM aliases JOIN persons ON persons.id = aliases.current
                   WHERE aliases.id = $1";
        let Some(mut row) = self.row(sql, &[Param::Text(&identity.to_string())])? else { return Ok(None) };
        let (Some(key), Some(bytes)) = (row.text(0), row.bytes(1)) else { return Err(self.damaged("a person")) };
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

    /// Empties the store: it is then caught up from position 1 (what a
    /// store of another ledger, or one that does not read, needs; a
    /// database cannot be deleted as a file can).
    pub fn reset(&mut self) -> Result<(), StoreError> {
        self.backend.write(&Guard::Always, Clear::Everything, &Rows::default())?;
        *self.meta_read.borrow_mut() = MetaRead::default();
        Ok(())
    }

    /// Empties the store and writes it at position 0 in one transaction,
    /// unless it no longer holds `seen` (another process reset it or
    /// caught it up meanwhile): then `false`.
    fn reset_from(&mut self, seen: &Stored) -> Result<bool, StoreError> {
        let empty = Family::default();
        self.write(&Coverage::default(), &[], &FamilyRows::whole(&empty), Write::Reset(seen))
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
        how: Write<'_>,
    ) -> Result<bool, StoreError> {
        let encoding = |what: &str, e: bincode::Error| self.damaged(format!("{what} does not encode: {e}"));
        let policies: Vec<&PolicyRecord> = coverage.policies.records().collect();
        let policies = bincode::serialize(&policies).map_err(|e| encoding("the policies", e))?;
        let notes =
            bincode::serialize(&(&coverage.notes, coverage.n_notes_dropped)).map_err(|e| encoding("the notes", e))?;
        let mut rows = Rows::default();
        person_rows(coverage, ids, &mut rows).map_err(|e| encoding("a person", e))?;
        family::add_rows(family, &mut rows).map_err(|(what, e)| encoding(what, e))?;
        // Unchanged since this connection read them for a chunk (whose tip
        // is checked in the write: nobody wrote in between): not written
        // again, as they are in most chunks.
        let keep = |key: &str, bytes: &[u8]| matches!(how, Write::From(_)) && self.meta_unchanged(key, bytes);
        let (policies_kept, notes_kept) = (keep("policies", &policies), keep("notes", &notes));
        rows.meta.push(("format", FORMAT_VERSION.to_le_bytes().to_vec()));
        if !policies_kept {
            rows.meta.push(("policies", policies.clone()));
        }
        if !notes_kept {
            rows.meta.push(("notes", notes.clone()));
        }
        rows.meta.push(("tip", tip_bytes(coverage.tip)));
        let (guard, clear) = match how {
            Write::Replace => (Guard::Always, Clear::Records),
            Write::Update => (Guard::Always, Clear::Nothing),
            Write::From(base) => {
                let at_base =
                    Stored { format: Some(FORMAT_VERSION.to_le_bytes().to_vec()), tip: Some(tip_bytes(base)) };
                (Guard::Unmoved(at_base), Clear::Nothing)
            }
            Write::Reset(seen) => (Guard::Unmoved(seen.clone()), Clear::Everything),
        };
        if !self.backend.write(&guard, clear, &rows)? {
            return Ok(false);
        }
        let mut read = self.meta_read.borrow_mut();
        read.policies = Some((policies, coverage.policies.clone()));
        if !notes_kept {
            read.notes = Some((notes, (coverage.notes.clone(), coverage.n_notes_dropped)));
        }
        Ok(true)
    }
}

/// A tip as stored: the position (8 bytes, little-endian), then the hash.
fn tip_bytes(tip: Tip) -> Vec<u8> {
    let mut bytes = tip.position.to_le_bytes().to_vec();
    bytes.extend_from_slice(&tip.hash);
    bytes
}

/// The rows of persons `ids` of `coverage`: each live person's under their
/// current identity, every identity they had pointing there, the rows
/// under identities they no longer go by (removed), and the applications
/// of which they are the member.
fn person_rows(coverage: &Coverage, ids: &[u32], rows: &mut Rows) -> Result<(), bincode::Error> {
    // By key, each once: the B-tree's pages are visited once each, not at
    // random (a chunk's persons are scattered over the store).
    let live: BTreeMap<String, &PersonState> = ids
        .iter()
        .filter_map(|&id| coverage.persons.get(id as usize))
        // Merged into another (written too): its identities point there.
        .filter(|state| state.merged_into.is_none())
        .map(|state| (state.current.to_string(), state))
        .collect();
    let mut aliases: BTreeMap<String, String> = BTreeMap::new();
    rows.persons.reserve(live.len());
    for (current, state) in live {
        // A row under an identity the person no longer goes by
        // (converted): an identity names one person only, so the row was
        // theirs.
        let former = state.former.iter().filter(|former| **former != state.current);
        rows.renamed.extend(former.map(Identity::to_string));
        for known in std::iter::once(&state.current).chain(&state.former) {
            aliases.insert(known.to_string(), current.clone());
        }
        rows.persons.push((current, bincode::serialize(state)?));
    }
    rows.aliases = aliases.into_iter().collect();
    let written: FxHashSet<u32> = ids.iter().copied().collect();
    for (application, &(member, year)) in &coverage.proxies {
        let member = coverage.live(member);
        if written.contains(&member) {
            let current = coverage.persons[member as usize].current.to_string();
            rows.proxies.push((application.to_string(), current, i64::from(year)));
        }
    }
    Ok(())
}
