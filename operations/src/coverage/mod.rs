//! What an insurance office asks of the ledger about persons: a person's
//! coverage (now, one year, on a day, or as known at an instant), their
//! history, the unpaid list of a region-year, and the hardship assessment
//! (核定) it records. Each answer is one serde type that `yibao … --json`
//! and the service's route both give.
//!
//! Two ways of reading a person's facts answer the same (invariant 12):
//! a fold or scan of the whole log (`Ledger::coverage_of`,
//! `Ledger::history`: the command line, an auditor's view), and a read of
//! the person's own streams through the ledger's stream index
//! (`answer_as_of`, `history_of_streams`: the service, at the cost of the
//! person's facts).

mod answer;
mod assess;
mod history;
mod streams;
#[cfg(test)]
mod tests;
mod unpaid;

pub use answer::{CoverageAnswer, PersonListed, YearEntry, YearFigures};
pub use assess::{assessment_of, AssessError, Assessed, AssessmentQuery};
pub use history::{HistoryAnswer, HistoryFact};
pub use streams::{concerns, history_by_streams, person_as_of};
pub use unpaid::{unpaid, unpaid_in_store, Page, UnpaidError, UnpaidPage};

use crate::error::{Classified, Kind, StorageError};
use crate::handle::Ledger;
use ledger::{Date, Identity, LogReader, UtcTime};
use projections::coverage::{Coverage, MoneyOutOfRange};
use projections::family::Family;

/// Whose coverage, which years, and whether a day is covered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoverageQuery {
    pub person: Identity,
    /// Only this coverage year (a known person gets it even without facts:
    /// what is due); `None`: every year with facts.
    pub year: Option<u16>,
    /// Whether this day is covered, and the figures as of it.
    pub on: Option<Date>,
}

/// A lookup of a person failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// Nobody in the ledger (as of `as_of`, when given) has the ID, under
    /// any identity they had, and no fact names it.
    #[error("no person with ID {masked} in the ledger{}", as_of_words(.as_of))]
    UnknownPerson { masked: String, as_of: Option<UtcTime> },
    /// A figure of one of the person's years is no amount of money: a
    /// defect of the log or of the derivation, never answered as 0.00.
    #[error(transparent)]
    MoneyOutOfRange(#[from] MoneyOutOfRange),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn as_of_words(as_of: &Option<UtcTime>) -> String {
    as_of.map(|moment| format!(" as of {moment} (facts recorded by then)")).unwrap_or_default()
}

impl LookupError {
    fn unknown(person: &Identity, as_of: Option<UtcTime>) -> LookupError {
        LookupError::UnknownPerson { masked: person.masked(), as_of }
    }
}

impl Classified for LookupError {
    fn kind(&self) -> Kind {
        match self {
            LookupError::UnknownPerson { .. } => Kind::NotFound,
            LookupError::MoneyOutOfRange(_) => Kind::Failure,
            LookupError::Storage(error) => error.kind(),
        }
    }
}

impl From<ledger::LedgerError> for LookupError {
    fn from(error: ledger::LedgerError) -> LookupError {
        LookupError::Storage(StorageError::Ledger(error))
    }
}

/// The answer from `coverage`, whatever position it reflects.
pub fn answer(coverage: &Coverage, query: &CoverageQuery) -> Result<CoverageAnswer, LookupError> {
    answer::build(coverage, query)?.ok_or_else(|| LookupError::unknown(&query.person, None))
}

/// What was known of the person at `moment` (transaction time), from a
/// fold of the facts recorded by then on the person's streams and the
/// policy streams (`person_as_of`); `live` and `family` reflect the log
/// at one position and name those streams.
pub fn answer_as_of(
    log: &dyn LogReader,
    live: &Coverage,
    family: &Family,
    query: &CoverageQuery,
    moment: UtcTime,
) -> Result<CoverageAnswer, LookupError> {
    let coverage = person_as_of(log, live, family, &query.person, moment)?;
    answer::build(&coverage, query)?.ok_or_else(|| LookupError::unknown(&query.person, Some(moment)))
}

impl Ledger {
    /// The person's coverage at the log's head or, with `as_of`, as known
    /// then: a rebuild of every fact recorded by then (the auditor's view,
    /// which `answer_as_of` equals for the person).
    pub fn coverage_of(&self, query: &CoverageQuery, as_of: Option<UtcTime>) -> Result<CoverageAnswer, LookupError> {
        let Some(moment) = as_of else {
            return answer(&self.person_coverage(&query.person)?, query);
        };
        let log: &dyn LogReader = self.log();
        let bar = crate::progress::bar(log.durable_head().position, "replay");
        let rebuilt = replay::audit::rebuild_as_of(log, Some(moment), &mut |n| bar.set_position(n))?;
        bar.finish_and_clear();
        answer::build(&rebuilt.coverage, query)?.ok_or_else(|| LookupError::unknown(&query.person, Some(moment)))
    }

    /// Every fact about the person, under every identity they had, in log
    /// order: the person and their family records from the person store,
    /// their facts through the stream index (the service's answer too).
    pub fn history(&self, person: &Identity) -> Result<HistoryAnswer, LookupError> {
        let at = self.projections_of_person(person, &[])?;
        history_of_streams(self.log(), &at.coverage, &at.family, person)
    }

    /// [`Ledger::history`] found by reading every record of the log up to
    /// the head, not through the stream index: the auditor's cross-check.
    pub fn history_scanned(&self, person: &Identity) -> Result<HistoryAnswer, LookupError> {
        let at = self.projections_of_person(person, &[])?;
        history::scanned(self.log(), &at.coverage, person)
    }

    /// The region-year's persons registered and not paid in full, IDs
    /// masked, at the log's head.
    /// Read from the person store at the head, a step of persons at a
    /// time (`unpaid_in_store`), as the service reads it.
    pub fn unpaid(&self, region: ledger::RegionCode, year: u16) -> Result<UnpaidPage, UnpaidError> {
        match self.read_store(|store| unpaid_in_store(store, region, year, Page::everything()))? {
            Some(listed) => Ok(listed?),
            None => unpaid(&self.coverage()?, region, year, Page::everything()),
        }
    }
}

/// The history of `person` read through the stream index (see
/// `history_by_streams`), against projections at one position.
pub fn history_of_streams(
    log: &dyn LogReader,
    coverage: &Coverage,
    family: &Family,
    person: &Identity,
) -> Result<HistoryAnswer, LookupError> {
    history::of_streams(log, coverage, family, person)
}
