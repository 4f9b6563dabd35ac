-- Redirect providers (PayFast): where the buyer goes to pay, kept while the
-- payment is pending and cleared once it is settled.
ALTER TABLE payments ADD COLUMN redirect_url text;
