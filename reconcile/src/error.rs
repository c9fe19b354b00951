//! The crate's one error type, and where in a file an error (or a receipt) is.

use std::fmt;

/// Where in a receipt file something is: a line of a CSV file (1-based, as
/// an editor shows it), a field of that line, or an element of an XML
/// document as a path such as `/Document/BkToCstmrStmt/Stmt[1]/Ntry[3]/Amt`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Location {
    /// The file as a whole (an empty file, a file too large).
    File,
    Line(u64),
    Field {
        line: u64,
        field: String,
    },
    Xml(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File => f.write_str("whole file"),
            Location::Line(line) => write!(f, "line {line}"),
            Location::Field { line, field } => write!(f, "line {line}, field `{field}`"),
            Location::Xml(path) => f.write_str(path),
        }
    }
}

/// Why receipts could not be read or summed.
///
/// `Invalid`, `Malformed`, `Mapping`, `Limit` and `Unrecognised` are rejections of the input
/// (the CLI's exit code 2); `Io` is a failure to read it; `TotalOverflow`
/// means totals do not fit the ledger's `Money`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconcileError {
    /// A value is not what the format requires.
    #[error("{file}: {at}: expected {expected}, found {found}")]
    Invalid { file: String, at: Location, expected: String, found: String },
    /// The file is not well-formed: XML syntax, CSV quoting, text encoding.
    #[error("{file}: {at}: {reason}")]
    Malformed { file: String, at: Location, reason: String },
    /// The mapping file of a generic CSV is wrong.
    #[error("mapping {file}: {reason}")]
    Mapping { file: String, reason: String },
    /// An input exceeds one of the crate's limits.
    #[error("{file}: {at}: {what} exceeds the limit of {limit}")]
    Limit { file: String, at: Location, what: &'static str, limit: u64 },
    /// A sum of amounts is larger than the ledger's largest amount.
    #[error("the total of {what} exceeds the largest amount the ledger holds")]
    TotalOverflow { what: String },
    /// The file is of no format read here (MT940, a PDF, a workbook, …).
    #[error("{file}: not a format yibao reads (looks like {looks_like}); formats read: {FORMATS_READ}")]
    Unrecognised { file: String, looks_like: String },
    /// The OS reason is the source; callers print the chain (`{:#}`).
    #[error("reading {file}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// The formats read, as error messages list them.
pub const FORMATS_READ: &str = "WeChat Pay bill of any type (CSV, gzip), Alipay merchant bill (CSV, zip), \
     camt.053 and camt.054 (.xml), MT940, CSV or Excel (.xls, .xlsx) with --mapping or a bank's or the tax \
     bureau's preset, batch-collection return with a layout or its preset (--format wechat, alipay, camt053, \
     camt054, mt940, icbc, ccb, abc, boc, bocom, cmb, tax, rural-credit-return; --show-format NAME prints one)";

pub type Result<T, E = ReconcileError> = std::result::Result<T, E>;

/// Builds `Invalid` errors for one file without repeating its name.
#[derive(Clone, Copy)]
pub(crate) struct Errors<'a> {
    pub file: &'a str,
}

impl Errors<'_> {
    pub fn invalid(self, at: Location, expected: impl Into<String>, found: impl fmt::Display) -> ReconcileError {
        ReconcileError::Invalid {
            file: self.file.to_string(),
            at,
            expected: expected.into(),
            found: shown(&found.to_string()),
        }
    }

    pub fn malformed(self, at: Location, reason: impl Into<String>) -> ReconcileError {
        ReconcileError::Malformed { file: self.file.to_string(), at, reason: reason.into() }
    }

    pub fn limit(self, at: Location, what: &'static str, limit: usize) -> ReconcileError {
        ReconcileError::Limit { file: self.file.to_string(), at, what, limit: limit as u64 }
    }
}

/// The found value as shown in a message: quoted, cut to a readable length,
/// control characters escaped so that a message stays on one line.
fn shown(text: &str) -> String {
    const MAX_CHARS: usize = 60;
    if text.is_empty() {
        return "nothing".to_string();
    }
    let mut out = String::from("`");
    for (index, c) in text.chars().enumerate() {
        if index == MAX_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('`');
    out
}
