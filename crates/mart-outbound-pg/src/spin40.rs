//! What Fermyon Spin 4.0.x's PostgreSQL host (`crates/factor-outbound-pg`
//! at v4.0.2) cannot do, refused the same way here under
//! [`PgCompatibility::Spin40`](crate::PgCompatibility).

// The error type is the interface's (`spin:postgres` `error`); its size is not ours to choose.
#![allow(clippy::result_large_err)]

use postgres_types::Type;

use crate::bindings::spin::postgres::postgres::{Error, QueryError};

/// Spin reads a `timestamptz` column as a naive date-time, which
/// tokio-postgres refuses for that type: the whole query fails, with this
/// error (the column index counts from 0).
pub(crate) fn check_columns(columns: &[crate::convert::ColumnInfo]) -> Result<(), Error> {
    match columns.iter().position(|(_, ty)| *ty == Type::TIMESTAMPTZ) {
        None => Ok(()),
        Some(i) => Err(Error::QueryFailed(QueryError::Text(format!(
            "error deserializing column {i}: cannot convert between the Rust type \
             `core::option::Option<chrono::naive::datetime::NaiveDateTime>` and the Postgres \
             type `timestamptz` (Fermyon Spin 4.0.x cannot return timestamptz column `{}`; \
             select it as `({0} AT TIME ZONE 'UTC') AS {0}`)",
            columns[i].0
        )))),
    }
}

/// Spin sends a query's columns with its first row, and its `query` waits
/// for them: a query that returns no rows never returns. Refused with an
/// error rather than a hang.
pub(crate) fn no_rows() -> Error {
    Error::QueryFailed(QueryError::Text(
        "the query returned no rows, which Fermyon Spin 4.0.0-4.0.2 never answers \
         (spinframework/spin#3671: the request hangs); use the async query \
         (spin:postgres@4.2.0 query-async, spin-sdk 6's Connection::query), which answers it"
            .into(),
    ))
}

/// Spin 4.0.x's `query` (sync, 4.0 to 4.2) hands a guest a database error
/// raised while the rows stream (a unique violation, a check constraint)
/// as text, not as the structured `db-error`: its host's own error printed
/// with `Debug`, tokio-postgres's `DbError` inside (`… code: SqlState(E23505) …`). Written here in that
/// shape as far as a component can read it, so that a component that reads
/// SQLSTATEs from the structured error only fails here as it would on Spin
/// (`mart_domain::sql::spin40_sqlstate` reads both). Other errors pass.
/// Its `execute`, and the async calls of 4.2, keep the structure
/// (`crates/factor-outbound-pg/src/client.rs` at v4.0.2).
pub(crate) fn db_error_as_text(error: Error) -> Error {
    match error {
        Error::QueryFailed(QueryError::DbError(db)) => Error::QueryFailed(QueryError::Text(format!(
            "Error::QueryFailed(QueryError::DbError(DbError {{ severity: {:?}, code: SqlState(E{}), \
             message: {:?}, detail: {:?} }}))",
            db.severity, db.code, db.message, db.detail
        ))),
        other => other,
    }
}

/// Types Spin's host has no mapping for: their values come back as
/// `unsupported` bytes and their column type as `other`.
pub(crate) fn is_unsupported(ty: &Type) -> bool {
    matches!(*ty, Type::JSON | Type::NAME | Type::CHAR | Type::NAME_ARRAY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::spin::postgres::postgres::DbError;

    #[test]
    fn a_database_error_reaches_the_guest_as_spin_40s_text() {
        let unique = Error::QueryFailed(QueryError::DbError(DbError {
            as_text: String::new(),
            severity: "ERROR".into(),
            code: "23505".into(),
            message: "duplicate key value violates unique constraint \"users_email\"".into(),
            detail: None,
            extras: vec![],
        }));
        let Error::QueryFailed(QueryError::Text(text)) = db_error_as_text(unique) else {
            panic!("not text");
        };
        assert!(text.starts_with("Error::QueryFailed(QueryError::DbError(DbError {"));
        assert!(text.contains("code: SqlState(E23505)"), "{text}");
        let other = Error::ConnectionFailed("refused".into());
        assert!(matches!(
            db_error_as_text(other),
            Error::ConnectionFailed(t) if t == "refused"
        ));
    }
}
