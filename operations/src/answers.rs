//! The answers the CLI's `--json` and the HTTP service both give: one type
//! per answer, so the two cannot drift apart field by field. Each derives
//! `utoipa::ToSchema` too: the service's OpenAPI document (`src/serve/openapi.rs`)
//! names it as the route's answer, and a test holds live answers to it.
use ledger::{BeijingTime, Money, RegionCode};
use projections::coverage::{CoverageState, UnpaidEntry};
use projections::family::{ProxyState, StuckApplication};
use serde::Serialize;
use utoipa::ToSchema;

/// `yibao family stuck --json` and `GET /v1/family/stuck`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct StuckAnswer {
    /// The instant the ages are measured at.
    pub now: BeijingTime,
    pub stuck: Vec<StuckListed>,
    /// In-flight applications with no stated duration to be held to.
    pub n_without_limit: usize,
    /// The service says how far its projections had read; the CLI reads to the head.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_position: Option<u64>,
}

/// One stuck application, IDs masked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct StuckListed {
    pub application_id: String,
    pub holder: String,
    pub member: String,
    pub coverage_year: u16,
    pub amount: Money,
    pub state: ProxyState,
    pub submitted_at: BeijingTime,
    pub age_hours: i64,
    pub limit_hours: i64,
    pub limit_from: String,
}

impl StuckAnswer {
    pub fn new(now: BeijingTime, found: &[StuckApplication], n_without_limit: usize) -> StuckAnswer {
        let stuck = found.iter().map(StuckListed::from).collect();
        StuckAnswer { now, stuck, n_without_limit, log_position: None }
    }
}

impl From<&StuckApplication> for StuckListed {
    fn from(s: &StuckApplication) -> StuckListed {
        StuckListed {
            application_id: s.application_id.clone(),
            holder: s.holder.masked(),
            member: s.member.masked(),
            coverage_year: s.coverage_year,
            amount: s.amount,
            state: s.state,
            submitted_at: s.submitted_at,
            age_hours: s.age_hours,
            limit_hours: s.limit_hours,
            limit_from: s.limit_from.clone(),
        }
    }
}

/// One entry of `yibao unpaid --json` and of `GET /v1/unpaid`'s `entries`:
/// the reminder list, the ID masked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct UnpaidListed {
    pub person: String,
    pub name: String,
    pub region: RegionCode,
    pub state: CoverageState,
    pub amount_due: Option<Money>,
    pub outstanding: Option<Money>,
}

impl From<&UnpaidEntry> for UnpaidListed {
    fn from(e: &UnpaidEntry) -> UnpaidListed {
        UnpaidListed {
            person: e.masked.clone(),
            name: e.name.clone(),
            region: e.region,
            state: e.state,
            amount_due: e.amount_due,
            outstanding: e.outstanding,
        }
    }
}
