//! The serde-facing counterpart of a policy document (TOML). Nothing here is
//! validated beyond types: `convert` turns it into [`Policy`](super::Policy)
//! explicitly, naming the field and line of every problem. The same types,
//! filled from a `Policy`, give the canonical serialization.

use ledger::Money;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use toml::value::Datetime;
use toml::Spanned;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyFile {
    pub region: Spanned<String>,
    pub region_name: String,
    pub coverage_year: Spanned<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub source: SourceFile,
    pub premium: Spanned<PremiumFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Spanned<PeriodFile>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concentrated: Option<ConcentratedFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sporadic: Option<SporadicFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<InterruptedFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_transfer: Option<EmployeeTransferFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newborn: Option<NewbornFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardship: Option<HardshipFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessment: Option<AssessmentFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_account: Option<Spanned<FamilyAccountFile>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceFile {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_on: Option<Spanned<Datetime>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PremiumFile {
    pub individual: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fiscal_subsidy: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<Spanned<Money>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_one_payment: bool,
    /// `[[premium.in_one_payment_for]]`: one payment for a group only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_one_payment_for: Vec<Spanned<OnePaymentFile>>,
}

/// A group that pays its year in one payment, on payments within the dates.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OnePaymentFile {
    pub group: PayerGroupFile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_from: Option<Spanned<Datetime>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_until: Option<Spanned<Datetime>>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PayerGroupFile {
    Concentrated,
    Sporadic,
    Newborn,
    NewbornInWindow,
    NewbornLate,
    Interrupted,
    EmployeeTransfer,
    Hardship,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeriodFile {
    pub from: Spanned<Datetime>,
    pub until: Spanned<Datetime>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConcentratedFile {
    pub periods: Vec<Spanned<PeriodFile>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_until_for_hardship: Option<Spanned<Datetime>>,
    pub coverage: Spanned<RuleFile>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SporadicFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Spanned<PeriodFile>>,
    pub coverage: Spanned<RuleFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exempt: Vec<ExemptionFile>,
    pub premium: Vec<Spanned<BandFile>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BandFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_from: Option<Spanned<Datetime>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_until: Option<Spanned<Datetime>>,
    pub pays: PaysFile,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PaysFile {
    Individual,
    Full,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ExemptionFile {
    Newborn,
    Hardship,
}

/// A coverage-start rule: a kind and its parameters, checked in `convert`
/// so that a missing or stray parameter is named.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleFile {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_days: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub months_after: Option<u8>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InterruptedFile {
    pub min_gap_years: u16,
    pub coverage: Spanned<RuleFile>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmployeeTransferFile {
    pub coverage: Spanned<RuleFile>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewbornFile {
    pub window: Spanned<WindowFile>,
    pub pays: PaysFile,
    pub in_window_coverage: Spanned<RuleFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_coverage: Option<Spanned<RuleFile>>,
    #[serde(default)]
    pub back_payment: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_registration_lapse: Option<Spanned<WindowFile>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub months: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u16>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HardshipFile {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub county_classes: Vec<Spanned<CountyClassFile>>,
    pub groups: Vec<Spanned<GroupFile>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CountyClassFile {
    pub id: String,
    pub name: String,
    pub counties: Vec<Spanned<CountyFile>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CountyFile {
    pub code: String,
    pub name: String,
}

/// A hardship group. Its funding is exactly one of `ratio`,
/// `by_county_class`, `funding_unstated` (the whole subsidy as one tranche)
/// or `tranches`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupFile {
    pub id: String,
    pub name: String,
    pub subsidy: Spanned<AmountWord>,
    /// The source's "个人缴费标准", checked against individual − subsidy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_pays: Option<Spanned<Money>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<Spanned<RatioFile>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_county_class: Option<Vec<Spanned<ByClassFile>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funding_unstated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tranches: Option<Vec<Spanned<TrancheFile>>>,
}

/// A part of a group's subsidy: exactly one of `ratio`, `by_county_class`,
/// `funding_unstated`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrancheFile {
    pub amount: AmountWord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<Spanned<RatioFile>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_county_class: Option<Vec<Spanned<ByClassFile>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funding_unstated: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ByClassFile {
    pub county_class: String,
    pub ratio: Spanned<RatioFile>,
}

/// Shares by funder, e.g. `{ province = 5, city = 2, county = 3 }`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RatioFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub province: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub county: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medical_assistance_fund: Option<u32>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssessmentFile {
    pub special_path_closes_after_normal_payment: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advised_payment_delay_days: Option<u16>,
}

/// 职工医保个人账户家庭共济代缴: what the region says about proxy payments
/// from an employee's personal account.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FamilyAccountFile {
    pub same_province_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_days: Option<u16>,
    /// The relations an account may pay for this year (default: every
    /// near relative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relations: Option<Spanned<Vec<String>>>,
}

/// An amount in yuan, or the words `full` (the whole individual standard)
/// and `none` (not subsidised).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AmountWord {
    Amount(Money),
    Full,
    None,
}

impl Serialize for AmountWord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            AmountWord::Amount(money) => money.serialize(serializer),
            AmountWord::Full => serializer.serialize_str("full"),
            AmountWord::None => serializer.serialize_str("none"),
        }
    }
}

impl<'de> Deserialize<'de> for AmountWord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AmountWord, D::Error> {
        deserializer.deserialize_any(AmountWordVisitor)
    }
}

struct AmountWordVisitor;

impl AmountWordVisitor {
    fn money<E: de::Error>(text: &str) -> Result<AmountWord, E> {
        text.parse::<Money>().map(AmountWord::Amount).map_err(E::custom)
    }
}

impl de::Visitor<'_> for AmountWordVisitor {
    type Value = AmountWord;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an amount in yuan (\"140\", \"0.01\"), \"full\" or \"none\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<AmountWord, E> {
        match text.trim() {
            "full" => Ok(AmountWord::Full),
            "none" => Ok(AmountWord::None),
            other => Self::money(other),
        }
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<AmountWord, E> {
        Self::money(&value.to_string())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<AmountWord, E> {
        Self::money(&value.to_string())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<AmountWord, E> {
        if !value.is_finite() {
            return Err(E::custom("amount is not a finite number"));
        }
        Self::money(&format!("{value}"))
    }
}
