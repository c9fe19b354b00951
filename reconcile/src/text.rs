//! Leaf parsers shared by the formats: text encodings, amounts, dates,
//! identity numbers found in free text.

use crate::error::{Errors, Location, ReconcileError};
use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use ledger::{BeijingTime, Date, Identity, Money};
use std::borrow::Cow;

/// Largest receipt file read, in bytes.
pub const MAX_FILE_BYTES: usize = 1 << 30;
/// Longest reference, identity or channel name, in bytes (the ledger's limit
/// for text in events).
pub const MAX_REFERENCE_BYTES: usize = ledger::event::MAX_TEXT_BYTES;
/// Longest free text (remittance information, product names), in bytes.
pub const MAX_FREE_TEXT_BYTES: usize = 4096;

/// Text encodings of CSV files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// GBK (a superset of GB 2312), as Chinese bank exports often are.
    Gbk,
}

pub(crate) fn check_size(errors: Errors<'_>, bytes: &[u8]) -> Result<(), ReconcileError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(errors.limit(Location::File, "file size in bytes", MAX_FILE_BYTES));
    }
    Ok(())
}

/// Decodes a whole file; the error names the first line that does not decode.
pub(crate) fn decode<'b>(
    errors: Errors<'_>,
    bytes: &'b [u8],
    encoding: Encoding,
) -> Result<Cow<'b, str>, ReconcileError> {
    check_size(errors, bytes)?;
    match encoding {
        Encoding::Utf8 => {
            let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|e| {
                let line = line_of(bytes, e.valid_up_to());
                errors.malformed(Location::Line(line), "not valid UTF-8 text")
            })
        }
        Encoding::Gbk => match encoding_rs::GBK.decode_without_bom_handling_and_without_replacement(bytes) {
            Some(text) => Ok(text),
            None => {
                // A line feed is never a trail byte in GBK, so lines decode alone.
                let line = bytes
                    .split(|&b| b == b'\n')
                    .position(|line| {
                        encoding_rs::GBK.decode_without_bom_handling_and_without_replacement(line).is_none()
                    })
                    .map_or(1, |index| index as u64 + 1);
                Err(errors.malformed(Location::Line(line), "not valid GBK text"))
            }
        },
    }
}

/// The 1-based line of a byte offset.
pub(crate) fn line_of(bytes: &[u8], offset: usize) -> u64 {
    let offset = offset.min(bytes.len());
    bytes[..offset].iter().filter(|&&b| b == b'\n').count() as u64 + 1
}

/// An amount in yuan: digits, optionally the decimal separator and at most
/// two decimals (more only if they are zeros). `signed` allows a leading
/// `-` or `+`; the result then says whether it was negative. No exponents,
/// no grouping, never a float.
pub(crate) fn parse_amount(text: &str, decimal_separator: char, signed: bool) -> Result<(bool, Money), String> {
    let expected = || {
        let sign = if signed { "an optional sign, " } else { "" };
        format!("an amount in yuan ({sign}digits, `{decimal_separator}` and at most two decimals)")
    };
    let trimmed = text.trim();
    let (negative, digits) = match trimmed.as_bytes().first() {
        Some(b'-') if signed => (true, &trimmed[1..]),
        Some(b'+') if signed => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let (whole, fraction) = match digits.split_once(decimal_separator) {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) || whole.len() > 18 {
        return Err(expected());
    }
    let canonical = match fraction {
        Some(fraction) => format!("{whole}.{fraction}"),
        None => whole.to_string(),
    };
    let money: Money = canonical.parse().map_err(|e: ledger::money::MoneyError| e.to_string())?;
    Ok((negative && money != Money::ZERO, money))
}

/// A date or a date-time (read as Beijing time when it has no offset):
/// `2024-10-05`, `20241005`, `2024-10-05 09:30:12`, `2024-10-05T09:30:12`,
/// RFC 3339, or the given chrono `format`. Returns the business date.
pub(crate) fn parse_business_date(text: &str, format: Option<&str>) -> Result<Date, String> {
    let text = text.trim();
    if let Some(format) = format {
        return parse_with_format(text, format);
    }
    if let Ok(date) = text.parse::<Date>() {
        return Ok(date);
    }
    if text.len() == 8 && text.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(date) = NaiveDate::parse_from_str(text, "%Y%m%d") {
            return Ok(Date(date));
        }
    }
    text.parse::<BeijingTime>()
        .map(BeijingTime::business_date)
        .map_err(|_| "a date (2024-10-05 or 20241005) or a date-time (2024-10-05 09:30:12, RFC 3339)".to_string())
}

fn parse_with_format(text: &str, format: &str) -> Result<Date, String> {
    let expected = || format!("a date or date-time in the format `{format}`");
    let has_time = ["%H", "%M", "%S", "%T", "%R"].iter().any(|spec| format.contains(spec));
    if !has_time {
        return NaiveDate::parse_from_str(text, format).map(Date).map_err(|_| expected());
    }
    let naive = NaiveDateTime::parse_from_str(text, format).map_err(|_| expected())?;
    let local = ledger::time::china_offset().from_local_datetime(&naive).single().ok_or_else(expected)?;
    Ok(BeijingTime(local.timestamp_micros()).business_date())
}

/// A reference or identity as given, in the form the ledger records
/// references in (`ledger::text::outside_reference`: trimmed, NFKC,
/// invisible characters dropped), so `ＷＸ１ ` in a bill finds the payment
/// recorded as `WX1`; `None` when empty. Errors when longer than the
/// ledger's text limit or when it holds control characters (a line break
/// inside a field is a broken file, not a reference).
pub(crate) fn reference(text: &str) -> Result<Option<String>, String> {
    let trimmed = text.trim();
    if trimmed.chars().any(char::is_control) {
        return Err("a reference without control characters".to_string());
    }
    let canonical = ledger::text::outside_reference(trimmed);
    if canonical.is_empty() {
        return Ok(None);
    }
    if canonical.len() > MAX_REFERENCE_BYTES {
        return Err(format!("a reference of at most {MAX_REFERENCE_BYTES} bytes"));
    }
    Ok(Some(canonical))
}

/// A channel as a file or the caller names it, in the ledger's spelling
/// (`WeChat` is `wechat`); `None` when empty.
pub(crate) fn channel(text: &str) -> Result<Option<String>, String> {
    let Some(reference) = reference(text)? else { return Ok(None) };
    ledger::text::channel("channel", &reference)
        .map(Some)
        .map_err(|_| "a channel name: letters, digits and `_` (such as wechat)".to_string())
}

/// A payer's identity: the whole text if it is an identity the ledger
/// accepts (a resident ID, `other:NUMBER`), else the first valid 18-character
/// resident ID inside the text (remittance information, a merchant data
/// field). Written as the ledger writes identities.
pub fn find_identity(text: &str) -> Option<String> {
    let trimmed = text.trim();
    if trimmed.len() <= MAX_REFERENCE_BYTES {
        if let Ok(identity) = trimmed.parse::<Identity>() {
            return Some(identity.to_string());
        }
    }
    let bytes = text.as_bytes();
    let mut start = 0;
    while start + 18 <= bytes.len() {
        let window = &bytes[start..start + 18];
        let shaped = window[..17].iter().all(u8::is_ascii_digit) && matches!(window[17], b'0'..=b'9' | b'X' | b'x');
        let boundary = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        let after = bytes.get(start + 18).is_none_or(|b| !b.is_ascii_alphanumeric());
        if shaped && boundary && after {
            // The window is ASCII, so it is a valid str.
            if let Ok(identity) = String::from_utf8_lossy(window).parse::<Identity>() {
                return Some(identity.to_string());
            }
        }
        start += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_strict() {
        assert_eq!(parse_amount("400.00", '.', false).map(|(_, m)| m.fen()), Ok(40000));
        assert_eq!(parse_amount(" 400 ", '.', false).map(|(_, m)| m.fen()), Ok(40000));
        assert_eq!(parse_amount("1070,5", ',', false).map(|(_, m)| m.fen()), Ok(107050));
        assert_eq!(parse_amount("-12.30", '.', true), Ok((true, Money::from_fen(1230).expect("fen"))));
        assert!(parse_amount("-12.30", '.', false).is_err());
        assert!(parse_amount("12.345", '.', false).is_err());
        assert!(parse_amount("1e3", '.', false).is_err());
        assert!(parse_amount(".5", '.', false).is_err());
        assert!(parse_amount("5.", '.', false).is_err());
        assert!(parse_amount("", '.', false).is_err());
        assert!(parse_amount("１２", '.', false).is_err());
        assert!(parse_amount("99999999999999999999", '.', false).is_err());
    }

    #[test]
    fn dates_and_times() {
        let day = Date::ymd(2025, 3, 1).expect("date");
        assert_eq!(parse_business_date("2025-03-01", None), Ok(day));
        assert_eq!(parse_business_date("20250301", None), Ok(day));
        assert_eq!(parse_business_date("2025-03-01 00:30:00", None), Ok(day));
        assert_eq!(parse_business_date("2025-02-28T16:30:00Z", None), Ok(day));
        assert_eq!(parse_business_date("2025/03/01 00:30", Some("%Y/%m/%d %H:%M")), Ok(day));
        assert!(parse_business_date("2025-02-30", None).is_err());
    }

    #[test]
    fn identities_in_free_text() {
        assert_eq!(find_identity("520502198503121233").as_deref(), Some("520502198503121233"));
        assert_eq!(find_identity("居民医保 缴费人520502198503121233 2025").as_deref(), Some("520502198503121233"));
        assert_eq!(find_identity("other:BJFY-2025-0001").as_deref(), Some("other:BJFY-2025-0001"));
        assert_eq!(find_identity("520502198503121234"), None);
        assert_eq!(find_identity("9520502198503121233"), None);
    }
}
