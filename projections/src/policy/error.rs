//! Why a policy document is refused, and why a rule cannot answer.

use ledger::{Date, Money, RegionCode};
use std::fmt;

/// A policy document that cannot become a [`Policy`](super::Policy). Every
/// variant names the field; `line` is given where the TOML parser kept the
/// position (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// Not TOML, or a value of the wrong type or shape (an unknown field, a
    /// negative amount or one with three decimals, a missing field).
    Syntax { field: String, line: Option<usize>, column: Option<usize>, message: String },
    /// Well-formed, but breaks a rule of policies.
    Invalid { field: String, line: Option<usize>, problem: Problem },
    /// The document names another region-year than the event carrying it.
    KeyMismatch { expected: (RegionCode, u16), found: (RegionCode, u16) },
    /// Larger than a policy event may carry.
    TooLarge { size_bytes: usize, limit_bytes: usize },
}

impl PolicyError {
    /// The field the error is about (`""` for the whole document).
    pub fn field(&self) -> &str {
        match self {
            PolicyError::Syntax { field, .. } | PolicyError::Invalid { field, .. } => field,
            PolicyError::KeyMismatch { .. } => "region",
            PolicyError::TooLarge { .. } => "",
        }
    }

    pub fn line(&self) -> Option<usize> {
        match self {
            PolicyError::Syntax { line, .. } | PolicyError::Invalid { line, .. } => *line,
            _ => None,
        }
    }

    pub fn problem(&self) -> Option<&Problem> {
        match self {
            PolicyError::Invalid { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Syntax { field, line, column, message } => {
                f.write_str("policy document")?;
                if let Some(line) = line {
                    write!(f, ", line {line}")?;
                    if let Some(column) = column {
                        write!(f, ", column {column}")?;
                    }
                }
                if !field.is_empty() {
                    write!(f, ", field `{field}`")?;
                }
                write!(f, ": {message}")
            }
            PolicyError::Invalid { field, line, problem } => {
                f.write_str("policy document")?;
                if let Some(line) = line {
                    write!(f, ", line {line}")?;
                }
                write!(f, ", field `{field}`: {problem}")
            }
            PolicyError::KeyMismatch { expected, found } => write!(
                f,
                "policy document, field `region`/`coverage_year`: the document is for {}/{}, the event for {}/{}",
                found.0, found.1, expected.0, expected.1
            ),
            PolicyError::TooLarge { size_bytes, limit_bytes } => {
                write!(f, "policy document is {size_bytes} bytes, above the limit of {limit_bytes}")
            }
        }
    }
}

impl std::error::Error for PolicyError {}

/// What is wrong with a well-formed field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("`{0}` is not a region code: 6 digits, a province of China, ending in 00 for a pooling region")]
    Region(String),
    #[error("county `{code}` is not a county-level code inside region {region}")]
    CountyOutsideRegion { code: String, region: RegionCode },
    #[error("{found} is not the coverage year {expected}")]
    YearMismatch { expected: u16, found: String },
    #[error("{0} is not a coverage year (2000..=2100)")]
    Year(i64),
    #[error("`{0}` is not a date: write a TOML local date such as 2021-03-31")]
    NotADate(String),
    #[error("starts on {from}, after its end {until}")]
    PeriodReversed { from: Date, until: Date },
    #[error("overlaps `{other}`")]
    Overlap { other: String },
    #[error("full premium {full} is not individual {individual} + fiscal subsidy {fiscal}")]
    FullPremiumMismatch { full: Money, individual: Money, fiscal: Money },
    #[error("subsidy {subsidy} is above the individual standard {individual}")]
    SubsidyAboveStandard { subsidy: Money, individual: Money },
    #[error("person pays {person_pays} but individual {individual} − subsidy {subsidy} is {expected}")]
    PersonPaysMismatch { person_pays: Money, individual: Money, subsidy: Money, expected: Money },
    #[error("tranches sum to {sum}, not to the subsidy {subsidy}")]
    TranchesDoNotSum { sum: Money, subsidy: Money },
    #[error("{0}")]
    Ratio(#[from] super::model::RatioError),
    #[error("rule `{kind}` needs `{parameter}`")]
    MissingParameter { kind: String, parameter: &'static str },
    #[error("rule `{kind}` does not take `{parameter}`")]
    UnexpectedParameter { kind: String, parameter: &'static str },
    #[error("unknown rule kind `{kind}`: use one of {known}")]
    UnknownKind { kind: String, known: &'static str },
    #[error("{0}")]
    Choose(&'static str),
    #[error("must be at least {min}")]
    TooSmall { min: u32 },
    #[error("must be at most {max}")]
    TooLarge { max: u32 },
    #[error("`{0}` is given twice")]
    Duplicate(String),
    #[error("{0}")]
    Relation(String),
    #[error("unknown county class `{0}`")]
    UnknownCountyClass(String),
    #[error("must not be empty")]
    Empty,
    #[error("more than {0} entries")]
    TooMany(usize),
    #[error("longer than {limit_bytes} bytes")]
    TooLong { limit_bytes: usize },
}

/// A question a policy cannot answer for the facts given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The person holds a hardship group but the policy has no table (its
    /// subsidy is not known: an assessment stays open).
    #[error("the {region}/{coverage_year} policy has no hardship table")]
    NoHardshipTable { region: RegionCode, coverage_year: u16 },
    /// A certified group the table does not list.
    #[error("hardship group `{group}` is not in the {region}/{coverage_year} policy")]
    UnknownGroup { group: String, region: RegionCode, coverage_year: u16 },
}
