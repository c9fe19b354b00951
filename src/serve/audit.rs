//! The auditor's long work over HTTP: verifying the chain and replaying a
//! coverage year run as jobs on threads of their own (minutes on a large
//! ledger, longer than any request may take). `POST` starts one and answers
//! 202 with where to look; `GET /v1/audit/jobs/{job}` shows its progress
//! (records done of the total) and, once done, the result that `yibao
//! verify` or `yibao replay --json` would give. Auditor tokens only.

use super::auth::Tokens;
use super::error::ApiError;
use super::App;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger::sync::lock_plain;
use ledger::{BeijingTime, Date, RegionCode, UtcTime};
use operations::import::HeadAnswer;
use operations::replay::{FlagNames, ReplayError, ReplayInput};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Jobs running at once; more are refused with 503 and Retry-After.
const MAX_RUNNING: usize = 2;
/// Finished jobs kept for their results; the oldest go first.
const MAX_KEPT: usize = 64;

/// Every job of this process, by number.
#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    jobs: Mutex<BTreeMap<u64, Arc<Job>>>,
}

pub struct Job {
    kind: AuditKind,
    requested_by: String,
    started_at: BeijingTime,
    /// Records to go through, and records gone through so far.
    total: u64,
    done: AtomicU64,
    outcome: Mutex<Option<Outcome>>,
}

struct Outcome {
    finished_at: BeijingTime,
    result: Result<Value, String>,
}

/// 202 to an audit post: the job, where to follow it (also in `Location`),
/// and its status now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditAccepted {
    job: u64,
    /// `/v1/audit/jobs/{job}`.
    status: String,
    now: Option<AuditJob>,
}

/// An audit job: running (`done` of `total` records), done (`result`) or
/// failed (`error`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditJob {
    job: u64,
    kind: AuditKind,
    requested_by: String,
    started_at: BeijingTime,
    done: u64,
    total: u64,
    state: JobState,
    finished_at: Option<BeijingTime>,
    /// `VerifyResult` for a verify; for a replay, `yibao replay --json`'s
    /// answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    Verify,
    Replay,
}

#[derive(Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Done,
    Failed,
}

/// A verify job's result: the range checked and the first position that
/// fails, if one does.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VerifyResult {
    ok: bool,
    from: u64,
    n_records: u64,
    n_blocks: u64,
    last_good: HeadAnswer,
    problem: Option<String>,
    first_bad_position: Option<u64>,
    seconds: f64,
    records_per_second: f64,
}

impl Job {
    fn status(&self, number: u64) -> AuditJob {
        let outcome = lock_plain(&self.outcome);
        let (state, finished_at, result, error) = match outcome.as_ref() {
            None => (JobState::Running, None, None, None),
            Some(Outcome { finished_at, result: Ok(result) }) => {
                (JobState::Done, Some(*finished_at), Some(result.clone()), None)
            }
            Some(Outcome { finished_at, result: Err(error) }) => {
                (JobState::Failed, Some(*finished_at), None, Some(error.clone()))
            }
        };
        AuditJob {
            job: number,
            kind: self.kind,
            requested_by: self.requested_by.clone(),
            started_at: self.started_at,
            done: self.done.load(Ordering::Relaxed),
            total: self.total,
            state,
            finished_at,
            result,
            error,
        }
    }
}

impl Jobs {
    /// Starts `work` on a thread of its own, unless `MAX_RUNNING` jobs run.
    fn start(
        &self,
        kind: AuditKind,
        requested_by: &str,
        total: u64,
        work: impl FnOnce(&dyn Fn(u64)) -> Result<Value, String> + Send + 'static,
    ) -> Result<u64, ApiError> {
        let mut jobs = lock_plain(&self.jobs);
        let running = jobs.values().filter(|job| job.outcome.lock().map(|o| o.is_none()).unwrap_or(false)).count();
        if running >= MAX_RUNNING {
            return Err(ApiError::overloaded("busy", "audit jobs are running; retry when one has finished"));
        }
        while jobs.len() >= MAX_KEPT {
            let oldest_done = jobs
                .iter()
                .find(|(_, job)| job.outcome.lock().map(|o| o.is_some()).unwrap_or(true))
                .map(|(&number, _)| number);
            match oldest_done {
                Some(number) => jobs.remove(&number),
                None => break,
            };
        }
        let number = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let job = Arc::new(Job {
            kind,
            requested_by: requested_by.to_string(),
            started_at: BeijingTime::now(),
            total,
            done: AtomicU64::new(0),
            outcome: Mutex::new(None),
        });
        jobs.insert(number, Arc::clone(&job));
        let worker = Arc::clone(&job);
        let spawned = std::thread::Builder::new().name(format!("audit-{number}")).spawn(move || {
            let progress = |n: u64| worker.done.store(n, Ordering::Relaxed);
            let result = work(&progress);
            *lock_plain(&worker.outcome) = Some(Outcome { finished_at: BeijingTime::now(), result });
        });
        if let Err(error) = spawned {
            jobs.remove(&number);
            return Err(ApiError::internal(&anyhow::anyhow!("starting an audit thread: {error}")));
        }
        Ok(number)
    }

    fn get(&self, number: u64) -> Option<Arc<Job>> {
        lock_plain(&self.jobs).get(&number).cloned()
    }
}

/// 202 with the job's status and its address in `Location`.
fn accepted(app: &App, number: u64) -> Response {
    let location = format!("/v1/audit/jobs/{number}");
    let now = app.audit.get(number).map(|job| job.status(number));
    let mut response =
        (StatusCode::ACCEPTED, Json(AuditAccepted { job: number, status: location.clone(), now })).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn auditor(app: &App, headers: &HeaderMap) -> Result<String, ApiError> {
    let caller = Tokens::caller(app.tokens.as_ref(), headers)?;
    caller.may_audit()?;
    Ok(caller.name)
}

#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// First position (default 1).
    from: Option<u64>,
    /// Last position (default: the head).
    to: Option<u64>,
}

/// `POST /v1/audit/verify`: the chain recomputed over a range, as `yibao
/// verify`; the result names the first position that fails.
pub async fn verify(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    request: Option<Json<VerifyRequest>>,
) -> Result<Response, ApiError> {
    let who = auditor(&app, &headers)?;
    let request = request.map(|Json(r)| r).unwrap_or_default();
    let from = request.from.unwrap_or(1).max(1);
    let log = app.store.log()?;
    let head = log.durable_head().position;
    let to = request.to.unwrap_or(head).min(head);
    if to < from {
        return Err(ApiError::bad_input(Some("to"), format!("to: the range {from}..{to} is empty (head {head})")));
    }
    let number = app.audit.start(AuditKind::Verify, &who, to - from + 1, move |progress| {
        let started = std::time::Instant::now();
        let report = log.verify(from, to, &mut |n| progress(n)).map_err(|e| e.to_string())?;
        let seconds = started.elapsed().as_secs_f64();
        let result = VerifyResult {
            ok: report.problem.is_none(),
            from: report.first_position,
            n_records: report.n_records,
            n_blocks: report.n_blocks,
            last_good: report.last_good.into(),
            problem: report.problem.as_ref().map(ToString::to_string),
            first_bad_position: report.problem.as_ref().map(|p| p.position()),
            seconds,
            records_per_second: report.n_records as f64 / seconds.max(1e-9),
        };
        serde_json::to_value(result).map_err(|e| e.to_string())
    })?;
    Ok(accepted(&app, number))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    year: u16,
    /// A county, prefecture or province code (default: all).
    region: Option<String>,
    /// RFC 3339: only facts recorded by then (transaction time).
    as_of: Option<String>,
    /// YYYY-MM-DD: count who is covered that day (valid time).
    on: Option<String>,
    /// Compare the rebuild with the live projection person-year by
    /// person-year (not with `as_of`).
    #[serde(default)]
    check: bool,
}

/// `POST /v1/audit/replay`: every projection rebuilt from the log into
/// fresh state and the year's report with its digest, as `yibao replay
/// --json`; with `check`, the person-years where the live projection
/// differs from the rebuild.
pub async fn replay(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    request: Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = auditor(&app, &headers)?;
    let request = request.map(|Json(r)| r).map_err(|rejection| ApiError::bad_input(None, rejection.body_text()))?;
    let region: Option<RegionCode> = request
        .region
        .as_deref()
        .map(|text| text.parse().map_err(|e| ApiError::bad_input(Some("region"), format!("region: {e}"))))
        .transpose()?;
    let as_of: Option<UtcTime> = request
        .as_of
        .as_deref()
        .map(|text| text.parse().map_err(|e| ApiError::bad_input(Some("as_of"), format!("as_of: {e}"))))
        .transpose()?;
    let on: Option<Date> = request.on.as_deref().map(|text| super::date(text, "on")).transpose()?;
    let input = ReplayInput { coverage_year: request.year, region, as_of, on, check: request.check };
    operations::replay::check_input(&input, FLAGS).map_err(|e| ApiError::classified(&e))?;
    let worker = Arc::clone(&app);
    let log = app.store.log()?;
    let number = app.audit.start(AuditKind::Replay, &who, log.durable_head().position, move |progress| {
        let (mut replayed, rebuilt) =
            operations::replay::replay(&log, &input, &mut |n| progress(n)).map_err(job_error)?;
        if input.check {
            // The whole store, as the rebuild is whole (the job's memory is
            // the ledger's either way), read without stopping the writes.
            worker.catch_up_for_answer();
            let live = worker.persons.whole().map_err(|e| super::store_failed(&e).message)?;
            let check = operations::replay::check_drift(&live, &rebuilt, &input);
            replayed.drift = Some(check.map_err(job_error)?);
        }
        serde_json::to_value(&replayed).map_err(|e| e.to_string())
    })?;
    Ok(accepted(&app, number))
}

/// How this route names the inputs a replay may refuse.
const FLAGS: FlagNames = FlagNames { check: "check", as_of: "as_of" };

/// A job's error as its status shows it: the whole chain, one line.
fn job_error(error: ReplayError) -> String {
    format!("{:#}", anyhow::Error::new(error))
}

/// `GET /v1/audit/jobs/{job}`: running (with records done of the total),
/// done (with the result) or failed (with the error).
pub async fn job(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlPath(number): UrlPath<String>,
) -> Result<Json<AuditJob>, ApiError> {
    auditor(&app, &headers)?;
    let number: u64 = number.parse().map_err(|_| ApiError::bad_input(Some("job"), "job: expected a job number"))?;
    let job = app.audit.get(number).ok_or_else(|| ApiError::not_found(format!("no audit job {number}")))?;
    Ok(Json(job.status(number)))
}
