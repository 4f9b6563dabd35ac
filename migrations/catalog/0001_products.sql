-- The product catalog (owned by the `catalog` component).
CREATE TABLE products (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
    category    text CHECK (category ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    price_minor bigint NOT NULL CHECK (price_minor >= 0),
    currency    char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Listing pages by (name, id) and filtering by category.
CREATE INDEX products_name_id ON products (name, id);
CREATE INDEX products_category ON products (category, name, id);
