//! Several `yibao serve` processes on one PostgreSQL database: each
//! follows the log's head (polled every `--follow-ms`) and catches the
//! shared person store up — one process writes a chunk, the others find
//! the store's tip moved and drop from their caches the persons those
//! records name (`persons.rs`) — and reports how far it is behind. Facts
//! the rules decide are judged by one process at a time across the
//! replicas (`Following::decide_alone`: a PostgreSQL advisory lock held
//! from the catch-up they are judged at through their append). A sled
//! service owns its directory and is the only writer: it does not poll.

use super::error::ApiError;
use super::App;
use ledger::sync::lock_plain;
use ledger::UtcTime;
use operations::location::DECISION_LOCK;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How the service follows the log.
pub struct Following {
    /// How often the head is polled; `None` for a store no other process
    /// writes (sled).
    pub every: Option<Duration>,
    /// On a shared store: the connection that takes the decision lock.
    decisions: Option<Mutex<postgres::Client>>,
    /// Its URL, to connect again when the connection closed (a restart or
    /// a failover of the database).
    url: String,
}

/// The decision connection closes on a thread of its own: closing blocks
/// on the client's runtime, which panics on an async worker (where the
/// service's last handle goes when the following task is dropped at
/// shutdown).
impl Drop for Following {
    fn drop(&mut self) {
        if let Some(decisions) = self.decisions.take() {
            let client = decisions.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
            let _ = std::thread::Builder::new().name("decisions-close".into()).spawn(move || drop(client));
        }
    }
}

/// Decisions are this process's alone until dropped.
pub struct DecidingAlone<'a> {
    connection: Option<MutexGuard<'a, postgres::Client>>,
}

impl Drop for DecidingAlone<'_> {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.as_mut() {
            // A connection that failed took its session's lock with it.
            if let Err(error) = connection.execute("SELECT pg_advisory_unlock($1)", &[&DECISION_LOCK]) {
                eprintln!("error: releasing the decision lock: {error}");
            }
        }
    }
}

impl Following {
    /// A sled service: the only writer.
    pub fn alone() -> Following {
        Following { every: None, decisions: None, url: String::new() }
    }

    /// A replica on the PostgreSQL database at `url` (`location` names it
    /// without its password), polling the head every `every`. Called
    /// outside the async runtime.
    pub fn replica(url: &str, location: &str, every: Duration) -> anyhow::Result<Following> {
        let connection = postgres::Client::connect(url, postgres::NoTls)
            .map_err(|e| anyhow::anyhow!("connecting to {location} for the decision lock: {e}"))?;
        Ok(Following { every: Some(every), decisions: Some(Mutex::new(connection)), url: url.to_string() })
    }

    /// Waits until no other replica judges or appends a decided fact, and
    /// keeps them waiting until the answer is dropped. Blocking: call it
    /// off the async workers, before the catch-up the facts are judged at.
    pub fn decide_alone(&self) -> Result<DecidingAlone<'_>, ApiError> {
        let Some(decisions) = &self.decisions else { return Ok(DecidingAlone { connection: None }) };
        let mut connection = lock_plain(decisions);
        if connection.is_closed() {
            *connection = postgres::Client::connect(&self.url, postgres::NoTls).map_err(|error| {
                ApiError::overloaded(
                    "store_unavailable",
                    &format!("the database does not answer ({error}); retry later"),
                )
            })?;
        }
        connection.execute("SELECT pg_advisory_lock($1)", &[&DECISION_LOCK]).map_err(|error| {
            ApiError::overloaded(
                "store_unavailable",
                &format!("the decision lock could not be taken ({error}); retry later"),
            )
        })?;
        Ok(DecidingAlone { connection: Some(connection) })
    }
}

/// How far this replica is behind the log's head.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Lag {
    pub records: u64,
    /// Since the first record past the person store's tip was recorded
    /// (0 when none is unseen).
    pub seconds: f64,
}

impl App {
    /// Work on the person store or the log from an async handler. The
    /// PostgreSQL client blocks on a runtime of its own, which tokio
    /// refuses inside a task: on a shared store the work runs with the
    /// worker handed over to the blocking pool's rules; sled's and
    /// SQLite's run as they are.
    pub(super) fn off_runtime<T>(&self, work: impl FnOnce() -> T) -> T {
        if self.following.every.is_some() {
            tokio::task::block_in_place(work)
        } else {
            work()
        }
    }

    /// The records past the person store's tip and the age of the first
    /// (blocking: reads the log's head and that record).
    pub(super) fn lag(&self) -> Lag {
        let head = self.head_position();
        let tip = self.persons.tip().map_or(0, |tip| tip.position);
        let records = head.saturating_sub(tip);
        if records == 0 {
            return Lag::default();
        }
        let mut recorded_at = None;
        if let Ok(log) = self.store.log() {
            let log: &dyn ledger::LogReader = &*log;
            let _ = log.scan(tip + 1, tip + 1, |envelope| {
                recorded_at = Some(envelope.head.recorded_at);
                Ok(())
            });
        }
        let micros = recorded_at.map_or(0, |at: UtcTime| UtcTime::now().0.saturating_sub(at.0).max(0));
        Lag { records, seconds: micros as f64 / 1e6 }
    }
}

/// Polls the head every `every` and catches the person store up to it;
/// runs until the service stops.
pub async fn follow(app: Arc<App>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let worker = Arc::clone(&app);
        let caught = tokio::task::spawn_blocking(move || worker.catch_up()).await;
        match caught {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("error: following the log: {error:#}"),
            Err(error) => eprintln!("error: following the log: the task failed: {error}"),
        }
    }
}
