//! Checkpoint files of projections, and catching a projection up from one.
//!
//! A checkpoint file is `MAGIC ++ format version (u32 LE) ++ body ++
//! SM3(body)`, the body being bincode (varint) of the state with the log
//! position and head hash it reflects. It is written to a temporary
//! sibling, fsynced, renamed over the old one and the directory fsynced, so
//! a crash leaves the old checkpoint or the new one, never half of one. A
//! damaged, foreign or old-format file is reported as such: the caller
//! rebuilds from the log, which is always possible. Each projection has its
//! own magic, so one's checkpoint is never read as another's.

use crate::Projection;
use bincode::Options;
use ledger::{Hash, LedgerError, LogReader};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sm3::{Digest, Sm3};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

const MAGIC_BYTES: usize = 16;
const HEADER_BYTES: usize = MAGIC_BYTES + 4;
const CHECKSUM_BYTES: usize = 32;
const WRITE_BUFFER_BYTES: usize = 1 << 16;

/// Why a checkpoint cannot be used, or catching up failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error("checkpoint {}: I/O failed", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a {kind} checkpoint; rebuild the projection", path.display())]
    NotACheckpoint { path: PathBuf, kind: &'static str },
    #[error("checkpoint {} has format version {found}, this build reads version {expected}; rebuild the projection", path.display())]
    OldFormat { path: PathBuf, found: u32, expected: u32 },
    #[error("checkpoint {} is damaged: {reason}; rebuild the projection", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("the projection at position {position} does not match the log: {reason}; rebuild the projection")]
    Diverged { position: u64, reason: String },
    #[error("reading the log failed")]
    Log(#[from] LedgerError),
}

impl CheckpointError {
    /// True when the remedy is a rebuild from the log (missing, foreign,
    /// old, damaged or diverged checkpoint); false for I/O and log failures.
    pub fn needs_rebuild(&self) -> bool {
        match self {
            CheckpointError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            CheckpointError::NotACheckpoint { .. }
            | CheckpointError::OldFormat { .. }
            | CheckpointError::Damaged { .. }
            | CheckpointError::Diverged { .. } => true,
            CheckpointError::Log(_) => false,
        }
    }
}

/// What tells one projection's checkpoints from another's, and from older
/// shapes of its own state.
pub(crate) struct Format {
    /// Named in errors: "is not a {kind} checkpoint".
    pub kind: &'static str,
    pub magic: &'static [u8; MAGIC_BYTES],
    pub version: u32,
}

impl Format {
    /// Writes `body` to `path` (temp file, fsync, rename, fsync of the
    /// directory).
    pub(crate) fn save(&self, path: &Path, body: &impl Serialize) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io { path: path.to_path_buf(), source };
        let temporary = temporary_path(path);
        let mut file = File::create(&temporary).map_err(io)?;
        file.write_all(self.magic).map_err(io)?;
        file.write_all(&self.version.to_le_bytes()).map_err(io)?;
        // Buffer in front of the hasher: bincode writes field by field.
        let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, HashingWriter { inner: file, hasher: Sm3::new() });
        bincode::DefaultOptions::new()
            .serialize_into(&mut out, body)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        let HashingWriter { inner: mut file, hasher } = out.into_inner().map_err(|e| io(e.into_error()))?;
        let checksum: [u8; 32] = hasher.finalize().into();
        file.write_all(&checksum).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&temporary, path).map_err(io)?;
        sync_parent(path).map_err(io)
    }

    /// Reads a file written by [`Format::save`], checks it and decodes the
    /// body; `restore` turns it into the state or says why it cannot
    /// (reported as damage).
    pub(crate) fn load<B: DeserializeOwned, T>(
        &self,
        path: &Path,
        restore: impl FnOnce(B) -> Result<T, String>,
    ) -> Result<T, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io { path: path.to_path_buf(), source })?;
        let damaged = |reason: String| CheckpointError::Damaged { path: path.to_path_buf(), reason };
        if bytes.len() < HEADER_BYTES + CHECKSUM_BYTES || !bytes.starts_with(self.magic) {
            return Err(CheckpointError::NotACheckpoint { path: path.to_path_buf(), kind: self.kind });
        }
        let mut version = [0u8; 4];
        version.copy_from_slice(&bytes[MAGIC_BYTES..HEADER_BYTES]);
        let found = u32::from_le_bytes(version);
        if found != self.version {
            return Err(CheckpointError::OldFormat { path: path.to_path_buf(), found, expected: self.version });
        }
        let (body, checksum) = bytes[HEADER_BYTES..].split_at(bytes.len() - HEADER_BYTES - CHECKSUM_BYTES);
        if ledger::envelope::sm3(body).as_slice() != checksum {
            return Err(damaged("its SM3 checksum does not match".into()));
        }
        let body: B = bincode::DefaultOptions::new()
            .with_limit(body.len() as u64)
            .deserialize(body)
            .map_err(|e| damaged(format!("it does not decode: {e}")))?;
        restore(body).map_err(damaged)
    }
}

/// Folds the log's records after `projection`'s position, up to `upto` or
/// the log's durable head, whichever comes first, after checking that the
/// record at that position has `head_hash` (the one the state folded
/// last). A state already past `upto` is left as it is. Returns the number
/// of records folded.
pub(crate) fn catch_up(
    projection: &mut impl Projection,
    head_hash: Hash,
    log: &dyn LogReader,
    upto: u64,
) -> Result<u64, CheckpointError> {
    let position = projection.position();
    let head = log.durable_head();
    if position > head.position {
        return Err(CheckpointError::Diverged {
            position,
            reason: format!("the log ends at position {}", head.position),
        });
    }
    if position > 0 {
        let mut found = None;
        log.scan(position, position, |envelope| {
            found = Some(envelope.hash);
            Ok(())
        })?;
        if found != Some(head_hash) {
            return Err(CheckpointError::Diverged {
                position,
                reason: "the log's record there has another hash".into(),
            });
        }
    }
    let mut n_folded = 0u64;
    log.scan(position + 1, head.position.min(upto), |envelope| {
        projection.apply(&envelope);
        n_folded += 1;
        Ok(())
    })?;
    Ok(n_folded)
}

/// SM3 over the bincode (varint) serialization of `value`, streamed.
pub(crate) fn sm3_of(value: &impl Serialize) -> Result<[u8; 32], bincode::Error> {
    let hashing = HashingWriter { inner: std::io::sink(), hasher: Sm3::new() };
    let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, hashing);
    bincode::DefaultOptions::new().serialize_into(&mut out, value)?;
    // Flushing into a sink cannot fail; should it, the parts are whole.
    let hashing = out.into_inner().unwrap_or_else(|error| error.into_inner().into_parts().0);
    Ok(hashing.hasher.finalize().into())
}

/// Feeds written bytes to SM3 (and on to `inner`).
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
