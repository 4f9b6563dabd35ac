-- Wakes the host's outbox relay when events are written (shape: outbox.sql).
-- NOTIFY is delivered at commit, so the relay never sees uncommitted rows;
-- it also polls, so a lost notification only delays, never loses, an event.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mart_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
