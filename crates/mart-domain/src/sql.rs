//! SQL shapes every component's queries take so they run on Fermyon Spin
//! 4.0.x's PostgreSQL host as well as on Mart's.
//!
//! Spin 4.0.0–4.0.2's sync `query` never answers a query whose result has
//! no rows (spinframework/spin#3671); its async `query-async`
//! (`spin:postgres@4.2.0`), which every component uses through
//! `mart_guest::db`, does. No statement needs wrapping for it.
//!
//! The same host cannot return `timestamptz` values (it decodes them as
//! naive date-times and fails the query), so components select such a
//! column as `(created_at AT TIME ZONE 'UTC') AS created_at`: a UTC
//! `timestamp`, which decodes on every host.

/// The SQLSTATE in a database error as Spin 4.0.x's PostgreSQL host hands
/// it to a `postgres@4.0.0` guest: as text, its error printed with `Debug`
/// (`Error::QueryFailed(QueryError::DbError(DbError { …, code:
/// SqlState(E23505), … }))`, or `SqlState(Other("P0001"))` for a code
/// tokio-postgres has no name for), where Mart's host gives the structured
/// `db-error`. So that a component's decisions (409 for a taken email) are
/// the same on both hosts.
pub fn spin40_sqlstate(text: &str) -> Option<&str> {
    let after = &text[text.find("code: SqlState(")? + "code: SqlState(".len()..];
    let code = match after.strip_prefix("Other(\"") {
        Some(other) => other.get(..5)?,
        None => after.strip_prefix('E')?.get(..5)?,
    };
    code.bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        .then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_40s_text_errors_name_their_sqlstate() {
        let unique = "Error::QueryFailed(QueryError::DbError(DbError { severity: \"ERROR\", \
                      parsed_severity: Some(Error), code: SqlState(E23505), message: \
                      \"duplicate key value violates unique constraint \\\"users_email\\\"\" }))";
        assert_eq!(spin40_sqlstate(unique), Some("23505"));
        let raised = "DbError { code: SqlState(Other(\"P0001\")), message: \"no\" }";
        assert_eq!(spin40_sqlstate(raised), Some("P0001"));
        assert_eq!(spin40_sqlstate("connection refused"), None);
        assert_eq!(spin40_sqlstate("code: SqlState(E23"), None);
    }
}
