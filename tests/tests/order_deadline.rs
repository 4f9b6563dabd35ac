//! Orders that wait too long for stock or payment are cancelled. A test
//! binary of its own: its single host relays nothing, so no other host may
//! share its database and move the saga on.

mod saga_support;

use std::time::Duration;

use mart_integration_tests::{postgres, Host};
use saga_support::*;

#[test]
fn an_order_stuck_past_its_deadline_is_cancelled() {
    // Without the relay no event leaves the orders database, so the saga
    // cannot move the order; the deadline must.
    let host = Host::start(
        "spin.toml",
        &[
            ("MART_NO_OUTBOX_RELAY", "true".into()),
            ("SPIN_VARIABLE_ORDER_DEADLINE_SECS", "1".into()),
        ],
    );
    let user = customer(&host);
    let item = product(&host, 1000, 5);
    let id = place_items(&host, &user, &item, 1, "tok_visa");
    std::thread::sleep(Duration::from_millis(1500));
    let order = host.get_as(&user, &format!("/orders/{id}")).json();
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
