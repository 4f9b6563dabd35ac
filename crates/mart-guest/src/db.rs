//! PostgreSQL through `spin:postgres`, the way every Mart component uses it:
//! the connection from the `db_url` variable, transactions, the outbox, the
//! processed-events record, and value decoding with failures reported as
//! our own (logged, not leaked).

use mart_domain::events::EventData;
use mart_domain::{outbox, DomainError};
pub use spin_sdk::pg::{DbValue, Error, ParameterValue};
use spin_sdk::pg::{Decode, PgError, QueryError};

/// A `spin:postgres` connection, through its async calls (4.2): a query's
/// rows are collected as they stream, and an error raised while the
/// statement runs arrives after them. Components use this type, never
/// spin-sdk's connection directly.
///
/// Unlike the sync `query` of Fermyon Spin 4.0.0–4.0.2, which failed a
/// query without rows (spinframework/spin#3671, worked around before by
/// padding every result), the async call answers such a query with no
/// rows, so statements go to the host as written.
pub struct Connection(spin_sdk::pg::Connection);

/// A query's rows, each a list of values in the statement's column order.
pub struct RowSet {
    pub rows: Vec<Vec<DbValue>>,
}

impl Connection {
    pub async fn open(address: &str) -> Result<Self, Error> {
        spin_sdk::pg::Connection::open(address).await.map(Self)
    }

    pub async fn query(&self, statement: &str, params: &[ParameterValue]) -> Result<RowSet, Error> {
        let result = self.0.query(statement, params.to_vec()).await?;
        let (_, mut stream, end) = result.into_inner();
        let mut rows = Vec::new();
        while let Some(row) = stream.next().await {
            rows.push(row);
        }
        end.await.map_err(Error::PgError)?;
        Ok(RowSet { rows })
    }

    pub async fn execute(&self, statement: &str, params: &[ParameterValue]) -> Result<u64, Error> {
        self.0.execute(statement, params.to_vec()).await
    }
}

/// A database failure: logged with `service`'s name, reported without our
/// internals (a 500 to an HTTP caller, a retry to the Kafka trigger).
pub fn failed(service: &str, error: impl std::fmt::Display) -> DomainError {
    eprintln!("{service}: database error: {error}");
    DomainError::Internal(format!("the {service} database failed"))
}

/// A service's database, the one way every component reaches it: the
/// connection from the `db_url` variable, transactions that nest, the
/// outbox, and the processed-events record that applies an event once.
pub struct Database {
    pub connection: Connection,
    service: &'static str,
    /// Open transactions: nested ones become savepoints.
    depth: std::cell::Cell<u32>,
}

impl Database {
    /// Opens the component's database (`db_url`); unavailable (a 503, a
    /// retry) if it cannot be reached.
    pub async fn connect(service: &'static str) -> Result<Self, DomainError> {
        let url = crate::config::variable("db_url").await?;
        let connection = Connection::open(&url).await.map_err(|e| {
            eprintln!("{service}: cannot open the database: {e}");
            DomainError::Unavailable(format!("the {service} database is unavailable"))
        })?;
        Ok(Self {
            connection,
            service,
            depth: std::cell::Cell::new(0),
        })
    }

    /// A failure of this database (see `failed`).
    pub fn failed(&self, error: impl std::fmt::Display) -> DomainError {
        failed(self.service, error)
    }

    /// Runs `work` between BEGIN and COMMIT; any error rolls it back.
    /// Inside an open transaction it runs under a savepoint instead, so an
    /// inner failure undoes only the inner work and the same code serves
    /// on its own and as part of a larger change.
    pub async fn transaction<T, E: From<DomainError>>(
        &self,
        work: impl AsyncFnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let level = self.depth.get();
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
        self.connection
            .execute(&begin, &[])
            .await
            .map_err(|e| self.failed(e))?;
        self.depth.set(level + 1);
        let result = work().await;
        self.depth.set(level);
        match result {
            Ok(value) => {
                self.connection
                    .execute(&commit, &[])
                    .await
                    .map_err(|e| self.failed(e))?;
                Ok(value)
            }
            Err(error) => {
                let _ = self.connection.execute(&rollback, &[]).await;
                Err(error)
            }
        }
    }

    /// Runs `work` once per `(consumer, event_id)`: the processed-events
    /// record and the work commit in one transaction, so a redelivered
    /// event (or a resent webhook) finds its record and is skipped.
    /// Returns `None` when it was skipped. Effects outside the database (a
    /// payment provider, a mail API) are not covered: pass `event_id` to
    /// them as their idempotency key.
    pub async fn apply_once<T, E: From<DomainError>>(
        &self,
        consumer: &str,
        event_id: &str,
        work: impl AsyncFnOnce() -> Result<T, E>,
    ) -> Result<Option<T>, E> {
        self.transaction(async || {
            let inserted = self
                .connection
                .execute(
                    "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                    &[text(consumer), text(event_id)],
                )
                .await
                .map_err(|e| self.failed(e))?;
            if inserted == 0 {
                return Ok(None);
            }
            work().await.map(Some)
        })
        .await
    }

    /// Records `event` about `aggregate_id` in the outbox, its aggregate
    /// type and name from the event type; call it inside the change's
    /// transaction.
    pub async fn record(&self, aggregate_id: &str, event: &EventData) -> Result<(), DomainError> {
        let kind = event.event_type();
        record_event(
            &self.connection,
            kind.aggregate(),
            aggregate_id,
            kind.as_str(),
            &event.to_json(),
        )
        .await
    }
}

/// Defines a component's database type around `Database` for `service`:
/// `connect`, `transaction` (the closure gets the component's type, so its
/// own queries compose) and the `Database` underneath (`db.connection`,
/// `db.record`, `db.apply_once`). The component adds its queries in an
/// `impl` of its own.
///
/// ```ignore
/// mart_guest::service_database!(pub struct Db("orders"));
/// ```
#[macro_export]
macro_rules! service_database {
    ($(#[$meta:meta])* $vis:vis struct $name:ident($service:literal)) => {
        $(#[$meta])*
        $vis struct $name {
            db: $crate::db::Database,
        }

        impl $name {
            pub async fn connect() -> Result<Self, $crate::DomainError> {
                Ok(Self {
                    db: $crate::db::Database::connect($service).await?,
                })
            }

            /// Runs `work` in one transaction (a savepoint inside another).
            #[allow(dead_code)]
            pub async fn transaction<T, E: From<$crate::DomainError>>(
                &self,
                work: impl AsyncFnOnce(&Self) -> Result<T, E>,
            ) -> Result<T, E> {
                self.db.transaction(async || work(self).await).await
            }
        }

        impl AsRef<$crate::db::Database> for $name {
            fn as_ref(&self) -> &$crate::db::Database {
                &self.db
            }
        }

        impl std::ops::Deref for $name {
            type Target = $crate::db::Database;
            fn deref(&self) -> &$crate::db::Database {
                &self.db
            }
        }
    };
}

/// Records an event in the outbox; call it inside the state change's
/// transaction.
async fn record_event(
    connection: &Connection,
    service: &str,
    aggregate_id: &str,
    event_type: &str,
    payload: &serde_json::Value,
) -> Result<(), DomainError> {
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
        .await
        .map_err(|e| failed(service, e))?;
    Ok(())
}

/// The SQLSTATE of a database error (`23505` unique violation, …), in the
/// structured shape Mart's host gives or the text Spin 4.0.x gives.
pub fn sql_state(error: &Error) -> Option<&str> {
    match error {
        Error::PgError(PgError::QueryFailed(QueryError::DbError(db))) => Some(db.code.as_str()),
        Error::PgError(PgError::QueryFailed(QueryError::Text(text))) => {
            mart_domain::sql::spin40_sqlstate(text)
        }
        _ => None,
    }
}

pub fn decode<T: Decode>(value: &DbValue) -> Result<T, DomainError> {
    T::decode(value).map_err(|e| failed("component", e))
}

pub fn uuid_text(value: &DbValue) -> Result<String, DomainError> {
    match value {
        DbValue::Uuid(u) => Ok(u.clone()),
        other => Err(failed("component", format!("not a uuid: {other:?}"))),
    }
}

/// A timestamp column as RFC 3339 UTC with microseconds.
pub fn timestamp(value: &DbValue) -> Result<String, DomainError> {
    let dt: chrono::NaiveDateTime = decode(value)?;
    Ok(dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

pub fn uuid(id: &str) -> ParameterValue {
    ParameterValue::Uuid(id.to_string())
}

pub fn text(value: &str) -> ParameterValue {
    ParameterValue::Str(value.to_string())
}
