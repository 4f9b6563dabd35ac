//! The checkout saga end to end: the real host with every service, the
//! outbox relay, Kafka triggers over a real broker, and PostgreSQL.
//! register → log in → cart → order → reserved → paid, and the ways it can
//! go otherwise.

mod saga_support;

use mart_integration_tests::{eventually, postgres};
use saga_support::*;
use serde_json::json;

#[test]
fn a_cart_becomes_a_paid_order_with_stock_committed_and_a_notification() {
    let host = shared_host();
    let user = customer(host);
    let teapot = product(host, 2500, 10);
    let cup = product(host, 400, 10);
    let cart_id = cart_with(host, &user, &[(&teapot, 1), (&cup, 4)]);
    let body = cart_order_body(&cart_id, "tok_visa");

    let key = unique("key");
    let created = place(host, &user, &key, &body);
    assert_eq!(created.status, 201, "{}", created.text());
    let order = created.json();
    assert_eq!(order["status"], "pending");
    assert_eq!(
        order["total_minor"],
        2500 + 4 * 400,
        "prices snapshotted at placement"
    );
    let id = order["id"].as_str().unwrap().to_string();

    // The same key and body: the same order, not a second one.
    let again = place(host, &user, &key, &body);
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["id"], id.as_str());
    // The same key with another body is refused.
    let other = place(
        host,
        &user,
        &key,
        &order_body(json!([{"product_id": cup, "quantity": 1}]), "tok_visa"),
    );
    let detail = other.problem(422)["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("different request"), "{detail}");

    let paid = wait_for(host, &user, &id, "paid");
    assert_paths(
        &paid,
        &[&["pending", "reserved", "paid"], &["pending", "paid"]],
    );
    eventually(WAIT, "the cart to be closed", || {
        let cart = host.get_as(&user, &format!("/carts/{cart_id}")).json();
        (cart["status"] == "checked_out").then_some(())
    });
    // Retrying the placement still answers with the order, cart closed or not.
    assert_eq!(place(host, &user, &key, &body).json()["id"], id.as_str());
    eventually(WAIT, "stock to be committed", || {
        (stock(host, &teapot) == (9, 0) && stock(host, &cup) == (6, 0)).then_some(())
    });
    let payments = host
        .get_as(&user, &format!("/payments?order_id={id}"))
        .json();
    assert_eq!(payments["items"][0]["status"], "succeeded");
    assert_eq!(payments["items"][0]["amount_minor"], 4100);
    eventually(WAIT, "the order_paid notification", || {
        let notes = host.get_as(&user, "/notifications").json();
        let kinds: Vec<&str> = notes["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["kind"].as_str().unwrap())
            .collect();
        (kinds.contains(&"order_paid") && kinds.contains(&"welcome")).then_some(())
    });

    // Another customer sees none of it.
    let stranger = customer(host);
    assert_eq!(host.get_as(&stranger, &format!("/orders/{id}")).status, 404);
    assert_eq!(
        host.get_as(&stranger, &format!("/payments?order_id={id}"))
            .json()["items"],
        json!([])
    );
    let listed = host.get_as(&stranger, "/orders").json();
    assert_eq!(listed["items"], json!([]));
    let mine = host.get_as(&user, "/orders").json();
    assert_eq!(mine["items"][0]["id"], id.as_str());
}

#[test]
fn out_of_stock_cancels_the_order_and_leaves_stock_alone() {
    let host = shared_host();
    let user = customer(host);
    let rare = product(host, 1000, 2);
    let id = place_items(host, &user, &rare, 3, "tok_visa");
    let cancelled = wait_for(host, &user, &id, "cancelled");
    let reason = cancelled["history"].as_array().unwrap().last().unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.starts_with("out of stock"), "{reason}");
    assert_eq!(stock(host, &rare), (2, 0));
}

#[test]
fn a_declined_payment_cancels_the_order_and_releases_the_stock() {
    let host = shared_host();
    let user = customer(host);
    let item = product(host, 1000, 5);
    let id = place_items(host, &user, &item, 2, "tok_chargeDeclined");
    let cancelled = wait_for(host, &user, &id, "cancelled");
    assert_paths(
        &cancelled,
        &[
            &["pending", "reserved", "cancelled"],
            &["pending", "cancelled"],
        ],
    );
    let reason = cancelled["history"].as_array().unwrap().last().unwrap()["reason"]
        .as_str()
        .unwrap();
    assert!(reason.starts_with("payment declined"), "{reason}");
    eventually(WAIT, "the reservation to be released", || {
        (stock(host, &item) == (5, 0)).then_some(())
    });
    let payments = host
        .get_as(&user, &format!("/payments?order_id={id}"))
        .json();
    assert_eq!(payments["items"][0]["status"], "failed");
}

#[test]
fn cancelling_a_paid_order_refunds_it_and_returns_the_stock() {
    let host = shared_host();
    let user = customer(host);
    let item = product(host, 1500, 5);
    let id = place_items(host, &user, &item, 2, "tok_visa");
    wait_for(host, &user, &id, "paid");
    eventually(WAIT, "stock to be committed", || {
        (stock(host, &item) == (3, 0)).then_some(())
    });

    let r = cancel(host, &user, &id);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "refunded");
    eventually(
        WAIT,
        "the charge to be refunded and the stock returned",
        || {
            let payment = host
                .get_as(&user, &format!("/payments?order_id={id}"))
                .json();
            (payment["items"][0]["status"] == "refunded" && stock(host, &item) == (5, 0))
                .then_some(())
        },
    );
    // Shipped orders can no longer be cancelled.
    let second = place_items(host, &user, &item, 1, "tok_visa");
    wait_for(host, &user, &second, "paid");
    set_order_status(host, &second, "shipped");
    let r = cancel(host, &user, &second);
    assert!(r.problem(409)["detail"]
        .as_str()
        .unwrap()
        .contains("shipped"));
}

#[test]
fn one_trace_follows_an_order_across_services() {
    let host = shared_host();
    let user = customer(host);
    let item = product(host, 900, 5);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let order = place_traced(
        host,
        &user,
        &item,
        &format!("00-{trace_id}-00f067aa0ba902b7-01"),
    );
    wait_for(host, &user, &order, "paid");
    // Every service's event about this order carries the caller's trace:
    // orders (the HTTP request), inventory and payments (Kafka handlers
    // continuing it from the records they handled).
    for database in ["orders", "inventory", "payments"] {
        let traces: Vec<Option<String>> = mart_integration_tests::postgres()
            .query(
                database,
                &format!("SELECT traceparent FROM outbox WHERE aggregate_id = '{order}'"),
            )
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            !traces.is_empty(),
            "{database} recorded no event for {order}"
        );
        for trace in traces {
            let trace = trace.unwrap_or_else(|| panic!("an event in {database} has no trace"));
            assert_eq!(
                trace.split('-').nth(1),
                Some(trace_id),
                "{database}: {trace}"
            );
        }
    }
}

#[test]
fn a_customers_orders_page_newest_first_through_the_cursor() {
    let host = shared_host();
    let user = customer(host);
    let item = product(host, 100, 10);
    let placed: Vec<String> = (0..3)
        .map(|_| place_items(host, &user, &item, 1, "tok_visa"))
        .collect();
    let first = host.get_as(&user, "/orders?limit=2").json();
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    let second = host
        .get_as(&user, &format!("/orders?limit=2&cursor={cursor}"))
        .json();
    assert!(second["next_cursor"].is_null(), "{second}");
    let listed: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = placed.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);
}

#[test]
fn one_cart_becomes_at_most_one_order() {
    // The cart closes only when carts sees order.placed: a second placement
    // right after the first, under another key, must not make a second order.
    let host = shared_host();
    let user = customer(host);
    let item = product(host, 700, 10);
    let cart = cart_with(host, &user, &[(&item, 1)]);
    let body = cart_order_body(&cart, "tok_visa");
    let first = place(host, &user, &unique("k"), &body);
    assert_eq!(first.status, 201, "{}", first.text());
    let second = place(host, &user, &unique("k"), &body);
    let problem = second.problem(409);
    assert!(
        problem["detail"].as_str().unwrap().contains(&cart),
        "{problem}"
    );
    let from_cart: i64 = postgres().query(
        "orders",
        &format!("SELECT count(*) FROM orders WHERE cart_id = '{cart}'"),
    )[0]
    .get(0);
    assert_eq!(from_cart, 1);
}

#[test]
fn the_saga_funnel_is_counted_by_event_type() {
    let host = shared_host();
    let user = customer(host);
    let item = product(host, 300, 5);
    let order = place_items(host, &user, &item, 1, "tok_visa");
    wait_for(host, &user, &order, "paid");
    // The Grafana board's funnel (placed, reserved, paid) reads these.
    eventually(WAIT, "the saga's events counted by type", || {
        let metrics = host.metrics();
        [
            ("orders", "order.placed"),
            ("inventory", "inventory.reserved"),
            ("orders", "order.paid"),
        ]
        .iter()
        .all(|(database, event_type)| {
            metrics.contains(&format!(
                "mart_outbox_published_total{{database=\"{database}\",type=\"{event_type}\"}}"
            ))
        })
        .then_some(())
    });
}
