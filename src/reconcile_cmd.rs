//! `yibao reconcile`: bank and channel receipts against recorded payments
//! and refunds (`operations::reconcile`); the run is recorded in the log.
//! Breaks exit 1.

use crate::exit::{classified, BadInput, Findings};
use anyhow::Result;
use ledger::Hash;
use ledger::{Date, LogBackend, OpenMode};
use operations::channels::Channels;
use operations::reconcile::{FindingLine, Reading, ReceiptFile, ReceiptFormat, Reconciled, RecordedRun, RunOptions};
use operations::Ledger;
use operations::Location;
use reconcile::{Definition, Layout, Mapping, ParsedFile, Period};
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

/// A batch return's layout with the SM3 of its text.
type LayoutWithDigest = (Layout, Hash);
/// A CSV's or workbook's mapping with the SM3 of its text.
type MappingWithDigest = (Mapping, Hash);

/// `--format`, or `None` to judge each file by its content. A preset names
/// its mapping or layout too (`definition_of`).
fn format_of(args: &ReconcileArgs) -> Result<Option<ReceiptFormat>> {
    let format = match args.format.as_deref() {
        None => return Ok(None),
        Some("camt053" | "camt054") => ReceiptFormat::Camt053,
        Some("mt940") => ReceiptFormat::Mt940,
        Some("wechat") => ReceiptFormat::Wechat,
        Some("alipay") => ReceiptFormat::Alipay,
        Some(name @ ("csv" | "batch-return")) if args.mapping.is_none() => {
            return Err(BadInput(format!("--format {name} needs --mapping FILE")).into())
        }
        Some("csv") => ReceiptFormat::Csv,
        Some("batch-return") => ReceiptFormat::BatchReturn,
        Some(name) => match reconcile::preset(name).map(|preset| preset.definition) {
            Some(Definition::Mapping(_)) => ReceiptFormat::Csv,
            Some(Definition::Layout(_)) => ReceiptFormat::BatchReturn,
            Some(Definition::Reader) | None => return Err(BadInput(unknown_format(name)).into()),
        },
    };
    Ok(Some(format))
}

fn unknown_format(name: &str) -> String {
    format!("--format `{name}`: use {}, or csv or batch-return with --mapping FILE", reconcile::presets::names())
}

/// `--show-format NAME`: a preset's mapping or layout as shipped, to copy
/// and adjust, or what a reader of its own reads.
pub fn show_format(name: &str) -> Result<()> {
    let preset =
        reconcile::preset(name).ok_or_else(|| BadInput(unknown_format(name).replace("--format", "--show-format")))?;
    out!("{}", preset.shown());
    Ok(())
}

/// The mapping or batch-return layout named by `--mapping FILE` (a layout
/// has `kind = "batch-return"`) or by a preset's `--format`, with the SM3 of
/// its text.
fn definition_of(args: &ReconcileArgs) -> Result<(Option<MappingWithDigest>, Option<LayoutWithDigest>)> {
    let preset = args.format.as_deref().and_then(reconcile::preset).filter(|preset| preset.toml().is_some());
    match (args.mapping.as_deref(), preset) {
        (Some(_), Some(preset)) => {
            Err(BadInput(format!("give --mapping or --format {}, not both", preset.name)).into())
        }
        (Some(path), None) if reconcile::is_layout_file(path) => {
            Ok((None, Some(reconcile::read_layout_with_digest(path).map_err(receipts_error)?)))
        }
        (Some(path), None) => Ok((Some(reconcile::read_mapping_with_digest(path).map_err(receipts_error)?), None)),
        (None, Some(preset)) => {
            let digest = ledger::envelope::sm3(preset.toml().unwrap_or_default().as_bytes());
            let mapping = preset.mapping().transpose().map_err(receipts_error)?;
            let layout = preset.layout().transpose().map_err(receipts_error)?;
            Ok((mapping.map(|mapping| (mapping, digest)), layout.map(|layout| (layout, digest))))
        }
        (None, None) => Ok((None, None)),
    }
}

/// `--channel` in the ledger's spelling; unknown ones are refused, listing
/// the known.
fn channel_of(location: &Location, args: &ReconcileArgs) -> Result<Option<String>> {
    let Some(channel) = &args.channel else { return Ok(None) };
    let channels = Channels::load(&location.data).map_err(|e| BadInput(e.to_string()))?;
    let canonical = channels.canonical("channel", channel).map_err(|e| BadInput(format!("--channel: {}", e.reason)))?;
    Ok(Some(canonical))
}

fn period(args: &ReconcileArgs) -> Result<Option<Period>> {
    match (args.from, args.to) {
        (None, None) => Ok(None),
        (Some(from), Some(to)) => Ok(Some(Period { from, to })),
        _ => Err(BadInput("give --from and --to together".into()).into()),
    }
}

/// Reads the mapping and every receipt file (bad input names the file and
/// the reason), then parses them all: nothing is compared or recorded
/// before every file has been read.
fn read_files(args: &ReconcileArgs, channel: Option<String>) -> Result<(Vec<ParsedFile>, Reading)> {
    let (mapping, layout) = definition_of(args)?;
    let format = match (format_of(args)?, &layout) {
        // A batch return's layout is given where a CSV's mapping is.
        (None, Some(_)) => Some(ReceiptFormat::BatchReturn),
        (format, _) => format,
    };
    let reading = Reading { format, mapping, layout, channel };
    let mut files = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let bytes = reconcile::read_file(path).map_err(receipts_error)?;
        files.push(ReceiptFile { name: path.display().to_string(), bytes });
    }
    let parsed = operations::reconcile::parse(&files, &reading).map_err(classified)?;
    Ok((parsed, reading))
}

/// A receipt or mapping file that cannot be read: bad input, every cause kept.
fn receipts_error(error: reconcile::ReconcileError) -> anyhow::Error {
    classified(operations::reconcile::ReconcileRunError::Receipts(error))
}

/// Compares parsed receipt files with the log, prints the summary and the
/// breaks, and records the run; returns whether it reconciled fully.
pub fn compare_and_record(log: &dyn LogBackend, files: &[ParsedFile], period: Option<Period>) -> Result<bool> {
    let options = RunOptions { period, tolerance_days: 3, record: true };
    let reconciled = operations::reconcile::reconcile_and_record(log, files, None, None, &options, "cli:reconcile")
        .map_err(classified)?;
    print_summary(&reconciled, files);
    print_not_received(&reconciled);
    print_breaks(&reconciled);
    report_recorded(reconciled.recorded.as_ref());
    Ok(reconciled.clean)
}

pub fn run(location: &Location, args: ReconcileArgs) -> Result<()> {
    if args.files.is_empty() {
        return Err(BadInput("name at least one receipt file".into()).into());
    }
    let channel = channel_of(location, &args)?;
    let period = period(&args)?;
    let (files, reading) = read_files(&args, channel)?;
    let ledger = Ledger::open(location, OpenMode::Existing).map_err(classified)?;
    let options = RunOptions { period, tolerance_days: args.tolerance_days, record: args.record };
    let mapping_sm3 = reading.mapping.as_ref().map(|(_, digest)| *digest);
    let mapping_sm3 = mapping_sm3.or(reading.layout.as_ref().map(|(_, digest)| *digest));
    let reconciled = ledger
        .reconcile(&files, mapping_sm3, reading.channel.as_deref(), &options, "cli:reconcile")
        .map_err(classified)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&reconciled)?);
    } else {
        print_summary(&reconciled, &files);
        print_not_received(&reconciled);
        print_breaks(&reconciled);
    }
    if let Some(out) = &args.csv {
        write_csv(out, &reconciled.findings)?;
    }
    report_recorded(reconciled.recorded.as_ref());
    if !reconciled.clean {
        return Err(Findings(format!("{} break(s): not fully reconciled", reconciled.n_breaks())).into());
    }
    Ok(())
}

fn report_recorded(recorded: Option<&RecordedRun>) {
    let Some(run) = recorded else { return };
    let verb = if run.appended { "recorded" } else { "already recorded" };
    eprintln!("run {} {verb} at position {}", run.run_id, run.position);
}

fn print_summary(reconciled: &Reconciled, files: &[ParsedFile]) {
    for file in files {
        let n: usize = file.statements.iter().map(|s| s.receipts.len()).sum();
        outln!("{} ({}): {} receipt(s)", file.name, file.format, n);
    }
    outln!("ledger: payments and refunds up to position {}\n", reconciled.compared_position);
    outln!("{:<30} {:<7} {:>8} {:>16} {:>8} {:>16}", "result", "side", "receipts", "amount", "ledger", "amount");
    for row in &reconciled.summary {
        outln!(
            "{:<30} {:<7} {:>8} {:>16} {:>8} {:>16}",
            row.result.replace('_', " "),
            row.side,
            row.receipts,
            row.receipts_amount,
            row.ledger,
            row.ledger_amount
        );
    }
    if reconciled.rejected_statements > 0 {
        outln!("{} statement(s) failed their self-checks and were not matched", reconciled.rejected_statements);
    }
}

/// Rows a file lists as not received (a batch return's failed debits, a
/// status column's refused transfers): listed, never counted as paid.
fn print_not_received(reconciled: &Reconciled) {
    if reconciled.not_received.is_empty() {
        return;
    }
    outln!("\nnot received: listed by the file, never counted as paid ({}):", reconciled.not_received.len());
    for line in &reconciled.not_received {
        outln!("  {line}");
    }
}

fn print_breaks(reconciled: &Reconciled) {
    if reconciled.breaks.is_empty() {
        outln!("\nfully reconciled: every receipt matched to a recorded payment or refund, and every one to a receipt");
        return;
    }
    outln!("\nbreaks ({}):", reconciled.breaks.len());
    for line in &reconciled.breaks {
        outln!("  {line}");
    }
}

fn write_csv(out: &Path, findings: &[FindingLine]) -> Result<()> {
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
    for line in findings {
        writer.write_record([
            line.result,
            line.side,
            &line.receipt_source,
            &line.reference,
            &line.receipt_amount,
            &line.ledger_position,
            &line.ledger_reference,
            &line.ledger_amount,
        ])?;
    }
    writer.flush()?;
    Ok(())
}
