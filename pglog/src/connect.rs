//! The database: its URL named without a password, a small pool of
//! connections, and errors in the ledger's terms.

use ledger::{Hash, Head, LedgerError};
use postgres::config::Host;
use postgres::{Client, Config, NoTls};
use std::sync::{Mutex, OnceLock};

/// Connections kept for reuse; more are opened when all are in use.
const POOL_MAX_IDLE: usize = 8;

/// A failure inside a piece of database work: PostgreSQL's, or the
/// ledger's (a record that does not decode).
pub(crate) enum Error {
    Pg(postgres::Error),
    Ledger(LedgerError),
}

impl From<postgres::Error> for Error {
    fn from(error: postgres::Error) -> Error {
        Error::Pg(error)
    }
}

impl From<LedgerError> for Error {
    fn from(error: LedgerError) -> Error {
        Error::Ledger(error)
    }
}

pub(crate) type Work<T> = std::result::Result<T, Error>;

/// A database holding (or to hold) a log.
pub(crate) struct Database {
    location: String,
    config: Config,
    pool: Mutex<Vec<Client>>,
    /// The last head read or written, for when the database does not answer.
    last_head: Mutex<Head>,
    genesis: OnceLock<Hash>,
    /// Concurrent reads of the head share one query (`read.rs`).
    pub(crate) head_reads: crate::read::HeadReads,
}

/// The pooled connections close on a thread of their own: closing one
/// blocks on the client's runtime, which panics on an async worker (where
/// a service's last handle on the log may be dropped at shutdown).
impl Drop for Database {
    fn drop(&mut self) {
        let clients = std::mem::take(self.pool.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()));
        if !clients.is_empty() {
            let _ = std::thread::Builder::new().name("pglog-close".into()).spawn(move || drop(clients));
        }
    }
}

/// `url` without its password: `postgres://user@host:port/database`, for
/// messages and logs. A URL that does not parse loses everything between
/// its user's `:` and the `@`.
pub fn redacted(url: &str) -> String {
    match url.parse::<Config>() {
        Ok(config) => describe(&config),
        Err(_) => {
            let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
            match rest.rsplit_once('@') {
                Some((user, host)) => {
                    let user = user.split_once(':').map_or(user, |(user, _)| user);
                    format!("{scheme}://{user}@{host}")
                }
                None => url.to_string(),
            }
        }
    }
}

fn describe(config: &Config) -> String {
    let user = config.get_user().unwrap_or("");
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{database}")
}

/// The text of an error and its causes, PostgreSQL's own message included.
fn detail_of(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        return text;
    }
    ledger::error::chain(error)
}

impl Database {
    /// Parses `url`; connects only when first used.
    pub fn new(url: &str) -> ledger::Result<Database> {
        let config: Config = url.parse().map_err(|error: postgres::Error| LedgerError::Database {
            location: redacted(url),
            detail: format!(
                "the URL does not parse ({}); write it as postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
                detail_of(&error)
            ),
        })?;
        Ok(Database {
            location: describe(&config),
            config,
            pool: Mutex::new(Vec::new()),
            last_head: Mutex::new(Head { position: 0, hash: [0; 32] }),
            genesis: OnceLock::new(),
            head_reads: crate::read::HeadReads::default(),
        })
    }

    /// The database, named without a password.
    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn set_genesis(&self, genesis: Hash) {
        let _ = self.genesis.set(genesis);
        let mut last = ledger::sync::lock_plain(&self.last_head);
        if last.position == 0 {
            last.hash = genesis;
        }
    }

    pub fn genesis(&self) -> Hash {
        self.genesis.get().copied().unwrap_or([0; 32])
    }

    pub fn last_head(&self) -> Head {
        *ledger::sync::lock_plain(&self.last_head)
    }

    /// Records a head read or committed (heads only move forward).
    pub fn note_head(&self, head: Head) {
        let mut last = ledger::sync::lock_plain(&self.last_head);
        if head.position >= last.position {
            *last = head;
        }
    }

    /// A new connection with the settings every one of ours has.
    pub fn connect(&self) -> ledger::Result<Client> {
        let mut client = self.config.connect(NoTls).map_err(|error| LedgerError::Database {
            location: self.location.clone(),
            detail: format!(
                "cannot connect ({}); check that PostgreSQL runs there and that the URL's host, port, user, \
                 password and database are right",
                detail_of(&error)
            ),
        })?;
        // Acknowledged means on the server's disk, whatever the server's default.
        client.batch_execute("SET synchronous_commit = on").map_err(|error| self.failure(&error))?;
        Ok(client)
    }

    /// A PostgreSQL error as the ledger's.
    pub fn failure(&self, error: &postgres::Error) -> LedgerError {
        LedgerError::Database { location: self.location.clone(), detail: detail_of(error) }
    }

    pub fn ledger_error(&self, error: Error) -> LedgerError {
        match error {
            Error::Pg(error) => self.failure(&error),
            Error::Ledger(error) => error,
        }
    }

    /// Runs `work` with a pooled connection, off any async runtime (the
    /// client would panic on one of its workers).
    pub fn with_client<T: Send>(&self, work: impl FnOnce(&mut Client) -> Work<T> + Send) -> ledger::Result<T> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return std::thread::scope(|scope| match scope.spawn(|| self.with_client_here(work)).join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            });
        }
        self.with_client_here(work)
    }

    fn with_client_here<T>(&self, work: impl FnOnce(&mut Client) -> Work<T>) -> ledger::Result<T> {
        let pooled = ledger::sync::lock_plain(&self.pool).pop();
        let mut client = match pooled {
            Some(client) if !client.is_closed() => client,
            _ => self.connect()?,
        };
        let result = work(&mut client);
        if !client.is_closed() {
            let mut pool = ledger::sync::lock_plain(&self.pool);
            if pool.len() < POOL_MAX_IDLE {
                pool.push(client);
            }
        }
        result.map_err(|error| self.ledger_error(error))
    }
}
