//! Where a ledger is: its data directory (channels, local checkpoints,
//! keys, the access log) and the store holding its log and person store —
//! sled and SQLite in that directory, or a PostgreSQL database that
//! several service processes share.

use crate::error::{Classified, Kind};
use ledger::log::restore::ExportedRecord;
use ledger::{Head, LedgerError, LogStore, OpenMode, SledLog};
use std::path::{Path, PathBuf};

/// The URL schemes of a PostgreSQL store.
pub const POSTGRES_SCHEMES: [&str; 2] = ["postgres://", "postgresql://"];

/// The PostgreSQL advisory lock a process holds while it judges facts the
/// rules decide and appends them, so that processes on one database (the
/// service's replicas, a CLI command) decide one at a time. Apart from the
/// log's and the person store's own locks, which are taken inside it.
pub const DECISION_LOCK: i64 = 0x7969_6261_6f64_6563; // "yibaodec"

/// Decisions are this process's alone while it is held: on PostgreSQL a
/// connection holding `DECISION_LOCK` (released with the connection when
/// dropped); nothing on sled, whose directory one process owns.
pub struct DecidingAlone {
    _connection: Option<postgres::Client>,
}

/// The store holding the log and the person store.
#[derive(Clone, PartialEq, Eq)]
pub enum Backend {
    /// The sled log and the SQLite person store in the data directory.
    Sled,
    /// Both in the PostgreSQL database at this URL (it may hold a
    /// password: print `Location::describe`, never the URL).
    Postgres(String),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Sled => f.write_str("Sled"),
            Backend::Postgres(url) => write!(f, "Postgres({})", without_password(url)),
        }
    }
}

/// A ledger's place: what every command and the service open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub data: PathBuf,
    pub store: Backend,
}

/// Why `Location::restore_log` rebuilt nothing.
#[derive(Debug)]
pub enum RestoreStopped<E> {
    /// One of the caller's items was an error.
    Input(E),
    /// The records do not chain, or the store failed.
    Storage(LedgerError),
}

/// A store that is not one of the accepted forms.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{given}` is not a store: give postgres://USER@HOST:PORT/DATABASE (or postgresql://…), \
     or no store for the sled log in the data directory"
)]
pub struct StoreChoiceError {
    /// The value given, without a password.
    pub given: String,
}

impl Classified for StoreChoiceError {
    fn kind(&self) -> Kind {
        Kind::BadInput
    }
}

impl Location {
    /// The sled ledger in `data`.
    pub fn sled(data: &Path) -> Location {
        Location { data: data.to_path_buf(), store: Backend::Sled }
    }

    /// `store` absent: sled in `data`; a `postgres://` or `postgresql://`
    /// URL: that database. Anything else is refused.
    pub fn choose(data: &Path, store: Option<&str>) -> Result<Location, StoreChoiceError> {
        let Some(url) = store else { return Ok(Location::sled(data)) };
        let scheme_ok = POSTGRES_SCHEMES.iter().any(|scheme| url.starts_with(scheme) && url.len() > scheme.len());
        if !scheme_ok {
            return Err(StoreChoiceError { given: without_password(url) });
        }
        Ok(Location { data: data.to_path_buf(), store: Backend::Postgres(url.to_string()) })
    }

    /// The data directory.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// The PostgreSQL URL, when the store is one.
    pub fn postgres_url(&self) -> Option<&str> {
        match &self.store {
            Backend::Sled => None,
            Backend::Postgres(url) => Some(url),
        }
    }

    /// Where the log is, for messages: the data directory, or the
    /// database named without its password.
    pub fn describe(&self) -> String {
        match &self.store {
            Backend::Sled => self.data.display().to_string(),
            Backend::Postgres(url) => without_password(url),
        }
    }

    /// Waits until no other process on the database judges or appends a
    /// decided fact, and keeps them waiting until the answer is dropped.
    /// Take it before reading the projections a decision is judged on.
    pub fn decide_alone(&self) -> Result<DecidingAlone, LedgerError> {
        let Backend::Postgres(url) = &self.store else { return Ok(DecidingAlone { _connection: None }) };
        let failed = |error: postgres::Error| LedgerError::Database {
            location: without_password(url),
            detail: format!("taking the decision lock: {error}"),
        };
        let mut connection = postgres::Client::connect(url, postgres::NoTls).map_err(failed)?;
        connection.execute("SELECT pg_advisory_lock($1)", &[&DECISION_LOCK]).map_err(failed)?;
        Ok(DecidingAlone { _connection: Some(connection) })
    }

    /// Opens the log (creating it with `OpenMode::Create`).
    pub fn open_log(&self, mode: OpenMode) -> Result<Box<dyn LogStore>, LedgerError> {
        Ok(match &self.store {
            Backend::Sled => Box::new(SledLog::open(&self.data, mode)?),
            Backend::Postgres(url) => Box::new(pglog::PgLog::open(url, mode)?),
        })
    }

    /// Rebuilds the log here (an empty directory or database) from a log
    /// header's stored bytes and its records in order, on either backend,
    /// all or nothing. An item that is the caller's own error (a line that
    /// does not read, a damaged backup segment) stops the restore, which
    /// removes what it wrote, and is given back as it was.
    pub fn restore_log<E>(
        &self,
        header_bytes: &[u8],
        records: impl Iterator<Item = Result<ExportedRecord, E>>,
    ) -> Result<Head, RestoreStopped<E>> {
        let mut stopped = None;
        let records = records.map_while(|item| match item {
            Ok(record) => Some(Ok(record)),
            Err(error) => {
                stopped = Some(error);
                Some(Err(LedgerError::Io(std::io::Error::other("the records stopped at one that does not read"))))
            }
        });
        let result = match &self.store {
            Backend::Sled => ledger::log::restore::restore(&self.data, header_bytes, records),
            Backend::Postgres(url) => pglog::restore(url, header_bytes, records),
        };
        if let Some(error) = stopped {
            return Err(RestoreStopped::Input(error));
        }
        result.map_err(RestoreStopped::Storage)
    }
}

/// `url` with any password removed: `postgres://user@host:port/db`.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (head, query) = match rest.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (rest, None),
    };
    // The last `@` ends the user information, whatever a password holds.
    let named = match head.rsplit_once('@') {
        Some((user_info, host_and_path)) => {
            let user = user_info.split_once(':').map_or(user_info, |(user, _password)| user);
            format!("{scheme}://{user}@{host_and_path}")
        }
        None => format!("{scheme}://{head}"),
    };
    // Query parameters may carry a password too.
    let kept: Vec<&str> =
        query.into_iter().flat_map(|q| q.split('&')).filter(|p| !p.starts_with("password=")).collect();
    if kept.is_empty() {
        named
    } else {
        format!("{named}?{}", kept.join("&"))
    }
}

/// ` at LOCATION` for a message about the ledger there, or nothing when
/// `error` (or what caused it) names the location already, as a database's
/// errors do: a message names the ledger once.
pub fn at_unless_named(location: &str, error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = cause {
        if error.to_string().contains(location) {
            return String::new();
        }
        cause = error.source();
    }
    format!(" at {location}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_named() {
        assert_eq!(without_password("postgres://yibao:secret@db:5432/ledger"), "postgres://yibao@db:5432/ledger");
        assert_eq!(
            without_password("postgresql://u@h/d?password=x&sslmode=require"),
            "postgresql://u@h/d?sslmode=require"
        );
        assert_eq!(without_password("postgres://h:5432/d"), "postgres://h:5432/d");
        assert_eq!(without_password("postgres://u:a/b@c@h/d"), "postgres://u@h/d");
        let location = Location::choose(Path::new("d"), Some("postgres://a:pw@h/db")).expect("a postgres URL");
        assert!(!format!("{location:?} {}", location.describe()).contains("pw"));
    }

    #[test]
    fn only_postgres_urls_and_no_store_are_accepted() {
        assert_eq!(Location::choose(Path::new("d"), None).expect("sled").store, Backend::Sled);
        assert!(Location::choose(Path::new("d"), Some("postgresql://h/db")).is_ok());
        for bad in ["sled", "mysql://h/db", "postgres://", "", "/var/lib/yibao"] {
            assert!(Location::choose(Path::new("d"), Some(bad)).is_err(), "{bad} accepted");
        }
        let refused = Location::choose(Path::new("d"), Some("mysql://u:pw@h/db")).expect_err("refused");
        assert!(!refused.to_string().contains("pw"));
    }
}
