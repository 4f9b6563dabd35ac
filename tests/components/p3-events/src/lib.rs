//! The async (WASIp3) Kafka and timer handlers, for testing the triggers
//! through the real host: `mart:kafka/handler@0.2.0` and
//! `mart:timer/handler@0.2.0`, both `async fn`, with wit-bindgen's async
//! support as spin-sdk 6 uses it for its own exports.
//!
//! Each Kafka message's value is a JSON string `"<id> <action>"`:
//! - `ok`: record the effect,
//! - `fail:<n>`: fail retryably on the first `n` attempts, then succeed,
//! - `poison`: fail permanently (to the dead-letter topic),
//! - `trap:<n>`: trap on the first `n` attempts, then succeed.
//!
//! Every attempt is a row in `attempts` whose origin is
//! `<instance>#<records this instance was handed>`: the instance is a
//! random number drawn once per instance (a global), so rows show which
//! instance handled what and whether it was reused. Effects go to
//! `effects`; ticks to `ticks`. The tables live in the database named by
//! the `db_url` variable (the test creates them).

use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

mod bindings {
    spin_sdk::wit_bindgen::generate!({
        inline: r#"
            package mart-test:p3-events;
            world p3-events {
                import spin:postgres/postgres@4.0.0;
                import fermyon:spin/variables@2.0.0;
                export mart:kafka/handler@0.2.0;
                export mart:timer/handler@0.2.0;
            }
        "#,
        path: [
            "../../../wit/spin/postgres@4.0.0",
            "../../../wit/spin/variables@2.0.0",
            "../../../wit/mart/kafka@0.2.0",
            "../../../wit/mart-timer/timer@0.2.0",
        ],
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        generate_all,
    });
}

use bindings::exports::mart::kafka::handler::{Failure, Message};
use bindings::fermyon::spin::variables;
use bindings::spin::postgres::postgres::{Connection, DbValue, ParameterValue};

/// This instance, drawn once: a reused instance keeps it.
fn instance() -> u64 {
    static INSTANCE: OnceLock<u64> = OnceLock::new();
    *INSTANCE.get_or_init(|| {
        // wasi's random source seeds std's hasher keys.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u8(1);
        hasher.finish() % 1_000_000_000
    })
}

/// Records (and ticks) this instance has been handed.
static HANDED: AtomicU64 = AtomicU64::new(0);

struct Events;

impl bindings::exports::mart::kafka::handler::Guest for Events {
    async fn handle(messages: Vec<Message>) -> Result<(), Failure> {
        let db = connect().map_err(|reason| Failure {
            index: 0,
            retry: true,
            reason,
        })?;
        for (index, message) in messages.iter().enumerate() {
            handle_one(&db, message).map_err(|(retry, reason)| Failure {
                index: index as u32,
                retry,
                reason,
            })?;
        }
        Ok(())
    }
}

impl bindings::exports::mart::timer::handler::Guest for Events {
    async fn tick(scheduled_ms: i64) -> Result<(), String> {
        let db = connect()?;
        let origin = origin();
        db.execute(
            "INSERT INTO ticks (origin, scheduled_ms) VALUES ($1, $2)",
            &[
                ParameterValue::Str(origin),
                ParameterValue::Int64(scheduled_ms),
            ],
        )
        .map_err(|e| format!("{e:?}"))?;
        Ok(())
    }
}

bindings::export!(Events with_types_in bindings);

fn connect() -> Result<Connection, String> {
    let url = variables::get("db_url").map_err(|e| format!("db_url: {e:?}"))?;
    Connection::open(&url).map_err(|e| format!("connecting: {e:?}"))
}

/// `<instance>#<how many records and ticks it has been handed, this one included>`.
fn origin() -> String {
    let handed = HANDED.fetch_add(1, Ordering::SeqCst) + 1;
    format!("{}#{handed}", instance())
}

/// One message; the error says whether to retry.
fn handle_one(db: &Connection, message: &Message) -> Result<(), (bool, String)> {
    let value = String::from_utf8_lossy(message.value.as_deref().unwrap_or_default());
    let text = value.trim().trim_matches('"');
    let (id, action) = text.split_once(' ').unwrap_or((text, "ok"));
    let retry = |e| (true, format!("{e:?}"));
    db.execute(
        "INSERT INTO attempts (id, origin) VALUES ($1, $2)",
        &[str(id), ParameterValue::Str(origin())],
    )
    .map_err(retry)?;
    let attempts = || -> Result<i64, (bool, String)> {
        let rows = db
            .query("SELECT count(*) FROM attempts WHERE id = $1", &[str(id)])
            .map_err(retry)?;
        match rows.rows.first().and_then(|row| row.first()) {
            Some(DbValue::Int64(n)) => Ok(*n),
            other => Err((true, format!("count: {other:?}"))),
        }
    };
    match action.split_once(':') {
        Some(("fail", times)) if attempts()? <= times.parse().unwrap_or(0) => {
            return Err((true, format!("{id} fails this time")));
        }
        Some(("trap", times)) if attempts()? <= times.parse().unwrap_or(0) => {
            panic!("{id} asked to trap");
        }
        _ if action == "poison" => return Err((false, format!("{id} is poison"))),
        _ => {}
    }
    db.execute(
        "INSERT INTO effects (id, origin) VALUES ($1, $2)",
        &[str(id), ParameterValue::Str(format!("{}", instance()))],
    )
    .map_err(retry)?;
    Ok(())
}

fn str(text: &str) -> ParameterValue {
    ParameterValue::Str(text.to_string())
}
