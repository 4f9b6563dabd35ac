//! A Kafka handler for testing the trigger. Each message's value is JSON:
//! `{"id": "...", "action": ...}` where action is
//! - `"ok"`: record the effect (once per id, deduped like a real handler),
//! - `{"fail_times": n}`: fail retryably until the n+1-th attempt,
//! - `"poison"`: fail permanently (straight to the dead-letter topic),
//! - `{"poison_in_db": db, "times": n}`: fail permanently for the first n
//!   attempts of the handler whose database is `db` (one consumer group of
//!   several), then record the effect,
//! - `{"sleep_ms": n}`: wait in the database, then record the effect,
//! - `"trap"`: panic (the instance traps),
//! - `"noop"`: nothing at all (for measuring the trigger),
//! - `{"publish": topic}`: publish the message's value to `topic` through
//!   `mart:kafka/producer`; a refusal is a permanent failure.
//!
//! Every attempt is logged in `attempts`; effects in `effects`. Tables live in
//! the database named by the `db_url` variable (the test creates them).
//!
//! It exports `mart:kafka/handler@0.1.0`, the sync (WASIp2) interface, with
//! spin-sdk 5.2, so the trigger's p2 path stays tested now that the shop's
//! handlers (through `mart-guest`) export the async 0.2.0. Hence its own
//! bindings and its own few lines of database code.

mod kafka {
    wit_bindgen::generate!({
        path: "../../../wit/mart",
        world: "mart:kafka/kafka-handler",
    });
    pub use exports::mart::kafka::handler::{Failure, Guest as Handler, Message};
    pub use mart::kafka::producer::{self, publish};
}

use kafka::{Failure, Message};
use spin_sdk::pg4::{Connection, ParameterValue};

/// The probe's database connection.
struct Database {
    connection: Connection,
}

impl Database {
    fn connect(url: &str) -> Result<Self, HandlerError> {
        Connection::open(url)
            .map(|connection| Self { connection })
            .map_err(HandlerError::retry)
    }

    /// Runs `work` once per `id`, its processed-events record and its
    /// effect in one transaction, as the app's handlers do.
    fn apply_once(
        &self,
        id: &str,
        work: impl FnOnce() -> Result<(), HandlerError>,
    ) -> Result<(), HandlerError> {
        let run = |sql: &str| {
            self.connection
                .execute(sql, &[])
                .map_err(HandlerError::retry)
        };
        run("BEGIN")?;
        let result = self
            .connection
            .execute(
                "INSERT INTO processed_events (consumer, event_id) VALUES ('kafka-probe', $1) \
                 ON CONFLICT DO NOTHING",
                &[text(id)],
            )
            .map_err(HandlerError::retry)
            .and_then(|inserted| if inserted == 0 { Ok(()) } else { work() });
        match result {
            Ok(()) => run("COMMIT").map(|_| ()),
            Err(error) => {
                let _ = run("ROLLBACK");
                Err(error)
            }
        }
    }
}

struct Probe;

impl kafka::Handler for Probe {
    fn handle(messages: Vec<Message>) -> Result<(), Failure> {
        // `{"action": "noop"}` measures the trigger itself (make bench).
        if messages.iter().all(is_noop) {
            return Ok(());
        }
        let url = spin_sdk::variables::get("db_url").map_err(|e| Failure {
            index: 0,
            retry: false,
            reason: e.to_string(),
        })?;
        let db = Database::connect(&url).map_err(|e| Failure {
            index: 0,
            retry: true,
            reason: e.reason(),
        })?;
        // Not Mart events but the trigger's own test messages: the probe
        // answers each itself, unlike the app's handlers (kafka::run).
        for (index, message) in messages.iter().enumerate() {
            if let Err(error) = handle_one(&db, &url, message) {
                let (retry, reason) = match error {
                    HandlerError::Retry(r) => (true, r),
                    HandlerError::Permanent(r) => (false, r),
                };
                return Err(Failure {
                    index: index as u32,
                    retry,
                    reason,
                });
            }
        }
        Ok(())
    }
}

/// How one test message failed.
enum HandlerError {
    Retry(String),
    Permanent(String),
}

impl HandlerError {
    fn reason(self) -> String {
        match self {
            HandlerError::Retry(r) | HandlerError::Permanent(r) => r,
        }
    }

    fn retry(error: impl std::fmt::Display) -> Self {
        HandlerError::Retry(error.to_string())
    }

    fn permanent(error: impl std::fmt::Display) -> Self {
        HandlerError::Permanent(error.to_string())
    }
}

kafka::export!(Probe with_types_in kafka);

fn handle_one(db: &Database, url: &str, message: &Message) -> Result<(), HandlerError> {
    let value: serde_json::Value =
        serde_json::from_slice(message.value.as_deref().unwrap_or_default())
            .map_err(HandlerError::permanent)?;
    let id = value["id"].as_str().unwrap_or_default().to_string();
    let where_from = format!("{}/{}@{}", message.topic, message.partition, message.offset);
    db.connection
        .execute(
            "INSERT INTO attempts (id, origin) VALUES ($1, $2)",
            &[text(&id), text(&where_from)],
        )
        .map_err(HandlerError::retry)?;
    let action = &value["action"];
    if action == "poison" {
        return Err(HandlerError::permanent(format!("{id} is poison")));
    }
    if action == "trap" {
        panic!("{id} asked to trap");
    }
    if let Some(topic) = action["publish"].as_str() {
        let value = message.value.clone().unwrap_or_default();
        let header = kafka::producer::Header {
            key: "published-by".into(),
            value: b"kafka-probe".to_vec(),
        };
        kafka::publish(topic, Some(id.as_bytes()), &value, &[header])
            .map_err(HandlerError::permanent)?;
    }
    if let Some(poisoned) = action["poison_in_db"].as_str() {
        let times = action["times"].as_i64().unwrap_or(1);
        if url.ends_with(&format!("/{poisoned}")) && attempts_of(db, &id)? <= times {
            return Err(HandlerError::permanent(format!(
                "{id} is poison in {poisoned}"
            )));
        }
    }
    if let Some(times) = action["fail_times"].as_i64() {
        let count = attempts_of(db, &id)?;
        if count <= times {
            return Err(HandlerError::retry(format!("{id} failed attempt {count}")));
        }
    }
    if let Some(ms) = action["sleep_ms"].as_i64() {
        db.connection
            .query(
                "SELECT pg_sleep($1::bigint / 1000.0)",
                &[ParameterValue::Int64(ms)],
            )
            .map_err(HandlerError::retry)?;
    }
    db.apply_once(&id, || {
        db.connection
            .execute(
                "INSERT INTO effects (id, origin) VALUES ($1, $2)",
                &[text(&id), text(&where_from)],
            )
            .map(|_| ())
            .map_err(HandlerError::retry)
    })?;
    Ok(())
}

/// How often a message with `id` was tried, this attempt included.
fn attempts_of(db: &Database, id: &str) -> Result<i64, HandlerError> {
    let attempts = db
        .connection
        .query("SELECT count(*) FROM attempts WHERE id = $1", &[text(id)])
        .map_err(HandlerError::retry)?;
    Ok(match attempts.rows[0][0] {
        spin_sdk::pg4::DbValue::Int64(n) => n,
        _ => 0,
    })
}

fn is_noop(message: &Message) -> bool {
    let pattern: &[u8] = br#""action":"noop""#;
    message
        .value
        .as_deref()
        .is_some_and(|v| v.windows(pattern.len()).any(|w| w == pattern))
}

fn text(value: &str) -> ParameterValue {
    ParameterValue::Str(value.to_string())
}
