//! The log on sled: header, recovery, reads. Writes go through `writer`.

use super::anchor;
use super::block::{self, BlockView};
use super::flusher::IndexFiles;
use super::index::{self, Fingerprints, Indexes, KeyIndex, KeyUse, Secret, StreamIndex};
use super::manifest::{self, Manifest};
use super::owner::{self, OwnerFile};
use super::preserve;
use super::run::Run;
use super::scan;
use super::writer::{self, WriterHandle};
use super::{AppendOutcome, EventLog, Head, LogReader, NewEvent, UnfinishedAppend};
use crate::envelope::{self, Envelope, Hash, HASH_ALGORITHM};
use crate::error::{LedgerError, Result};
use crate::sync::{lock_plain, read_plain, write_plain};
use crate::time::UtcTime;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use uuid::Uuid;

const HEADER_KEY: &[u8] = b"header";
/// The ledger's index secret, in sled's default tree beside the header.
const SECRET_KEY: &[u8] = b"index-secret";
const BLOCKS_TREE: &[u8] = b"blocks";
pub const LOG_FORMAT: &str = "yibao-log";
pub const LOG_FORMAT_VERSION: u32 = 1;

/// The log's header record: what the log is and how it is chained. The
/// genesis hash (the `prev_hash` of position 1) is the SM3 of its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHeader {
    pub format: String,
    pub format_version: u32,
    pub hash_algorithm: String,
    pub ledger_id: Uuid,
    pub created_at: UtcTime,
}

impl LogHeader {
    /// The header of a new log: this build's format, a fresh ledger id.
    // Not a default: each call makes another ledger.
    #[allow(clippy::new_without_default)]
    pub fn new() -> LogHeader {
        LogHeader {
            format: LOG_FORMAT.into(),
            format_version: LOG_FORMAT_VERSION,
            hash_algorithm: HASH_ALGORITHM.into(),
            ledger_id: Uuid::new_v4(),
            created_at: UtcTime::now(),
        }
    }

    /// Refuses a header of another format, version or hash algorithm than
    /// this build reads (`Corrupt` at position 0).
    pub fn check(&self) -> Result<()> {
        if self.format != LOG_FORMAT
            || self.format_version != LOG_FORMAT_VERSION
            || self.hash_algorithm != HASH_ALGORITHM
        {
            return Err(LedgerError::Corrupt {
                position: 0,
                reason: format!(
                    "header names format {} v{} with {}, this build reads {LOG_FORMAT} v{LOG_FORMAT_VERSION} with {HASH_ALGORITHM}",
                    self.format, self.format_version, self.hash_algorithm
                ),
            });
        }
        Ok(())
    }
}

/// How to open a ledger directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the ledger if there is none.
    Create,
    /// The ledger must exist.
    Existing,
    /// For audits of a possibly damaged log: no recovery, no indexes, no
    /// writer; reads and verification only.
    Audit,
    /// For answers that only read (a lookup, a page of the log): no
    /// writer and no indexes built, so opening costs the same whatever the
    /// log's length. The head is the last complete append's; an unfinished
    /// one (a crash inside an append, never acknowledged) is not read, and
    /// the next writing open removes it. A damaged store is an error, as
    /// for a writing open. A stream's records come from a scan.
    Read,
}

pub(crate) struct Shared {
    pub db: sled::Db,
    pub blocks: sled::Tree,
    /// sled's data file, for the fdatasync that sled's `flush()` omits.
    pub data_file: File,
    /// Where sled puts page images too large to inline.
    pub blobs_dir: PathBuf,
    pub durable: Mutex<Head>,
    pub index: RwLock<Indexes>,
    /// Seeded by the ledger's secret (for this process only when the
    /// index is not kept: audits, and reads of a ledger without a secret).
    pub fingerprints: Fingerprints,
    /// The index on disk: for writing opens.
    pub index_files: Option<IndexFiles>,
    pub poisoned: AtomicBool,
}

impl Shared {
    pub fn durable_head(&self) -> Head {
        *lock_plain(&self.durable)
    }

    /// The hash of the stored record at `position` (from 1), if there is one.
    pub fn record_hash(&self, position: u64) -> Result<Option<Hash>> {
        let Some(item) = self.blocks.range(..=block::key(position)).next_back() else { return Ok(None) };
        let (_, bytes) = item?;
        let Ok(view) = BlockView::parse(&bytes) else { return Ok(None) };
        Ok(view.records().filter_map(|record| record.ok()).find(|record| record.position == position).map(|r| r.hash))
    }

    /// sled's `flush()` writes and `sync_file_range`s its buffers, which does
    /// not flush the device cache; `fdatasync` does.
    pub fn flush_durably(&self) -> Result<()> {
        self.db.flush()?;
        self.data_file.sync_data()?;
        self.sync_blobs()
    }

    /// sled writes a page image above its inline limit to a file of its own
    /// under `blobs/` and never syncs it. With [`SEGMENT_BYTES`] no page of
    /// ours reaches that limit, so the directory stays empty and this costs
    /// one directory read; should a blob appear anyway, it is synced before
    /// anything is acknowledged.
    fn sync_blobs(&self) -> Result<()> {
        let entries = match std::fs::read_dir(&self.blobs_dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        let mut n_blobs = 0;
        for entry in entries {
            File::open(entry?.path())?.sync_data()?;
            n_blobs += 1;
        }
        if n_blobs > 0 {
            File::open(&self.blobs_dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// The ledger's event log, stored in sled under `DIR/log`.
pub struct SledLog {
    shared: Arc<Shared>,
    header: LogHeader,
    header_bytes: Vec<u8>,
    genesis: Hash,
    writer: Option<WriterHandle>,
    dir: PathBuf,
    /// Seeds the fingerprints and proves the index on disk was made with it.
    secret: Option<Secret>,
    /// Found by an audit open only; a writing open has removed it.
    unfinished: Option<UnfinishedAppend>,
    /// What sled could not read of the log's end, for an audit open (a
    /// writing open fails instead).
    tail_damage: Option<String>,
    mode: OpenMode,
    /// Whether the stream index can be used: always for a writing open;
    /// for `Read`, loaded at the first stream read, when the index on disk
    /// matches the log (else streams come from a scan).
    indexed: OnceLock<bool>,
    /// Records the open read to bring the index up to the head.
    opened_tail: AtomicU64,
    /// Last, so that the record goes once the writer has stopped.
    _owner: Option<OwnerFile>,
}

/// sled's segment size. A message above a quarter segment goes to a blob
/// file; our largest page, a leaf of up to 17 blocks (sled splits leaves
/// above 16 entries) of at most [`block::MAX_BLOCK_BYTES`], stays below it.
pub(crate) const SEGMENT_BYTES: usize = 2 * 1024 * 1024;
const _: () = assert!(17 * (block::MAX_BLOCK_BYTES + 64) < SEGMENT_BYTES / 4 - 1024);

/// sled's page cache (its default is 1 GiB). The log is written at its end
/// and read in long scans that touch each page once: a cache larger than
/// a few leaves buys nothing, and at the default a scan of a large log
/// (verify, replay, an import's writing open) holds a gigabyte for it.
const SLED_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Lookups of a block's own key after it is read or written, so that sled
/// lets go of the leaves behind a scan or behind the writer. sled 0.34
/// counts page accesses in 256 queues of 64 and evicts from its cache only
/// when a queue is full; an iterator reads each leaf once and the writer
/// fills each leaf a block at a time, so on a long scan or a long import no
/// queue fills and every leaf read or written stays in memory (2.9 GB for
/// `verify` of a 14.8M-record log, whatever the cache's capacity; a third
/// of an import's memory). A leaf holds 8 to 17 blocks: eight accesses per
/// block fill its queue once per leaf, and the cache holds its capacity,
/// not the log (175 MB for the same verify, and faster: 10.3 s against
/// 14.4 s). A lookup in a leaf just read or written costs about a
/// microsecond.
const TOUCHES_PER_BLOCK: usize = 8;

/// Counts [`TOUCHES_PER_BLOCK`] accesses to the leaf holding `key`.
pub(crate) fn count_access(blocks: &sled::Tree, key: &[u8]) -> Result<()> {
    for _ in 0..TOUCHES_PER_BLOCK {
        blocks.get(key)?;
    }
    Ok(())
}

/// Opens the sled store under a ledger's `DIR/log` with the ledger's
/// settings, bypassing the log: for forensic tools and tests that inspect or
/// damage stored blocks.
pub fn open_store(dir: &Path) -> Result<sled::Db> {
    open_sled(dir)
}

/// Opens sled under `DIR/log`; damage and a lock held elsewhere are errors
/// of their own, in words an operator can act on. What sled's recovery
/// overwrites of its active segment is kept for salvage (`preserve`).
fn open_sled(dir: &Path) -> Result<sled::Db> {
    let kept = preserve::before_open(&dir.join("log"));
    let opened = open_sled_waiting(dir);
    // Another process holding the store may be writing to it.
    if !matches!(opened, Err(LedgerError::InUse { .. })) {
        preserve::after_open(dir, kept);
    }
    opened
}

fn open_sled_waiting(dir: &Path) -> Result<sled::Db> {
    let path = dir.join("log");
    let config = sled::Config::new()
        .path(&path)
        .segment_size(SEGMENT_BYTES)
        .flush_every_ms(None)
        .cache_capacity(SLED_CACHE_BYTES)
        .mode(sled::Mode::HighThroughput);
    // sled 0.34 releases its file lock only when its background threads let
    // go of the store, a moment after the last handle is dropped: a reopen
    // right after a close waits for that (bounded), and another process
    // holding the ledger still gets the error.
    let mut attempt = 0;
    loop {
        // sled 0.34 panics on some damaged files instead of returning an error.
        let opened = match quietly(|| config.open()) {
            Ok(opened) => opened,
            Err(panic) => {
                let said = panic
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let detail = format!("sled could not read its files under {}: {said}", path.display());
                return Err(LedgerError::StoreDamaged { detail });
            }
        };
        match opened {
            Err(sled::Error::Io(error)) if is_lock_busy(&error) && attempt < LOCK_ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(sled::Error::Io(error)) if is_lock_busy(&error) => {
                return Err(LedgerError::InUse { holder: owner::describe_holder(dir) });
            }
            other => return Ok(other?),
        }
    }
}

thread_local! {
    /// Set while [`quietly`] runs on this thread.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, catching a panic without printing it: sled's panic on a
/// damaged file is reported as a damaged store, in words, not as a panic
/// message and backtrace. Panics elsewhere are printed as before.
fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    QUIET.with(|quiet| quiet.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|quiet| quiet.set(false));
    result
}

/// Tries to take sled's lock before giving up (20 ms apart: about 2 s).
const LOCK_ATTEMPTS: u32 = 100;

fn is_lock_busy(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::WouldBlock || error.to_string().contains("could not acquire lock")
}

/// A log that was written to leaves its durable head as the anchor
/// (`DIR/head`) when it closes. Best effort: a full disk must not turn a
/// clean close into a failure, and an older anchor is only a weaker check.
impl Drop for SledLog {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = anchor::write(&self.dir, self.durable_head());
        }
    }
}

impl SledLog {
    /// Opens (or creates) the ledger in `dir`.
    pub fn open(dir: &Path, mode: OpenMode) -> Result<SledLog> {
        let path = dir.join("log");
        if mode != OpenMode::Create && !path.join("db").exists() {
            return Err(LedgerError::NotFound(dir.display().to_string()));
        }
        let created = !path.exists();
        std::fs::create_dir_all(&path)?;
        if mode != OpenMode::Audit && mode != OpenMode::Read {
            restrict_to_owner(dir)?;
        }
        let db = open_sled(dir)?;
        let owner = OwnerFile::claim(dir);
        let blocks = db.open_tree(BLOCKS_TREE)?;
        let data_file = File::open(path.join("db"))?;
        let header_bytes = match db.get(HEADER_KEY)? {
            Some(bytes) => bytes.to_vec(),
            None if mode == OpenMode::Create => {
                let bytes = serde_json::to_vec(&LogHeader::new()).expect("headers serialize");
                db.insert(HEADER_KEY, bytes.as_slice())?;
                db.flush()?;
                data_file.sync_data()?;
                bytes
            }
            None => return Err(LedgerError::NotFound(dir.display().to_string())),
        };
        if created {
            anchor::remove(dir)?;
            File::open(dir)?.sync_all()?;
        }
        let header: LogHeader = serde_json::from_slice(&header_bytes)
            .map_err(|e| LedgerError::Corrupt { position: 0, reason: format!("header does not parse: {e}") })?;
        header.check()?;
        let genesis = envelope::sm3(&header_bytes);
        let secret = match mode {
            OpenMode::Create | OpenMode::Existing => Some(secret_for_writing(&db, &data_file)?),
            OpenMode::Read => stored_secret(&db)?,
            OpenMode::Audit => None,
        };
        let genesis_head = Head { position: 0, hash: genesis };
        let index_files = match (mode, secret) {
            (OpenMode::Create | OpenMode::Existing, Some(secret)) => Some(IndexFiles::new(
                manifest::dir_of(dir),
                header.ledger_id,
                index::secret_check(&secret),
                genesis_head,
            )),
            _ => None,
        };
        let shared = Arc::new(Shared {
            db,
            blocks,
            data_file,
            blobs_dir: path.join("blobs"),
            durable: Mutex::new(genesis_head),
            index: RwLock::new(Indexes::empty()),
            fingerprints: secret.as_ref().map_or_else(Fingerprints::new, Fingerprints::from_secret),
            index_files,
            poisoned: AtomicBool::new(false),
        });
        let mut log = SledLog {
            shared,
            header,
            header_bytes,
            genesis,
            writer: None,
            dir: dir.to_path_buf(),
            unfinished: None,
            tail_damage: None,
            mode,
            indexed: OnceLock::new(),
            opened_tail: AtomicU64::new(0),
            secret,
            _owner: owner,
        };
        if mode == OpenMode::Read {
            log.read_tail_for_audit()?;
            if let Some(detail) = log.tail_damage.take().or(log.contradicted_anchor()?) {
                return Err(LedgerError::StoreDamaged { detail });
            }
        } else if mode != OpenMode::Audit {
            log.recover()?;
            let (head, keys) = log.load_indexes()?;
            *lock_plain(&log.shared.durable) = head;
            if let Some(detail) = log.contradicted_anchor()? {
                return Err(LedgerError::StoreDamaged { detail });
            }
            if anchor::read(dir) != Some(head) {
                anchor::write(dir, head)?;
            }
            log.writer = Some(writer::start(Arc::clone(&log.shared), head, keys));
            let _ = log.indexed.set(true);
        } else {
            log.read_tail_for_audit()?;
            if log.tail_damage.is_none() {
                log.tail_damage = log.contradicted_anchor()?;
            }
        }
        Ok(log)
    }

    /// Why the log is not the one `DIR/head` was written from (see
    /// `anchor`), if it is not.
    fn contradicted_anchor(&self) -> Result<Option<String>> {
        let Some(anchor) = anchor::read(&self.dir) else { return Ok(None) };
        let head = self.durable_head();
        let mut hash_at_anchor = (anchor.position == 0).then_some(self.genesis);
        if anchor.position > 0 && anchor.position <= head.position {
            self.scan(anchor.position, anchor.position, |envelope| {
                hash_at_anchor = Some(envelope.hash);
                Ok(())
            })?;
        }
        Ok(anchor::contradiction(anchor, head, hash_at_anchor))
    }

    /// A new ledger with a given header (for a restore), without a writer.
    pub(crate) fn create_with_header(dir: &Path, header_bytes: &[u8]) -> Result<SledLog> {
        let path = dir.join("log");
        std::fs::create_dir_all(&path)?;
        restrict_to_owner(dir)?;
        {
            let db = open_sled(dir)?;
            db.insert(HEADER_KEY, header_bytes)?;
            db.flush()?;
            File::open(path.join("db"))?.sync_data()?;
        }
        File::open(dir)?.sync_all()?;
        SledLog::open(dir, OpenMode::Audit)
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn header(&self) -> &LogHeader {
        &self.header
    }

    /// The header's stored bytes, as exported for a restore.
    pub fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }

    /// `prev_hash` of position 1: SM3 of the header's bytes.
    pub fn genesis_hash(&self) -> Hash {
        self.genesis
    }

    pub fn durable_head(&self) -> Head {
        self.shared.durable_head()
    }

    /// The unfinished append an audit open found after the durable head.
    pub fn unfinished_append(&self) -> Option<UnfinishedAppend> {
        self.unfinished
    }

    /// What sled could not read of the log's end, when opened for an audit.
    pub fn tail_damage(&self) -> Option<&str> {
        self.tail_damage.as_deref()
    }

    /// The durable head and any unfinished append, for an audit open. An
    /// audit goes on past a tail sled cannot read: verify then names the
    /// last position it could read.
    fn read_tail_for_audit(&mut self) -> Result<()> {
        let found = find_unfinished(&self.shared.blocks).and_then(|unfinished| {
            self.unfinished = unfinished;
            self.audit_head()
        });
        let head = match found {
            Ok(head) => head,
            Err(LedgerError::StoreDamaged { detail }) => {
                self.unfinished = None;
                self.tail_damage = Some(detail);
                Head { position: 0, hash: self.genesis }
            }
            Err(other) => return Err(other),
        };
        *lock_plain(&self.shared.durable) = head;
        Ok(())
    }

    /// What readers see of a log opened for an audit: the last record of
    /// the last block before any unfinished append (which recovery would
    /// remove). A damaged last block gives the records before the damage.
    fn audit_head(&self) -> Result<Head> {
        let genesis = Head { position: 0, hash: self.genesis };
        let last = match self.unfinished {
            Some(unfinished) if unfinished.after == 0 => return Ok(genesis),
            Some(unfinished) => self.shared.blocks.range(..=block::key(unfinished.after)).next_back().transpose()?,
            None => self.shared.blocks.last()?,
        };
        Ok(last.and_then(|(_, bytes)| last_record_of(&bytes)).unwrap_or(genesis))
    }

    /// Drops a trailing run of incomplete blocks: the parts of an append that
    /// did not finish before a crash (and so was never acknowledged).
    fn recover(&self) -> Result<()> {
        let mut dropped = 0;
        while let Some((key, value)) = self.shared.blocks.last()? {
            let complete = BlockView::parse(&value).map(|view| view.complete).unwrap_or(false);
            if complete {
                break;
            }
            let position = block::position_of_key(&key).unwrap_or(0);
            if BlockView::parse(&value).is_err() {
                return Err(LedgerError::Corrupt { position, reason: "last block's header is damaged".into() });
            }
            self.shared.blocks.remove(key)?;
            dropped += 1;
        }
        if dropped > 0 {
            self.shared.flush_durably()?;
        }
        Ok(())
    }

    /// Brings the index up to the log's head: the runs a matching manifest
    /// names, then the records after the position they cover (the tail).
    /// A manifest that does not match the log, or a run that cannot be
    /// read, is noted and the index is rebuilt from position 1: the index
    /// is derived, never trusted over the log.
    fn load_indexes(&self) -> Result<(Head, KeyIndex)> {
        let files = self.shared.index_files.as_ref().expect("a writing open keeps its index");
        std::fs::create_dir_all(&files.dir)?;
        let stored_head = self.stored_head()?;
        let genesis = Head { position: 0, hash: self.genesis };
        let (covered, runs) = match self.matching_index(&files.dir, stored_head) {
            Ok(Some(found)) => found,
            Ok(None) => {
                manifest::clear(&files.dir)?;
                (genesis, Vec::new())
            }
            Err(why) => {
                eprintln!(
                    "note: the log's index under {} cannot be used ({why}); rebuilding it from position 1",
                    files.dir.display()
                );
                manifest::clear(&files.dir)?;
                (genesis, Vec::new())
            }
        };
        let in_use = Manifest {
            run_ids: runs.iter().map(|run| run.id).collect(),
            ..Manifest::empty(self.header.ledger_id, files.secret_check, covered)
        };
        let highest_id = manifest::remove_strays(&files.dir, &in_use)?;
        files.next_id.store(highest_id + 1, Ordering::Relaxed);
        *lock_plain(&files.covered) = covered;
        let (head, keys, streams) = self.index_tail(covered, u64::MAX)?;
        *write_plain(&self.shared.index) = Indexes { streams, frozen: Vec::new(), runs };
        Ok((head, keys))
    }

    /// The last stored record (after recovery, the durable head).
    fn stored_head(&self) -> Result<Head> {
        let last = self.shared.blocks.last()?;
        Ok(last.and_then(|(_, bytes)| last_record_of(&bytes)).unwrap_or(Head { position: 0, hash: self.genesis }))
    }

    /// The runs of the index on disk and the head they cover, when its
    /// manifest was made for this log, up to `head`, with this secret.
    /// `Ok(None)`: there is no index on disk; `Err`: why it cannot be used.
    fn matching_index(&self, index_dir: &Path, head: Head) -> std::result::Result<Option<OnDisk>, String> {
        let Some(secret) = self.secret.as_ref() else { return Ok(None) };
        let Some(found) = manifest::read(index_dir).map_err(|error| crate::error::chain(&error))? else {
            return Ok(None);
        };
        if found.ledger_id != self.header.ledger_id || found.secret_check != index::secret_check(secret) {
            return Err("it was made for another ledger, or with another secret".into());
        }
        let covered = Head { position: found.covered_position, hash: found.covered_hash };
        let hash_there = match covered.position {
            0 => Some(self.genesis),
            position if position <= head.position => {
                self.shared.record_hash(position).map_err(|error| crate::error::chain(&error))?
            }
            _ => None,
        };
        if hash_there != Some(covered.hash) {
            return Err(format!("the log has no such record at position {}", covered.position));
        }
        let runs = found
            .run_ids
            .iter()
            .map(|&id| Run::open(index_dir, id, self.mode != OpenMode::Read).map(Arc::new))
            .collect::<Result<Vec<_>>>()
            .map_err(|error| crate::error::chain(&error))?;
        Ok(Some((covered, runs)))
    }

    /// Reads the envelope heads of the records after `from` (up to `to`)
    /// into a memtable; checks positions and block links on the way.
    fn index_tail(&self, from: Head, to: u64) -> Result<(Head, KeyIndex, StreamIndex)> {
        // The last block's key is close to the last position: size the
        // maps once instead of growing them record by record.
        let n_records_about = match self.shared.blocks.last()? {
            Some((key, _)) => block::position_of_key(&key).unwrap_or(0).saturating_sub(from.position),
            None => 0,
        };
        let capacity = usize::try_from(n_records_about).unwrap_or(0).min(1 << 28);
        let fingerprints = self.shared.fingerprints;
        let mut keys = KeyIndex::with_capacity(capacity);
        let mut streams = StreamIndex::with_capacity(capacity / 2);
        let mut head = from;
        let mut first_block = true;
        'blocks: for item in self.blocks_from(from.position + 1)? {
            let (key_position, value) = item?;
            let corrupt = |reason: String| LedgerError::Corrupt {
                position: key_position,
                reason: format!("{reason}; run `yibao verify`"),
            };
            let view = BlockView::parse(&value).map_err(|e| corrupt(e.to_string()))?;
            let follows = view.first_position == head.position + 1 && view.prev_hash == head.hash;
            // The first block may hold records the runs already cover.
            let overlaps = first_block && view.first_position <= head.position;
            if !(follows || overlaps) || key_position != view.first_position {
                return Err(corrupt(format!("block does not follow position {}", head.position)));
            }
            first_block = false;
            for record in view.records() {
                let record = record.map_err(|e| corrupt(e.to_string()))?;
                if record.position > to {
                    break 'blocks;
                }
                if record.position <= head.position {
                    continue;
                }
                let (envelope_head, event_bytes) =
                    envelope::decode_head(record.body).map_err(|e| corrupt(e.to_string()))?;
                if envelope_head.position != record.position {
                    return Err(corrupt(format!("record claims position {}", envelope_head.position)));
                }
                let stream = fingerprints.stream(&envelope_head.stream);
                streams.record(stream, envelope_head.stream_version, record.position);
                let content = fingerprints.content(stream, event_bytes);
                keys.insert(
                    fingerprints.key(&envelope_head.idempotency_key),
                    KeyUse { position: record.position, content },
                );
                head = Head { position: record.position, hash: record.hash };
            }
        }
        self.opened_tail.store(head.position - from.position, Ordering::Relaxed);
        Ok((head, keys, streams))
    }

    /// How many records the open read to bring the index up to the head
    /// (all of them when the index was rebuilt). For a `Read` open, known
    /// at its first stream read: the tail, or the whole log when there is
    /// no usable index on disk and stream reads scan it.
    pub fn opened_tail(&self) -> u64 {
        self.opened_tail.load(Ordering::Relaxed)
    }

    /// For a `Read` open: the index on disk and the tail after it, when
    /// they match the log.
    fn load_for_read(&self) -> bool {
        if self.mode != OpenMode::Read {
            return false;
        }
        let head = self.durable_head();
        let loaded = match self.matching_index(&manifest::dir_of(&self.dir), head) {
            Ok(Some((covered, runs))) => {
                self.index_tail(covered, head.position).ok().map(|(_, _, streams)| (streams, runs))
            }
            _ => None,
        };
        let Some((streams, runs)) = loaded else {
            // Every stream read scans the whole log.
            self.opened_tail.store(head.position, Ordering::Relaxed);
            return false;
        };
        *write_plain(&self.shared.index) = Indexes { streams, frozen: Vec::new(), runs };
        true
    }

    /// For tests: the pages that lookups read from the runs in use.
    #[doc(hidden)]
    pub fn index_page_reads_for_tests(&self) -> u64 {
        read_plain(&self.shared.index).runs.iter().map(|run| run.n_page_reads()).sum()
    }

    /// For tests: whether the index the open loaded (runs and tail) answers
    /// exactly as one rebuilt from position 1, for every key and stream of
    /// the log, before anything is appended. `Err` says what differs.
    #[doc(hidden)]
    pub fn open_checking_index_for_tests(dir: &Path) -> Result<SledLog> {
        let log = SledLog::open(dir, OpenMode::Existing)?;
        let genesis = Head { position: 0, hash: log.genesis };
        let (_, all_keys, all_streams) = log.index_tail(genesis, u64::MAX)?;
        let covered = log.shared.index_files.as_ref().map_or(genesis, |files| *lock_plain(&files.covered));
        let (_, tail_keys, _) = log.index_tail(covered, u64::MAX)?;
        let index = read_plain(&log.shared.index);
        let differs = |what: String| LedgerError::Corrupt { position: 0, reason: format!("the index differs: {what}") };
        let mut n_keys = tail_keys.len() as u64;
        for run in &index.runs {
            n_keys += run.n_keys();
        }
        if n_keys != all_keys.len() as u64 {
            return Err(differs(format!("{n_keys} keys, a rebuild has {}", all_keys.len())));
        }
        for (key, key_use) in all_keys.iter() {
            let found = match tail_keys.get(key) {
                Some(found) => Some(found),
                None => index.key(key)?,
            };
            if found != Some(key_use) {
                return Err(differs(format!("key {key:x}: {found:?}, a rebuild has {key_use:?}")));
            }
        }
        for (stream, entry) in all_streams.iter() {
            let positions = index.positions(stream)?;
            let version = index.version(stream)?;
            if positions != entry.positions || version != entry.version {
                return Err(differs(format!("stream {stream:x}: version {version}, {} positions", positions.len())));
            }
        }
        drop(index);
        Ok(log)
    }

    fn writer(&self) -> Result<&WriterHandle> {
        self.writer.as_ref().ok_or(LedgerError::Closed)
    }

    /// `append` for callers without an async runtime.
    pub fn append_blocking(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        self.writer()?.append_blocking(events)
    }

    /// A dry run of `append_blocking`: the same checks, nothing appended.
    /// Answers the position of each event the log already holds (same
    /// key, same content), 0 for each it would append, `n_appended` for
    /// how many that is; or the error the append would give now
    /// (`IdempotencyConflict`, `WrongExpectedVersion`, a field's limit).
    pub fn probe_blocking(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        self.writer()?.probe_blocking(events)
    }

    /// Stored blocks from the one holding `position` on, as (first position,
    /// bytes). For verification and replay, which read blocks whole.
    pub fn blocks_from(&self, position: u64) -> Result<impl Iterator<Item = Result<(u64, sled::IVec)>> + '_> {
        let start = match self.shared.blocks.range(..=block::key(position.max(1))).next_back() {
            Some(item) => item?.0.to_vec(),
            None => block::key(1).to_vec(),
        };
        let blocks = &self.shared.blocks;
        Ok(blocks.range(start..).map(move |item| {
            let (key, value) = item?;
            count_access(blocks, &key)?;
            Ok((block::position_of_key(&key).unwrap_or(0), value))
        }))
    }

    /// Decodes the records in `[from, to]` into envelopes, calling `visit`
    /// in position order. Long scans decode on all cores.
    pub fn scan(&self, from: u64, to: u64, mut visit: impl FnMut(Envelope) -> Result<()>) -> Result<()> {
        // Readers see nothing past the durable head: an unfinished append
        // that a read or audit open left in place is never read as records.
        let to = to.min(self.durable_head().position);
        let n_records = to.saturating_sub(from.max(1)).saturating_add(1);
        let n_decoders = std::thread::available_parallelism().map_or(1, |n| n.get());
        if n_records >= scan::PARALLEL_FROM_RECORDS && n_decoders > 1 {
            return scan::parallel(self.blocks_from(from)?, from, to, n_decoders, &mut visit);
        }
        for item in self.blocks_from(from)? {
            let (key_position, value) = item?;
            let Some(envelopes) = scan::decode_block(key_position, &value, from, to)? else { return Ok(()) };
            for envelope in envelopes {
                visit(envelope)?;
            }
        }
        Ok(())
    }

    fn read_range(&self, from: u64, max: usize) -> Result<Vec<Envelope>> {
        let head = self.durable_head().position;
        let from = from.max(1);
        if from > head || max == 0 {
            return Ok(Vec::new());
        }
        let to = head.min(from.saturating_add(max as u64 - 1));
        let mut out = Vec::with_capacity((to - from + 1) as usize);
        self.scan(from, to, |envelope| {
            out.push(envelope);
            Ok(())
        })?;
        Ok(out)
    }

    /// All durable records of one stream, in order (`read_stream` without
    /// an async runtime).
    pub fn read_stream_blocking(&self, stream: &str) -> Result<Vec<Envelope>> {
        self.read_positions(stream)
    }

    fn read_positions(&self, stream: &str) -> Result<Vec<Envelope>> {
        let head = self.durable_head().position;
        if !*self.indexed.get_or_init(|| self.load_for_read()) {
            let mut out = Vec::new();
            self.scan(1, head, |envelope| {
                if envelope.head.stream == stream {
                    out.push(envelope);
                }
                Ok(())
            })?;
            return Ok(out);
        }
        let positions: Vec<u64> = {
            let index = read_plain(&self.shared.index);
            let stream = self.shared.fingerprints.stream(stream);
            index.positions(stream)?.into_iter().filter(|&p| p <= head).collect()
        };
        let mut out = Vec::with_capacity(positions.len());
        for position in positions {
            out.extend(self.read_range(position, 1)?);
        }
        Ok(out)
    }
}

/// The runs of a usable index on disk, and the head they cover.
type OnDisk = (Head, Vec<Arc<Run>>);

/// The ledger's index secret, created (and stored durably, before any run
/// is made with it) at the first writing open.
fn secret_for_writing(db: &sled::Db, data_file: &File) -> Result<Secret> {
    if let Some(secret) = stored_secret(db)? {
        return Ok(secret);
    }
    // Three random UUIDs carry 366 random bits; SM3 folds them into 32 bytes.
    let mut random = Vec::with_capacity(48);
    for _ in 0..3 {
        random.extend_from_slice(Uuid::new_v4().as_bytes());
    }
    let secret: Secret = envelope::sm3(&random);
    db.insert(SECRET_KEY, &secret[..])?;
    db.flush()?;
    data_file.sync_data()?;
    Ok(secret)
}

/// The stored secret; one of another length is none (a writing open
/// replaces it, and the index is rebuilt).
fn stored_secret(db: &sled::Db) -> Result<Option<Secret>> {
    Ok(db.get(SECRET_KEY)?.and_then(|bytes| bytes.as_ref().try_into().ok()))
}

/// The trailing run of incomplete blocks, as [`SledLog::recover`] would
/// remove it. A block whose header does not parse ends the run: that is
/// damage, for verify to name, not an unfinished append.
fn find_unfinished(blocks: &sled::Tree) -> Result<Option<UnfinishedAppend>> {
    let mut unfinished: Option<UnfinishedAppend> = None;
    for item in blocks.iter().rev() {
        let (_, bytes) = item?;
        let Ok(view) = BlockView::parse(&bytes) else { break };
        if view.complete {
            break;
        }
        let so_far = unfinished.unwrap_or(UnfinishedAppend { after: 0, n_records: 0, n_blocks: 0 });
        unfinished = Some(UnfinishedAppend {
            after: view.first_position.saturating_sub(1),
            n_records: so_far.n_records + u64::from(view.n_records),
            n_blocks: so_far.n_blocks + 1,
        });
    }
    Ok(unfinished)
}

/// The ledger holds full ID numbers and names: its directory is the
/// owner's only (0700), whatever it was created with. Files inside it are
/// then closed to others whatever their own modes.
fn restrict_to_owner(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// The last record of a stored block, as a head.
fn last_record_of(bytes: &[u8]) -> Option<Head> {
    let view = BlockView::parse(bytes).ok()?;
    view.records().filter_map(|r| r.ok()).last().map(|r| Head { position: r.position, hash: r.hash })
}

#[async_trait]
impl EventLog for SledLog {
    async fn append(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        self.writer()?.append(events).await
    }

    fn append_blocking(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        SledLog::append_blocking(self, events)
    }

    async fn read_from(&self, position: u64, max: usize) -> Result<Vec<Envelope>> {
        self.read_range(position, max)
    }

    async fn read_stream(&self, stream: &str) -> Result<Vec<Envelope>> {
        self.read_positions(stream)
    }

    async fn head(&self) -> Result<Head> {
        Ok(self.durable_head())
    }
}

impl LogReader for SledLog {
    fn durable_head(&self) -> Head {
        SledLog::durable_head(self)
    }

    fn genesis_hash(&self) -> Hash {
        SledLog::genesis_hash(self)
    }

    fn scan_records(&self, from: u64, to: u64, visit: &mut dyn FnMut(Envelope) -> Result<()>) -> Result<()> {
        SledLog::scan(self, from, to, visit)
    }

    fn read_stream_blocking(&self, stream: &str) -> Result<Vec<Envelope>> {
        SledLog::read_stream_blocking(self, stream)
    }

    fn ledger_id(&self) -> Uuid {
        self.header.ledger_id
    }
}
