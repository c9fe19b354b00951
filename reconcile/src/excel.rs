//! Excel workbooks (`.xlsx`, and `.xls` of Excel 97-2003) read through the
//! same mappings as CSV: a sheet's rows become rows of text cells, and the
//! mapping's rules find the table in them.
//!
//! Cells are turned into the text a CSV export would hold: a number as the
//! shortest decimal that is the same float (so 1234.56 stays `1234.56`, and
//! a float that is no whole number of fen shows its extra digits and is
//! refused by the amount rule, never rounded); a date cell as its serial
//! number, which the date rule reads as a date on a sheet.

use crate::csv_mapped::{read_rows, Mapping, Source};
use crate::error::{Errors, Location, Result};
use crate::model::Statement;
use crate::rows::Row;
use calamine::{Data, Range, Reader};
use std::io::Cursor;

/// Whether the bytes are a workbook this module reads.
pub fn is_workbook(bytes: &[u8]) -> bool {
    matches!(crate::detect::detect(bytes), crate::detect::Detected::Workbook(_))
}

/// Parses the mapping's sheet (else the first) of a workbook. Errors and
/// receipts name the file as `FILE (sheet NAME)`, and rows by their number
/// in the sheet, as Excel shows them.
pub fn parse_mapped_excel(file: &str, bytes: &[u8], mapping: &Mapping) -> Result<Statement> {
    let errors = Errors { file };
    crate::text::check_size(errors, bytes)?;
    let (sheet, range) = read_sheet(errors, bytes, mapping.sheet.as_deref())?;
    let label = format!("{file} (sheet {sheet})");
    let rows = sheet_rows(&range).map(Ok);
    read_rows(&label, rows, mapping, Source::Sheet)
}

/// The first rows of a workbook's first sheet as text, for messages about
/// a file of no known layout.
pub fn first_rows(bytes: &[u8], n_rows: usize) -> Option<Vec<Vec<String>>> {
    let (_, range) = read_sheet(Errors { file: "" }, bytes, None).ok()?;
    let rows = sheet_rows(&range).take(n_rows);
    Some(rows.map(|row| row.fields.iter().map(str::to_string).collect()).collect())
}

fn read_sheet(errors: Errors<'_>, bytes: &[u8], wanted: Option<&str>) -> Result<(String, Range<Data>)> {
    let malformed = |reason: String| errors.malformed(Location::File, reason);
    // A malformed workbook must be refused, never bring the run down: the
    // reader is another crate's, so a panic inside it is caught here.
    let opened = std::panic::catch_unwind(|| {
        let mut workbook = calamine::open_workbook_auto_from_rs(Cursor::new(bytes)).map_err(|e| e.to_string())?;
        let names = workbook.sheet_names();
        let sheet = match wanted {
            Some(wanted) => names
                .iter()
                .find(|name| name.trim() == wanted.trim())
                .cloned()
                .ok_or_else(|| format!("no sheet named `{wanted}` (sheets: {})", names.join(", ")))?,
            None => names.first().cloned().ok_or_else(|| "a workbook without sheets".to_string())?,
        };
        let range = workbook.worksheet_range(&sheet).map_err(|e| e.to_string())?;
        Ok::<_, String>((sheet, range))
    });
    match opened {
        Ok(Ok(opened)) => Ok(opened),
        Ok(Err(reason)) => Err(malformed(format!("not a readable Excel workbook: {reason}"))),
        Err(_) => Err(malformed("not a readable Excel workbook".to_string())),
    }
}

/// A sheet's rows as text rows, numbered as Excel numbers them.
fn sheet_rows(range: &Range<Data>) -> impl Iterator<Item = Row> + '_ {
    let (first_row, first_column) = range.start().unwrap_or((0, 0));
    range.rows().enumerate().map(move |(index, cells)| {
        // Cells left of the used range are empty: keep column numbers true.
        let leading = std::iter::repeat_n(String::new(), first_column as usize);
        let fields: Vec<String> = leading.chain(cells.iter().map(cell_text)).collect();
        Row { line: u64::from(first_row) + index as u64 + 1, fields: csv::StringRecord::from(fields) }
    })
}

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(text) | Data::DateTimeIso(text) | Data::DurationIso(text) => text.clone(),
        Data::Int(number) => number.to_string(),
        Data::Float(number) => float_text(*number),
        Data::Bool(value) => (if *value { "TRUE" } else { "FALSE" }).to_string(),
        Data::DateTime(serial) => float_text(serial.as_f64()),
        Data::Error(error) => format!("#{error:?}"),
    }
}

/// The shortest decimal that reads back as the same float (Rust's
/// `Display` of floats, which never writes an exponent).
fn float_text(number: f64) -> String {
    number.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_show_their_true_digits() {
        assert_eq!(float_text(1234.56), "1234.56");
        assert_eq!(float_text(400.0), "400");
        assert_eq!(float_text(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(float_text(-12.5), "-12.5");
    }
}
