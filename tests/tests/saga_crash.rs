//! The saga survives a host killed in the middle of it. In a test binary of
//! its own (so its own broker and groups), restarted under the same
//! `MART_KAFKA_INSTANCE_ID` (static membership).

mod saga_support;

use std::time::Duration;

use mart_integration_tests::{eventually, postgres};
use saga_support::*;

#[test]
fn a_host_killed_mid_saga_completes_it_after_restart_without_doubling() {
    // One identity for both hosts: the restarted host is the same member.
    let identity = [("MART_KAFKA_INSTANCE_ID", "crash-test-host".to_string())];
    let mut first = mart_integration_tests::Host::start("spin.toml", &identity);
    // Four customers with two orders each (a customer may have only a few
    // orders open at once).
    let users: Vec<String> = (0..4).map(|_| customer(&first)).collect();
    let item = product(&first, 700, 50);
    let mut placed = Vec::new();
    for user in &users {
        for _ in 0..2 {
            placed.push((user, place_items(&first, user, &item, 2, "tok_visa")));
        }
    }
    first.kill();
    let second = mart_integration_tests::Host::start("spin.toml", &identity);
    // The restarted host is the same static member, so it takes its
    // partitions back at once (without it, the broker keeps the killed
    // member until its session expires: minutes on tansu under load).
    for (user, id) in &placed {
        wait_for_within(Duration::from_secs(120), &second, user, id, "paid");
    }
    let ids: Vec<&String> = placed.iter().map(|(_, id)| id).collect();
    eventually(WAIT, "16 units committed, none reserved", || {
        (stock(&second, &item) == (34, 0)).then_some(())
    });
    // One charge per order, one reservation per order.
    let list = ids
        .iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(",");
    let charges: i64 = postgres().query(
        "payments",
        &format!(
            "SELECT count(*) FROM payments WHERE order_id IN ({list}) AND status = 'succeeded'"
        ),
    )[0]
    .get(0);
    assert_eq!(charges, 8);
    let reservations: i64 = postgres().query(
        "inventory",
        &format!("SELECT count(*) FROM reservations WHERE order_id IN ({list})"),
    )[0]
    .get(0);
    assert_eq!(reservations, 8);
    // And the operators' check agrees: money and stock match every order.
    settled(&second, Duration::from_secs(120));
}
