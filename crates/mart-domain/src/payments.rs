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
}
