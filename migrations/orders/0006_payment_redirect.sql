-- Where the buyer pays, for redirect providers (PayFast): set from the
-- payments service's `payment.action_required`, shown while the order waits.
ALTER TABLE orders ADD COLUMN payment_redirect_url text;
