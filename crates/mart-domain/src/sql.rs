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

#[cfg(test)]
mod tests {
    use super::*;

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
