//! Family accounts (家庭共济) over HTTP: bindings, proxy applications and
//! their steps, a person's family view, and the stuck list (the payment
//! certificate is in `certificate.rs`). Each write is built as the typed fact the CLI would record
//! and goes through `App::append` (the same checks, rule decision and
//! idempotency as `POST /v1/events`).
//!
//! The family projection is kept live next to coverage, at the coverage
//! projection's position, so a decision reads memory instead of folding the
//! log; it is caught up under the coverage read lock (order: coverage, then
//! family), which keeps the two at one position.

use super::auth::Tokens;
use super::error::ApiError;
use super::App;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use ledger::event::{
    FamilyBindingCreated, FamilyBindingRevoked, ProxyCredited, ProxyFailed, ProxyProcessing, ProxyReturned,
    ProxySubmitted,
};
use ledger::{BeijingTime, Date, Event, Identity, Money};
use operations::answers::StuckAnswer;
use operations::coverage::{CoverageAnswer, CoverageQuery};
use projections::coverage::Coverage;
use projections::family::{self, Family, ProxyStep};
use projections::Projection;
use serde::Deserialize;
use serde_json::{json, Value};
use std::str::FromStr;
use std::sync::{Arc, RwLockReadGuard};

impl App {
    /// Runs `f` with both projections at the same position, caught up with
    /// the log first. Blocking: call from a blocking task.
    pub(super) fn with_projections<T>(&self, f: impl FnOnce(&Coverage, &Family) -> T) -> Result<T, ApiError> {
        self.catch_up().map_err(|e| ApiError::internal(&e))?;
        let coverage: RwLockReadGuard<'_, Coverage> = self.coverage_read().map_err(|e| ApiError::internal(&e))?;
        let position = coverage.position();
        // Rebuilt (after a panic mid-fold) to the position coverage holds.
        let rebuild = || {
            let log = self.store.log().map_err(|e| anyhow::anyhow!("{}", e.message))?;
            crate::family::family_at(&self.data, &log, position)
        };
        {
            let family = super::poison::read(&self.family, "family", rebuild).map_err(|e| ApiError::internal(&e))?;
            if family.position() == position {
                return Ok(f(&coverage, &family));
            }
        }
        let mut family = super::poison::write(&self.family, "family", rebuild).map_err(|e| ApiError::internal(&e))?;
        family
            .catch_up_to(&*self.store.log()?, coverage.position())
            .map_err(|e| ApiError::internal(&anyhow::Error::new(e).context("catching the family projection up")))?;
        Ok(f(&coverage, &family))
    }

    /// Runs `f` on the live projections in a blocking task.
    async fn read_projections<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Coverage, &Family) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let app = Arc::clone(self);
        tokio::task::spawn_blocking(move || app.with_projections(f))
            .await
            .map_err(|e| ApiError::internal(&anyhow::anyhow!("the projection task failed: {e}")))?
    }
}

impl App {
    /// What was known of the person at `moment`: a fold of the person's and
    /// the policies' facts recorded by then (`coverage::answer_as_of`).
    pub(super) async fn coverage_as_of(
        self: &Arc<Self>,
        query: CoverageQuery,
        moment: ledger::UtcTime,
    ) -> Result<CoverageAnswer, ApiError> {
        let app = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            app.with_projections(|coverage, family| {
                operations::coverage::answer_as_of(&*app.store.log()?, coverage, family, &query, moment)
                    .map_err(|e| ApiError::classified(&e))
            })?
        })
        .await
        .map_err(|e| ApiError::internal(&anyhow::anyhow!("the as-of task failed: {e}")))?
    }
}

/// A JSON body, or 400 naming what is wrong with it.
fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value).map_err(|rejection| ApiError::bad_input(None, rejection.body_text()))
}

/// An application id in canonical form (`ledger::text`), as the fact will hold it.
fn application_id_field(text: &str) -> Result<String, ApiError> {
    ledger::text::identifier("application_id", text).map_err(|e| ApiError::bad_input(Some(e.field), e.to_string()))
}

fn person_field(text: &str, field: &str) -> Result<Identity, ApiError> {
    text.parse().map_err(|_| ApiError::bad_input(Some(field), format!("{field}: not a valid ID number")))
}

/// A request's text as the type of the fact's field it gives, refused
/// naming the field as a line of `POST /v1/events` would be.
fn field<T: FromStr>(field: &'static str, text: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| ApiError::bad_input(Some(field), format!("field `{field}`: {e}; nothing was appended")))
}

/// A time of the request, now when not given.
fn time_field(name: &'static str, text: Option<&str>) -> Result<BeijingTime, ApiError> {
    text.map_or_else(|| Ok(BeijingTime::now()), |text| field(name, text))
}

/// Appends one fact built by an endpoint, through the checks and the
/// decision of `POST /v1/events`.
async fn post_fact(app: &Arc<App>, headers: &HeaderMap, event: Event) -> Result<Value, ApiError> {
    let caller = Tokens::caller(app.tokens.as_ref(), headers)?;
    let type_name = event.type_name();
    caller.may_post(type_name)?;
    let events = vec![super::write::admit(event, 1, &caller, &app.channels)?];
    let worker = Arc::clone(app);
    let outcome = tokio::task::spawn_blocking(move || worker.append(events))
        .await
        .map_err(|e| ApiError::internal(&anyhow::anyhow!("the append task failed: {e}")))??;
    Ok(json!({
        "type": type_name,
        "position": outcome.positions.first(),
        "n_appended": outcome.n_appended,
        "head": { "position": outcome.head.position, "hash": hex::encode(outcome.head.hash) },
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindRequest {
    holder: String,
    account_province: String,
    member: String,
    /// An English name or the Chinese label (配偶, 父母, ...).
    relation: String,
    bound_on: Option<String>,
}

/// `POST /v1/family/bindings`: 共济绑定 (office).
pub async fn bind(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    request: Result<Json<BindRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    Tokens::caller(app.tokens.as_ref(), &headers)?.may_post("family_binding_created")?;
    let request = body(request)?;
    let relation = family::parse_relation(&request.relation)
        .map_err(|e| ApiError::bad_input(Some("relation"), format!("relation: {e}")))?;
    let event = Event::FamilyBindingCreatedV1(FamilyBindingCreated {
        holder: field("holder", &request.holder)?,
        account_province: field("account_province", &request.account_province)?,
        member: field("member", &request.member)?,
        relation,
        bound_on: date_field("bound_on", request.bound_on.as_deref())?,
    });
    Ok(Json(post_fact(&app, &headers, event).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    holder: String,
    member: String,
    revoked_on: Option<String>,
}

/// `POST /v1/family/bindings/revoke`: 取消授权 (office).
pub async fn revoke(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    request: Result<Json<RevokeRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    Tokens::caller(app.tokens.as_ref(), &headers)?.may_post("family_binding_revoked")?;
    let request = body(request)?;
    let event = Event::FamilyBindingRevokedV1(FamilyBindingRevoked {
        holder: field("holder", &request.holder)?,
        member: field("member", &request.member)?,
        revoked_on: date_field("revoked_on", request.revoked_on.as_deref())?,
    });
    Ok(Json(post_fact(&app, &headers, event).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    holder: String,
    member: String,
    coverage_year: u16,
    /// Yuan, as a string ("400.00").
    amount: String,
    /// Default: DJ-YEAR-HOLDER-MEMBER-N from what the IDs' masks show of their ends.
    application_id: Option<String>,
    /// Beijing time `YYYY-MM-DD HH:MM:SS` (default: now).
    at: Option<String>,
}

/// `POST /v1/family/applications`: 代缴申请 (channel).
pub async fn apply(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    request: Result<Json<ApplyRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    Tokens::caller(app.tokens.as_ref(), &headers)?.may_post("proxy_submitted")?;
    let request = body(request)?;
    let application_id = match request.application_id {
        Some(id) => application_id_field(&id)?,
        None => {
            let holder = person_field(&request.holder, "holder")?;
            let member = person_field(&request.member, "member")?;
            let year = request.coverage_year;
            app.read_projections(move |_, family| crate::family::default_application_id(family, &holder, &member, year))
                .await?
        }
    };
    let event = Event::ProxySubmittedV1(ProxySubmitted {
        application_id: application_id.clone(),
        holder: field("holder", &request.holder)?,
        member: field("member", &request.member)?,
        coverage_year: request.coverage_year,
        amount: field("amount", &request.amount)?,
        at: time_field("at", request.at.as_deref())?,
    });
    let mut answer = post_fact(&app, &headers, event).await?;
    answer["application_id"] = Value::String(application_id);
    Ok(Json(answer))
}

#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    /// Beijing time (default: now).
    at: Option<String>,
    /// Why it failed (受理失败): required for `failed`, refused otherwise.
    reason: Option<String>,
}

/// `POST /v1/family/applications/{application_id}/{step}`: processing,
/// credited, failed or returned (channel).
pub async fn step(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlPath((application_id, step)): UrlPath<(String, String)>,
    request: Option<Json<StepRequest>>,
) -> Result<Json<Value>, ApiError> {
    // Canonical before the lookup below, as the fact will be.
    let application_id = application_id_field(&application_id)?;
    let kind = match step.as_str() {
        "processing" => ProxyStep::Processing,
        "credited" => ProxyStep::Credited,
        "failed" => ProxyStep::Failed,
        "returned" => ProxyStep::Returned,
        _ => {
            return Err(ApiError::bad_input(
                Some("step"),
                format!("step `{step}`: expected processing, credited, failed or returned"),
            ))
        }
    };
    let type_name = match kind {
        ProxyStep::Processing => "proxy_processing",
        ProxyStep::Credited => "proxy_credited",
        ProxyStep::Failed => "proxy_failed",
        ProxyStep::Returned => "proxy_returned",
    };
    Tokens::caller(app.tokens.as_ref(), &headers)?.may_post(type_name)?;
    let request = request.map(|Json(r)| r).unwrap_or_default();
    let at = time_field("at", request.at.as_deref())?;
    let event = match (kind, request.reason) {
        (ProxyStep::Failed, Some(reason)) => Event::ProxyFailedV1(ProxyFailed { application_id, reason, at }),
        (ProxyStep::Failed, None) => {
            return Err(ApiError::bad_input(Some("reason"), "`failed` needs a reason (受理失败的原因)"));
        }
        (_, Some(_)) => return Err(ApiError::bad_input(Some("reason"), "a reason is for `failed` only")),
        (ProxyStep::Processing, None) => Event::ProxyProcessingV1(ProxyProcessing { application_id, at }),
        (ProxyStep::Credited, None) => Event::ProxyCreditedV1(ProxyCredited { application_id, at }),
        (ProxyStep::Returned, None) => {
            // 原渠道返还 gives back what was taken; an unknown id is refused by the decision.
            let id = application_id.clone();
            let amount = app
                .read_projections(move |_, family| family.application(&id).map(|a| a.amount))
                .await?
                .unwrap_or(Money::ZERO);
            Event::ProxyReturnedV1(ProxyReturned { application_id, amount, at })
        }
    };
    Ok(Json(post_fact(&app, &headers, event).await?))
}

/// `GET /v1/family/persons/{id_number}`: the person's bindings as holder
/// and as member, the applications they are part of, and the personal
/// account by year when they hold one. IDs masked; recorded in access.log.
pub async fn person(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlPath(id_number): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let caller = Tokens::caller(app.tokens.as_ref(), &headers)?;
    caller.may_read()?;
    let person = super::identity(&id_number)?;
    app.record_access(&caller, &person, "/v1/family/persons/{id_number}").await;
    let answer = app
        .read_projections(move |coverage, family| {
            let bindings = |bindings: Vec<&family::Binding>, holder_side: bool| -> Vec<Value> {
                bindings
                    .into_iter()
                    .map(|binding| {
                        let other = if holder_side { &binding.member } else { &binding.holder };
                        json!({
                            "other": other.masked(),
                            "active": binding.is_active(),
                            "periods": binding.periods.iter().map(|period| json!({
                                "relation": family::relation_label(period.relation),
                                "account_province": period.account_province,
                                "bound_on": period.bound_on,
                                "bound_position": period.bound_position,
                                "revoked_on": period.revoked_on,
                            })).collect::<Vec<_>>(),
                        })
                    })
                    .collect()
            };
            let applications: Vec<Value> = family
                .applications_of(&person)
                .map(|a| {
                    json!({
                        "application_id": a.application_id,
                        "holder": a.holder.masked(),
                        "member": a.member.masked(),
                        "coverage_year": a.coverage_year,
                        "amount": a.amount,
                        "state": a.state,
                        "state_zh": a.state.chinese(),
                        "submitted_at": a.submitted_at.to_string(),
                    })
                })
                .collect();
            json!({
                "person": person.masked(),
                "as_holder": bindings(family.bindings_as_holder(&person).collect(), true),
                "as_member": bindings(family.bindings_as_member(&person).collect(), false),
                "applications": applications,
                "account": family.account(&person),
                "log_position": coverage.position(),
            })
        })
        .await?;
    Ok(Json(answer))
}

#[derive(Deserialize)]
pub struct StuckQuery {
    /// Override the policies' processing duration, in hours.
    older_than_hours: Option<i64>,
}

/// `GET /v1/family/stuck`: applications in flight longer than their
/// policy's processing duration (3 days in Bijie).
pub async fn stuck(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<StuckQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<StuckAnswer>, ApiError> {
    Tokens::caller(app.tokens.as_ref(), &headers)?.may_read()?;
    let Query(query) = query.map_err(|e| ApiError::bad_input(None, e.body_text()))?;
    if query.older_than_hours.is_some_and(|hours| !(0..=366 * 24).contains(&hours)) {
        return Err(ApiError::bad_input(Some("older_than_hours"), "older_than_hours is 0 to 8784"));
    }
    let answer = app
        .read_projections(move |coverage, family| {
            let now = BeijingTime::now();
            let (found, n_without_limit) = family::stuck(family, coverage, now, query.older_than_hours);
            StuckAnswer { log_position: Some(coverage.position()), ..StuckAnswer::new(now, &found, n_without_limit) }
        })
        .await?;
    Ok(Json(answer))
}

/// A date of the request, today (UTC+8) when not given.
fn date_field(name: &'static str, text: Option<&str>) -> Result<Date, ApiError> {
    text.map_or_else(|| Ok(Date::today()), |text| field(name, text))
}
