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
    answer(&app, query.tree_size, move |view| proof::inclusion_of(view, query.position)).await
}

/// That the tree of `new` (default: the head) extends the tree of `old`.
pub async fn consistency(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    let Query(query) = read_query(&app, &headers, query)?;
    answer(&app, query.new, move |view| proof::consistency_of(view, query.old)).await
}

fn read_query<Q>(
    app: &App,
    headers: &HeaderMap,
    query: Result<Query<Q>, QueryRejection>,
) -> Result<Query<Q>, ApiError> {
    Tokens::caller(app.tokens.as_ref(), headers)?.may_read()?;
    query.map_err(|e| ApiError::bad_input(None, e.body_text()))
}

/// Runs `make` over the service's tree store (`App::tree`, kept between
/// requests) at `tree_size` (None: the head), in a blocking task.
async fn answer<T: Send + 'static>(
    app: &Arc<App>,
    tree_size: Option<u64>,
    make: impl Fn(&proof::TreeView<'_>) -> Result<T, ProofError> + Send + 'static,
) -> Result<Json<T>, ApiError> {
    let log = app.store.log()?;
    let worker = Arc::clone(app);
    let made = tokio::task::spawn_blocking(move || worker.tree.answer(worker.store.data(), &*log, tree_size, make))
        .await
        .map_err(|e| ApiError::internal(&anyhow::anyhow!("the proof task failed: {e}")))?;
    made.map(Json).map_err(|error| ApiError::classified(&error))
}
