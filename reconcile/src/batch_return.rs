//! Bank batch-collection returns (代收/代扣回盘): the file a bank sends back
//! after an auto-debit run, one record a line: a header record, one detail
//! record per debit with its result code, and a trailer record with the
//! control count and total. Fixed-width (byte positions, as GBK files are
//! specified) or delimited (`|`), described by a [`Layout`] (TOML; the
//! shipped presets are in `reconcile/presets/`, to copy and adjust).
//!
//! A debit whose result code is not a success code is not a receipt: it is
//! listed in the statement's [`NotReceived`] rows and never matched as paid. The trailer's (and
//! the header's, where the layout names them) count and total must equal
//! the detail records', else the file is refused, naming line and field.

use crate::error::{Errors, Location, ReconcileError, Result};
use crate::model::{Direction, NotReceived, Receipt, Statement};
use crate::text::{self, Encoding};
use ledger::Money;
use serde::Deserialize;
use std::sync::Arc;

/// Where a field is in a record.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum FieldAt {
    /// A delimited record's field, from 1.
    Column(usize),
    /// A fixed-width record's bytes, `start` from 1.
    Bytes { start: usize, length: usize },
}

impl FieldAt {
    /// A column from 1 with a delimiter; a non-empty byte range from 1 without.
    fn is_valid(&self, delimited: bool) -> bool {
        match self {
            FieldAt::Column(column) => delimited && *column >= 1,
            FieldAt::Bytes { start, length } => !delimited && *start >= 1 && *length >= 1,
        }
    }
}

/// Fields of the detail record.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetailFields {
    pub reference: FieldAt,
    pub amount: FieldAt,
    pub result: FieldAt,
    pub payer_id: Option<FieldAt>,
    pub booked_on: Option<FieldAt>,
    pub message: Option<FieldAt>,
}

/// Control fields of the header or trailer record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlFields {
    /// Number of detail records.
    pub count: Option<FieldAt>,
    /// Sum of every detail record's amount.
    pub total: Option<FieldAt>,
    /// Number and sum of the successful ones.
    pub success_count: Option<FieldAt>,
    pub success_total: Option<FieldAt>,
    /// The run's date, used for details without one.
    pub date: Option<FieldAt>,
}

impl ControlFields {
    fn all(&self) -> [&Option<FieldAt>; 5] {
        [&self.count, &self.total, &self.success_count, &self.success_total, &self.date]
    }
}

/// How amounts are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmountUnit {
    /// `400.00`
    Yuan,
    /// `000000040000`
    Fen,
}

/// A batch return's layout.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Always `batch-return`: what tells a layout from a CSV mapping.
    pub kind: String,
    pub name: String,
    /// `gbk` or `utf-8`.
    pub encoding: String,
    /// The field delimiter; none for fixed-width records.
    pub delimiter: Option<String>,
    /// The ledger's channel of the debits.
    pub channel: String,
    pub record_type: FieldAt,
    pub header_type: String,
    pub detail_type: String,
    pub trailer_type: String,
    pub amount_unit: AmountUnit,
    /// chrono format of dates, e.g. `%Y%m%d`.
    pub date_format: String,
    /// Result codes that mean the debit went through.
    pub success_codes: Vec<String>,
    pub detail: DetailFields,
    #[serde(default)]
    pub header: ControlFields,
    #[serde(default)]
    pub trailer: ControlFields,
}

impl Layout {
    /// Reads a layout; `file` names it in errors.
    pub fn from_toml(file: &str, text: &str) -> Result<Layout> {
        let mapping_error = |reason: String| ReconcileError::Mapping { file: file.to_string(), reason };
        let layout: Layout = toml::from_str(text).map_err(|e| mapping_error(e.to_string()))?;
        if layout.kind != "batch-return" {
            return Err(mapping_error(format!("kind: expected `batch-return`, found `{}`", layout.kind)));
        }
        if !matches!(layout.encoding.as_str(), "gbk" | "utf-8") {
            return Err(mapping_error(format!("encoding: expected gbk or utf-8, found `{}`", layout.encoding)));
        }
        if layout.delimiter.as_ref().is_some_and(|d| d.chars().count() != 1) {
            return Err(mapping_error("delimiter: one character".into()));
        }
        let dated = layout.detail.booked_on.is_some() || layout.header.date.is_some() || layout.trailer.date.is_some();
        if !dated {
            return Err(mapping_error("a date: detail.booked_on, header.date or trailer.date".into()));
        }
        let delimited = layout.delimiter.is_some();
        if let Some((name, _)) = layout.positions().into_iter().find(|(_, at)| !at.is_valid(delimited)) {
            let shape = if layout.delimiter.is_some() { "a field number from 1" } else { "{ start, length } from 1" };
            return Err(mapping_error(format!("{name}: expected {shape}, as the delimiter says")));
        }
        if layout.success_codes.is_empty() {
            return Err(mapping_error("success_codes: at least one".into()));
        }
        Ok(layout)
    }

    /// Every position the layout names, with its name.
    fn positions(&self) -> Vec<(&'static str, &FieldAt)> {
        let detail = &self.detail;
        let mut out = vec![
            ("record_type", &self.record_type),
            ("detail.reference", &detail.reference),
            ("detail.amount", &detail.amount),
            ("detail.result", &detail.result),
        ];
        let optional = [
            ("detail.payer_id", &detail.payer_id),
            ("detail.booked_on", &detail.booked_on),
            ("detail.message", &detail.message),
        ];
        let header = ["header.count", "header.total", "header.success_count", "header.success_total", "header.date"];
        let trailer =
            ["trailer.count", "trailer.total", "trailer.success_count", "trailer.success_total", "trailer.date"];
        let controls = header.into_iter().zip(self.header.all()).chain(trailer.into_iter().zip(self.trailer.all()));
        for (name, at) in optional.into_iter().chain(controls) {
            if let Some(at) = at {
                out.push((name, at));
            }
        }
        out
    }

    /// A shipped layout by name.
    pub fn preset(name: &str) -> Option<Layout> {
        crate::presets::preset(name)?.layout()?.ok()
    }

    /// Whether a layout is a batch return's (rather than a CSV mapping).
    pub fn is_layout(text: &str) -> bool {
        toml::from_str::<toml::Table>(text)
            .ok()
            .and_then(|table| table.get("kind").and_then(|k| k.as_str().map(|k| k == "batch-return")))
            .unwrap_or(false)
    }

    /// Whether a file has this layout's shape: its first record is a
    /// header and its last a trailer.
    pub fn recognises(&self, bytes: &[u8]) -> bool {
        let errors = Errors { file: "" };
        let mut all = records(bytes);
        let (Some((_, first)), Some((_, last))) = (all.next(), all.last()) else { return false };
        let type_of = |record: &[u8]| self.field(errors, 0, record, &self.record_type, "record type").ok();
        type_of(first).as_deref() == Some(self.header_type.as_str())
            && type_of(last).as_deref() == Some(self.trailer_type.as_str())
    }

    fn encoding(&self) -> Encoding {
        if self.encoding == "gbk" {
            Encoding::Gbk
        } else {
            Encoding::Utf8
        }
    }

    /// One field of a record, decoded and trimmed.
    fn field(&self, errors: Errors<'_>, line: u64, record: &[u8], at: &FieldAt, name: &str) -> Result<String> {
        let location = || Location::Field { line, field: name.to_string() };
        let decode = |bytes: &[u8]| {
            text::decode(errors, bytes, self.encoding())
                .map(|text| text.into_owned())
                .map_err(|_| errors.malformed(location(), format!("not valid {} text", self.encoding)))
        };
        let value = match (at, &self.delimiter) {
            // Decoded before it is split: a GBK trail byte may be `|`.
            (FieldAt::Column(column), Some(delimiter)) => {
                let record = decode(record)?;
                record.split(delimiter.as_str()).nth(column.saturating_sub(1)).unwrap_or_default().to_string()
            }
            (FieldAt::Bytes { start, length }, None) => {
                let begin = start.saturating_sub(1).min(record.len());
                let end = begin.saturating_add(*length).min(record.len());
                decode(&record[begin..end])?
            }
            _ => return Err(errors.invalid(location(), "a field position that fits the layout's delimiter", name)),
        };
        Ok(value.trim().to_string())
    }
}

/// A detail's date until the header's or trailer's is read.
const UNDATED: ledger::Date = ledger::Date(chrono::NaiveDate::MIN);

/// The non-blank lines with their numbers, line ends removed.
fn records(bytes: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(index, line)| (index as u64 + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(|b| b.is_ascii_whitespace()))
}

/// Parses a batch return by its layout: the successful debits are the
/// statement's receipts, the failed its `not_received`.
pub fn parse_batch_return(file: &str, bytes: &[u8], layout: &Layout) -> Result<Statement> {
    let errors = Errors { file };
    text::check_size(errors, bytes)?;
    let mut run = Run::new(errors, layout, file);
    let mut header: Option<(u64, &[u8])> = None;
    let mut trailer: Option<(u64, &[u8])> = None;
    for (line, record) in records(bytes) {
        if trailer.is_some() {
            return Err(errors.invalid(Location::Line(line), "the end of the file after the trailer record", ""));
        }
        let kind = layout.field(errors, line, record, &layout.record_type, "record type")?;
        match kind.as_str() {
            k if k == layout.header_type && header.is_none() && run.n_details == 0 => header = Some((line, record)),
            k if k == layout.detail_type && header.is_some() => run.detail(line, record)?,
            k if k == layout.trailer_type && header.is_some() => trailer = Some((line, record)),
            _ => {
                let expected = match header {
                    None => format!("the header record (type `{}`)", layout.header_type),
                    Some(_) => {
                        format!("a detail (`{}`) or trailer (`{}`) record", layout.detail_type, layout.trailer_type)
                    }
                };
                return Err(errors.invalid(Location::Field { line, field: "record type".into() }, expected, kind));
            }
        }
    }
    let Some((header_line, header_record)) = header else {
        return Err(errors.invalid(
            Location::Line(1),
            format!("the header record (type `{}`)", layout.header_type),
            "",
        ));
    };
    let Some((trailer_line, trailer_record)) = trailer else {
        let last = records(bytes).last().map_or(1, |(line, _)| line);
        return Err(errors.malformed(
            Location::Line(last),
            format!("the file ends early, without its trailer record (type `{}`)", layout.trailer_type),
        ));
    };
    run.check_controls(header_line, header_record, &layout.header)?;
    run.check_controls(trailer_line, trailer_record, &layout.trailer)?;
    Ok(run.finish())
}

struct Run<'l, 'f> {
    errors: Errors<'f>,
    layout: &'l Layout,
    file: Arc<str>,
    receipts: Vec<Receipt>,
    not_received: Vec<NotReceived>,
    n_details: u64,
    total_fen: i128,
    success_fen: i128,
    /// The run's date (header or trailer), for details without their own.
    run_date: Option<ledger::Date>,
}

impl<'l, 'f> Run<'l, 'f> {
    fn new(errors: Errors<'f>, layout: &'l Layout, file: &str) -> Run<'l, 'f> {
        Run {
            errors,
            layout,
            file: Arc::from(file),
            receipts: Vec::new(),
            not_received: Vec::new(),
            n_details: 0,
            total_fen: 0,
            success_fen: 0,
            run_date: None,
        }
    }

    fn field(&self, line: u64, record: &[u8], at: &FieldAt, name: &str) -> Result<String> {
        self.layout.field(self.errors, line, record, at, name)
    }

    fn amount(&self, line: u64, value: &str, name: &str) -> Result<Money> {
        let at = || Location::Field { line, field: name.to_string() };
        match self.layout.amount_unit {
            AmountUnit::Yuan => text::parse_amount(value, '.', false)
                .map(|(_, money)| money)
                .map_err(|expected| self.errors.invalid(at(), expected, value)),
            AmountUnit::Fen => value
                .parse::<i64>()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                .and_then(Money::from_fen)
                .ok_or_else(|| self.errors.invalid(at(), "an amount in fen (digits only)", value)),
        }
    }

    fn date(&self, line: u64, value: &str, name: &str) -> Result<ledger::Date> {
        text::parse_business_date(value, Some(&self.layout.date_format))
            .map_err(|expected| self.errors.invalid(Location::Field { line, field: name.to_string() }, expected, value))
    }

    fn detail(&mut self, line: u64, record: &[u8]) -> Result<()> {
        let fields = &self.layout.detail;
        let amount_text = self.field(line, record, &fields.amount, "amount")?;
        let amount = self.amount(line, &amount_text, "amount")?;
        let reference_text = self.field(line, record, &fields.reference, "reference")?;
        let reference = text::reference(&reference_text).map_err(|expected| {
            self.errors.invalid(Location::Field { line, field: "reference".into() }, expected, &reference_text)
        })?;
        let payer_id = match &fields.payer_id {
            Some(at) => text::find_identity(&self.field(line, record, at, "payer_id")?),
            None => None,
        };
        let code = self.field(line, record, &fields.result, "result")?;
        let booked_on = match &fields.booked_on {
            Some(at) => self.date(line, &self.field(line, record, at, "booked_on")?, "booked_on")?,
            // Dated by the header or trailer once it is read (`finish`).
            None => UNDATED,
        };
        let seq = u32::try_from(self.n_details)
            .map_err(|_| self.errors.limit(Location::Line(line), "records", u32::MAX as usize))?;
        self.n_details += 1;
        self.total_fen += i128::from(amount.fen());
        let receipt = Receipt {
            file: self.file.clone(),
            at: Location::Line(line),
            seq,
            channel: Some(self.layout.channel.clone()),
            reference,
            original_reference: None,
            amount,
            direction: Direction::Credit,
            reversal: false,
            booked_on,
            payer_id,
            payer_name: None,
            settlement_ref: None,
            parts: Vec::new(),
        };
        if !self.layout.success_codes.contains(&code) {
            let message = match &fields.message {
                Some(at) => self.field(line, record, at, "message")?,
                None => String::new(),
            };
            let status = match message.is_empty() {
                true => format!("failed with code {code}"),
                false => format!("failed with code {code} ({message})"),
            };
            self.not_received.push(NotReceived { receipt, status });
            return Ok(());
        }
        self.success_fen += i128::from(amount.fen());
        self.receipts.push(receipt);
        Ok(())
    }

    /// The header's or trailer's declared figures against the details'.
    fn check_controls(&mut self, line: u64, record: &[u8], fields: &ControlFields) -> Result<()> {
        let n_success = self.receipts.len() as i128;
        let checks = [
            (&fields.count, "count", i128::from(self.n_details), true),
            (&fields.total, "total", self.total_fen, false),
            (&fields.success_count, "success_count", n_success, true),
            (&fields.success_total, "success_total", self.success_fen, false),
        ];
        for (at, name, computed, is_count) in checks {
            let Some(at) = at else { continue };
            let value = self.field(line, record, at, name)?;
            let declared = match is_count {
                true => value.parse::<u32>().map(i128::from).map_err(|_| {
                    self.errors.invalid(Location::Field { line, field: name.into() }, "a count", &value)
                })?,
                false => i128::from(self.amount(line, &value, name)?.fen()),
            };
            if declared != computed {
                let shown = if is_count { computed.to_string() } else { crate::checks::yuan(computed) };
                let what = if is_count { "records" } else { "as the detail records add up to" };
                return Err(self.errors.invalid(
                    Location::Field { line, field: name.into() },
                    format!("{shown} ({what})"),
                    value,
                ));
            }
        }
        if let Some(at) = &fields.date {
            self.run_date = Some(self.date(line, &self.field(line, record, at, "date")?, "date")?);
        }
        Ok(())
    }

    fn finish(mut self) -> Statement {
        if let Some(date) = self.run_date {
            let undated = self.receipts.iter_mut().chain(self.not_received.iter_mut().map(|n| &mut n.receipt));
            undated.filter(|r| r.booked_on == UNDATED).for_each(|r| r.booked_on = date);
        }
        Statement { not_received: self.not_received, ..Statement::of_file(self.file, self.receipts) }
    }
}
