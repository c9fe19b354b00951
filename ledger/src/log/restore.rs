//! Restore: a ledger rebuilt from exported records reproduces the same
//! chain, positions and head hash. Each record is checked as it is written;
//! a restore that fails leaves no ledger behind.

use super::block::{self, BlockBuilder, SealedBlock};
use super::sled_log::{OpenMode, SledLog};
use super::Head;
use crate::envelope::{self, EnvelopeHead, Hash};
use crate::error::{LedgerError, Result};

/// One exported record: its stored bytes and hash.
pub struct ExportedRecord {
    pub position: u64,
    pub stored: Vec<u8>,
    pub hash: Hash,
}

/// Restores into `dir`, which must hold no ledger or an empty one.
pub fn restore(
    dir: &std::path::Path,
    header_bytes: &[u8],
    records: impl IntoIterator<Item = Result<ExportedRecord>>,
) -> Result<Head> {
    let log_dir = dir.join("log");
    if log_dir.join("db").exists() {
        let existing = SledLog::open(dir, OpenMode::Audit)?;
        if let Some(detail) = existing.tail_damage() {
            return Err(LedgerError::StoreDamaged { detail: detail.to_string() });
        }
        let head = existing.durable_head().position;
        if head > 0 {
            return Err(LedgerError::NotEmpty { head });
        }
        drop(existing);
    }
    if log_dir.exists() {
        std::fs::remove_dir_all(&log_dir)?;
    }
    // The index and the anchor of the empty ledger that was there describe
    // another log (another genesis, another secret): the restored ledger
    // makes its own.
    let index_dir = super::manifest::dir_of(dir);
    if index_dir.exists() {
        std::fs::remove_dir_all(&index_dir)?;
    }
    // So are segments kept from the store that was there.
    let preserved = dir.join(super::preserve::PRESERVED_DIR);
    if preserved.exists() {
        std::fs::remove_dir_all(&preserved)?;
    }
    super::anchor::remove(dir)?;
    let result = write_all(dir, header_bytes, records);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&log_dir);
    }
    result
}

/// Checks one exported record against the chain so far (`head`, the
/// record before it): it follows without a gap, its stored bytes decode
/// and claim its position, and its hash links it to `head`. Returns its
/// envelope head. Every backend's restore checks each record with it.
pub fn check_exported(head: &Head, record: &ExportedRecord) -> Result<EnvelopeHead> {
    let corrupt = |reason: String| LedgerError::Corrupt { position: record.position, reason };
    if record.position != head.position + 1 {
        let reason = if record.position > head.position + 1 {
            format!(
                "positions {}..{} are missing: the export skips from position {} to {} (a gap)",
                head.position + 1,
                record.position - 1,
                head.position,
                record.position
            )
        } else {
            format!("export skips from position {} to {}", head.position, record.position)
        };
        return Err(corrupt(reason));
    }
    let (envelope_head, _) = envelope::decode_record(&record.stored).map_err(|e| corrupt(e.to_string()))?;
    if envelope_head.position != record.position {
        return Err(corrupt(format!("stored bytes claim position {}", envelope_head.position)));
    }
    if envelope::chain_hash(&head.hash, &record.stored) != record.hash {
        return Err(corrupt("hash mismatch: the export was changed".into()));
    }
    Ok(envelope_head)
}

fn write_all(
    dir: &std::path::Path,
    header_bytes: &[u8],
    records: impl IntoIterator<Item = Result<ExportedRecord>>,
) -> Result<Head> {
    let log = SledLog::create_with_header(dir, header_bytes)?;
    let mut head = Head { position: 0, hash: log.genesis_hash() };
    let mut open: Option<BlockBuilder> = None;
    let mut sealed: Vec<SealedBlock> = Vec::new();
    let mut unit_bytes = 0;
    for record in records {
        let record = record?;
        check_exported(&head, &record)?;
        if open.as_ref().is_some_and(|b| !b.fits(record.stored.len())) {
            sealed.extend(open.take().map(|b| b.finish(false)));
        }
        open.get_or_insert_with(|| BlockBuilder::new(record.position, head.hash)).push(&record.stored, &record.hash);
        unit_bytes += record.stored.len();
        head = Head { position: record.position, hash: record.hash };
        if unit_bytes > 8 * 1024 * 1024 {
            log.store_restored(std::mem::take(&mut sealed))?;
            unit_bytes = 0;
        }
    }
    // Only the last block is complete: a crash mid-restore leaves an empty log.
    sealed.extend(open.take().map(|b| b.finish(true)));
    log.store_restored(sealed)?;
    Ok(head)
}

impl SledLog {
    fn store_restored(&self, mut blocks: Vec<SealedBlock>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for sealed in &mut blocks {
            // Stored as the writer stores its blocks (the chain is in them).
            sealed.compress();
            batch.insert(&block::key(sealed.first_position), sealed.bytes.as_slice());
        }
        self.shared().blocks.apply_batch(batch)?;
        self.shared().flush_durably()
    }
}
