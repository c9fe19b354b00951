//! What a receipt file is, judged by its content rather than its name: a
//! `.xml` may hold an MT940 and a `.csv` a workbook, and a file read as the
//! wrong format gives a misleading error.

/// What a receipt file looks like from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    /// Nothing but white space.
    Empty,
    /// An XML document (read as camt.053, the one XML format read).
    Xml,
    /// A WeChat Pay bill: its header names `交易时间` and `微信订单号`.
    WechatBill,
    /// An Alipay merchant bill: its first line starts `#支付宝` (GBK or UTF-8).
    AlipayBill,
    /// A SWIFT MT940 statement: `:20:` (or a `{1:` block) and balances.
    Mt940,
    /// A batch-collection return of a shipped layout, by its name.
    BatchReturn(&'static str),
    /// Other text: read only as a CSV through a mapping. `delimited` when its
    /// first line has a comma, semicolon or tab.
    Text { delimited: bool },
    /// An Excel workbook (named: XLS or XLSX): read through a mapping.
    Workbook(&'static str),
    /// A format not read at all, named as messages show it.
    Unread(&'static str),
}

/// How many leading bytes are looked at for text markers.
const SNIFF_BYTES: usize = 4096;

/// Judges a file by its content.
pub fn detect(bytes: &[u8]) -> Detected {
    if let Some(kind) = workbook_kind(bytes) {
        return Detected::Workbook(kind);
    }
    if let Some(kind) = binary_kind(bytes) {
        return Detected::Unread(kind);
    }
    let without_bom = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = without_bom.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(without_bom.len());
    let head = &without_bom[start..without_bom.len().min(start + SNIFF_BYTES)];
    if head.is_empty() {
        return Detected::Empty;
    }
    if head.starts_with(b"<") {
        return if is_html(head) { Detected::Unread("HTML") } else { Detected::Xml };
    }
    if let Some(kind) = swift_kind(head) {
        return kind;
    }
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    if contains(first_line, "交易时间".as_bytes()) && contains(first_line, "微信订单号".as_bytes()) {
        return Detected::WechatBill;
    }
    if crate::wechat::FUND_FLOW_MARKERS.iter().all(|marker| contains(first_line, marker.as_bytes())) {
        return Detected::Unread(crate::wechat::FUND_FLOW_REFUSAL);
    }
    if crate::alipay::looks_like_alipay_bill(head) {
        return Detected::AlipayBill;
    }
    if let Some(name) = batch_return_kind(without_bom) {
        return Detected::BatchReturn(name);
    }
    if head.contains(&0) {
        return Detected::Unread("binary data");
    }
    Detected::Text { delimited: first_line.iter().any(|b| matches!(b, b',' | b';' | b'\t')) }
}

/// Workbooks, by their magic numbers: an XLS is an OLE compound file, an
/// XLSX a zip whose parts live under `xl/`.
fn workbook_kind(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return Some("an Excel 97-2003 workbook (XLS)");
    }
    if bytes.starts_with(b"PK\x03\x04") && contains(bytes, b"xl/") {
        return Some("an Excel workbook (XLSX)");
    }
    None
}

/// Other files recognised by their magic numbers.
fn binary_kind(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        return Some("PDF");
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return Some("a zip archive");
    }
    if bytes.starts_with(&[0x1F, 0x8B]) {
        return Some("gzip-compressed data");
    }
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Some("UTF-16 text");
    }
    None
}

fn is_html(head: &[u8]) -> bool {
    let lower = head.to_ascii_lowercase();
    lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html")
}

/// SWIFT MT statements: an MT940 has a transaction reference (`:20:`) and
/// balances (`:60F:`, `:62F:`); the basic header block `{1:` starts any MT
/// message.
fn swift_kind(head: &[u8]) -> Option<Detected> {
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    if !first_line.starts_with(b"{1:") && !first_line.starts_with(b":20:") {
        return None;
    }
    let balances = [b":60F:", b":60M:", b":62F:", b":62M:"];
    if balances.iter().any(|tag| contains(head, *tag)) {
        Some(Detected::Mt940)
    } else {
        Some(Detected::Unread("a SWIFT MT message"))
    }
}

/// The shipped batch-return layout a file has the shape of: its first
/// record a header and its last a trailer, by the layout's record types.
fn batch_return_kind(bytes: &[u8]) -> Option<&'static str> {
    let layouts = crate::presets::PRESETS.iter().filter_map(|preset| Some((preset.name, preset.layout()?.ok()?)));
    layouts.into_iter().find(|(_, layout)| layout.recognises(bytes)).map(|(name, _)| name)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}
