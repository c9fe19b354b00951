//! CSV records with the line each starts on.

use crate::error::{Errors, Location, Result};
use crate::model::{Direction, Receipt};
use ledger::{Date, Money};
use std::sync::Arc;

/// Most records read from one file (receipts are numbered with `u32`).
pub const MAX_ROWS: usize = u32::MAX as usize;

pub(crate) struct Row {
    pub line: u64,
    pub fields: csv::StringRecord,
}

impl Row {
    /// Whether every field is blank (a trailing empty line of an export).
    pub fn is_blank(&self) -> bool {
        self.fields.iter().all(|f| f.trim().is_empty())
    }

    /// The fields as the line had them, for messages.
    pub fn joined(&self) -> String {
        self.fields.iter().collect::<Vec<_>>().join(",")
    }
}

/// The records of a decoded file. Quoting follows RFC 4180; rows may have
/// different numbers of fields (the callers check what they need). Line
/// numbers are counted here from byte offsets: the csv crate's own count
/// skips blank lines and lags after CRLF line ends.
pub(crate) fn rows<'t>(errors: Errors<'t>, text: &'t str, delimiter: u8) -> impl Iterator<Item = Result<Row>> + 't {
    let reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(text.as_bytes());
    let mut lines = LineCounter { text: text.as_bytes(), byte: 0, line: 1 };
    reader.into_records().map(move |record| match record {
        Ok(fields) => {
            let line = fields.position().map_or(0, |p| lines.line_at(p.byte()));
            Ok(Row { line, fields })
        }
        Err(error) => {
            let at = error.position().map_or(Location::File, |p| Location::Line(lines.line_at(p.byte())));
            Err(errors.malformed(at, format!("not valid CSV: {error}")))
        }
    })
}

/// Lines of increasing byte offsets, counted incrementally.
struct LineCounter<'t> {
    text: &'t [u8],
    byte: usize,
    line: u64,
}

impl LineCounter<'_> {
    /// The line of the record reported at `byte`: past the line ends the
    /// reader reports records from (a record never starts with one).
    fn line_at(&mut self, byte: u64) -> u64 {
        let mut start = usize::try_from(byte).unwrap_or(usize::MAX).min(self.text.len());
        while start < self.text.len() && matches!(self.text[start], b'\r' | b'\n') {
            start += 1;
        }
        if start < self.byte {
            // Not increasing (never with one reader): count from the start.
            self.byte = 0;
            self.line = 1;
        }
        self.line += self.text[self.byte..start].iter().filter(|&&b| b == b'\n').count() as u64;
        self.byte = start;
        self.line
    }
}

/// What a channel bill's row (WeChat Pay, Alipay) says of one payment or
/// refund; the rest of its receipt is the bill's.
pub(crate) struct BillEntry {
    pub reference: Option<String>,
    pub original_reference: Option<String>,
    pub amount: Money,
    pub direction: Direction,
    pub booked_on: Date,
    pub payer_id: Option<String>,
    pub settlement_ref: Option<String>,
}

/// Appends the receipt of the channel bill's `line` to `receipts`.
pub(crate) fn push_bill_entry(
    receipts: &mut Vec<Receipt>,
    errors: Errors<'_>,
    file: &Arc<str>,
    channel: &str,
    line: u64,
    entry: BillEntry,
) -> Result<()> {
    let seq = u32::try_from(receipts.len()).map_err(|_| errors.limit(Location::Line(line), "rows", MAX_ROWS))?;
    receipts.push(Receipt {
        file: file.clone(),
        at: Location::Line(line),
        seq,
        channel: Some(channel.to_string()),
        reference: entry.reference,
        original_reference: entry.original_reference,
        amount: entry.amount,
        direction: entry.direction,
        reversal: false,
        booked_on: entry.booked_on,
        payer_id: entry.payer_id,
        payer_name: None,
        settlement_ref: entry.settlement_ref,
        parts: Vec::new(),
    });
    Ok(())
}
