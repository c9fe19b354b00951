//! `POST /v1/events`: one fact or a batch, through the import's parser,
//! rule checks and idempotency, appended all or nothing.

use super::auth::{Caller, Tokens};
use super::error::ApiError;
use super::App;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use ledger::sync::lock_plain;
use ledger::{AppendOutcome, EventLog, LedgerError, NewEvent};
use operations::channels::Channels;
use operations::facts;
use operations::import::{self, Appended, Batch};
use projections::coverage::Named;
use serde_json::Value;
use std::sync::Arc;

/// Most facts in one request; larger loads go through `yibao import`.
pub const MAX_BATCH_FACTS: usize = 10_000;

pub async fn post_events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Appended>, ApiError> {
    let caller = Tokens::caller(app.tokens.as_ref(), &headers)?;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => super::too_large(),
        _ => ApiError::bad_input(None, "the request body could not be read"),
    })?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::bad_input(None, "the request body is not UTF-8"))?;
    // A repeated key anywhere is refused, not quietly the last one.
    let facts_json = match facts::strict_json(text) {
        Ok(Value::Array(items)) => items,
        Ok(object @ Value::Object(_)) => vec![object],
        Ok(_) => return Err(ApiError::bad_input(None, "expected a fact (JSON object) or an array of facts")),
        Err(e) => return Err(ApiError::bad_input(e.field.as_deref(), e.message)),
    };
    if facts_json.is_empty() || facts_json.len() > MAX_BATCH_FACTS {
        return Err(ApiError::bad_input(None, format!("a batch holds 1 to {MAX_BATCH_FACTS} facts")));
    }
    // The role is checked on the declared type first: a caller learns
    // nothing about validation of facts it may not post.
    for fact in &facts_json {
        if let Some(type_name) = fact.get("type").and_then(Value::as_str) {
            caller.may_post(type_name)?;
        }
    }
    let events = parse(&facts_json, &caller, &app.channels)?;
    let outcome = if import::has_decided(&events) {
        let worker = Arc::clone(&app);
        tokio::task::spawn_blocking(move || worker.append(events))
            .await
            .map_err(|e| ApiError::internal(&anyhow::anyhow!("the append task failed: {e}")))??
    } else {
        app.append_undecided(events).await?
    };
    Ok(Json(Appended::from(outcome)))
}

/// Every fact as an import line (line = index in the batch + 1); any bad
/// fact refuses the batch, naming the first one's line and field. A
/// caller-given idempotency key goes into the caller's namespace, and a
/// channel token may name its own channels only.
pub(super) fn parse(facts_json: &[Value], caller: &Caller, channels: &Channels) -> Result<Vec<NewEvent>, ApiError> {
    let actor = format!("api:{}", caller.name);
    let mut events = Vec::with_capacity(facts_json.len());
    for (index, fact) in facts_json.iter().enumerate() {
        if !fact.is_object() {
            return Err(ApiError::bad_input(None, format!("fact {}: expected a JSON object", index + 1)));
        }
        let mut parsed = facts::parse_line_with(&fact.to_string(), index + 1, &actor, channels).map_err(|error| {
            let message = format!("{error}; nothing was appended");
            ApiError::bad_input(error.field.as_deref(), message)
        })?;
        caller.may_name_channel(&parsed.event, index + 1)?;
        if fact.get("idempotency_key").is_some() {
            parsed.idempotency_key = caller.namespaced_key(&parsed.idempotency_key);
            if parsed.idempotency_key.len() > ledger::log::MAX_KEY_BYTES {
                let limit = ledger::log::MAX_KEY_BYTES;
                let message = format!(
                    "fact {}: idempotency_key: too long (with `client/{}/`, above {limit} bytes); nothing was appended",
                    index + 1,
                    caller.name
                );
                return Err(ApiError::bad_input(Some("idempotency_key"), message));
            }
        }
        events.push(parsed);
    }
    Ok(events)
}

impl App {
    /// The rule check and the append, under the write lock when the request
    /// holds facts the rules decide (bindings, proxy steps, refunds), so that
    /// no other such write lands between check and append; other facts
    /// (payments, registrations) cannot make a decided fact invalid, so they
    /// append without it and concurrent posts share the ledger's group
    /// commit. Then the person store catches up. Runs to the end even
    /// when the client has gone.
    pub(super) fn append(&self, events: Vec<NewEvent>) -> Result<AppendOutcome, ApiError> {
        let decided = import::has_decided(&events);
        let _writing = decided.then(|| lock_plain(&self.write_lock));
        let _alone = if decided { Some(self.following.decide_alone()?) } else { None };
        self.store.check_writable()?;
        let events = self.check_rules(events)?;
        let log = self.store.log()?;
        let outcome = EventLog::append_blocking(&*log, events).map_err(|error| self.append_error(error))?;
        drop(log);
        // Up to this request's records: a catch-up that got further already
        // (another request's) is enough.
        let own = outcome.positions.iter().copied().max().unwrap_or(0);
        if let Err(error) = self.catch_up_to(own) {
            // The write is durable; a later read catches up again.
            eprintln!("error: {error:#}");
        }
        Ok(outcome)
    }
}

impl App {
    /// The decision for the decided facts of a request (bindings, proxy
    /// steps, refunds, assessments), as an import's (`import::check_batch`),
    /// against the persons and family records they name plus the
    /// request's earlier facts. The caller holds the write lock.
    fn check_rules(&self, events: Vec<NewEvent>) -> Result<Vec<NewEvent>, ApiError> {
        if !import::has_decided(&events) {
            return Ok(events);
        }
        let batch = Batch { line_numbers: (1..=events.len()).collect(), events };
        let named = decision_named(&batch.events);
        let checked = self.with_projections(|at| {
            self.require_head(at)?;
            let family = at.family(&named).map_err(|e| super::store_failed(&e))?;
            let coverage = at.named(&named.linked_by(&family)).map_err(|e| super::store_failed(&e))?;
            Ok::<_, ApiError>(import::check_batch(&coverage, &family, &batch, "request", "request"))
        })??;
        checked.map_err(|error| {
            let mut answer = ApiError::classified(&error);
            // One line for the client: each refused fact after the count.
            answer.message = answer.message.replace("\n  ", "; ");
            answer
        })?;
        Ok(batch.events)
    }
}

/// The persons and applications the rules ask about when judging
/// `events` (`family::decision_named`).
fn decision_named(events: &[NewEvent]) -> Named {
    operations::family::decision_named(events.iter().map(|new| &new.event))
}

impl App {
    /// Facts no rule decides (payments, registrations): appended through the
    /// ledger's async path, so waiting for the group commit holds no
    /// thread; then the person store is caught up to them, unless another
    /// request's catch-up already got there.
    async fn append_undecided(self: &Arc<Self>, events: Vec<NewEvent>) -> Result<AppendOutcome, ApiError> {
        self.store.check_writable()?;
        let log = self.store.log()?;
        let outcome = EventLog::append(&*log, events).await.map_err(|error| self.append_error(error))?;
        drop(log);
        let own = outcome.positions.iter().copied().max().unwrap_or(0);
        // Unreadable (a re-read failed): the catch-up reports why.
        if self.persons.tip().map_or(true, |tip| tip.position < own) {
            let worker = Arc::clone(self);
            let caught = tokio::task::spawn_blocking(move || worker.catch_up_to(own)).await;
            match caught {
                Ok(Ok(())) => {}
                // The write is durable; a later read catches up again.
                Ok(Err(error)) => eprintln!("error: {error:#}"),
                Err(error) => eprintln!("error: the catch-up task failed: {error}"),
            }
        }
        Ok(outcome)
    }
}

impl App {
    /// A rejection is the caller's to correct; a failure of storage makes
    /// the store refuse writes until it recovers (`store.rs`).
    pub(super) fn append_error(&self, error: LedgerError) -> ApiError {
        if error.is_rejection() {
            ledger_error(error)
        } else {
            self.store.failed(&error)
        }
    }
}

fn ledger_error(error: LedgerError) -> ApiError {
    match &error {
        LedgerError::IdempotencyConflict { .. } | LedgerError::WrongExpectedVersion { .. } => {
            ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string())
        }
        LedgerError::InvalidEvent { index, error: field_error } => ApiError::bad_input(
            Some(field_error.field),
            format!("line {}: {field_error}; nothing was appended", index + 1),
        ),
        LedgerError::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", error.to_string()),
        _ => ApiError::internal(&anyhow::Error::new(error)),
    }
}
