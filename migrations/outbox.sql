-- The outbox every service database has (shape defined in mart-domain/src/outbox.rs).
-- Each service links it into its own folder (migrations/<service>/NNNN_outbox.sql),
-- so the table is defined once.
CREATE TABLE outbox (
    seq            bigserial PRIMARY KEY,
    id             uuid NOT NULL UNIQUE,
    aggregate_type text NOT NULL,
    aggregate_id   text NOT NULL,
    event_type     text NOT NULL,
    payload        jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    sent_at        timestamptz
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
