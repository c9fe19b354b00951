//! `GET /v1/proof/inclusion` and `GET /v1/proof/consistency`: the proofs of
//! `yibao proof … --json` over HTTP (`operations::proof`), read through the
//! tree store in the data directory, which each request first brings to
//! the log's head.

use super::auth::Tokens;
use super::error::ApiError;
use super::App;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use operations::proof::{self, ConsistencyProof, InclusionProof, ProofError};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct InclusionQuery {
    position: u64,
    tree_size: Option<u64>,
}

#[derive(Deserialize)]
pub struct ConsistencyQuery {
    old: u64,
    new: Option<u64>,
}

/// That the record at `position` is in the tree of `tree_size` (default:
/// the head): the proof file `yibao proof verify` takes.
pub async fn inclusion(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<InclusionQuery>, QueryRejection>,
) -> Result<Json<InclusionProof>, ApiError> {
    let Query(query) = read_query(&app, &headers, query)?;
    answer(&app, move |data, log| proof::inclusion_at(data, log, query.position, query.tree_size)).await
}

/// That the tree of `new` (default: the head) extends the tree of `old`.
pub async fn consistency(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    let Query(query) = read_query(&app, &headers, query)?;
    answer(&app, move |data, log| proof::consistency_at(data, log, query.old, query.new)).await
}

fn read_query<Q>(
    app: &App,
    headers: &HeaderMap,
    query: Result<Query<Q>, QueryRejection>,
) -> Result<Query<Q>, ApiError> {
    Tokens::caller(app.tokens.as_ref(), headers)?.may_read()?;
    query.map_err(|e| ApiError::bad_input(None, e.body_text()))
}

/// Runs `make` in a blocking task: it reads the tree store and the log.
async fn answer<T: Send + 'static>(
    app: &Arc<App>,
    make: impl FnOnce(&std::path::Path, &dyn ledger::LogStore) -> Result<T, ProofError> + Send + 'static,
) -> Result<Json<T>, ApiError> {
    let log = app.store.log()?;
    let data = app.store.data().to_path_buf();
    let made = tokio::task::spawn_blocking(move || make(&data, &*log))
        .await
        .map_err(|e| ApiError::internal(&anyhow::anyhow!("the proof task failed: {e}")))?;
    made.map(Json).map_err(|error| ApiError::classified(&error))
}
