-- Why the provider refused a refund for good (it stays `due`, its event in
-- the dead-letter topic): `mart check` reports such an order as a
-- violation, since no further step returns the money without an operator.
-- Cleared when the refund is made after all.
ALTER TABLE refunds ADD COLUMN refused text;
