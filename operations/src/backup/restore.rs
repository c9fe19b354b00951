//! Reading a backup back: every segment checked (its SM3, its records'
//! chain from the header's genesis), then a ledger rebuilt from them,
//! optionally continued by export-format files (`--with`) from the
//! backup's head. Everything is checked before anything is kept.

use super::segment::{self, Damage};
use super::{io, storage, BackupError};
use crate::facts::LineError;
use crate::import::{numbered_lines, HeadAnswer};
use crate::location::Location;
use crate::location::RestoreStopped;
use crate::progress;
use crate::records;
use indicatif::ProgressBar;
use ledger::envelope::Hash;
use ledger::log::restore::{check_exported, ExportedRecord};
use ledger::uuid::Uuid;
use ledger::{envelope, Head, LedgerError};
use serde::Serialize;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A backup directory: its header and how many segments it should hold.
struct Backup {
    dir: PathBuf,
    ledger_id: Uuid,
    header_bytes: Vec<u8>,
    /// The highest segment number listed or noted as the last written.
    n_segments: u64,
}

fn open_backup(dir: &Path) -> Result<Backup, BackupError> {
    let header_path = segment::header_path(dir);
    if !header_path.exists() {
        return Err(BackupError::NotABackup { dir: dir.to_path_buf() });
    }
    let bytes = std::fs::read(&header_path).map_err(io("reading", &header_path))?;
    let (ledger_id, header_bytes) =
        segment::decode_header(&bytes).map_err(|damage| BackupError::Damaged { path: header_path, damage })?;
    let listed = segment::list_segments(dir).map_err(io("listing", dir))?;
    let n_segments = listed.last().map_or(0, |(number, _)| *number).max(segment::last_segment_number(dir));
    Ok(Backup { dir: dir.to_path_buf(), ledger_id, header_bytes, n_segments })
}

/// The backup's records in order, each segment read whole and checked
/// (SM3, trailer, chain from the record before) before any of its records
/// is given; a missing segment is named by its file and the position it
/// should start at.
struct BackupRecords<'a> {
    backup: &'a Backup,
    number: u64,
    pending: std::vec::IntoIter<ExportedRecord>,
    head: Head,
    failed: bool,
}

impl<'a> BackupRecords<'a> {
    fn new(backup: &'a Backup) -> BackupRecords<'a> {
        let genesis = envelope::sm3(&backup.header_bytes);
        BackupRecords {
            backup,
            number: 0,
            pending: Vec::new().into_iter(),
            head: Head { position: 0, hash: genesis },
            failed: false,
        }
    }

    /// Reads and checks the next segment, leaving its records pending.
    fn load_next(&mut self) -> Result<(), BackupError> {
        self.number += 1;
        let path = segment::segment_path(&self.backup.dir, self.number);
        let damaged = |damage: Damage| BackupError::Damaged { path: path.clone(), damage };
        let expected = self.head.position + 1;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(damaged(Damage { position: expected, reason: "the segment is missing".into() }))
            }
            Err(source) => return Err(BackupError::Io { what: "reading", path, source }),
        };
        let (trailer, records) = segment::read_segment(&bytes).map_err(damaged)?;
        let at = |reason: String| damaged(Damage { position: expected, reason });
        if trailer.ledger_id != self.backup.ledger_id {
            return Err(at(format!("a segment of ledger {}, not {}", trailer.ledger_id, self.backup.ledger_id)));
        }
        if trailer.first_position != expected || trailer.prev_hash != self.head.hash {
            let first = trailer.first_position;
            return Err(at(format!("starts at position {first}, not where the segment before ends")));
        }
        let mut head = self.head;
        for record in &records {
            check_exported(&head, record).map_err(|error| damaged(as_damage(error, record.position)))?;
            head = Head { position: record.position, hash: record.hash };
        }
        if head.hash != trailer.head_hash {
            return Err(damaged(Damage { position: head.position, reason: "the trailer names another head".into() }));
        }
        self.pending = records.into_iter();
        Ok(())
    }
}

fn as_damage(error: LedgerError, position: u64) -> Damage {
    match error {
        LedgerError::Corrupt { position, reason } => Damage { position, reason },
        other => Damage { position, reason: other.to_string() },
    }
}

impl Iterator for BackupRecords<'_> {
    type Item = Result<ExportedRecord, BackupError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(record) = self.pending.next() {
                self.head = Head { position: record.position, hash: record.hash };
                return Some(Ok(record));
            }
            if self.number >= self.backup.n_segments {
                return None;
            }
            if let Err(error) = self.load_next() {
                self.failed = true;
                return Some(Err(error));
            }
        }
    }
}

/// What a check of a backup found: every segment reads and chains.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Checked {
    pub dir: String,
    pub ledger_id: String,
    pub n_segments: u64,
    pub head: HeadAnswer,
    pub seconds: f64,
}

/// Checks every segment of the backup in `dir` (SM3, framing, the chain
/// from the header's genesis), restoring nothing.
pub fn check(dir: &Path) -> Result<Checked, BackupError> {
    let started = Instant::now();
    let backup = open_backup(dir)?;
    let head = check_all(&backup)?;
    Ok(Checked {
        dir: dir.display().to_string(),
        ledger_id: backup.ledger_id.to_string(),
        n_segments: backup.n_segments,
        head: head.into(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn check_all(backup: &Backup) -> Result<Head, BackupError> {
    let bar = backup_bar(backup, "checking the backup");
    let mut records = BackupRecords::new(backup);
    for record in &mut records {
        record?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(records.head)
}

fn backup_bar(backup: &Backup, what: &str) -> ProgressBar {
    let last = segment::segment_path(&backup.dir, backup.n_segments);
    let total = match segment::read_trailer(&last) {
        Ok(Ok(trailer)) => trailer.last_position,
        _ => 0,
    };
    progress::bar(total, what)
}

/// What one `--with` file added after the backup (or the file before).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WithTaken {
    pub file: String,
    /// Records at or below the head it continued, equal to those there.
    pub n_skipped: u64,
    /// Records at or below that head that differ from those there (or come
    /// out of order): ignored, the backup's stand; a damaged store's
    /// salvage may hold some.
    pub n_differing: u64,
    pub n_taken: u64,
    /// The head after its records.
    pub head: HeadAnswer,
    /// Where it stopped before its end: a gap, a record that does not
    /// continue the chain, or one that differs from the backup.
    pub stopped: Option<Stopped>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stopped {
    pub line: usize,
    pub position: u64,
    pub reason: String,
}

/// What `restore` rebuilt.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RestoredFromBackup {
    pub location: String,
    pub backup: String,
    pub ledger_id: String,
    pub n_segments: u64,
    pub backup_head: HeadAnswer,
    pub with: Vec<WithTaken>,
    pub head: HeadAnswer,
    pub seconds: f64,
}

/// Rebuilds the ledger at `location` (empty) from the backup in `dir`,
/// then from each of `with` (export-format files) the records that
/// continue the chain. Every segment and the records taken are checked
/// first: a damaged backup restores nothing.
pub fn restore(location: &Location, dir: &Path, with: &[PathBuf]) -> Result<RestoredFromBackup, BackupError> {
    let started = Instant::now();
    let backup = open_backup(dir)?;
    let backup_head = check_all(&backup)?;
    let mut continued = Continued { backup_head, head: backup_head, hashes: Vec::new() };
    let mut taken = Vec::new();
    let mut ranges = Vec::new();
    for file in with {
        let after = continued.head.position;
        taken.push(plan_with(&backup, file, &mut continued)?);
        ranges.push((file.as_path(), after, continued.head.position));
    }
    let head = rebuild(location, &backup, &ranges, continued.head.position)?;
    Ok(RestoredFromBackup {
        location: location.describe(),
        backup: dir.display().to_string(),
        ledger_id: backup.ledger_id.to_string(),
        n_segments: backup.n_segments,
        backup_head: backup_head.into(),
        with: taken,
        head: head.into(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The chain as the backup and the `--with` files taken so far continue
/// it: the hashes past the backup's head, to compare a later file's
/// records with.
struct Continued {
    backup_head: Head,
    head: Head,
    hashes: Vec<Hash>,
}

/// What to do with one record of a `--with` file.
enum Step {
    /// Already held, with the same hash.
    Skip,
    /// At a position already held, with another hash: ignored.
    Differs,
    Take,
    Stop(String),
}

/// Reads `file` to where it stops continuing the chain, extending
/// `continued` by the records it takes. Records at or below the head so
/// far are only compared (a gap or a damaged record there is no reason to
/// stop: the records held stand, and what follows must chain from them
/// anyway). Nothing is written yet.
fn plan_with(backup: &Backup, file: &Path, continued: &mut Continued) -> Result<WithTaken, BackupError> {
    let label = file.display().to_string();
    let opened = std::fs::File::open(file).map_err(|source| BackupError::Unreadable { path: file.into(), source })?;
    let mut cursor = BackupRecords::new(backup).peekable();
    let mut answer = WithTaken {
        file: label.clone(),
        n_skipped: 0,
        n_differing: 0,
        n_taken: 0,
        head: continued.head.into(),
        stopped: None,
    };
    for (line, text) in numbered_lines(BufReader::with_capacity(1 << 20, opened)) {
        let text = text.map_err(|error| BackupError::Line { label: label.clone(), error })?;
        let record = match with_line(&text, line).map_err(|error| BackupError::Line { label: label.clone(), error })? {
            WithLine::Header(ledger_id) => {
                check_with_ledger(&ledger_id, backup, &label)?;
                continue;
            }
            WithLine::Record(record) => record,
        };
        let position = record.position;
        match step(&mut cursor, continued, record)? {
            Step::Skip => answer.n_skipped += 1,
            Step::Differs => answer.n_differing += 1,
            Step::Take => answer.n_taken += 1,
            Step::Stop(reason) => {
                answer.stopped = Some(Stopped { line, position, reason });
                break;
            }
        }
    }
    answer.head = continued.head.into();
    Ok(answer)
}

/// A file whose header names another ledger is refused; one whose header
/// names none it can tell (a salvage that could not read the log's header)
/// is judged by its records' chain alone.
fn check_with_ledger(ledger_id: &str, backup: &Backup, label: &str) -> Result<(), BackupError> {
    if Uuid::parse_str(ledger_id).map_or(true, |named| named == backup.ledger_id) {
        return Ok(());
    }
    Err(BackupError::WithOtherLedger {
        file: label.to_string(),
        file_id: ledger_id.to_string(),
        backup_id: backup.ledger_id,
    })
}

fn step(
    cursor: &mut std::iter::Peekable<BackupRecords>,
    continued: &mut Continued,
    record: ExportedRecord,
) -> Result<Step, BackupError> {
    let position = record.position;
    if position <= continued.backup_head.position {
        return Ok(match backup_hash_at(cursor, position)? {
            Some(hash) if hash == record.hash => Step::Skip,
            _ => Step::Differs,
        });
    }
    let head = continued.head;
    if position <= head.position {
        let index = (position - continued.backup_head.position - 1) as usize;
        return Ok(if continued.hashes[index] == record.hash { Step::Skip } else { Step::Differs });
    }
    if position > head.position + 1 {
        return Ok(Step::Stop(format!("a gap: position {position} after the head at {}", head.position)));
    }
    match check_exported(&head, &record) {
        Ok(_) => {
            continued.head = Head { position, hash: record.hash };
            continued.hashes.push(record.hash);
            Ok(Step::Take)
        }
        Err(error) => Ok(Step::Stop(format!("does not continue the chain: {}", as_damage(error, position).reason))),
    }
}

/// The backup's hash at `position`, reading on from where the cursor is;
/// `None` when the cursor is already past it.
fn backup_hash_at(cursor: &mut std::iter::Peekable<BackupRecords>, position: u64) -> Result<Option<Hash>, BackupError> {
    loop {
        match cursor.peek() {
            Some(Ok(record)) if record.position < position => {}
            Some(Ok(record)) if record.position == position => return Ok(Some(record.hash)),
            Some(Ok(_)) | None => return Ok(None),
            Some(Err(_)) => {
                return match cursor.next() {
                    Some(Err(error)) => Err(error),
                    _ => unreachable!("peeked an error"),
                }
            }
        }
        cursor.next();
    }
}

/// A line of an export-format file: its header (the ledger id it names),
/// or a record.
enum WithLine {
    Header(String),
    Record(ExportedRecord),
}

fn with_line(text: &str, line: usize) -> Result<WithLine, LineError> {
    let object: serde_json::Value = serde_json::from_str(text).map_err(|e| LineError {
        line,
        field: None,
        message: format!("malformed JSON: {e}"),
    })?;
    if object.get("kind").and_then(serde_json::Value::as_str) == Some("header") {
        let ledger_id = object.get("ledger_id").and_then(serde_json::Value::as_str).unwrap_or("");
        return Ok(WithLine::Header(ledger_id.to_string()));
    }
    records::export_record_of(&object, line).map(WithLine::Record)
}

/// The records of a `--with` file at positions `after+1..=through`, in
/// order, as its plan found them.
struct WithRecords {
    lines: Box<dyn Iterator<Item = (usize, Result<String, LineError>)>>,
    label: String,
    next: u64,
    through: u64,
}

impl Iterator for WithRecords {
    type Item = Result<ExportedRecord, BackupError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.next <= self.through {
            let (line, text) = self.lines.next()?;
            let parsed = text.and_then(|text| with_line(&text, line));
            match parsed {
                Ok(WithLine::Record(record)) if record.position == self.next => {
                    self.next += 1;
                    return Some(Ok(record));
                }
                Ok(_) => {}
                Err(error) => {
                    self.through = 0;
                    return Some(Err(BackupError::Line { label: self.label.clone(), error }));
                }
            }
        }
        None
    }
}

fn with_records(
    file: &Path,
    after: u64,
    through: u64,
) -> Box<dyn Iterator<Item = Result<ExportedRecord, BackupError>>> {
    if through <= after {
        return Box::new(std::iter::empty());
    }
    match std::fs::File::open(file) {
        Ok(opened) => Box::new(WithRecords {
            lines: Box::new(numbered_lines(BufReader::with_capacity(1 << 20, opened))),
            label: file.display().to_string(),
            next: after + 1,
            through,
        }),
        Err(source) => Box::new(std::iter::once(Err(BackupError::Unreadable { path: file.into(), source }))),
    }
}

/// Writes the backup's records and the planned ranges of the `--with`
/// files (file, after, through) into the empty ledger at `location`.
fn rebuild(
    location: &Location,
    backup: &Backup,
    ranges: &[(&Path, u64, u64)],
    total: u64,
) -> Result<Head, BackupError> {
    let bar = progress::bar(total, "restoring");
    let with = ranges.iter().flat_map(|(file, after, through)| with_records(file, *after, *through));
    let records = BackupRecords::new(backup).chain(with).inspect(|item| {
        if item.is_ok() {
            bar.inc(1);
        }
    });
    let result = location.restore_log(&backup.header_bytes, records);
    bar.finish_and_clear();
    result.map_err(|stopped| match stopped {
        RestoreStopped::Input(error) => error,
        RestoreStopped::Storage(error) => storage(error),
    })
}
