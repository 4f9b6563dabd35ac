//! Stripe, as Mart uses it: PaymentIntents confirmed server-side with the
//! customer's payment method, keyed by the order id, and webhooks verified
//! by their `Stripe-Signature`. Only the request shapes and the parsing are
//! here (pure, tested natively); the payments component sends them.
//!
//! Written against Stripe's documented API (2024+); not verified against
//! the live service from these machines.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::payments::{Charge, ChargeOutcome, RefundOutcome};

/// How old a webhook's signed timestamp may be (Stripe's default tolerance).
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// `POST {api}/v1/payment_intents` as a form body, confirmed at once with
/// the customer's payment method; the order id also goes to metadata so
/// webhooks can be matched to orders.
pub fn payment_intent_form(charge: &Charge<'_>) -> Vec<(&'static str, String)> {
    vec![
        ("amount", charge.amount_minor.to_string()),
        ("currency", charge.currency.to_ascii_lowercase()),
        ("payment_method", charge.token.to_string()),
        ("confirm", "true".into()),
        ("automatic_payment_methods[enabled]", "true".into()),
        ("automatic_payment_methods[allow_redirects]", "never".into()),
        ("metadata[order_id]", charge.order_id.to_string()),
    ]
}

/// `POST {api}/v1/refunds` for a payment intent.
pub fn refund_form(payment_intent: &str) -> Vec<(&'static str, String)> {
    vec![("payment_intent", payment_intent.to_string())]
}

#[derive(Debug, Deserialize)]
struct PaymentIntent {
    id: String,
    status: String,
    #[serde(default)]
    last_payment_error: Option<StripeError>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: StripeError,
}

#[derive(Debug, Deserialize)]
struct StripeError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

impl StripeError {
    fn reason(&self) -> String {
        self.message
            .clone()
            .or_else(|| self.code.clone())
            .unwrap_or_else(|| "declined by Stripe".into())
    }
}

/// Reads Stripe's answer to a PaymentIntent create-and-confirm.
///
/// `succeeded` is charged; `processing` is settled later and reported by
/// webhook; a 402 card error or `requires_payment_method` is a decline;
/// 429 and 5xx are worth retrying with the same idempotency key, and so is
/// 409: Stripe is still working on an earlier request with this key
/// (`idempotency_key_in_use`), whose charge may yet succeed; taking it as
/// a decline would cancel an order that is then charged.
pub fn charge_outcome(status: u16, body: &[u8]) -> ChargeOutcome {
    if status == 409 || status == 429 || status >= 500 {
        return ChargeOutcome::Unavailable {
            reason: format!("Stripe answered {status}"),
        };
    }
    if status >= 400 {
        let reason = serde_json::from_slice::<ErrorBody>(body)
            .map(|b| b.error.reason())
            .unwrap_or_else(|_| format!("Stripe answered {status}"));
        return ChargeOutcome::Declined { reason };
    }
    match serde_json::from_slice::<PaymentIntent>(body) {
        Ok(pi) if pi.status == "succeeded" => ChargeOutcome::Succeeded { reference: pi.id },
        Ok(pi) if pi.status == "processing" => ChargeOutcome::Pending { reference: pi.id },
        Ok(pi) => ChargeOutcome::Declined {
            reason: pi
                .last_payment_error
                .map(|e| e.reason())
                .unwrap_or_else(|| format!("the payment is {}", pi.status)),
        },
        Err(e) => ChargeOutcome::Unavailable {
            reason: format!("unexpected answer from Stripe: {e}"),
        },
    }
}

/// Reads Stripe's answer to `POST /v1/refunds`.
///
/// The idempotency key makes a repeated refund return the first answer;
/// once Stripe has forgotten the key (after 24 hours) a repeat is refused
/// with `charge_already_refunded`, which means the money is back: done,
/// not a refusal. 409 (the key still in flight), 429 and 5xx are retried.
pub fn refund_outcome(status: u16, body: &[u8]) -> RefundOutcome {
    if status == 409 || status == 429 || status >= 500 {
        return RefundOutcome::Unavailable {
            reason: format!("Stripe answered {status}"),
        };
    }
    if (200..300).contains(&status) {
        return RefundOutcome::Refunded;
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) if b.error.code.as_deref() == Some("charge_already_refunded") => {
            RefundOutcome::Refunded
        }
        Ok(b) => RefundOutcome::Refused {
            reason: format!("Stripe refused the refund ({status}): {}", b.error.reason()),
        },
        Err(_) => RefundOutcome::Refused {
            reason: format!("Stripe refused the refund ({status})"),
        },
    }
}

/// Most `v1=` signatures a `Stripe-Signature` header may carry.
const MAX_SIGNATURES: usize = 8;

/// Checks a `Stripe-Signature` header (`t=<unix>,v1=<hex hmac>[,v1=…]`)
/// over `payload` with the endpoint's secret, within the tolerance.
pub fn verify_signature(
    header: &str,
    payload: &[u8],
    secret: &str,
    now: i64,
) -> Result<(), String> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", s)) => signatures.push(s),
            _ => {}
        }
    }
    // Stripe sends one, two while a secret is rolled: many is an attack on
    // the CPU, not a delivery.
    if signatures.len() > MAX_SIGNATURES {
        return Err(format!(
            "the Stripe-Signature header has more than {MAX_SIGNATURES} v1 signatures"
        ));
    }
    let timestamp = timestamp.ok_or("the Stripe-Signature header has no timestamp")?;
    if (now - timestamp).abs() > SIGNATURE_TOLERANCE_SECS {
        return Err("the Stripe-Signature timestamp is outside the tolerance".into());
    }
    // The payload is hashed once, whatever the number of candidates: each
    // check finishes a copy of the state (the outer hash only) and compares
    // in constant time.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    let matches = signatures.iter().any(|candidate| {
        hex::decode(candidate).is_ok_and(|given| mac.clone().verify_slice(&given).is_ok())
    });
    if matches {
        Ok(())
    } else {
        Err("no Stripe-Signature matches the payload".into())
    }
}

/// What a webhook says about a payment intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// Stripe's event id (`evt_…`): webhooks are deduplicated on it.
    pub id: String,
    pub kind: String,
    pub payment_intent: String,
    pub order_id: Option<String>,
    pub failure: Option<String>,
}

#[derive(Deserialize)]
struct RawEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: RawData,
}

#[derive(Deserialize)]
struct RawData {
    object: RawIntent,
}

#[derive(Deserialize)]
struct RawIntent {
    id: String,
    #[serde(default)]
    metadata: std::collections::HashMap<String, String>,
    #[serde(default)]
    last_payment_error: Option<StripeError>,
}

pub fn parse_webhook(payload: &[u8]) -> Result<WebhookEvent, String> {
    let raw: RawEvent =
        serde_json::from_slice(payload).map_err(|e| format!("not a Stripe event: {e}"))?;
    Ok(WebhookEvent {
        id: raw.id,
        kind: raw.kind,
        payment_intent: raw.data.object.id,
        order_id: raw.data.object.metadata.get("order_id").cloned(),
        failure: raw.data.object.last_payment_error.map(|e| e.reason()),
    })
}

/// A signature as Stripe computes it (for tests and local tools).
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHARGE: Charge<'static> = Charge {
        order_id: "o-1",
        amount_minor: 4100,
        currency: "EUR",
        token: "pm_card_visa",
    };

    #[test]
    fn a_refund_stripe_already_made_is_done_and_only_a_real_no_is_a_refusal() {
        assert_eq!(refund_outcome(200, b"{}"), RefundOutcome::Refunded);
        let already = br#"{"error":{"code":"charge_already_refunded","message":"Charge ch_1 has already been refunded."}}"#;
        assert_eq!(refund_outcome(400, already), RefundOutcome::Refunded);
        for status in [409, 429, 500, 503] {
            assert!(matches!(
                refund_outcome(status, b""),
                RefundOutcome::Unavailable { .. }
            ));
        }
        let missing =
            br#"{"error":{"code":"resource_missing","message":"No such payment_intent"}}"#;
        assert!(matches!(
            refund_outcome(400, missing),
            RefundOutcome::Refused { reason } if reason.contains("No such payment_intent")
        ));
    }

    #[test]
    fn the_payment_intent_carries_amount_method_and_order() {
        let form = payment_intent_form(&CHARGE);
        let get = |k: &str| {
            form.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("amount"), Some("4100"));
        assert_eq!(get("currency"), Some("eur"));
        assert_eq!(get("payment_method"), Some("pm_card_visa"));
        assert_eq!(get("confirm"), Some("true"));
        assert_eq!(get("metadata[order_id]"), Some("o-1"));
    }

    #[test]
    fn answers_map_to_outcomes() {
        assert_eq!(
            charge_outcome(200, br#"{"id":"pi_1","status":"succeeded"}"#),
            ChargeOutcome::Succeeded {
                reference: "pi_1".into()
            }
        );
        assert!(matches!(
            charge_outcome(402, br#"{"error":{"message":"Your card was declined.","code":"card_declined"}}"#),
            ChargeOutcome::Declined { reason } if reason == "Your card was declined."
        ));
        assert!(matches!(
            charge_outcome(200, br#"{"id":"pi_2","status":"requires_payment_method","last_payment_error":{"code":"card_declined"}}"#),
            ChargeOutcome::Declined { reason } if reason == "card_declined"
        ));
        assert_eq!(
            charge_outcome(200, br#"{"id":"pi_3","status":"processing"}"#),
            ChargeOutcome::Pending {
                reference: "pi_3".into()
            }
        );
        assert!(matches!(
            charge_outcome(503, b""),
            ChargeOutcome::Unavailable { .. }
        ));
        // An earlier request with the key is still in flight: not a decline.
        assert!(matches!(
            charge_outcome(
                409,
                br#"{"error":{"type":"idempotency_error","code":"idempotency_key_in_use"}}"#
            ),
            ChargeOutcome::Unavailable { .. }
        ));
        assert!(matches!(
            charge_outcome(429, b""),
            ChargeOutcome::Unavailable { .. }
        ));
    }

    #[test]
    fn signatures_are_verified_in_time_and_in_content() {
        let payload = br#"{"id":"evt_1"}"#;
        let header = sign(payload, "whsec_test", 1_000);
        assert_eq!(
            verify_signature(&header, payload, "whsec_test", 1_100),
            Ok(())
        );
        assert!(verify_signature(&header, payload, "whsec_other", 1_100).is_err());
        assert!(verify_signature(&header, br#"{"id":"evt_2"}"#, "whsec_test", 1_100).is_err());
        assert!(verify_signature(&header, payload, "whsec_test", 1_000 + 301).is_err());
        assert!(verify_signature("v1=00", payload, "whsec_test", 1_000).is_err());
        // Thousands of candidates are refused before any hashing.
        let flood = format!("{header}{}", ",v1=00".repeat(1000));
        assert!(verify_signature(&flood, payload, "whsec_test", 1_000)
            .unwrap_err()
            .contains("more than 8"));
        // Several v1 signatures (during secret rotation): any may match.
        let two = format!("{header},v1=deadbeef");
        assert_eq!(verify_signature(&two, payload, "whsec_test", 1_000), Ok(()));
    }

    #[test]
    fn webhooks_name_the_intent_and_the_order() {
        let event = parse_webhook(br#"{"id":"evt_9","type":"payment_intent.payment_failed","data":{"object":{"id":"pi_9","metadata":{"order_id":"o-9"},"last_payment_error":{"message":"Insufficient funds"}}}}"#).unwrap();
        assert_eq!(event.kind, "payment_intent.payment_failed");
        assert_eq!(event.payment_intent, "pi_9");
        assert_eq!(event.order_id.as_deref(), Some("o-9"));
        assert_eq!(event.failure.as_deref(), Some("Insufficient funds"));
        assert!(parse_webhook(b"{}").is_err());
    }
}
