//! A customer cannot hoard stock with open orders. A test binary of its
//! own: its single host relays nothing, so orders stay `pending`.

mod saga_support;

use mart_integration_tests::Host;
use saga_support::*;

#[test]
fn a_customer_has_at_most_five_orders_waiting_at_once() {
    let host = Host::start("spin.toml", &[("MART_NO_OUTBOX_RELAY", "true".into())]);
    let user = customer(&host);
    let item = product(&host, 100, 1000);
    let placed: Vec<String> = (0..5)
        .map(|_| place_items(&host, &user, &item, 10, "tok_visa"))
        .collect();
    let body = order_body(
        serde_json::json!([{"product_id": item, "quantity": 10}]),
        "tok_visa",
    );
    let sixth = place(&host, &user, &unique("k"), &body);
    let problem = sixth.problem(409);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("5 orders waiting"),
        "{problem}"
    );
    // Cancelling one makes room again; other customers were never limited.
    let r = cancel(&host, &user, &placed[0]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(place(&host, &user, &unique("k"), &body).status, 201);
    let other = customer(&host);
    assert_eq!(place(&host, &other, &unique("k"), &body).status, 201);
}
