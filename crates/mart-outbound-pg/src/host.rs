//! The `spin:postgres/postgres@4.0.0` trait implementation.

// The error type is the interface's (`spin:postgres` `error`); its size is not ours to choose.
#![allow(clippy::result_large_err)]

use wasmtime::component::Resource;

use crate::bindings::spin::postgres::postgres::{
    self as pg, DbError, Error, HostConnection, ParameterValue, QueryError, RowSet,
};
use crate::client::{Connection, OpenError};
use crate::convert::{self, SqlParam};
use crate::{spin40, PgCompatibility, PgHost};

impl pg::Host for PgHost {}

impl HostConnection for PgHost {
    async fn open(&mut self, address: String) -> Result<Resource<Connection>, Error> {
        let connection = self
            .pools
            .open(self.kind, &address, &self.allowed)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "postgres open refused");
                match e {
                    OpenError::BadAddress(_) | OpenError::NotAllowed(_) | OpenError::Connect(_) => {
                        Error::ConnectionFailed(e.to_string())
                    }
                }
            })?;
        self.table
            .push(connection)
            .map_err(|e| Error::Other(format!("too many open connections: {e}")))
    }

    async fn query(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<RowSet, Error> {
        let compatibility = self.compatibility;
        let spin40 = compatibility == PgCompatibility::Spin40;
        let (client, prepared, params) = self.prepare(&connection, &statement, params).await?;
        if spin40 {
            spin40::check_columns(prepared.columns())?;
        }
        let rows = client
            .query(&prepared, &param_refs(&params))
            .await
            .map_err(query_failed)?;
        if spin40 && rows.is_empty() {
            return Err(spin40::no_rows());
        }
        let rows = rows
            .iter()
            .map(|row| convert::row(row, compatibility))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::ValueConversionFailed)?;
        Ok(RowSet {
            columns: convert::columns(prepared.columns(), compatibility),
            rows,
        })
    }

    async fn execute(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<u64, Error> {
        let (client, prepared, params) = self.prepare(&connection, &statement, params).await?;
        client
            .execute(&prepared, &param_refs(&params))
            .await
            .map_err(query_failed)
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

impl PgHost {
    /// Converts the parameters, notes the statement for transaction
    /// tracking, and prepares it (once per pooled connection).
    async fn prepare<'a>(
        &'a mut self,
        handle: &Resource<Connection>,
        statement: &str,
        params: Vec<ParameterValue>,
    ) -> Result<
        (
            &'a deadpool_postgres::Object,
            tokio_postgres::Statement,
            Vec<SqlParam>,
        ),
        Error,
    > {
        let params = sql_params(params)?;
        let connection = self.connection(handle)?;
        connection.txn.observe(statement);
        let client = connection.client();
        let prepared = client
            .prepare_cached(statement)
            .await
            .map_err(query_failed)?;
        Ok((client, prepared, params))
    }

    fn connection(&mut self, handle: &Resource<Connection>) -> Result<&mut Connection, Error> {
        self.table
            .get_mut(handle)
            .map_err(|e| Error::Other(format!("invalid connection handle: {e}")))
    }
}

fn sql_params(params: Vec<ParameterValue>) -> Result<Vec<SqlParam>, Error> {
    params
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            convert::to_sql_param(p)
                .map_err(|e| Error::BadParameter(format!("parameter ${}: {e}", i + 1)))
        })
        .collect()
}

fn param_refs(params: &[SqlParam]) -> Vec<&(dyn postgres_types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn postgres_types::ToSql + Sync))
        .collect()
}

fn query_failed(e: tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        return Error::QueryFailed(QueryError::DbError(DbError {
            as_text: e.to_string(),
            severity: db.severity().to_string(),
            code: db.code().code().to_string(),
            message: db.message().to_string(),
            detail: db.detail().map(str::to_string),
            extras: db_extras(db),
        }));
    }
    if e.is_closed() {
        return Error::ConnectionFailed(e.to_string());
    }
    // Serialisation errors (a parameter of the wrong type) come here too.
    let text = match std::error::Error::source(&e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    };
    Error::QueryFailed(QueryError::Text(text))
}

fn db_extras(db: &tokio_postgres::error::DbError) -> Vec<(String, String)> {
    let fields = [
        ("hint", db.hint()),
        ("schema", db.schema()),
        ("table", db.table()),
        ("column", db.column()),
        ("constraint", db.constraint()),
        ("where", db.where_()),
    ];
    fields
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v.to_string())))
        .collect()
}
