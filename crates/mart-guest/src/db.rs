//! PostgreSQL through `spin:postgres`, the way every Mart component uses it:
//! the connection from the `db_url` variable, transactions, the outbox, and
//! value decoding with failures mapped to 500 problems (logged, not leaked).

use mart_domain::{outbox, sql, Problem};
use spin_sdk::pg4::{DbValue, Decode, ParameterValue, PgError, QueryError, RowSet};

/// A `spin:postgres` connection whose `query` also works on Fermyon Spin
/// 4.0.0–4.0.2, whose host never answers a query without rows
/// (spinframework/spin#3671): every query is sent wrapped so its result has
/// a row (`mart_domain::sql::at_least_one_row`), and the padding is removed
/// here. Components use this type, never spin-sdk's connection directly.
pub struct Connection(spin_sdk::pg4::Connection);

// spin-sdk's own error type, kept so the wrapper is a drop-in for its connection.
#[allow(clippy::result_large_err)]
impl Connection {
    pub fn open(address: &str) -> Result<Self, PgError> {
        spin_sdk::pg4::Connection::open(address).map(Self)
    }

    pub fn query(&self, statement: &str, params: &[ParameterValue]) -> Result<RowSet, PgError> {
        let mut result = self.0.query(&sql::at_least_one_row(statement), params)?;
        result.columns.pop();
        result.rows = sql::without_padding(result.rows, |v| matches!(v, DbValue::DbNull));
        Ok(result)
    }

    pub fn execute(&self, statement: &str, params: &[ParameterValue]) -> Result<u64, PgError> {
        self.0.execute(statement, params)
    }
}

/// A database failure: logged with `service`'s name, answered as a generic 500.
pub fn failed(service: &str, error: impl std::fmt::Display) -> Problem {
    eprintln!("{service}: database error: {error}");
    Problem::internal(format!("the {service} database failed"))
}

/// Opens the component's database (`db_url`); 503 if it is unreachable.
pub fn connect(service: &str) -> Result<Connection, Problem> {
    let url = crate::config::variable("db_url")?;
    Connection::open(&url).map_err(|e| {
        eprintln!("{service}: cannot open the database: {e}");
        Problem::service_unavailable(format!("the {service} database is unavailable"))
    })
}

/// Runs `work` between BEGIN and COMMIT; any error rolls everything back.
pub fn transaction<T, E: From<Problem>>(
    connection: &Connection,
    service: &str,
    work: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    connection
        .execute("BEGIN", &[])
        .map_err(|e| failed(service, e))?;
    match work() {
        Ok(value) => {
            connection
                .execute("COMMIT", &[])
                .map_err(|e| failed(service, e))?;
            Ok(value)
        }
        Err(error) => {
            let _ = connection.execute("ROLLBACK", &[]);
            Err(error)
        }
    }
}

/// Like `transaction`, but nests: inside an open transaction (`depth` > 0)
/// the work runs under a savepoint, so an inner failure undoes only the
/// inner work. A component keeps `depth` next to its connection.
pub fn nested_transaction<T, E: From<Problem>>(
    connection: &Connection,
    service: &str,
    depth: &std::cell::Cell<u32>,
    work: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let level = depth.get();
    let (begin, commit, rollback) = if level == 0 {
        (
            "BEGIN".to_string(),
            "COMMIT".to_string(),
            "ROLLBACK".to_string(),
        )
    } else {
        (
            format!("SAVEPOINT nested_{level}"),
            format!("RELEASE SAVEPOINT nested_{level}"),
            format!("ROLLBACK TO SAVEPOINT nested_{level}"),
        )
    };
    connection
        .execute(&begin, &[])
        .map_err(|e| failed(service, e))?;
    depth.set(level + 1);
    let result = work();
    depth.set(level);
    match result {
        Ok(value) => {
            connection
                .execute(&commit, &[])
                .map_err(|e| failed(service, e))?;
            Ok(value)
        }
        Err(error) => {
            let _ = connection.execute(&rollback, &[]);
            Err(error)
        }
    }
}

/// Records `event` about `aggregate_id` in the outbox, its aggregate type
/// and name from the event type; call it inside the change's transaction.
pub fn record(
    connection: &Connection,
    aggregate_id: &str,
    event: mart_domain::events::EventType,
    payload: &impl serde::Serialize,
) -> Result<(), Problem> {
    let payload = serde_json::to_value(payload).map_err(|e| failed(event.aggregate(), e))?;
    record_event(
        connection,
        event.aggregate(),
        aggregate_id,
        event.as_str(),
        &payload,
    )
}

/// Records an event in the outbox; call it inside the state change's transaction.
pub fn record_event(
    connection: &Connection,
    service: &str,
    aggregate_id: &str,
    event_type: &str,
    payload: &serde_json::Value,
) -> Result<(), Problem> {
    let payload = serde_json::to_vec(payload).map_err(|e| failed(service, e))?;
    // The relay publishes rows in order; a row the broker would refuse
    // (librdkafka's default message.max.bytes is 1 MB) would hold back every
    // later event of the database. Refuse it here, inside the change's
    // transaction, so the change itself fails instead.
    if payload.len() > outbox::MAX_PAYLOAD_BYTES {
        return Err(failed(
            service,
            format!(
                "an event of {} bytes exceeds the outbox limit of {} bytes",
                payload.len(),
                outbox::MAX_PAYLOAD_BYTES
            ),
        ));
    }
    let params = [
        ParameterValue::Str(service.to_string()),
        ParameterValue::Str(aggregate_id.to_string()),
        ParameterValue::Str(event_type.to_string()),
        ParameterValue::Jsonb(payload),
        crate::trace::current().map_or(ParameterValue::DbNull, ParameterValue::Str),
    ];
    connection
        .execute(outbox::INSERT_SQL, &params)
        .map_err(|e| failed(service, e))?;
    Ok(())
}

/// The SQLSTATE of a database error (`23505` unique violation, …).
pub fn sql_state(error: &PgError) -> Option<&str> {
    match error {
        PgError::QueryFailed(QueryError::DbError(db)) => Some(db.code.as_str()),
        _ => None,
    }
}

pub fn decode<T: Decode>(value: &DbValue) -> Result<T, Problem> {
    T::decode(value).map_err(|e| failed("component", e))
}

pub fn uuid_text(value: &DbValue) -> Result<String, Problem> {
    match value {
        DbValue::Uuid(u) => Ok(u.clone()),
        other => Err(failed("component", format!("not a uuid: {other:?}"))),
    }
}

/// A timestamp column as RFC 3339 UTC with microseconds.
pub fn timestamp(value: &DbValue) -> Result<String, Problem> {
    let dt: chrono::NaiveDateTime = decode(value)?;
    Ok(dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

pub fn uuid(id: &str) -> ParameterValue {
    ParameterValue::Uuid(id.to_string())
}

pub fn text(value: &str) -> ParameterValue {
    ParameterValue::Str(value.to_string())
}
