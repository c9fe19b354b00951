//! Money in fen (分, 0.01 yuan). Never a float inside the ledger.

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A non-negative amount of money, held as whole fen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

/// Why a text is not an amount.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not a decimal amount")]
    NotANumber(String),
    #[error("`{0}` has more than two decimals (amounts are in yuan, to the fen)")]
    TooPrecise(String),
    #[error("`{0}` is negative")]
    Negative(String),
    #[error("`{0}` is too large")]
    TooLarge(String),
}

impl Money {
    pub const ZERO: Money = Money(0);
    /// Largest amount the ledger accepts: 10^12 yuan, far above any premium.
    pub const MAX_FEN: i64 = 100_000_000_000_000;

    pub fn from_fen(fen: i64) -> Option<Money> {
        (0..=Self::MAX_FEN).contains(&fen).then_some(Money(fen))
    }

    /// Whole yuan, for constants in code and tests.
    pub fn from_yuan(yuan: i64) -> Money {
        Money::from_fen(yuan * 100).expect("yuan constant within range")
    }

    pub fn fen(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).and_then(Money::from_fen)
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).and_then(Money::from_fen)
    }

    pub fn saturating_sub(self, other: Money) -> Money {
        Money((self.0 - other.0).max(0))
    }

    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, 2)
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    fn from_str(text: &str) -> Result<Money, MoneyError> {
        let trimmed = text.trim();
        let value = Decimal::from_str_exact(trimmed).map_err(|_| MoneyError::NotANumber(text.to_string()))?;
        if value.is_sign_negative() && !value.is_zero() {
            return Err(MoneyError::Negative(text.to_string()));
        }
        let normalized = value.normalize();
        if normalized.scale() > 2 {
            return Err(MoneyError::TooPrecise(text.to_string()));
        }
        let fen = normalized
            .checked_mul(Decimal::ONE_HUNDRED)
            .and_then(|fen| fen.to_i64())
            .ok_or_else(|| MoneyError::TooLarge(text.to_string()))?;
        Money::from_fen(fen).ok_or_else(|| MoneyError::TooLarge(text.to_string()))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(MoneyVisitor)
        } else {
            let fen = i64::deserialize(deserializer)?;
            Money::from_fen(fen).ok_or_else(|| de::Error::custom(format!("{fen} fen out of range")))
        }
    }
}

struct MoneyVisitor;

/// The key under which serde_json (feature `arbitrary_precision`, enabled
/// for the workspace) hands a number over as a one-entry map holding the
/// number's literal text, instead of rounding it to an f64.
const JSON_NUMBER_TOKEN: &str = "$serde_json::private::Number";

impl<'de> de::Visitor<'de> for MoneyVisitor {
    type Value = Money;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an amount in yuan with at most two decimals, such as \"280.00\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Money, E> {
        text.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Money, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Money, E> {
        self.visit_str(&value.to_string())
    }

    /// A JSON number, as its literal text: `400.00000000000001` and
    /// `0.1e-400` get the answer the same text gets in a string.
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Money, A::Error> {
        match map.next_key::<String>()? {
            Some(key) if key == JSON_NUMBER_TOKEN => {
                let literal: String = map.next_value()?;
                self.visit_str(&literal)
            }
            _ => Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
        }
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Money, E> {
        // serde_json calls this only where the literal is the float's own
        // shortest text (other numbers come as their literal, above); other
        // formats (TOML policies) give floats whose shortest text is what
        // the writer typed for amounts of fewer than 15 significant digits,
        // so 280.5 stays 280.5 and 280.123 is still refused.
        if !value.is_finite() {
            return Err(E::custom("amount is not a finite number"));
        }
        self.visit_str(&format!("{value}"))
    }
}

/// Splits `total` among parts weighted by `weights` so that the parts sum to
/// `total` exactly: each part gets the floor of its share, and the fen left
/// over go one each to the largest remainders (ties: the earlier part).
/// 最大余额法 (largest remainder).
pub fn split_largest_remainder(total: Money, weights: &[u32]) -> Option<Vec<Money>> {
    let weight_sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if weight_sum == 0 {
        return None;
    }
    let total_fen = u128::try_from(total.fen()).ok()?;
    let mut parts: Vec<u128> = Vec::with_capacity(weights.len());
    let mut remainders: Vec<(u128, usize)> = Vec::with_capacity(weights.len());
    for (index, &weight) in weights.iter().enumerate() {
        let numerator = total_fen * u128::from(weight);
        parts.push(numerator / u128::from(weight_sum));
        remainders.push((numerator % u128::from(weight_sum), index));
    }
    let assigned: u128 = parts.iter().sum();
    let left_over = usize::try_from(total_fen - assigned).ok()?;
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, index) in remainders.iter().take(left_over) {
        parts[index] += 1;
    }
    parts.into_iter().map(|fen| i64::try_from(fen).ok().and_then(Money::from_fen)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_to_the_fen_and_refuses_the_rest() {
        assert_eq!("280".parse::<Money>(), Ok(Money::from_fen(28000).expect("in range")));
        assert_eq!("280.5".parse::<Money>(), Ok(Money::from_fen(28050).expect("in range")));
        assert_eq!("0.01".parse::<Money>(), Ok(Money::from_fen(1).expect("in range")));
        assert_eq!("280.500".parse::<Money>(), Ok(Money::from_fen(28050).expect("in range")));
        assert!(matches!("280.123".parse::<Money>(), Err(MoneyError::TooPrecise(_))));
        assert!(matches!("-1".parse::<Money>(), Err(MoneyError::Negative(_))));
        assert!(matches!("abc".parse::<Money>(), Err(MoneyError::NotANumber(_))));
        assert!(matches!("1e400".parse::<Money>(), Err(MoneyError::NotANumber(_))));
        assert!(matches!("99999999999999999999".parse::<Money>(), Err(MoneyError::TooLarge(_))));
    }

    #[test]
    fn json_numbers_and_strings() {
        let m: Money = serde_json::from_str("280.5").expect("number");
        assert_eq!(m.fen(), 28050);
        let m: Money = serde_json::from_str("\"1070.00\"").expect("string");
        assert_eq!(m.fen(), 107000);
        assert!(serde_json::from_str::<Money>("0.001").is_err());
        assert!(serde_json::from_str::<Money>("-5").is_err());
        let m: Money = serde_json::from_str("400.00").expect("literal with trailing zeros");
        assert_eq!(m.fen(), 40000);
        assert_eq!(serde_json::to_string(&Money::from_yuan(280)).expect("ser"), "\"280.00\"");
    }

    /// A number is read from its literal text: what a string refuses, the
    /// same digits as a number are refused too, never rounded through f64.
    #[test]
    fn json_numbers_get_the_answer_their_text_gets_as_a_string() {
        for literal in ["400.00000000000001", "0.1e-400", "1e2", "1E+2", "280.123", "99999999999999999999.5", "-0.01"] {
            let as_string = serde_json::from_str::<Money>(&format!("\"{literal}\""));
            let as_number = serde_json::from_str::<Money>(literal);
            assert!(as_string.is_err(), "{literal} as a string");
            assert!(as_number.is_err(), "{literal} as a number: {as_number:?}");
            let value: serde_json::Value = serde_json::from_str(literal).expect("a JSON number");
            assert!(serde_json::from_value::<Money>(value).is_err(), "{literal} through a Value");
        }
        for (literal, fen) in [("400", 40000), ("400.5", 40050), ("400.50", 40050), ("0.01", 1), ("0", 0)] {
            assert_eq!(serde_json::from_str::<Money>(literal).map(Money::fen).ok(), Some(fen), "{literal}");
            let value: serde_json::Value = serde_json::from_str(literal).expect("a JSON number");
            assert_eq!(serde_json::from_value::<Money>(value).map(Money::fen).ok(), Some(fen), "{literal} via Value");
        }
    }

    #[test]
    fn five_two_three_split_of_twenty_yuan() {
        let parts = split_largest_remainder(Money::from_yuan(20), &[5, 2, 3]).expect("weights");
        assert_eq!(parts, vec![Money::from_yuan(10), Money::from_yuan(4), Money::from_yuan(6)]);
        let parts = split_largest_remainder(Money::from_fen(1).expect("fen"), &[5, 2, 3]).expect("weights");
        assert_eq!(parts.iter().map(|m| m.fen()).collect::<Vec<_>>(), vec![1, 0, 0]);
    }

    proptest! {
        #[test]
        fn split_parts_sum_to_the_whole(total in 0i64..10_000_000_000, weights in proptest::collection::vec(0u32..1000, 1..8)) {
            prop_assume!(weights.iter().any(|&w| w > 0));
            let total = Money::from_fen(total).expect("in range");
            let parts = split_largest_remainder(total, &weights).expect("weights");
            prop_assert_eq!(parts.len(), weights.len());
            prop_assert_eq!(parts.iter().map(|p| p.fen()).sum::<i64>(), total.fen());
            for (part, &weight) in parts.iter().zip(&weights) {
                if weight == 0 { prop_assert_eq!(part.fen(), 0); }
            }
        }

        #[test]
        fn display_parse_round_trip(fen in 0i64..Money::MAX_FEN) {
            let money = Money::from_fen(fen).expect("in range");
            prop_assert_eq!(money.to_string().parse::<Money>(), Ok(money));
        }
    }
}
