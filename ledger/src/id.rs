//! Identity numbers and region codes, valid by construction.

use chrono::NaiveDate;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Longest number accepted for an "other certificate" (其他证件).
pub const MAX_OTHER_NUMBER_CHARS: usize = 40;

/// Most characters of an other-certificate number a masked ID shows.
const MAX_OTHER_VISIBLE_CHARS: usize = 4;

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS: [u8; 11] = *b"10X98765432";

/// Why a text is not an identity number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("resident ID `{0}` must have 18 characters (17 digits and a check character)")]
    Length(String),
    #[error("resident ID `{0}` has a character that is not a digit in its first 17")]
    NotDigits(String),
    #[error("resident ID `{number}` has check character `{found}`, GB 11643 gives `{expected}`")]
    CheckCharacter { number: String, found: char, expected: char },
    #[error("resident ID `{0}` holds an impossible birth date")]
    BirthDate(String),
    #[error("other-certificate number `{0}` must be 1 to 40 letters, digits or '-'")]
    OtherNumber(String),
    #[error("region code `{0}` must be 6 digits (GB/T 2260), such as 520500")]
    Region(String),
}

/// The GB 11643-1999 check character (ISO 7064 MOD 11-2) of 17 digits.
pub fn check_character(first17: &[u8]) -> Option<char> {
    if first17.len() != 17 || !first17.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = first17.iter().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    Some(char::from(CHECK_CHARS[(sum % 11) as usize]))
}

/// Kind of certificate a person registers with (证件类型).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum IdKind {
    /// 居民身份证, 18 characters with a check character.
    ResidentId,
    /// 其他证件: foreign spouses, unregistered children, newborns before
    /// household registration (预参保登记).
    Other,
}

/// A person's identity as registered: kind + number. Written `520...X` for a
/// resident ID and `other:NUMBER` for other certificates.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    kind: IdKind,
    number: String,
}

impl Identity {
    pub fn kind(&self) -> IdKind {
        self.kind
    }

    pub fn number(&self) -> &str {
        &self.number
    }

    /// The resident ID of a region, birth date and 3-digit sequence, with its
    /// check character: for generated data and tests.
    pub fn resident(region: RegionCode, birth: NaiveDate, sequence: u16) -> Identity {
        let first17 = format!("{region}{}{:03}", birth.format("%Y%m%d"), sequence % 1000);
        let check = check_character(first17.as_bytes()).expect("17 digits");
        Identity { kind: IdKind::ResidentId, number: format!("{first17}{check}") }
    }

    /// Birth date encoded in a resident ID (digits 7..15).
    pub fn birth_date(&self) -> Option<NaiveDate> {
        if self.kind != IdKind::ResidentId {
            return None;
        }
        let digits = self.number.as_bytes().get(6..14)?;
        let number = |range: std::ops::Range<usize>| {
            digits[range].iter().try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
        };
        let year = i32::try_from(number(0..4)?).ok()?;
        NaiveDate::from_ymd_opt(year, number(4..6)?, number(6..8)?)
    }

    /// The ID for listings, cards, certificates, logs and answers (PIPL):
    /// the one masking rule, used everywhere an ID is shown masked. The
    /// length is kept.
    /// * Resident ID: the region (6 digits), 8 stars over the birth date,
    ///   and the last 4 (sequence and check character).
    /// * Other certificate: `other:` and stars, the last characters only
    ///   visible, at most 4 and at most a third of the number (a number of
    ///   fewer than 3 characters is all stars).
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.number.chars().collect();
        let (prefix, head, tail) = match self.kind {
            IdKind::ResidentId if chars.len() == 18 => ("", 6, 4),
            // Never built (a resident ID has 18 characters): hide it all.
            IdKind::ResidentId => ("", 0, 0),
            IdKind::Other => ("other:", 0, (chars.len() / 3).min(MAX_OTHER_VISIBLE_CHARS)),
        };
        let stars = chars.len() - head - tail;
        let shown = |range: std::ops::Range<usize>| chars[range].iter().collect::<String>();
        format!("{prefix}{}{}{}", shown(0..head), "*".repeat(stars), shown(chars.len() - tail..chars.len()))
    }

    fn parse_resident(text: &str) -> Result<Identity, IdError> {
        let upper =
            if text.bytes().any(|b| b.is_ascii_lowercase()) { text.to_ascii_uppercase() } else { text.to_string() };
        let bytes = upper.as_bytes();
        if bytes.len() != 18 {
            return Err(IdError::Length(text.to_string()));
        }
        let expected = check_character(&bytes[..17]).ok_or_else(|| IdError::NotDigits(text.to_string()))?;
        let found = char::from(bytes[17]);
        if found != expected {
            return Err(IdError::CheckCharacter { number: text.to_string(), found, expected });
        }
        let identity = Identity { kind: IdKind::ResidentId, number: upper };
        if identity.birth_date().is_none() {
            return Err(IdError::BirthDate(text.to_string()));
        }
        Ok(identity)
    }

    fn parse_other(number: &str) -> Result<Identity, IdError> {
        let valid = !number.is_empty()
            && number.len() <= MAX_OTHER_NUMBER_CHARS
            && number.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            return Err(IdError::OtherNumber(number.to_string()));
        }
        Ok(Identity { kind: IdKind::Other, number: number.to_string() })
    }
}

impl FromStr for Identity {
    type Err = IdError;

    /// Spellings of one number are one identity: surrounding whitespace is
    /// trimmed, full-width characters (`５２０…Ｘ`) are read as their ASCII
    /// forms (Unicode NFKC), the check character and the `other:` prefix
    /// in either case.
    fn from_str(text: &str) -> Result<Identity, IdError> {
        let normalized: String;
        let text = if text.is_ascii() {
            text.trim()
        } else {
            use unicode_normalization::UnicodeNormalization;
            normalized = text.trim().nfkc().collect();
            normalized.trim()
        };
        let other = text.get(..6).filter(|prefix| prefix.eq_ignore_ascii_case("other:"));
        match other {
            Some(_) => Identity::parse_other(&text[6..]),
            None => Identity::parse_resident(text),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            IdKind::ResidentId => f.write_str(&self.number),
            IdKind::Other => write!(f, "other:{}", self.number),
        }
    }
}

impl Serialize for Identity {
    /// The written form above, in text and in stored bytes alike.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.kind {
            IdKind::ResidentId => serializer.serialize_str(&self.number),
            IdKind::Other => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Identity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Identity, D::Error> {
        deserializer.deserialize_str(IdentityVisitor)
    }
}

/// Parses in place from borrowed text: decoding stored events allocates
/// only the identity's own string.
struct IdentityVisitor;

impl de::Visitor<'_> for IdentityVisitor {
    type Value = Identity;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an 18-character resident ID or `other:NUMBER`")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Identity, E> {
        text.parse().map_err(E::custom)
    }
}

/// Administrative division code (行政区划代码, GB/T 2260), e.g. 520500 Bijie.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegionCode(u32);

impl RegionCode {
    pub fn new(code: u32) -> Option<RegionCode> {
        (100_000..=999_999).contains(&code).then_some(RegionCode(code))
    }

    pub fn code(self) -> u32 {
        self.0
    }

    /// The province this region belongs to (first two digits, then 0000).
    pub fn province(self) -> RegionCode {
        RegionCode(self.0 / 10_000 * 10_000)
    }
}

impl FromStr for RegionCode {
    type Err = IdError;

    fn from_str(text: &str) -> Result<RegionCode, IdError> {
        let text = text.trim();
        if text.len() != 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::Region(text.to_string()));
        }
        text.parse::<u32>().ok().and_then(RegionCode::new).ok_or_else(|| IdError::Region(text.to_string()))
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

impl Serialize for RegionCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_u32(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for RegionCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RegionCode, D::Error> {
        if deserializer.is_human_readable() {
            let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
            text.parse().map_err(de::Error::custom)
        } else {
            let code = u32::deserialize(deserializer)?;
            RegionCode::new(code).ok_or_else(|| de::Error::custom(format!("region code {code} out of range")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Builds a valid resident ID from its first 17 digits.
    pub(crate) fn with_check(first17: &str) -> String {
        let check = check_character(first17.as_bytes()).expect("17 digits");
        format!("{first17}{check}")
    }

    #[test]
    fn known_check_characters() {
        // The GB 11643 worked example: 11010519491231002X.
        assert!("11010519491231002X".parse::<Identity>().is_ok());
        assert!("11010519491231002x".parse::<Identity>().is_ok());
        assert!(matches!(
            "110105194912310021".parse::<Identity>(),
            Err(IdError::CheckCharacter { expected: 'X', found: '1', .. })
        ));
        assert!(matches!("1101051949123100".parse::<Identity>(), Err(IdError::Length(_))));
        assert!(matches!(
            "11010519491331002X".parse::<Identity>(),
            Err(IdError::CheckCharacter { .. }) | Err(IdError::BirthDate(_))
        ));
    }

    #[test]
    fn spellings_of_one_number_are_one_identity() {
        let id: Identity = "11010519491231002X".parse().expect("valid");
        for spelling in
            [" 11010519491231002x\t", "１１０１０５１９４９１２３１００２Ｘ", "１１０１０５１９４９１２３１００２ｘ"]
        {
            assert_eq!(spelling.parse::<Identity>().expect(spelling), id, "{spelling:?}");
        }
        let other: Identity = "other:BJFY-2025-0001".parse().expect("valid");
        for spelling in ["OTHER:BJFY-2025-0001", " other:ＢＪＦＹ－２０２５－０００１ "] {
            assert_eq!(spelling.parse::<Identity>().expect(spelling), other, "{spelling:?}");
        }
        assert!("11010519491231002X\u{200b}".parse::<Identity>().is_err(), "an invisible character is not a digit");
    }

    #[test]
    fn impossible_birth_date_is_refused() {
        let id = with_check("52050020210230123");
        assert!(matches!(id.parse::<Identity>(), Err(IdError::BirthDate(_))));
    }

    #[test]
    fn other_certificates_and_masking() {
        let other: Identity = "other:HOSP-2025-0001".parse().expect("other");
        assert_eq!(other.kind(), IdKind::Other);
        assert!("other:".parse::<Identity>().is_err());
        assert!("other:has space".parse::<Identity>().is_err());
        assert_eq!(other.masked(), "other:**********0001");
        let short: Identity = "other:AB".parse().expect("other");
        assert_eq!(short.masked(), "other:**");
        let seven: Identity = "other:BJ-1234".parse().expect("other");
        assert_eq!(seven.masked(), "other:*****34");
        let id: Identity = "11010519491231002X".parse().expect("valid");
        assert_eq!(id.masked(), "110105********002X");
        assert_eq!(id.birth_date(), NaiveDate::from_ymd_opt(1949, 12, 31));
    }

    #[test]
    fn regions() {
        let bijie: RegionCode = "520500".parse().expect("region");
        assert_eq!(bijie.province().to_string(), "520000");
        assert!("52050".parse::<RegionCode>().is_err());
        assert!("052050".parse::<RegionCode>().is_err());
    }

    /// The characters a masked form shows: those that are not `*`, with
    /// their places.
    fn visible(masked: &str) -> Vec<(usize, char)> {
        masked.chars().enumerate().filter(|(_, c)| *c != '*').collect()
    }

    proptest! {
        /// A masked resident ID shows the region and the last 4 only: no
        /// digit of the birth date, and the length is kept.
        #[test]
        fn masked_resident_ids_hide_the_birth_date(first17 in "[1-6][0-9]{5}(19[0-9][0-9]|20[0-2][0-9])(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])[0-9]{3}") {
            let number = with_check(&first17);
            let id: Identity = number.parse().expect("valid");
            let masked = id.masked();
            prop_assert_eq!(masked.chars().count(), 18);
            prop_assert_eq!(&masked[6..14], "********");
            let shown: String = visible(&masked).into_iter().map(|(_, c)| c).collect();
            prop_assert_eq!(shown, format!("{}{}", &number[..6], &number[14..]));
        }

        /// A masked other certificate shows at most ⌊len/3⌋ and at most 4
        /// characters, the last ones, and keeps the length.
        #[test]
        fn masked_other_ids_show_at_most_a_third(number in "[A-Za-z0-9-]{1,40}") {
            let id: Identity = format!("other:{number}").parse().expect("valid");
            let masked = id.masked();
            let body = masked.strip_prefix("other:").expect("the prefix");
            let n_chars = number.chars().count();
            prop_assert_eq!(body.chars().count(), n_chars);
            // The number itself may hold no `*`: the masked form's other
            // characters are exactly the ones shown.
            let shown = visible(body);
            prop_assert!(shown.len() <= (n_chars / 3).min(4), "{masked} shows {} of {n_chars}", shown.len());
            for (place, c) in shown {
                prop_assert!(place >= n_chars - (n_chars / 3).min(4), "{masked}: character {place} shown");
                prop_assert_eq!(number.chars().nth(place), Some(c));
            }
        }

        #[test]
        fn exactly_one_check_character_is_valid(first17 in "[1-6][0-9]{5}(19[5-9][0-9]|20[01][0-9])(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])[0-9]{3}") {
            let valid = with_check(&first17);
            prop_assert!(valid.parse::<Identity>().is_ok());
            let mut accepted = 0;
            for c in "0123456789X".chars() {
                if format!("{first17}{c}").parse::<Identity>().is_ok() { accepted += 1; }
            }
            prop_assert_eq!(accepted, 1);
        }
    }
}
