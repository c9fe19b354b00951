//! `DIR/index/manifest`: which runs make up the index on disk, and the log
//! position (and that record's hash) they cover. Written to a temporary
//! file, synced, renamed over the old one, and the directory synced, so a
//! crash leaves the old manifest or the new one, each naming runs that are
//! whole on disk.

use super::Head;
use crate::envelope::Hash;
use crate::error::{LedgerError, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use uuid::Uuid;
use xxhash_rust::xxh3::xxh3_64;

const MANIFEST_FILE: &str = "manifest";
const TEMPORARY_FILE: &str = "manifest.tmp";
const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub format_version: u32,
    /// The ledger and the secret the fingerprints were made with: a
    /// manifest from another ledger, or another secret, is not used.
    pub ledger_id: Uuid,
    pub secret_check: u64,
    /// The runs hold every record up to here, none after.
    pub covered_position: u64,
    pub covered_hash: Hash,
    /// Newest first.
    pub run_ids: Vec<u64>,
}

impl Manifest {
    pub fn empty(ledger_id: Uuid, secret_check: u64, genesis: Head) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            ledger_id,
            secret_check,
            covered_position: genesis.position,
            covered_hash: genesis.hash,
            run_ids: Vec::new(),
        }
    }
}

pub(crate) fn dir_of(ledger_dir: &Path) -> PathBuf {
    ledger_dir.join("index")
}

/// The manifest in `index_dir`: `Ok(None)` when there is none.
pub(crate) fn read(index_dir: &Path) -> Result<Option<Manifest>> {
    let bytes = match std::fs::read(index_dir.join(MANIFEST_FILE)) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let unreadable = |why: &str| LedgerError::Corrupt { position: 0, reason: format!("index manifest {why}") };
    let Some(split) = bytes.len().checked_sub(8) else { return Err(unreadable("is cut short")) };
    let (body, checksum) = bytes.split_at(split);
    if xxh3_64(body).to_le_bytes() != checksum {
        return Err(unreadable("checksum fails"));
    }
    let manifest: Manifest = bincode::deserialize(body).map_err(|_| unreadable("does not parse"))?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(unreadable("has another format version"));
    }
    Ok(Some(manifest))
}

/// Writes the manifest atomically and durably.
pub(crate) fn write(index_dir: &Path, manifest: &Manifest) -> Result<()> {
    let mut bytes = bincode::serialize(manifest).map_err(|error| LedgerError::Io(std::io::Error::other(error)))?;
    bytes.extend_from_slice(&xxh3_64(&bytes).to_le_bytes());
    let temporary = index_dir.join(TEMPORARY_FILE);
    let mut file = File::create(&temporary)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, index_dir.join(MANIFEST_FILE))?;
    sync_dir(index_dir)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Removes the manifest and every run: the index is rebuilt from the log.
pub(crate) fn clear(index_dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(index_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
        }
    }
    sync_dir(index_dir)
}

/// Removes run files the manifest does not name (a crash between writing a
/// run and installing it, or between installing a merge and removing what
/// it merged). Returns the highest id seen, so new runs never reuse one.
pub(crate) fn remove_strays(index_dir: &Path, manifest: &Manifest) -> Result<u64> {
    let mut highest = manifest.run_ids.iter().copied().max().unwrap_or(0);
    for entry in std::fs::read_dir(index_dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let id = super::run::id_of(&name).or_else(|| name.strip_suffix(".tmp").and_then(super::run::id_of));
        if let Some(id) = id {
            highest = highest.max(id);
            if !manifest.run_ids.contains(&id) || name.ends_with(".tmp") {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(highest)
}
