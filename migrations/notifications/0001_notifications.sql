-- Notifications (owned by the `notifications` component): who can be reached
-- (from user.registered) and every message rendered for them.
CREATE TABLE recipients (
    user_id uuid PRIMARY KEY,
    email   text NOT NULL,
    name    text NOT NULL
);

CREATE TABLE notifications (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL,
    -- The event it was rendered for: at most one notification per event.
    event_id   text NOT NULL UNIQUE,
    kind       text NOT NULL,
    channel    text NOT NULL,
    subject    text NOT NULL,
    body       text NOT NULL,
    status     text NOT NULL CHECK (status IN ('sent', 'failed')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_by_user ON notifications (user_id, created_at DESC);
