//! The `fermyon:spin/sqlite@2.0.0`, `spin:sqlite/sqlite@3.0.0` and
//! `spin:sqlite/sqlite@3.1.0` trait implementations. The versions share one
//! table of connections and differ only in their generated types; 3.1 adds
//! async functions, whose `execute-async` streams the rows.

use std::collections::BTreeSet;
use std::sync::Arc;

use wasmtime::component::{
    Accessor, FutureReader, HasData, Linker, Resource, ResourceTable, StreamReader,
};

use crate::connection::{Connection, QueryOutput, SqlValue, SqliteError, Stepped};
use crate::databases::{Database, Databases};

mod bindings {
    wasmtime::component::bindgen!({
        path: [
            "../../wit/spin/sqlite@2.0.0",
            "../../wit/spin/sqlite@3.0.0",
            "../../wit/spin/sqlite@3.1.0",
        ],
        inline: "
            package mart:host-sqlite;
            world sqlite-host {
                import fermyon:spin/sqlite@2.0.0;
                import spin:sqlite/sqlite@3.0.0;
                import spin:sqlite/sqlite@3.1.0;
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
use bindings::spin::sqlite3_0_0::sqlite as v3;
use bindings::spin::sqlite3_1_0::sqlite as v3_1;

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

    /// Opens `label` if the component may.
    async fn open(&mut self, label: &str) -> Result<Resource<Connection>, SqliteError> {
        let database = self.database_of(label)?;
        let connection = open_logged(&database, label).await?;
        self.hold(connection)
    }

    /// The database `label` names, if the component may open it: a label it
    /// does not list is `access-denied` whether or not a database has it, as
    /// on Spin.
    fn database_of(&self, label: &str) -> Result<Database, SqliteError> {
        if !self.allowed.contains(label) {
            return Err(SqliteError::AccessDenied);
        }
        self.databases
            .get(label)
            .cloned()
            .ok_or(SqliteError::NoSuchDatabase)
    }

    /// Holds an opened connection, if the table has room.
    fn hold(&mut self, connection: Connection) -> Result<Resource<Connection>, SqliteError> {
        if self.open >= MAX_CONNECTIONS {
            return Err(SqliteError::Io("too many connections opened".into()));
        }
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

async fn open_logged(database: &Database, label: &str) -> Result<Connection, SqliteError> {
    Connection::open(database).await.inspect_err(|e| {
        tracing::warn!(database = label, error = %e, "sqlite open failed");
    })
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
version!(v3_1);

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

/// 3.0's functions, which 3.1 keeps as they were.
macro_rules! blocking_functions {
    ($v:ident) => {
        impl $v::HostConnection for SqliteHost {
            async fn open(&mut self, database: String) -> Answer<Resource<Connection>, $v::Error> {
                Ok(SqliteHost::open(self, &database).await.map_err(Into::into))
            }

            async fn execute(
                &mut self,
                connection: Resource<Connection>,
                statement: String,
                parameters: Vec<$v::Value>,
            ) -> Answer<$v::QueryResult, $v::Error> {
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
    };
}

blocking_functions!(v3);
blocking_functions!(v3_1);

/// The connection behind `handle`, taken out of the instance's state.
fn connection_of<T>(
    accessor: &Accessor<T, Sqlite>,
    handle: &Resource<Connection>,
) -> Result<Connection, SqliteError> {
    accessor.with(|mut access| access.get().connection(handle))
}

/// 3.1's async functions reach the instance's state only between awaits
/// (`Accessor::with`), so its other calls run while a statement does.
impl<T: Send> v3_1::HostConnectionWithStore<T> for Sqlite {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        database: String,
    ) -> Answer<Resource<Connection>, v3_1::Error> {
        let opened = async {
            let found = accessor.with(|mut access| access.get().database_of(&database))?;
            let connection = open_logged(&found, &database).await?;
            accessor.with(|mut access| access.get().hold(connection))
        };
        Ok(opened.await.map_err(Into::into))
    }

    /// A statement that cannot start is the call's error; one that fails
    /// while giving rows streams the rows it gave, then the error in the
    /// future, as on Spin.
    async fn execute_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<Connection>,
        statement: String,
        parameters: Vec<v3_1::Value>,
    ) -> Answer<
        (
            Vec<String>,
            StreamReader<v3_1::RowResult>,
            FutureReader<Result<(), v3_1::Error>>,
        ),
        v3_1::Error,
    > {
        let parameters = parameters.into_iter().map(Into::into).collect();
        let stepped = match connection_of(accessor, &connection) {
            Ok(connection) => connection.execute_stepped(statement, parameters).await,
            Err(error) => Err(error),
        };
        let Stepped { columns, rows, end } = match stepped {
            Ok(stepped) => stepped,
            Err(error) => return Ok(Err(error.into())),
        };
        let rows: Vec<v3_1::RowResult> = rows.into_iter().map(row).collect();
        let end = end.map_err(v3_1::Error::from);
        accessor.with(|mut access| {
            let rows = StreamReader::new(&mut access, rows)?;
            let end = FutureReader::new(&mut access, async move { Ok::<_, wasmtime::Error>(end) })?;
            Ok(Ok((columns, rows, end)))
        })
    }

    async fn last_insert_rowid_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<Connection>,
    ) -> wasmtime::Result<i64> {
        Ok(connection_of(accessor, &connection)?
            .last_insert_rowid()
            .await?)
    }

    async fn changes_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<Connection>,
    ) -> wasmtime::Result<u64> {
        Ok(connection_of(accessor, &connection)?.changes().await?)
    }
}

fn row(values: Vec<SqlValue>) -> v3_1::RowResult {
    v3_1::RowResult {
        values: values.into_iter().map(Into::into).collect(),
    }
}

struct Sqlite;

impl HasData for Sqlite {
    type Data<'a> = &'a mut SqliteHost;
}

/// Adds the SQLite interfaces to `linker`; `get` finds the instance's state.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut SqliteHost,
) -> wasmtime::Result<()> {
    v2::add_to_linker::<T, Sqlite>(linker, get)?;
    v3::add_to_linker::<T, Sqlite>(linker, get)?;
    v3_1::add_to_linker::<T, Sqlite>(linker, get)?;
    Ok(())
}
