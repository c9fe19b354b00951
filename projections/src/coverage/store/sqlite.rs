//! The person store in a SQLite file: one machine's projections.

use super::backend::{Clear, Guard, Param, Row, Rows, Stored, Value, STORED_SQL};
use super::StoreError;
use std::path::{Path, PathBuf};

/// The tables of a SQLite store (the family's with them).
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS persons (id TEXT PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS aliases (id TEXT PRIMARY KEY, current TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS proxies (id TEXT PRIMARY KEY, person TEXT NOT NULL, year INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS bindings (holder TEXT NOT NULL, member TEXT NOT NULL, record BLOB NOT NULL,
        PRIMARY KEY (holder, member)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS bindings_by_member ON bindings (member);
    CREATE TABLE IF NOT EXISTS applications (id TEXT PRIMARY KEY, holder TEXT NOT NULL, member TEXT NOT NULL,
        state TEXT NOT NULL, submitted_at INTEGER NOT NULL, last_moved_at INTEGER NOT NULL, record BLOB NOT NULL)
        WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS applications_by_holder ON applications (holder);
    CREATE INDEX IF NOT EXISTS applications_by_member ON applications (member);
    CREATE INDEX IF NOT EXISTS applications_by_state ON applications (state, submitted_at);";

/// Every record table, emptied by a replace or a reset.
pub(super) const DELETE_RECORDS: &str = "DELETE FROM persons; DELETE FROM aliases; DELETE FROM proxies;
     DELETE FROM bindings; DELETE FROM applications;";

/// An open SQLite store.
pub(super) struct Sqlite {
    connection: rusqlite::Connection,
    path: PathBuf,
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Param::Text(text) => text.to_sql(),
            Param::Integer(integer) => integer.to_sql(),
        }
    }
}

fn value_of(value: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null | ValueRef::Real(_) => Value::Null,
        ValueRef::Integer(integer) => Value::Integer(integer),
        ValueRef::Text(text) => match String::from_utf8(text.to_vec()) {
            Ok(text) => Value::Text(text),
            Err(not_text) => Value::Bytes(not_text.into_bytes()),
        },
        ValueRef::Blob(bytes) => Value::Bytes(bytes.to_vec()),
    }
}

impl Sqlite {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<Sqlite, StoreError> {
        let failed = |source| StoreError::Sqlite { path: path.to_path_buf(), source };
        let connection = rusqlite::Connection::open(path).map_err(failed)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA cache_size = -65536;",
            )
            .map_err(failed)?;
        connection.execute_batch(SCHEMA).map_err(failed)?;
        Ok(Sqlite { connection, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn failed(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite { path: self.path.clone(), source }
    }

    /// Limits SQLite's page cache of this connection.
    pub fn set_page_cache_kib(&self, kib: u32) -> Result<(), StoreError> {
        self.connection.execute_batch(&format!("PRAGMA cache_size = -{kib};")).map_err(|e| self.failed(e))
    }

    pub fn query(
        &self,
        sql: &str,
        params: &[Param<'_>],
        visit: &mut dyn FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // Prepared once per connection: a lookup or a small catch-up runs
        // the same few statements a few times each.
        let mut statement = self.connection.prepare_cached(sql).map_err(|e| self.failed(e))?;
        let n_columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params)).map_err(|e| self.failed(e))?;
        while let Some(row) = rows.next().map_err(|e| self.failed(e))? {
            let values = (0..n_columns).map(|column| row.get_ref(column).map(value_of));
            visit(Row(values.collect::<Result<_, _>>().map_err(|e| self.failed(e))?))?;
        }
        Ok(())
    }

    pub fn snapshot<T>(&self, read: impl FnOnce() -> T) -> Result<T, StoreError> {
        if !self.connection.is_autocommit() {
            return Ok(read());
        }
        // Deferred and only read: dropped at the end, which rolls nothing back.
        let snapshot = self.connection.unchecked_transaction().map_err(|e| self.failed(e))?;
        // The snapshot starts at the first read: taken now, before `read`.
        snapshot.query_row("SELECT count(*) FROM meta", [], |_| Ok(())).map_err(|e| self.failed(e))?;
        Ok(read())
    }

    pub fn write(&mut self, guard: &Guard, clear: Clear, rows: &Rows) -> Result<bool, StoreError> {
        let path = self.path.clone();
        let failed = |source| StoreError::Sqlite { path: path.clone(), source };
        // Immediate: the tip read below stays the store's until the commit.
        let transaction =
            self.connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(failed)?;
        if let Guard::Unmoved(expected) = guard {
            let mut stored = Stored::default();
            let mut statement = transaction.prepare_cached(STORED_SQL).map_err(failed)?;
            let mut found = statement.query([]).map_err(failed)?;
            while let Some(row) = found.next().map_err(failed)? {
                stored.add(&row.get::<_, String>(0).map_err(failed)?, row.get(1).map_err(failed)?);
            }
            if stored != *expected {
                return Ok(false);
            }
        }
        match clear {
            Clear::Nothing => {}
            Clear::Records => transaction.execute_batch(DELETE_RECORDS).map_err(failed)?,
            Clear::Everything => {
                transaction.execute_batch(&format!("{DELETE_RECORDS} DELETE FROM meta;")).map_err(failed)?
            }
        }
        write_rows(&transaction, rows).map_err(failed)?;
        transaction.commit().map_err(failed)?;
        Ok(true)
    }
}

/// One prepared statement per table, a row at a time: SQLite runs in
/// this process, so a row costs no round trip.
fn write_rows(transaction: &rusqlite::Transaction<'_>, rows: &Rows) -> rusqlite::Result<()> {
    use rusqlite::params;
    let mut renamed = transaction.prepare_cached("DELETE FROM persons WHERE id = ?1")?;
    for id in &rows.renamed {
        renamed.execute([id])?;
    }
    let mut person = transaction.prepare_cached("INSERT OR REPLACE INTO persons (id, state) VALUES (?1, ?2)")?;
    for (id, state) in &rows.persons {
        person.execute(params![id, state])?;
    }
    let mut alias = transaction.prepare_cached("INSERT OR REPLACE INTO aliases (id, current) VALUES (?1, ?2)")?;
    for (id, current) in &rows.aliases {
        alias.execute(params![id, current])?;
    }
    let mut proxy =
        transaction.prepare_cached("INSERT OR REPLACE INTO proxies (id, person, year) VALUES (?1, ?2, ?3)")?;
    for (id, person, year) in &rows.proxies {
        proxy.execute(params![id, person, year])?;
    }
    let mut binding =
        transaction.prepare_cached("INSERT OR REPLACE INTO bindings (holder, member, record) VALUES (?1, ?2, ?3)")?;
    for (holder, member, record) in &rows.bindings {
        binding.execute(params![holder, member, record])?;
    }
    let mut application = transaction.prepare_cached(
        "INSERT OR REPLACE INTO applications (id, holder, member, state, submitted_at, last_moved_at, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (id, holder, member, state, submitted_at, last_moved_at, record) in &rows.applications {
        application.execute(params![id, holder, member, state, submitted_at, last_moved_at, record])?;
    }
    let mut meta = transaction.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?;
    for (key, value) in &rows.meta {
        meta.execute(params![key, value])?;
    }
    Ok(())
}
