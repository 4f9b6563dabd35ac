-- Stock per product (owned by the `inventory` component). The constraints,
-- not only the code, keep available = on_hand - reserved from going negative.
CREATE TABLE stock (
    product_id uuid PRIMARY KEY,
    on_hand    integer NOT NULL CHECK (on_hand >= 0),
    reserved   integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (reserved <= on_hand)
);

-- Every change of on_hand, with who and why.
CREATE TABLE stock_adjustments (
    id            bigserial PRIMARY KEY,
    product_id    uuid NOT NULL REFERENCES stock (product_id),
    delta         integer NOT NULL,
    on_hand_after integer NOT NULL,
    reason        text NOT NULL,
    actor         text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stock_adjustments_product ON stock_adjustments (product_id, id);

-- Reservations per order line; status moves reserved -> released | committed once.
CREATE TABLE reservations (
    order_id   uuid NOT NULL,
    product_id uuid NOT NULL REFERENCES stock (product_id),
    quantity   integer NOT NULL CHECK (quantity > 0),
    status     text NOT NULL DEFAULT 'reserved' CHECK (status IN ('reserved', 'released', 'committed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, product_id)
);
