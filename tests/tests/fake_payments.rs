//! The fake payment provider pays for real goods with test tokens, so it
//! runs only under the development switch `allow_fake_payments` (which
//! `make run` and the other tests set). Without it, the shop refuses every
//! order while `payment_providers` names `fake`, and the payments service
//! pays nothing with it, even for an order placed while the switch was on.
//!
//! A binary of its own: its hosts must not share consumer groups with a
//! host that has the switch on.

mod saga_support;

use std::time::Duration;

use mart_integration_tests::Host;
use saga_support::{customer, history, order_body, place, place_items, product, stock, unique};
use serde_json::json;

/// How long the saga may take on a loaded machine, restart included.
const SAGA: Duration = Duration::from_secs(180);

fn switch(value: &str) -> Vec<(&'static str, String)> {
    vec![("SPIN_VARIABLE_ALLOW_FAKE_PAYMENTS", value.to_string())]
}

/// The HTTP services an order needs, without the Kafka handlers: hosts
/// started only for HTTP answers do not join (and churn) the consumer
/// groups the full shop's host consumes in.
const HTTP_ONLY: [&str; 10] = [
    "--component-id",
    "users",
    "--component-id",
    "catalog",
    "--component-id",
    "inventory",
    "--component-id",
    "carts",
    "--component-id",
    "orders",
];

#[test]
fn the_fake_provider_runs_only_under_the_development_switch() {
    // A deployment that enables `fake` without the switch takes no orders
    // at all, whatever provider an order names: the operator sees it at
    // once rather than after the first free purchase.
    let mut production = Host::start_with(
        "spin.toml",
        &HTTP_ONLY,
        &[
            switch("false"),
            vec![("SPIN_VARIABLE_PAYMENT_PROVIDERS", "fake,stripe".into())],
        ]
        .concat(),
    );
    let user = customer(&production);
    let item = product(&production, 1000, 5);
    for provider in ["fake", "stripe"] {
        let mut body = order_body(json!([{"product_id": item, "quantity": 1}]), "tok_visa");
        body["payment"]["provider"] = json!(provider);
        let refused = place(&production, &user, &unique("k"), &body).problem(503);
        let detail = refused["detail"].as_str().unwrap();
        assert!(
            detail.contains("allow_fake_payments"),
            "{provider}: {detail}"
        );
    }
    production.terminate(Duration::from_secs(90));

    // A switch that is neither true nor false is our misconfiguration, not
    // a guess in either direction.
    let mut mistyped = Host::start_with("spin.toml", &HTTP_ONLY, &switch("yes"));
    let refused = place(
        &mistyped,
        &user,
        &unique("k"),
        &order_body(json!([{"product_id": item, "quantity": 1}]), "tok_visa"),
    )
    .problem(500);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("allow_fake_payments must be true or false"),
        "{refused}"
    );
    mistyped.terminate(Duration::from_secs(90));
}

#[test]
fn an_order_placed_while_the_switch_was_on_is_not_paid_once_it_is_off() {
    // The order is placed on a host that runs only the HTTP services with
    // the switch on, so nothing pays it there; the whole shop then runs
    // with the switch off.
    let mut setup = Host::start_with("spin.toml", &HTTP_ONLY, &switch("false"));
    let user = customer(&setup);
    let item = product(&setup, 1000, 5);
    setup.terminate(Duration::from_secs(90));

    let mut placing = Host::start_with("spin.toml", &HTTP_ONLY, &switch("true"));
    let order = place_items(&placing, &user, &item, 2, "tok_visa");
    placing.terminate(Duration::from_secs(90));

    let shop = Host::start("spin.toml", &switch("false"));
    let cancelled = saga_support::wait_for_within(SAGA, &shop, &user, &order, "cancelled");
    let reason = cancelled["history"].as_array().unwrap().last().unwrap()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("`fake` is not available"),
        "{reason} ({:?})",
        history(&cancelled)
    );
    let payments = shop
        .get_as(&user, &format!("/payments?order_id={order}"))
        .json();
    assert_eq!(payments["items"][0]["status"], "failed", "{payments}");
    mart_integration_tests::eventually(SAGA, "the reservation to be released", || {
        (stock(&shop, &item) == (5, 0)).then_some(())
    });
}
