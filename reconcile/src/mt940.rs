//! SWIFT MT940 customer statements, read by a parser of our own: a small
//! line-based one whose every error names the line and the tag, and which
//! never panics on bad input (the `mt940` crate was not taken: it would add
//! a parser generator for four tags).
//!
//! Each statement runs from `:20:` to its closing balance `:62F:`/`:62M:`;
//! SWIFT blocks (`{1:…}{2:…}{4:`) and the trailer line `-}` or `-` are
//! skipped. `:61:` lines are entries: value date `YYMMDD`, optional entry
//! date `MMDD`, mark `C`, `D`, `RC` (reversal of a credit: a debit) or `RD`
//! (reversal of a debit: a credit), optional funds code, amount with a
//! decimal comma, transaction type (`NTRF`, …), the customer's reference
//! (the channel reference; `NONREF` is none) and after `//` the bank's
//! reference. `:86:` (with its continuation lines) is free text in which a
//! payer's identity number is looked for.

use crate::error::{Errors, Location, Result};
use crate::model::{Balance, Balances, Direction, Receipt, Statement};
use crate::text;
use chrono::{Datelike, NaiveDate};
use ledger::{Date, Money};
use std::sync::Arc;

/// Most statements in one file.
const MAX_STATEMENTS: usize = 100_000;

/// Parses an MT940 file into its statements. `channel` is the payment
/// channel of every entry when the account serves one channel only.
pub fn parse_mt940(file: &str, bytes: &[u8], channel: Option<&str>) -> Result<Vec<Statement>> {
    let errors = Errors { file };
    let text = match text::decode(errors, bytes, text::Encoding::Utf8) {
        Ok(text) => text,
        // Chinese banks write `:86:` in GBK.
        Err(_) => text::decode(errors, bytes, text::Encoding::Gbk)?,
    };
    let mut reader = Reader {
        errors,
        file: Arc::from(file),
        channel: channel.map(str::to_string),
        statements: Vec::new(),
        current: None,
        n_receipts: 0,
    };
    let mut last_line = 0;
    for (line, tag, value) in fields(&text) {
        last_line = line;
        reader.field(line, &tag, &value)?;
    }
    if let Some(open) = &reader.current {
        let at = Location::Line(open.line);
        return Err(errors.malformed(at, format!("the statement ends early at line {last_line}, before its :62F:")));
    }
    if reader.statements.is_empty() {
        return Err(errors.invalid(Location::File, "an MT940 statement (:20: … :62F:)", ""));
    }
    Ok(reader.statements)
}

/// The tagged fields of the text: `(line, tag, value)`, continuation lines
/// joined to their field with a line feed. SWIFT block markers and
/// statement separators are left out.
fn fields(text: &str) -> Vec<(u64, String, String)> {
    let mut out: Vec<(u64, String, String)> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index as u64 + 1;
        let mut content = raw.trim_end_matches(['\r', ' ']);
        // `{1:F01…}{2:…}{4:` before the first field, on its own line or not.
        if content.starts_with('{') {
            content = content.find("{4:").map_or("", |at| &content[at + 3..]);
        }
        if content.is_empty() || content == "-" || content.starts_with("-}") {
            continue;
        }
        match tag_of(content) {
            Some((tag, value)) => out.push((line, tag.to_string(), value.to_string())),
            None => match out.last_mut() {
                Some((_, _, value)) => {
                    value.push('\n');
                    value.push_str(content);
                }
                None => out.push((line, String::new(), content.to_string())),
            },
        }
    }
    out
}

/// `:61:rest` as `("61", "rest")`.
fn tag_of(content: &str) -> Option<(&str, &str)> {
    let rest = content.strip_prefix(':')?;
    let end = rest.find(':')?;
    let tag = &rest[..end];
    let shaped = (2..=3).contains(&tag.len())
        && tag.bytes().take(2).all(|b| b.is_ascii_digit())
        && tag.bytes().skip(2).all(|b| b.is_ascii_uppercase());
    shaped.then(|| (tag, &rest[end + 1..]))
}

struct Open {
    line: u64,
    id: Option<String>,
    account: Option<String>,
    opening: Option<Balance>,
    receipts: Vec<Receipt>,
}

struct Reader<'f> {
    errors: Errors<'f>,
    file: Arc<str>,
    channel: Option<String>,
    statements: Vec<Statement>,
    current: Option<Open>,
    n_receipts: u32,
}

impl Reader<'_> {
    fn at(line: u64, tag: &str) -> Location {
        Location::Field { line, field: format!(":{tag}:") }
    }

    fn open(&mut self, line: u64, tag: &str) -> Result<&mut Open> {
        let errors = self.errors;
        self.current
            .as_mut()
            .ok_or_else(|| errors.invalid(Reader::at(line, tag), "a :20: field opening the statement first", tag))
    }

    fn field(&mut self, line: u64, tag: &str, value: &str) -> Result<()> {
        match tag {
            "20" => {
                if self.current.is_some() {
                    return Err(self.errors.invalid(Reader::at(line, tag), "the previous statement's :62F:", ":20:"));
                }
                if self.statements.len() >= MAX_STATEMENTS {
                    return Err(self.errors.limit(Location::Line(line), "statements", MAX_STATEMENTS));
                }
                let id = self.reference(line, tag, value)?;
                self.current = Some(Open { line, id, account: None, opening: None, receipts: Vec::new() });
            }
            "25" => {
                let account = self.reference(line, tag, value)?;
                self.open(line, tag)?.account = account;
            }
            "60F" | "60M" => {
                let balance = self.balance(line, tag, value)?;
                self.open(line, tag)?.opening = Some(balance);
            }
            "61" => {
                let receipt = self.entry(line, value)?;
                self.open(line, tag)?.receipts.push(receipt);
            }
            "86" => self.information(line, value)?,
            "62F" | "62M" => self.close(line, tag, value)?,
            // 21, 28C, 64, 65 and others say nothing matching needs.
            "" => return Err(self.errors.invalid(Location::Line(line), "an MT940 field such as :20:", value)),
            _ => {
                self.open(line, tag)?;
            }
        }
        Ok(())
    }

    fn reference(&self, line: u64, tag: &str, value: &str) -> Result<Option<String>> {
        text::reference(value).map_err(|expected| self.errors.invalid(Reader::at(line, tag), expected, value))
    }

    /// `C241001CNY1250000,00`
    fn balance(&self, line: u64, tag: &str, value: &str) -> Result<Balance> {
        let invalid = || self.errors.invalid(Reader::at(line, tag), "a balance such as C241001CNY1250000,00", value);
        let direction = match value.get(..1) {
            Some("C") => Direction::Credit,
            Some("D") => Direction::Debit,
            _ => return Err(invalid()),
        };
        let _date = value.get(1..7).and_then(yymmdd).ok_or_else(invalid)?;
        let currency = value.get(7..10).ok_or_else(invalid)?;
        self.check_currency(line, tag, currency)?;
        let amount = self.amount(line, tag, value.get(10..).ok_or_else(invalid)?)?;
        Ok(Balance { amount, direction, at: Reader::at(line, tag) })
    }

    fn check_currency(&self, line: u64, tag: &str, currency: &str) -> Result<()> {
        if currency != "CNY" {
            return Err(self.errors.invalid(Reader::at(line, tag), "the currency CNY", currency));
        }
        Ok(())
    }

    /// `1250000,00` or `400,` (SWIFT amounts have a decimal comma, always).
    fn amount(&self, line: u64, tag: &str, value: &str) -> Result<Money> {
        let trimmed = value.strip_suffix(',').unwrap_or(value);
        text::parse_amount(trimmed, ',', false)
            .map(|(_, money)| money)
            .map_err(|expected| self.errors.invalid(Reader::at(line, tag), expected, value))
    }

    fn entry(&mut self, line: u64, value: &str) -> Result<Receipt> {
        let first_line = value.lines().next().unwrap_or_default();
        let entry = parse_entry(first_line).ok_or_else(|| {
            self.errors.invalid(Reader::at(line, "61"), "an entry such as 2410051005C400,00NTRFREF", value)
        })?;
        let amount = self.amount(line, "61", entry.amount)?;
        let customer = match entry.customer_ref {
            "NONREF" => None,
            other => self.reference(line, "61", other)?,
        };
        let bank = self.reference(line, "61", entry.bank_ref)?;
        let seq = self.n_receipts;
        self.n_receipts =
            seq.checked_add(1).ok_or_else(|| self.errors.limit(Location::Line(line), "entries", u32::MAX as usize))?;
        Ok(Receipt {
            file: self.file.clone(),
            at: Location::Line(line),
            seq,
            channel: self.channel.clone(),
            reference: customer,
            original_reference: None,
            amount,
            direction: entry.direction,
            reversal: entry.reversal,
            booked_on: Date(entry.booked_on),
            payer_id: None,
            payer_name: None,
            settlement_ref: bank,
            parts: Vec::new(),
        })
    }

    /// `:86:` after a `:61:`: the payer's identity number, if its text has one.
    fn information(&mut self, line: u64, value: &str) -> Result<()> {
        if value.len() > text::MAX_FREE_TEXT_BYTES {
            return Err(self.errors.limit(Location::Line(line), "`:86:` bytes", text::MAX_FREE_TEXT_BYTES));
        }
        let open = self.open(line, "86")?;
        if let Some(receipt) = open.receipts.last_mut() {
            if receipt.payer_id.is_none() {
                receipt.payer_id = text::find_identity(&value.replace('\n', ""));
            }
        }
        Ok(())
    }

    fn close(&mut self, line: u64, tag: &str, value: &str) -> Result<()> {
        let closing = self.balance(line, tag, value)?;
        let open = self.current.take().ok_or_else(|| {
            self.errors.invalid(Reader::at(line, tag), "a :20: field opening the statement first", tag)
        })?;
        let opening = open.opening.ok_or_else(|| {
            self.errors.invalid(Location::Line(open.line), "an opening balance :60F: before the closing one", "")
        })?;
        self.statements.push(Statement {
            file: self.file.clone(),
            at: Location::Line(open.line),
            id: open.id,
            account: open.account,
            period: None,
            balances: Some(Balances { opening, closing }),
            control_totals: Vec::new(),
            receipts: open.receipts,
            not_received: Vec::new(),
        });
        Ok(())
    }
}

/// The parts of a `:61:` line.
struct Entry<'v> {
    booked_on: NaiveDate,
    direction: Direction,
    reversal: bool,
    amount: &'v str,
    customer_ref: &'v str,
    bank_ref: &'v str,
}

fn yymmdd(text: &str) -> Option<NaiveDate> {
    if text.len() != 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = text.get(..2)?.parse().ok()?;
    let month: u32 = text.get(2..4)?.parse().ok()?;
    let day: u32 = text.get(4..6)?.parse().ok()?;
    NaiveDate::from_ymd_opt(2000 + year, month, day)
}

/// The entry date `MMDD` in the year nearest the value date (an entry
/// booked on 2 January for a value date of 31 December is next year's).
fn entry_date(value_date: NaiveDate, mmdd: &str) -> Option<NaiveDate> {
    let month: u32 = mmdd.get(..2)?.parse().ok()?;
    let day: u32 = mmdd.get(2..4)?.parse().ok()?;
    [value_date.year() - 1, value_date.year(), value_date.year() + 1]
        .iter()
        .filter_map(|&year| NaiveDate::from_ymd_opt(year, month, day))
        .min_by_key(|date| (*date - value_date).num_days().abs())
}

fn parse_entry(line: &str) -> Option<Entry<'_>> {
    let value_date = yymmdd(line.get(..6)?)?;
    let mut rest = line.get(6..)?;
    let mut booked_on = value_date;
    if rest.len() >= 4 && rest.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
        booked_on = entry_date(value_date, rest.get(..4)?)?;
        rest = rest.get(4..)?;
    }
    let (direction, reversal, after_mark) = if let Some(after) = rest.strip_prefix("RC") {
        (Direction::Debit, true, after)
    } else if let Some(after) = rest.strip_prefix("RD") {
        (Direction::Credit, true, after)
    } else if let Some(after) = rest.strip_prefix('C') {
        (Direction::Credit, false, after)
    } else if let Some(after) = rest.strip_prefix('D') {
        (Direction::Debit, false, after)
    } else {
        return None;
    };
    // An optional funds code: the third letter of a currency code.
    let after_mark = match after_mark.as_bytes().first() {
        Some(b) if b.is_ascii_uppercase() => after_mark.get(1..)?,
        _ => after_mark,
    };
    let amount_end = after_mark.find(|c: char| !(c.is_ascii_digit() || c == ','))?;
    let amount = after_mark.get(..amount_end)?;
    let after_amount = after_mark.get(amount_end..)?;
    // The transaction type: `N`, `F` or `S` and three characters.
    if after_amount.len() < 4 || !matches!(after_amount.as_bytes()[0], b'N' | b'F' | b'S') {
        return None;
    }
    let references = after_amount.get(4..)?;
    let (customer_ref, bank_ref) = references.split_once("//").unwrap_or((references, ""));
    if amount.is_empty() || customer_ref.is_empty() {
        return None;
    }
    Some(Entry { booked_on, direction, reversal, amount, customer_ref, bank_ref })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_lines() {
        let entry = parse_entry("2410051005C400,00NTRFWX20241005093012001//B1").expect("entry");
        assert_eq!((entry.amount, entry.customer_ref, entry.bank_ref), ("400,00", "WX20241005093012001", "B1"));
        assert_eq!(entry.direction, Direction::Credit);
        let reversal = parse_entry("241231RC400,NTRFNONREF").expect("entry");
        assert_eq!((reversal.direction, reversal.reversal), (Direction::Debit, true));
        let next_year = parse_entry("2412310102D1,5NTRFX").expect("entry");
        assert_eq!(next_year.booked_on, NaiveDate::from_ymd_opt(2025, 1, 2).expect("date"));
        assert!(parse_entry("24100").is_none());
        assert!(parse_entry("241005X400,00NTRFX").is_none());
        assert!(parse_entry("241005C400,00").is_none());
    }
}
