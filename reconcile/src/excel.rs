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
use calamine::{Data, Reader};
use std::collections::BTreeMap;
use std::io::{Cursor, Read};

/// Whether the bytes are a workbook this module reads.
pub fn is_workbook(bytes: &[u8]) -> bool {
    matches!(crate::detect::detect(bytes), crate::detect::Detected::Workbook(_))
}

/// Most columns a sheet is read to: statements have a few dozen, and a
/// cell far to the right is a broken or hostile file.
const MAX_COLUMNS: u32 = 1024;
/// Most cells an `.xls` sheet may span (its rows times its columns): the
/// reader allocates the whole span, so a broken record claiming more is
/// refused before it is read. 65,536 rows of 64 columns.
const MAX_XLS_CELLS: u64 = 1 << 22;

/// Parses the mapping's sheet (else the first) of a workbook. Errors and
/// receipts name the file as `FILE (sheet NAME)`, and rows by their number
/// in the sheet, as Excel shows them.
pub fn parse_mapped_excel(file: &str, bytes: &[u8], mapping: &Mapping) -> Result<Statement> {
    let errors = Errors { file };
    crate::text::check_size(errors, bytes)?;
    let (sheet, rows) = read_sheet(errors, bytes, mapping.sheet.as_deref())?;
    let label = format!("{file} (sheet {sheet})");
    read_rows(&label, rows.into_iter().map(Ok), mapping, Source::Sheet)
}

/// The first rows of a workbook's first sheet as text, for messages about
/// a file of no known layout.
pub fn first_rows(bytes: &[u8], n_rows: usize) -> Option<Vec<Vec<String>>> {
    let (_, rows) = read_sheet(Errors { file: "" }, bytes, None).ok()?;
    Some(rows.into_iter().take(n_rows).map(|row| row.fields.iter().map(str::to_string).collect()).collect())
}

fn read_sheet(errors: Errors<'_>, bytes: &[u8], wanted: Option<&str>) -> Result<(String, Vec<Row>)> {
    // A malformed workbook must be refused, never bring the run down: the
    // reader is another crate's, so a panic inside it is caught here.
    let read = std::panic::catch_unwind(|| {
        if bytes.starts_with(b"PK") {
            read_xlsx(bytes, wanted)
        } else {
            check_xls_extent(bytes)?;
            read_xls(bytes, wanted)
        }
    });
    match read {
        Ok(Ok(read)) => Ok(read),
        Ok(Err(reason)) => Err(errors.malformed(Location::File, format!("not a readable Excel workbook: {reason}"))),
        Err(_) => Err(errors.malformed(Location::File, "not a readable Excel workbook")),
    }
}

/// The sheet of that name, else the first.
fn pick_sheet(names: &[String], wanted: Option<&str>) -> Result<String, String> {
    match wanted {
        Some(wanted) => names
            .iter()
            .find(|name| name.trim() == wanted.trim())
            .cloned()
            .ok_or_else(|| format!("no sheet named `{wanted}` (sheets: {})", names.join(", "))),
        None => names.first().cloned().ok_or_else(|| "a workbook without sheets".to_string()),
    }
}

/// An `.xlsx` sheet, cell by cell: only the cells the file holds are kept,
/// whatever span its dimension claims.
fn read_xlsx(bytes: &[u8], wanted: Option<&str>) -> Result<(String, Vec<Row>), String> {
    let mut workbook = calamine::Xlsx::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let sheet = pick_sheet(&workbook.sheet_names(), wanted)?;
    let mut reader = workbook.worksheet_cells_reader(&sheet).map_err(|e| e.to_string())?;
    let mut rows: BTreeMap<u32, Vec<(u32, String)>> = BTreeMap::new();
    while let Some(cell) = reader.next_cell().map_err(|e| e.to_string())? {
        let (row, column) = cell.get_position();
        if column >= MAX_COLUMNS {
            return Err(format!("a cell in column {} of row {}, beyond column {MAX_COLUMNS}", column + 1, row + 1));
        }
        rows.entry(row).or_default().push((column, cell_text(&Data::from(cell.get_value().clone()))));
    }
    Ok((sheet, rows.into_iter().map(|(row, cells)| text_row(row, cells)).collect()))
}

fn read_xls(bytes: &[u8], wanted: Option<&str>) -> Result<(String, Vec<Row>), String> {
    let mut workbook = calamine::Xls::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let sheet = pick_sheet(&workbook.sheet_names(), wanted)?;
    let range = workbook.worksheet_range(&sheet).map_err(|e| e.to_string())?;
    let (first_row, first_column) = range.start().unwrap_or((0, 0));
    let rows = range.rows().enumerate().map(|(index, cells)| {
        let cells = cells.iter().enumerate().map(|(offset, cell)| (first_column + offset as u32, cell_text(cell)));
        text_row(first_row + index as u32, cells.collect())
    });
    Ok((sheet, rows.collect()))
}

/// A row of text cells, numbered as Excel numbers rows (from 1), with empty
/// cells where the sheet has none so that column numbers stay true.
fn text_row(row: u32, cells: Vec<(u32, String)>) -> Row {
    let width = cells.iter().map(|(column, _)| *column as usize + 1).max().unwrap_or(0);
    let mut fields = vec![String::new(); width];
    for (column, text) in cells {
        fields[column as usize] = text;
    }
    Row { line: u64::from(row) + 1, fields: csv::StringRecord::from(fields) }
}

/// Refuses an `.xls` whose cell records (or dimension records) span more
/// than [`MAX_XLS_CELLS`]: the reader would allocate the whole span before
/// reading a cell. Walks the BIFF records of the workbook stream.
fn check_xls_extent(bytes: &[u8]) -> Result<(), String> {
    let mut container = cfb::CompoundFile::open(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let Some(name) = ["/Workbook", "/Book"].into_iter().find(|name| container.is_stream(name)) else {
        return Ok(()); // no workbook stream: the reader refuses the file itself
    };
    let mut stream = Vec::new();
    container.open_stream(name).and_then(|mut s| s.read_to_end(&mut stream)).map_err(|e| e.to_string())?;
    let mut extent = Extent::default();
    let mut at = 0usize;
    while at + 4 <= stream.len() {
        let kind = u16::from_le_bytes([stream[at], stream[at + 1]]);
        let length = usize::from(u16::from_le_bytes([stream[at + 2], stream[at + 3]]));
        let data = &stream[(at + 4).min(stream.len())..(at + 4 + length).min(stream.len())];
        extent.record(kind, data)?;
        at += 4 + length;
    }
    Ok(())
}

/// The span of an `.xls`'s cells, record by record.
#[derive(Default)]
struct Extent {
    rows: Option<(u32, u32)>,
    columns: Option<(u32, u32)>,
}

impl Extent {
    fn record(&mut self, kind: u16, data: &[u8]) -> Result<(), String> {
        let u16_at = |at: usize| data.get(at..at + 2).map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])));
        let u32_at = |at: usize| data.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        match kind {
            // Dimensions: the span the reader reserves.
            0x0200 => {
                let (rows, columns) = match data.len() {
                    14.. => (u32_at(0).zip(u32_at(4)), u16_at(8).zip(u16_at(10))),
                    _ => (u16_at(0).zip(u16_at(2)), u16_at(4).zip(u16_at(6))),
                };
                if let (Some((first_row, end_row)), Some((first_column, end_column))) = (rows, columns) {
                    let n_cells = u64::from(end_row.saturating_sub(first_row) + 1)
                        * u64::from(end_column.saturating_sub(first_column) + 1);
                    if n_cells > MAX_XLS_CELLS {
                        return Err(format!("a sheet spanning {n_cells} cells, more than {MAX_XLS_CELLS}"));
                    }
                }
                Ok(())
            }
            // Cells: number, label, rich text, bool/error, RK, shared string, formula, blank.
            0x0203 | 0x0204 | 0x00D6 | 0x0205 | 0x027E | 0x00FD | 0x0006 | 0x0201 => {
                let (Some(row), Some(column)) = (u16_at(0), u16_at(2)) else { return Ok(()) };
                self.add(row, column, column)
            }
            // Several RK numbers of one row: first and last columns.
            0x00BD => {
                let last = data.len().checked_sub(2).and_then(u16_at);
                let (Some(row), Some(first), Some(last)) = (u16_at(0), u16_at(2), last) else { return Ok(()) };
                self.add(row, first, last.max(first))
            }
            _ => Ok(()),
        }
    }

    fn add(&mut self, row: u32, first_column: u32, last_column: u32) -> Result<(), String> {
        let rows = self.rows.map_or((row, row), |(low, high)| (low.min(row), high.max(row)));
        let columns = self
            .columns
            .map_or((first_column, last_column), |(low, high)| (low.min(first_column), high.max(last_column)));
        let n_cells = u64::from(rows.1 - rows.0 + 1) * u64::from(columns.1 - columns.0 + 1);
        if n_cells > MAX_XLS_CELLS {
            return Err(format!("cells spanning {n_cells} cells, more than {MAX_XLS_CELLS}"));
        }
        (self.rows, self.columns) = (Some(rows), Some(columns));
        Ok(())
    }
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
