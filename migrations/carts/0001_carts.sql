-- Carts (owned by the `carts` component).
CREATE TABLE carts (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id   uuid NOT NULL,
    currency   char(3) NOT NULL,
    -- `checked_out` once an order was placed from it; closed to writes.
    status     text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'checked_out')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX carts_owner ON carts (owner_id, created_at);

CREATE TABLE cart_items (
    cart_id          uuid NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    product_id       uuid NOT NULL,
    name             text NOT NULL,
    quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor >= 0),
    added_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cart_id, product_id)
);
