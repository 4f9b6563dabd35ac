//! A service publishes only its own events. Whoever can write one service's
//! outbox (its component's role can) must not be able to publish another
//! service's events through the relay: a `payment.succeeded` written into
//! the orders database would otherwise mark an unpaid order paid.
//!
//! A binary of its own: its one host must be the relay of the databases.

mod saga_support;

use std::time::Duration;

use mart_integration_tests::{eventually, postgres, Host};
use saga_support::{customer, place_items, product, wait_for_within};

const WAIT: Duration = Duration::from_secs(120);

fn unsent(id: &str) -> bool {
    let sql = format!("SELECT 1 FROM outbox WHERE id = '{id}' AND sent_at IS NULL");
    !postgres().query("orders", &sql).is_empty()
}

#[test]
fn the_relay_refuses_another_services_event_in_a_services_outbox() {
    let host = Host::start("spin.toml", &[]);
    let user = customer(&host);
    let item = product(&host, 1000, 5);

    // A payment event written where only orders' events belong (as the
    // orders role can), naming an order id it makes up.
    let forged = "7f1e0a52-8a5e-4c62-9a53-1d1f1e0f0a01";
    postgres()
        .execute_as(
            "mart_orders",
            "orders",
            &format!(
                "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload) \
                 VALUES ('{forged}', 'payments', 'o-forged', 'payment.succeeded', \
                 '{{\"payment_id\": \"p\", \"order_id\": \"o-forged\", \"user_id\": \"u\", \
                 \"status\": \"succeeded\", \"amount_minor\": 1, \"currency\": \"EUR\"}}')"
            ),
        )
        .unwrap();
    // An order placed after it waits behind it: rows go out in order, and a
    // refused row is neither sent nor skipped.
    let order = place_items(&host, &user, &item, 1, "tok_visa");
    eventually(WAIT, "the relay to refuse the forged row", || {
        host.log()
            .contains(&format!("outbox row {forged} refused"))
            .then_some(())
    });
    assert!(unsent(forged), "the forged row was marked sent");
    let behind = format!("SELECT 1 FROM outbox WHERE aggregate_id = '{order}' AND sent_at IS NULL");
    assert!(
        !postgres().query("orders", &behind).is_empty(),
        "the order's own event went out past the refused row"
    );
    let placed = host.get_as(&user, &format!("/orders/{order}")).json();
    assert_eq!(placed["status"], "pending", "{placed}");

    // Once an operator removes it, the orders behind it go on.
    postgres().execute_script(
        "orders",
        &format!("DELETE FROM outbox WHERE id = '{forged}'"),
    );
    wait_for_within(WAIT, &host, &user, &order, "paid");
}
