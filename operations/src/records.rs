//! The log's own records: creating a ledger (`init`), a page of envelopes
//! (`log`), the chain checked (`verify`), and the export file written and
//! restored. One answer type per record shape, so `yibao log --json` and
//! an export line are the same JSON.

use crate::error::{Classified, Kind, StorageError};
use crate::facts::{self, LineError};
use crate::handle::OpenError;
use crate::import::HeadAnswer;
use crate::location::RestoreStopped;
use crate::location::{Backend, Location};
use crate::progress;
use crate::salvage::{self, SalvageAnswer, SalvageError};
use ledger::log::restore::ExportedRecord;
use ledger::log::LogHeader;
use ledger::log::{VerifyProblem, VerifyReport};
use ledger::{envelope, Envelope, Hash, Head, LedgerError, LogReader, LogStore, OpenMode};
use serde::Serialize;
use serde_json::Value;
use std::io::Write;
use std::time::Instant;

/// One envelope: everything an auditor needs to check it (`yibao log
/// --json`, and each record line of an export, which adds `stored`).
/// Fields in name order, as the JSON has always listed them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EnvelopeAnswer {
    pub actor: String,
    pub event: Value,
    pub event_id: String,
    pub hash: String,
    pub idempotency_key: String,
    /// Always `record`: an export's first line is the `header`.
    pub kind: &'static str,
    pub position: u64,
    pub prev_hash: String,
    pub recorded_at: String,
    /// The stored bytes, hex: in an export only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored: Option<String>,
    pub stream: String,
    pub stream_version: u64,
    #[serde(rename = "type")]
    pub type_name: &'static str,
    pub v: u64,
}

impl EnvelopeAnswer {
    pub fn new(envelope: &Envelope, stored: Option<&[u8]>) -> EnvelopeAnswer {
        let head = &envelope.head;
        EnvelopeAnswer {
            actor: head.actor.clone(),
            event: facts::event_fields(&envelope.event),
            event_id: head.event_id.to_string(),
            hash: hex::encode(envelope.hash),
            idempotency_key: head.idempotency_key.clone(),
            kind: "record",
            position: head.position,
            prev_hash: hex::encode(envelope.prev_hash),
            recorded_at: head.recorded_at.to_string(),
            stored: stored.map(hex::encode),
            stream: head.stream.clone(),
            stream_version: head.stream_version,
            type_name: envelope.event.type_name(),
            v: u64::from(envelope.event.version()),
        }
    }
}

/// What `init` found or made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Initialized {
    /// The data directory, or the database without its password.
    pub location: String,
    /// False when the directory or database already held a ledger.
    pub created: bool,
    pub ledger_id: String,
    pub hash_algorithm: String,
    pub format: String,
    pub format_version: u32,
    pub head_position: u64,
}

/// Creates the ledger at `location`, or opens the one there.
pub fn init(location: &Location) -> Result<Initialized, OpenError> {
    let failed = |e: LedgerError| OpenError::Storage { location: location.describe(), source: e.into() };
    let existed = match &location.store {
        Backend::Sled => location.data.join("log").join("db").exists(),
        Backend::Postgres(_) => match location.open_log(OpenMode::Read) {
            Ok(_) => true,
            Err(LedgerError::NotFound(_)) => false,
            Err(other) => return Err(failed(other)),
        },
    };
    let log = location.open_log(OpenMode::Create).map_err(failed)?;
    let header = log.header();
    Ok(Initialized {
        location: location.describe(),
        created: !existed,
        ledger_id: header.ledger_id.to_string(),
        hash_algorithm: header.hash_algorithm.clone(),
        format: header.format.clone(),
        format_version: header.format_version,
        head_position: log.durable_head().position,
    })
}

/// A page of the log: positions `from..=to` of a log whose head is `head`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LogPage {
    pub from: u64,
    /// Below `from` when the page is empty.
    pub to: u64,
    pub head: u64,
}

impl LogPage {
    /// At most `limit` records from `from` (1 at the least), up to the head.
    pub fn new(log: &dyn LogReader, from: u64, limit: usize) -> LogPage {
        let head = log.durable_head().position;
        let from = from.max(1);
        let to = head.min(from.saturating_add(limit as u64).saturating_sub(1));
        LogPage { from, to, head }
    }

    /// Each envelope of the page, in position order.
    pub fn scan(&self, log: &dyn LogReader, visit: &mut dyn FnMut(Envelope)) -> Result<(), StorageError> {
        if self.to < self.from {
            return Ok(());
        }
        log.scan(self.from, self.to, |envelope| {
            visit(envelope);
            Ok(())
        })?;
        Ok(())
    }
}

/// What `verify` found: the chain checked from the first position to the
/// last that verified, and the first problem, if any.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verified {
    pub hash_algorithm: String,
    pub ledger_id: String,
    pub first_position: u64,
    pub last_good: HeadAnswer,
    pub n_records: u64,
    pub n_blocks: u64,
    pub seconds: f64,
    /// An append a crash cut short: never acknowledged, discarded.
    pub unfinished: Option<UnfinishedAnswer>,
    pub problem: Option<ProblemAnswer>,
    /// For a store sled cannot read: what reading its files without sled
    /// found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damage: Option<SalvageAnswer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnfinishedAnswer {
    pub n_records: u64,
    pub after: u64,
}

/// The first position that failed, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProblemAnswer {
    pub position: u64,
    /// sled cannot read its own files: restore from an export.
    pub store_damaged: bool,
    pub description: String,
}

impl From<&VerifyProblem> for ProblemAnswer {
    fn from(problem: &VerifyProblem) -> ProblemAnswer {
        ProblemAnswer {
            position: problem.position(),
            store_damaged: matches!(problem, VerifyProblem::Unreadable { .. }),
            description: problem.to_string(),
        }
    }
}

/// `verify` could not check the chain.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("opening the ledger{}", crate::location::at_unless_named(.location, .source))]
    Open {
        location: String,
        #[source]
        source: StorageError,
    },
    /// The store is damaged and its files could not be read raw either.
    #[error(transparent)]
    Salvage(#[from] SalvageError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Classified for VerifyError {
    fn kind(&self) -> Kind {
        match self {
            VerifyError::Open { source, .. } | VerifyError::Storage(source) => source.kind(),
            VerifyError::Salvage(error) => error.kind(),
        }
    }
}

/// Recomputes positions and the SM3 chain of `from..=to` (0: the head),
/// changing nothing (the audit open). A sled store that sled cannot open
/// or read is read without sled (`salvage`): the answer then names the
/// first damaged position, what could not be read and what could.
pub fn verify(location: &Location, from: u64, to: u64) -> Result<Verified, VerifyError> {
    let started = Instant::now();
    let log = match location.open_log(OpenMode::Audit) {
        Ok(log) => log,
        Err(error) if is_store_damage(location, &error) => {
            return unopenable(location, from, &damage_detail(&error), started)
        }
        Err(other) => return Err(VerifyError::Open { location: location.describe(), source: other.into() }),
    };
    let head = log.durable_head().position;
    let last = if to == 0 { head } else { to.min(head) };
    let bar = progress::bar(last.saturating_sub(from.max(1)) + 1, "verifying");
    let report = match log.verify(from, to, &mut |n| bar.set_position(n)) {
        Ok(report) => report,
        Err(error) if is_store_damage(location, &error) => {
            bar.finish_and_clear();
            drop(log);
            return unopenable(location, from, &damage_detail(&error), started);
        }
        Err(error) => return Err(StorageError::from(error).into()),
    };
    bar.finish_and_clear();
    if matches!(report.problem, Some(VerifyProblem::Unreadable { .. })) && matches!(location.store, Backend::Sled) {
        // sled's files are read raw, with sled's lock let go first.
        let header = log.header().clone();
        drop(log);
        let found = SalvageAnswer::from(&salvage::read(location)?);
        return Ok(verified_of(&header, report, Some(found), started));
    }
    Ok(verified_of(log.header(), report, None, started))
}

fn verified_of(header: &LogHeader, report: VerifyReport, damage: Option<SalvageAnswer>, started: Instant) -> Verified {
    Verified {
        hash_algorithm: header.hash_algorithm.clone(),
        ledger_id: header.ledger_id.to_string(),
        first_position: report.first_position,
        last_good: report.last_good.into(),
        n_records: report.n_records,
        n_blocks: report.n_blocks,
        seconds: started.elapsed().as_secs_f64(),
        unfinished: report.unfinished.map(|u| UnfinishedAnswer { n_records: u.n_records, after: u.after }),
        problem: report.problem.as_ref().map(ProblemAnswer::from),
        damage,
    }
}

/// Damage sled reports in its own files (on sled only: PostgreSQL has
/// its own recovery). A header of another format or version (`Corrupt`
/// at position 0) is no damage: it is said as it is.
fn is_store_damage(location: &Location, error: &LedgerError) -> bool {
    let damage = match error {
        LedgerError::StoreDamaged { .. } | LedgerError::Sled(_) => true,
        LedgerError::Corrupt { position, .. } => *position > 0,
        _ => false,
    };
    damage && matches!(location.store, Backend::Sled)
}

/// What sled said of its damaged files, without the advice around it.
fn damage_detail(error: &LedgerError) -> String {
    match error {
        LedgerError::StoreDamaged { detail } => detail.clone(),
        other => ledger::error::chain(other),
    }
}

/// The answer for a store sled cannot open (or read on): what the raw
/// reading found.
fn unopenable(location: &Location, from: u64, detail: &str, started: Instant) -> Result<Verified, VerifyError> {
    let found = salvage::read(location)?;
    let damage = SalvageAnswer::from(&found);
    let position = damage.first_damaged.unwrap_or(found.unbroken_to + 1);
    let first = from.max(1);
    Ok(Verified {
        hash_algorithm: found.header.as_ref().map_or_else(|| "unknown".into(), |h| h.hash_algorithm.clone()),
        ledger_id: found.header.as_ref().map_or_else(|| "unknown".into(), |h| h.ledger_id.to_string()),
        first_position: first,
        last_good: Head { position: found.unbroken_to, hash: found.unbroken_hash }.into(),
        n_records: found.unbroken_to.saturating_sub(first - 1),
        n_blocks: 0,
        seconds: started.elapsed().as_secs_f64(),
        unfinished: None,
        problem: Some(ProblemAnswer {
            position,
            store_damaged: true,
            description: format!(
                "the ledger store at {} is damaged ({detail}): sled cannot read it",
                location.describe()
            ),
        }),
        damage: Some(damage),
    })
}

/// An export's first line: the log's header, its stored bytes and the head
/// at export. Fields in name order, as the JSON has always listed them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportHeader {
    pub bytes: String,
    pub created_at: String,
    pub format: String,
    pub format_version: u32,
    pub genesis_hash: String,
    pub hash_algorithm: String,
    pub head_hash: String,
    pub head_position: u64,
    /// Always `header`.
    pub kind: &'static str,
    pub ledger_id: String,
}

/// What `export` wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exported {
    pub n_records: u64,
    pub head: HeadAnswer,
}

/// Exporting failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The output could not be written (a reader that went away included).
    #[error("writing the export")]
    Write(#[source] std::io::Error),
    /// A stored block or record does not decode.
    #[error("damaged block at position {position}: {reason}; run `yibao verify`")]
    Damaged { position: u64, reason: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Classified for ExportError {
    fn kind(&self) -> Kind {
        match self {
            ExportError::Write(_) | ExportError::Damaged { .. } => Kind::Failure,
            ExportError::Storage(error) => error.kind(),
        }
    }
}

/// Writes the log to `out` as JSON Lines: the header, then every record
/// to the durable head with its stored bytes, so `restore` can rebuild
/// the same chain (whichever backend it is restored into).
pub fn export(log: &dyn LogStore, out: &mut dyn Write) -> Result<Exported, ExportError> {
    let head = log.durable_head();
    write_line(out, &export_header(log, head))?;
    let bar = progress::bar(head.position, "exporting");
    let mut prev = log.genesis_hash();
    for record in log.stored_records(1).map_err(StorageError::from)? {
        let record = record.map_err(|error| match error {
            LedgerError::Corrupt { position, reason } => ExportError::Damaged { position, reason },
            other => ExportError::Storage(other.into()),
        })?;
        if record.position > head.position {
            break;
        }
        write_record(out, record.position, &record.stored, prev, record.hash)?;
        prev = record.hash;
        bar.inc(1);
    }
    bar.finish_and_clear();
    out.flush().map_err(ExportError::Write)?;
    Ok(Exported { n_records: head.position, head: head.into() })
}

fn export_header(log: &dyn LogStore, head: Head) -> ExportHeader {
    export_header_of(log.header(), log.header_bytes(), log.genesis_hash(), head)
}

/// An export's header line for a log with this header (and its stored
/// bytes), whose last record written is `head`.
pub fn export_header_of(header: &LogHeader, header_bytes: &[u8], genesis: Hash, head: Head) -> ExportHeader {
    ExportHeader {
        bytes: hex::encode(header_bytes),
        created_at: header.created_at.to_string(),
        format: header.format.clone(),
        format_version: header.format_version,
        genesis_hash: hex::encode(genesis),
        hash_algorithm: header.hash_algorithm.clone(),
        head_hash: hex::encode(head.hash),
        head_position: head.position,
        kind: "header",
        ledger_id: header.ledger_id.to_string(),
    }
}

/// One record line of an export: the envelope its stored bytes decode to,
/// with those bytes and its hashes.
fn write_record(
    out: &mut dyn Write,
    position: u64,
    stored: &[u8],
    prev_hash: Hash,
    hash: Hash,
) -> Result<(), ExportError> {
    let (head, event) =
        envelope::decode_record(stored).map_err(|e| ExportError::Damaged { position, reason: e.to_string() })?;
    write_line(out, &EnvelopeAnswer::new(&Envelope { head, event, prev_hash, hash }, Some(stored)))
}

fn write_line(out: &mut dyn Write, line: &impl Serialize) -> Result<(), ExportError> {
    serde_json::to_writer(&mut *out, line).map_err(|e| ExportError::Write(e.into()))?;
    out.write_all(b"\n").map_err(ExportError::Write)
}

/// Writes every readable record of the sled store at `location` to `out`
/// as an export does (`yibao salvage`): the header line (the header's
/// stored bytes; its head is the last record written), then the records in
/// position order, records after a gap included, each with its hash, so
/// the chain shows where the gap is.
pub fn export_salvage(location: &Location, out: &mut dyn Write) -> Result<SalvageAnswer, SalvageError> {
    let found = salvage::read(location)?;
    let answer = SalvageAnswer::from(&found);
    let (Some(header_bytes), Some(header), Some(genesis)) = (&found.header_bytes, &found.header, found.genesis) else {
        return Err(SalvageError::NoHeader { location: location.describe(), n_records: found.n_records });
    };
    let head = found.last.unwrap_or(Head { position: 0, hash: genesis });
    let header_line = export_header_of(header, header_bytes, genesis, head);
    write_line(out, &header_line).map_err(salvage_write)?;
    let mut write_error = None;
    let read = found.records(&mut |record| {
        write_record(out, record.position, &record.stored, record.prev_hash, record.hash).map_err(|error| match error {
            ExportError::Damaged { position, reason } => LedgerError::Corrupt { position, reason },
            error => {
                let stopped = LedgerError::Io(std::io::Error::other(error.to_string()));
                write_error = Some(salvage_write(error));
                stopped
            }
        })
    });
    if let Some(error) = write_error {
        return Err(error);
    }
    read.map_err(|error| SalvageError::Read { location: location.describe(), source: error.into() })?;
    out.flush().map_err(SalvageError::Write)?;
    Ok(answer)
}

fn salvage_write(error: ExportError) -> SalvageError {
    match error {
        ExportError::Write(error) => SalvageError::Write(error),
        other => SalvageError::Write(std::io::Error::other(other.to_string())),
    }
}

/// What `restore` rebuilt.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Restored {
    /// The data directory, or the database without its password.
    pub location: String,
    pub head: HeadAnswer,
    /// The head the export's header names, when it names one.
    pub exported_head_hash: Option<String>,
    pub seconds: f64,
}

impl Restored {
    /// False when the export's header names another head than the one
    /// rebuilt.
    pub fn matches_export(&self) -> bool {
        self.exported_head_hash.as_ref().is_none_or(|expected| *expected == self.head.hash)
    }
}

/// Restoring failed; nothing was restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{label}: empty, expected an export whose first line is the header")]
    Empty { label: String },
    /// A line of the file is not what an export holds, named by its line
    /// and field.
    #[error("{label}:{error}; nothing was restored")]
    Line { label: String, error: LineError },
    /// A record that does not follow the chain (changed bytes or hash, a
    /// gap).
    #[error("{label}: record at position {position}: {reason}; nothing was restored")]
    Record { label: String, position: u64, reason: String },
    #[error("restoring {label}")]
    Storage {
        label: String,
        #[source]
        source: StorageError,
    },
}

impl Classified for RestoreError {
    fn kind(&self) -> Kind {
        match self {
            RestoreError::Empty { .. } | RestoreError::Line { .. } | RestoreError::Record { .. } => Kind::BadInput,
            RestoreError::Storage { source, .. } => source.kind(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            RestoreError::Line { error, .. } => error.field.as_deref(),
            _ => None,
        }
    }
}

/// Rebuilds the log at `location` (an empty directory or database) from
/// an export's numbered lines (`import::numbered_lines`): the header's
/// stored bytes, then every record, each chained as it was. Any bad line
/// refuses the whole file, named by its line and field.
pub fn restore(
    location: &Location,
    mut lines: impl Iterator<Item = (usize, Result<String, LineError>)>,
    label: &str,
) -> Result<Restored, RestoreError> {
    let bad_line = |error: LineError| RestoreError::Line { label: label.to_string(), error };
    let (line, header_text) = lines.next().ok_or_else(|| RestoreError::Empty { label: label.to_string() })?;
    let header = export_header_line(&header_text.map_err(bad_line)?, line).map_err(bad_line)?;
    let header_bytes = hex_field(&header, "bytes", line).map_err(bad_line)?;
    let records = lines.map(|(line, text)| text.and_then(|text| export_record(&text, line)));
    let started = Instant::now();
    let head = location.restore_log(&header_bytes, records).map_err(|stopped| match stopped {
        RestoreStopped::Input(error) => bad_line(error),
        RestoreStopped::Storage(LedgerError::Corrupt { position, reason }) => {
            RestoreError::Record { label: label.to_string(), position, reason }
        }
        RestoreStopped::Storage(other) => RestoreError::Storage { label: label.to_string(), source: other.into() },
    })?;
    Ok(Restored {
        location: location.describe(),
        head: head.into(),
        exported_head_hash: header.get("head_hash").and_then(Value::as_str).map(str::to_string),
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn export_header_line(text: &str, line: usize) -> Result<Value, LineError> {
    let header: Value = serde_json::from_str(text).map_err(|e| LineError {
        line,
        field: None,
        message: format!("malformed JSON: {e}"),
    })?;
    if header.get("kind").and_then(Value::as_str) != Some("header") {
        return Err(LineError {
            line,
            field: Some("kind".into()),
            message: "expected \"header\" (is this an `export --jsonl` file?)".into(),
        });
    }
    Ok(header)
}

fn hex_field(object: &Value, field: &str, line: usize) -> Result<Vec<u8>, LineError> {
    let text = object.get(field).and_then(Value::as_str).ok_or_else(|| LineError {
        line,
        field: Some(field.into()),
        message: "missing or not a string".into(),
    })?;
    hex::decode(text).map_err(|e| LineError { line, field: Some(field.into()), message: format!("not hex: {e}") })
}

fn export_record(text: &str, line: usize) -> Result<ExportedRecord, LineError> {
    let object: Value = serde_json::from_str(text).map_err(|e| LineError {
        line,
        field: None,
        message: format!("malformed JSON: {e}"),
    })?;
    export_record_of(&object, line)
}

/// A record line of an export, parsed: its position, stored bytes and hash.
pub(crate) fn export_record_of(object: &Value, line: usize) -> Result<ExportedRecord, LineError> {
    let position = object.get("position").and_then(Value::as_u64).ok_or_else(|| LineError {
        line,
        field: Some("position".into()),
        message: "missing or not a number".into(),
    })?;
    let stored = hex_field(object, "stored", line)?;
    let hash: [u8; 32] = hex_field(object, "hash", line)?.try_into().map_err(|_| LineError {
        line,
        field: Some("hash".into()),
        message: "not 32 bytes".into(),
    })?;
    Ok(ExportedRecord { position, stored, hash })
}
