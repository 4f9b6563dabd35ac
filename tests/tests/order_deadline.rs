//! Orders that wait too long for stock or payment are cancelled. A test
//! binary of its own: its single host relays nothing, so no other host may
//! share its database and move the saga on.

mod saga_support;

use std::time::Duration;

use mart_integration_tests::{eventually, postgres, Host};
use saga_support::*;

#[test]
fn an_order_stuck_past_its_deadline_is_cancelled() {
    // Without the relay no event leaves the orders database, so the saga
    // cannot move the order; the deadline must.
    let host = Host::start(
        "spin.toml",
        &[
            ("MART_NO_OUTBOX_RELAY", "true".into()),
            ("SPIN_VARIABLE_ORDER_DEADLINE_SECS", "2".into()),
            ("SPIN_VARIABLE_ORDER_SWEEP_SECS", "1".into()),
        ],
    );
    let user = customer(&host);
    let item = product(&host, 1000, 5);
    let id = place_items(&host, &user, &item, 1, "tok_visa");
    let path = format!("/orders/{id}");
    // Nobody reads orders meanwhile: the timer trigger alone expires it.
    let expired = || {
        let cancelled: i64 = postgres().query(
            "orders",
            &format!("SELECT count(*) FROM orders WHERE id = '{id}' AND status = 'cancelled'"),
        )[0]
        .get(0);
        (cancelled == 1).then_some(())
    };
    eventually(
        Duration::from_secs(120),
        "the timer to expire the order",
        expired,
    );
    // Measured by the database's clock, from the order's creation to its
    // cancellation: the test's own clock would include however long the
    // placing request took on a busy machine.
    let waited: f64 = postgres().query(
        "orders",
        &format!(
            "SELECT extract(epoch FROM h.at - o.created_at)::float8 FROM order_history h \
             JOIN orders o ON o.id = h.order_id WHERE o.id = '{id}' AND h.status = 'cancelled'"
        ),
    )[0]
    .get(0);
    assert!(
        waited >= 2.0,
        "cancelled {waited} s after it was placed, before its 2 s deadline"
    );
    let order = host.get_as(&user, &path).json();
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["history"][1]["reason"], "payment timed out");
    let cancelled: i64 = postgres().query(
        "orders",
        &format!("SELECT count(*) FROM outbox WHERE aggregate_id = '{id}' AND event_type = 'order.cancelled'"),
    )[0]
    .get(0);
    assert_eq!(
        cancelled, 1,
        "the cancellation goes out as an event (stock is released by it)"
    );
}
