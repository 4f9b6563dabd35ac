//! Payments: the provider interface and the built-in `fake` provider.
//!
//! A charge is idempotent per order: the provider gets the order id as its
//! idempotency key, so a retried charge (after a crash or a redelivered
//! event) returns the first result instead of charging twice.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    /// Known, not charged yet (waiting for the stock reservation).
    Pending,
    Succeeded,
    Failed,
    Refunded,
    /// The order was cancelled before it was charged.
    Cancelled,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            PaymentStatus::Pending,
            PaymentStatus::Succeeded,
            PaymentStatus::Failed,
            PaymentStatus::Refunded,
            PaymentStatus::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// What an order's payment knows when the saga asks it to act: the one
/// input of the payments service's decisions below (its handler reads it
/// from the locked row, then does what they say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentState {
    pub status: PaymentStatus,
    /// `inventory.reserved` came in.
    pub stock_reserved: bool,
    /// `order.cancelled` came in.
    pub order_cancelled: bool,
    /// `order.placed` came in (the amount, currency and provider are known).
    pub order_known: bool,
    /// The buyer's payment token is still held: no charge was attempted.
    pub token_held: bool,
    /// The provider has a charge for it (its reference is known).
    pub charge_made: bool,
}

impl PaymentState {
    /// Whether to charge now: the order and its stock are in, it was not
    /// cancelled, and no charge was attempted. `order.placed` and
    /// `inventory.reserved` come from different topics in either order;
    /// whichever comes second charges.
    pub fn ready_to_charge(&self) -> bool {
        self.status == PaymentStatus::Pending
            && self.stock_reserved
            && self.order_known
            && !self.order_cancelled
            && self.token_held
    }

    /// What `order.cancelled` does to the payment.
    pub fn on_order_cancelled(&self) -> OnCancel {
        match self.status {
            // A charge in flight (the provider has not settled it) must not
            // be forgotten: if it succeeds, the success is refunded.
            PaymentStatus::Pending if self.charge_made => OnCancel::WithdrawPaymentPage,
            PaymentStatus::Pending => OnCancel::Cancel,
            PaymentStatus::Succeeded => OnCancel::Refund,
            _ => OnCancel::Nothing,
        }
    }

    /// Whether this service's own `payment.succeeded` must be refunded: the
    /// order was cancelled while the charge was in flight.
    pub fn refund_late_success(&self) -> bool {
        self.status == PaymentStatus::Succeeded && self.order_cancelled
    }

    /// `order.refunded` or an admin: refund a succeeded payment; a refunded
    /// one is done already; anything else cannot be refunded.
    pub fn on_refund_request(&self) -> Result<bool, crate::DomainError> {
        match self.status {
            PaymentStatus::Succeeded => Ok(true),
            PaymentStatus::Refunded => Ok(false),
            other => Err(crate::DomainError::conflict(format!(
                "the payment is {}; only a succeeded payment can be refunded",
                other.as_str()
            ))),
        }
    }

    /// A provider's final word (webhook, ITN) on a charge: settle a
    /// pending payment; give back a success the payment does not count
    /// (it was settled otherwise meanwhile, or it is another charge), so no
    /// money stays with us for an order that does not have it.
    /// `counted`: the charge is the payment's own and it succeeded already.
    pub fn on_provider_outcome(&self, succeeded: bool, counted: bool) -> ProviderVerdict {
        if self.status == PaymentStatus::Pending {
            ProviderVerdict::Settle(if succeeded {
                PaymentStatus::Succeeded
            } else {
                PaymentStatus::Failed
            })
        } else if succeeded && !counted {
            ProviderVerdict::RefundStrayCharge
        } else {
            ProviderVerdict::Nothing
        }
    }
}

/// What `order.cancelled` does to a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCancel {
    /// A charge is in flight: withdraw the payment page and let its
    /// success (if it comes) be refunded.
    WithdrawPaymentPage,
    /// Never charged: cancelled.
    Cancel,
    /// Charged: the money goes back.
    Refund,
    Nothing,
}

/// What a provider's final word on a charge does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderVerdict {
    Settle(PaymentStatus),
    /// A success the payment does not count goes back.
    RefundStrayCharge,
    Nothing,
}

/// What to charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge<'a> {
    /// Also the provider's idempotency key.
    pub order_id: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub token: &'a str,
}

/// A provider's answer to a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// Charged; the provider's reference for refunds.
    Succeeded { reference: String },
    /// Accepted but not final (e.g. Stripe's `processing`): the provider
    /// reports the outcome later by webhook.
    Pending { reference: String },
    /// The buyer finishes on the provider's page at `url` (PayFast's
    /// redirect flow); the provider reports the outcome later (its ITN).
    Redirect { reference: String, url: String },
    /// The provider said no, for good (declined card, bad token).
    Declined { reason: String },
    /// Could not find out (network, 5xx): try again later with the same key.
    Unavailable { reason: String },
}

/// What to refund: all of one charge, once. A refund is decided (and
/// recorded) in one transaction and carried out afterwards, outside any
/// transaction, as often as it takes; a provider with idempotency keys
/// (Stripe) derives its key from the charge, which has one refund at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund<'a> {
    /// The provider's reference of the charge to give back.
    pub reference: &'a str,
    pub amount_minor: i64,
    pub reason: &'a str,
    /// An earlier attempt may have reached the provider and its answer was
    /// lost (a timeout, a crash before the result was recorded). A provider
    /// without idempotency keys (PayFast) looks before it refunds again.
    pub retried: bool,
}

/// A provider's answer to a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    /// The money went back, by this attempt or an earlier one.
    Refunded,
    /// The provider said no, for good: retrying will not change it, and an
    /// operator has to look (the money is still with us).
    Refused { reason: String },
    /// Could not find out (network, 409, 429, 5xx): try again, same key.
    Unavailable { reason: String },
}

/// A payment provider. Implementations over outbound HTTP live in the
/// payments component; the fake one is here so it is tested natively.
pub trait Provider {
    fn charge(&self, charge: &Charge<'_>) -> ChargeOutcome;
    fn refund(&self, refund: &Refund<'_>) -> RefundOutcome;
}

/// The test provider's name in `payment_providers` and in orders.
pub const FAKE_PROVIDER: &str = "fake";

/// Why a shop without the development switch refuses the fake provider.
pub const FAKE_PROVIDER_REFUSED: &str =
    "payment_providers enables `fake`, whose test tokens pay for real goods; it runs only \
     where allow_fake_payments = \"true\" (a development switch that make run and the tests \
     set): name `stripe` or `payfast` instead";

/// The deterministic test provider: `tok_visa` and `tok_mastercard`
/// succeed, `tok_chargeDeclined` and `tok_insufficientFunds` decline, and
/// any other token is declined as unknown. References derive from the order
/// id, as a real provider's idempotent answer would be the same each time.
pub struct FakeProvider;

impl Provider for FakeProvider {
    fn charge(&self, charge: &Charge<'_>) -> ChargeOutcome {
        match charge.token {
            "tok_visa" | "tok_mastercard" => ChargeOutcome::Succeeded {
                reference: format!("fake_ch_{}", charge.order_id),
            },
            "tok_chargeDeclined" => ChargeOutcome::Declined {
                reason: "the card was declined".into(),
            },
            "tok_insufficientFunds" => ChargeOutcome::Declined {
                reason: "insufficient funds".into(),
            },
            other => ChargeOutcome::Declined {
                reason: format!("unknown test token `{other}`"),
            },
        }
    }

    fn refund(&self, refund: &Refund<'_>) -> RefundOutcome {
        if refund.reference.starts_with("fake_ch_") {
            RefundOutcome::Refunded
        } else {
            RefundOutcome::Refused {
                reason: format!("no fake charge `{}`", refund.reference),
            }
        }
    }
}

/// `payment.refund_due`: a provider charge to give back, either the
/// order's payment (cancelled or refunded after it was charged) or a charge
/// outside it (the buyer paid twice). Recorded with the decision; the
/// payments handler carries it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundDue {
    pub order_id: String,
    pub provider: String,
    /// The provider's reference of the charge to refund.
    pub reference: String,
    pub amount_minor: i64,
    pub reason: String,
}

/// `payment.succeeded`, `payment.failed`, `payment.refunded`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentChanged {
    pub payment_id: String,
    pub order_id: String,
    pub user_id: String,
    pub status: PaymentStatus,
    pub amount_minor: i64,
    pub currency: String,
    #[serde(default)]
    pub reason: Option<String>,
    /// `payment.action_required`: where the buyer goes to pay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(token: &str) -> ChargeOutcome {
        FakeProvider.charge(&Charge {
            order_id: "o1",
            amount_minor: 100,
            currency: "EUR",
            token,
        })
    }

    #[test]
    fn the_fake_provider_is_deterministic() {
        assert_eq!(
            charge("tok_visa"),
            ChargeOutcome::Succeeded {
                reference: "fake_ch_o1".into()
            }
        );
        assert_eq!(
            charge("tok_visa"),
            charge("tok_visa"),
            "idempotent per order"
        );
        assert!(
            matches!(charge("tok_chargeDeclined"), ChargeOutcome::Declined { reason } if reason.contains("declined"))
        );
        assert!(
            matches!(charge("tok_other"), ChargeOutcome::Declined { reason } if reason.contains("unknown test token"))
        );
        let refund = |reference| {
            FakeProvider.refund(&Refund {
                reference,
                amount_minor: 100,
                reason: "test",
                retried: false,
            })
        };
        assert_eq!(refund("fake_ch_o1"), RefundOutcome::Refunded);
        assert!(matches!(refund("ch_real"), RefundOutcome::Refused { .. }));
    }

    #[test]
    fn statuses_round_trip() {
        for s in ["pending", "succeeded", "failed", "refunded", "cancelled"] {
            assert_eq!(PaymentStatus::parse(s).unwrap().as_str(), s);
        }
    }

    fn state(status: PaymentStatus) -> PaymentState {
        PaymentState {
            status,
            stock_reserved: true,
            order_cancelled: false,
            order_known: true,
            token_held: true,
            charge_made: false,
        }
    }

    #[test]
    fn an_order_is_charged_once_both_halves_are_in_and_never_after_a_cancel() {
        assert!(state(PaymentStatus::Pending).ready_to_charge());
        let only_reserved = PaymentState {
            order_known: false,
            ..state(PaymentStatus::Pending)
        };
        assert!(!only_reserved.ready_to_charge());
        let only_placed = PaymentState {
            stock_reserved: false,
            ..state(PaymentStatus::Pending)
        };
        assert!(!only_placed.ready_to_charge());
        let cancelled = PaymentState {
            order_cancelled: true,
            ..state(PaymentStatus::Pending)
        };
        assert!(!cancelled.ready_to_charge());
        // A charge attempted already (a redelivered event): never again.
        let attempted = PaymentState {
            token_held: false,
            charge_made: true,
            ..state(PaymentStatus::Pending)
        };
        assert!(!attempted.ready_to_charge());
        assert!(!state(PaymentStatus::Succeeded).ready_to_charge());
    }

    #[test]
    fn a_cancel_refunds_what_was_charged_and_keeps_a_charge_in_flight_in_view() {
        assert_eq!(
            state(PaymentStatus::Pending).on_order_cancelled(),
            OnCancel::Cancel
        );
        let in_flight = PaymentState {
            charge_made: true,
            ..state(PaymentStatus::Pending)
        };
        assert_eq!(
            in_flight.on_order_cancelled(),
            OnCancel::WithdrawPaymentPage
        );
        assert_eq!(
            state(PaymentStatus::Succeeded).on_order_cancelled(),
            OnCancel::Refund
        );
        for done in [
            PaymentStatus::Failed,
            PaymentStatus::Refunded,
            PaymentStatus::Cancelled,
        ] {
            assert_eq!(state(done).on_order_cancelled(), OnCancel::Nothing);
        }
    }

    #[test]
    fn a_success_after_a_cancel_is_refunded() {
        // The cancel came while the charge was in flight; the provider's
        // success settles the payment, and its own event refunds it.
        let in_flight = PaymentState {
            order_cancelled: true,
            charge_made: true,
            ..state(PaymentStatus::Pending)
        };
        assert_eq!(
            in_flight.on_provider_outcome(true, false),
            ProviderVerdict::Settle(PaymentStatus::Succeeded)
        );
        let settled = PaymentState {
            status: PaymentStatus::Succeeded,
            ..in_flight
        };
        assert!(settled.refund_late_success());
        assert!(!state(PaymentStatus::Succeeded).refund_late_success());
    }

    #[test]
    fn a_success_the_payment_does_not_count_goes_back_and_a_repeat_changes_nothing() {
        let failed = state(PaymentStatus::Failed);
        assert_eq!(
            failed.on_provider_outcome(true, false),
            ProviderVerdict::RefundStrayCharge
        );
        let paid = state(PaymentStatus::Succeeded);
        assert_eq!(
            paid.on_provider_outcome(true, true),
            ProviderVerdict::Nothing
        );
        assert_eq!(
            paid.on_provider_outcome(true, false),
            ProviderVerdict::RefundStrayCharge,
            "a second charge for a paid order"
        );
        assert_eq!(
            paid.on_provider_outcome(false, false),
            ProviderVerdict::Nothing
        );
    }

    #[test]
    fn only_a_succeeded_payment_can_be_refunded() {
        assert_eq!(
            state(PaymentStatus::Succeeded).on_refund_request(),
            Ok(true)
        );
        assert_eq!(
            state(PaymentStatus::Refunded).on_refund_request(),
            Ok(false)
        );
        assert!(matches!(
            state(PaymentStatus::Pending).on_refund_request(),
            Err(crate::DomainError::Conflict(_))
        ));
    }
}
