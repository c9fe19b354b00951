//! Region-year policies (地区年度政策): the figures and coverage rules of one
//! pooling region (统筹区) for one coverage year, read from a TOML document
//! (the `document` of `PolicyPublished` / `PolicyAmended`).
//!
//! Data flows one way: TOML text → `file` (serde counterpart, unknown fields
//! refused) → `convert` (validation; errors name field and line) →
//! [`Policy`] → `rules` and `hardship` (pure functions the coverage
//! projection calls). Rule *kinds* are code ([`CoverageStart`], [`Window`],
//! [`Pays`]); their parameters are data in the document.
//!
//! ```text
//! let policy = Policy::from_toml(&event.document)?;
//! let assessment = policy.assess(paid_at.business_date(), &facts);
//! let subsidy = policy.hardship_subsidy(&facts.hardship_groups)?;
//! ```

mod canonical;
mod convert;
mod error;
mod file;
mod hardship;
mod model;
mod rules;

pub use error::{PolicyError, Problem, RuleError};
pub use hardship::{split_by_ratio, HardshipSubsidy, SubsidySplit};
pub use model::{
    funder_key, AssessmentRules, Concentrated, County, CountyClass, CountyClassRatio, CoverageStart, EmployeeTransfer,
    Exemption, FamilyAccount, Funding, GroupOnePayment, Hardship, HardshipGroup, Interrupted, Newborn, OnePayment,
    OpenPeriod, PayerGroup, Pays, Period, Policy, Premium, PremiumBand, Ratio, RatioError, Relations, Source, Sporadic,
    Subsidy, Tranche, TrancheAmount, Window, MAX_PROCESSING_DAYS, MAX_RATIO_TOTAL,
};
pub use rules::{
    first_covered_day, month_start_after, window_last_day, AmountDue, Assessment, Closed, CoveredFrom, PaymentClass,
    PersonFacts, Ruling,
};

use ledger::RegionCode;

impl Policy {
    /// Parses and validates a policy document.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        convert::parse(text)
    }

    /// Parses the document of a policy event and checks that it is about
    /// the event's region and coverage year.
    pub fn from_document(region: RegionCode, coverage_year: u16, text: &str) -> Result<Policy, PolicyError> {
        let policy = Policy::from_toml(text)?;
        if policy.key() != (region, coverage_year) {
            return Err(PolicyError::KeyMismatch { expected: (region, coverage_year), found: policy.key() });
        }
        Ok(policy)
    }
}
