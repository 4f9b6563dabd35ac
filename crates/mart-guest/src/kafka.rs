//! Kafka handler components: Mart's own `mart:kafka/handler@0.2.0` (not
//! Spin's; see wit/mart/kafka@0.2.0), whose `handle` is async, so the
//! trigger may reuse an instance for many batches; and the one runner
//! every handler uses:
//! it decodes each message into its typed event once, opens the database
//! once per batch, applies each event once (its processed-events record in
//! the event's transaction) and turns a `DomainError` into the trigger's
//! retry or dead letter.
//!
//! ```ignore
//! struct Events;
//! impl EventHandler for Events { ... fn on(&mut self, db, event) { ... } }
//! mart_guest::export_event_handler!(Events);
//! ```

use crate::db::Database;
use mart_domain::events::{self, Event};
use mart_domain::DomainError;

#[doc(hidden)]
pub mod bindings {
    spin_sdk::wit_bindgen::generate!({
        path: "../../wit/mart/kafka@0.2.0",
        world: "mart:kafka/kafka-handler@0.2.0",
        pub_export_macro: true,
        export_macro_name: "export_kafka_handler",
        default_bindings_module: "mart_guest::kafka::bindings",
        runtime_path: "::spin_sdk::wit_bindgen::rt",
    });
}

pub use bindings::export_kafka_handler;
pub use bindings::exports::mart::kafka::handler::Header;
pub use bindings::exports::mart::kafka::handler::{Failure, Guest as Handler, Message};

/// Exports the unit struct `$handler`, an `EventHandler`, as the
/// component's `mart:kafka/handler`: every batch goes through `run`.
#[macro_export]
macro_rules! export_event_handler {
    ($handler:ident) => {
        impl $crate::kafka::Handler for $handler {
            async fn handle(
                messages: Vec<$crate::kafka::Message>,
            ) -> Result<(), $crate::kafka::Failure> {
                $crate::kafka::run(&mut $handler, &messages).await
            }
        }

        $crate::kafka::export_kafka_handler!($handler);
    };
}

/// How a handler takes one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Not for this handler: passed over (no database opened for it).
    Skip,
    /// In a transaction of its own with the processed-events record
    /// written inside it, so that it applies once however often it is
    /// delivered.
    Once,
    /// Outside any transaction and without a processed-events record: the
    /// handler's own records make it idempotent. For work that calls a
    /// provider, which must not happen with a transaction held open.
    OnItsOwn,
}

/// A Kafka handler component's logic: which events it takes, and what it
/// does with each. `run` does the rest (decoding, the database, dedupe,
/// trace context, and the trigger's retry or dead letter).
// Components are single-threaded Wasm: no `Send` bound is wanted on
// these futures, which is all the lint warns about.
#[allow(async_fn_in_trait)]
pub trait EventHandler {
    /// Its database: `Database`, or a component's wrapper around it.
    type Db: AsRef<Database>;
    /// Its component id: its entry in `mart_domain::events::SUBSCRIPTIONS`,
    /// which says what it takes.
    const COMPONENT: &'static str;
    /// The name its processed-events records go under.
    const CONSUMER: &'static str;

    async fn connect(&self) -> Result<Self::Db, DomainError>;

    /// What it subscribes to, once; anything else is skipped.
    fn handling(&self, event: &Event) -> Handling {
        if events::takes(Self::COMPONENT, event.event_type()) {
            Handling::Once
        } else {
            Handling::Skip
        }
    }

    async fn on(&mut self, db: &Self::Db, event: &Event) -> Result<(), DomainError>;
}

/// Handles a batch, one event at a time and in order, opening the
/// database once (when the first event needs it). The first error becomes
/// the batch's failure at that message's index, so the messages before it
/// count as done: retried later if it may succeed then (our failure, an
/// unavailable dependency), dead-lettered at once if it never will (a
/// malformed event, a rule or state that refuses it).
pub async fn run(handler: &mut impl EventHandler, messages: &[Message]) -> Result<(), Failure> {
    let mut db = None;
    for (index, message) in messages.iter().enumerate() {
        // Events this message causes continue its trace.
        let trace = header(message, "traceparent").and_then(|v| String::from_utf8(v.to_vec()).ok());
        crate::trace::scoped(trace, handle(handler, &mut db, message))
            .await
            .map_err(|(retry, reason)| Failure {
                index: index as u32,
                retry,
                reason,
            })?;
    }
    Ok(())
}

/// One message: `Err((retry, reason))` if it failed.
async fn handle<H: EventHandler>(
    handler: &mut H,
    db: &mut Option<H::Db>,
    message: &Message,
) -> Result<(), (bool, String)> {
    let event = match decode(message) {
        Ok(Some(event)) => event,
        Ok(None) => return Ok(()), // a newer event type this version does not know
        Err(e) => return Err((false, e)),
    };
    let handling = handler.handling(&event);
    if handling == Handling::Skip {
        return Ok(());
    }
    let failure = |e: DomainError| (e.is_transient(), e.to_string());
    let db = match db {
        Some(db) => db,
        None => db.insert(handler.connect().await.map_err(failure)?),
    };
    let outcome = match handling {
        Handling::Once => db
            .as_ref()
            .apply_once(H::CONSUMER, &event.id, async || {
                handler.on(db, &event).await
            })
            .await
            .map(|_| ()),
        _ => handler.on(db, &event).await,
    };
    outcome.map_err(failure)
}

/// The Mart event a message carries, in whichever of the event formats
/// its `content-type` names (`mart_domain::events::EventFormat`), `None`
/// for a type this version does not know.
pub fn decode(message: &Message) -> Result<Option<Event>, String> {
    let headers: Vec<(String, Vec<u8>)> = message
        .headers
        .iter()
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect();
    Event::from_record(&headers, message.value.as_deref().unwrap_or_default()).map_err(|e| {
        format!(
            "{}/{}@{}: {e}",
            message.topic, message.partition, message.offset
        )
    })
}

fn header<'m>(message: &'m Message, name: &str) -> Option<&'m [u8]> {
    message
        .headers
        .iter()
        .find(|h| h.key == name)
        .map(|h| h.value.as_slice())
}

impl AsRef<Database> for Database {
    fn as_ref(&self) -> &Database {
        self
    }
}
