-- The W3C trace context of the change that wrote the event; the relay puts
-- it on the Kafka record as `traceparent` (shape: outbox.sql).
ALTER TABLE outbox ADD COLUMN traceparent text;
