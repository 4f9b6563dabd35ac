//! The `spin:postgres/postgres@4.0.0` trait implementation.

// The error type is the interface's (`spin:postgres` `error`); its size is not ours to choose.
#![allow(clippy::result_large_err)]

use mart_telemetry::{Span, SpanKind};
use wasmtime::component::Resource;

use crate::bindings::spin::postgres::postgres::{
    self as pg, DbError, Error, HostConnection, ParameterValue, QueryError, RowSet,
};
use crate::client::{Connection, OpenError, PgPools, Session, TriggerKind};
use crate::convert::{self, ColumnInfo, RawRow, SqlParam};
use crate::{spin40, PgCompatibility, PgHost};
use mart_outbound_networking::AllowedHosts;

impl pg::Host for PgHost {}

impl HostConnection for PgHost {
    async fn open(&mut self, address: String) -> Result<Resource<Connection>, Error> {
        let connection = open(&self.pools, self.kind, &address, &self.allowed).await?;
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
        let span = self.statement_span(&connection, &statement);
        let compatibility = self.compatibility;
        let result = match self.connection(&connection) {
            Ok(connection) => {
                let session = connection.session();
                let mut session = session.lock().await;
                query(&mut session, &statement, params, compatibility)
                    .await
                    .and_then(|(columns, rows)| row_set(&columns, &rows, compatibility))
            }
            Err(e) => Err(e),
        };
        finish(span, &result);
        self.as_the_guest_sees(result)
    }

    async fn execute(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<u64, Error> {
        let span = self.statement_span(&connection, &statement);
        let result = match self.connection(&connection) {
            Ok(connection) => {
                let session = connection.session();
                let mut session = session.lock().await;
                execute(&mut session, &statement, params).await
            }
            Err(e) => Err(e),
        };
        finish(span, &result);
        // Spin 4.0.x's `execute` hands a database error over structured;
        // only its `query` turns it into text (see spin40.rs).
        result
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

/// A pooled connection to `address`, if the component may reach it.
pub(crate) async fn open(
    pools: &PgPools,
    kind: TriggerKind,
    address: &str,
    allowed: &AllowedHosts,
) -> Result<Connection, Error> {
    pools.open(kind, address, allowed).await.map_err(|e| {
        tracing::warn!(error = %e, "postgres open refused");
        match e {
            OpenError::BadAddress(_) | OpenError::NotAllowed(_) | OpenError::Connect(_) => {
                Error::ConnectionFailed(e.to_string())
            }
        }
    })
}

/// Ends a statement's span, failed when the statement failed.
pub(crate) fn finish<T>(span: Option<Span>, result: &Result<T, Error>) {
    if let (Some(mut span), Err(e)) = (span, result) {
        span.fail(span_status(e));
    }
}

/// What a failed statement's span says: for a server error its SQLSTATE
/// and message only. The server's detail, hint and where-fields (and the
/// full text that repeats them) carry row values, e.g. `Key (email)=(…)
/// already exists` or `Failing row contains (…)`: personal data, which
/// traces (kept, shipped to a collector, read by operators) must not hold.
fn span_status(e: &Error) -> String {
    match e {
        Error::QueryFailed(QueryError::DbError(db)) => {
            format!("SQLSTATE {}: {}", db.code, db.message)
        }
        Error::QueryFailed(QueryError::Text(text)) => format!("query failed: {text}"),
        Error::ConnectionFailed(text) => format!("connection failed: {text}"),
        Error::BadParameter(text) => format!("bad parameter: {text}"),
        Error::ValueConversionFailed(text) => format!("value conversion failed: {text}"),
        Error::Other(text) => text.clone(),
    }
}

impl PgHost {
    /// A statement's result as the component sees it: under `Spin40`, a
    /// database error in the text shape Spin 4.0.x gives it (the span has
    /// recorded the structured error already, without row values).
    fn as_the_guest_sees<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        match self.compatibility {
            PgCompatibility::Spin40 => result.map_err(spin40::db_error_as_text),
            _ => result,
        }
    }

    /// A client span for one statement, under the invocation's span, with
    /// OpenTelemetry's database attributes. The statement text is the one
    /// the component prepared: parameters are never part of it. None when
    /// spans are not exported: a statement hands no trace context on.
    pub(crate) fn statement_span(
        &self,
        connection: &Resource<Connection>,
        statement: &str,
    ) -> Option<Span> {
        let trace = Some(&self.trace)
            .filter(|_| mart_telemetry::exporting())?
            .get()?;
        let operation = statement
            .split_whitespace()
            .next()
            .unwrap_or("SQL")
            .to_ascii_uppercase();
        let database = self
            .table
            .get(connection)
            .map(|c| c.database.clone())
            .unwrap_or_default();
        let mut span = Span::child_of(
            &trace,
            || format!("{operation} {database}").trim_end().to_string(),
            SpanKind::Client,
        );
        if span.is_recording() {
            span.set("db.system.name", "postgresql");
            span.set("db.namespace", database);
            span.set("db.operation.name", operation);
            span.set("db.query.text", statement.to_string());
        }
        Some(span)
    }
}

/// A statement prepared on a connection, ready to run: what PostgreSQL
/// refuses before running a statement (its syntax, a parameter) is the
/// error of `prepare`; what it raises while running it, of `query` or
/// `execute`.
pub(crate) struct Prepared<'a> {
    client: &'a deadpool_postgres::Object,
    statement: tokio_postgres::Statement,
    params: Vec<SqlParam>,
}

impl Prepared<'_> {
    /// The columns the statement's rows will have.
    pub(crate) fn columns(&self) -> Vec<ColumnInfo> {
        self.statement
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), c.type_().clone()))
            .collect()
    }

    pub(crate) async fn query(self) -> Result<Vec<tokio_postgres::Row>, Error> {
        self.client
            .query(&self.statement, &param_refs(&self.params))
            .await
            .map_err(query_failed)
    }

    pub(crate) async fn execute(self) -> Result<u64, Error> {
        self.client
            .execute(&self.statement, &param_refs(&self.params))
            .await
            .map_err(query_failed)
    }
}

/// Runs a query in `session`: its columns and raw rows.
async fn query(
    session: &mut Session,
    statement: &str,
    params: Vec<ParameterValue>,
    compatibility: PgCompatibility,
) -> Result<(Vec<ColumnInfo>, Vec<tokio_postgres::Row>), Error> {
    let prepared = prepare(session, statement, params).await?;
    let columns = prepared.columns();
    if compatibility == PgCompatibility::Spin40 {
        // Before running it: Spin fails such a query without running it.
        spin40::check_columns(&columns)?;
    }
    Ok((columns, prepared.query().await?))
}

/// Runs a statement in `session`: the rows it changed.
async fn execute(
    session: &mut Session,
    statement: &str,
    params: Vec<ParameterValue>,
) -> Result<u64, Error> {
    prepare(session, statement, params).await?.execute().await
}

/// The interface's answer to a query from its result rows, as this host
/// or (under `Spin40`) Fermyon Spin 4.0.x would give it.
fn row_set(
    columns: &[ColumnInfo],
    rows: &[impl RawRow],
    compatibility: PgCompatibility,
) -> Result<RowSet, Error> {
    if compatibility == PgCompatibility::Spin40 {
        spin40::check_columns(columns)?;
        if rows.is_empty() {
            return Err(spin40::no_rows());
        }
    }
    let rows = rows
        .iter()
        .map(|row| convert::row(row, columns, compatibility))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::ValueConversionFailed)?;
    Ok(RowSet {
        columns: convert::columns(columns, compatibility),
        rows,
    })
}

/// Converts the parameters, notes the statement for transaction tracking,
/// and prepares it (once per pooled connection).
pub(crate) async fn prepare<'a>(
    session: &'a mut Session,
    statement: &str,
    params: Vec<ParameterValue>,
) -> Result<Prepared<'a>, Error> {
    let params = sql_params(params)?;
    session.txn.observe(statement);
    let client = session.client();
    let statement = client
        .prepare_cached(statement)
        .await
        .map_err(query_failed)?;
    Ok(Prepared {
        client,
        statement,
        params,
    })
}

impl PgHost {
    pub(crate) fn connection(
        &mut self,
        handle: &Resource<Connection>,
    ) -> Result<&mut Connection, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::spin::postgres::postgres::{DbDataType, DbValue};
    use bytes::BytesMut;
    use postgres_types::{ToSql, Type};

    fn raw(value: &(dyn ToSql + Sync), ty: &Type) -> Option<Vec<u8>> {
        let mut out = BytesMut::new();
        value.to_sql_checked(ty, &mut out).unwrap();
        Some(out.to_vec())
    }

    /// The interface's values have no `PartialEq`; their debug text compares.
    fn same(rows: &[Vec<DbValue>]) -> String {
        format!("{rows:?}")
    }

    fn column(name: &str, ty: Type) -> ColumnInfo {
        (name.to_string(), ty)
    }

    #[test]
    fn a_failed_statements_span_keeps_sqlstate_and_message_not_the_rows_values() {
        let duplicate = Error::QueryFailed(QueryError::DbError(DbError {
            as_text: "db error: ERROR: duplicate key value violates unique constraint \
                      \"users_email_key\"\nDETAIL: Key (email)=(ada@example.com) already exists."
                .into(),
            severity: "ERROR".into(),
            code: "23505".into(),
            message: "duplicate key value violates unique constraint \"users_email_key\"".into(),
            detail: Some("Key (email)=(ada@example.com) already exists.".into()),
            extras: vec![("constraint".into(), "users_email_key".into())],
        }));
        assert_eq!(
            span_status(&duplicate),
            "SQLSTATE 23505: duplicate key value violates unique constraint \"users_email_key\""
        );
    }

    #[test]
    fn rows_are_converted_value_by_value_with_nulls() {
        let id = uuid::Uuid::parse_str("0b7c6f0e-5a8e-4e52-9c53-8f2f0f7d9a10").unwrap();
        let columns = [
            column("id", Type::UUID),
            column("qty", Type::INT4),
            column("name", Type::TEXT),
            column("note", Type::TEXT),
        ];
        let rows = vec![vec![
            raw(&id, &Type::UUID),
            raw(&7i32, &Type::INT4),
            raw(&"tea", &Type::TEXT),
            None,
        ]];
        let set = row_set(&columns, &rows, PgCompatibility::Full).unwrap();
        assert_eq!(
            same(&set.rows),
            same(&[vec![
                DbValue::Uuid(id.to_string()),
                DbValue::Int32(7),
                DbValue::Str("tea".into()),
                DbValue::DbNull,
            ]])
        );
        assert_eq!(set.columns[1].name, "qty");
        assert!(matches!(set.columns[1].data_type, DbDataType::Int32));
    }

    #[test]
    fn a_value_that_is_not_its_columns_type_names_the_column() {
        let columns = [column("qty", Type::INT4)];
        let rows = vec![vec![Some(vec![1, 2])]];
        let Err(Error::ValueConversionFailed(why)) =
            row_set(&columns, &rows, PgCompatibility::Full)
        else {
            panic!("a two-byte int4 must not convert");
        };
        assert!(why.starts_with("column `qty` (int4)"), "{why}");
    }

    #[test]
    fn under_spin40_what_spin_cannot_answer_is_refused_as_spin_does() {
        let at = column("created_at", Type::TIMESTAMPTZ);
        let Err(Error::QueryFailed(QueryError::Text(why))) = row_set(
            std::slice::from_ref(&at),
            &Vec::<Vec<Option<Vec<u8>>>>::new(),
            PgCompatibility::Spin40,
        ) else {
            panic!("timestamptz must be refused under Spin40");
        };
        assert!(why.contains("created_at"), "{why}");
        // This host reads it.
        let when = chrono::DateTime::from_timestamp(0, 0).unwrap();
        let rows = vec![vec![raw(&when, &Type::TIMESTAMPTZ)]];
        let set = row_set(&[at], &rows, PgCompatibility::Full).unwrap();
        assert_eq!(
            same(&set.rows),
            same(&[vec![DbValue::Datetime((1970, 1, 1, 0, 0, 0, 0))]])
        );

        let no_rows = row_set(
            &[column("n", Type::INT8)],
            &Vec::<Vec<Option<Vec<u8>>>>::new(),
            PgCompatibility::Spin40,
        );
        assert!(matches!(no_rows, Err(Error::QueryFailed(_))));
        let json = row_set(
            &[column("doc", Type::JSON)],
            &[vec![Some(b"{}".to_vec())]],
            PgCompatibility::Spin40,
        )
        .unwrap();
        assert_eq!(
            same(&json.rows),
            same(&[vec![DbValue::Unsupported(b"{}".to_vec())]])
        );
        assert!(matches!(json.columns[0].data_type, DbDataType::Other(_)));
    }
}
