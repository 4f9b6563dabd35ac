//! The transactional outbox: the one table shape every service database has,
//! written in the same transaction as the state change it announces. The
//! host's relay (Kafka issue) publishes unsent rows in `seq` order per
//! aggregate and marks them sent after the broker acknowledged.
//!
//! Columns (see migrations/outbox.sql, linked into each service folder):
//! `seq bigserial` (publish order), `id uuid` (event id, CloudEvents `ce_id`),
//! `aggregate_type` (topic `mart.<aggregate_type>`), `aggregate_id` (Kafka key),
//! `event_type` (`ce_type`, one of `events::EventType`), `payload jsonb`,
//! `created_at`, `sent_at` (NULL until relayed).

/// Parameters: $1 aggregate_type, $2 aggregate_id, $3 event_type, $4 payload
/// (jsonb), $5 traceparent (W3C trace context of the change, or NULL).
pub const INSERT_SQL: &str =
    "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload, traceparent) \
     VALUES (gen_random_uuid(), $1, $2, $3, $4, $5)";

/// The largest event payload the outbox accepts: well under the 1 MB Kafka
/// brokers and librdkafka accept by default, leaving room for headers.
pub const MAX_PAYLOAD_BYTES: usize = 512 * 1024;
