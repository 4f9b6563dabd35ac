-- Payments (owned by the `payments` component): one per order. The row is
-- created by whichever saga event arrives first (order.placed carries the
-- amount and token; inventory.reserved says the stock is held), and the
-- charge happens once both are known and the order was not cancelled.
CREATE TABLE payments (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id        uuid NOT NULL UNIQUE,
    user_id         uuid,
    amount_minor    bigint CHECK (amount_minor >= 0),
    currency        char(3),
    provider        text,
    -- The provider's payment token; cleared once the charge was attempted.
    token           text,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded', 'cancelled')),
    reason          text,
    provider_ref    text,
    stock_reserved  boolean NOT NULL DEFAULT false,
    order_cancelled boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_by_user ON payments (user_id, created_at DESC);
