//! Importing facts: every line parsed (`facts`), the decided ones judged
//! against the ledger plus the batch's earlier lines
//! (`family::check_batch`), then appended. `POST /v1/events` appends a
//! batch at once; `yibao import` and the demo stream a file of any size
//! (`chunks`: a validation pass, then chunks of one append each, with
//! `decided` judging the rule-decided facts in bounded memory). Both
//! share the decision and the answer.

mod chunks;
mod decided;

pub use chunks::{import, ImportOptions, Source, DEFAULT_CHUNK_FACTS};

use crate::channels::Channels;
use crate::error::{Classified, Kind, StorageError};
use crate::facts::{self, LineError, MAX_ERRORS_SHOWN};
use ledger::{AppendOutcome, Head, LedgerError, LogBackend, NewEvent};
use projections::coverage::Coverage;
use projections::family::{self, BatchRefusal, Family};
use serde::Serialize;
use std::io::BufRead;

/// The facts of a batch and the line each came from.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<NewEvent>,
    /// `line_numbers[i]` is the line of `events[i]`.
    pub line_numbers: Vec<usize>,
}

impl Batch {
    fn line_of(&self, index: usize) -> usize {
        // Every index the log or the rules name is one of the batch's.
        self.line_numbers.get(index).copied().unwrap_or(index + 1)
    }
}

/// The log's head: `POST /v1/events` answers with it, the CLI prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HeadAnswer {
    pub position: u64,
    /// SM3, hex.
    pub hash: String,
}

impl From<Head> for HeadAnswer {
    fn from(head: Head) -> HeadAnswer {
        HeadAnswer { position: head.position, hash: hex::encode(head.hash) }
    }
}

/// What an atomic append did: the answer of `POST /v1/events`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Appended {
    /// The position of each fact: new, or the original one for a repeat.
    pub positions: Vec<u64>,
    pub n_appended: usize,
    pub head: HeadAnswer,
}

impl From<AppendOutcome> for Appended {
    fn from(outcome: AppendOutcome) -> Appended {
        Appended { positions: outcome.positions, n_appended: outcome.n_appended, head: outcome.head.into() }
    }
}

/// What importing a file did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Imported {
    pub n_facts: usize,
    /// Facts already recorded (same key, same content): not appended again.
    pub n_repeated: usize,
    #[serde(flatten)]
    pub appended: Appended,
    /// From each append's start to its acknowledgement, added up.
    pub durable_seconds: f64,
    /// Appends made: each chunk of the file is one, durable once acknowledged.
    pub n_chunks: usize,
    /// Facts per chunk (the last one may hold fewer).
    pub chunk_facts: usize,
    /// The pass that checked the whole file before anything was appended.
    pub validation_seconds: f64,
    /// The person store brought to the new head, after the appends.
    pub person_store: PersonStoreCaughtUp,
}

/// The person store's catch-up at the end of an import.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PersonStoreCaughtUp {
    /// Records folded into it (0 when it was at the head or could not be used).
    pub n_folded: u64,
    pub seconds: f64,
}

/// A line refused by the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineRefusal {
    pub line: usize,
    pub field: Option<&'static str>,
    pub reason: String,
}

/// Importing a batch failed; nothing of it was appended.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Lines that are not valid facts (the first `MAX_ERRORS_SHOWN`).
    #[error("{}", lines_message(label, *n_errors, errors))]
    Lines { label: String, n_errors: usize, errors: Vec<LineError> },
    /// `DIR/channels.toml` cannot be used: no fact naming a channel can be judged.
    #[error(transparent)]
    Channels(#[from] crate::channels::ChannelsError),
    /// Valid facts the rules refuse against the ledger and the batch's
    /// earlier lines (the first `MAX_ERRORS_SHOWN`).
    #[error("{}", refusals_message(label, what, *n_refused, refusals))]
    Refused { label: String, what: &'static str, n_refused: usize, refusals: Vec<LineRefusal> },
    /// A fact the log's writer refuses (a field's limit).
    #[error("{label}:line {line}: field `{field}`: {reason}; nothing from this file was appended")]
    Invalid { label: String, line: usize, field: &'static str, reason: String },
    #[error("{label}: nothing from this file was appended")]
    Storage {
        label: String,
        #[source]
        source: StorageError,
    },
    /// The file cannot be read (again, for the next pass).
    #[error("cannot read {label}; nothing from this file was appended")]
    Read {
        label: String,
        #[source]
        source: std::io::Error,
    },
    /// Lines whose key the log, or an earlier line, holds with other content
    /// (the first `MAX_ERRORS_SHOWN`).
    #[error("{}", conflicts_message(label, *n_conflicts, conflicts))]
    Conflicts { label: String, n_conflicts: usize, conflicts: Vec<LineRefusal> },
    /// The file read for appending is not the one validated.
    #[error(
        "{label}:line {line}: the file changed after it was validated (the chunk from this line on differs); \
         import it again once it is written"
    )]
    Changed { label: String, line: usize },
    /// An append after the first failed: the chunks before it are recorded.
    #[error(
        "{label}: stopped after {n_chunks_recorded} of {n_chunks} chunks (through line {last_line}), which are \
         recorded; the same command appends the rest once the cause is fixed"
    )]
    Stopped {
        label: String,
        n_chunks_recorded: usize,
        n_chunks: usize,
        last_line: usize,
        #[source]
        source: Box<ImportError>,
    },
}

impl Classified for ImportError {
    fn kind(&self) -> Kind {
        match self {
            ImportError::Lines { .. }
            | ImportError::Invalid { .. }
            | ImportError::Channels(_)
            | ImportError::Read { .. }
            | ImportError::Changed { .. } => Kind::BadInput,
            ImportError::Refused { .. } => Kind::Refused,
            ImportError::Conflicts { .. } => Kind::Conflict,
            ImportError::Storage { source, .. } => source.kind(),
            ImportError::Stopped { source, .. } => source.kind(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ImportError::Lines { errors, .. } => errors.first().and_then(|e| e.field.as_deref()),
            ImportError::Refused { refusals, .. } => refusals.first().and_then(|r| r.field),
            ImportError::Invalid { field, .. } => Some(field),
            ImportError::Conflicts { conflicts, .. } => conflicts.first().and_then(|c| c.field),
            ImportError::Stopped { source, .. } => source.field(),
            ImportError::Channels(_)
            | ImportError::Storage { .. }
            | ImportError::Read { .. }
            | ImportError::Changed { .. } => None,
        }
    }
}

fn lines_message(label: &str, n_errors: usize, errors: &[LineError]) -> String {
    let mut message = format!("{label}: {n_errors} bad line(s); nothing from this file was appended");
    for error in errors {
        message.push_str(&format!("\n  {label}:{error}"));
    }
    if n_errors > errors.len() {
        message.push_str(&format!("\n  ... and {} more", n_errors - errors.len()));
    }
    message
}

fn conflicts_message(label: &str, n_conflicts: usize, conflicts: &[LineRefusal]) -> String {
    let mut message =
        format!("{label}: {n_conflicts} key(s) already given to other content; nothing from this file was appended");
    push_refusals(&mut message, label, n_conflicts, conflicts);
    message
}

/// The refusals of a batch as the user reads them: the count, then each
/// line with its field and the rule.
pub fn refusals_message(label: &str, what: &str, n_refused: usize, refusals: &[LineRefusal]) -> String {
    let mut message =
        format!("{label}: {n_refused} line(s) refused by the rules; nothing from this {what} was appended");
    push_refusals(&mut message, label, n_refused, refusals);
    message
}

fn push_refusals(message: &mut String, label: &str, n_refused: usize, refusals: &[LineRefusal]) {
    for refusal in refusals {
        match refusal.field {
            Some(field) => {
                message.push_str(&format!("\n  {label}:line {}: field `{field}`: {}", refusal.line, refusal.reason))
            }
            None => message.push_str(&format!("\n  {label}:line {}: {}", refusal.line, refusal.reason)),
        }
    }
    if n_refused > refusals.len() {
        message.push_str(&format!("\n  ... and {} more", n_refused - refusals.len()));
    }
}

/// Each line of `reader`, by number, as text; blank lines are skipped.
pub fn numbered_lines(reader: impl BufRead) -> impl Iterator<Item = (usize, Result<String, LineError>)> {
    reader.split(b'\n').enumerate().filter_map(|(index, bytes)| {
        let line = index + 1;
        let text = match bytes {
            Err(e) => Err(LineError { line, field: None, message: format!("cannot read: {e}") }),
            Ok(bytes) => {
                String::from_utf8(bytes).map_err(|_| LineError { line, field: None, message: "not UTF-8 text".into() })
            }
        };
        match text {
            Ok(text) if text.trim().is_empty() => None,
            Ok(text) => Some((line, Ok(text.trim_end_matches('\r').to_string()))),
            Err(e) => Some((line, Err(e))),
        }
    })
}

/// Parses a whole file of facts; any bad line refuses the file, every bad
/// line counted and the first `MAX_ERRORS_SHOWN` named.
pub fn read_facts(input: impl BufRead, label: &str, actor: &str, channels: &Channels) -> Result<Batch, ImportError> {
    let mut batch = Batch::default();
    let mut errors: Vec<LineError> = Vec::new();
    let mut n_errors = 0;
    for (line, text) in numbered_lines(input) {
        match text.and_then(|text| facts::parse_line_with(&text, line, actor, channels)) {
            Ok(event) => {
                batch.events.push(event);
                batch.line_numbers.push(line);
            }
            Err(error) => {
                n_errors += 1;
                if errors.len() < MAX_ERRORS_SHOWN {
                    errors.push(error);
                }
            }
        }
    }
    if n_errors > 0 {
        return Err(ImportError::Lines { label: label.to_string(), n_errors, errors });
    }
    Ok(batch)
}

/// The batch's decision: each decided fact (bindings, proxy applications
/// and steps, refunds, assessments) against `coverage` and `family` (one
/// position) plus the batch's earlier facts. `what` names the batch in
/// the message ("file", "request").
pub fn check_batch(
    coverage: &Coverage,
    family: &Family,
    batch: &Batch,
    label: &str,
    what: &'static str,
) -> Result<(), ImportError> {
    let refusals = family::check_batch(family, coverage, &batch.events);
    if refusals.is_empty() {
        return Ok(());
    }
    let named = refusals.iter().take(MAX_ERRORS_SHOWN).map(|r| line_refusal(batch, r)).collect();
    Err(ImportError::Refused { label: label.to_string(), what, n_refused: refusals.len(), refusals: named })
}

fn line_refusal(batch: &Batch, refusal: &BatchRefusal) -> LineRefusal {
    LineRefusal { line: batch.line_of(refusal.index), field: refusal.field, reason: refusal.reason.clone() }
}

/// Whether any fact of the batch is one the rules decide.
pub fn has_decided(events: &[NewEvent]) -> bool {
    events.iter().any(|new| family::is_decided(&new.event))
}

/// The append of a checked batch, all or none; a fact the writer refuses
/// is named by its line.
pub fn append_batch(log: &(impl LogBackend + ?Sized), batch: Batch, label: &str) -> Result<Appended, ImportError> {
    let line_numbers = batch.line_numbers;
    let outcome = log.append_blocking(batch.events).map_err(|error| match error {
        LedgerError::InvalidEvent { index, error } => ImportError::Invalid {
            label: label.to_string(),
            line: line_numbers.get(index).copied().unwrap_or(index + 1),
            field: error.field,
            reason: error.reason,
        },
        other => ImportError::Storage { label: label.to_string(), source: other.into() },
    })?;
    Ok(outcome.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_line_is_counted_and_named_with_its_field() {
        let text = "{\"type\":\"payment_received\"}\n\n{not json\n";
        let error = read_facts(text.as_bytes(), "f.jsonl", "test", Channels::built_in()).expect_err("bad lines");
        assert_eq!(error.kind(), Kind::BadInput);
        let ImportError::Lines { n_errors, errors, .. } = &error else { panic!("{error:?}") };
        assert_eq!((*n_errors, errors[0].line, errors[1].line), (2, 1, 3));
        assert_eq!(error.field(), Some("v"));
        assert!(error.to_string().contains("f.jsonl:line 3: "), "{error}");
    }
}
