//! `yibao coverage --json` and `GET /v1/coverage/{id}`: one answer, IDs
//! masked, no birth date. Fields are declared in alphabetical order, the
//! order the service has always written them in (`src/serve/lookup.rs`
//! writes this type straight to bytes; a test there holds the two equal).

use super::CoverageQuery;
use ledger::event::EnrolmentBasis;
use ledger::{Date, Money, RegionCode};
use projections::coverage::{
    Coverage, CoverageState, MoneyOutOfRange, Paid, PersonSummary, PersonYear, Refunds, SplitView,
};
use projections::Projection;
use serde::Serialize;

/// A person's coverage years, at the log position the figures reflect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CoverageAnswer {
    /// The hash of the record at `log_position`, 64 hex digits.
    pub head_hash: String,
    pub log_position: u64,
    pub person: PersonListed,
    pub years: Vec<YearEntry>,
}

/// The person as registered, IDs masked, without the birth date (the mask
/// hides it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PersonListed {
    pub basis: Option<EnrolmentBasis>,
    /// Earlier identities (a newborn's birth certificate), masked.
    pub former: Vec<String>,
    /// The identity the person is known by now, masked.
    pub id: String,
    pub name: Option<String>,
    pub region: Option<RegionCode>,
    pub registered: bool,
    pub registered_on: Option<Date>,
    pub voided_on: Option<Date>,
}

/// One coverage year, and whether the day asked (if one was) is covered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct YearEntry {
    pub covered_on: Option<(Date, bool)>,
    pub year: YearFigures,
}

/// A person-year's figures (`PersonYear`), the ID masked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct YearFigures {
    pub amount_due: Option<Money>,
    pub awaiting: Option<String>,
    pub coverage_year: u16,
    pub covered_from: Option<Date>,
    pub covered_until: Option<Date>,
    pub excess: Money,
    pub fiscal_subsidy: Option<Money>,
    pub in_flight: Money,
    pub net_received: Money,
    pub notes: Vec<String>,
    pub outstanding: Option<Money>,
    pub paid: Paid,
    pub payment_class: Option<&'static str>,
    pub person: String,
    pub policy_region: Option<RegionCode>,
    pub premium_due: Option<Money>,
    pub proxy_returned: Money,
    pub refunds: Refunds,
    pub state: CoverageState,
    pub subsidy_due: Money,
    pub subsidy_split: Option<SplitView>,
}

/// `Ok(None)`: nobody in `coverage` has the ID. A year with a figure that
/// is no amount of money fails the whole answer, naming that year.
pub(super) fn build(coverage: &Coverage, query: &CoverageQuery) -> Result<Option<CoverageAnswer>, MoneyOutOfRange> {
    let Some(person) = coverage.person(&query.person) else { return Ok(None) };
    let years = match query.year {
        Some(year) => vec![year],
        None => coverage.years_of(&query.person),
    };
    let mut entries = Vec::with_capacity(years.len());
    for year in years {
        let Some(view) = coverage.person_year_as_of(&query.person, year, query.on)? else { continue };
        entries.push(YearEntry {
            covered_on: query.on.map(|day| (day, view.is_covered_on(day))),
            year: YearFigures::from(view),
        });
    }
    Ok(Some(CoverageAnswer {
        head_hash: hex::encode(coverage.head_hash()),
        log_position: coverage.position(),
        person: PersonListed::from(person),
        years: entries,
    }))
}

impl From<PersonSummary> for PersonListed {
    fn from(summary: PersonSummary) -> PersonListed {
        // Without `..`: a new field of the summary is placed here, or
        // named as left out, before it compiles.
        let PersonSummary { current, former, registered, name, region, birth_date: _, registered_on, basis, voided_on } =
            summary;
        PersonListed {
            basis,
            former: former.iter().map(ledger::Identity::masked).collect(),
            id: current.masked(),
            name,
            region,
            registered,
            registered_on,
            voided_on,
        }
    }
}

impl From<PersonYear> for YearFigures {
    fn from(view: PersonYear) -> YearFigures {
        let PersonYear {
            person,
            coverage_year,
            state,
            policy_region,
            payment_class,
            premium_due,
            subsidy_due,
            amount_due,
            fiscal_subsidy,
            paid,
            refunds,
            net_received,
            outstanding,
            excess,
            in_flight,
            proxy_returned,
            awaiting,
            subsidy_split,
            covered_from,
            covered_until,
            notes,
        } = view;
        YearFigures {
            amount_due,
            awaiting,
            coverage_year,
            covered_from,
            covered_until,
            excess,
            fiscal_subsidy,
            in_flight,
            net_received,
            notes,
            outstanding,
            paid,
            payment_class,
            person: person.masked(),
            policy_region,
            premium_due,
            proxy_returned,
            refunds,
            state,
            subsidy_due,
            subsidy_split,
        }
    }
}
