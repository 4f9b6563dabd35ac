// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

//! What the saga tests share: a host with the whole app, customers,
//! products with stock, orders, and waiting for an order's status.

use std::time::Duration;

use mart_integration_tests::{admin_token, Host};
use serde_json::{json, Value};

pub const WAIT: Duration = Duration::from_secs(60);

/// A host of its own (for tests that stop or kill it).
pub fn host() -> Host {
    Host::start("spin.toml", &[])
}

/// The test binary's one host (see `Host::shared`).
pub fn shared_host() -> &'static Host {
    Host::shared("spin.toml", &[])
}

pub use mart_integration_tests::unique;

/// A new customer's token.
pub fn customer(host: &Host) -> String {
    let email = format!("{}@example.com", unique("buyer"));
    let password = "correct horse battery";
    host.sign_up(&email, "Buyer", password);
    host.log_in(&email, password)["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A product priced `price` (euro cents) with `on_hand` units in stock.
pub fn product(host: &Host, price: i64, on_hand: i32) -> String {
    product_in(host, "EUR", price, on_hand)
}

/// A product priced `price` in `currency` (the shop's) with `on_hand` units.
pub fn product_in(host: &Host, currency: &str, price: i64, on_hand: i32) -> String {
    let body = json!({"name": unique("teapot"), "description": "d", "category": "saga", "price_minor": price, "currency": currency});
    stocked_product(host, &body, Some(on_hand))
}

/// The product `body` describes, with `on_hand` units (no stock record
/// at all for `None`).
pub fn stocked_product(host: &Host, body: &Value, on_hand: Option<i32>) -> String {
    let r = host.send_json_as(&admin_token(), "POST", "/products", body);
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    if let Some(on_hand) = on_hand {
        set_stock(host, &id, on_hand);
    }
    id
}

/// Sets `product`'s stock on hand, as the admin; answers the stock record.
pub fn set_stock(host: &Host, product: &str, on_hand: i32) -> Value {
    let r = host.send_json_as(
        &admin_token(),
        "PUT",
        &format!("/inventory/{product}"),
        &json!({ "on_hand": on_hand }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Moves `order` to `status` (shipped, delivered) as the admin.
pub fn set_order_status(host: &Host, order: &str, status: &str) {
    let r = host.send_json_as(
        &admin_token(),
        "PUT",
        &format!("/orders/{order}/status"),
        &json!({ "status": status }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

pub fn stock(host: &Host, product: &str) -> (i64, i64) {
    let s = host.get(&format!("/inventory/{product}")).json();
    (
        s["on_hand"].as_i64().unwrap(),
        s["reserved"].as_i64().unwrap(),
    )
}

pub fn order_body(items: Value, token: &str) -> Value {
    json!({
        "items": items,
        "shipping_address": {"name": "Buyer", "line1": "1 Tea Street", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "payment": {"provider": "fake", "token": token}
    })
}

pub fn place(host: &Host, user: &str, key: &str, body: &Value) -> mart_integration_tests::Resp {
    let bytes = serde_json::to_vec(body).unwrap();
    let auth = format!("Bearer {user}");
    host.request(
        "POST",
        "/orders",
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
            ("idempotency-key", key),
        ],
        Some(&bytes),
    )
}

/// Places an order of `quantity` × `product`, paid with the fake
/// provider's `token`, under a fresh Idempotency-Key; the new order's id.
pub fn place_items(host: &Host, user: &str, product: &str, quantity: i32, token: &str) -> String {
    let body = order_body(
        json!([{"product_id": product, "quantity": quantity}]),
        token,
    );
    let r = place(host, user, &unique("k"), &body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

/// Places an order of one `product` as `user` from a caller whose span is
/// `traceparent`; the new order's id.
pub fn place_traced(host: &Host, user: &str, product: &str, traceparent: &str) -> String {
    let body = serde_json::to_vec(&order_body(
        json!([{"product_id": product, "quantity": 1}]),
        "tok_visa",
    ))
    .unwrap();
    let auth = format!("Bearer {user}");
    let r = host.request(
        "POST",
        "/orders",
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
            ("traceparent", traceparent),
        ],
        Some(&body),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

/// `POST /orders/{order}/cancel` as `user` (it takes no body).
pub fn cancel(host: &Host, user: &str, order: &str) -> mart_integration_tests::Resp {
    let auth = format!("Bearer {user}");
    host.request(
        "POST",
        &format!("/orders/{order}/cancel"),
        &[("authorization", &auth)],
        None,
    )
}

/// Waits until the order reaches `status`; returns the order.
pub fn wait_for(host: &Host, user: &str, order: &str, status: &str) -> Value {
    wait_for_within(WAIT, host, user, order, status)
}

/// `wait_for` with its own timeout.
pub fn wait_for_within(
    timeout: Duration,
    host: &Host,
    user: &str,
    order: &str,
    status: &str,
) -> Value {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let last = host.get_as(user, &format!("/orders/{order}")).json();
        if last["status"] == status {
            return last;
        }
        if std::time::Instant::now() > deadline {
            panic!("order {order} did not become {status} within {timeout:?}: {last}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The order went through one of `paths`. Events from different topics can
/// cross: when the payment's outcome reaches orders before the reservation
/// does, `reserved` is skipped (the machine allows pending → paid).
pub fn assert_paths(order: &Value, paths: &[&[&str]]) {
    let went = history(order);
    assert!(
        paths.iter().any(|p| went == *p),
        "history {went:?} is none of {paths:?}"
    );
}

pub fn history(order: &Value) -> Vec<String> {
    order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap().to_string())
        .collect()
}

/// Runs `mart check` (the operators' invariant check) against the test
/// cluster; its exit code and report.
pub fn mart_check() -> (i32, String) {
    let out = std::process::Command::new(mart_integration_tests::mart_bin())
        .args([
            "check",
            "--database-url",
            &mart_integration_tests::postgres().server_url(),
        ])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Waits until `mart check` finds every order settled (exit 0); fails at
/// once on a violation (exit 1), and after `timeout` if orders are still
/// under way. The report.
pub fn settled(host: &Host, timeout: Duration) -> String {
    settled_where(host, timeout, |_| true)
}

/// Waits until `mart check` finds none of `orders` under way, for a test on
/// a host other tests share: their orders may still be moving (or stuck,
/// should one of them fail), and are theirs to wait for. A violation
/// anywhere still fails at once: no test's traffic may break an invariant.
pub fn orders_settled(host: &Host, orders: &[&str], timeout: Duration) -> String {
    settled_where(host, timeout, |line| {
        orders.iter().any(|order| line.contains(order))
    })
}

/// `settled`, counting only the unsettled orders whose report line `counts`.
fn settled_where(host: &Host, timeout: Duration, counts: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (code, report) = mart_check();
        if code == 0 {
            assert!(report.contains("0 unsettled, 0 violation(s)"), "{report}");
            return report;
        }
        assert_ne!(code, 1, "an invariant broke:\n{report}");
        let waiting = report
            .lines()
            .any(|line| line.trim_start().starts_with("unsettled:") && counts(line));
        // Exit 2 is "unsettled"; any other code is a check that could not run.
        if code == 2 && !waiting {
            return report;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not settled within {timeout:?}:\n{report}\n{}",
            host.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A burst: `customers` new customers place `each` orders of one unit of
/// `product` (a customer may have only a few orders open at once); the
/// (customer, order) pairs.
pub fn burst(host: &Host, product: &str, customers: usize, each: usize) -> Vec<(String, String)> {
    let users: Vec<String> = (0..customers).map(|_| customer(host)).collect();
    let mut placed = Vec::new();
    for user in &users {
        for _ in 0..each {
            placed.push((
                user.clone(),
                place_items(host, user, product, 1, "tok_visa"),
            ));
        }
    }
    placed
}

/// A new cart of `user` holding `lines` (product, quantity); its id.
pub fn cart_with(host: &Host, user: &str, lines: &[(&str, i32)]) -> String {
    let cart = host.send_json_as(user, "POST", "/carts", &json!({}));
    assert_eq!(cart.status, 201, "{}", cart.text());
    let cart = cart.json()["id"].as_str().unwrap().to_string();
    for (product, quantity) in lines {
        let r = host.send_json_as(
            user,
            "POST",
            &format!("/carts/{cart}/items"),
            &json!({"product_id": product, "quantity": quantity}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    cart
}

/// The body of an order from `cart`, paid with the fake provider's `token`.
pub fn cart_order_body(cart: &str, token: &str) -> Value {
    let mut body = order_body(json!(null), token);
    body.as_object_mut().unwrap().remove("items");
    body["cart_id"] = json!(cart);
    body
}
