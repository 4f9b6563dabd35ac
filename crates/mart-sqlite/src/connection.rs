//! One open SQLite database. Its statements run on tokio's blocking pool,
//! one at a time per connection; a statement still running when its
//! instance is dropped (deadline, trap) is interrupted.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::databases::{Database, Location};

/// How long a statement waits for another connection's write lock before
/// it fails with "database is locked". Spin sets none, so concurrent
/// writers there fail at once; waiting is what a user expects of a shop
/// whose instances write to one file concurrently.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Results larger than this are refused rather than buffered (Spin's
/// limit on what the host buffers for a guest).
const MAX_RESULT_BYTES: usize = 128 << 20;

/// What a statement sends and receives, shared by both WIT versions.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<SqlValue>>,
}

/// A statement that started: its columns, the rows it gave, and how
/// stepping through them ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Stepped {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<SqlValue>>,
    pub end: Result<(), SqliteError>,
}

/// The interface's errors, shared by both WIT versions.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SqliteError {
    #[error("no such database")]
    NoSuchDatabase,
    #[error("access denied")]
    AccessDenied,
    #[error("invalid connection")]
    InvalidConnection,
    #[error("database full")]
    DatabaseFull,
    #[error("{0}")]
    Io(String),
}

impl From<rusqlite::Error> for SqliteError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => SqliteError::DatabaseFull,
            _ => SqliteError::Io(error.to_string()),
        }
    }
}

/// An open database; clones share it.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Mutex<rusqlite::Connection>>,
    /// Set on a connection one instance owns; a shared connection is never
    /// interrupted, as the statement running may be another caller's.
    interrupt: Option<Arc<rusqlite::InterruptHandle>>,
}

impl Connection {
    /// Opens `database` for one instance, creating its file (and
    /// directory) if needed.
    pub async fn open(database: &Database) -> Result<Self, SqliteError> {
        Self::opened(database, true).await
    }

    /// Opens `database` for callers that share it (e.g. a key-value store).
    pub async fn open_shared(database: &Database) -> Result<Self, SqliteError> {
        Self::opened(database, false).await
    }

    async fn opened(database: &Database, interruptible: bool) -> Result<Self, SqliteError> {
        let database = database.clone();
        let inner = blocking(move || open(&database)).await?;
        let interrupt = interruptible.then(|| Arc::new(inner.get_interrupt_handle()));
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
            interrupt,
        })
    }

    /// Runs one statement with its parameters and returns its rows.
    pub async fn execute(
        &self,
        statement: String,
        parameters: Vec<SqlValue>,
    ) -> Result<QueryOutput, SqliteError> {
        let Stepped { columns, rows, end } = self.execute_stepped(statement, parameters).await?;
        end.map(|()| QueryOutput { columns, rows })
    }

    /// Runs one statement, telling a statement that could not start (the
    /// error) from one that failed while giving rows (`Stepped::end`), as
    /// SQLite 3.1's streamed `execute-async` does.
    pub async fn execute_stepped(
        &self,
        statement: String,
        parameters: Vec<SqlValue>,
    ) -> Result<Stepped, SqliteError> {
        self.with(move |c| query(c, &statement, &parameters)).await
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    pub async fn changes(&self) -> Result<u64, SqliteError> {
        self.with(|c| Ok(c.changes())).await
    }

    /// The rowid of the last successful INSERT, 0 if none.
    pub async fn last_insert_rowid(&self) -> Result<i64, SqliteError> {
        self.with(|c| Ok(c.last_insert_rowid())).await
    }

    /// Runs `work` as one transaction: on a shared connection no other
    /// caller's statement comes between its statements, and a failure
    /// rolls them all back (e.g. a key-value increment's read and write).
    pub async fn transaction<T: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, SqliteError> + Send + 'static,
    ) -> Result<T, SqliteError> {
        self.with(move |c| {
            let transaction = c.unchecked_transaction()?;
            let output = work(&transaction)?;
            transaction.commit()?;
            Ok(output)
        })
        .await
    }

    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> Result<T, SqliteError> + Send + 'static,
    ) -> Result<T, SqliteError> {
        let inner = self.inner.clone();
        let guard = InterruptOnDrop(self.interrupt.clone());
        let result = blocking(move || {
            let connection = inner
                .lock()
                .map_err(|_| SqliteError::Io("the connection failed earlier".into()))?;
            work(&connection)
        })
        .await;
        guard.disarm();
        result
    }
}

/// Interrupts the connection's running statement unless disarmed: the
/// future awaiting it was dropped, so no one wants its result.
struct InterruptOnDrop(Option<Arc<rusqlite::InterruptHandle>>);

impl InterruptOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.interrupt();
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SqliteError> + Send + 'static,
) -> Result<T, SqliteError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SqliteError::Io(format!("the SQLite worker failed: {e}")))?
}

/// Opens a database as Spin's `spin` type does, refusing `ATTACH` unless
/// the database allows files (a component must not reach files beyond its
/// database).
pub(crate) fn open(database: &Database) -> Result<rusqlite::Connection, SqliteError> {
    let mut connection = match &database.location {
        Location::InMemory => rusqlite::Connection::open_in_memory()?,
        Location::File(path) => open_file(path)?,
    };
    connection.busy_timeout(BUSY_TIMEOUT)?;
    if !database.allow_attach_file {
        refuse_attaching(&mut connection)?;
    }
    Ok(connection)
}

/// Every `ATTACH` is refused, twice over. The authorizer cannot tell files
/// from memory: for `ATTACH ? AS x` SQLite hands it no file name at all (the
/// name is bound later), so a guard that allowed "no name" let any file
/// through. And the attached-database limit of 0 refuses an attach even if
/// the authorizer were ever bypassed.
fn refuse_attaching(connection: &mut rusqlite::Connection) -> Result<(), SqliteError> {
    connection.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0)?;
    connection.authorizer(Some(deny_attach))?;
    Ok(())
}

/// Opens (creating) the SQLite file at `path`, and its directory.
fn open_file(path: &Path) -> Result<rusqlite::Connection, SqliteError> {
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| SqliteError::Io(format!("creating {}: {e}", dir.display())))?;
    }
    rusqlite::Connection::open(path)
        .map_err(|e| SqliteError::Io(format!("opening {}: {e}", path.display())))
}

fn deny_attach(context: AuthContext<'_>) -> Authorization {
    match context.action {
        AuthAction::Attach { .. } => Authorization::Deny,
        _ => Authorization::Allow,
    }
}

fn query(
    connection: &rusqlite::Connection,
    statement: &str,
    parameters: &[SqlValue],
) -> Result<Stepped, SqliteError> {
    let mut prepared = connection.prepare_cached(statement)?;
    let columns: Vec<String> = prepared.column_names().map(String::from).collect();
    let mut rows = prepared.query(rusqlite::params_from_iter(parameters))?;
    let mut taken = Vec::new();
    let end = step(&mut rows, columns.len(), &mut taken);
    Ok(Stepped {
        columns,
        rows: taken,
        end,
    })
}

/// Takes `rows` into `into` until they end or fail.
fn step(
    rows: &mut rusqlite::Rows<'_>,
    width: usize,
    into: &mut Vec<Vec<SqlValue>>,
) -> Result<(), SqliteError> {
    let mut bytes = 0;
    while let Some(row) = rows.next()? {
        let values = (0..width)
            .map(|i| row.get_ref(i).map(SqlValue::from))
            .collect::<Result<Vec<_>, _>>()?;
        bytes += values.iter().map(SqlValue::size).sum::<usize>();
        if bytes > MAX_RESULT_BYTES {
            return Err(SqliteError::Io(format!(
                "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
            )));
        }
        into.push(values);
    }
    Ok(())
}

impl SqlValue {
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + match self {
                SqlValue::Text(s) => s.len(),
                SqlValue::Blob(b) => b.len(),
                _ => 0,
            }
    }
}

impl From<ValueRef<'_>> for SqlValue {
    fn from(value: ValueRef<'_>) -> Self {
        match value {
            ValueRef::Null => SqlValue::Null,
            ValueRef::Integer(i) => SqlValue::Integer(i),
            ValueRef::Real(f) => SqlValue::Real(f),
            ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
        }
    }
}

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            SqlValue::Null => ValueRef::Null,
            SqlValue::Integer(i) => ValueRef::Integer(*i),
            SqlValue::Real(f) => ValueRef::Real(*f),
            SqlValue::Text(t) => ValueRef::Text(t.as_bytes()),
            SqlValue::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Database {
        Database {
            location: Location::InMemory,
            allow_attach_file: false,
        }
    }

    #[tokio::test]
    async fn a_statement_failing_mid_rows_keeps_the_rows_before_the_failure() {
        let connection = Connection::open(&memory()).await.unwrap();
        let statement =
            "SELECT abs(i) AS n FROM (SELECT 1 AS i UNION ALL SELECT -9223372036854775807 - 1)";
        let stepped = connection
            .execute_stepped(statement.into(), vec![])
            .await
            .unwrap();
        assert_eq!(stepped.columns, ["n"]);
        assert_eq!(stepped.rows, vec![vec![SqlValue::Integer(1)]]);
        assert!(
            matches!(&stepped.end, Err(SqliteError::Io(m)) if m.contains("integer overflow")),
            "{:?}",
            stepped.end
        );
        // `execute` reports it as the statement's failure.
        let failed = connection.execute(statement.into(), vec![]).await;
        assert!(failed.is_err());
        // One that cannot start is the call's error.
        let refused = connection.execute_stepped("SELEC 1".into(), vec![]).await;
        assert!(matches!(refused, Err(SqliteError::Io(m)) if m.contains("syntax error")));
    }

    #[tokio::test]
    async fn statements_return_columns_rows_and_every_value_type() {
        let db = Connection::open(&memory()).await.unwrap();
        db.execute(
            "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)".into(),
            vec![],
        )
        .await
        .unwrap();
        let row = vec![
            SqlValue::Integer(-7),
            SqlValue::Real(1.5),
            SqlValue::Text("é".into()),
            SqlValue::Blob(vec![0, 255]),
            SqlValue::Null,
        ];
        db.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)".into(), row.clone())
            .await
            .unwrap();
        assert_eq!(db.changes().await.unwrap(), 1);
        assert_eq!(db.last_insert_rowid().await.unwrap(), 1);
        let out = db.execute("SELECT * FROM t".into(), vec![]).await.unwrap();
        assert_eq!(out.columns, ["i", "r", "s", "b", "n"]);
        assert_eq!(out.rows, vec![row]);
        let err = db.execute("SELEC 1".into(), vec![]).await.unwrap_err();
        assert!(
            matches!(err, SqliteError::Io(ref m) if m.contains("syntax error")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn attaching_is_refused_unless_files_are_allowed() {
        let file = std::env::temp_dir().join(format!("mart-attach-{}.db", std::process::id()));
        let attach = format!("ATTACH DATABASE '{}' AS other", file.display());
        let db = Connection::open(&memory()).await.unwrap();
        assert!(db.execute(attach.clone(), vec![]).await.is_err());
        // A bound file name reaches the authorizer as no name at all.
        let bound = db
            .execute(
                "ATTACH DATABASE ? AS other".into(),
                vec![SqlValue::Text(file.display().to_string())],
            )
            .await;
        assert!(bound.is_err(), "{bound:?}");
        assert!(
            !file.exists(),
            "the refused attach created {}",
            file.display()
        );
        for name in [":memory:", "", "file:x?mode=memory"] {
            let attach = format!("ATTACH DATABASE '{name}' AS scratch");
            assert!(db.execute(attach, vec![]).await.is_err(), "{name}");
        }
        let allowed = Database {
            allow_attach_file: true,
            ..memory()
        };
        let db = Connection::open(&allowed).await.unwrap();
        db.execute(attach, vec![]).await.unwrap();
        let _ = std::fs::remove_file(file);
    }
}
