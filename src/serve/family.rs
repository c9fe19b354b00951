//! Family accounts (家庭共济) over HTTP: bindings, proxy applications and
//! their steps, a person's family view, and the stuck list (the payment
//! certificate is in `certificate.rs`). Each write is the operation the CLI
//! runs (`operations::family`), against the live projections under the
//! write lock (`App::write_family`): the same checks, rule decision and
//! idempotency as `POST /v1/events`.
//!
//! The family projection is kept in the person store, per binding and per
//! application, at the store's tip: a write is judged against the family
//! records and the persons its facts name, read from the store (`Named`):
//! the rules ask about no one else. Nothing of the whole is held in memory.

use super::auth::Tokens;
use super::error::ApiError;
use super::App;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use ledger::event::{FamilyBindingCreated, FamilyBindingRevoked};
use ledger::sync::lock_plain;
use ledger::{BeijingTime, Date, Head, Identity, LogStore};
use operations::answers::StuckAnswer;
use operations::coverage::{CoverageAnswer, CoverageQuery};
use operations::family::{self, FamilyError, PersonAnswer, PostedAnswer, Transition, Writer};
use operations::import::LineRefusal;
use operations::StorageError;
use projections::coverage::Named;
use serde::Deserialize;
use std::str::FromStr;
use std::sync::Arc;

impl App {
    /// Runs `f` with the person store at its tip (the persons and the
    /// family records it keeps), caught up with the log first. Blocking:
    /// call from a blocking task.
    pub(super) fn with_projections<T>(&self, f: impl FnOnce(&super::persons::AtTip<'_>) -> T) -> Result<T, ApiError> {
        self.catch_up_for_answer();
        let at = self.persons.read().map_err(|e| ApiError::internal(&e))?;
        Ok(f(&at))
    }

    /// A family write an endpoint asked for, through its operation against
    /// the family records and the persons `named` (read from the store),
    /// under the write lock: judged and appended with no other
    /// decided write between (as `App::append`); then the store catches
    /// up. Also returns the log's head after it.
    fn write_family<T>(
        &self,
        named: &Named,
        operation: impl FnOnce(&Writer<'_, dyn LogStore>) -> Result<T, FamilyError>,
    ) -> Result<(T, Head), ApiError> {
        let _writing = lock_plain(&self.write_lock);
        let _alone = self.following.decide_alone()?;
        self.store.check_writable()?;
        let (written, head) = self.with_projections(|at| {
            self.require_head(at)?;
            let log = self.store.log()?;
            let family = &at.family(named).map_err(|e| super::store_failed(&e))?;
            let coverage = &at.named(&named.linked_by(family)).map_err(|e| super::store_failed(&e))?;
            let writer = Writer { log: &*log, channels: &self.channels, coverage, family };
            let written = operation(&writer);
            Ok::<_, ApiError>((written, log.durable_head()))
        })??;
        let written = written.map_err(|error| self.family_error(error))?;
        if let Err(error) = self.catch_up() {
            // The write is durable; a later read catches up again.
            eprintln!("error: {error:#}");
        }
        Ok((written, head))
    }

    /// A family operation's error as the service answers it: the texts of
    /// `POST /v1/events` (a request of one fact), a failure of storage
    /// making the store refuse writes until it recovers.
    fn family_error(&self, error: FamilyError) -> ApiError {
        match error {
            FamilyError::Field(error) => {
                ApiError::bad_input(Some(error.field), format!("line 1: {error}; nothing was appended"))
            }
            FamilyError::Refused(refusal) => {
                let field = refusal.field;
                let refused = [LineRefusal { line: 1, field, reason: refusal.reason }];
                let message =
                    operations::import::refusals_message("request", "request", 1, &refused).replace("\n  ", "; ");
                let mut answer = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rule_refused", message);
                answer.field = field.map(str::to_string);
                answer
            }
            FamilyError::Storage(StorageError::Ledger(error)) => self.append_error(error),
            other => ApiError::classified(&other),
        }
    }

    /// Runs `f` on the person store in a blocking task.
    async fn read_projections<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&super::persons::AtTip<'_>) -> T + Send + 'static,
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
            app.with_projections(|at| {
                let coverage = at.person(&query.person).map_err(|e| super::store_failed(&e))?;
                let family = at.family_of_person(&query.person).map_err(|e| super::store_failed(&e))?;
                operations::coverage::answer_as_of(&*app.store.log()?, &coverage, &family, &query, moment)
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

/// The caller, allowed to post facts of `type_name`, and the actor its facts record.
fn poster(app: &App, headers: &HeaderMap, type_name: &str) -> Result<String, ApiError> {
    let caller = Tokens::caller(app.tokens.as_ref(), headers)?;
    caller.may_post(type_name)?;
    Ok(format!("api:{}", caller.name))
}

/// Runs a family write judged against the persons `named` in a blocking
/// task (`App::write_family`) and answers what it recorded.
async fn post_family<T: Send + 'static>(
    app: &Arc<App>,
    type_name: &'static str,
    named: Named,
    operation: impl FnOnce(&Writer<'_, dyn LogStore>) -> Result<T, FamilyError> + Send + 'static,
) -> Result<(T, Head), ApiError> {
    let worker = Arc::clone(app);
    tokio::task::spawn_blocking(move || worker.write_family(&named, operation))
        .await
        .map_err(|e| ApiError::internal(&anyhow::anyhow!("the {type_name} task failed: {e}")))?
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
) -> Result<Json<PostedAnswer>, ApiError> {
    const TYPE_NAME: &str = "family_binding_created";
    let actor = poster(&app, &headers, TYPE_NAME)?;
    let request = body(request)?;
    let relation = projections::family::parse_relation(&request.relation)
        .map_err(|e| ApiError::bad_input(Some("relation"), format!("relation: {e}")))?;
    let binding = FamilyBindingCreated {
        holder: field("holder", &request.holder)?,
        account_province: field("account_province", &request.account_province)?,
        member: field("member", &request.member)?,
        relation,
        bound_on: date_field("bound_on", request.bound_on.as_deref())?,
    };
    let named = persons_named(&[&binding.holder, &binding.member]);
    let (recorded, head) =
        post_family(&app, TYPE_NAME, named, move |writer| family::bind(writer, binding, &actor)).await?;
    Ok(Json(PostedAnswer::new(TYPE_NAME, &recorded, head)))
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
) -> Result<Json<PostedAnswer>, ApiError> {
    const TYPE_NAME: &str = "family_binding_revoked";
    let actor = poster(&app, &headers, TYPE_NAME)?;
    let request = body(request)?;
    let revocation = FamilyBindingRevoked {
        holder: field("holder", &request.holder)?,
        member: field("member", &request.member)?,
        revoked_on: date_field("revoked_on", request.revoked_on.as_deref())?,
    };
    let named = persons_named(&[&revocation.holder, &revocation.member]);
    let (recorded, head) =
        post_family(&app, TYPE_NAME, named, move |writer| family::revoke(writer, revocation, &actor)).await?;
    Ok(Json(PostedAnswer::new(TYPE_NAME, &recorded, head)))
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
) -> Result<Json<PostedAnswer>, ApiError> {
    const TYPE_NAME: &str = "proxy_submitted";
    let actor = poster(&app, &headers, TYPE_NAME)?;
    let request = body(request)?;
    let application = family::ApplyRequest {
        application_id: request.application_id.as_deref().map(application_id_field).transpose()?,
        holder: field("holder", &request.holder)?,
        member: field("member", &request.member)?,
        coverage_year: request.coverage_year,
        amount: field("amount", &request.amount)?,
        at: time_field("at", request.at.as_deref())?,
    };
    let named = family::apply_named(&application);
    let (applied, head) =
        post_family(&app, TYPE_NAME, named, move |writer| family::apply(writer, application, &actor)).await?;
    let answer = PostedAnswer {
        application_id: Some(applied.application_id),
        ..PostedAnswer::new(TYPE_NAME, &applied.recorded, head)
    };
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
) -> Result<Json<PostedAnswer>, ApiError> {
    // Canonical before the operation looks it up, as the fact will be.
    let application_id = application_id_field(&application_id)?;
    let type_name = match step.as_str() {
        "processing" => "proxy_processing",
        "credited" => "proxy_credited",
        "failed" => "proxy_failed",
        "returned" => "proxy_returned",
        _ => {
            return Err(ApiError::bad_input(
                Some("step"),
                format!("step `{step}`: expected processing, credited, failed or returned"),
            ))
        }
    };
    let actor = poster(&app, &headers, type_name)?;
    let request = request.map(|Json(r)| r).unwrap_or_default();
    let transition = match (step.as_str(), request.reason) {
        ("failed", Some(reason)) => Transition::Failed { reason },
        ("failed", None) => {
            return Err(ApiError::bad_input(Some("reason"), "`failed` needs a reason (受理失败的原因)"));
        }
        (_, Some(_)) => return Err(ApiError::bad_input(Some("reason"), "a reason is for `failed` only")),
        ("processing", None) => Transition::Processing,
        ("credited", None) => Transition::Credited,
        _ => Transition::Returned,
    };
    let at = time_field("at", request.at.as_deref())?;
    let mut named = Named::default();
    named.application(&application_id);
    let (recorded, head) = post_family(&app, type_name, named, move |writer| {
        family::transition(writer, application_id, transition, at, &actor)
    })
    .await?;
    Ok(Json(PostedAnswer::new(type_name, &recorded, head)))
}

/// `GET /v1/family/persons/{id_number}`: the person's bindings as holder
/// and as member, the applications they are part of, and the personal
/// account by year when they hold one. IDs masked; recorded in access.log.
pub async fn person(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlPath(id_number): UrlPath<String>,
) -> Result<Json<PersonAnswer>, ApiError> {
    let caller = Tokens::caller(app.tokens.as_ref(), &headers)?;
    caller.may_read()?;
    let person = super::identity(&id_number)?;
    app.record_access(&caller, &person, "/v1/family/persons/{id_number}").await;
    let answer = app
        .read_projections(move |at| {
            let family = at.family_of_person(&person).map_err(|e| super::store_failed(&e))?;
            Ok::<_, ApiError>(family::person(at.nobody(), &family, &person))
        })
        .await??;
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
        .read_projections(move |at| {
            // The applications in flight (those old enough, with a bound),
            // and their members, for their policies' limits.
            let now = BeijingTime::now();
            let submitted_before = query.older_than_hours.map(|hours| family::submitted_before(now, hours));
            let in_flight = at.family_in_flight(submitted_before).map_err(|e| super::store_failed(&e))?;
            let mut members = Named::default();
            in_flight.applications().for_each(|a| members.identity(&a.member));
            let coverage = at.named(&members).map_err(|e| super::store_failed(&e))?;
            let answer = family::stuck(&coverage, &in_flight, now, query.older_than_hours);
            Ok::<_, ApiError>(StuckAnswer { log_position: Some(at.position()), ..answer })
        })
        .await??;
    Ok(Json(answer))
}

/// The persons a family request names, for the store to read.
fn persons_named(identities: &[&Identity]) -> Named {
    let mut named = Named::default();
    identities.iter().for_each(|identity| named.identity(identity));
    named
}

/// A date of the request, today (UTC+8) when not given.
fn date_field(name: &'static str, text: Option<&str>) -> Result<Date, ApiError> {
    text.map_or_else(|| Ok(Date::today()), |text| field(name, text))
}
