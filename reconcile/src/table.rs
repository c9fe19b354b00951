//! Where the table is in an export, and the cleaning its cells need. Bank
//! and tax-bureau exports put title and account lines above the header,
//! totals (合计, 总计, 笔数) and notes below the rows, and wrap digits so
//! that a spreadsheet keeps them as text; these rules find the rows a
//! mapping reads, the same for CSV text and for a sheet of a workbook.

use crate::csv_mapped::Mapping;
use crate::error::{Errors, Location, Result};
use crate::rows::Row;
use chrono::{Duration, NaiveDate};
use ledger::Date;

/// Where a table sits among a file's rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Rows dropped before anything else.
    pub skip_rows: usize,
    /// The header is the first row holding every column name the mapping
    /// names, among this many rows (after the skipped, blank and comment
    /// rows). 1: the first row is the header.
    pub header_search_rows: usize,
    /// A row whose first cell starts with one of these is skipped.
    pub comment_prefixes: Vec<String>,
    /// A row whose first non-blank cell starts with one of these ends the
    /// table: it and every row after it are not read.
    pub footer_patterns: Vec<String>,
}

impl Layout {
    pub(crate) fn check(&self, header: bool, max_rows: usize) -> Result<(), String> {
        if self.skip_rows > max_rows || self.header_search_rows > max_rows {
            return Err(format!("skip_rows and header_search_rows: at most {max_rows}"));
        }
        if self.header_search_rows == 0 {
            return Err("header_search_rows: at least 1".into());
        }
        if !header && self.header_search_rows > 1 {
            return Err("header_search_rows needs header = true".into());
        }
        let patterns = self.comment_prefixes.iter().chain(&self.footer_patterns);
        if patterns.clone().any(|p| p.trim().is_empty()) {
            return Err("comment_prefixes and footer_patterns: an empty pattern would match every row".into());
        }
        if patterns.count() > max_rows {
            return Err(format!("comment_prefixes and footer_patterns: at most {max_rows}"));
        }
        Ok(())
    }

    fn is_comment(&self, row: &Row) -> bool {
        let first = row.fields.get(0).map(str::trim_start).unwrap_or_default();
        self.comment_prefixes.iter().any(|prefix| first.starts_with(prefix.as_str()))
    }

    fn is_footer(&self, row: &Row) -> bool {
        let Some(first) = row.fields.iter().map(clean).find(|cell| !cell.is_empty()) else { return false };
        self.footer_patterns.iter().any(|pattern| first.starts_with(pattern.trim()))
    }
}

/// A table found: its header row (if the mapping has one) and its data
/// rows, blank and comment rows left out, ending before a footer.
pub(crate) struct Table<I> {
    pub header: Option<Row>,
    pub rows: TableRows<I>,
}

/// The data rows of a table.
pub(crate) struct TableRows<I> {
    rows: I,
    layout: Layout,
    ended: bool,
}

impl<I: Iterator<Item = Result<Row>>> Iterator for TableRows<I> {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        while !self.ended {
            let row = match self.rows.next()? {
                Ok(row) => row,
                Err(error) => return Some(Err(error)),
            };
            if row.is_blank() || self.layout.is_comment(&row) {
                continue;
            }
            if self.layout.is_footer(&row) {
                self.ended = true;
                return None;
            }
            return Some(Ok(row));
        }
        None
    }
}

/// Finds the table in a file's rows: skips the rows to skip, then, with a
/// header, takes the first row (of `header_search_rows`) that holds every
/// column name the mapping names. Without one found, the error shows the
/// first row looked at and the first name it lacks.
pub(crate) fn locate<I: Iterator<Item = Result<Row>>>(
    errors: Errors<'_>,
    rows: I,
    mapping: &Mapping,
) -> Result<Table<I>> {
    let layout = mapping.layout.clone();
    let mut rows = TableRows { rows, layout: layout.clone(), ended: false };
    for _ in 0..layout.skip_rows {
        if rows.rows.next().transpose()?.is_none() {
            break;
        }
    }
    if !mapping.header {
        return Ok(Table { header: None, rows });
    }
    let names = mapping.column_names();
    let mut first_looked_at: Option<Row> = None;
    for _ in 0..layout.header_search_rows {
        let Some(row) = rows.next().transpose()? else { break };
        let cells: Vec<&str> = row.fields.iter().map(clean).collect();
        if names.iter().all(|name| cells.contains(name)) {
            return Ok(Table { header: Some(row), rows });
        }
        if layout.header_search_rows == 1 {
            // The first row is the header: the caller names the column it lacks.
            return Ok(Table { header: Some(row), rows });
        }
        first_looked_at.get_or_insert(row);
    }
    let Some(first) = first_looked_at else {
        return Err(errors.invalid(Location::Line(1), "a header row", ""));
    };
    let cells: Vec<&str> = first.fields.iter().map(clean).collect();
    let missing = names.iter().find(|name| !cells.contains(name)).copied().unwrap_or_default();
    Err(errors.invalid(
        Location::Line(first.line),
        format!("a header row holding `{missing}` within the first {} rows of the table", layout.header_search_rows),
        first.joined(),
    ))
}

/// A cell without the white space around it (tabs too) and without the
/// wrappers exports add to keep digits as text: `="0123"`, a leading
/// backtick (WeChat Pay) or apostrophe.
pub(crate) fn clean(cell: &str) -> &str {
    let trimmed = cell.trim();
    if let Some(inner) = trimmed.strip_prefix("=\"").and_then(|rest| rest.strip_suffix('"')) {
        return inner.trim();
    }
    trimmed.strip_prefix(['`', '\'']).map(str::trim).unwrap_or(trimmed)
}

/// Currency signs and words an amount may carry.
const CURRENCY_MARKS: [&str; 5] = ["¥", "￥", "CNY", "RMB", "元"];

/// An amount as `text::parse_amount` reads it: currency signs dropped and
/// digit groups joined. Groups are checked (three digits after the first),
/// so `1,23.00` is refused rather than read as 123.00.
pub(crate) fn plain_amount(text: &str, thousands: Option<char>) -> Result<String, String> {
    let value = without_currency(text);
    let (sign, unsigned) = match value.strip_prefix(['-', '+']) {
        Some(rest) => (&value[..1], without_currency(rest)),
        None => ("", value),
    };
    let Some(separator) = thousands.filter(|&s| unsigned.contains(s)) else {
        return Ok(format!("{sign}{unsigned}"));
    };
    let end_of_whole = unsigned.find(|c: char| c != separator && !c.is_ascii_digit()).unwrap_or(unsigned.len());
    let (whole, rest) = unsigned.split_at(end_of_whole);
    let groups: Vec<&str> = whole.split(separator).collect();
    let grouped = groups.first().is_some_and(|g| (1..=3).contains(&g.len()))
        && groups[1..].iter().all(|g| g.len() == 3)
        && !rest.contains(separator);
    if !grouped {
        return Err(format!("an amount with digits grouped by `{separator}` in threes (1{separator}234.00)"));
    }
    Ok(format!("{sign}{}{rest}", groups.concat()))
}

fn without_currency(text: &str) -> &str {
    let mut value = text.trim();
    for mark in CURRENCY_MARKS {
        value = value.strip_prefix(mark).unwrap_or(value).trim();
        value = value.strip_suffix(mark).unwrap_or(value).trim();
    }
    value
}

/// A date a sheet holds as Excel's serial number (days since 1899-12-30,
/// the 1900 date system; a fraction is the time of day): `45601` is
/// 2024-11-05. Only numbers that can be such a date (1900 to 9999).
pub(crate) fn excel_serial_date(text: &str) -> Option<Date> {
    let whole =
        text.split_once('.').map_or(
            text,
            |(whole, fraction)| {
                if fraction.bytes().all(|b| b.is_ascii_digit()) {
                    whole
                } else {
                    ""
                }
            },
        );
    if whole.is_empty() || whole.len() > 7 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let days: i64 = whole.parse().ok()?;
    if !(1..=2_958_465).contains(&days) {
        return None;
    }
    let epoch = NaiveDate::from_ymd_opt(1899, 12, 30)?;
    epoch.checked_add_signed(Duration::days(days)).map(Date)
}

/// An ID number as exports print it masked: the first digits and the last
/// ones shown, `*` between (`520521********2756`, `5205**********2756`).
/// Returned upper-case; never a valid ID, so never a key of a match.
pub(crate) fn masked_id(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let n_stars = bytes.iter().filter(|&&b| b == b'*').count();
    let shaped = bytes.len() == 18
        && n_stars > 0
        && bytes.iter().all(|&b| b.is_ascii_digit() || matches!(b, b'*' | b'x' | b'X'))
        && bytes
            .iter()
            .position(|&b| b == b'*')
            .zip(bytes.iter().rposition(|&b| b == b'*'))
            .is_some_and(|(first, last)| bytes[first..=last].iter().all(|&b| b == b'*') && first > 0 && last < 17)
        && bytes[..17].iter().all(|&b| b != b'x' && b != b'X');
    shaped.then(|| text.to_ascii_uppercase())
}

/// Rows shown of a file of no known layout.
const ROWS_SHOWN: usize = 3;
/// Characters shown of each row.
const CHARS_SHOWN: usize = 120;

/// What a CSV of no known layout looks like: its first lines (UTF-8, else
/// GBK), so that the clerk sees which export it is.
pub(crate) fn text_looks_like(bytes: &[u8], delimited: bool) -> String {
    let head = &bytes[..bytes.len().min(16 * 1024)];
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let text = match std::str::from_utf8(head) {
        Ok(text) => text.to_string(),
        Err(error) if error.error_len().is_none() => String::from_utf8_lossy(head).into_owned(),
        Err(_) => encoding_rs::GBK.decode_without_bom_handling(head).0.into_owned(),
    };
    let lines: Vec<String> =
        text.lines().filter(|line| !line.trim().is_empty()).take(ROWS_SHOWN).map(shown_row).collect();
    let kind = if delimited { "a CSV file" } else { "text" };
    format!("{kind} whose first lines are {}; give --mapping FILE or a preset", lines.join(" / "))
}

/// What a workbook of no known layout looks like: its kind and the cells
/// of its first rows.
pub(crate) fn workbook_looks_like(kind: &str, bytes: &[u8]) -> String {
    let Some(rows) = crate::excel::first_rows(bytes, ROWS_SHOWN + 20) else {
        return format!("{kind} that cannot be opened");
    };
    let rows: Vec<String> = rows
        .iter()
        .filter(|cells| cells.iter().any(|cell| !cell.trim().is_empty()))
        .take(ROWS_SHOWN)
        .map(|cells| shown_row(&cells.join(",")))
        .collect();
    format!("{kind} whose first sheet starts with the cells {}; give --mapping FILE or a preset", rows.join(" / "))
}

fn shown_row(line: &str) -> String {
    let line = line.trim_end_matches([',', '\t', ' ', '\r']);
    let mut shown: String = line.chars().take(CHARS_SHOWN).filter(|c| !c.is_control() || *c == '\t').collect();
    if line.chars().count() > CHARS_SHOWN {
        shown.push('…');
    }
    format!("`{shown}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_lose_their_wrappers() {
        assert_eq!(clean(" 400.00\t\t"), "400.00");
        assert_eq!(clean("=\"6222020200001234\""), "6222020200001234");
        assert_eq!(clean("`4200002456"), "4200002456");
        assert_eq!(clean("'0012"), "0012");
    }

    #[test]
    fn amounts_lose_signs_and_groups() {
        assert_eq!(plain_amount("1,234.00", Some(',')), Ok("1234.00".into()));
        assert_eq!(plain_amount("¥1,234,567.89", Some(',')), Ok("1234567.89".into()));
        assert_eq!(plain_amount("-￥400.00", Some(',')), Ok("-400.00".into()));
        assert_eq!(plain_amount("CNY 400.00", None), Ok("400.00".into()));
        assert_eq!(plain_amount("400.00元", None), Ok("400.00".into()));
        assert!(plain_amount("1,23.00", Some(',')).is_err());
        assert!(plain_amount("1234,567.00", Some(',')).is_err());
        assert_eq!(plain_amount("1,234.00", None), Ok("1,234.00".into()));
    }

    #[test]
    fn excel_serial_numbers_are_dates() {
        assert_eq!(excel_serial_date("45601"), Date::ymd(2024, 11, 5));
        assert_eq!(excel_serial_date("45601.5"), Date::ymd(2024, 11, 5));
        assert_eq!(excel_serial_date("20241105"), None);
        assert_eq!(excel_serial_date("2024-11-05"), None);
    }

    #[test]
    fn masked_ids() {
        assert_eq!(masked_id("520521********2756").as_deref(), Some("520521********2756"));
        assert_eq!(masked_id("5205**********275x").as_deref(), Some("5205**********275X"));
        assert_eq!(masked_id("520521195704122756"), None);
        assert_eq!(masked_id("****************56"), None);
        assert_eq!(masked_id("5205*2**********56"), None);
    }
}
