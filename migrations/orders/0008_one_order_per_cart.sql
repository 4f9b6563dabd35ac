-- One cart becomes at most one order. The cart is closed by the carts
-- service when it sees order.placed, which is asynchronous: two placements
-- from the same cart (with different Idempotency-Keys) could otherwise both
-- succeed and both be charged. The second now fails on this index (409).
CREATE UNIQUE INDEX orders_one_per_cart ON orders (cart_id) WHERE cart_id IS NOT NULL;
