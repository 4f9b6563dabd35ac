//! The saga under a fault: the Kafka broker stops for 30 s right after a
//! burst of orders and comes back. Nothing may be lost or doubled: the
//! outbox keeps what could not be relayed, the consumers rejoin and go on
//! from their committed offsets, and `mart check` finds every order paid
//! with its one charge and committed stock. A test binary of its own: it
//! stops its broker.

mod saga_support;

use std::time::Duration;

use mart_integration_tests::{broker, Host};
use saga_support::*;

#[test]
fn a_broker_outage_mid_burst_delays_the_saga_but_breaks_nothing() {
    let host = Host::start("spin.toml", &[]);
    let item = product(&host, 400, 100);
    let placed = burst(&host, &item, 3, 4);

    // The broker goes away while the saga is under way; orders keep being
    // placed meanwhile (their events wait in the outbox)...
    broker::broker().stop();
    let during = burst(&host, &item, 1, 3);
    std::thread::sleep(Duration::from_secs(30));
    broker::broker().start();

    // ...and every order still ends paid, charged once, stock committed.
    settled(&host, Duration::from_secs(300));
    for (user, id) in placed.iter().chain(&during) {
        let order = host.get_as(user, &format!("/orders/{id}")).json();
        assert_eq!(order["status"], "paid", "{order}");
    }
    assert_eq!(stock(&host, &item), (85, 0));
}
