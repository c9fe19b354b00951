//! One entry point for every receipt format.

use crate::alipay::parse_alipay_bill;
use crate::batch_return::{parse_batch_return, Layout};
use crate::camt053::parse_camt053;
use crate::container;
use crate::csv_mapped::{parse_mapped_csv, Mapping};
use crate::detect::{detect, Detected};
use crate::error::{Location, ReconcileError, Result};
use crate::excel::parse_mapped_excel;
use crate::model::Statement;
use crate::mt940::parse_mt940;
use crate::wechat::parse_wechat_bill;
use ledger::Hash;
use std::path::Path;

/// A receipt file's format, with what it needs to be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// ISO 20022 camt.053 or camt.054; `channel` when the account serves
    /// one channel.
    Camt053 { channel: Option<String> },
    /// WeChat Pay trade bill; `channel` is the ledger's name, normally `wechat`.
    WechatBill { channel: String },
    /// Alipay merchant bill (业务明细); `channel` normally `alipay`.
    AlipayBill { channel: String },
    /// SWIFT MT940; `channel` when the account serves one channel.
    Mt940 { channel: Option<String> },
    /// A bank batch-collection return, by its layout.
    BatchReturn(Box<Layout>),
    /// Any CSV or Excel workbook, through a mapping.
    Csv(Box<Mapping>),
}

impl Format {
    /// The name recorded in `ReceiptFile::format`.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Camt053 { .. } => "camt.053",
            Format::WechatBill { .. } => "wechat-bill",
            Format::AlipayBill { .. } => "alipay-bill",
            Format::Mt940 { .. } => "mt940",
            Format::BatchReturn(_) => "batch-return",
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

/// Parses a receipt file's bytes, unpacking a gzip or zip first. `name` is
/// how errors and receipts name the file (a zip entry as `name!entry`); the
/// digest is of the bytes as received.
pub fn parse_bytes(name: &str, bytes: &[u8], format: &Format) -> Result<ParsedFile> {
    let unpacked = container::unpack(name, bytes)?;
    let (inner_name, inner) = (unpacked.name.as_str(), unpacked.bytes.as_ref());
    let workbook = crate::excel::is_workbook(inner);
    let statements = match format {
        // Read as the format named, a workbook would give a misleading first error.
        _ if workbook && !matches!(format, Format::Csv(_)) => {
            let looks_like =
                format!("an Excel workbook, read only with --mapping or a preset, not as {}", format.name());
            return Err(ReconcileError::Unrecognised { file: name.to_string(), looks_like });
        }
        Format::Camt053 { channel } => parse_camt053(inner_name, inner, channel.as_deref())?,
        Format::WechatBill { channel } => vec![parse_wechat_bill(inner_name, inner, channel)?],
        Format::AlipayBill { channel } => {
            let summary = unpacked.summary.as_ref().map(|(name, bytes)| (name.as_str(), bytes.as_slice()));
            vec![parse_alipay_bill(inner_name, inner, summary, channel)?]
        }
        Format::Mt940 { channel } => parse_mt940(inner_name, inner, channel.as_deref())?,
        Format::BatchReturn(layout) => vec![parse_batch_return(inner_name, inner, layout)?],
        Format::Csv(mapping) if workbook => vec![parse_mapped_excel(inner_name, inner, mapping)?],
        Format::Csv(mapping) => vec![parse_mapped_csv(inner_name, inner, mapping)?],
    };
    let format_name = match format {
        _ if workbook => "excel",
        Format::Camt053 { .. } if statements.iter().any(is_notification) => "camt.054",
        _ => format.name(),
    };
    Ok(ParsedFile { name: name.to_string(), format: format_name, sm3: ledger::envelope::sm3(bytes), statements })
}

fn is_notification(statement: &Statement) -> bool {
    matches!(&statement.at, Location::Xml(path) if path.contains("/BkToCstmrDbtCdtNtfctn/"))
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
/// content (inside a gzip or zip): XML is camt.053 or camt.054; MT940 by its
/// fields; with a mapping, text or a workbook is read through it; a WeChat
/// Pay or Alipay bill by its header; a batch return by a shipped layout's
/// header and trailer records. Anything else is refused, saying what it
/// looks like and which formats are read.
pub fn detect_format(file: &str, bytes: &[u8], mapping: Option<&Mapping>, channel: Option<&str>) -> Result<Format> {
    let unrecognised =
        |looks_like: &str| ReconcileError::Unrecognised { file: file.to_string(), looks_like: looks_like.to_string() };
    let unpacked = container::unpack(file, bytes)?;
    let owned = |default: &str| channel.unwrap_or(default).to_string();
    match (detect(&unpacked.bytes), mapping) {
        (Detected::Unread(kind), _) => Err(unrecognised(kind)),
        (Detected::Empty, _) => Err(unrecognised("an empty file")),
        (Detected::Xml, _) => Ok(Format::Camt053 { channel: channel.map(str::to_string) }),
        (Detected::Mt940, _) => Ok(Format::Mt940 { channel: channel.map(str::to_string) }),
        (_, Some(mapping)) => Ok(Format::Csv(Box::new(mapping.clone()))),
        (Detected::WechatBill, None) => Ok(Format::WechatBill { channel: owned("wechat") }),
        (Detected::AlipayBill, None) => Ok(Format::AlipayBill { channel: owned("alipay") }),
        (Detected::BatchReturn(name), None) => {
            let mut layout = Layout::preset(name).ok_or_else(|| unrecognised("a batch return of a broken preset"))?;
            if let Some(channel) = channel {
                layout.channel = channel.to_string();
            }
            Ok(Format::BatchReturn(Box::new(layout)))
        }
        (Detected::Workbook(kind), None) => {
            Err(unrecognised(&crate::table::workbook_looks_like(kind, &unpacked.bytes)))
        }
        (Detected::Text { delimited }, None) => {
            Err(unrecognised(&crate::table::text_looks_like(&unpacked.bytes, delimited)))
        }
    }
}

/// Refuses a file of a format not read at all (PDF, a workbook, …) even
/// when a format was named: reading it as the named one would only report a
/// misleading first field.
pub fn refuse_unread(file: &str, bytes: &[u8]) -> Result<()> {
    let unpacked = container::unpack(file, bytes)?;
    match detect(&unpacked.bytes) {
        Detected::Unread(kind) => {
            Err(ReconcileError::Unrecognised { file: file.to_string(), looks_like: kind.to_string() })
        }
        _ => Ok(()),
    }
}

/// Reads a batch return's layout file, with the SM3 digest of its bytes.
pub fn read_layout_with_digest(path: &Path) -> Result<(Layout, Hash)> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ReconcileError::Io { file: name.clone(), source })?;
    let layout = Layout::from_toml(&name, &text)?;
    Ok((layout, ledger::envelope::sm3(text.as_bytes())))
}

/// Whether a mapping file is a batch return's layout (`kind =
/// "batch-return"`) rather than a CSV mapping.
pub fn is_layout_file(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| Layout::is_layout(&text))
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
