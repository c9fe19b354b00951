//! The two databases a person store can live in: a SQLite file (one
//! machine) or a PostgreSQL database (several service processes sharing one
//! projection). The store's logic (the fold in chunks, the tip check, the
//! family rows) is written once against the few operations here: a query
//! whose rows are visited, a read snapshot, and one write transaction that
//! checks the tip, empties what it is told to and writes a chunk's rows.

use super::postgresql::Postgres;
use super::sqlite::Sqlite;
use super::StoreError;

/// A parameter of a shared query: the statements are written with `$1`,
/// `$2`… which both SQLite and PostgreSQL read.
#[derive(Clone, Copy, Debug)]
pub(super) enum Param<'a> {
    Text(&'a str),
    Integer(i64),
}

/// A column's value as read back.
#[derive(Debug, Default)]
pub(super) enum Value {
    #[default]
    Null,
    Text(String),
    Integer(i64),
    Bytes(Vec<u8>),
}

/// One row of a query's answer; each value is taken once.
pub(super) struct Row(pub Vec<Value>);

impl Row {
    fn take(&mut self, column: usize) -> Value {
        self.0.get_mut(column).map(std::mem::take).unwrap_or_default()
    }

    /// The column as text (`None`: null, missing, or not UTF-8).
    pub fn text(&mut self, column: usize) -> Option<String> {
        match self.take(column) {
            Value::Text(text) => Some(text),
            Value::Bytes(bytes) => String::from_utf8(bytes).ok(),
            Value::Null | Value::Integer(_) => None,
        }
    }

    /// The column as bytes (SQLite may hand back a BLOB as TEXT).
    pub fn bytes(&mut self, column: usize) -> Option<Vec<u8>> {
        match self.take(column) {
            Value::Bytes(bytes) => Some(bytes),
            Value::Text(text) => Some(text.into_bytes()),
            Value::Null | Value::Integer(_) => None,
        }
    }

    pub fn integer(&mut self, column: usize) -> Option<i64> {
        match self.take(column) {
            Value::Integer(integer) => Some(integer),
            _ => None,
        }
    }
}

/// The rows that decide whether a chunk may be written: the layout and
/// the tip, as stored (`None`: no such row).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Stored {
    pub format: Option<Vec<u8>>,
    pub tip: Option<Vec<u8>>,
}

/// The query reading [`Stored`] (the rows `format` and `tip` of `meta`).
pub(super) const STORED_SQL: &str = "SELECT key, value FROM meta WHERE key IN ('format', 'tip')";

impl Stored {
    /// Takes a `(key, value)` row of [`STORED_SQL`].
    pub fn add(&mut self, key: &str, value: Vec<u8>) {
        match key {
            "format" => self.format = Some(value),
            _ => self.tip = Some(value),
        }
    }
}

/// When a write goes ahead.
pub(super) enum Guard {
    Always,
    /// Only when the store still holds these layout and tip rows (checked
    /// under the write lock, across processes): another process moved it
    /// meanwhile → nothing is written.
    Unmoved(Stored),
}

/// What a write empties before it writes its rows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Clear {
    Nothing,
    /// The persons, identities, applications and family records.
    Records,
    /// Those and the meta rows (the tip with them).
    Everything,
}

/// An application's row: id, holder, member, state, submitted at, last
/// moved at (Beijing seconds), the record.
pub(super) type ApplicationRow = (String, String, String, &'static str, i64, i64, Vec<u8>);

/// What one write transaction puts in the store, table by table; each key
/// once (PostgreSQL's multi-row upsert may not touch a row twice).
#[derive(Default)]
pub(super) struct Rows {
    /// Person rows under identities their person no longer goes by.
    pub renamed: Vec<String>,
    /// (current identity, the person's state), in key order.
    pub persons: Vec<(String, Vec<u8>)>,
    /// (identity, the current identity of its person).
    pub aliases: Vec<(String, String)>,
    /// (application id, member's current identity, year).
    pub proxies: Vec<(String, String, i64)>,
    /// (holder, member, the record).
    pub bindings: Vec<(String, String, Vec<u8>)>,
    pub applications: Vec<ApplicationRow>,
    /// (key, value) of `meta`: the layout, policies, notes, tip.
    pub meta: Vec<(&'static str, Vec<u8>)>,
}

/// Where a store is, and its connection.
pub(super) enum Backend {
    Sqlite(Sqlite),
    // Boxed: its client is three times the size of a SQLite connection.
    Postgres(Box<Postgres>),
}

impl Backend {
    /// The file, or the database without password (`postgres://user@host:port/db`).
    pub fn location(&self) -> String {
        match self {
            Backend::Sqlite(sqlite) => sqlite.path().display().to_string(),
            Backend::Postgres(postgres) => postgres.location().to_string(),
        }
    }

    /// Runs `sql` with `params`, showing `visit` each row in order. `visit`
    /// must not use the store (the connection is busy with the rows).
    pub fn query(
        &self,
        sql: &str,
        params: &[Param<'_>],
        visit: &mut dyn FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        match self {
            Backend::Sqlite(sqlite) => sqlite.query(sql, params, visit),
            Backend::Postgres(postgres) => postgres.query(sql, params, visit),
        }
    }

    /// Runs `sql` for every key of `keys` where it says `{keys}` (`= $1`
    /// on SQLite, a query per key in this process; `= ANY($1)` on
    /// PostgreSQL, one round trip for them all), showing `visit` the rows.
    /// The rows' order is not the keys'.
    pub fn query_keys(
        &self,
        sql: &str,
        keys: &[String],
        visit: &mut dyn FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        match self {
            Backend::Sqlite(sqlite) => {
                let one = sql.replace("{keys}", "= $1");
                keys.iter().try_for_each(|key| sqlite.query(&one, &[Param::Text(key)], visit))
            }
            Backend::Postgres(_) if keys.is_empty() => Ok(()),
            Backend::Postgres(postgres) => postgres.query_keys(&sql.replace("{keys}", "= ANY($1)"), keys, visit),
        }
    }

    /// Runs `read` in one read snapshot (inside one already open: in
    /// that one).
    pub fn snapshot<T>(&self, read: impl FnOnce() -> T) -> Result<T, StoreError> {
        match self {
            Backend::Sqlite(sqlite) => sqlite.snapshot(read),
            Backend::Postgres(postgres) => postgres.snapshot(read),
        }
    }

    /// Writes `rows` in one transaction holding the store's write lock,
    /// after emptying what `clear` says, when `guard` lets it; `false`
    /// when it did not.
    pub fn write(&mut self, guard: &Guard, clear: Clear, rows: &Rows) -> Result<bool, StoreError> {
        match self {
            Backend::Sqlite(sqlite) => sqlite.write(guard, clear, rows),
            Backend::Postgres(postgres) => postgres.write(guard, clear, rows),
        }
    }
}
