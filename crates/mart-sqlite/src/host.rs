//! The `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.0.0` trait
//! implementations. Both versions share one table of connections and
//! differ only in their generated types.

use std::collections::BTreeSet;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::connection::{Connection, QueryOutput, SqlValue, SqliteError};
use crate::databases::Databases;

mod bindings {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin/sqlite@2.0.0", "../../wit/spin/sqlite@3.0.0"],
        inline: "
            package mart:host-sqlite;
            world sqlite-host {
                import fermyon:spin/sqlite@2.0.0;
                import spin:sqlite/sqlite@3.0.0;
            }
        ",
        world: "mart:host-sqlite/sqlite-host",
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/sqlite.connection": crate::Connection,
            "spin:sqlite/sqlite.connection": crate::Connection,
        },
    });
}

use bindings::fermyon::spin::sqlite as v2;
use bindings::spin::sqlite::sqlite as v3;

/// Connections a single instance may hold open at once (Spin's limit).
const MAX_CONNECTIONS: usize = 256;

/// One instance's SQLite state: what it may open and what it holds open.
pub struct SqliteHost {
    databases: Arc<Databases>,
    allowed: Arc<BTreeSet<String>>,
    table: ResourceTable,
    open: usize,
}

impl SqliteHost {
    pub fn new(databases: Arc<Databases>, component: &str) -> Self {
        Self {
            allowed: databases.allowed_for(component),
            databases,
            table: ResourceTable::new(),
            open: 0,
        }
    }

    /// Opens `label` if the component may: a label it does not list is
    /// `access-denied` whether or not a database has it, as on Spin.
    async fn open(&mut self, label: &str) -> Result<Resource<Connection>, SqliteError> {
        if !self.allowed.contains(label) {
            return Err(SqliteError::AccessDenied);
        }
        let database = self
            .databases
            .get(label)
            .ok_or(SqliteError::NoSuchDatabase)?;
        if self.open >= MAX_CONNECTIONS {
            return Err(SqliteError::Io("too many connections opened".into()));
        }
        let connection = Connection::open(database).await.inspect_err(|e| {
            tracing::warn!(database = label, error = %e, "sqlite open failed");
        })?;
        let handle = self
            .table
            .push(connection)
            .map_err(|e| SqliteError::Io(e.to_string()))?;
        self.open += 1;
        Ok(handle)
    }

    /// The open connection behind `handle` (a clone, so no borrow of the
    /// instance's table is held while its statement runs).
    fn connection(&self, handle: &Resource<Connection>) -> Result<Connection, SqliteError> {
        self.table
            .get(handle)
            .cloned()
            .map_err(|_| SqliteError::InvalidConnection)
    }

    async fn execute(
        &mut self,
        handle: &Resource<Connection>,
        statement: String,
        parameters: Vec<SqlValue>,
    ) -> Result<QueryOutput, SqliteError> {
        let connection = self.connection(handle)?;
        connection.execute(statement, parameters).await
    }

    fn close(&mut self, handle: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        self.open -= 1;
        Ok(())
    }
}

/// A call's answer: the guest sees the interface's error, never a trap.
type Answer<T, E> = wasmtime::Result<Result<T, E>>;

/// The two WIT versions declare the same value, result and error types;
/// this converts between them and the shared ones.
macro_rules! version {
    ($v:ident) => {
        impl From<$v::Value> for SqlValue {
            fn from(value: $v::Value) -> Self {
                match value {
                    $v::Value::Integer(i) => SqlValue::Integer(i),
                    $v::Value::Real(f) => SqlValue::Real(f),
                    $v::Value::Text(s) => SqlValue::Text(s),
                    $v::Value::Blob(b) => SqlValue::Blob(b),
                    $v::Value::Null => SqlValue::Null,
                }
            }
        }

        impl From<SqlValue> for $v::Value {
            fn from(value: SqlValue) -> Self {
                match value {
                    SqlValue::Integer(i) => $v::Value::Integer(i),
                    SqlValue::Real(f) => $v::Value::Real(f),
                    SqlValue::Text(s) => $v::Value::Text(s),
                    SqlValue::Blob(b) => $v::Value::Blob(b),
                    SqlValue::Null => $v::Value::Null,
                }
            }
        }

        impl From<SqliteError> for $v::Error {
            fn from(error: SqliteError) -> Self {
                match error {
                    SqliteError::NoSuchDatabase => $v::Error::NoSuchDatabase,
                    SqliteError::AccessDenied => $v::Error::AccessDenied,
                    SqliteError::InvalidConnection => $v::Error::InvalidConnection,
                    SqliteError::DatabaseFull => $v::Error::DatabaseFull,
                    SqliteError::Io(message) => $v::Error::Io(message),
                }
            }
        }

        impl From<QueryOutput> for $v::QueryResult {
            fn from(output: QueryOutput) -> Self {
                $v::QueryResult {
                    columns: output.columns,
                    rows: output
                        .rows
                        .into_iter()
                        .map(|values| $v::RowResult {
                            values: values.into_iter().map(Into::into).collect(),
                        })
                        .collect(),
                }
            }
        }

        impl $v::Host for SqliteHost {}
    };
}

version!(v2);
version!(v3);

impl v2::HostConnection for SqliteHost {
    async fn open(&mut self, database: String) -> Answer<Resource<Connection>, v2::Error> {
        Ok(SqliteHost::open(self, &database).await.map_err(Into::into))
    }

    async fn execute(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        parameters: Vec<v2::Value>,
    ) -> Answer<v2::QueryResult, v2::Error> {
        let parameters = parameters.into_iter().map(Into::into).collect();
        let output = SqliteHost::execute(self, &connection, statement, parameters).await;
        Ok(output.map(Into::into).map_err(Into::into))
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(connection)
    }
}

impl v3::HostConnection for SqliteHost {
    async fn open(&mut self, database: String) -> Answer<Resource<Connection>, v3::Error> {
        Ok(SqliteHost::open(self, &database).await.map_err(Into::into))
    }

    async fn execute(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> Answer<v3::QueryResult, v3::Error> {
        let parameters = parameters.into_iter().map(Into::into).collect();
        let output = SqliteHost::execute(self, &connection, statement, parameters).await;
        Ok(output.map(Into::into).map_err(Into::into))
    }

    async fn last_insert_rowid(
        &mut self,
        connection: Resource<Connection>,
    ) -> wasmtime::Result<i64> {
        Ok(self.connection(&connection)?.last_insert_rowid().await?)
    }

    async fn changes(&mut self, connection: Resource<Connection>) -> wasmtime::Result<u64> {
        Ok(self.connection(&connection)?.changes().await?)
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(connection)
    }
}

struct Sqlite;

impl HasData for Sqlite {
    type Data<'a> = &'a mut SqliteHost;
}

/// Adds both SQLite interfaces to `linker`; `get` finds the instance's state.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut SqliteHost,
) -> wasmtime::Result<()> {
    v2::add_to_linker::<T, Sqlite>(linker, get)?;
    v3::add_to_linker::<T, Sqlite>(linker, get)?;
    Ok(())
}
