//! Counts and totals per result kind, and the parts of the
//! `ReconciliationRecorded` event the CLI appends.

use crate::error::{ReconcileError, Result};
use crate::input::ParsedFile;
use crate::matching::{FindingKind, Report, KIND_NAMES};
use crate::model::{Period, Side, Statement};
use ledger::event::{ReceiptFile, ReconciliationRecorded, ResultCount};
use ledger::{Hash, Money};

/// Counts and totals of one result kind on one side. Money is in fen
/// (`i128`, so that no sum overflows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    pub kind: &'static str,
    pub side: Side,
    pub n_findings: u64,
    pub n_receipts: u64,
    pub receipts_fen: i128,
    pub n_ledger: u64,
    pub ledger_fen: i128,
}

/// The summary of a report: one row per (kind, side) that occurred, in
/// report order (`KIND_NAMES`), payments before refunds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub rows: Vec<SummaryRow>,
    /// Statements that failed a fatal self-check (none of their receipts
    /// was matched).
    pub n_rejected_statements: u64,
}

impl Summary {
    /// Whether everything matched: no differences, no failed statements.
    pub fn is_clean(&self) -> bool {
        self.n_rejected_statements == 0
            && self.rows.iter().all(|row| row.kind.starts_with("matched_") || row.kind == "not_received")
    }

    /// All receipts accounted for, per side: (count, fen).
    pub fn receipts(&self, side: Side) -> (u64, i128) {
        let rows = self.rows.iter().filter(|r| r.side == side);
        rows.fold((0, 0), |(n, fen), r| (n + r.n_receipts, fen + r.receipts_fen))
    }

    /// All ledger items accounted for, per side: (count, fen).
    pub fn ledger(&self, side: Side) -> (u64, i128) {
        let rows = self.rows.iter().filter(|r| r.side == side);
        rows.fold((0, 0), |(n, fen), r| (n + r.n_ledger, fen + r.ledger_fen))
    }

    /// The `results` of a `ReconciliationRecorded` event: for each row, the
    /// receipts (`receipts.<kind>.<side>`) and the ledger items
    /// (`ledger.<kind>.<side>`) it accounts for, where there are any. The
    /// receipt rows add up to every receipt compared and the ledger rows to
    /// every ledger item compared, so the event itself shows that nothing
    /// was dropped. A last row `statements.rejected` counts the statements
    /// that failed their self-checks (its total is zero: their receipts are
    /// in the `receipts.statement_check_failed.*` rows).
    pub fn result_counts(&self) -> Result<Vec<ResultCount>> {
        let mut counts = Vec::new();
        for row in &self.rows {
            for (what, count, fen) in
                [("receipts", row.n_receipts, row.receipts_fen), ("ledger", row.n_ledger, row.ledger_fen)]
            {
                if count == 0 {
                    continue;
                }
                let kind = format!("{what}.{}.{}", row.kind, row.side.name());
                let total = i64::try_from(fen)
                    .ok()
                    .and_then(Money::from_fen)
                    .ok_or_else(|| ReconcileError::TotalOverflow { what: kind.clone() })?;
                counts.push(ResultCount { kind, count, total });
            }
        }
        if self.n_rejected_statements > 0 {
            let (kind, count) = ("statements.rejected".to_string(), self.n_rejected_statements);
            counts.push(ResultCount { kind, count, total: Money::ZERO });
        }
        Ok(counts)
    }
}

/// Sums a report per result kind and side.
pub fn summarize(report: &Report<'_>) -> Summary {
    let mut rows: Vec<SummaryRow> = Vec::new();
    for finding in &report.findings {
        let kind = finding.kind.name();
        let index = match rows.iter().position(|r| r.kind == kind && r.side == finding.side) {
            Some(index) => index,
            None => {
                rows.push(SummaryRow {
                    kind,
                    side: finding.side,
                    n_findings: 0,
                    n_receipts: 0,
                    receipts_fen: 0,
                    n_ledger: 0,
                    ledger_fen: 0,
                });
                rows.len() - 1
            }
        };
        let row = &mut rows[index];
        row.n_findings += 1;
        row.n_receipts += finding.receipts.len() as u64;
        row.receipts_fen += finding.receipts.iter().map(|r| i128::from(r.amount.fen())).sum::<i128>();
        row.n_ledger += finding.ledger.len() as u64;
        row.ledger_fen += finding.ledger.iter().map(|p| i128::from(p.amount.fen())).sum::<i128>();
    }
    let order = |kind: &str| KIND_NAMES.iter().position(|&k| k == kind).unwrap_or(KIND_NAMES.len());
    rows.sort_by_key(|row| (order(row.kind), row.side));
    let mut rejected: Vec<*const Statement> = report
        .findings
        .iter()
        .filter_map(|f| match &f.kind {
            FindingKind::StatementCheckFailed { statement, .. } => Some(*statement as *const Statement),
            _ => None,
        })
        .collect();
    rejected.sort_unstable();
    rejected.dedup();
    Summary { rows, n_rejected_statements: rejected.len() as u64 }
}

/// The `files` of a `ReconciliationRecorded` event: name, format and the
/// SM3 digest (hex) of each file's bytes.
pub fn receipt_files(files: &[ParsedFile]) -> Vec<ReceiptFile> {
    files
        .iter()
        .map(|file| ReceiptFile {
            name: file.name.clone(),
            format: file.format.to_string(),
            sm3: hex::encode(file.sm3),
        })
        .collect()
}

/// What defines a reconciliation run besides its results: the content of
/// the files and the options that change what they match. File names are
/// not part of it: the same statement under another name is the same run.
#[derive(Clone, Debug)]
pub struct RunDefinition<'a> {
    pub files: &'a [ParsedFile],
    /// SM3 of the mapping file the CSVs were read through, if any.
    pub mapping_sm3: Option<Hash>,
    /// The channel asked for (`--channel`), if any.
    pub channel: Option<&'a str>,
    /// The period asked for, if any.
    pub period: Option<Period>,
    pub tolerance_days: u32,
    /// The ledger compared with.
    pub head_position: u64,
    pub head_hash: Hash,
}

/// A run's id: `reconcile-` and 64 bits of the SM3 of its definition and its
/// results. The files are taken by digest and format in sorted order, so
/// neither their names nor the order they were given in make another run;
/// other results, another mapping, channel, period, tolerance or ledger do.
pub fn run_id(definition: &RunDefinition<'_>, summary: &Summary) -> Result<String> {
    let mut files: Vec<String> =
        definition.files.iter().map(|file| format!("file {} {}\n", hex::encode(file.sm3), file.format)).collect();
    files.sort();
    let mut text = String::from("yibao reconciliation run 1\n");
    files.iter().for_each(|line| text.push_str(line));
    if let Some(digest) = definition.mapping_sm3 {
        text.push_str(&format!("mapping {}\n", hex::encode(digest)));
    }
    if let Some(channel) = definition.channel {
        // Length first: a channel name may hold any text.
        text.push_str(&format!("channel {}:{channel}\n", channel.len()));
    }
    if let Some(period) = definition.period {
        text.push_str(&format!("period {} {}\n", period.from, period.to));
    }
    text.push_str(&format!("tolerance_days {}\n", definition.tolerance_days));
    text.push_str(&format!("head {} {}\n", definition.head_position, hex::encode(definition.head_hash)));
    for result in summary.result_counts()? {
        text.push_str(&format!("result {} {} {}\n", result.kind, result.count, result.total.fen()));
    }
    let digest = ledger::envelope::sm3(text.as_bytes());
    Ok(format!("reconcile-{}", hex::encode(&digest[..8])))
}

/// The whole `ReconciliationRecorded` event of a run, for the CLI to append.
/// `period` is the report's period (or the one asked for); `head` is the
/// ledger head the ledger side was read up to.
pub fn reconciliation_recorded(
    run_id: &str,
    files: &[ParsedFile],
    period: Period,
    head_position: u64,
    head_hash: &Hash,
    summary: &Summary,
) -> Result<ReconciliationRecorded> {
    Ok(ReconciliationRecorded {
        run_id: run_id.to_string(),
        files: receipt_files(files),
        period_from: period.from,
        period_to: period.to,
        ledger_head_position: head_position,
        ledger_head_hash: hex::encode(head_hash),
        results: summary.result_counts()?,
    })
}
