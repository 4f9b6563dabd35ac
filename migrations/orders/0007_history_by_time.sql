-- The dashboard's activity feed: the latest status changes, newest first.
CREATE INDEX order_history_by_time ON order_history (at DESC, id DESC);
