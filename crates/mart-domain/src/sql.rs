//! SQL shapes every component's queries take so they run on Fermyon Spin
//! 4.0.x's PostgreSQL host as well as on Mart's.
//!
//! Spin 4.0.0–4.0.2 never answers a `query` whose result has no rows (its
//! host waits for the column list, which it sends with the first row;
//! spinframework/spin#3671, fixed after 4.0.2). A component would hang on
//! every lookup that finds nothing. [`at_least_one_row`] wraps a statement
//! so that its result always has a row: the statement's rows numbered in a
//! trailing `mart_row` column, or one row of NULLs when it has none, which
//! the guest removes again. The statement runs once, as written (a CTE that
//! is `MATERIALIZED` is evaluated once and keeps its row order; DML in it
//! runs exactly once).
//!
//! The same host cannot return `timestamptz` values either (it decodes them
//! as naive date-times and fails the query), so components select such a
//! column as `(created_at AT TIME ZONE 'UTC') AS created_at`: a UTC
//! `timestamp`, which decodes on every host.

/// The trailing column [`at_least_one_row`] adds: the row's position, NULL
/// on the padding row of an empty result.
pub const ROW_COLUMN: &str = "mart_row";

/// `statement` (one SELECT, or INSERT/UPDATE/DELETE … RETURNING) wrapped so
/// its result has at least one row. Statements that begin with their own
/// `WITH` holding DML cannot be nested and must not be passed here.
pub fn at_least_one_row(statement: &str) -> String {
    let statement = statement.trim().trim_end_matches(';');
    format!(
        "WITH mart_result AS MATERIALIZED ({statement}), \
         mart_numbered AS (SELECT mart_result.*, row_number() OVER () AS {ROW_COLUMN} FROM mart_result) \
         SELECT mart_numbered.* FROM (SELECT 1) AS mart_one \
         LEFT JOIN mart_numbered ON true ORDER BY mart_numbered.{ROW_COLUMN}"
    )
}

/// The rows of a result of [`at_least_one_row`] without the padding: drops
/// the row whose `mart_row` is NULL and the `mart_row` value of the others.
/// `is_null` tells whether a value is SQL NULL.
pub fn without_padding<V>(rows: Vec<Vec<V>>, is_null: impl Fn(&V) -> bool) -> Vec<Vec<V>> {
    rows.into_iter()
        .filter_map(|mut row| {
            let marker = row.pop()?;
            (!is_null(&marker)).then_some(row)
        })
        .collect()
}

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

    #[test]
    fn wraps_the_statement_once_without_its_semicolon() {
        let sql = at_least_one_row("SELECT id FROM t WHERE id = $1;\n");
        assert!(
            sql.starts_with("WITH mart_result AS MATERIALIZED (SELECT id FROM t WHERE id = $1)")
        );
        assert_eq!(sql.matches("SELECT id FROM t").count(), 1);
        assert!(sql.ends_with("ORDER BY mart_numbered.mart_row"));
    }

    #[test]
    fn padding_goes_and_real_rows_stay_in_order() {
        let none: Vec<Vec<Option<i64>>> = vec![vec![None, None]];
        assert!(without_padding(none, Option::is_none).is_empty());
        let rows = vec![vec![Some(7), Some(1)], vec![None, Some(2)]];
        assert_eq!(
            without_padding(rows, Option::is_none),
            vec![vec![Some(7)], vec![None]]
        );
    }
}
