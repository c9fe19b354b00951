//! Checkpoints of the coverage projection, catching up from the log, and the
//! state digest. The file format and the catch-up are those of every
//! projection (`crate::checkpoint`); this is the coverage state's body.

use super::policies::{PolicyBook, PolicyRecord};
use super::state::{PersonId, PersonState};
use super::walk::{self, PERSONS_PER_PARTITION};
use super::Coverage;
use crate::checkpoint::{self, CheckpointError, Format};
use crate::Tip;
use ledger::{Hash, Identity, LogReader};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The checkpoint format this build writes and reads. Bump it whenever the
/// state's shape changes: older files are then refused and rebuilt.
/// Version 2: proxy steps follow the lifecycle's one table (a credited
/// payment is no longer "returned"), so older states are rebuilt.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 2;
const FORMAT: Format = Format { kind: "coverage", magic: b"yibao-coverage\n\0", version: CHECKPOINT_FORMAT_VERSION };

/// Why a coverage checkpoint cannot be used, or catching up failed.
pub type CoverageError = CheckpointError;

/// The whole state, as written.
#[derive(Serialize)]
struct BodyRef<'a> {
    position: u64,
    head_hash: Hash,
    policies: Vec<&'a PolicyRecord>,
    persons: &'a [PersonState],
    ids: Vec<(&'a Identity, PersonId)>,
    proxies: Vec<(&'a str, PersonId, u16)>,
    notes: &'a [String],
    n_notes_dropped: u64,
}

/// The whole state, as read (the same shape as [`BodyRef`]).
#[derive(Deserialize)]
struct Body {
    position: u64,
    head_hash: Hash,
    policies: Vec<PolicyRecord>,
    persons: Vec<PersonState>,
    ids: Vec<(Identity, PersonId)>,
    proxies: Vec<(String, PersonId, u16)>,
    notes: Vec<String>,
    n_notes_dropped: u64,
}

/// The state in canonical form for the digest: persons sorted by identity,
/// maps as sorted lists, internal indexes replaced by identities. The
/// persons are digested by partitions of [`PERSONS_PER_PARTITION`] in that
/// order (on all cores; the partitions do not depend on the number of
/// threads), and the canonical form holds the partitions' digests. The
/// identity map is left out: it is exactly each person's current and former
/// identities, which the persons carry.
#[derive(Serialize)]
struct Canonical<'a> {
    /// Of the canonical form: 2 since the persons are digested by partition.
    form: u32,
    position: u64,
    policies: Vec<&'a PolicyRecord>,
    n_persons: u64,
    persons: Vec<Hash>,
    proxies: Vec<(&'a str, &'a Identity, u16)>,
    notes: &'a [String],
    n_notes_dropped: u64,
}

/// The canonical form's version (see [`Canonical`]).
const CANONICAL_FORM: u32 = 2;

impl Coverage {
    /// Writes the whole state to `path` (temp file, fsync, rename, fsync of
    /// the directory).
    pub fn save(&self, path: &Path) -> Result<(), CoverageError> {
        FORMAT.save(path, &self.body())
    }

    /// Reads a checkpoint written by [`Coverage::save`]; then
    /// [`Coverage::catch_up`] folds what the log gained since.
    pub fn load(path: &Path) -> Result<Coverage, CoverageError> {
        FORMAT.load(path, Coverage::from_body)
    }

    /// Folds the log's records after [`crate::Projection::position`], after
    /// checking that the record at that position is the one this state
    /// reflects. Returns the number of records folded.
    pub fn catch_up(&mut self, log: &dyn LogReader) -> Result<u64, CoverageError> {
        self.catch_up_to(log, u64::MAX)
    }

    /// As [`Coverage::catch_up`], stopping at `upto`. A state already past
    /// it is left as it is.
    pub fn catch_up_to(&mut self, log: &dyn LogReader, upto: u64) -> Result<u64, CoverageError> {
        let head_hash = self.tip.hash;
        checkpoint::catch_up(self, head_hash, log, upto)
    }

    /// SM3 over a canonical serialization of the state: equal for a rebuild
    /// from position 1, an incremental fold and a checkpoint caught up.
    pub fn digest(&self) -> [u8; 32] {
        const SERIALIZES: &str = "the state serializes into memory: no maps with non-string keys, no floats";
        let mut persons: Vec<&PersonState> = self.persons.iter().filter(|p| p.merged_into.is_none()).collect();
        persons.sort_unstable_by(|a, b| a.current.cmp(&b.current));
        let n_partitions = persons.len().div_ceil(PERSONS_PER_PARTITION);
        let partitions = walk::in_partitions(n_partitions, |partition| {
            checkpoint::sm3_of(&&persons[walk::partition_range(partition, persons.len())]).expect(SERIALIZES)
        });
        let current = |id: PersonId| &self.persons[self.live(id) as usize].current;
        let mut proxies: Vec<(&str, &Identity, u16)> =
            self.proxies.iter().map(|(application, &(id, year))| (&**application, current(id), year)).collect();
        proxies.sort();
        let canonical = Canonical {
            form: CANONICAL_FORM,
            position: self.tip.position,
            policies: self.policies.records().collect(),
            n_persons: persons.len() as u64,
            persons: partitions,
            proxies,
            notes: &self.notes,
            n_notes_dropped: self.n_notes_dropped,
        };
        checkpoint::sm3_of(&canonical).expect(SERIALIZES)
    }

    fn body(&self) -> BodyRef<'_> {
        let mut ids: Vec<(&Identity, PersonId)> = self.ids.iter().map(|(identity, &id)| (identity, id)).collect();
        ids.sort();
        let mut proxies: Vec<(&str, PersonId, u16)> =
            self.proxies.iter().map(|(application, &(id, year))| (&**application, id, year)).collect();
        proxies.sort();
        BodyRef {
            position: self.tip.position,
            head_hash: self.tip.hash,
            policies: self.policies.records().collect(),
            persons: &self.persons,
            ids,
            proxies,
            notes: &self.notes,
            n_notes_dropped: self.n_notes_dropped,
        }
    }

    fn from_body(body: Body) -> Result<Coverage, String> {
        let mut policies = PolicyBook::default();
        for record in body.policies {
            policies.restore(record)?;
        }
        let n_persons = body.persons.len();
        let in_range = |id: PersonId| (id as usize) < n_persons;
        if let Some((identity, _)) = body.ids.iter().find(|(_, id)| !in_range(*id)) {
            return Err(format!("identity {} names no person", identity.masked()));
        }
        if body.proxies.iter().any(|(_, id, _)| !in_range(*id))
            || body.persons.iter().any(|p| p.merged_into.is_some_and(|id| !in_range(id)))
        {
            return Err("a stored index names no person".into());
        }
        Ok(Coverage {
            tip: Tip { position: body.position, hash: body.head_hash },
            policies,
            persons: body.persons,
            ids: body.ids.into_iter().collect(),
            proxies: body
                .proxies
                .into_iter()
                .map(|(application, id, year)| (application.into_boxed_str(), (id, year)))
                .collect(),
            notes: body.notes,
            n_notes_dropped: body.n_notes_dropped,
            touched: None,
            lookups: super::cache::Lookups::keeping(),
        })
    }
}
