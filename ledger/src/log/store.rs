//! `LogStore`: the log as commands hold it, whichever backend keeps it
//! (sled in a directory, or a PostgreSQL database). What the traits of
//! reading and writing do not cover: probing an import's keys, the header
//! an export carries, the stored records a restore rebuilds from, and
//! verification.

use super::restore::ExportedRecord;
use super::sled_log::{LogHeader, SledLog};
use super::verify::VerifyReport;
use super::{AppendOutcome, LogBackend, NewEvent};
use crate::envelope::Hash;
use crate::error::{LedgerError, Result};

/// Stored records in position order, each with its hash.
pub type StoredRecords<'a> = Box<dyn Iterator<Item = Result<ExportedRecord>> + Send + 'a>;

/// A backend as the commands and the service use it.
pub trait LogStore: LogBackend {
    /// What appending `events` would do now, appending nothing: the
    /// original position of each repeat (same key, same content), 0 for
    /// each it would append; or the error the append would give.
    fn probe_blocking(&self, events: Vec<NewEvent>) -> Result<AppendOutcome>;
    /// What the log is and how it is chained.
    fn header(&self) -> &LogHeader;
    /// The header's stored bytes (their SM3 is the genesis hash), as an
    /// export carries them for a restore.
    fn header_bytes(&self) -> &[u8];
    /// The stored records from `from` to the durable head, each with its
    /// stored bytes and hash: what an export writes. A record that does
    /// not read is `LedgerError::Corrupt` naming its position.
    fn stored_records(&self, from: u64) -> Result<StoredRecords<'_>>;
    /// Recomputes positions and the SM3 chain of `from..=to` (0: to the
    /// head), naming the first record that fails; `progress` gets the
    /// number of records checked so far.
    fn verify(&self, from: u64, to: u64, progress: &mut dyn FnMut(u64)) -> Result<VerifyReport>;
    /// Calls `visit` with the position and chain hash of every record in
    /// `from..=to` (clamped to the durable head), in position order: what
    /// the Merkle tree over the log reads. A backend may read the hashes
    /// without copying or decoding the records.
    fn chain_hashes(&self, from: u64, to: u64, visit: &mut dyn FnMut(u64, &Hash)) -> Result<()> {
        for record in self.stored_records(from)? {
            let record = record?;
            if record.position > to {
                break;
            }
            visit(record.position, &record.hash);
        }
        Ok(())
    }
    /// Where the log is, for messages: a directory, or a database named
    /// without its password.
    fn location(&self) -> String;
}

impl LogStore for SledLog {
    fn probe_blocking(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        SledLog::probe_blocking(self, events)
    }

    fn header(&self) -> &LogHeader {
        SledLog::header(self)
    }

    fn header_bytes(&self) -> &[u8] {
        SledLog::header_bytes(self)
    }

    fn stored_records(&self, from: u64) -> Result<StoredRecords<'_>> {
        let head = self.durable_head().position;
        let from = from.max(1);
        let blocks = self.blocks_from(from)?;
        let records = blocks.flat_map(move |item| -> Vec<Result<ExportedRecord>> {
            let (first, bytes) = match item {
                Ok(block) => block,
                Err(error) => return vec![Err(error)],
            };
            match super::block::BlockView::parse(&bytes) {
                Ok(view) => view
                    .records()
                    .map(|record| {
                        record
                            .map(|record| ExportedRecord {
                                position: record.position,
                                stored: record.body.to_vec(),
                                hash: record.hash,
                            })
                            .map_err(|e| LedgerError::Corrupt { position: first, reason: e.to_string() })
                    })
                    .filter(|record| record.as_ref().map_or(true, |r| (from..=head).contains(&r.position)))
                    .collect(),
                Err(error) => vec![Err(LedgerError::Corrupt { position: first, reason: error.to_string() })],
            }
        });
        Ok(Box::new(records.take_while(move |record| record.as_ref().map_or(true, |r| r.position <= head))))
    }

    fn verify(&self, from: u64, to: u64, progress: &mut dyn FnMut(u64)) -> Result<VerifyReport> {
        SledLog::verify(self, from, to, progress)
    }

    /// The raw blocks' hashes, neither copied nor decoded.
    fn chain_hashes(&self, from: u64, to: u64, visit: &mut dyn FnMut(u64, &Hash)) -> Result<()> {
        let (from, to) = (from.max(1), to.min(self.durable_head().position));
        if from > to {
            return Ok(());
        }
        for item in self.blocks_from(from)? {
            let (first, bytes) = item?;
            let corrupt = |reason: String| LedgerError::Corrupt { position: first, reason };
            // A compressed block's hashes are stored apart from its bodies:
            // read without decompressing them.
            let hashes = super::block::record_hashes(&bytes).map_err(|e| corrupt(e.to_string()))?;
            for (position, hash) in hashes {
                if position > to {
                    return Ok(());
                }
                if position >= from {
                    visit(position, &hash);
                }
            }
        }
        Ok(())
    }

    fn location(&self) -> String {
        self.dir().display().to_string()
    }
}
