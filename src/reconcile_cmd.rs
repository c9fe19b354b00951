//! `yibao reconcile`: bank and channel receipts against recorded payments
//! and refunds; the run is recorded in the log.

use crate::commands::open;
use crate::exit::{BadInput, Findings};
use anyhow::{Context, Result};
use ledger::Hash;
use ledger::{Date, Event, LogBackend, LogReader, OpenMode};
use operations::channels::Channels;
use reconcile::{
    Finding, FindingKind, Format, LedgerPayment, Mapping, MatchOptions, ParsedFile, Period, ReconcileError, Report,
    RunDefinition, Summary,
};
use serde_json::json;
use std::path::{Path, PathBuf};

/// What `yibao reconcile` was asked.
pub struct ReconcileArgs {
    pub files: Vec<PathBuf>,
    pub format: Option<String>,
    pub mapping: Option<PathBuf>,
    pub channel: Option<String>,
    pub from: Option<Date>,
    pub to: Option<Date>,
    pub tolerance_days: u32,
    pub csv: Option<PathBuf>,
    pub json: bool,
    pub record: bool,
}

/// The mapping of a generic CSV, read once for all files, with the SM3
/// digest of its bytes (part of what identifies the run).
fn mapping_of(args: &ReconcileArgs) -> Result<Option<(Mapping, Hash)>> {
    let Some(path) = args.mapping.as_deref() else { return Ok(None) };
    reconcile::read_mapping_with_digest(path).map(Some).map_err(bad_receipts)
}

/// The format named, else the one the file's content shows. A file of a
/// format not read at all (MT940, PDF, …) is refused either way.
fn format_of(args: &ReconcileArgs, name: &str, bytes: &[u8], mapping: Option<&Mapping>) -> Result<Format> {
    let channel = args.channel.clone();
    let Some(named) = args.format.as_deref() else {
        return reconcile::detect_format(name, bytes, mapping, channel.as_deref()).map_err(bad_receipts);
    };
    reconcile::refuse_unread(name, bytes).map_err(bad_receipts)?;
    match named {
        "camt053" => Ok(Format::Camt053 { channel }),
        "wechat" => Ok(Format::WechatBill { channel: channel.unwrap_or_else(|| "wechat".into()) }),
        "csv" => {
            let mapping = mapping.ok_or_else(|| BadInput("--format csv needs --mapping FILE".into()))?;
            Ok(Format::Csv(Box::new(mapping.clone())))
        }
        other => Err(BadInput(format!("--format `{other}`: use camt053, wechat or csv")).into()),
    }
}

/// Receipts that cannot be read are bad input (exit 2). The message keeps
/// every cause: a file that cannot be opened says why.
fn bad_receipts(error: ReconcileError) -> anyhow::Error {
    let mut message = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(reason) = cause {
        message.push_str(": ");
        message.push_str(&reason.to_string());
        cause = reason.source();
    }
    BadInput(message).into()
}

fn period(args: &ReconcileArgs) -> Result<Option<Period>> {
    match (args.from, args.to) {
        (None, None) => Ok(None),
        (Some(from), Some(to)) => Ok(Some(Period { from, to })),
        _ => Err(BadInput("give --from and --to together".into()).into()),
    }
}

/// Compares parsed receipt files with the log, prints the summary and the
/// breaks, and records the run; returns whether it reconciled fully.
pub fn compare_and_record(log: &impl LogBackend, files: &[ParsedFile], period: Option<Period>) -> Result<bool> {
    let (ledger, head) = ledger_payments(log)?;
    let options = MatchOptions { tolerance_days: 3, period };
    let report = reconcile::reconcile(files.iter().flat_map(|f| &f.statements), &ledger, &options);
    let summary = reconcile::summarize(&report);
    print_summary(&summary, files, head.position);
    print_breaks(&report);
    let definition = RunDefinition {
        files,
        mapping_sm3: None,
        channel: None,
        period,
        tolerance_days: options.tolerance_days,
        head_position: head.position,
        head_hash: head.hash,
    };
    record(log, &definition, &report, &summary)?;
    Ok(summary.is_clean())
}

pub fn run(data: &Path, mut args: ReconcileArgs) -> Result<()> {
    if args.files.is_empty() {
        return Err(BadInput("name at least one receipt file".into()).into());
    }
    if let Some(channel) = &args.channel {
        let channels = Channels::load(data).map_err(|e| BadInput(e.to_string()))?;
        let canonical =
            channels.canonical("channel", channel).map_err(|e| BadInput(format!("--channel: {}", e.reason)))?;
        args.channel = Some(canonical);
    }
    let period = period(&args)?;
    let mapping = mapping_of(&args)?;
    // Every file is read before anything is compared or recorded.
    let mut files: Vec<ParsedFile> = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let name = path.display().to_string();
        let bytes = reconcile::read_file(path).map_err(bad_receipts)?;
        let format = format_of(&args, &name, &bytes, mapping.as_ref().map(|(m, _)| m))?;
        files.push(reconcile::parse_bytes(&name, &bytes, &format).map_err(bad_receipts)?);
    }
    let log = open(data, OpenMode::Existing)?;
    let (ledger, head) = ledger_payments(&log)?;
    let options = MatchOptions { tolerance_days: args.tolerance_days, period };
    let report = reconcile::reconcile(files.iter().flat_map(|f| &f.statements), &ledger, &options);
    let summary = reconcile::summarize(&report);
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&json_report(&report, &summary))?);
    } else {
        print_summary(&summary, &files, head.position);
        print_breaks(&report);
    }
    if let Some(out) = &args.csv {
        write_csv(out, &report)?;
    }
    if args.record {
        let definition = RunDefinition {
            files: &files,
            mapping_sm3: mapping.map(|(_, digest)| digest),
            channel: args.channel.as_deref(),
            period,
            tolerance_days: args.tolerance_days,
            head_position: head.position,
            head_hash: head.hash,
        };
        record(&log, &definition, &report, &summary)?;
    }
    if !summary.is_clean() {
        let n_breaks = report.findings.iter().filter(|f| !f.kind.is_match()).count();
        return Err(Findings(format!("{n_breaks} break(s): not fully reconciled")).into());
    }
    Ok(())
}

/// The recorded payments and refunds, and the head compared with: the last
/// fact that is not itself a reconciliation run, so that recording a run does
/// not make the same comparison look new.
fn ledger_payments(log: &dyn LogReader) -> Result<(Vec<LedgerPayment>, ledger::Head)> {
    let mut payments = Vec::new();
    let mut compared = ledger::Head { position: 0, hash: [0; 32] };
    log.scan(1, log.durable_head().position, |envelope| {
        payments.extend(LedgerPayment::from_event(envelope.head.position, &envelope.event));
        if !matches!(envelope.event, Event::ReconciliationRecordedV1(_)) {
            compared = ledger::Head { position: envelope.head.position, hash: envelope.hash };
        }
        Ok(())
    })?;
    Ok((payments, compared))
}

/// The run as a `reconciliation_recorded` fact. Its id comes from what
/// defines the run and its results (`reconcile::run_id`), so the same run
/// again — the same files under other names too — appends nothing; one with
/// other options or results is a new run. A run already in the log is
/// found by its stream rather than by idempotency, whose content check
/// would count the file names and the recorded date as differences.
fn record(log: &impl LogBackend, definition: &RunDefinition<'_>, report: &Report, summary: &Summary) -> Result<()> {
    let run_id = reconcile::run_id(definition, summary).map_err(bad_receipts)?;
    let today = ledger::Date::today();
    let period = report.period.unwrap_or(Period { from: today, to: today });
    let (head_position, head_hash) = (definition.head_position, &definition.head_hash);
    let event =
        reconcile::reconciliation_recorded(&run_id, definition.files, period, head_position, head_hash, summary)
            .map_err(bad_receipts)?;
    let event = Event::ReconciliationRecordedV1(event);
    let recorded = log.read_stream_blocking(&event.stream()).context("reading the recorded runs")?;
    if let Some(first) = recorded.first() {
        eprintln!("run {run_id} already recorded at position {}", first.head.position);
        return Ok(());
    }
    let new = crate::single::admit_without_channels(event, "cli:reconcile", &[])?;
    let outcome = log.append_blocking(vec![new]).context("recording the reconciliation")?;
    let position = outcome.positions.first().copied().unwrap_or(0);
    let verb = if outcome.n_appended == 0 { "already recorded" } else { "recorded" };
    eprintln!("run {run_id} {verb} at position {position}");
    Ok(())
}

fn yuan(fen: i128) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.unsigned_abs() / 100, fen.unsigned_abs() % 100)
}

fn print_summary(summary: &Summary, files: &[ParsedFile], head: u64) {
    for file in files {
        let n: usize = file.statements.iter().map(|s| s.receipts.len()).sum();
        outln!("{} ({}): {} receipt(s)", file.name, file.format, n);
    }
    outln!("ledger: payments and refunds up to position {head}\n");
    outln!("{:<30} {:<7} {:>8} {:>16} {:>8} {:>16}", "result", "side", "receipts", "amount", "ledger", "amount");
    for row in &summary.rows {
        outln!(
            "{:<30} {:<7} {:>8} {:>16} {:>8} {:>16}",
            row.kind.replace('_', " "),
            row.side.name(),
            row.n_receipts,
            yuan(row.receipts_fen),
            row.n_ledger,
            yuan(row.ledger_fen)
        );
    }
    if summary.n_rejected_statements > 0 {
        outln!("{} statement(s) failed their self-checks and were not matched", summary.n_rejected_statements);
    }
}

fn describe(finding: &Finding) -> String {
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

fn print_breaks(report: &Report) {
    let breaks: Vec<&Finding> = report.findings.iter().filter(|f| !f.kind.is_match()).collect();
    if breaks.is_empty() {
        outln!("\nfully reconciled: every receipt matched to a recorded payment or refund, and every one to a receipt");
        return;
    }
    outln!("\nbreaks ({}):", breaks.len());
    for finding in breaks {
        outln!("  {}", describe(finding));
    }
}

fn json_report(report: &Report, summary: &Summary) -> serde_json::Value {
    let rows: Vec<_> = summary
        .rows
        .iter()
        .map(|row| {
            json!({ "result": row.kind, "side": row.side.name(), "receipts": row.n_receipts,
                    "receipts_amount": yuan(row.receipts_fen), "ledger": row.n_ledger, "ledger_amount": yuan(row.ledger_fen) })
        })
        .collect();
    let breaks: Vec<_> = report.findings.iter().filter(|f| !f.kind.is_match()).map(describe).collect();
    json!({ "clean": summary.is_clean(), "summary": rows, "breaks": breaks,
            "rejected_statements": summary.n_rejected_statements })
}

fn write_csv(out: &Path, report: &Report) -> Result<()> {
    let file = std::fs::File::create(out).map_err(|e| BadInput(format!("cannot create {}: {e}", out.display())))?;
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(file));
    writer.write_record([
        "result",
        "side",
        "receipt_source",
        "reference",
        "receipt_amount",
        "ledger_position",
        "ledger_reference",
        "ledger_amount",
    ])?;
    for finding in &report.findings {
        let receipt = finding.receipts.first();
        let payment = finding.ledger.first();
        writer.write_record([
            finding.kind.name().to_string(),
            finding.side.name().to_string(),
            receipt.map(|r| r.source()).unwrap_or_default(),
            receipt.and_then(|r| r.reference.clone()).unwrap_or_default(),
            receipt.map(|r| r.amount.to_string()).unwrap_or_default(),
            payment.map(|p| p.position.to_string()).unwrap_or_default(),
            payment.map(|p| p.channel_ref.clone()).unwrap_or_default(),
            payment.map(|p| p.amount.to_string()).unwrap_or_default(),
        ])?;
    }
    writer.flush()?;
    Ok(())
}
