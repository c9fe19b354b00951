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

use crate::error::{Errors, Location, ReconcileError, Result};
use crate::model::{ControlTotal, Direction, Receipt, Statement};
use crate::rows::{self, Row};
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
    pub amount: ColumnRef,
    /// A date or a date-time (read as Beijing time).
    pub date: ColumnRef,
    #[serde(default)]
    pub payer_id: Option<ColumnRef>,
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
}

/// The values of a direction column.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectionValues {
    pub credit: Vec<String>,
    pub debit: Vec<String>,
}

/// How to read a generic CSV file, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub encoding: Encoding,
    pub header: bool,
    pub delimiter: u8,
    pub decimal_separator: char,
    pub channel: ChannelSource,
    pub date_format: Option<String>,
    pub columns: Columns,
    /// Required with a direction column; without one, the amount's sign
    /// gives the direction.
    pub direction_values: Option<DirectionValues>,
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
    channel: Option<String>,
    #[serde(default)]
    date_format: Option<String>,
    columns: Columns,
    #[serde(default)]
    direction: Option<DirectionValues>,
}

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
        let channel = match (raw.channel, raw.columns.channel.clone()) {
            (Some(_), Some(_)) => return Err(error("give either channel or columns.channel, not both".into())),
            (Some(fixed), None) => {
                let fixed = text::channel(&fixed).map_err(|e| error(format!("channel: expected {e}")))?;
                fixed.map_or(ChannelSource::Any, ChannelSource::Fixed)
            }
            (None, Some(column)) => ChannelSource::Column(column),
            (None, None) => ChannelSource::Any,
        };
        let mapping = Mapping {
            encoding,
            header: raw.header.unwrap_or(true),
            delimiter,
            decimal_separator,
            channel,
            date_format: raw.date_format,
            columns: raw.columns,
            direction_values: raw.direction,
        };
        mapping.check().map_err(error)?;
        Ok(mapping)
    }

    fn all_columns(&self) -> Vec<(&'static str, &ColumnRef)> {
        let c = &self.columns;
        let mut all = vec![("reference", &c.reference), ("amount", &c.amount), ("date", &c.date)];
        let optional = [
            ("payer_id", &c.payer_id),
            ("channel", &c.channel),
            ("direction", &c.direction),
            ("original_reference", &c.original_reference),
            ("settlement_ref", &c.settlement_ref),
            ("settlement_total", &c.settlement_total),
        ];
        all.extend(optional.into_iter().filter_map(|(name, column)| column.as_ref().map(|c| (name, c))));
        all
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
        match (&self.columns.direction, &self.direction_values) {
            (Some(_), None) => return Err("columns.direction needs [direction] credit and debit values".into()),
            (None, Some(_)) => return Err("[direction] values need columns.direction".into()),
            _ => {}
        }
        if self.columns.settlement_total.is_some() && self.columns.settlement_ref.is_none() {
            return Err("columns.settlement_total needs columns.settlement_ref".into());
        }
        if self.date_format.as_deref().is_some_and(|f| chrono::format::StrftimeItems::new(f).parse().is_err()) {
            return Err("date_format: not a chrono format (such as %Y%m%d or %Y-%m-%d %H:%M:%S)".into());
        }
        Ok(())
    }
}

/// Resolved column indexes (0-based) for one file.
struct Resolved {
    reference: usize,
    amount: usize,
    date: usize,
    payer_id: Option<usize>,
    channel: Option<usize>,
    direction: Option<usize>,
    original_reference: Option<usize>,
    settlement_ref: Option<usize>,
    settlement_total: Option<usize>,
    /// Header names (or `column N`), for messages.
    names: Vec<String>,
}

/// Parses a generic CSV through its mapping.
pub fn parse_mapped_csv(file: &str, bytes: &[u8], mapping: &Mapping) -> Result<Statement> {
    let errors = Errors { file };
    let text = text::decode(errors, bytes, mapping.encoding)?;
    let mut rows = rows::rows(errors, &text, mapping.delimiter).peekable();
    let header = if mapping.header {
        Some(rows.next().transpose()?.ok_or_else(|| errors.invalid(Location::Line(1), "a header row", ""))?)
    } else {
        None
    };
    let columns = resolve(errors, mapping, header.as_ref())?;
    let mut reader = Reader { errors, mapping, columns, file: Arc::from(file), settlements: Settlements::default() };
    let mut receipts = Vec::new();
    for row in rows {
        let row = row?;
        if row.is_blank() {
            continue;
        }
        let seq = u32::try_from(receipts.len() + reader.settlements.n_rows)
            .map_err(|_| errors.limit(Location::Line(row.line), "rows", rows::MAX_ROWS))?;
        if let Some(receipt) = reader.row(&row, seq)? {
            receipts.push(receipt);
        }
    }
    let (batches, control_totals) = reader.settlements.finish(&reader.file, errors)?;
    receipts.extend(batches);
    receipts.sort_by_key(|r| r.seq);
    Ok(Statement {
        file: reader.file,
        at: Location::File,
        id: None,
        account: None,
        period: None,
        balances: None,
        control_totals,
        receipts,
    })
}

fn resolve(errors: Errors<'_>, mapping: &Mapping, header: Option<&Row>) -> Result<Resolved> {
    let names: Vec<String> =
        header.map(|h| h.fields.iter().map(|n| n.trim().to_string()).collect()).unwrap_or_default();
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
        amount: find(&c.amount)?,
        date: find(&c.date)?,
        payer_id: optional(&c.payer_id)?,
        channel,
        direction: optional(&c.direction)?,
        original_reference: optional(&c.original_reference)?,
        settlement_ref: optional(&c.settlement_ref)?,
        settlement_total: optional(&c.settlement_total)?,
        names,
    })
}

struct Reader<'m> {
    errors: Errors<'m>,
    mapping: &'m Mapping,
    columns: Resolved,
    file: Arc<str>,
    settlements: Settlements,
}

impl Reader<'_> {
    fn at(&self, line: u64, index: usize) -> Location {
        let field = self.columns.names.get(index).cloned().unwrap_or_else(|| format!("column {}", index + 1));
        Location::Field { line, field }
    }

    fn field<'r>(&self, row: &'r Row, index: usize) -> Result<&'r str> {
        row.fields.get(index).map(str::trim).ok_or_else(|| {
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

    fn row(&mut self, row: &Row, seq: u32) -> Result<Option<Receipt>> {
        let c = &self.columns;
        let (direction, amount) = self.amount_and_direction(row)?;
        let date_text = self.field(row, c.date)?;
        let booked_on: Date = text::parse_business_date(date_text, self.mapping.date_format.as_deref())
            .map_err(|expected| self.errors.invalid(self.at(row.line, c.date), expected, date_text))?;
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
            settlement_ref: self.reference(row, c.settlement_ref)?,
            parts: Vec::new(),
        };
        if receipt.settlement_ref.is_none() {
            return Ok(Some(receipt));
        }
        let total = match c.settlement_total {
            Some(index) => Some(self.money(row, index, false)?.1),
            None => None,
        };
        self.settlements.add(receipt, total, self.errors)?;
        Ok(None)
    }

    fn money(&self, row: &Row, index: usize, signed: bool) -> Result<(bool, Money)> {
        let value = self.field(row, index)?;
        text::parse_amount(value, self.mapping.decimal_separator, signed)
            .map_err(|expected| self.errors.invalid(self.at(row.line, index), expected, value))
    }

    fn amount_and_direction(&self, row: &Row) -> Result<(Direction, Money)> {
        let c = &self.columns;
        let (Some(index), Some(values)) = (c.direction, &self.mapping.direction_values) else {
            let (negative, amount) = self.money(row, c.amount, true)?;
            return Ok((if negative { Direction::Debit } else { Direction::Credit }, amount));
        };
        let (_, amount) = self.money(row, c.amount, false)?;
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

    fn payer(&self, row: &Row) -> Result<Option<String>> {
        let Some(index) = self.columns.payer_id else { return Ok(None) };
        let value = self.field(row, index)?;
        if value.is_empty() {
            return Ok(None);
        }
        value.parse::<Identity>().map(|id| Some(id.to_string())).map_err(|_| {
            self.errors.invalid(self.at(row.line, index), "an identity number (GB 11643, or other:NUMBER)", value)
        })
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
                settlement_ref: Some(key.1),
                parts: group.parts,
            });
        }
        Ok((receipts, totals))
    }
}
