//! Stripe through the whole saga, against a local fake of Stripe's API that
//! checks the request shapes (never the internet): the charge is a
//! PaymentIntent confirmed server-side with the order id as idempotency key;
//! declines cancel; a `processing` intent is settled by a signed webhook.

mod saga_support;

use mart_integration_tests::fake_http::{FakeHttp, Recorded};
use mart_integration_tests::Host;
use saga_support::*;
use serde_json::{json, Value};

const SECRET_KEY: &str = "sk_test_mart";
const WEBHOOK_SECRET: &str = "whsec_test_mart";

/// A fake of the two Stripe endpoints Mart calls. It answers by payment
/// method: `pm_card_visa` succeeds, `pm_card_chargeDeclined` is declined
/// (402), `pm_processing` stays processing, `pm_in_flight` is first a 409
/// (Stripe still working on the key) and succeeds when asked again,
/// `pm_flaky` answers 500, then 409, then `processing` (settled later by a
/// webhook); refunds succeed.
///
/// One for the test binary: every host here is in the same consumer
/// groups, so any of them may charge any order, and all must reach the same
/// Stripe with the same settings.
fn stripe() -> &'static FakeHttp {
    static STRIPE: std::sync::OnceLock<FakeHttp> = std::sync::OnceLock::new();
    STRIPE.get_or_init(|| FakeHttp::start(answer))
}

fn answer(r: &Recorded, before: &[Recorded]) -> (u16, Value) {
    if r.header("authorization") != Some(&format!("Bearer {SECRET_KEY}")) {
        return (
            401,
            json!({"error": {"message": "Invalid API Key provided"}}),
        );
    }
    if r.header("idempotency-key").is_none() {
        return (
            400,
            json!({"error": {"message": "an Idempotency-Key is expected"}}),
        );
    }
    match r.path.as_str() {
        "/v1/payment_intents" => {
            let intent = format!("pi_{}", r.field("metadata[order_id]").unwrap_or("none"));
            match r.field("payment_method") {
                Some("pm_card_visa") => (200, json!({"id": intent, "status": "succeeded"})),
                Some("pm_processing") => (200, json!({"id": intent, "status": "processing"})),
                Some("pm_flaky") => {
                    let asked_before = before
                        .iter()
                        .filter(|b| {
                            b.path == r.path
                                && b.header("idempotency-key") == r.header("idempotency-key")
                        })
                        .count();
                    match asked_before {
                        0 => (
                            500,
                            json!({"error": {"type": "api_error", "message": "An unknown error occurred"}}),
                        ),
                        1 => (
                            409,
                            json!({"error": {"type": "idempotency_error", "code": "idempotency_key_in_use",
                                             "message": "There is currently another in-progress request using this Idempotency Key"}}),
                        ),
                        _ => (200, json!({"id": intent, "status": "processing"})),
                    }
                }
                Some("pm_in_flight") => {
                    let asked_before = before.iter().any(|b| {
                        b.path == r.path
                            && b.header("idempotency-key") == r.header("idempotency-key")
                    });
                    if asked_before {
                        (200, json!({"id": intent, "status": "succeeded"}))
                    } else {
                        (
                            409,
                            json!({"error": {"type": "idempotency_error", "code": "idempotency_key_in_use",
                                             "message": "There is currently another in-progress request using this Idempotency Key"}}),
                        )
                    }
                }
                _ => (
                    402,
                    json!({"error": {"message": "Your card was declined.", "code": "card_declined"}}),
                ),
            }
        }
        "/v1/refunds" => (200, json!({"id": "re_1", "status": "succeeded"})),
        _ => (404, json!({"error": {"message": "unknown path"}})),
    }
}

/// The binary's one host, configured for Stripe (see `Host::shared`).
fn stripe_host(stripe: &FakeHttp) -> &'static Host {
    Host::shared(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_PAYMENT_PROVIDERS", "fake,stripe".into()),
            ("SPIN_VARIABLE_STRIPE_API_BASE", stripe.url.clone()),
            ("SPIN_VARIABLE_STRIPE_SECRET_KEY", SECRET_KEY.into()),
            ("SPIN_VARIABLE_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
        ],
    )
}

fn stripe_order(host: &Host, user: &str, product: &str, method: &str) -> String {
    let mut body = order_body(json!([{"product_id": product, "quantity": 2}]), method);
    body["payment"]["provider"] = json!("stripe");
    let r = place(host, user, &unique("k"), &body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

fn webhook(host: &Host, event: &Value, signature: &str) -> u16 {
    let payload = serde_json::to_vec(event).unwrap();
    host.request(
        "POST",
        "/payments/webhooks/stripe",
        &[
            ("content-type", "application/json"),
            ("stripe-signature", signature),
        ],
        Some(&payload),
    )
    .status
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn stripe_charges_a_payment_intent_keyed_by_the_order() {
    let stripe = stripe();
    let host = stripe_host(stripe);
    let user = customer(host);
    let item = product(host, 1250, 10);
    let order = stripe_order(host, &user, &item, "pm_card_visa");
    wait_for(host, &user, &order, "paid");

    let charges: Vec<Recorded> = stripe
        .requests("/v1/payment_intents")
        .into_iter()
        .filter(|r| r.field("metadata[order_id]") == Some(order.as_str()))
        .collect();
    assert_eq!(charges.len(), 1, "{charges:?}");
    let charge = &charges[0];
    assert_eq!(charge.header("idempotency-key"), Some(order.as_str()));
    assert_eq!(
        charge.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(charge.field("amount"), Some("2500"));
    assert_eq!(charge.field("currency"), Some("eur"));
    assert_eq!(charge.field("payment_method"), Some("pm_card_visa"));
    assert_eq!(charge.field("confirm"), Some("true"));
    assert_eq!(charge.field("metadata[order_id]"), Some(order.as_str()));
    let payment = host
        .get_as(&user, &format!("/payments?order_id={order}"))
        .json();
    assert_eq!(payment["items"][0]["provider_ref"], format!("pi_{order}"));

    // A declined card cancels the order with Stripe's reason.
    let declined = stripe_order(host, &user, &item, "pm_card_chargeDeclined");
    let cancelled = wait_for(host, &user, &declined, "cancelled");
    let reason = cancelled["history"].as_array().unwrap().last().unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(reason, "payment declined: Your card was declined.");
}

#[test]
fn a_processing_charge_is_settled_by_a_signed_webhook_once() {
    let stripe = stripe();
    let host = stripe_host(stripe);
    let user = customer(host);
    let item = product(host, 1000, 10);
    let order = stripe_order(host, &user, &item, "pm_processing");
    eventually_charged(stripe, &order);
    let event = json!({
        "id": format!("evt_{order}"),
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": format!("pi_{order}"), "metadata": {"order_id": order}}}
    });
    let payload = serde_json::to_vec(&event).unwrap();

    // Forged, stale or missing signatures are refused.
    let forged = mart_domain::stripe::sign(&payload, "whsec_wrong", now());
    assert_eq!(webhook(host, &event, &forged), 400);
    let stale = mart_domain::stripe::sign(&payload, WEBHOOK_SECRET, now() - 3600);
    assert_eq!(webhook(host, &event, &stale), 400);
    let status = host.get_as(&user, &format!("/orders/{order}")).json()["status"].clone();
    assert_ne!(status, "paid", "no payment without a valid signature");

    let signed = mart_domain::stripe::sign(&payload, WEBHOOK_SECRET, now());
    assert_eq!(webhook(host, &event, &signed), 200);
    wait_for(host, &user, &order, "paid");
    // Stripe resends webhooks; the second delivery changes nothing.
    assert_eq!(webhook(host, &event, &signed), 200);
    let charges: Vec<Recorded> = stripe
        .requests("/v1/payment_intents")
        .into_iter()
        .filter(|r| r.field("metadata[order_id]") == Some(order.as_str()))
        .collect();
    assert_eq!(charges.len(), 1, "charged once: {charges:?}");

    // Cancelling the paid order refunds the intent, with its own key.
    let r = cancel(host, &user, &order);
    assert_eq!(r.json()["status"], "refunded");
    let intent = format!("pi_{order}");
    let refund = mart_integration_tests::eventually(WAIT, "the refund request", || {
        stripe
            .requests("/v1/refunds")
            .into_iter()
            .find(|r| r.field("payment_intent") == Some(intent.as_str()))
    });
    assert_eq!(
        refund.field("payment_intent"),
        Some(format!("pi_{order}").as_str())
    );
    assert_eq!(
        refund.header("idempotency-key"),
        Some(format!("refund-pi_{order}").as_str())
    );
}

#[test]
fn a_charge_still_in_flight_at_stripe_is_retried_not_declined() {
    let stripe = stripe();
    let host = stripe_host(stripe);
    let user = customer(host);
    let item = product(host, 900, 10);
    let order = stripe_order(host, &user, &item, "pm_in_flight");
    let paid = wait_for(host, &user, &order, "paid");
    assert!(!history(&paid).contains(&"cancelled".to_string()), "{paid}");
    let charges: Vec<Recorded> = stripe
        .requests("/v1/payment_intents")
        .into_iter()
        .filter(|r| r.field("metadata[order_id]") == Some(order.as_str()))
        .collect();
    assert_eq!(charges.len(), 2, "asked again after the 409: {charges:?}");
    assert!(charges
        .iter()
        .all(|c| c.header("idempotency-key") == Some(order.as_str())));
}

#[test]
fn a_success_arriving_after_the_order_was_cancelled_is_refunded() {
    let stripe = stripe();
    let host = stripe_host(stripe);
    let user = customer(host);
    let item = product(host, 800, 10);
    let order = stripe_order(host, &user, &item, "pm_card_chargeDeclined");
    wait_for(host, &user, &order, "cancelled");
    // Stripe reports, late, that the intent succeeded after all.
    let intent = format!("pi_{order}");
    let event = json!({
        "id": format!("evt_late_{order}"),
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": intent, "metadata": {"order_id": order}}}
    });
    let payload = serde_json::to_vec(&event).unwrap();
    let signed = mart_domain::stripe::sign(&payload, WEBHOOK_SECRET, now());
    assert_eq!(webhook(host, &event, &signed), 200);
    let refund = mart_integration_tests::eventually(WAIT, "the refund of the late charge", || {
        stripe
            .requests("/v1/refunds")
            .into_iter()
            .find(|r| r.field("payment_intent") == Some(intent.as_str()))
    });
    assert_eq!(
        refund.header("idempotency-key"),
        Some(format!("refund-{intent}").as_str())
    );
    let order = host.get_as(&user, &format!("/orders/{order}")).json();
    assert_eq!(order["status"], "cancelled", "the order stays cancelled");
}

#[test]
fn a_burst_through_a_misbehaving_stripe_is_charged_once_per_order() {
    let stripe = stripe();
    let host = stripe_host(stripe);
    let item = product(host, 600, 50);
    let users: Vec<String> = (0..3).map(|_| customer(host)).collect();
    let orders: Vec<(&String, String)> = users
        .iter()
        .flat_map(|user| (0..2).map(move |_| user))
        .map(|user| (user, stripe_order(host, user, &item, "pm_flaky")))
        .collect();
    // Each charge meets a 500, then a 409, then `processing`: retried with
    // the same key each time, never taken as a decline...
    for (user, order) in &orders {
        mart_integration_tests::eventually(WAIT, "the third charge attempt", || {
            (charges_of(stripe, order).len() >= 3).then_some(())
        });
        // Waiting for Stripe's word, stock held.
        wait_for(host, user, order, "reserved");
    }
    // ...and Stripe's success arrives late, by webhook, twice for good measure.
    for (_, order) in &orders {
        let event = json!({
            "id": format!("evt_flaky_{order}"),
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": format!("pi_{order}"), "metadata": {"order_id": order}}}
        });
        let payload = serde_json::to_vec(&event).unwrap();
        let signed = mart_domain::stripe::sign(&payload, WEBHOOK_SECRET, now());
        assert_eq!(webhook(host, &event, &signed), 200);
        assert_eq!(webhook(host, &event, &signed), 200);
    }
    for (user, order) in &orders {
        let paid = wait_for(host, user, order, "paid");
        assert!(!history(&paid).contains(&"cancelled".to_string()), "{paid}");
        let charges = charges_of(stripe, order);
        assert_eq!(charges.len(), 3, "{charges:?}");
        assert!(charges
            .iter()
            .all(|c| c.header("idempotency-key") == Some(order.as_str())));
    }
    // Settled (paid orders' stock committed), then exactly twelve units out.
    // Only these orders: the host's other tests may have orders under way.
    let ids: Vec<&str> = orders.iter().map(|(_, order)| order.as_str()).collect();
    orders_settled(host, &ids, std::time::Duration::from_secs(180));
    assert_eq!(stock(host, &item), (38, 0));
}

/// The charge requests Stripe received for `order`.
fn charges_of(stripe: &FakeHttp, order: &str) -> Vec<Recorded> {
    stripe
        .requests("/v1/payment_intents")
        .into_iter()
        .filter(|r| r.field("metadata[order_id]") == Some(order))
        .collect()
}

fn eventually_charged(stripe: &FakeHttp, order: &str) {
    mart_integration_tests::eventually(WAIT, "the charge request", || {
        stripe
            .requests("/v1/payment_intents")
            .iter()
            .any(|r| r.field("metadata[order_id]") == Some(order))
            .then_some(())
    });
}
