//! Compressed containers read before a receipt file's format is judged: a
//! gzip download (WeChat Pay's `tar_type=GZIP`) and a zip of one bill or of
//! an Alipay merchant bill's detail (业务明细) and summary (汇总) files.
//!
//! Bounded: an entry is inflated at most to the receipt file size limit
//! ([`crate::text::MAX_FILE_BYTES`]), whatever its header claims, so a zip
//! bomb is refused with a clear error rather than filling memory. Only
//! stored and deflated entries are read; encrypted, ZIP64 and nested
//! containers are refused. An XLSX workbook is a zip too: it is left whole
//! for the workbook reader.

use crate::error::{Errors, Location, ReconcileError, Result};
use crate::text::MAX_FILE_BYTES;
use std::borrow::Cow;
use std::io::Read;

/// Most entries listed in one zip.
const MAX_ENTRIES: usize = 10_000;
/// The end of central directory record with the longest comment.
const MAX_EOCD_SEARCH: usize = 22 + u16::MAX as usize;

/// A receipt file out of its container.
#[derive(Debug)]
pub struct Unpacked<'b> {
    /// How errors and receipts name it: the file's own name, or
    /// `archive.zip!entry.csv` for a zip entry.
    pub name: String,
    pub bytes: Cow<'b, [u8]>,
    /// The summary file beside an Alipay bill's detail file, named and read.
    pub summary: Option<(String, Vec<u8>)>,
    /// `gzip`, `zip`, or `None` when the file was not in a container.
    pub container: Option<&'static str>,
}

/// The receipt file inside `bytes`, or `bytes` itself when it is not a
/// gzip or a zip (or is a workbook, which is a zip read as a whole).
pub fn unpack<'b>(name: &str, bytes: &'b [u8]) -> Result<Unpacked<'b>> {
    unpack_within(name, bytes, MAX_FILE_BYTES)
}

/// [`unpack`] with another limit on an entry's decompressed size.
pub fn unpack_within<'b>(name: &str, bytes: &'b [u8], max_bytes: usize) -> Result<Unpacked<'b>> {
    let errors = Errors { file: name };
    let limits = Limits { errors, max_bytes };
    let plain = |bytes: &'b [u8]| Unpacked {
        name: name.to_string(),
        bytes: Cow::Borrowed(bytes),
        summary: None,
        container: None,
    };
    if is_gzip(bytes) {
        let inner = limits.read(flate2::read::GzDecoder::new(bytes), "the gzip data")?;
        refuse_nested(errors, &inner)?;
        return Ok(Unpacked {
            name: name.to_string(),
            bytes: Cow::Owned(inner),
            summary: None,
            container: Some("gzip"),
        });
    }
    if !is_zip(bytes) {
        return Ok(plain(bytes));
    }
    let entries = central_directory(errors, bytes)?;
    if entries.iter().any(|e| e.name == "[Content_Types].xml" || e.name.starts_with("xl/")) {
        return Ok(plain(bytes));
    }
    let files: Vec<&Entry> = entries.iter().filter(|e| !e.is_directory() && !e.name.starts_with("__MACOSX/")).collect();
    let (detail, summary) = choose(errors, &files)?;
    let detail_bytes = inflate(limits, bytes, detail)?;
    refuse_nested(errors, &detail_bytes)?;
    let summary = match summary {
        Some(entry) => Some((format!("{name}!{}", entry.name), inflate(limits, bytes, entry)?)),
        None => None,
    };
    Ok(Unpacked {
        name: format!("{name}!{}", detail.name),
        bytes: Cow::Owned(detail_bytes),
        summary,
        container: Some("zip"),
    })
}

pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1F, 0x8B])
}

pub(crate) fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

fn refuse_nested(errors: Errors<'_>, inner: &[u8]) -> Result<()> {
    if is_gzip(inner) || is_zip(inner) {
        return Err(
            errors.malformed(Location::File, "a compressed file inside a compressed file: unpack the outer one")
        );
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct Limits<'f> {
    errors: Errors<'f>,
    max_bytes: usize,
}

impl Limits<'_> {
    fn exceeded(self) -> ReconcileError {
        self.errors.limit(Location::File, "decompressed size in bytes", self.max_bytes)
    }

    /// Reads at most the limit from `reader`; more is refused. (A gzip's
    /// CRC and length are checked by its decoder at its end.)
    fn read(self, reader: impl Read, what: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        reader
            .take(self.max_bytes as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| self.errors.malformed(Location::File, format!("{what} does not decompress: {e}")))?;
        if out.len() > self.max_bytes {
            return Err(self.exceeded());
        }
        Ok(out)
    }
}

/// One file of a zip's central directory.
#[derive(Debug)]
struct Entry {
    name: String,
    method: u16,
    flags: u16,
    crc32: u32,
    compressed_size: u64,
    size: u64,
    local_header: u64,
}

impl Entry {
    fn is_directory(&self) -> bool {
        self.name.ends_with('/')
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    bytes.get(at..at.checked_add(2)?).map(|b| u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    bytes.get(at..at.checked_add(4)?).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn central_directory(errors: Errors<'_>, bytes: &[u8]) -> Result<Vec<Entry>> {
    let broken = || errors.malformed(Location::File, "not a readable zip archive (no central directory)");
    let search_from = bytes.len().saturating_sub(MAX_EOCD_SEARCH);
    let eocd = (search_from..bytes.len().saturating_sub(21))
        .rev()
        .find(|&at| u32_at(bytes, at) == Some(0x0605_4B50))
        .ok_or_else(broken)?;
    let n_entries = usize::from(u16_at(bytes, eocd + 10).ok_or_else(broken)?);
    let directory_offset = u32_at(bytes, eocd + 16).ok_or_else(broken)?;
    if directory_offset == u32::MAX || n_entries == usize::from(u16::MAX) {
        return Err(errors.malformed(Location::File, "a ZIP64 archive, not read: zip the file again without ZIP64"));
    }
    if n_entries > MAX_ENTRIES {
        return Err(errors.limit(Location::File, "entries in a zip", MAX_ENTRIES));
    }
    let mut at = directory_offset as usize;
    let mut entries = Vec::with_capacity(n_entries);
    for _ in 0..n_entries {
        if u32_at(bytes, at) != Some(0x0201_4B50) {
            return Err(broken());
        }
        let field16 = |offset: usize| u16_at(bytes, at + offset).ok_or_else(broken);
        let field32 = |offset: usize| u32_at(bytes, at + offset).ok_or_else(broken);
        let (flags, method) = (field16(8)?, field16(10)?);
        let (crc32, compressed_size, size) = (field32(16)?, field32(20)?, field32(24)?);
        let name_length = usize::from(field16(28)?);
        let skip = usize::from(field16(30)?) + usize::from(field16(32)?);
        let local_header = field32(42)?;
        let raw_name = bytes.get(at + 46..at + 46 + name_length).ok_or_else(broken)?;
        entries.push(Entry {
            name: entry_name(raw_name, flags),
            method,
            flags,
            crc32,
            compressed_size: u64::from(compressed_size),
            size: u64::from(size),
            local_header: u64::from(local_header),
        });
        at += 46 + name_length + skip;
    }
    Ok(entries)
}

/// An entry's name: UTF-8 when flagged (or valid), else GBK as Chinese
/// Windows tools write it.
fn entry_name(raw: &[u8], flags: u16) -> String {
    if flags & 0x0800 != 0 {
        return String::from_utf8_lossy(raw).into_owned();
    }
    match std::str::from_utf8(raw) {
        Ok(name) => name.to_string(),
        Err(_) => encoding_rs::GBK.decode(raw).0.into_owned(),
    }
}

/// The bill in a zip: its one file, or an Alipay detail file (业务明细)
/// with its summary (汇总).
fn choose<'e>(errors: Errors<'_>, files: &[&'e Entry]) -> Result<(&'e Entry, Option<&'e Entry>)> {
    if let [only] = files {
        return Ok((only, None));
    }
    let details: Vec<&Entry> =
        files.iter().copied().filter(|e| e.name.contains("业务明细") && !e.name.contains("汇总")).collect();
    let summaries: Vec<&Entry> = files.iter().copied().filter(|e| e.name.contains("汇总")).collect();
    if let ([detail], [] | [_]) = (details.as_slice(), summaries.as_slice()) {
        if files.len() == 1 + summaries.len() {
            return Ok((detail, summaries.first().copied()));
        }
    }
    let names: Vec<&str> = files.iter().take(5).map(|e| e.name.as_str()).collect();
    Err(ReconcileError::Invalid {
        file: errors.file.to_string(),
        at: Location::File,
        expected: "a zip of one receipt file, or of an Alipay bill's 业务明细 and 汇总 files".into(),
        found: format!("{} files ({}{})", files.len(), names.join(", "), if files.len() > 5 { ", …" } else { "" }),
    })
}

/// An entry's bytes, inflated within the size limit and checked against its CRC.
fn inflate(limits: Limits<'_>, bytes: &[u8], entry: &Entry) -> Result<Vec<u8>> {
    let errors = limits.errors;
    let entry_errors =
        |reason: String| errors.malformed(Location::File, format!("zip entry `{}`: {reason}", entry.name));
    if entry.flags & 0x0001 != 0 {
        return Err(entry_errors("encrypted, not read".into()));
    }
    if entry.size > limits.max_bytes as u64 {
        return Err(limits.exceeded());
    }
    let local = usize::try_from(entry.local_header).unwrap_or(usize::MAX);
    if u32_at(bytes, local) != Some(0x0403_4B50) {
        return Err(entry_errors("its local header is missing".into()));
    }
    let name_length = usize::from(u16_at(bytes, local + 26).unwrap_or_default());
    let extra_length = usize::from(u16_at(bytes, local + 28).unwrap_or_default());
    let start = local.saturating_add(30 + name_length + extra_length);
    let end = start.saturating_add(usize::try_from(entry.compressed_size).unwrap_or(usize::MAX));
    let data = bytes.get(start..end).ok_or_else(|| entry_errors("its data runs past the end of the file".into()))?;
    let out = match entry.method {
        0 => data.to_vec(),
        8 => limits.read(flate2::read::DeflateDecoder::new(data), &format!("zip entry `{}`", entry.name))?,
        other => return Err(entry_errors(format!("compression method {other} is not read (stored or deflate only)"))),
    };
    let mut crc = flate2::Crc::new();
    crc.update(&out);
    if crc.sum() != entry.crc32 || out.len() as u64 != entry.size {
        return Err(entry_errors("its CRC or size does not match: the archive is damaged".into()));
    }
    Ok(out)
}
