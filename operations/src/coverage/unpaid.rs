//! `yibao unpaid` and `GET /v1/unpaid`: the reminder list of a region-year,
//! IDs masked. The command lists everything; the service pages.

use crate::answers::UnpaidListed;
use crate::error::{Classified, Kind, StorageError};
use ledger::RegionCode;
use projections::coverage::{Coverage, MoneyOutOfRange, PersonStore, StoreError};
use projections::Projection;
use serde::Serialize;

/// Which part of the list: page `number` (from 1) of `per_page` entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub number: usize,
    pub per_page: usize,
}

impl Page {
    /// The largest page a caller may ask for.
    pub const MAX_PER_PAGE: usize = 1000;
    /// Entries of a page when the caller names no size.
    pub const DEFAULT_PER_PAGE: usize = 100;

    /// A page as asked for (`None`: the first, of the default size).
    pub fn new(number: Option<usize>, per_page: Option<usize>) -> Result<Page, UnpaidError> {
        let number = number.unwrap_or(1);
        let per_page = per_page.unwrap_or(Page::DEFAULT_PER_PAGE);
        if number == 0 {
            return Err(UnpaidError::Page { field: "page", reason: "pages count from 1".into() });
        }
        if per_page == 0 || per_page > Page::MAX_PER_PAGE {
            let reason = format!("per_page is 1 to {}", Page::MAX_PER_PAGE);
            return Err(UnpaidError::Page { field: "per_page", reason });
        }
        Ok(Page { number, per_page })
    }

    /// The whole list on one page (the command line).
    pub fn everything() -> Page {
        Page { number: 1, per_page: usize::MAX }
    }
}

/// A page of the list; `n_total` counts the whole list. Fields in
/// alphabetical order, as the service has always written them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UnpaidPage {
    pub entries: Vec<UnpaidListed>,
    pub log_position: u64,
    pub n_total: usize,
    pub page: usize,
    pub per_page: usize,
}

/// Listing the unpaid failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnpaidError {
    #[error("{reason}")]
    Page { field: &'static str, reason: String },
    /// A figure of a person-year of the region is no amount of money: the
    /// list is not given without it, nor with it owing 0.00.
    #[error(transparent)]
    MoneyOutOfRange(#[from] MoneyOutOfRange),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Classified for UnpaidError {
    fn kind(&self) -> Kind {
        match self {
            UnpaidError::Page { .. } => Kind::BadInput,
            UnpaidError::MoneyOutOfRange(_) => Kind::Failure,
            UnpaidError::Storage(error) => error.kind(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            UnpaidError::Page { field, .. } => Some(field),
            UnpaidError::MoneyOutOfRange(_) | UnpaidError::Storage(_) => None,
        }
    }
}

/// The persons registered for `year` in `region` and not paid in full,
/// in the list's order, the page asked for.
pub fn unpaid(coverage: &Coverage, region: RegionCode, year: u16, page: Page) -> Result<UnpaidPage, UnpaidError> {
    let entries = coverage.unpaid(region, year)?;
    let listed = entries
        .iter()
        .skip(page.number.saturating_sub(1).saturating_mul(page.per_page))
        .take(page.per_page)
        .map(UnpaidListed::from)
        .collect();
    Ok(UnpaidPage {
        entries: listed,
        log_position: coverage.position(),
        n_total: entries.len(),
        page: page.number,
        per_page: page.per_page,
    })
}

/// Persons read from the store per step of a listing.
const PERSONS_PER_STEP: usize = 4096;

/// The unpaid list's page from the person store as `store` reads it (call
/// it in one snapshot, `PersonStore::in_snapshot`, while others write):
/// the persons walked in key order a step at a time, so memory is a
/// step's, not the ledger's; time grows with the persons, as the count of
/// the whole list needs the whole walk.
pub fn unpaid_in_store(
    store: &PersonStore,
    region: RegionCode,
    year: u16,
    page: Page,
) -> Result<Result<UnpaidPage, MoneyOutOfRange>, StoreError> {
    let base = store.coverage_of_many(&[])?;
    let skip = page.number.saturating_sub(1).saturating_mul(page.per_page);
    let mut listed = UnpaidPage {
        entries: Vec::new(),
        log_position: base.position(),
        n_total: 0,
        page: page.number,
        per_page: page.per_page,
    };
    let mut after: Option<String> = None;
    loop {
        let mut step = base.at_tip(base.tip());
        let Some(last) = store.add_persons_after(&mut step, after.as_deref(), PERSONS_PER_STEP)? else { break };
        let entries = match step.unpaid(region, year) {
            Ok(entries) => entries,
            Err(error) => return Ok(Err(error)),
        };
        for entry in &entries {
            if listed.n_total >= skip && listed.entries.len() < page.per_page {
                listed.entries.push(entry.into());
            }
            listed.n_total += 1;
        }
        after = Some(last);
    }
    Ok(Ok(listed))
}
