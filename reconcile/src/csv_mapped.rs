//! Any CSV export, read through a small TOML mapping that says which column
//! holds what. For example, a rural commercial bank's counter collections:
//!
//! ```toml
//! encoding = "gbk"              # or "utf-8" (the default)
//! header = true                 # columns are named by the header row
//! delimiter = ","
//! decimal_separator = "."
//! channel = "guizhou_rural_credit"   # a fixed channel, or columns.channel
//! date_format = "%Y%m%d"        # optional chrono format; default ISO dates and times
//!
//! [columns]
//! reference = "交易流水号"
//! amount = "交易金额"
//! date = "记账日期"             # a date or a date-time
//! payer_id = "缴费人证件号码"    # optional
//! direction = "借贷标志"        # optional: without it a leading `-` means a debit
//! original_reference = "原交易流水号"  # optional, for refunds
//! settlement_ref = "清算批次号"  # optional: rows of one settlement form one receipt (N:1)
//! settlement_total = "批次金额"  # optional: the settlement's declared total
//!
//! [direction]
//! credit = ["贷"]
//! debit = ["借"]
//! ```
//!
//! Columns are header names, or 1-based numbers (required when `header = false`).
//!
//! Real exports need more, all optional (see `table.rs` for how a table is
//! found in a file or a sheet):
//!
//! ```toml
//! skip_rows = 0                       # rows dropped before anything else
//! header_search_rows = 20             # the header is the first row holding every mapped
//!                                     # column name, among this many (default 1)
//! comment_prefixes = ["#"]            # rows whose first cell starts so are skipped
//! footer_patterns = ["合计", "总计"]   # a row whose first cell starts so ends the table
//! thousands_separator = ","           # `1,234.00`; currency signs (¥ ￥ CNY RMB 元) always go
//! sheet = "明细"                       # Excel: the sheet read (default the first)
//!
//! [columns]
//! credit_amount = "贷方发生额"          # instead of amount: money in and money out
//! debit_amount = "借方发生额"           # in two columns, one of them filled per row
//! payer_text = "附言"                  # free text searched for the payer's ID number
//! status = "交易状态"                  # with [status]: rows of other values were not received
//!
//! [status]
//! received = ["成功"]
//! ```
//!
//! Cells lose surrounding white space (tabs too) and the wrappers spreadsheet
//! exports add to keep digits as text: `="..."`, a leading backtick or `'`.
//! An ID number masked in the export (`520521********2756`) is kept as the
//! receipt's payer, weak evidence that never keys a match on its own.

use crate::error::{Errors, Location, ReconcileError, Result};
use crate::model::{ControlTotal, Direction, NotReceived, Receipt, Statement};
use crate::rows::{self, Row};
use crate::table::{self, Layout};
use crate::text::{self, Encoding};
use ledger::{Date, Identity, Money};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

/// A column of a CSV file: by header name, or by 1-based number.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ColumnRef {
    Name(String),
    Number(usize),
}

/// Where a generic CSV's receipts get their payment channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelSource {
    /// Every row is of this channel.
    Fixed(String),
    /// A column names the channel, in the ledger's words.
    Column(ColumnRef),
    /// Unknown: references are looked up in every channel.
    Any,
}

/// The columns of a generic CSV.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    pub reference: ColumnRef,
    /// The amount, signed or with a direction column; or give
    /// `credit_amount` and `debit_amount` instead.
    #[serde(default)]
    pub amount: Option<ColumnRef>,
    /// Money in (收入, 贷方发生额), when the export splits the directions.
    #[serde(default)]
    pub credit_amount: Option<ColumnRef>,
    /// Money out (支出, 借方发生额).
    #[serde(default)]
    pub debit_amount: Option<ColumnRef>,
    /// A date or a date-time (read as Beijing time).
    pub date: ColumnRef,
    #[serde(default)]
    pub payer_id: Option<ColumnRef>,
    /// The payer's name (缴费人名称, 对方户名): with a masked ID, the
    /// evidence of the weak rule (masked ID + name + amount + date).
    #[serde(default)]
    pub payer_name: Option<ColumnRef>,
    /// Free text (附言, 摘要) searched for the payer's ID number when
    /// `payer_id` gives none.
    #[serde(default)]
    pub payer_text: Option<ColumnRef>,
    #[serde(default)]
    pub channel: Option<ColumnRef>,
    #[serde(default)]
    pub direction: Option<ColumnRef>,
    #[serde(default)]
    pub original_reference: Option<ColumnRef>,
    #[serde(default)]
    pub settlement_ref: Option<ColumnRef>,
    #[serde(default)]
    pub settlement_total: Option<ColumnRef>,
    /// The row's outcome (交易状态, 扣款结果); needs `[status] received`.
    #[serde(default)]
    pub status: Option<ColumnRef>,
}

/// The values of a direction column.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectionValues {
    pub credit: Vec<String>,
    pub debit: Vec<String>,
}

/// The values of a status column that mean the money arrived.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusValues {
    pub received: Vec<String>,
}

/// How to read a generic CSV file (or a sheet), validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub encoding: Encoding,
    pub header: bool,
    pub delimiter: u8,
    pub decimal_separator: char,
    /// Grouping of digits in amounts (`1,234.00`); `None` refuses any.
    pub thousands_separator: Option<char>,
    pub channel: ChannelSource,
    pub date_format: Option<String>,
    pub columns: Columns,
    /// Required with a direction column; without one, the amount's sign
    /// gives the direction.
    pub direction_values: Option<DirectionValues>,
    /// Required with a status column.
    pub status_values: Option<StatusValues>,
    /// Where the table is in the file: rows before it, comments, footers.
    pub layout: Layout,
    /// The sheet of a workbook read; `None`: the first.
    pub sheet: Option<String>,
}

/// The mapping file as written (serde-facing).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    header: Option<bool>,
    #[serde(default)]
    delimiter: Option<String>,
    #[serde(default)]
    decimal_separator: Option<String>,
    #[serde(default)]
    thousands_separator: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    date_format: Option<String>,
    #[serde(default)]
    skip_rows: Option<usize>,
    #[serde(default)]
    header_search_rows: Option<usize>,
    #[serde(default)]
    comment_prefixes: Vec<String>,
    #[serde(default)]
    footer_patterns: Vec<String>,
    #[serde(default)]
    sheet: Option<String>,
    columns: Columns,
    #[serde(default)]
    direction: Option<DirectionValues>,
    #[serde(default)]
    status: Option<StatusValues>,
}

/// Most rows searched for the header, skipped or named in a list: a
/// mapping is written by hand, and a larger figure is a mistake.
const MAX_LAYOUT_ROWS: usize = 10_000;

impl Mapping {
    /// Reads and checks a mapping file (TOML).
    pub fn from_toml(file: &str, toml_text: &str) -> Result<Mapping> {
        let error = |reason: String| ReconcileError::Mapping { file: file.to_string(), reason };
        let raw: MappingFile = toml::from_str(toml_text).map_err(|e| error(e.to_string().trim_end().to_string()))?;
        let encoding = match raw.encoding.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("utf-8" | "utf8") => Encoding::Utf8,
            Some("gbk" | "gb2312" | "gb18030") => Encoding::Gbk,
            Some(other) => return Err(error(format!("encoding: expected utf-8 or gbk, found `{other}`"))),
        };
        let delimiter = match raw.delimiter.as_deref().unwrap_or(",").as_bytes() {
            &[byte] if byte.is_ascii() && !byte.is_ascii_alphanumeric() && byte != b'"' => byte,
            _ => return Err(error("delimiter: expected one ASCII punctuation or tab character".into())),
        };
        let decimal_separator = match raw.decimal_separator.as_deref().unwrap_or(".") {
            "." => '.',
            "," => ',',
            other => return Err(error(format!("decimal_separator: expected `.` or `,`, found `{other}`"))),
        };
        let thousands_separator = match raw.thousands_separator.as_deref() {
            None => None,
            Some(",") => Some(','),
            Some(".") => Some('.'),
            Some(" ") => Some(' '),
            Some("'") => Some('\''),
            Some(other) => {
                return Err(error(format!("thousands_separator: expected `,`, `.`, ` ` or `'`, found `{other}`")))
            }
        };
        if thousands_separator == Some(decimal_separator) {
            return Err(error("thousands_separator: must differ from decimal_separator".into()));
        }
        let channel = match (raw.channel, raw.columns.channel.clone()) {
            (Some(_), Some(_)) => return Err(error("give either channel or columns.channel, not both".into())),
            (Some(fixed), None) => {
                let fixed = text::channel(&fixed).map_err(|e| error(format!("channel: expected {e}")))?;
                fixed.map_or(ChannelSource::Any, ChannelSource::Fixed)
            }
            (None, Some(column)) => ChannelSource::Column(column),
            (None, None) => ChannelSource::Any,
        };
        let layout = Layout {
            skip_rows: raw.skip_rows.unwrap_or(0),
            header_search_rows: raw.header_search_rows.unwrap_or(1),
            comment_prefixes: raw.comment_prefixes,
            footer_patterns: raw.footer_patterns,
        };
        let mapping = Mapping {
            encoding,
            header: raw.header.unwrap_or(true),
            delimiter,
            decimal_separator,
            thousands_separator,
            channel,
            date_format: raw.date_format,
            columns: raw.columns,
            direction_values: raw.direction,
            status_values: raw.status,
            layout,
            sheet: raw.sheet,
        };
        mapping.check().map_err(error)?;
        Ok(mapping)
    }

    fn all_columns(&self) -> Vec<(&'static str, &ColumnRef)> {
        let c = &self.columns;
        let mut all = vec![("reference", &c.reference), ("date", &c.date)];
        let optional = [
            ("amount", &c.amount),
            ("credit_amount", &c.credit_amount),
            ("debit_amount", &c.debit_amount),
            ("payer_id", &c.payer_id),
            ("payer_name", &c.payer_name),
            ("payer_text", &c.payer_text),
            ("channel", &c.channel),
            ("direction", &c.direction),
            ("original_reference", &c.original_reference),
            ("settlement_ref", &c.settlement_ref),
            ("settlement_total", &c.settlement_total),
            ("status", &c.status),
        ];
        all.extend(optional.into_iter().filter_map(|(name, column)| column.as_ref().map(|c| (name, c))));
        all
    }

    /// The header names the mapping needs (what finds the header row).
    pub(crate) fn column_names(&self) -> Vec<&str> {
        let named = self.all_columns().into_iter().filter_map(|(_, column)| match column {
            ColumnRef::Name(name) => Some(name.trim()),
            ColumnRef::Number(_) => None,
        });
        named.collect()
    }

    fn check(&self) -> Result<(), String> {
        for (role, column) in self.all_columns() {
            match column {
                ColumnRef::Number(0) => return Err(format!("columns.{role}: column numbers start at 1")),
                ColumnRef::Name(_) if !self.header => {
                    return Err(format!("columns.{role}: a file without a header row names columns by number"))
                }
                _ => {}
            }
        }
        let c = &self.columns;
        match (&c.amount, &c.credit_amount, &c.debit_amount) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => {}
            _ => return Err("give columns.amount, or columns.credit_amount and columns.debit_amount".into()),
        }
        if c.credit_amount.is_some() && c.direction.is_some() {
            return Err("columns.credit_amount and debit_amount give the direction: drop columns.direction".into());
        }
        match (&c.direction, &self.direction_values) {
            (Some(_), None) => return Err("columns.direction needs [direction] credit and debit values".into()),
            (None, Some(_)) => return Err("[direction] values need columns.direction".into()),
            _ => {}
        }
        match (&c.status, &self.status_values) {
            (Some(_), None) => return Err("columns.status needs [status] received values".into()),
            (None, Some(_)) => return Err("[status] values need columns.status".into()),
            (Some(_), Some(values)) if values.received.is_empty() => {
                return Err("[status] received: name at least one value".into())
            }
            _ => {}
        }
        if c.settlement_total.is_some() && c.settlement_ref.is_none() {
            return Err("columns.settlement_total needs columns.settlement_ref".into());
        }
        if self.date_format.as_deref().is_some_and(|f| chrono::format::StrftimeItems::new(f).parse().is_err()) {
            return Err("date_format: not a chrono format (such as %Y%m%d or %Y-%m-%d %H:%M:%S)".into());
        }
        self.layout.check(self.header, MAX_LAYOUT_ROWS)
    }
}

/// Resolved column indexes (0-based) for one file.
struct Resolved {
    reference: usize,
    amount: Option<usize>,
    credit_amount: Option<usize>,
    debit_amount: Option<usize>,
    date: usize,
    payer_id: Option<usize>,
    payer_name: Option<usize>,
    payer_text: Option<usize>,
    channel: Option<usize>,
    direction: Option<usize>,
    original_reference: Option<usize>,
    settlement_ref: Option<usize>,
    settlement_total: Option<usize>,
    status: Option<usize>,
    /// Header names (or `column N`), for messages.
    names: Vec<String>,
}

/// Parses a generic CSV through its mapping.
pub fn parse_mapped_csv(file: &str, bytes: &[u8], mapping: &Mapping) -> Result<Statement> {
    let errors = Errors { file };
    // A byte-order mark says UTF-8 whatever the mapping says: a GBK bank's
    // export saved again by a spreadsheet is UTF-8 with one.
    let encoding = if bytes.starts_with(b"\xEF\xBB\xBF") { Encoding::Utf8 } else { mapping.encoding };
    let text = text::decode(errors, bytes, encoding)?;
    let rows = rows::rows(errors, &text, mapping.delimiter);
    read_rows(file, rows, mapping, Source::Text)
}

/// Where the rows come from: cells of a sheet hold Excel's date serial
/// numbers and floats, text never does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Text,
    Sheet,
}

/// Reads the receipts of a table's rows (a CSV file's records or a sheet's
/// rows) through the mapping. `file` names the file (and sheet) in errors
/// and receipts.
pub(crate) fn read_rows(
    file: &str,
    rows: impl Iterator<Item = Result<Row>>,
    mapping: &Mapping,
    source: Source,
) -> Result<Statement> {
    let errors = Errors { file };
    let table = table::locate(errors, rows, mapping)?;
    let columns = resolve(errors, mapping, table.header.as_ref())?;
    let mut reader =
        Reader { errors, mapping, columns, file: Arc::from(file), source, settlements: Settlements::default() };
    let mut receipts = Vec::new();
    let mut not_received = Vec::new();
    for row in table.rows {
        let row = row?;
        let seq = u32::try_from(receipts.len() + not_received.len() + reader.settlements.n_rows)
            .map_err(|_| errors.limit(Location::Line(row.line), "rows", rows::MAX_ROWS))?;
        match reader.row(&row, seq)? {
            Read::Receipt(receipt) => receipts.push(receipt),
            Read::NotReceived(receipt) => not_received.push(receipt),
            Read::InSettlement => {}
        }
    }
    let (batches, control_totals) = reader.settlements.finish(&reader.file, errors)?;
    receipts.extend(batches);
    receipts.sort_by_key(|r| r.seq);
    Ok(Statement { control_totals, not_received, ..Statement::of_file(reader.file, receipts) })
}

fn resolve(errors: Errors<'_>, mapping: &Mapping, header: Option<&Row>) -> Result<Resolved> {
    let names: Vec<String> =
        header.map(|h| h.fields.iter().map(|n| table::clean(n).to_string()).collect()).unwrap_or_default();
    let find = |column: &ColumnRef| -> Result<usize> {
        match column {
            ColumnRef::Number(number) => Ok(number.saturating_sub(1)),
            ColumnRef::Name(name) => names.iter().position(|n| n == name.trim()).ok_or_else(|| {
                let joined = header.map(Row::joined).unwrap_or_default();
                errors.invalid(Location::Line(header.map_or(1, |h| h.line)), format!("a column named `{name}`"), joined)
            }),
        }
    };
    let optional = |column: &Option<ColumnRef>| column.as_ref().map(find).transpose();
    let c = &mapping.columns;
    let channel = match &mapping.channel {
        ChannelSource::Column(column) => Some(find(column)?),
        _ => None,
    };
    Ok(Resolved {
        reference: find(&c.reference)?,
        amount: optional(&c.amount)?,
        credit_amount: optional(&c.credit_amount)?,
        debit_amount: optional(&c.debit_amount)?,
        date: find(&c.date)?,
        payer_id: optional(&c.payer_id)?,
        payer_name: optional(&c.payer_name)?,
        payer_text: optional(&c.payer_text)?,
        channel,
        direction: optional(&c.direction)?,
        original_reference: optional(&c.original_reference)?,
        settlement_ref: optional(&c.settlement_ref)?,
        settlement_total: optional(&c.settlement_total)?,
        status: optional(&c.status)?,
        names,
    })
}

/// What one row is.
enum Read {
    Receipt(Receipt),
    /// Its status says the money did not arrive (a failed debit).
    NotReceived(NotReceived),
    /// A part of a settlement, kept until the file is read.
    InSettlement,
}

struct Reader<'m> {
    errors: Errors<'m>,
    mapping: &'m Mapping,
    columns: Resolved,
    file: Arc<str>,
    source: Source,
    settlements: Settlements,
}

impl Reader<'_> {
    fn at(&self, line: u64, index: usize) -> Location {
        let field = self.columns.names.get(index).cloned().unwrap_or_else(|| format!("column {}", index + 1));
        Location::Field { line, field }
    }

    fn field<'r>(&self, row: &'r Row, index: usize) -> Result<&'r str> {
        row.fields.get(index).map(table::clean).ok_or_else(|| {
            self.errors.invalid(
                self.at(row.line, index),
                "a value in this column",
                format!("{} fields", row.fields.len()),
            )
        })
    }

    fn reference(&self, row: &Row, index: Option<usize>) -> Result<Option<String>> {
        let Some(index) = index else { return Ok(None) };
        let value = self.field(row, index)?;
        text::reference(value).map_err(|expected| self.errors.invalid(self.at(row.line, index), expected, value))
    }

    fn channel(&self, row: &Row, index: Option<usize>) -> Result<Option<String>> {
        let Some(index) = index else { return Ok(None) };
        let value = self.field(row, index)?;
        text::channel(value).map_err(|expected| self.errors.invalid(self.at(row.line, index), expected, value))
    }

    fn row(&mut self, row: &Row, seq: u32) -> Result<Read> {
        let c = &self.columns;
        let (direction, amount) = self.amount_and_direction(row)?;
        let booked_on = self.date(row, c.date)?;
        let channel = match &self.mapping.channel {
            ChannelSource::Fixed(channel) => Some(channel.clone()),
            ChannelSource::Column(_) => self.channel(row, c.channel)?,
            ChannelSource::Any => None,
        };
        let receipt = Receipt {
            file: self.file.clone(),
            at: Location::Line(row.line),
            seq,
            channel,
            reference: self.reference(row, Some(c.reference))?,
            original_reference: self.reference(row, c.original_reference)?,
            amount,
            direction,
            reversal: false,
            booked_on,
            payer_id: self.payer(row)?,
            payer_name: self.name(row)?,
            settlement_ref: self.reference(row, c.settlement_ref)?,
            parts: Vec::new(),
        };
        if let Some(status) = self.not_received_status(row)? {
            return Ok(Read::NotReceived(NotReceived { receipt, status: format!("status {status}") }));
        }
        if receipt.settlement_ref.is_none() {
            return Ok(Read::Receipt(receipt));
        }
        let total = match c.settlement_total {
            Some(index) => Some(self.money(row, index, false)?.1),
            None => None,
        };
        self.settlements.add(receipt, total, self.errors)?;
        Ok(Read::InSettlement)
    }

    /// Whether the row's status (if the mapping reads one) says received.
    /// The row's status when it is not one of the values that mean received.
    fn not_received_status(&self, row: &Row) -> Result<Option<String>> {
        let (Some(index), Some(values)) = (self.columns.status, &self.mapping.status_values) else { return Ok(None) };
        let value = self.field(row, index)?;
        Ok((!values.received.iter().any(|v| v.trim() == value)).then(|| value.to_string()))
    }

    fn date(&self, row: &Row, index: usize) -> Result<Date> {
        let value = self.field(row, index)?;
        let format = self.mapping.date_format.as_deref();
        let parsed = match table::excel_serial_date(value).filter(|_| self.source == Source::Sheet) {
            Some(date) => Ok(date),
            None => text::parse_business_date(value, format),
        };
        parsed.map_err(|expected| self.errors.invalid(self.at(row.line, index), expected, value))
    }

    fn money(&self, row: &Row, index: usize, signed: bool) -> Result<(bool, Money)> {
        let value = self.field(row, index)?;
        let plain = table::plain_amount(value, self.mapping.thousands_separator)
            .map_err(|expected| self.errors.invalid(self.at(row.line, index), expected, value))?;
        text::parse_amount(&plain, self.mapping.decimal_separator, signed).map_err(|expected| {
            let expected = match self.source {
                Source::Sheet => format!("a whole number of fen: {expected}"),
                Source::Text => expected,
            };
            self.errors.invalid(self.at(row.line, index), expected, value)
        })
    }

    fn amount_and_direction(&self, row: &Row) -> Result<(Direction, Money)> {
        let c = &self.columns;
        if let (Some(credit), Some(debit)) = (c.credit_amount, c.debit_amount) {
            return self.split_amount(row, credit, debit);
        }
        // `check` makes sure there is an amount column when there is no pair.
        let amount_index = c.amount.or(c.credit_amount).unwrap_or(c.reference);
        let (Some(index), Some(values)) = (c.direction, &self.mapping.direction_values) else {
            let (negative, amount) = self.money(row, amount_index, true)?;
            return Ok((if negative { Direction::Debit } else { Direction::Credit }, amount));
        };
        let (_, amount) = self.money(row, amount_index, false)?;
        let value = self.field(row, index)?;
        let direction = if values.credit.iter().any(|v| v.trim() == value) {
            Direction::Credit
        } else if values.debit.iter().any(|v| v.trim() == value) {
            Direction::Debit
        } else {
            let expected =
                format!("a direction, one of {}", [&values.credit[..], &values.debit[..]].concat().join(", "));
            return Err(self.errors.invalid(self.at(row.line, index), expected, value));
        };
        Ok((direction, amount))
    }

    /// Money in and money out in two columns: the one that holds a
    /// non-zero amount gives the direction; a debit may be written negative.
    fn split_amount(&self, row: &Row, credit: usize, debit: usize) -> Result<(Direction, Money)> {
        let filled = |index: usize, signed: bool| -> Result<Option<Money>> {
            if self.field(row, index)?.is_empty() {
                return Ok(None);
            }
            let (_, amount) = self.money(row, index, signed)?;
            Ok(Some(amount).filter(|amount| *amount != Money::ZERO))
        };
        match (filled(credit, false)?, filled(debit, true)?) {
            (Some(amount), None) => Ok((Direction::Credit, amount)),
            (None, Some(amount)) => Ok((Direction::Debit, amount)),
            (credit_amount, _) => {
                let names = |index: usize| self.columns.names.get(index).cloned().unwrap_or_default();
                let found = if credit_amount.is_some() { "amounts in both" } else { "no amount in either" };
                Err(self.errors.invalid(
                    Location::Line(row.line),
                    format!("an amount in one of `{}` and `{}`", names(credit), names(debit)),
                    found,
                ))
            }
        }
    }

    /// The payer's name, in the form the ledger keeps names in.
    fn name(&self, row: &Row) -> Result<Option<String>> {
        let Some(index) = self.columns.payer_name else { return Ok(None) };
        let value = self.field(row, index)?;
        if value.is_empty() {
            return Ok(None);
        }
        match ledger::text::name("payer_name", value) {
            Ok(name) if name.len() <= text::MAX_REFERENCE_BYTES => Ok(Some(name)),
            _ => Err(self.errors.invalid(self.at(row.line, index), "a name without control characters", value)),
        }
    }

    /// The payer: a valid ID number, a masked one (kept as it is, weak
    /// evidence), or one found in the payer text column.
    fn payer(&self, row: &Row) -> Result<Option<String>> {
        if let Some(index) = self.columns.payer_id {
            let value = self.field(row, index)?;
            if !value.is_empty() {
                if let Ok(id) = value.parse::<Identity>() {
                    return Ok(Some(id.to_string()));
                }
                return match table::masked_id(value) {
                    Some(masked) => Ok(Some(masked)),
                    None => Err(self.errors.invalid(
                        self.at(row.line, index),
                        "an identity number (GB 11643, other:NUMBER, or masked as 520521********2756)",
                        value,
                    )),
                };
            }
        }
        let Some(index) = self.columns.payer_text else { return Ok(None) };
        Ok(text::find_identity(self.field(row, index)?))
    }
}

/// Rows grouped by settlement reference: one receipt per settlement.
#[derive(Default)]
struct Settlements {
    n_rows: usize,
    order: Vec<(Option<String>, String)>,
    groups: HashMap<(Option<String>, String), Settlement>,
}

struct Settlement {
    parts: Vec<Receipt>,
    declared: Option<(Money, u64)>,
}

impl Settlements {
    fn add(&mut self, part: Receipt, total: Option<Money>, errors: Errors<'_>) -> Result<()> {
        self.n_rows += 1;
        let key = (part.channel.clone(), part.settlement_ref.clone().unwrap_or_default());
        let line = match part.at {
            Location::Line(line) => line,
            _ => 0,
        };
        let group = self.groups.entry(key.clone()).or_insert_with(|| {
            self.order.push(key);
            Settlement { parts: Vec::new(), declared: total.map(|t| (t, line)) }
        });
        if let (Some((declared, first_line)), Some(total)) = (group.declared, total) {
            if declared != total {
                return Err(errors.invalid(
                    Location::Line(line),
                    format!("the settlement total given on line {first_line} ({declared})"),
                    total,
                ));
            }
        }
        if let Some(first) = group.parts.first() {
            if first.direction != part.direction {
                return Err(errors.invalid(
                    Location::Line(line),
                    "the direction of the settlement's other rows",
                    "the other",
                ));
            }
        }
        group.parts.push(part);
        Ok(())
    }

    fn finish(mut self, file: &Arc<str>, errors: Errors<'_>) -> Result<(Vec<Receipt>, Vec<ControlTotal>)> {
        let mut receipts = Vec::with_capacity(self.order.len());
        let mut totals = Vec::new();
        for key in self.order {
            let Some(group) = self.groups.remove(&key) else { continue };
            let sum_fen: i128 = group.parts.iter().map(|p| i128::from(p.amount.fen())).sum();
            let Some(first) = group.parts.first() else { continue };
            let amount = match group.declared {
                Some((declared, _)) => declared,
                None => i64::try_from(sum_fen).ok().and_then(Money::from_fen).ok_or_else(|| {
                    errors.limit(first.at.clone(), "settlement total in fen", Money::MAX_FEN as usize)
                })?,
            };
            if let Some((declared, line)) = group.declared {
                totals.push(ControlTotal {
                    what: format!("settlement {} total against its rows", key.1),
                    at: Location::Line(line),
                    declared: i128::from(declared.fen()),
                    computed: sum_fen,
                    is_count: false,
                });
            }
            let booked_on = group.parts.iter().map(|p| p.booked_on).max().unwrap_or(first.booked_on);
            receipts.push(Receipt {
                file: file.clone(),
                at: first.at.clone(),
                seq: first.seq,
                channel: key.0.clone(),
                reference: Some(key.1.clone()),
                original_reference: None,
                amount,
                direction: first.direction,
                reversal: false,
                booked_on,
                payer_id: None,
                payer_name: None,
                settlement_ref: Some(key.1),
                parts: group.parts,
            });
        }
        Ok((receipts, totals))
    }
}
