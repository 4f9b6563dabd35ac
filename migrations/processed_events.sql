-- Events a consumer (a Kafka handler) has applied, written in the same
-- transaction as the effect, so a redelivered event is recognised and
-- skipped (mart_guest::db::Database::apply_once). `consumer` is the handler's name:
-- several handlers may share a database and each applies an event once.
-- The host's relay prunes rows past the retention period (default 7 days),
-- which must exceed the longest redelivery window (a dead letter redriven
-- later than that would be applied again).
CREATE TABLE processed_events (
    consumer     text NOT NULL,
    event_id     text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_events_age ON processed_events (processed_at);
