//! Canonical text for the fields that identify something: references,
//! keys, codes and names. Two spellings of one reference (`WX1 `, `WX1`,
//! `ＷＸ１`) must be one reference, or one payment becomes several; and a
//! character nobody can see (U+200B, U+202E) must not make two references
//! look alike while they differ.
//!
//! * Identifiers (channel references, refund references, application ids,
//!   idempotency keys, group codes, run ids): surrounding whitespace trimmed,
//!   Unicode NFKC (full-width `１２３` is `123`), then no whitespace and no
//!   invisible character left. Case is kept: references are case-sensitive.
//! * Channels: an identifier, lower-cased, of `a`-`z`, `0`-`9` and `_`.
//! * Names (persons, collectors, certifying bodies, funders): trimmed, NFC
//!   (compatibility characters such as the middle dot of `阿依·买买提` stay
//!   as written), each run of inner whitespace made one ASCII space, no
//!   invisible character.
//!
//! Invisible: control (Cc), format (Cf: zero-width, bidi marks, BOM),
//! private use, unassigned, surrogate, line and paragraph separators, and
//! the blanks that are letters or symbols by category (Hangul fillers,
//! the braille blank, variation selectors, the combining grapheme joiner).

use crate::event::FieldError;
use unicode_general_category::{get_general_category, GeneralCategory};
use unicode_normalization::UnicodeNormalization;

/// The kinds of canonical text an event field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextKind {
    Identifier,
    Channel,
    Name,
}

impl TextKind {
    /// True when `value` is canonical at a glance (plain ASCII), without
    /// allocating: the common case on every append.
    pub fn is_plainly_canonical(self, value: &str) -> bool {
        match self {
            TextKind::Identifier => !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic()),
            TextKind::Channel => is_channel_form(value),
            TextKind::Name => is_plain_ascii_name(value),
        }
    }

    /// The canonical form of `value`, or why it has none.
    pub fn canonical(self, field: &'static str, value: &str) -> Result<String, FieldError> {
        match self {
            TextKind::Identifier => identifier(field, value),
            TextKind::Channel => channel(field, value),
            TextKind::Name => name(field, value),
        }
    }
}

/// Trimmed, NFKC, without whitespace or invisible characters.
pub fn identifier(field: &'static str, value: &str) -> Result<String, FieldError> {
    if value.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(value.to_string());
    }
    // Judged as written first, so the error names the character typed.
    let trimmed = value.trim();
    if let Some(c) = trimmed.chars().find(|&c| invisible(c)) {
        return Err(refused(field, c));
    }
    let normalized: String = trimmed.nfkc().collect();
    let normalized = normalized.trim();
    if let Some(c) = normalized.chars().find(|&c| invisible(c)) {
        return Err(refused(field, c));
    }
    if let Some(c) = normalized.chars().find(|c| c.is_whitespace()) {
        return Err(FieldError {
            field,
            reason: format!("contains whitespace (U+{:04X}) inside; an identifier has none", u32::from(c)),
        });
    }
    Ok(normalized.to_string())
}

/// The form a reference from someone else's file (a bank statement, a
/// channel's bill) is compared in: trimmed and NFKC as [`identifier`]
/// makes it, with invisible characters dropped rather than refused — a
/// stray BOM or zero-width space in a bank's export must not hide the
/// payment it names. Inner whitespace is kept: such a reference matches no
/// recorded one, and is reported as such.
pub fn outside_reference(value: &str) -> String {
    if value.bytes().all(|b| b.is_ascii_graphic()) {
        return value.to_string();
    }
    let visible: String = value.chars().filter(|&c| !invisible(c)).collect();
    let normalized: String = visible.trim().nfkc().filter(|&c| !invisible(c)).collect();
    normalized.trim().to_string()
}

/// An identifier, lower-cased, of `a`-`z`, `0`-`9` and `_` only.
pub fn channel(field: &'static str, value: &str) -> Result<String, FieldError> {
    let lower = identifier(field, value)?.to_ascii_lowercase();
    if !is_channel_form(&lower) {
        return Err(FieldError {
            field,
            reason: format!("`{lower}` is not a channel name: lower-case letters a-z, digits and `_` only"),
        });
    }
    Ok(lower)
}

/// `a`-`z`, `0`-`9` and `_`, 1 to 64 bytes: the form every stored channel has.
pub fn is_channel_form(value: &str) -> bool {
    (1..=64).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Trimmed, NFC, inner whitespace runs made one ASCII space, no invisible
/// character.
pub fn name(field: &'static str, value: &str) -> Result<String, FieldError> {
    if is_plain_ascii_name(value) {
        return Ok(value.to_string());
    }
    let normalized: String = value.trim().nfc().collect();
    if let Some(c) = normalized.chars().find(|&c| invisible(c)) {
        return Err(refused(field, c));
    }
    Ok(normalized.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Printable ASCII, single inner spaces, none at either end: already canonical.
fn is_plain_ascii_name(value: &str) -> bool {
    value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !value.contains("  ")
}

fn refused(field: &'static str, c: char) -> FieldError {
    FieldError {
        field,
        reason: format!(
            "contains U+{:04X}, an invisible or control character; retype the value without it",
            u32::from(c)
        ),
    }
}

/// A character that shows nothing, or steers how others show, or has no
/// meaning yet. Whitespace is judged apart (names keep single spaces).
pub fn invisible(c: char) -> bool {
    use GeneralCategory as Gc;
    let by_category = matches!(
        get_general_category(c),
        Gc::Control
            | Gc::Format
            | Gc::PrivateUse
            | Gc::Unassigned
            | Gc::Surrogate
            | Gc::LineSeparator
            | Gc::ParagraphSeparator
    );
    by_category || blank_by_appearance(c)
}

/// Letters and marks that render as nothing (default-ignorable or blank).
fn blank_by_appearance(c: char) -> bool {
    matches!(
        u32::from(c),
        0x034F // combining grapheme joiner
            | 0x115F | 0x1160 | 0x3164 | 0xFFA0 // Hangul fillers
            | 0x17B4 | 0x17B5 // Khmer inherent vowels
            | 0x180B..=0x180F // Mongolian free variation selectors
            | 0x2800 // braille pattern blank
            | 0xFE00..=0xFE0F // variation selectors
            | 0xE0100..=0xE01EF // variation selectors supplement
            | 0xFFFC | 0xFFFD // object and replacement characters
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const INVISIBLE: &[char] = &[
        '\u{0000}',
        '\u{0009}',
        '\u{007F}',
        '\u{00AD}',
        '\u{034F}',
        '\u{061C}',
        '\u{115F}',
        '\u{1160}',
        '\u{180E}',
        '\u{200B}',
        '\u{200C}',
        '\u{200D}',
        '\u{200E}',
        '\u{200F}',
        '\u{2028}',
        '\u{2029}',
        '\u{202A}',
        '\u{202E}',
        '\u{2060}',
        '\u{2066}',
        '\u{2069}',
        '\u{2800}',
        '\u{3164}',
        '\u{E000}',
        '\u{FE0F}',
        '\u{FEFF}',
        '\u{FFA0}',
        '\u{FFFD}',
        '\u{E0001}',
        '\u{E0100}',
        '\u{10FFFD}',
        '\u{0378}',
    ];

    #[test]
    fn identifiers_are_trimmed_and_compatibility_folded() {
        assert_eq!(identifier("f", " WX1\t"), Ok("WX1".into()));
        assert_eq!(identifier("f", "ＷＸ１２３"), Ok("WX123".into()));
        assert_eq!(identifier("f", "\u{3000}WX1\u{00A0}"), Ok("WX1".into()));
        assert_eq!(identifier("f", "QXG-DS-2024-0931"), Ok("QXG-DS-2024-0931".into()));
        assert_eq!(identifier("f", "退费-001"), Ok("退费-001".into()));
        assert!(identifier("f", "WX 1").is_err(), "inner space");
        assert!(identifier("f", "WX\u{3000}1").is_err(), "inner ideographic space");
    }

    #[test]
    fn invisible_characters_are_refused_naming_field_and_code_point() {
        for &c in INVISIBLE {
            let error = identifier("channel_ref", &format!("WX{c}1")).expect_err("invisible inside");
            assert_eq!(error.field, "channel_ref");
            assert!(error.reason.contains(&format!("U+{:04X}", u32::from(c))), "{c:?}: {}", error.reason);
            assert!(name("name", &format!("张{c}三")).is_err(), "{c:?} in a name");
        }
        assert!(identifier("channel_ref", "WX1\u{200B}").is_err(), "zero-width at the end is not trimmed");
    }

    #[test]
    fn channels_are_lower_case_words() {
        assert_eq!(channel("channel", " WeChat "), Ok("wechat".into()));
        assert_eq!(channel("channel", "ＷＥＣＨＡＴ"), Ok("wechat".into()));
        assert_eq!(channel("channel", "village_collector"), Ok("village_collector".into()));
        assert!(channel("channel", "we-chat").is_err());
        assert!(channel("channel", "微信").is_err());
        assert!(channel("channel", "wechat\u{202E}").is_err());
    }

    #[test]
    fn names_keep_the_middle_dot_and_single_spaces() {
        assert_eq!(name("name", "阿依·买买提"), Ok("阿依·买买提".into()));
        assert_eq!(name("name", "  张三 "), Ok("张三".into()));
        assert_eq!(name("name", "Maria  de\u{3000}Souza"), Ok("Maria de Souza".into()));
        assert_eq!(name("name", "ＡＢ"), Ok("ＡＢ".into()), "names are NFC, not NFKC");
        assert_eq!(name("name", "e\u{0301}"), Ok("\u{00E9}".into()), "composed");
    }

    fn visible_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                proptest::char::range('!', '~'),
                proptest::char::range('\u{4E00}', '\u{4FFF}'),
                proptest::char::range('\u{FF01}', '\u{FF5E}'),
                Just(' '),
                Just('·'),
                Just('\u{3000}'),
            ],
            0..24,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn canonical_forms_are_fixed_points(text in visible_text()) {
            for kind in [TextKind::Identifier, TextKind::Channel, TextKind::Name] {
                if let Ok(once) = kind.canonical("f", &text) {
                    prop_assert_eq!(kind.canonical("f", &once), Ok(once.clone()));
                }
            }
        }

        #[test]
        fn an_inserted_invisible_character_never_makes_a_new_value(
            text in visible_text(),
            at in 0usize..25,
            which in 0usize..INVISIBLE.len(),
        ) {
            let chars: Vec<char> = text.chars().collect();
            let at = at.min(chars.len());
            let spliced: String = chars[..at].iter().chain([INVISIBLE[which]].iter()).chain(chars[at..].iter()).collect();
            for kind in [TextKind::Identifier, TextKind::Channel, TextKind::Name] {
                // Refused, or (a trimmed tab at either end) the same value as without it.
                if let Ok(value) = kind.canonical("f", &spliced) {
                    prop_assert_eq!(Ok(value), kind.canonical("f", &text));
                }
            }
        }
    }

    #[test]
    fn outside_references_compare_as_recorded_ones() {
        for spelling in ["WX1", " WX1\t", "WX1\u{200b}", "\u{feff}WX1", "ＷＸ１", "W\u{202e}X1"] {
            assert_eq!(outside_reference(spelling), "WX1", "{spelling:?}");
            assert_eq!(identifier("r", &outside_reference(spelling)).expect("canonical"), "WX1");
        }
        assert_eq!(outside_reference("2024 1005"), "2024 1005");
        assert_eq!(outside_reference("\u{200b}"), "");
    }
}
