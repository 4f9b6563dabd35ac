-- Refunds, decided and carried out apart. The decision (a row here, and
-- payment.refund_due in the outbox) commits with whatever caused it; the
-- provider is asked afterwards, outside any transaction, by the payments
-- handler of payment.refund_due (or at once by an admin's refund), and the
-- outcome is recorded in a transaction of its own. A crash between the
-- provider's yes and that record leaves the row `due`: the event is
-- redelivered and the provider asked again with the same idempotency key
-- (one refund per charge: Stripe's key is `refund-<charge>`), or looked up
-- first where it has no keys (PayFast).
CREATE TABLE refunds (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id      uuid NOT NULL,
    provider      text NOT NULL,
    -- The provider's charge; one refund per charge.
    reference     text NOT NULL,
    amount_minor  bigint NOT NULL CHECK (amount_minor >= 0),
    reason        text NOT NULL,
    -- Gives back the order's counted payment (which then becomes
    -- `refunded`), or a charge outside it (the buyer paid twice).
    of_payment    boolean NOT NULL,
    status        text NOT NULL DEFAULT 'due' CHECK (status IN ('due', 'done')),
    -- Attempts begun; any after the first may follow one whose answer was lost.
    attempts      integer NOT NULL DEFAULT 0,
    -- One attempt at a time: whoever set this holds the refund until then.
    leased_until  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    done_at       timestamptz,
    UNIQUE (provider, reference)
);
CREATE INDEX refunds_due ON refunds (order_id) WHERE status = 'due';
