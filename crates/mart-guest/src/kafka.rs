//! Kafka handler components: Mart's own `mart:kafka` interfaces (not
//! Spin's; see wit/mart/kafka.wit), the CloudEvent a message carries, and
//! the idempotence every handler needs.
//!
//! ```ignore
//! struct Handler;
//! impl mart_guest::kafka::Handler for Handler {
//!     fn handle(messages: Vec<Message>) -> Result<(), Failure> {
//!         mart_guest::kafka::each(&messages, |message| { ... })
//!     }
//! }
//! mart_guest::kafka::export_kafka_handler!(Handler);
//! ```

use crate::db::Connection;
use mart_domain::events::{Envelope, EnvelopeError};
use spin_sdk::pg4::ParameterValue;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/mart",
        world: "mart:kafka/kafka-handler",
        pub_export_macro: true,
        export_macro_name: "export_kafka_handler",
        default_bindings_module: "mart_guest::kafka::bindings",
    });
}

pub use bindings::export_kafka_handler;
pub use bindings::exports::mart::kafka::handler::Header;
pub use bindings::exports::mart::kafka::handler::{Failure, Guest as Handler, Message};
pub use bindings::mart::kafka::producer::{self, publish};

/// Why one message could not be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerError {
    /// Transient (a database or provider hiccup): retried with backoff.
    Retry(String),
    /// Can never succeed (malformed event): dead-lettered at once.
    Permanent(String),
}

impl HandlerError {
    pub fn retry(error: impl std::fmt::Display) -> Self {
        HandlerError::Retry(error.to_string())
    }

    pub fn permanent(error: impl std::fmt::Display) -> Self {
        HandlerError::Permanent(error.to_string())
    }
}

/// Handles the batch one message at a time, in order; the first error
/// becomes the batch's failure at that message's index, so the messages
/// before it count as done.
pub fn each(
    messages: &[Message],
    mut handle_one: impl FnMut(&Message) -> Result<(), HandlerError>,
) -> Result<(), Failure> {
    for (index, message) in messages.iter().enumerate() {
        // Events this message causes continue its trace.
        crate::trace::set(
            message
                .headers
                .iter()
                .find(|h| h.key == "traceparent")
                .and_then(|h| String::from_utf8(h.value.clone()).ok()),
        );
        if let Err(error) = handle_one(message) {
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

/// The CloudEvent in a message (binary mode: `ce_*` headers, JSON value).
pub fn envelope(message: &Message) -> Result<Envelope, EnvelopeError> {
    let headers: Vec<(String, Vec<u8>)> = message
        .headers
        .iter()
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect();
    Envelope::from_record(&headers, message.value.as_deref().unwrap_or_default())
}

/// Like `envelope`, a malformed event being a permanent failure.
pub fn event(message: &Message) -> Result<Envelope, HandlerError> {
    envelope(message).map_err(|e| {
        HandlerError::permanent(format!(
            "{}/{}@{} is not a Mart event: {e}",
            message.topic, message.partition, message.offset
        ))
    })
}

/// Applies `effect` once per `(consumer, event_id)`: the processed-events
/// record and the effect commit in one transaction, so a redelivered event
/// finds its record and is skipped. Returns `false` when it was skipped.
/// Effects outside the database (a payment provider, a mail API) are not
/// covered: pass `event_id` to them as their idempotency key.
pub fn apply_once(
    connection: &Connection,
    consumer: &str,
    event_id: &str,
    effect: impl FnOnce() -> Result<(), HandlerError>,
) -> Result<bool, HandlerError> {
    connection
        .execute("BEGIN", &[])
        .map_err(HandlerError::retry)?;
    let outcome = first_time(connection, consumer, event_id).and_then(|first| {
        if first {
            effect()?;
        }
        Ok(first)
    });
    let end = if outcome.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    let ended = connection.execute(end, &[]);
    let first = outcome?;
    ended.map_err(HandlerError::retry)?;
    Ok(first)
}

/// Records that `consumer` applied `event_id`; `false` if it already had.
/// Call it inside the transaction that applies the event's effect (when the
/// caller manages that transaction itself; `apply_once` does both).
pub fn first_time(
    connection: &Connection,
    consumer: &str,
    event_id: &str,
) -> Result<bool, HandlerError> {
    let inserted = connection
        .execute(
            "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
            &[
                ParameterValue::Str(consumer.to_string()),
                ParameterValue::Str(event_id.to_string()),
            ],
        )
        .map_err(HandlerError::retry)?;
    Ok(inserted == 1)
}

/// A problem from the shared HTTP-side code: ours (5xx) is worth retrying,
/// the event's (4xx: it names something that does not exist, breaks a rule)
/// never will be.
impl From<mart_domain::Problem> for HandlerError {
    fn from(problem: mart_domain::Problem) -> Self {
        let reason = format!("{} ({})", problem.detail, problem.status);
        if problem.status >= 500 {
            HandlerError::Retry(reason)
        } else {
            HandlerError::Permanent(reason)
        }
    }
}

/// A problem before any message was looked at (the database is down, a
/// variable is missing): the whole batch failed, retryably if it is ours.
impl From<mart_domain::Problem> for Failure {
    fn from(problem: mart_domain::Problem) -> Self {
        Failure {
            index: 0,
            retry: problem.status >= 500,
            reason: problem.detail,
        }
    }
}
