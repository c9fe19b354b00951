//! `GET /v1/certificates/{id_number}/{year}`: the payment certificate
//! (参保缴费证明) over HTTP, issued by `operations::certificate::issue_from`
//! from the person (read from the person store) and the family projection,
//! as the CLI issues it from its checkpoints.

use super::auth::Tokens;
use super::error::ApiError;
use super::App;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger::Identity;
use operations::certificate::{self, Certificate, Format, IssueError};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct CertificateQuery {
    /// html (default), text or json (the data block alone).
    format: Option<String>,
}

/// The certificate of a received person-year, ID masked, with its data
/// block for `yibao certificate verify` (and, when the office has a
/// signing key, its proofs for `verify --public-key` without the ledger).
/// Recorded in access.log.
pub async fn certificate(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlPath((id_number, year)): UrlPath<(String, String)>,
    query: Result<Query<CertificateQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let caller = Tokens::caller(app.tokens.as_ref(), &headers)?;
    caller.may_read()?;
    let Query(query) = query.map_err(|e| ApiError::bad_input(None, e.body_text()))?;
    let person = super::identity(&id_number)?;
    let year: u16 = year.parse().map_err(|_| ApiError::bad_input(Some("year"), "year: expected a coverage year"))?;
    let format = match query.format.as_deref().unwrap_or("html") {
        "html" => Format::Html,
        "text" => Format::Text,
        "json" => Format::Json,
        _ => return Err(ApiError::bad_input(Some("format"), "format: html, text or json")),
    };
    app.record_access(&caller, &person, "/v1/certificates/{id_number}/{year}").await;
    let issued = issue(&app, person, year).await?.map_err(|error| answer(&error))?;
    Ok(match format {
        Format::Json => Json(&issued).into_response(),
        Format::Text => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], certificate::render(&issued, format))
            .into_response(),
        Format::Html => {
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], certificate::render(&issued, format)).into_response()
        }
    })
}

/// Issues from the person store (the person's coverage and family records), in a blocking task.
async fn issue(app: &Arc<App>, person: Identity, year: u16) -> Result<Result<Certificate, IssueError>, ApiError> {
    let log = app.store.log()?;
    let worker = Arc::clone(app);
    tokio::task::spawn_blocking(move || {
        worker.with_projections(|at| {
            let coverage = at.person(&person).map_err(|e| super::store_failed(&e))?;
            let family = &at.family_of_person(&person).map_err(|e| super::store_failed(&e))?;
            let issued = certificate::issue_from(&log, &coverage, family, &person, year, false);
            Ok(match (issued, &worker.signing_key) {
                (Ok(issued), Some(key)) => {
                    certificate::attach_proofs(issued, &worker.tree, worker.store.data(), &*log, key)
                }
                (issued, _) => issued,
            })
        })?
    })
    .await
    .map_err(|e| ApiError::internal(&anyhow::anyhow!("the projection task failed: {e}")))?
}

/// A year not received is 422 `not_received` (the code clients know);
/// everything else is answered by its kind.
fn answer(error: &IssueError) -> ApiError {
    match error {
        IssueError::NotReceived(_) | IssueError::TooManyFacts { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_received", error.to_string())
        }
        _ => ApiError::classified(error),
    }
}
