//! `yibao reconcile`: bank and channel receipts against recorded payments
//! and refunds; the run is recorded in the log.

use crate::commands::open;
use crate::exit::{BadInput, Findings};
use anyhow::{Context, Result};
use ledger::{Date, Event, NewEvent, OpenMode, SledLog};
use reconcile::{Finding, FindingKind, Format, LedgerPayment, MatchOptions, ParsedFile, Period, Report, Summary};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `yibao reconcile` was asked.
pub struct ReconcileArgs {
    pub files: Vec<PathBuf>,
    pub format: Option<String>,
    pub mapping: Option<PathBuf>,
    pub channel: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub tolerance_days: u32,
    pub csv: Option<PathBuf>,
    pub json: bool,
    pub record: bool,
}

/// The format named, or guessed from the file: `.xml` is camt.053, a CSV
/// with a mapping is mapped, any other CSV a WeChat Pay bill.
fn format_of(args: &ReconcileArgs, file: &Path) -> Result<Format> {
    let name = match args.format.as_deref() {
        Some(name) => name.to_string(),
        None if file.extension().is_some_and(|e| e.eq_ignore_ascii_case("xml")) => "camt053".into(),
        None if args.mapping.is_some() => "csv".into(),
        None => "wechat".into(),
    };
    match name.as_str() {
        "camt053" => Ok(Format::Camt053 { channel: args.channel.clone() }),
        "wechat" => Ok(Format::WechatBill { channel: args.channel.clone().unwrap_or_else(|| "wechat".into()) }),
        "csv" => {
            let mapping =
                args.mapping.as_deref().ok_or_else(|| BadInput("--format csv needs --mapping FILE".into()))?;
            let mapping = reconcile::read_mapping(mapping).map_err(|e| BadInput(e.to_string()))?;
            Ok(Format::Csv(Box::new(mapping)))
        }
        other => Err(BadInput(format!("--format `{other}`: use camt053, wechat or csv")).into()),
    }
}

fn period(args: &ReconcileArgs) -> Result<Option<Period>> {
    let date =
        |text: &str, flag: &str| -> Result<Date> { text.parse().map_err(|e| BadInput(format!("{flag}: {e}")).into()) };
    match (args.from.as_deref(), args.to.as_deref()) {
        (None, None) => Ok(None),
        (Some(from), Some(to)) => Ok(Some(Period { from: date(from, "--from")?, to: date(to, "--to")? })),
        _ => Err(BadInput("give --from and --to together".into()).into()),
    }
}

/// Compares parsed receipt files with the log, prints the summary and the
/// breaks, and records the run; returns whether it reconciled fully.
pub fn compare_and_record(log: &SledLog, files: &[ParsedFile], period: Option<Period>) -> Result<bool> {
    let (ledger, head) = ledger_payments(log)?;
    let options = MatchOptions { tolerance_days: 3, period };
    let report = reconcile::reconcile(files.iter().flat_map(|f| &f.statements), &ledger, &options);
    let summary = reconcile::summarize(&report);
    print_summary(&summary, files, head.position);
    print_breaks(&report);
    record(log, files, &report, &summary, head)?;
    Ok(summary.is_clean())
}

pub fn run(data: &Path, args: ReconcileArgs) -> Result<()> {
    if args.files.is_empty() {
        return Err(BadInput("name at least one receipt file".into()).into());
    }
    let period = period(&args)?;
    // Every file is read before anything is compared or recorded.
    let mut files: Vec<ParsedFile> = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let format = format_of(&args, path)?;
        files.push(reconcile::parse_path(path, &format).map_err(|e| BadInput(e.to_string()))?);
    }
    let log = open(data, OpenMode::Existing)?;
    let (ledger, head) = ledger_payments(&log)?;
    let options = MatchOptions { tolerance_days: args.tolerance_days, period };
    let report = reconcile::reconcile(files.iter().flat_map(|f| &f.statements), &ledger, &options);
    let summary = reconcile::summarize(&report);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json_report(&report, &summary))?);
    } else {
        print_summary(&summary, &files, head.position);
        print_breaks(&report);
    }
    if let Some(out) = &args.csv {
        write_csv(out, &report)?;
    }
    if args.record {
        record(&log, &files, &report, &summary, head)?;
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
fn ledger_payments(log: &SledLog) -> Result<(Vec<LedgerPayment>, ledger::Head)> {
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

/// The run as a `reconciliation_recorded` fact. Its id comes from the files'
/// digests and the head compared with, so the same run again appends nothing.
fn record(log: &SledLog, files: &[ParsedFile], report: &Report, summary: &Summary, head: ledger::Head) -> Result<()> {
    let mut identity = Vec::new();
    for file in files {
        identity.extend_from_slice(&file.sm3);
    }
    identity.extend_from_slice(&head.position.to_le_bytes());
    let run_id = format!("reconcile-{}", &hex::encode(ledger::envelope::sm3(&identity))[..16]);
    let today = ledger::BeijingTime::now().business_date();
    let period = report.period.unwrap_or(Period { from: today, to: today });
    let event = reconcile::reconciliation_recorded(&run_id, files, period, head.position, &head.hash, summary)
        .map_err(|e| BadInput(e.to_string()))?;
    let outcome = log
        .append_blocking(vec![NewEvent::fact(Event::ReconciliationRecordedV1(event), "cli:reconcile")])
        .context("recording the reconciliation")?;
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
        println!("{} ({}): {} receipt(s)", file.name, file.format, n);
    }
    println!("ledger: payments and refunds up to position {head}\n");
    println!("{:<30} {:<7} {:>8} {:>16} {:>8} {:>16}", "result", "side", "receipts", "amount", "ledger", "amount");
    for row in &summary.rows {
        println!(
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
        println!("{} statement(s) failed their self-checks and were not matched", summary.n_rejected_statements);
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
        println!(
            "\nfully reconciled: every receipt matched to a recorded payment or refund, and every one to a receipt"
        );
        return;
    }
    println!("\nbreaks ({}):", breaks.len());
    for finding in breaks {
        println!("  {}", describe(finding));
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
    let mut file = std::io::BufWriter::new(file);
    writeln!(
        file,
        "result,side,receipt_source,reference,receipt_amount,ledger_position,ledger_reference,ledger_amount"
    )?;
    for finding in &report.findings {
        let receipt = finding.receipts.first();
        let payment = finding.ledger.first();
        let quote = |text: String| format!("\"{}\"", text.replace('"', "\"\""));
        writeln!(
            file,
            "{},{},{},{},{},{},{},{}",
            finding.kind.name(),
            finding.side.name(),
            quote(receipt.map(|r| r.source()).unwrap_or_default()),
            quote(receipt.and_then(|r| r.reference.clone()).unwrap_or_default()),
            receipt.map(|r| r.amount.to_string()).unwrap_or_default(),
            payment.map(|p| p.position.to_string()).unwrap_or_default(),
            quote(payment.map(|p| p.channel_ref.clone()).unwrap_or_default()),
            payment.map(|p| p.amount.to_string()).unwrap_or_default(),
        )?;
    }
    file.flush()?;
    Ok(())
}
