//! Checkpoints of the coverage projection, catching up from the log, and the
//! state digest.
//!
//! A checkpoint file is `MAGIC ++ format version (u32 LE) ++ body ++
//! SM3(body)`, the body being bincode (varint) of the whole state with the
//! log position and head hash it reflects. It is written to a temporary
//! sibling, fsynced, renamed over the old one and the directory fsynced, so
//! a crash leaves the old checkpoint or the new one, never half of one. A
//! damaged, foreign or old-format file is reported as such: the caller
//! rebuilds from the log, which is always possible.

use super::policies::{PolicyBook, PolicyRecord};
use super::state::{PersonId, PersonState};
use super::Coverage;
use crate::Projection;
use bincode::Options;
use ledger::{Hash, Identity, LedgerError, SledLog};
use serde::{Deserialize, Serialize};
use sm3::{Digest, Sm3};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 16] = b"yibao-coverage\n\0";
/// The checkpoint format this build writes and reads. Bump it whenever the
/// state's shape changes: older files are then refused and rebuilt.
/// Version 2: proxy steps follow the lifecycle's one table (a credited
/// payment is no longer "returned"), so older states are rebuilt.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 2;
const HEADER_BYTES: usize = MAGIC.len() + 4;
const CHECKSUM_BYTES: usize = 32;
const WRITE_BUFFER_BYTES: usize = 1 << 16;

/// Why a checkpoint cannot be used, or catching up failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoverageError {
    #[error("checkpoint {}: I/O failed", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a coverage checkpoint; rebuild the projection", path.display())]
    NotACheckpoint { path: PathBuf },
    #[error("checkpoint {} has format version {found}, this build reads version {expected}; rebuild the projection", path.display())]
    OldFormat { path: PathBuf, found: u32, expected: u32 },
    #[error("checkpoint {} is damaged: {reason}; rebuild the projection", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("the projection at position {position} does not match the log: {reason}; rebuild the projection")]
    Diverged { position: u64, reason: String },
    #[error("reading the log failed")]
    Log(#[from] LedgerError),
}

impl CoverageError {
    /// True when the remedy is a rebuild from the log (missing, foreign,
    /// old, damaged or diverged checkpoint); false for I/O and log failures.
    pub fn needs_rebuild(&self) -> bool {
        match self {
            CoverageError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            CoverageError::NotACheckpoint { .. }
            | CoverageError::OldFormat { .. }
            | CoverageError::Damaged { .. }
            | CoverageError::Diverged { .. } => true,
            CoverageError::Log(_) => false,
        }
    }
}

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
/// identity map is left out: it is exactly each person's current and former
/// identities, which the persons carry.
#[derive(Serialize)]
struct Canonical<'a> {
    position: u64,
    policies: Vec<&'a PolicyRecord>,
    persons: Vec<&'a PersonState>,
    proxies: Vec<(&'a str, &'a Identity, u16)>,
    notes: &'a [String],
    n_notes_dropped: u64,
}

/// Feeds written bytes to SM3 (and on to `inner`, if any).
struct HashingWriter<W> {
    inner: W,
    hasher: Sm3,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.hasher.update(&bytes[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Coverage {
    /// Writes the whole state to `path` (temp file, fsync, rename, fsync of
    /// the directory).
    pub fn save(&self, path: &Path) -> Result<(), CoverageError> {
        let io = |source| CoverageError::Io { path: path.to_path_buf(), source };
        let temporary = temporary_path(path);
        let mut file = File::create(&temporary).map_err(io)?;
        file.write_all(MAGIC).map_err(io)?;
        file.write_all(&CHECKPOINT_FORMAT_VERSION.to_le_bytes()).map_err(io)?;
        // Buffer in front of the hasher: bincode writes field by field.
        let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, HashingWriter { inner: file, hasher: Sm3::new() });
        bincode::DefaultOptions::new()
            .serialize_into(&mut out, &self.body())
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        let HashingWriter { inner: mut file, hasher } = out.into_inner().map_err(|e| io(e.into_error()))?;
        let checksum: [u8; 32] = hasher.finalize().into();
        file.write_all(&checksum).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&temporary, path).map_err(io)?;
        sync_parent(path).map_err(io)
    }

    /// Reads a checkpoint written by [`Coverage::save`]; then
    /// [`Coverage::catch_up`] folds what the log gained since.
    pub fn load(path: &Path) -> Result<Coverage, CoverageError> {
        let bytes = std::fs::read(path).map_err(|source| CoverageError::Io { path: path.to_path_buf(), source })?;
        let damaged = |reason: String| CoverageError::Damaged { path: path.to_path_buf(), reason };
        if bytes.len() < HEADER_BYTES + CHECKSUM_BYTES || !bytes.starts_with(MAGIC) {
            return Err(CoverageError::NotACheckpoint { path: path.to_path_buf() });
        }
        let mut version = [0u8; 4];
        version.copy_from_slice(&bytes[MAGIC.len()..HEADER_BYTES]);
        let found = u32::from_le_bytes(version);
        if found != CHECKPOINT_FORMAT_VERSION {
            return Err(CoverageError::OldFormat {
                path: path.to_path_buf(),
                found,
                expected: CHECKPOINT_FORMAT_VERSION,
            });
        }
        let (body, checksum) = bytes[HEADER_BYTES..].split_at(bytes.len() - HEADER_BYTES - CHECKSUM_BYTES);
        if ledger::envelope::sm3(body).as_slice() != checksum {
            return Err(damaged("its SM3 checksum does not match".into()));
        }
        let body: Body = bincode::DefaultOptions::new()
            .with_limit(body.len() as u64)
            .deserialize(body)
            .map_err(|e| damaged(format!("it does not decode: {e}")))?;
        Coverage::from_body(body).map_err(damaged)
    }

    /// Folds the log's records after [`Projection::position`], after
    /// checking that the record at that position is the one this state
    /// reflects. Returns the number of records folded.
    pub fn catch_up(&mut self, log: &SledLog) -> Result<u64, CoverageError> {
        let head = log.durable_head();
        if self.position > head.position {
            return Err(CoverageError::Diverged {
                position: self.position,
                reason: format!("the log ends at position {}", head.position),
            });
        }
        if self.position > 0 {
            let mut found = None;
            log.scan(self.position, self.position, |envelope| {
                found = Some(envelope.hash);
                Ok(())
            })?;
            if found != Some(self.head_hash) {
                return Err(CoverageError::Diverged {
                    position: self.position,
                    reason: "the log's record there has another hash".into(),
                });
            }
        }
        let mut n_folded = 0u64;
        log.scan(self.position + 1, head.position, |envelope| {
            self.apply(&envelope);
            n_folded += 1;
            Ok(())
        })?;
        Ok(n_folded)
    }

    /// SM3 over a canonical serialization of the state: equal for a rebuild
    /// from position 1, an incremental fold and a checkpoint caught up.
    pub fn digest(&self) -> [u8; 32] {
        let mut persons: Vec<&PersonState> = self.persons.iter().filter(|p| p.merged_into.is_none()).collect();
        persons.sort_by(|a, b| a.current.cmp(&b.current));
        let current = |id: PersonId| &self.persons[self.live(id) as usize].current;
        let mut proxies: Vec<(&str, &Identity, u16)> =
            self.proxies.iter().map(|(application, &(id, year))| (&**application, current(id), year)).collect();
        proxies.sort();
        let canonical = Canonical {
            position: self.position,
            policies: self.policies.records().collect(),
            persons,
            proxies,
            notes: &self.notes,
            n_notes_dropped: self.n_notes_dropped,
        };
        let hashing = HashingWriter { inner: std::io::sink(), hasher: Sm3::new() };
        let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, hashing);
        bincode::DefaultOptions::new()
            .serialize_into(&mut out, &canonical)
            .expect("the state serializes into memory: no maps with non-string keys, no floats");
        // Flushing into a sink cannot fail; should it, the parts are whole.
        let hashing = out.into_inner().unwrap_or_else(|error| error.into_inner().into_parts().0);
        hashing.hasher.finalize().into()
    }

    fn body(&self) -> BodyRef<'_> {
        let mut ids: Vec<(&Identity, PersonId)> = self.ids.iter().map(|(identity, &id)| (identity, id)).collect();
        ids.sort();
        let mut proxies: Vec<(&str, PersonId, u16)> =
            self.proxies.iter().map(|(application, &(id, year))| (&**application, id, year)).collect();
        proxies.sort();
        BodyRef {
            position: self.position,
            head_hash: self.head_hash,
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
            position: body.position,
            head_hash: body.head_hash,
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
        })
    }
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// fsyncs the directory holding `path`, so the rename is durable.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}
