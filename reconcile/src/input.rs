//! One entry point for every receipt format.

use crate::camt053::parse_camt053;
use crate::csv_mapped::{parse_mapped_csv, Mapping};
use crate::error::{ReconcileError, Result};
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
    let statements = match format {
        Format::Camt053 { channel } => parse_camt053(name, bytes, channel.as_deref())?,
        Format::WechatBill { channel } => vec![parse_wechat_bill(name, bytes, channel)?],
        Format::Csv(mapping) => vec![parse_mapped_csv(name, bytes, mapping)?],
    };
    Ok(ParsedFile { name: name.to_string(), format: format.name(), sm3: ledger::envelope::sm3(bytes), statements })
}

/// Reads and parses a receipt file, named by its path as given.
pub fn parse_path(path: &Path, format: &Format) -> Result<ParsedFile> {
    let name = path.display().to_string();
    let size = std::fs::metadata(path).map_err(|source| ReconcileError::Io { file: name.clone(), source })?.len();
    if size > crate::text::MAX_FILE_BYTES as u64 {
        return Err(ReconcileError::Limit {
            file: name,
            at: crate::error::Location::File,
            what: "file size in bytes",
            limit: crate::text::MAX_FILE_BYTES as u64,
        });
    }
    let bytes = std::fs::read(path).map_err(|source| ReconcileError::Io { file: name.clone(), source })?;
    parse_bytes(&name, &bytes, format)
}

/// Reads a generic CSV's mapping file.
pub fn read_mapping(path: &Path) -> Result<Mapping> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ReconcileError::Io { file: name.clone(), source })?;
    Mapping::from_toml(&name, &text)
}
