//! The auditor's replay of a coverage year: every projection rebuilt from
//! the log alone, as known at a moment of transaction time, the year's
//! report with its digest, and (on request) the drift check of the live
//! projection against the rebuild. `yibao replay` and the service's audit
//! jobs both run it and both answer with [`Replayed`].

use crate::error::{Classified, Kind, StorageError};
use crate::handle::Ledger;
use ledger::{Date, LogReader, RegionCode, UtcTime};
use projections::coverage::{Coverage, MoneyOutOfRange};
use projections::Projection;
use replay::audit::{self, AuditReport, Drift, Rebuilt};
use serde::Serialize;

/// What a replay is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayInput {
    pub coverage_year: u16,
    /// A county, prefecture or province (all regions when `None`).
    pub region: Option<RegionCode>,
    /// Only facts recorded by then (transaction time); every fact when `None`.
    pub as_of: Option<UtcTime>,
    /// Count who is covered that day (valid time).
    pub on: Option<Date>,
    /// Compare the live projection with the rebuild, person-year by
    /// person-year. Only without `as_of`: the live projection knows now.
    pub check: bool,
}

/// The answer of a replay: the year's report, and the drift check when one
/// was asked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Replayed {
    #[serde(flatten)]
    pub report: AuditReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftCheck>,
    /// How long the rebuild took (for the text report; not in JSON).
    #[serde(skip)]
    pub rebuild_seconds: f64,
}

/// The drift check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum DriftCheck {
    /// The person-years where the live projection differs from the rebuild
    /// (none: they agree).
    Compared { n_differing: usize, person_years: Vec<Drift> },
    /// The live projection had moved past the rebuild's position.
    Skipped { skipped: &'static str },
}

impl DriftCheck {
    /// The person-years that differ (none when skipped).
    pub fn differing(&self) -> &[Drift] {
        match self {
            DriftCheck::Compared { person_years, .. } => person_years,
            DriftCheck::Skipped { .. } => &[],
        }
    }
}

/// A replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The drift check compares with the live projection, which knows now.
    #[error("{flag} compares with the live projection: leave out {as_of}", flag = .0.check, as_of = .0.as_of)]
    CheckWithAsOf(FlagNames),
    /// A person-year's figure is no amount of money: the log or the
    /// derivation is at fault, and the audit says so rather than count 0.00.
    #[error("the year's figures cannot be derived")]
    Money(#[source] MoneyOutOfRange),
    #[error("rebuilding from the log")]
    Storage(#[from] StorageError),
}

/// How the frontend names the check and as-of inputs (`--check`, `check`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlagNames {
    pub check: &'static str,
    pub as_of: &'static str,
}

impl Classified for ReplayError {
    fn kind(&self) -> Kind {
        match self {
            ReplayError::CheckWithAsOf(_) => Kind::BadInput,
            ReplayError::Money(_) => Kind::Failure,
            ReplayError::Storage(error) => error.kind(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ReplayError::CheckWithAsOf(names) => Some(names.check),
            _ => None,
        }
    }
}

/// Refuses what cannot be answered before any work: a check as of a moment.
pub fn check_input(input: &ReplayInput, names: FlagNames) -> Result<(), ReplayError> {
    if input.check && input.as_of.is_some() {
        return Err(ReplayError::CheckWithAsOf(names));
    }
    Ok(())
}

/// Every projection rebuilt into fresh state from the records recorded by
/// `as_of`; `progress` hears the records folded so far.
pub fn rebuild(
    log: &dyn LogReader,
    as_of: Option<UtcTime>,
    progress: &mut dyn FnMut(u64),
) -> Result<Rebuilt, StorageError> {
    Ok(audit::rebuild_as_of(log, as_of, progress)?)
}

/// Rebuilds and reports the year (no drift check: see [`check_drift`]).
/// Returns the rebuild too, for the check.
pub fn replay(
    log: &dyn LogReader,
    input: &ReplayInput,
    progress: &mut dyn FnMut(u64),
) -> Result<(Replayed, Rebuilt), ReplayError> {
    let started = std::time::Instant::now();
    let rebuilt = rebuild(log, input.as_of, progress)?;
    let rebuild_seconds = started.elapsed().as_secs_f64();
    let mut report =
        audit::report(&rebuilt, input.coverage_year, input.region, input.on).map_err(ReplayError::Money)?;
    report.as_of = input.as_of;
    Ok((Replayed { report, drift: None, rebuild_seconds }, rebuilt))
}

/// The live projection against the rebuild, at the rebuild's position
/// only: a live projection that moved on is not compared.
pub fn check_drift(live: &Coverage, rebuilt: &Rebuilt, input: &ReplayInput) -> Result<DriftCheck, ReplayError> {
    if live.position() != rebuilt.position {
        return Ok(DriftCheck::Skipped { skipped: "the log moved during the replay; run the check again" });
    }
    let person_years =
        audit::drift(live, &rebuilt.coverage, input.coverage_year, input.region).map_err(ReplayError::Money)?;
    Ok(DriftCheck::Compared { n_differing: person_years.len(), person_years })
}

impl Ledger {
    /// The replay of `input` over this ledger, with the drift check against
    /// the checkpointed projection caught up with the log when asked.
    pub fn replay(
        &self,
        input: &ReplayInput,
        names: FlagNames,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Replayed, ReplayError> {
        check_input(input, names)?;
        let (mut replayed, rebuilt) = replay(self.log(), input, progress)?;
        if input.check {
            let live = self.coverage()?;
            replayed.drift = Some(check_drift(&live, &rebuilt, input)?);
        }
        Ok(replayed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_as_of_a_moment_is_bad_input_naming_the_flag() {
        let input = ReplayInput { coverage_year: 2025, region: None, as_of: Some(UtcTime(0)), on: None, check: true };
        let error = check_input(&input, FlagNames { check: "--check", as_of: "--as-of" }).expect_err("refused");
        assert_eq!(error.kind(), Kind::BadInput);
        assert_eq!(error.field(), Some("--check"));
        assert_eq!(error.to_string(), "--check compares with the live projection: leave out --as-of");
    }
}
