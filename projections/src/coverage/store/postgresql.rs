//! The person store in a PostgreSQL database: one projection shared by
//! several service processes, in a schema of its own (`yibao_projection`,
//! beside the log's `yibao`). Writes from every process take one advisory
//! lock for their transaction, so a chunk's tip check holds across
//! processes; a chunk's rows go in one multi-row statement per table
//! (`unnest` of arrays), not a round trip per row.

use super::backend::{Clear, Guard, Param, Row, Rows, Stored, Value, STORED_SQL};
use super::sqlite::DELETE_RECORDS;
use super::StoreError;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};
use rustc_hash::FxHashMap;
use std::cell::{Cell, RefCell};
use std::time::Duration;

/// The schema the store's tables are in.
const SCHEMA_NAME: &str = "yibao_projection";

/// The key of the advisory lock every write holds until its commit (the
/// bytes of "yibaoprj"): one writer at a time per database.
const WRITE_LOCK: i64 = 0x7969_6261_6f70_726a;

/// How long a connection may take when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The tables: the SQLite store's, with BYTEA for BLOB, BIGINT for
/// INTEGER, and keys compared byte by byte (`COLLATE "C"`, as SQLite
/// does) whatever the database's locale, so a listing's order and an id
/// prefix's range are the same on both.
const SCHEMA: &str = r#"
    CREATE TABLE IF NOT EXISTS meta (key TEXT COLLATE "C" PRIMARY KEY, value BYTEA NOT NULL);
    CREATE TABLE IF NOT EXISTS persons (id TEXT COLLATE "C" PRIMARY KEY, state BYTEA NOT NULL);
    CREATE TABLE IF NOT EXISTS aliases (id TEXT COLLATE "C" PRIMARY KEY, current TEXT COLLATE "C" NOT NULL);
    CREATE TABLE IF NOT EXISTS proxies (id TEXT COLLATE "C" PRIMARY KEY, person TEXT COLLATE "C" NOT NULL,
        year BIGINT NOT NULL);
    CREATE TABLE IF NOT EXISTS bindings (holder TEXT COLLATE "C" NOT NULL, member TEXT COLLATE "C" NOT NULL,
        record BYTEA NOT NULL, PRIMARY KEY (holder, member));
    CREATE INDEX IF NOT EXISTS bindings_by_member ON bindings (member);
    CREATE TABLE IF NOT EXISTS applications (id TEXT COLLATE "C" PRIMARY KEY, holder TEXT COLLATE "C" NOT NULL,
        member TEXT COLLATE "C" NOT NULL, state TEXT COLLATE "C" NOT NULL, submitted_at BIGINT NOT NULL,
        last_moved_at BIGINT NOT NULL, record BYTEA NOT NULL);
    CREATE INDEX IF NOT EXISTS applications_by_holder ON applications (holder);
    CREATE INDEX IF NOT EXISTS applications_by_member ON applications (member);
    CREATE INDEX IF NOT EXISTS applications_by_state ON applications (state, submitted_at);"#;

/// An open PostgreSQL store. `postgres::Client` wants `&mut` for every
/// query; a store is used by one thread at a time, so a `RefCell` lends it.
/// A connection that closes on a thread of its own when dropped: closing
/// blocks on the client's runtime, which panics on an async worker (where
/// a service's store may be dropped at shutdown).
struct Connection(Option<postgres::Client>);

impl std::ops::Deref for Connection {
    type Target = postgres::Client;

    fn deref(&self) -> &postgres::Client {
        self.0.as_ref().expect("a connection is taken only when dropped")
    }
}

impl std::ops::DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        self.0.as_mut().expect("a connection is taken only when dropped")
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            let _ = std::thread::Builder::new().name("store-close".into()).spawn(move || drop(client));
        }
    }
}

pub(super) struct Postgres {
    client: RefCell<Connection>,
    /// How to connect again when the connection closes.
    config: postgres::Config,
    location: String,
    /// Statements prepared on this connection, by their text: a lookup
    /// runs the same few each time.
    statements: RefCell<FxHashMap<String, postgres::Statement>>,
    /// Inside `snapshot` (a nested one runs in it).
    in_snapshot: Cell<bool>,
}

/// The database of `url` named without its password:
/// `postgres://user@host:port/db`.
pub(super) fn location_of(url: &str) -> String {
    let Ok(config) = url.parse::<postgres::Config>() else { return without_password(url) };
    let user = config.get_user().unwrap_or("");
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{database}")
}

/// A URL that does not parse, with whatever stands between `user:` and
/// `@` taken out.
fn without_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let Some((user_info, host)) = rest.rsplit_once('@') else { return format!("{scheme}://{rest}") };
    let user = user_info.split_once(':').map_or(user_info, |(user, _)| user);
    format!("{scheme}://{user}@{host}")
}

/// What PostgreSQL said, with the server's message when it sent one
/// (`postgres::Error`'s own text is only "db error").
fn detail_of(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        None => {
            let cause = std::error::Error::source(error).map(|cause| format!(": {cause}")).unwrap_or_default();
            format!("{error}{cause}")
        }
    }
}

fn failed_at(location: &str, error: &postgres::Error) -> StoreError {
    StoreError::Database { location: location.to_string(), detail: detail_of(error) }
}

impl Param<'_> {
    fn as_postgres(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Text(text) => text,
            Param::Integer(integer) => integer,
        }
    }
}

/// A row's values by their column types.
fn values_of(row: &postgres::Row) -> Result<Vec<Value>, postgres::Error> {
    let mut values = Vec::with_capacity(row.len());
    for (index, column) in row.columns().iter().enumerate() {
        let value = match *column.type_() {
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(index)?.map(Value::Bytes),
            Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(Value::Integer),
            Type::INT4 => row.try_get::<_, Option<i32>>(index)?.map(|integer| Value::Integer(integer.into())),
            _ => row.try_get::<_, Option<String>>(index)?.map(Value::Text),
        };
        values.push(value.unwrap_or_default());
    }
    Ok(values)
}

impl Postgres {
    /// Connects to the database at `url` and creates the schema and its
    /// tables when missing (under the write lock: two processes starting
    /// together do not both create them).
    pub fn connect(url: &str) -> Result<Postgres, StoreError> {
        let location = location_of(url);
        let mut config: postgres::Config = url.parse().map_err(|e| StoreError::Database {
            location: location.clone(),
            detail: format!("not a PostgreSQL URL: {e}"),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let mut client = open(&config, &location)?;
        let create = format!(
            "BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK});
             CREATE SCHEMA IF NOT EXISTS {SCHEMA_NAME}; SET search_path TO {SCHEMA_NAME};
             {SCHEMA}
             COMMIT;"
        );
        client.batch_execute(&create).map_err(|e| failed_at(&location, &e))?;
        Ok(Postgres {
            client: RefCell::new(Connection(Some(client))),
            config,
            location,
            statements: RefCell::default(),
            in_snapshot: Cell::new(false),
        })
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// Connects again when the connection was closed (the server
    /// restarted, or the platform failed over to a standby): the store
    /// answers as soon as the database does, instead of failing every call
    /// of a long-running service. Not inside a snapshot, whose transaction
    /// went with the old connection (its reads fail and say so).
    fn reopened(&self) -> Result<(), StoreError> {
        if self.in_snapshot.get() || !self.client.borrow().is_closed() {
            return Ok(());
        }
        let client = open(&self.config, &self.location)?;
        self.statements.borrow_mut().clear();
        *self.client.borrow_mut() = Connection(Some(client));
        Ok(())
    }

    fn failed(&self, error: &postgres::Error) -> StoreError {
        failed_at(&self.location, error)
    }

    fn statement(&self, client: &mut postgres::Client, sql: &str) -> Result<postgres::Statement, StoreError> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql).map_err(|e| self.failed(&e))?;
        self.statements.borrow_mut().insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    pub fn query(
        &self,
        sql: &str,
        params: &[Param<'_>],
        visit: &mut dyn FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(Param::as_postgres).collect();
        self.query_values(sql, &params, visit)
    }

    /// `sql` with one parameter, the array of `keys`.
    pub fn query_keys(
        &self,
        sql: &str,
        keys: &[String],
        visit: &mut dyn FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.query_values(sql, &[&keys], visit)
    }

    fn query_values(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        visit: &mut dyn FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.reopened()?;
        let mut visited = false;
        let first = self.query_once(sql, params, &mut |row| {
            visited = true;
            visit(row)
        });
        match first {
            // The connection closed under the query before any row came
            // (it had not noticed yet): asked again on a new one.
            Err(StoreError::Database { .. }) if !visited && self.client.borrow().is_closed() => {
                self.reopened()?;
                self.query_once(sql, params, visit)
            }
            other => other,
        }
    }

    fn query_once(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        visit: &mut dyn FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut client = self.client.borrow_mut();
        let statement = self.statement(&mut client, sql)?;
        // Streamed: the whole store (`load_all`) is not held twice.
        let mut rows = client.query_raw(&statement, params.iter().copied()).map_err(|e| self.failed(&e))?;
        while let Some(row) = rows.next().map_err(|e| self.failed(&e))? {
            visit(Row(values_of(&row).map_err(|e| self.failed(&e))?))?;
        }
        Ok(())
    }

    /// `read` in a REPEATABLE READ READ ONLY transaction: everything it
    /// reads is the store at one tip while other processes write.
    pub fn snapshot<T>(&self, read: impl FnOnce() -> T) -> Result<T, StoreError> {
        if self.in_snapshot.get() {
            return Ok(read());
        }
        let begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
        self.reopened()?;
        self.client.borrow_mut().batch_execute(begin).map_err(|e| self.failed(&e))?;
        self.in_snapshot.set(true);
        let ended = SnapshotEnd(self);
        let answer = read();
        drop(ended);
        Ok(answer)
    }

    pub fn write(&mut self, guard: &Guard, clear: Clear, rows: &Rows) -> Result<bool, StoreError> {
        self.reopened()?;
        let location = self.location.clone();
        let failed = |e: postgres::Error| failed_at(&location, &e);
        let mut transaction = self.client.get_mut().transaction().map_err(failed)?;
        transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK]).map_err(failed)?;
        if let Guard::Unmoved(expected) = guard {
            let mut stored = Stored::default();
            for row in transaction.query(STORED_SQL, &[]).map_err(failed)? {
                stored.add(row.try_get(0).map_err(failed)?, row.try_get(1).map_err(failed)?);
            }
            if stored != *expected {
                // Dropped: rolled back, which releases the lock.
                return Ok(false);
            }
        }
        match clear {
            Clear::Nothing => {}
            Clear::Records => transaction.batch_execute(DELETE_RECORDS).map_err(failed)?,
            Clear::Everything => {
                transaction.batch_execute(&format!("{DELETE_RECORDS} DELETE FROM meta;")).map_err(failed)?
            }
        }
        write_rows(&mut transaction, rows).map_err(failed)?;
        transaction.commit().map_err(failed)?;
        Ok(true)
    }
}

/// A connection to the store's database, its schema first on the path.
fn open(config: &postgres::Config, location: &str) -> Result<postgres::Client, StoreError> {
    let mut client = config.connect(postgres::NoTls).map_err(|e| failed_at(location, &e))?;
    client.batch_execute(&format!("SET search_path TO {SCHEMA_NAME}")).map_err(|e| failed_at(location, &e))?;
    Ok(client)
}

/// Ends a snapshot however `read` left (rolled back: it only read).
struct SnapshotEnd<'a>(&'a Postgres);

impl Drop for SnapshotEnd<'_> {
    fn drop(&mut self) {
        self.0.in_snapshot.set(false);
        // A connection that fails here fails the next query too, which
        // reports it.
        let _ = self.0.client.borrow_mut().batch_execute("ROLLBACK");
    }
}

/// One statement per table, each row's columns passed as arrays.
fn write_rows(transaction: &mut postgres::Transaction<'_>, rows: &Rows) -> Result<(), postgres::Error> {
    if !rows.renamed.is_empty() {
        transaction.execute("DELETE FROM persons WHERE id = ANY($1)", &[&rows.renamed])?;
    }
    if !rows.persons.is_empty() {
        let ids: Vec<&str> = rows.persons.iter().map(|(id, _)| id.as_str()).collect();
        let states: Vec<&[u8]> = rows.persons.iter().map(|(_, state)| state.as_slice()).collect();
        transaction.execute(
            "INSERT INTO persons (id, state) SELECT * FROM unnest($1::text[], $2::bytea[])
             ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            &[&ids, &states],
        )?;
    }
    if !rows.aliases.is_empty() {
        let ids: Vec<&str> = rows.aliases.iter().map(|(id, _)| id.as_str()).collect();
        let currents: Vec<&str> = rows.aliases.iter().map(|(_, current)| current.as_str()).collect();
        transaction.execute(
            "INSERT INTO aliases (id, current) SELECT * FROM unnest($1::text[], $2::text[])
             ON CONFLICT (id) DO UPDATE SET current = excluded.current",
            &[&ids, &currents],
        )?;
    }
    if !rows.proxies.is_empty() {
        let ids: Vec<&str> = rows.proxies.iter().map(|(id, _, _)| id.as_str()).collect();
        let persons: Vec<&str> = rows.proxies.iter().map(|(_, person, _)| person.as_str()).collect();
        let years: Vec<i64> = rows.proxies.iter().map(|&(_, _, year)| year).collect();
        transaction.execute(
            "INSERT INTO proxies (id, person, year) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
             ON CONFLICT (id) DO UPDATE SET person = excluded.person, year = excluded.year",
            &[&ids, &persons, &years],
        )?;
    }
    write_family_rows(transaction, rows)?;
    let keys: Vec<&str> = rows.meta.iter().map(|(key, _)| *key).collect();
    let values: Vec<&[u8]> = rows.meta.iter().map(|(_, value)| value.as_slice()).collect();
    transaction.execute(
        "INSERT INTO meta (key, value) SELECT * FROM unnest($1::text[], $2::bytea[])
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&keys, &values],
    )?;
    Ok(())
}

fn write_family_rows(transaction: &mut postgres::Transaction<'_>, rows: &Rows) -> Result<(), postgres::Error> {
    if !rows.bindings.is_empty() {
        let holders: Vec<&str> = rows.bindings.iter().map(|(holder, _, _)| holder.as_str()).collect();
        let members: Vec<&str> = rows.bindings.iter().map(|(_, member, _)| member.as_str()).collect();
        let records: Vec<&[u8]> = rows.bindings.iter().map(|(_, _, record)| record.as_slice()).collect();
        transaction.execute(
            "INSERT INTO bindings (holder, member, record) SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])
             ON CONFLICT (holder, member) DO UPDATE SET record = excluded.record",
            &[&holders, &members, &records],
        )?;
    }
    if !rows.applications.is_empty() {
        let applications = &rows.applications;
        let ids: Vec<&str> = applications.iter().map(|row| row.0.as_str()).collect();
        let holders: Vec<&str> = applications.iter().map(|row| row.1.as_str()).collect();
        let members: Vec<&str> = applications.iter().map(|row| row.2.as_str()).collect();
        let states: Vec<&str> = applications.iter().map(|row| row.3).collect();
        let submitted_at: Vec<i64> = applications.iter().map(|row| row.4).collect();
        let last_moved_at: Vec<i64> = applications.iter().map(|row| row.5).collect();
        let records: Vec<&[u8]> = applications.iter().map(|row| row.6.as_slice()).collect();
        transaction.execute(
            "INSERT INTO applications (id, holder, member, state, submitted_at, last_moved_at, record)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
                 $7::bytea[])
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, member = excluded.member,
                 state = excluded.state, submitted_at = excluded.submitted_at,
                 last_moved_at = excluded.last_moved_at, record = excluded.record",
            &[&ids, &holders, &members, &states, &submitted_at, &last_moved_at, &records],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_names_the_database_without_its_password() {
        let named = location_of("postgres://yibao:s3cret@db.example:6543/ledger?sslmode=disable");
        assert_eq!(named, "postgres://yibao@db.example:6543/ledger");
        assert!(!without_password("postgres://yibao:s3cret@db.example:bad/ledger").contains("s3cret"));
    }

    #[test]
    fn a_database_that_does_not_answer_is_named_without_its_password() {
        // Port 1: nothing listens there, so the connection is refused at once.
        let failed = crate::coverage::PersonStore::connect("postgres://yibao:s3cret@127.0.0.1:1/ledger");
        let Err(error) = failed else { panic!("a store on a port where nothing listens") };
        assert!(
            matches!(&error, StoreError::Database { location, .. } if location == "postgres://yibao@127.0.0.1:1/ledger"),
            "{error:?}"
        );
        assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
    }
}
