//! Delivers a message for each event a customer should hear
//! about (Mart's `mart:kafka/handler` on `mart.users` and `mart.orders`);
//! what it says is `mart_domain::notifications` (tested natively).
//!
//! Delivery goes through the channel named by the `notification_channel`
//! variable. The built-in `log` channel writes the message to the host's
//! log, its recipient's name and address redacted, and records it. The notification row and the processed-events record
//! commit together, so an event yields one notification however often it
//! is delivered.

use mart_domain::events::{Event, EventData, UserRegistered};
use mart_domain::notifications::{note_for, Note};
use mart_domain::DomainError;
use mart_guest::db::{self as pg, text, uuid, Database};
use mart_guest::kafka::EventHandler;
use mart_guest::Method;

struct Events;

mart_guest::export_event_handler!(Events);

impl EventHandler for Events {
    type Db = Database;
    const COMPONENT: &'static str = "notifications-events";
    const CONSUMER: &'static str = "notifications";

    async fn connect(&self) -> Result<Database, DomainError> {
        Database::connect("notifications").await
    }

    async fn on(&mut self, db: &Database, event: &Event) -> Result<(), DomainError> {
        let Some(note) = note_for(&event.data) else {
            return Ok(());
        };
        if let EventData::UserRegistered(user) = &event.data {
            remember_recipient(db, user).await?;
        }
        deliver(db, &event.id, &note).await
    }
}

/// Where a user's messages go, for the `http` channel.
async fn remember_recipient(db: &Database, user: &UserRegistered) -> Result<(), DomainError> {
    db.connection
        .execute(
            "INSERT INTO recipients (user_id, email, name) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name",
            &[uuid(&user.user_id), text(&user.email), text(&user.name)],
        )
        .await
        .map_err(|e| db.failed(e))?;
    Ok(())
}

/// Delivers through the configured channel and records the notification.
async fn deliver(db: &Database, event_id: &str, note: &Note) -> Result<(), DomainError> {
    let channel = mart_guest::config::optional_variable("notification_channel")
        .await
        .unwrap_or_else(|| "log".into());
    match channel.as_str() {
        // The host's log is no place for personal data: the redacted body
        // (name and address shortened); the stored notification, which
        // only its recipient reads, keeps the full text.
        "log" => eprintln!(
            "notification to {} ({}): {} — {}",
            note.user_id, note.kind, note.subject, note.log_body
        ),
        "http" => send_http(db, event_id, note).await?,
        other => {
            return Err(DomainError::internal(format!(
                "notification channel `{other}` is not supported"
            )))
        }
    }
    db.connection
        .execute(
            "INSERT INTO notifications (user_id, event_id, kind, channel, subject, body, status) \
         VALUES ($1, $2, $3, $4, $5, $6, 'sent') ON CONFLICT (event_id) DO NOTHING",
            &[
                uuid(&note.user_id),
                text(event_id),
                text(note.kind),
                text(&channel),
                text(&note.subject),
                text(&note.body),
            ],
        )
        .await
        .map_err(|e| db.failed(e))?;
    Ok(())
}

/// The `http` channel: `POST {notification_api_base}/messages` with a JSON
/// message, the API key as bearer token, and the event id as
/// `Idempotency-Key`. If the API accepted a message but this transaction
/// then failed, the event is redelivered and the message sent again with
/// the same key: an API that honours the key delivers it once, one that
/// does not may deliver it twice (the at-least-once window).
async fn send_http(db: &Database, event_id: &str, note: &Note) -> Result<(), DomainError> {
    let base = mart_guest::config::variable("notification_api_base").await?;
    let key = mart_guest::config::optional_variable("notification_api_key")
        .await
        .unwrap_or_default();
    let rows = db
        .connection
        .query(
            "SELECT email, name FROM recipients WHERE user_id = $1",
            &[uuid(&note.user_id)],
        )
        .await
        .map_err(|e| db.failed(e))?;
    let Some(row) = rows.rows.first() else {
        // user.registered travels on another topic and may not be here yet.
        return Err(DomainError::unavailable(format!(
            "no address for user {} yet",
            note.user_id
        )));
    };
    let email: String = pg::decode(&row[0])?;
    let name: String = pg::decode(&row[1])?;
    let message = serde_json::json!({
        "to": {"email": email, "name": name},
        "subject": note.subject,
        "text": note.body,
        "kind": note.kind,
    });
    let body = serde_json::to_vec(&message).map_err(|e| DomainError::internal(e.to_string()))?;
    let authorization = format!("Bearer {key}");
    let response = mart_guest::http::send(
        Method::Post,
        &format!("{}/messages", base.trim_end_matches('/')),
        &[
            ("content-type", "application/json"),
            ("authorization", &authorization),
            ("idempotency-key", event_id),
        ],
        body,
    )
    .await
    .map_err(|e| DomainError::unavailable(format!("the notification API is unreachable: {e}")))?;
    // The API's answer, in our words: the one place its status decides.
    match response.status() {
        200..=299 => Ok(()),
        status @ (408 | 429 | 500..=599) => Err(DomainError::unavailable(format!(
            "the notification API answered {status}"
        ))),
        status => Err(DomainError::Refused(format!(
            "the notification API refused the message ({status})"
        ))),
    }
}
