//! One entry point for every receipt format.

use crate::camt053::parse_camt053;
use crate::csv_mapped::{parse_mapped_csv, Mapping};
use crate::detect::{detect, Detected};
use crate::error::{Location, ReconcileError, Result};
use crate::excel::parse_mapped_excel;
use crate::model::Statement;
use crate::wechat::parse_wechat_bill;
use ledger::Hash;
use std::path::Path;

/// A receipt file's format, with what it needs to be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// ISO 20022 camt.053; `channel` when the account serves one channel.
    Camt053 { channel: Option<String> },
    /// WeChat Pay trade bill; `channel` is the ledger's name, normally `wechat`.
    WechatBill { channel: String },
    /// Any CSV, through a mapping.
    Csv(Box<Mapping>),
}

impl Format {
    /// The name recorded in `ReceiptFile::format`.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Camt053 { .. } => "camt.053",
            Format::WechatBill { .. } => "wechat-bill",
            Format::Csv(_) => "csv",
        }
    }
}

/// A parsed receipt file: its statements and the SM3 digest of its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedFile {
    pub name: String,
    pub format: &'static str,
    pub sm3: Hash,
    pub statements: Vec<Statement>,
}

/// Parses a receipt file's bytes. `name` is how errors and receipts name
/// the file.
pub fn parse_bytes(name: &str, bytes: &[u8], format: &Format) -> Result<ParsedFile> {
    let workbook = crate::excel::is_workbook(bytes);
    let statements = match format {
        // Read as the format named, a workbook would give a misleading first error.
        _ if workbook && !matches!(format, Format::Csv(_)) => {
            let looks_like =
                format!("an Excel workbook, read only with --mapping or a preset, not as {}", format.name());
            return Err(ReconcileError::Unrecognised { file: name.to_string(), looks_like });
        }
        Format::Camt053 { channel } => parse_camt053(name, bytes, channel.as_deref())?,
        Format::WechatBill { channel } => vec![parse_wechat_bill(name, bytes, channel)?],
        Format::Csv(mapping) if workbook => vec![parse_mapped_excel(name, bytes, mapping)?],
        Format::Csv(mapping) => vec![parse_mapped_csv(name, bytes, mapping)?],
    };
    let format = if workbook { "excel" } else { format.name() };
    Ok(ParsedFile { name: name.to_string(), format, sm3: ledger::envelope::sm3(bytes), statements })
}

/// Reads and parses a receipt file, named by its path as given.
pub fn parse_path(path: &Path, format: &Format) -> Result<ParsedFile> {
    let name = path.display().to_string();
    let bytes = read_file(path)?;
    parse_bytes(&name, &bytes, format)
}

/// Reads a receipt file whole, refusing one above the size limit. Errors
/// name the file by its path as given.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let name = path.display().to_string();
    let size = std::fs::metadata(path).map_err(|source| ReconcileError::Io { file: name.clone(), source })?.len();
    if size > crate::text::MAX_FILE_BYTES as u64 {
        return Err(ReconcileError::Limit {
            file: name,
            at: Location::File,
            what: "file size in bytes",
            limit: crate::text::MAX_FILE_BYTES as u64,
        });
    }
    std::fs::read(path).map_err(|source| ReconcileError::Io { file: name, source })
}

/// The format of a receipt file no format was named for, judged by its
/// content: XML is camt.053; with a mapping, text or a workbook is read
/// through it; a WeChat
/// Pay bill header is a bill. Anything else is refused, saying what it
/// looks like and which formats are read.
pub fn detect_format(file: &str, bytes: &[u8], mapping: Option<&Mapping>, channel: Option<&str>) -> Result<Format> {
    let unrecognised =
        |looks_like: &str| ReconcileError::Unrecognised { file: file.to_string(), looks_like: looks_like.to_string() };
    match (detect(bytes), mapping) {
        (Detected::Unread(kind), _) => Err(unrecognised(kind)),
        (Detected::Empty, _) => Err(unrecognised("an empty file")),
        (Detected::Xml, _) => Ok(Format::Camt053 { channel: channel.map(str::to_string) }),
        (_, Some(mapping)) => Ok(Format::Csv(Box::new(mapping.clone()))),
        (Detected::WechatBill, None) => Ok(Format::WechatBill { channel: channel.unwrap_or("wechat").to_string() }),
        (Detected::Workbook(kind), None) => Err(unrecognised(&crate::table::workbook_looks_like(kind, bytes))),
        (Detected::Text { delimited }, None) => Err(unrecognised(&crate::table::text_looks_like(bytes, delimited))),
    }
}

/// Refuses a file of a format not read at all (MT940, PDF, a workbook, …)
/// even when a format was named: reading it as the named one would only
/// report a misleading first field.
pub fn refuse_unread(file: &str, bytes: &[u8]) -> Result<()> {
    match detect(bytes) {
        Detected::Unread(kind) => {
            Err(ReconcileError::Unrecognised { file: file.to_string(), looks_like: kind.to_string() })
        }
        _ => Ok(()),
    }
}

/// Reads a generic CSV's mapping file.
pub fn read_mapping(path: &Path) -> Result<Mapping> {
    read_mapping_with_digest(path).map(|(mapping, _)| mapping)
}

/// Reads a generic CSV's mapping file, with the SM3 digest of its bytes
/// (part of what identifies a reconciliation run).
pub fn read_mapping_with_digest(path: &Path) -> Result<(Mapping, Hash)> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ReconcileError::Io { file: name.clone(), source })?;
    let mapping = Mapping::from_toml(&name, &text)?;
    Ok((mapping, ledger::envelope::sm3(text.as_bytes())))
}
