-- Orders (owned by the `orders` component). Status moves only along the
-- machine in mart-domain/src/orders.rs; every move is in the history.
CREATE TABLE orders (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid NOT NULL,
    status           text NOT NULL CHECK (status IN
                       ('pending', 'reserved', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded')),
    currency         char(3) NOT NULL,
    total_minor      bigint NOT NULL CHECK (total_minor >= 0),
    shipping_address jsonb NOT NULL,
    payment_provider text NOT NULL,
    cart_id          uuid,
    -- The client's Idempotency-Key (per user) and a hash of its request body.
    idempotency_key  text,
    request_hash     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX orders_by_user ON orders (user_id, created_at DESC, id DESC);
CREATE INDEX orders_by_time ON orders (created_at DESC, id DESC);
CREATE INDEX orders_open ON orders (created_at) WHERE status IN ('pending', 'reserved');

-- Lines with the prices snapshotted at placement.
CREATE TABLE order_lines (
    order_id         uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id       uuid NOT NULL,
    name             text NOT NULL,
    quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, product_id)
);

CREATE TABLE order_history (
    id       bigserial PRIMARY KEY,
    order_id uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    status   text NOT NULL,
    reason   text,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_history_by_order ON order_history (order_id, id);
