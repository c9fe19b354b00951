//! Reconcile and record: receipt files (bytes, parsed by the `reconcile`
//! crate) against the payments and refunds the log holds, and the run
//! recorded in the log once, by its content. `yibao reconcile` and the demo
//! run it; its answer, [`Reconciled`], is what `--json` prints.

use crate::error::{Classified, Kind, StorageError};
use crate::facts;
use crate::handle::Ledger;
use ledger::event::FieldError;
use ledger::{Event, Hash, Head, LogBackend, LogReader};
use reconcile::{
    Finding, FindingKind, Format, Layout, LedgerPayment, Mapping, MatchOptions, Names, ParsedFile, Period,
    ReconcileError, Report, RunDefinition, Summary,
};
use serde::Serialize;
use std::collections::HashSet;

/// A receipt file as read: the name errors and receipts give it, and its
/// bytes.
pub struct ReceiptFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A format the caller names; when none is named, each file's content says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptFormat {
    /// camt.053 or camt.054 (the parser reads both).
    Camt053,
    Mt940,
    Wechat,
    Alipay,
    /// A batch-collection return, by [`Reading::layout`].
    BatchReturn,
    /// Any CSV, through the mapping.
    Csv,
}

/// How receipt files are read.
pub struct Reading {
    pub format: Option<ReceiptFormat>,
    /// The mapping of a generic CSV with the SM3 of its text (part of what
    /// identifies a run).
    pub mapping: Option<(Mapping, Hash)>,
    /// The layout of a batch-collection return (a shipped preset or a
    /// file) with the SM3 of its text.
    pub layout: Option<(Layout, Hash)>,
    /// The channel the receipts came through, in the ledger's spelling
    /// ([`crate::channels::Channels::canonical`]).
    pub channel: Option<String>,
}

/// How a run compares and whether it is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOptions {
    pub period: Option<Period>,
    pub tolerance_days: u32,
    pub record: bool,
}

/// One row of the summary: a result on one side, receipts and recorded
/// facts counted and summed (yuan).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SummaryLine {
    pub result: &'static str,
    pub side: &'static str,
    pub receipts: u64,
    pub receipts_amount: String,
    pub ledger: u64,
    pub ledger_amount: String,
}

/// A finding as the CSV of findings lays it out: the first receipt and the
/// first recorded fact it names (empty when none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FindingLine {
    pub result: &'static str,
    pub side: &'static str,
    pub receipt_source: String,
    pub reference: String,
    pub receipt_amount: String,
    pub ledger_position: String,
    pub ledger_reference: String,
    pub ledger_amount: String,
}

impl FindingLine {
    fn of(finding: &Finding<'_>) -> FindingLine {
        let receipt = finding.receipts.first();
        let payment = finding.ledger.first();
        FindingLine {
            result: finding.kind.name(),
            side: finding.side.name(),
            receipt_source: receipt.map(|r| r.source()).unwrap_or_default(),
            reference: receipt.and_then(|r| r.reference.clone()).unwrap_or_default(),
            receipt_amount: receipt.map(|r| r.amount.to_string()).unwrap_or_default(),
            ledger_position: payment.map(|p| p.position.to_string()).unwrap_or_default(),
            ledger_reference: payment.map(|p| p.channel_ref.clone()).unwrap_or_default(),
            ledger_amount: payment.map(|p| p.amount.to_string()).unwrap_or_default(),
        }
    }
}

/// The run as recorded in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRun {
    pub run_id: String,
    pub position: u64,
    /// Appended now; `false`: the same run was already recorded there.
    pub appended: bool,
}

/// The answer of a run: the summary, the breaks, and (for the text and
/// CSV renderings) the whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Reconciled {
    /// Every receipt matched and every recorded payment and refund too.
    pub clean: bool,
    pub summary: Vec<SummaryLine>,
    /// Every finding that is not a match, described.
    pub breaks: Vec<String>,
    pub rejected_statements: u64,
    /// Rows a file lists as not received (a batch return's failed debits,
    /// a status column's refused transfers), described: never matched as
    /// paid (a recorded payment for one is a break: ledger only).
    pub not_received: Vec<String>,
    /// Every finding, matches included (the CSV's rows).
    #[serde(skip)]
    pub findings: Vec<FindingLine>,
    /// The log position compared with (see [`ledger_payments`]).
    #[serde(skip)]
    pub compared_position: u64,
    /// `None` when not asked to record.
    #[serde(skip)]
    pub recorded: Option<RecordedRun>,
}

impl Reconciled {
    pub fn n_breaks(&self) -> usize {
        self.breaks.len()
    }
}

/// A run failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileRunError {
    /// A receipt file or the mapping cannot be read: the message names the
    /// file and where in it.
    #[error(transparent)]
    Receipts(ReconcileError),
    /// A CSV was named without a mapping to read it by.
    #[error("a CSV of receipts needs a mapping")]
    NoMapping,
    /// A batch return was named without a layout to read it by.
    #[error("a batch-collection return needs a layout (a preset such as rural-credit-return, or --mapping LAYOUT)")]
    NoLayout,
    /// The run's fact fails the edge's checks.
    #[error("field `{}`: {}", .0.field, .0.reason)]
    Field(FieldError),
    #[error("reading or recording the run")]
    Storage(#[from] StorageError),
}

impl Classified for ReconcileRunError {
    fn kind(&self) -> Kind {
        match self {
            ReconcileRunError::Receipts(_)
            | ReconcileRunError::NoMapping
            | ReconcileRunError::NoLayout
            | ReconcileRunError::Field(_) => Kind::BadInput,
            ReconcileRunError::Storage(error) => error.kind(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ReconcileRunError::NoMapping | ReconcileRunError::NoLayout => Some("mapping"),
            ReconcileRunError::Field(error) => Some(error.field),
            _ => None,
        }
    }
}

/// Parses every file, each by the format named or the one its content
/// shows; nothing is compared until every file has been read.
pub fn parse(files: &[ReceiptFile], reading: &Reading) -> Result<Vec<ParsedFile>, ReconcileRunError> {
    files
        .iter()
        .map(|file| {
            let format = format_of(reading, file)?;
            reconcile::parse_bytes(&file.name, &file.bytes, &format).map_err(ReconcileRunError::Receipts)
        })
        .collect()
}

/// The format named, else the one the file's content shows. A file of a
/// format not read at all (MT940, PDF, …) is refused either way.
fn format_of(reading: &Reading, file: &ReceiptFile) -> Result<Format, ReconcileRunError> {
    let channel = reading.channel.clone();
    let mapping = reading.mapping.as_ref().map(|(mapping, _)| mapping);
    let Some(named) = reading.format else {
        return reconcile::detect_format(&file.name, &file.bytes, mapping, channel.as_deref())
            .map_err(ReconcileRunError::Receipts);
    };
    reconcile::refuse_unread(&file.name, &file.bytes).map_err(ReconcileRunError::Receipts)?;
    match named {
        ReceiptFormat::Camt053 => Ok(Format::Camt053 { channel }),
        ReceiptFormat::Mt940 => Ok(Format::Mt940 { channel }),
        ReceiptFormat::Wechat => Ok(Format::WechatBill { channel: channel.unwrap_or_else(|| "wechat".into()) }),
        ReceiptFormat::Alipay => Ok(Format::AlipayBill { channel: channel.unwrap_or_else(|| "alipay".into()) }),
        ReceiptFormat::BatchReturn => {
            let (layout, _) = reading.layout.as_ref().ok_or(ReconcileRunError::NoLayout)?;
            let mut layout = layout.clone();
            if let Some(channel) = channel {
                layout.channel = channel;
            }
            Ok(Format::BatchReturn(Box::new(layout)))
        }
        ReceiptFormat::Csv => {
            let mapping = mapping.ok_or(ReconcileRunError::NoMapping)?;
            Ok(Format::Csv(Box::new(mapping.clone())))
        }
    }
}

impl Ledger {
    /// [`reconcile_and_record`] on this ledger's log.
    pub fn reconcile(
        &self,
        files: &[ParsedFile],
        mapping_sm3: Option<Hash>,
        channel: Option<&str>,
        options: &RunOptions,
        actor: &str,
    ) -> Result<Reconciled, ReconcileRunError> {
        reconcile_and_record(self.log(), files, mapping_sm3, channel, options, actor)
    }
}

/// Compares parsed receipt files with the log's payments and refunds and,
/// when asked, records the run (once: by its content). With a `channel`,
/// only that channel's payments and refunds are the ledger side: a WeChat
/// bill is compared with WeChat payments, not with every other channel's.
pub fn reconcile_and_record(
    log: &dyn LogBackend,
    files: &[ParsedFile],
    mapping_sm3: Option<Hash>,
    channel: Option<&str>,
    options: &RunOptions,
    actor: &str,
) -> Result<Reconciled, ReconcileRunError> {
    let (payments, head, names) = ledger_payments_and_names(log, channel, &masked_payer_names(files))?;
    let matching = MatchOptions { tolerance_days: options.tolerance_days, period: options.period };
    let statements = files.iter().flat_map(|f| &f.statements);
    let report = reconcile::reconcile_with_names(statements, &payments, &matching, &names);
    let summary = reconcile::summarize(&report);
    let recorded = match options.record {
        true => {
            let definition = RunDefinition {
                files,
                mapping_sm3,
                channel,
                period: options.period,
                tolerance_days: options.tolerance_days,
                head_position: head.position,
                head_hash: head.hash,
            };
            Some(record(log, &definition, &report, &summary, actor)?)
        }
        false => None,
    };
    Ok(answer(&report, &summary, head.position, recorded))
}

fn answer(report: &Report<'_>, summary: &Summary, compared_position: u64, recorded: Option<RecordedRun>) -> Reconciled {
    let lines = summary
        .rows
        .iter()
        .map(|row| SummaryLine {
            result: row.kind,
            side: row.side.name(),
            receipts: row.n_receipts,
            receipts_amount: yuan(row.receipts_fen),
            ledger: row.n_ledger,
            ledger_amount: yuan(row.ledger_fen),
        })
        .collect();
    let breaks = report.findings.iter().filter(|f| f.kind.is_break()).map(describe).collect();
    Reconciled {
        clean: summary.is_clean(),
        summary: lines,
        breaks,
        rejected_statements: summary.n_rejected_statements,
        not_received: report.findings.iter().filter_map(not_received).collect(),
        findings: report.findings.iter().map(FindingLine::of).collect(),
        compared_position,
        recorded,
    }
}

/// The recorded payments and refunds, and the head compared with: the last
/// fact that is not itself a reconciliation run, so that recording a run does
/// not make the same comparison look new.
///
/// With a `channel`, only that channel's (kept while scanning, so that a
/// channel's bill does not hold every other channel's payments in memory).
pub fn ledger_payments(log: &dyn LogReader, channel: Option<&str>) -> Result<(Vec<LedgerPayment>, Head), StorageError> {
    let (payments, head, _) = ledger_payments_and_names(log, channel, &HashSet::new())?;
    Ok((payments, head))
}

/// [`ledger_payments`], and the persons registered under one of `wanted`
/// (the names receipts with masked IDs give), by identity: what the weak
/// rule needs, kept small whatever the number of persons.
fn ledger_payments_and_names(
    log: &dyn LogReader,
    channel: Option<&str>,
    wanted: &HashSet<String>,
) -> Result<(Vec<LedgerPayment>, Head, Names), StorageError> {
    let mut payments = Vec::new();
    let mut names = Names::new();
    let mut compared = Head { position: 0, hash: [0; 32] };
    log.scan(1, log.durable_head().position, |envelope| {
        let item = LedgerPayment::from_event(envelope.head.position, &envelope.event);
        payments.extend(item.filter(|item| channel.is_none_or(|channel| item.is_of_channel(channel))));
        match &envelope.event {
            Event::ReconciliationRecordedV1(_) => return Ok(()),
            Event::PersonRegisteredV1(person) if wanted.contains(&person.name) => {
                names.insert(person.person.to_string(), person.name.clone());
            }
            _ => {}
        }
        compared = Head { position: envelope.head.position, hash: envelope.hash };
        Ok(())
    })?;
    Ok((payments, compared, names))
}

/// The names that receipts with masked payer IDs give.
fn masked_payer_names(files: &[ParsedFile]) -> HashSet<String> {
    let receipts = files.iter().flat_map(|f| &f.statements).flat_map(|s| &s.receipts);
    let masked = receipts.filter(|r| r.payer_id.as_deref().is_some_and(|id| id.contains('*')));
    masked.filter_map(|r| r.payer_name.clone()).collect()
}

/// The run as a `reconciliation_recorded` fact. Its id comes from what
/// defines the run and its results (`reconcile::run_id`), so the same run
/// again — the same files under other names too — appends nothing; one with
/// other options or results is a new run. A run already in the log is
/// found by its stream rather than by idempotency, whose content check
/// would count the file names and the recorded date as differences.
fn record(
    log: &dyn LogBackend,
    definition: &RunDefinition<'_>,
    report: &Report,
    summary: &Summary,
    actor: &str,
) -> Result<RecordedRun, ReconcileRunError> {
    let run_id = reconcile::run_id(definition, summary).map_err(ReconcileRunError::Receipts)?;
    let today = ledger::Date::today();
    let period = report.period.unwrap_or(Period { from: today, to: today });
    let (head_position, head_hash) = (definition.head_position, &definition.head_hash);
    let event =
        reconcile::reconciliation_recorded(&run_id, definition.files, period, head_position, head_hash, summary)
            .map_err(ReconcileRunError::Receipts)?;
    let event = Event::ReconciliationRecordedV1(event);
    let recorded = log.read_stream_blocking(&event.stream()).map_err(StorageError::from)?;
    if let Some(first) = recorded.first() {
        return Ok(RecordedRun { run_id, position: first.head.position, appended: false });
    }
    // A run names no payment channel of its own: the built-in channels do.
    let new =
        facts::admit(event, None, actor, crate::channels::Channels::built_in()).map_err(ReconcileRunError::Field)?;
    let outcome = log.append_blocking(vec![new]).map_err(StorageError::from)?;
    // One event asked, one position given; a new record is the head itself.
    let position = outcome.positions.first().copied().unwrap_or(outcome.head.position);
    Ok(RecordedRun { run_id, position, appended: outcome.n_appended > 0 })
}

/// Fen as yuan with two decimals; a signed sum of fen may be negative.
pub fn yuan(fen: i128) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.unsigned_abs() / 100, fen.unsigned_abs() % 100)
}

/// A finding in one line: its kind, the receipts and the recorded facts.
/// A finding of a row not received, described with what its file says.
fn not_received(finding: &Finding) -> Option<String> {
    match finding.kind {
        FindingKind::NotReceived(row) => Some(row.to_string()),
        _ => None,
    }
}

pub fn describe(finding: &Finding) -> String {
    let receipts: Vec<String> = finding
        .receipts
        .iter()
        .map(|r| format!("{} {} {} ({})", r.reference.as_deref().unwrap_or("-"), r.amount, r.booked_on, r.source()))
        .collect();
    let ledger: Vec<String> = finding
        .ledger
        .iter()
        .map(|p| format!("position {} {}/{} {}", p.position, p.channel, p.channel_ref, p.amount))
        .collect();
    let mut text = finding.kind.name().replace('_', " ");
    if let FindingKind::StatementCheckFailed { failures, .. } = &finding.kind {
        let reasons: Vec<String> = failures.iter().map(|f| f.to_string()).collect();
        text.push_str(&format!(" [{}]", reasons.join("; ")));
    }
    if !receipts.is_empty() {
        text.push_str(&format!(": receipt {}", receipts.join(", ")));
    }
    if !ledger.is_empty() {
        text.push_str(&format!("; ledger {}", ledger.join(", ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_named_without_a_mapping_is_bad_input_naming_the_mapping() {
        let file = ReceiptFile { name: "export.csv".into(), bytes: b"date,amount\n2024-11-01,400.00\n".to_vec() };
        let reading = Reading { format: Some(ReceiptFormat::Csv), mapping: None, layout: None, channel: None };
        let error = parse(&[file], &reading).expect_err("no mapping");
        assert!(matches!(error, ReconcileRunError::NoMapping), "{error:?}");
        assert_eq!((error.kind(), error.field()), (Kind::BadInput, Some("mapping")));
    }

    #[test]
    fn a_file_of_no_format_read_is_bad_input_naming_the_file() {
        let file = ReceiptFile { name: "statement.pdf".into(), bytes: b"%PDF-1.7\n".to_vec() };
        let reading = Reading { format: Some(ReceiptFormat::Camt053), mapping: None, layout: None, channel: None };
        let error = parse(&[file], &reading).expect_err("a PDF");
        assert_eq!(error.kind(), Kind::BadInput);
        assert!(error.to_string().starts_with("statement.pdf: not a format yibao reads"), "{error}");
    }

    #[test]
    fn yuan_keeps_the_sign_of_a_difference() {
        assert_eq!(yuan(-150), "-1.50");
        assert_eq!(yuan(40_000), "400.00");
    }
}
