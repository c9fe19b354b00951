//! `yibao assess`: the insurance office's 核定 of what a person in
//! hardship groups owes, from the policy in the log (the highest group
//! applies, never the sum), recorded through `record`: the same decision
//! (`family::decide`, `Coverage::check_assessment`) an import line or a
//! posted fact gets.

use crate::error::{Classified, Kind, StorageError};
use crate::handle::{Ledger, RecordError, Recorded};
use ledger::event::HardshipAssessed;
use ledger::{Date, Event, Identity, Money, RegionCode};
use projections::coverage::Coverage;

/// Who, which year, the groups the office found, and the day of the
/// assessment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssessmentQuery {
    pub person: Identity,
    pub coverage_year: u16,
    pub groups: Vec<String>,
    pub assessed_on: Date,
}

/// An assessment recorded (or found recorded already).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Assessed {
    /// The group whose subsidy applies.
    pub group: String,
    pub subsidy: Money,
    pub person_pays: Money,
    pub position: u64,
    /// False: the same assessment was in force; nothing was appended.
    pub appended: bool,
}

/// An assessment that cannot be made or recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssessError {
    #[error("{masked} is not registered; register the person first")]
    NotRegistered { masked: String },
    #[error("the registration names no region")]
    NoRegion,
    #[error("no policy for region {region} and {coverage_year} in the log; `yibao policy load` it")]
    NoPolicy { region: RegionCode, coverage_year: u16 },
    /// A group the policy does not know, or no hardship table.
    #[error("{0}")]
    Group(String),
    /// No group given, or only groups no longer subsidised.
    #[error("give at least one group")]
    NoGroup,
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Classified for AssessError {
    fn kind(&self) -> Kind {
        match self {
            AssessError::NotRegistered { .. }
            | AssessError::NoRegion
            | AssessError::NoPolicy { .. }
            | AssessError::Group(_)
            | AssessError::NoGroup => Kind::BadInput,
            AssessError::Record(error) => error.kind(),
            AssessError::Storage(error) => error.kind(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            AssessError::NotRegistered { .. } => Some("person"),
            AssessError::NoPolicy { .. } => Some("coverage_year"),
            AssessError::Group(_) | AssessError::NoGroup => Some("group"),
            AssessError::Record(error) => error.field(),
            AssessError::NoRegion | AssessError::Storage(_) => None,
        }
    }
}

/// The assessment the policy gives for `query`, not yet decided or
/// recorded.
pub fn assessment_of(coverage: &Coverage, query: &AssessmentQuery) -> Result<HardshipAssessed, AssessError> {
    let person = coverage
        .person(&query.person)
        .filter(|p| p.registered)
        .ok_or_else(|| AssessError::NotRegistered { masked: query.person.masked() })?;
    let region = person.region.ok_or(AssessError::NoRegion)?;
    let coverage_year = query.coverage_year;
    let policy = coverage.policy(region, coverage_year).ok_or(AssessError::NoPolicy { region, coverage_year })?;
    let subsidy = policy
        .hardship_subsidy(&query.groups)
        .map_err(|e| AssessError::Group(e.to_string()))?
        .ok_or(AssessError::NoGroup)?;
    Ok(HardshipAssessed {
        person: person.current,
        coverage_year,
        group: subsidy.group,
        subsidy: subsidy.amount,
        amount_due: subsidy.person_pays,
        assessed_on: query.assessed_on,
    })
}

impl Ledger {
    /// Assesses and records through `record`: refused with the rule's
    /// reason where the rules close the special path; the assessment in
    /// force again is a repeat.
    pub fn assess(&self, query: &AssessmentQuery, actor: &str) -> Result<Assessed, AssessError> {
        let at = self.projections_of_person(&query.person, &[])?;
        let assessment = assessment_of(&at.coverage, query)?;
        let (group, subsidy, person_pays) = (assessment.group.clone(), assessment.subsidy, assessment.amount_due);
        let recorded = self.record(&at, Event::HardshipAssessedV1(assessment), actor)?;
        let appended = matches!(recorded, Recorded::Appended { .. });
        Ok(Assessed { group, subsidy, person_pays, position: recorded.position(), appended })
    }
}
