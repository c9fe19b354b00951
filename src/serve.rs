//! `yibao serve`: the ledger over HTTP (axum on tokio). Thin like the rest
//! of the binary: the rules live in the crates; this file parses requests,
//! checks tokens and roles, and shapes answers.
//!
//! Coverage is answered from the per-person store, kept at the log's head
//! by the service (caught up after each acknowledged write, or before a
//! read when the log head moved), through a cache of the persons read
//! bounded by `--cache-mb` (`persons.rs`): the whole projection is never
//! loaded, so the service is ready as soon as the store has folded the
//! log's tail. The family projection (bindings, applications) is kept
//! whole in memory and its checkpoint saved on shutdown.
//!
//! Connections are served by hyper with a time-out on reading the request
//! head; a body is read only for a caller with a valid token, within its
//! own time-out and budget (`--max-reading`), before the request counts
//! against `--max-in-flight`: slow or unauthenticated clients cannot hold
//! the slots that lookups need.

mod access;
mod audit;
mod auth;
mod certificate;
mod error;
mod family;
pub(crate) mod lookup;
mod metrics;
mod openapi;
mod persons;
mod poison;
mod proof;
mod replica;
mod store;
mod web;
mod write;

use crate::commands::open;
use crate::exit::BadInput;
use anyhow::{Context, Result};
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{BoxError, Json, Router};
use error::ApiError;
use ledger::{Date, Identity, OpenMode, RegionCode};
use operations::coverage::{HistoryAnswer, Page, UnpaidError, UnpaidPage};
use operations::import::HeadAnswer;
use operations::Location;
use projections::coverage::{PersonStore, StoreError};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

/// Memory for the persons cached by default (`--cache-mb`), in MiB.
const DEFAULT_CACHE_MIB: usize = 256;

/// Largest request body.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The flags of `yibao serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the first line printed
    /// is `listening on ADDR`).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Bearer tokens and their roles (TOML: [[token]] name, token, role =
    /// office | channel | auditor).
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Serve without tokens: anyone reaching the address may read and post
    /// everything. For a laptop demo only: refused unless --addr is a
    /// loopback address (127.0.0.1, ::1, localhost).
    #[arg(long, conflicts_with = "tokens")]
    insecure_no_auth: bool,
    /// Requests served at once; more are answered 503 with Retry-After
    /// (load shedding) instead of queueing.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    max_in_flight: u32,
    /// Seconds a request may take before it is answered 503 (`timeout`);
    /// writes already handed to the ledger still finish.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    request_timeout: u64,
    /// Seconds a client may take to send a request's head (request line
    /// and headers); then the connection is closed.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    header_read_timeout: u64,
    /// Seconds a client may take to send a request's body; then it is
    /// answered 408 `body_timeout`.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    body_read_timeout: u64,
    /// Bodies read at once (authenticated callers only; nobody's body is
    /// read before the token is checked); more are answered 503. Apart
    /// from --max-in-flight, which counts requests once their body is read.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    max_reading: u32,
    /// MiB of memory for persons read from the per-person store (an LRU
    /// cache bounded by an estimate of their bytes): the service's memory
    /// for coverage, whatever the ledger's size (the whole projection is
    /// never loaded).
    #[arg(long, default_value_t = DEFAULT_CACHE_MIB as u64, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    cache_mb: u64,
    /// On a PostgreSQL store (--store), milliseconds between two looks at
    /// the log's head: what other replicas appended is folded into the
    /// shared person store and dropped from this one's cache. A sled
    /// service is the only writer and does not poll.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    follow_ms: u64,
    /// Back the ledger up into this directory every --backup-every-s
    /// seconds, as `yibao backup DIR` does (which a sled ledger the
    /// service holds cannot run beside it).
    #[arg(long, value_name = "DIR")]
    backup: Option<PathBuf>,
    /// Seconds between two backups into --backup.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    backup_every_s: u64,
}

/// The service's limits, from the flags.
struct Limits {
    max_in_flight: usize,
    request_timeout: Duration,
    header_read_timeout: Duration,
    body_read_timeout: Duration,
}

/// What every handler shares.
pub struct App {
    /// The log, reopened after a storage failure (`store.rs`).
    store: store::Store,
    /// Coverage: the per-person store at the log's head and its cache.
    persons: persons::Persons,
    /// Verify and replay jobs started over HTTP.
    audit: audit::Jobs,
    limits: Limits,
    /// Room for bodies being read (`--max-reading`).
    reading: Semaphore,
    /// Serializes rule check + append (std: held inside blocking tasks).
    write_lock: Mutex<()>,
    tokens: Option<auth::Tokens>,
    access: mpsc::Sender<access::AccessLine>,
    metrics: metrics::Metrics,
    /// Who reads the log for the person store (see `lookup.rs`).
    catching_up: lookup::CatchUp,
    /// The channels posted facts may name (`DIR/channels.toml`).
    channels: operations::channels::Channels,
    /// Whether other processes write the store, and how it is followed.
    following: replica::Following,
    /// The office's signing key (`DIR/keys/signing.key`), read at start:
    /// certificates carry their offline proofs when there is one.
    signing_key: Option<operations::keys::OfficeKey>,
    /// The Merkle tree store, opened at the first proof or certificate
    /// with proofs and kept at the head in memory after it.
    tree: operations::proof::HeldTree,
}

impl App {
    /// Folds the records the person store has not seen, up to the durable
    /// head (none: no lock taken for writing).
    fn catch_up(&self) -> Result<()> {
        self.catch_up_to(self.head_position())
    }

    /// Before a read: the store caught up; when it cannot be (its disk is
    /// full), the read is answered at the store's tip, which the answer's
    /// position names, and the reason goes to the log.
    fn catch_up_for_answer(&self) {
        if let Err(error) = self.catch_up() {
            eprintln!("error: {error:#}; answering at the person store's position");
        }
    }

    /// Writes are judged at the head only: a store that could not be
    /// caught up refuses them (503) until it is.
    fn require_head(&self, at: &persons::AtTip<'_>) -> Result<(), ApiError> {
        let head = self.head_position();
        if at.position() < head {
            let message = format!(
                "the person store is at position {} of {head} and could not be caught up; retry later",
                at.position()
            );
            return Err(ApiError::overloaded("store_behind", &message));
        }
        Ok(())
    }

    /// The durable head's position; while the log is being reopened, the
    /// person store's own (it answers as it is).
    fn head_position(&self) -> u64 {
        match self.store.head() {
            Some(head) => head.position,
            // A store that cannot be read now answers nothing: the read
            // that follows reports why.
            None => self.persons.tip().map_or(0, |tip| tip.position),
        }
    }

    /// The person store at the head, caught up first when the log moved
    /// (see `App::catch_up_for_read`).
    async fn at_head(self: &Arc<Self>) -> Result<persons::AtTip<'_>, ApiError> {
        if self.following.every.is_some() {
            return self.off_runtime(|| {
                if let Err(error) = self.catch_up() {
                    eprintln!("note: answering at the person store's position ({error:#})");
                }
                self.persons.read().map_err(|e| ApiError::internal(&e))
            });
        }
        let head = self.head_position();
        let position = self.persons.tip().map_err(|e| ApiError::internal(&e))?.position;
        if position < head {
            if let Err(error) = self.catch_up_for_read(head, head - position).await {
                eprintln!("note: answering at the person store's position {position} ({})", error.message);
            }
        }
        self.persons.read().map_err(|e| ApiError::internal(&e))
    }

    async fn record_access(&self, caller: &auth::Caller, person: &Identity, route: &'static str) {
        let line = access::AccessLine {
            who: caller.name.clone(),
            when: ledger::BeijingTime::now(),
            person: person.clone(),
            route,
        };
        // Every line is kept: when the queue is full, the lookup waits.
        let line = match self.access.try_send(line) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(line)) => line,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                eprintln!("error: the access log writer has stopped");
                return;
            }
        };
        self.metrics.n_access_waits.fetch_add(1, Ordering::Relaxed);
        if self.access.send(line).await.is_err() {
            eprintln!("error: the access log writer has stopped");
        }
    }
}

pub fn run(location: &Location, args: ServeArgs) -> Result<()> {
    let tokens = match (&args.tokens, args.insecure_no_auth) {
        (Some(path), _) => Some(auth::Tokens::load(path)?),
        (None, true) => {
            require_loopback(&args.addr)?;
            None
        }
        (None, false) => {
            return Err(
                BadInput("give --tokens FILE, or --insecure-no-auth to serve without access control".into()).into()
            )
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    let log = open(location, OpenMode::Existing)?;
    let channels = crate::commands::channels(location)?;
    let cache_bytes = usize::try_from(args.cache_mb).unwrap_or(usize::MAX).saturating_mul(1024 * 1024);
    let place = operations::PersonStorePlace::of(location);
    let persons = persons::Persons::open(&place, &*log, cache_bytes)?;
    let (access, access_writer) = access::start(&location.data)?;
    let signing_key = operations::keys::load(&location.data).map_err(crate::exit::classified)?;
    let following = match location.postgres_url() {
        Some(url) => replica::Following::replica(url, &location.describe(), Duration::from_millis(args.follow_ms))?,
        None => replica::Following::alone(),
    };
    let app = Arc::new(App {
        store: store::Store::new(location, log),
        persons,
        audit: audit::Jobs::default(),
        limits: Limits {
            max_in_flight: args.max_in_flight as usize,
            request_timeout: Duration::from_secs(args.request_timeout),
            header_read_timeout: Duration::from_secs(args.header_read_timeout),
            body_read_timeout: Duration::from_secs(args.body_read_timeout),
        },
        reading: Semaphore::new(args.max_reading as usize),
        write_lock: Mutex::new(()),
        tokens,
        access,
        metrics: metrics::Metrics::default(),
        catching_up: lookup::CatchUp::default(),
        channels,
        following,
        signing_key,
        tree: operations::proof::HeldTree::default(),
    });
    let backup = args.backup.map(|dir| (dir, Duration::from_secs(args.backup_every_s)));
    runtime.block_on(serve(Arc::clone(&app), &args.addr, backup))?;
    if let Some(refusal) = app.store.refusal() {
        eprintln!("note: writes were refused at shutdown ({}); every acknowledged write is durable", refusal.reason);
    }
    // The last sender goes with the app; the writer drains and stops.
    drop(app);
    access_writer.join().map_err(|_| anyhow::anyhow!("the access log writer panicked"))?;
    Ok(())
}

/// `yibao access ID`: the lookups of one person in `DIR/access.log`.
pub fn lookups_of(data: &Path, id: &str, as_json: bool) -> Result<()> {
    let person = crate::lookup::parse_identity(id)?;
    let path = data.join("access.log");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    let Some(key) = access::existing_key(data)? else {
        outln!("no lookups recorded: the service has not run on {}", data.display());
        return Ok(());
    };
    let wanted = access::PersonKeys::of(&key, &person);
    let mut n_found = 0usize;
    for (index, line) in text.lines().enumerate() {
        let recorded: access::Recorded = serde_json::from_str(line)
            .with_context(|| format!("{}: line {}: not an access-log line", path.display(), index + 1))?;
        if !wanted.matches(&recorded.person_key) {
            continue;
        }
        n_found += 1;
        if as_json {
            outln!("{line}");
        } else {
            outln!("{}  {:<16} {}", recorded.when, recorded.who, recorded.route);
        }
    }
    if !as_json {
        outln!("{n_found} lookup(s) of {} in {}", person.masked(), path.display());
    }
    Ok(())
}

async fn serve(app: Arc<App>, addr: &str, backup: Option<(PathBuf, Duration)>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr()?;
    // The first line names the address (scripts and tests read it); nobody
    // reading it is no reason to stop serving.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on {bound}").and_then(|()| stdout.flush());
    let watcher = tokio::spawn(watch_store(Arc::clone(&app)));
    let follower = app.following.every.map(|every| tokio::spawn(replica::follow(Arc::clone(&app), every)));
    let backups = backup.map(|(dir, every)| tokio::spawn(back_up_every(Arc::clone(&app), dir, every)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(app.limits.header_read_timeout);
    let router = router(Arc::clone(&app));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, most likely: let some close.
                eprintln!("error: accepting a connection: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let mut stopping = stopping.clone();
        // At shutdown the request in flight is finished, then the
        // connection closed.
        connections.spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stopping.wait_for(|stop| *stop) => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    watcher.abort();
    if let Some(follower) = follower {
        follower.abort();
    }
    if let Some(backups) = backups {
        backups.abort();
    }
    eprintln!("stopped: in-flight requests finished");
    Ok(())
}

/// `--backup DIR`: the records appended since the last backup, every
/// `every`, through the service's own open log; a failure is said on
/// stderr and tried again at the next tick.
async fn back_up_every(app: Arc<App>, dir: PathBuf, every: Duration) {
    loop {
        let (worker, dir_now) = (Arc::clone(&app), dir.clone());
        let done = tokio::task::spawn_blocking(move || {
            let log = worker.store.log().map_err(|error| error.message)?;
            operations::backup::backup_log(&*log, &dir_now, operations::backup::DEFAULT_SEGMENT_BYTES)
                .map_err(|error| operations::error::chain(&error))
        })
        .await;
        match done {
            Ok(Ok(done)) if done.n_records > 0 => {
                eprintln!("backup: positions {}..{} into {}", done.from.position + 1, done.head.position, done.dir)
            }
            Ok(Ok(_)) => {}
            Ok(Err(message)) => eprintln!("error: backup into {}: {message}", dir.display()),
            Err(panicked) => eprintln!("error: backup into {}: {panicked}", dir.display()),
        }
        tokio::time::sleep(every).await;
    }
}

/// While writes are refused after a storage failure, looks for space and
/// reopens the log (`store.rs`).
async fn watch_store(app: Arc<App>) {
    loop {
        tokio::time::sleep(store::PROBE_INTERVAL).await;
        if app.store.refusal().is_none() {
            continue;
        }
        let worker = Arc::clone(&app);
        let _ = tokio::task::spawn_blocking(move || worker.store.recover()).await;
    }
}

/// `--insecure-no-auth` serves everyone who reaches the address: only a
/// loopback address keeps that to this machine.
fn require_loopback(addr: &str) -> Result<()> {
    use std::net::ToSocketAddrs;
    let resolved: Vec<std::net::SocketAddr> =
        addr.to_socket_addrs().map_err(|e| BadInput(format!("--addr {addr}: {e}")))?.collect();
    if resolved.is_empty() || resolved.iter().any(|address| !address.ip().is_loopback()) {
        return Err(BadInput(format!(
            "--insecure-no-auth serves without access control, so only on a loopback address \
             (127.0.0.1, ::1, localhost), and --addr {addr} is not one; give --tokens FILE to serve on it"
        ))
        .into());
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Every route served, with its method. The router is built from this
/// table, and the OpenAPI document is checked against it both ways (a unit
/// test in `openapi`; `tests/serve.rs` calls every documented route).
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<Arc<App>>)> {
    vec![
        ("get", "/", get(web::index)),
        ("get", "/web/app.js", get(web::app_js)),
        ("get", "/web/style.css", get(web::style_css)),
        ("get", "/v1/health", get(health)),
        ("get", "/v1/openapi.json", get(|| async { Json(openapi::document()) })),
        ("get", "/v1/metrics", get(metrics_text)),
        ("get", "/v1/coverage/{id_number}", get(coverage)),
        ("get", "/v1/persons/{id_number}/history", get(history)),
        ("get", "/v1/unpaid", get(unpaid)),
        ("post", "/v1/events", post(write::post_events)),
        ("get", "/v1/certificates/{id_number}/{year}", get(certificate::certificate)),
        ("post", "/v1/family/bindings", post(family::bind)),
        ("post", "/v1/family/bindings/revoke", post(family::revoke)),
        ("post", "/v1/family/applications", post(family::apply)),
        ("post", "/v1/family/applications/{application_id}/{step}", post(family::step)),
        ("get", "/v1/family/persons/{id_number}", get(family::person)),
        ("get", "/v1/family/stuck", get(family::stuck)),
        ("post", "/v1/audit/verify", post(audit::verify)),
        ("post", "/v1/audit/replay", post(audit::replay)),
        ("get", "/v1/audit/jobs/{job}", get(audit::job)),
        ("get", "/v1/proof/inclusion", get(proof::inclusion)),
        ("get", "/v1/proof/consistency", get(proof::consistency)),
    ]
}

pub fn router(app: Arc<App>) -> Router {
    let limits = tower::ServiceBuilder::new()
        .layer(HandleErrorLayer::new({
            let app = Arc::clone(&app);
            move |error: BoxError| {
                let app = Arc::clone(&app);
                async move { overloaded(&app, &error) }
            }
        }))
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(app.limits.max_in_flight))
        .timeout(app.limits.request_timeout);
    let mut router = Router::new();
    for (_, path, method_router) in routes() {
        router = router.route(path, method_router);
    }
    router
        .route_layer(middleware::from_fn_with_state(Arc::clone(&app), track))
        .fallback(|| async { ApiError::not_found("no such route; see /v1/openapi.json") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(limits)
        .layer(middleware::from_fn_with_state(Arc::clone(&app), intake))
        .layer(middleware::from_fn(no_store))
        .with_state(app)
}

fn overloaded(app: &App, error: &BoxError) -> ApiError {
    app.metrics.n_shed.fetch_add(1, Ordering::Relaxed);
    if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::overloaded("timeout", "the request took too long; retry later")
    } else {
        ApiError::overloaded("overloaded", "too many requests at once; retry later")
    }
}

fn too_large() -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("the body is above {MAX_BODY_BYTES} bytes"))
}

/// Before a request counts against `--max-in-flight`. A declared length
/// above the limit is refused before the body is read; a body is read only
/// for a caller with a valid token (the others are answered 401 at once),
/// within `--body-read-timeout` and the `--max-reading` budget. A request
/// without a body goes straight on.
async fn intake(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return too_large().into_response();
    }
    let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
    if !chunked && declared.unwrap_or(0) == 0 {
        return next.run(request).await;
    }
    if let Err(refused) = auth::Tokens::caller(app.tokens.as_ref(), request.headers()) {
        return refused.into_response();
    }
    let Ok(permit) = app.reading.try_acquire() else {
        app.metrics.n_shed.fetch_add(1, Ordering::Relaxed);
        return ApiError::overloaded("overloaded", "too many request bodies arriving at once; retry later")
            .into_response();
    };
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(app.limits.body_read_timeout, axum::body::to_bytes(body, MAX_BODY_BYTES)).await;
    drop(permit);
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(error)) if is_too_long(&error) => return too_large().into_response(),
        Ok(Err(_)) => return ApiError::bad_input(None, "the request body could not be read").into_response(),
        Err(_) => return body_timeout(&app).into_response(),
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

fn is_too_long(error: &axum::Error) -> bool {
    std::error::Error::source(error).is_some_and(|cause| cause.is::<http_body_util::LengthLimitError>())
}

/// The body did not arrive in time: 408, and the connection is closed.
fn body_timeout(app: &App) -> Response {
    app.metrics.n_body_timeouts.fetch_add(1, Ordering::Relaxed);
    let seconds = app.limits.body_read_timeout.as_secs();
    let message = format!("the request body did not arrive within {seconds} s");
    let mut response = ApiError::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", message).into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Answers under `/v1/` may carry personal data: no cache may keep them.
async fn no_store(request: Request, next: Next) -> Response {
    let personal = request.uri().path().starts_with("/v1/");
    let mut response = next.run(request).await;
    if personal {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn track(State(app): State<Arc<App>>, matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    app.metrics.record(&route, response.status().as_u16(), started.elapsed());
    response
}

/// `GET /v1/health`: `ok` with the head; `refusing_writes` (503) with the
/// reason while the store refuses writes.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    status: HealthStatus,
    /// Why writes are refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// `null` while the log is being reopened.
    head: Option<HeadAnswer>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    RefusingWrites,
}

/// 200 `ok`; 503 while the store refuses writes, with the reason.
async fn health(State(app): State<Arc<App>>) -> Response {
    let head = app.off_runtime(|| app.store.head()).map(HeadAnswer::from);
    match (app.store.refusal(), head) {
        (None, Some(head)) => Json(Health { status: HealthStatus::Ok, reason: None, head: Some(head) }).into_response(),
        (refusal, head) => {
            let reason = refusal.map_or_else(|| "the log is being reopened".to_string(), |r| r.reason);
            let body = Health { status: HealthStatus::RefusingWrites, reason: Some(reason), head };
            (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], Json(body)).into_response()
        }
    }
}

async fn metrics_text(State(app): State<Arc<App>>) -> impl IntoResponse {
    app.off_runtime(|| metrics_of(&app))
}

fn metrics_of(app: &App) -> impl IntoResponse {
    let head = app.head_position();
    let projection = app.persons.tip().map_or(0, |tip| tip.position);
    let lag = app.lag();
    let cache = app.persons.cache_figures();
    let store = &app.store;
    let figures = [
        (
            "yibao_store_persons_loaded_total",
            "counter",
            "Persons read from the per-person store for lookups and writes (not listings).",
            app.persons.n_loaded.load(Ordering::Relaxed),
        ),
        (
            "yibao_cache_hits_total",
            "counter",
            "Persons answered from the cache.",
            app.persons.n_cache_hits.load(Ordering::Relaxed),
        ),
        ("yibao_cache_bytes", "gauge", "Estimated bytes of the persons cached.", cache.bytes),
        ("yibao_cache_limit_bytes", "gauge", "The cache's bound (--cache-mb).", cache.limit_bytes),
        ("yibao_cache_persons", "gauge", "Persons cached.", cache.n_persons),
        (
            "yibao_store_write_failures_total",
            "counter",
            "Appends that failed on storage.",
            store.n_write_failures.load(Ordering::Relaxed),
        ),
        (
            "yibao_store_writes_refused_total",
            "counter",
            "Writes answered at once while the store refused writes.",
            store.n_writes_refused.load(Ordering::Relaxed),
        ),
        (
            "yibao_store_reopens_total",
            "counter",
            "Times the log was reopened after a storage failure.",
            store.n_reopens.load(Ordering::Relaxed),
        ),
        (
            "yibao_store_refusing_writes",
            "gauge",
            "1 while the store refuses writes after a storage failure.",
            u64::from(store.refusal().is_some()),
        ),
        (
            "yibao_replica_lag_records",
            "gauge",
            "Records appended to the log that this replica's person store has not folded.",
            lag.records,
        ),
    ];
    let seconds = [(
        "yibao_replica_lag_seconds",
        "Seconds since the oldest append this replica's person store has not folded (0: none).",
        lag.seconds,
    )];
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], app.metrics.render(head, projection, &figures, &seconds))
}

fn identity(text: &str) -> Result<Identity, ApiError> {
    // The error names the field, never echoes the number.
    text.parse().map_err(|_| ApiError::bad_input(Some("id_number"), "not a valid ID number"))
}

fn date(text: &str, field: &str) -> Result<Date, ApiError> {
    text.parse().map_err(|e| ApiError::bad_input(Some(field), format!("{field}: {e}")))
}

#[derive(Deserialize)]
struct CoverageQuery {
    year: Option<u16>,
    on: Option<String>,
    /// What was known at this moment (RFC 3339, transaction time): answered
    /// from a fresh rebuild of the facts recorded by then.
    as_of: Option<String>,
}

async fn coverage(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    UrlPath(id_number): UrlPath<String>,
    query: Result<Query<CoverageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let caller = auth::Tokens::caller(app.tokens.as_ref(), &headers)?;
    caller.may_read()?;
    let Query(query) = query.map_err(|e| ApiError::bad_input(None, e.body_text()))?;
    let person = identity(&id_number)?;
    let on = query.on.as_deref().map(|text| date(text, "on")).transpose()?;
    let as_of: Option<ledger::UtcTime> = query
        .as_of
        .as_deref()
        .map(|text| text.parse().map_err(|e| ApiError::bad_input(Some("as_of"), format!("as_of: {e}"))))
        .transpose()?;
    app.record_access(&caller, &person, "/v1/coverage/{id_number}").await;
    let asked = operations::coverage::CoverageQuery { person, year: query.year, on };
    let answer = match as_of {
        Some(moment) => app.coverage_as_of(asked, moment).await?,
        None => {
            let at = app.at_head().await?;
            let person = app.off_runtime(|| at.person(&asked.person)).map_err(|e| store_failed(&e))?;
            operations::coverage::answer(&person, &asked).map_err(|e| ApiError::classified(&e))?
        }
    };
    let body = lookup::body(&answer)
        .map_err(|e| ApiError::internal(&anyhow::Error::new(e).context("writing the coverage answer")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn history(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    UrlPath(id_number): UrlPath<String>,
) -> Result<Json<HistoryAnswer>, ApiError> {
    let caller = auth::Tokens::caller(app.tokens.as_ref(), &headers)?;
    caller.may_read()?;
    let person = identity(&id_number)?;
    app.record_access(&caller, &person, "/v1/persons/{id_number}/history").await;
    let worker = Arc::clone(&app);
    let answer = tokio::task::spawn_blocking(move || {
        worker.with_projections(|at| {
            let log = worker.store.log()?;
            let coverage = at.person(&person).map_err(|e| store_failed(&e))?;
            let family = &at.family_of_person(&person).map_err(|e| store_failed(&e))?;
            operations::coverage::history_of_streams(&log, &coverage, family, &person)
                .map_err(|e| ApiError::classified(&e))
        })?
    })
    .await
    .map_err(|e| ApiError::internal(&anyhow::anyhow!("history task failed: {e}")))??;
    Ok(Json(answer))
}

#[derive(Deserialize)]
struct UnpaidQuery {
    region: Option<String>,
    year: Option<u16>,
    page: Option<usize>,
    per_page: Option<usize>,
}

async fn unpaid(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    query: Result<Query<UnpaidQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UnpaidPage>, ApiError> {
    let caller = auth::Tokens::caller(app.tokens.as_ref(), &headers)?;
    caller.may_read()?;
    let Query(query) = query.map_err(|e| ApiError::bad_input(None, e.body_text()))?;
    let region_text = query.region.ok_or_else(|| ApiError::bad_input(Some("region"), "region is required"))?;
    let region: RegionCode =
        region_text.parse().map_err(|e| ApiError::bad_input(Some("region"), format!("region: {e}")))?;
    let year = query.year.ok_or_else(|| ApiError::bad_input(Some("year"), "year is required"))?;
    let page = Page::new(query.page, query.per_page).map_err(|e| ApiError::classified(&e))?;
    let worker = Arc::clone(&app);
    let listed = tokio::task::spawn_blocking(move || worker.unpaid(region, year, page))
        .await
        .map_err(|e| ApiError::internal(&anyhow::anyhow!("the unpaid task failed: {e}")))??;
    Ok(Json(listed))
}

impl App {
    /// The unpaid list's page, the store's persons walked in key order a
    /// step at a time in one read transaction (writes go on meanwhile):
    /// memory is a step's, not the ledger's; time grows with the persons,
    /// as the count of the whole list needs the whole walk.
    fn unpaid(self: &Arc<Self>, region: RegionCode, year: u16, page: Page) -> Result<UnpaidPage, ApiError> {
        self.catch_up_for_answer();
        self.persons
            .with_reader(|reader| reader.in_snapshot(|store| unpaid_in(store, region, year, page)))
            .map_err(|e| store_failed(&e))?
    }
}

/// The unpaid list's page from the store as `store` reads it.
fn unpaid_in(store: &PersonStore, region: RegionCode, year: u16, page: Page) -> Result<UnpaidPage, ApiError> {
    operations::coverage::unpaid_in_store(store, region, year, page)
        .map_err(|e| store_failed(&e))?
        .map_err(|e| ApiError::classified(&UnpaidError::from(e)))
}

/// The person store failed: a 500 naming it.
pub(crate) fn store_failed(error: &StoreError) -> ApiError {
    ApiError::internal(&anyhow::anyhow!("{}", operations::error::chain(error)))
}
