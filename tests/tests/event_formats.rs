//! Each service picks the format its events go out in
//! (`[application.trigger.kafka] outbox.formats` in spin.toml), and every
//! consumer reads all of them, so a service changes format with a restart
//! and nothing else: events written before go on being handled beside the
//! ones written after. In a test binary of its own (its own broker and
//! groups), restarted under one `MART_KAFKA_INSTANCE_ID` like saga_crash.rs.

mod saga_support;

use std::time::Duration;

use mart_domain::events::EventType;
use mart_integration_tests::broker::{broker, Received};
use mart_integration_tests::{app_manifest_with, eventually, Host};
use saga_support::*;

/// Generous for a loaded 2-core machine: a restarted host rejoins its groups.
const SAGA: Duration = Duration::from_secs(180);

/// spin.toml with `formats` as `outbox.formats`.
fn app_with_formats(formats: &[(&str, &str)]) -> String {
    let manifest = app_manifest_with("formats", |manifest| {
        let outbox = manifest["application"]["trigger"]["kafka"]["outbox"]
            .as_table_mut()
            .unwrap();
        let table: toml::Table = formats
            .iter()
            .map(|(db, format)| (db.to_string(), toml::Value::from(*format)))
            .collect();
        outbox.insert("formats".into(), table.into());
    });
    manifest.display().to_string()
}

/// The records about `order` on `topic` once `types` all arrived, in order.
fn records_of(topic: &str, order: &str, types: &[EventType]) -> Vec<Received> {
    let about = |r: &Received| r.key.as_deref() == Some(order);
    let records = broker().read_until(topic, &format!("{types:?} of {order}"), SAGA, |all| {
        types
            .iter()
            .all(|t| all.iter().any(|r| about(r) && r.event().event_type() == *t))
    });
    records.into_iter().filter(about).collect()
}

fn content_types(records: &[Received]) -> Vec<&str> {
    let mut types: Vec<&str> = records
        .iter()
        .map(|r| r.header("content-type").unwrap_or("none"))
        .collect();
    types.dedup();
    types
}

#[test]
fn services_switch_to_protobuf_and_every_consumer_follows() {
    let identity = [("MART_KAFKA_INSTANCE_ID", "formats-test-host".to_string())];

    // Before: every service writes JSON.
    let mut before_switch = Host::start("spin.toml", &identity);
    let user = customer(&before_switch);
    let item = product(&before_switch, 900, 20);
    let before = place_items(&before_switch, &user, &item, 1, "tok_visa");
    wait_for_within(SAGA, &before_switch, &user, &before, "paid");
    // Its events are on the topic (relayed as JSON) before the switch.
    records_of(
        "mart.orders",
        &before,
        &[EventType::OrderPlaced, EventType::OrderPaid],
    );
    before_switch.terminate(Duration::from_secs(90));

    // After: orders and inventory write Protobuf in binary mode, payments
    // whole CloudEvents in the Protobuf format; users and catalog stay JSON.
    let app = app_with_formats(&[
        ("orders", "application/protobuf"),
        ("inventory", "application/protobuf"),
        ("payments", "application/cloudevents+protobuf"),
    ]);
    let host = Host::start(&app, &identity);
    let after = place_items(&host, &user, &item, 2, "tok_visa");
    let paid = wait_for_within(SAGA, &host, &user, &after, "paid");
    assert_paths(
        &paid,
        &[&["pending", "reserved", "paid"], &["pending", "paid"]],
    );
    eventually(SAGA, "3 units committed, none reserved", || {
        (stock(&host, &item) == (17, 0)).then_some(())
    });

    // The order paid under JSON moves on under Protobuf: its order.shipped
    // goes out as Protobuf and the notifications handler tells the buyer.
    set_order_status(&host, &before, "shipped");
    eventually(SAGA, "the order_shipped notification", || {
        let notes = host.get_as(&user, "/notifications").json();
        notes["items"]
            .as_array()?
            .iter()
            .any(|n| n["kind"] == "order_shipped")
            .then_some(())
    });

    // What went over the wire, per topic: one order's events in one format
    // each side of the switch.
    let orders_before = records_of(
        "mart.orders",
        &before,
        &[
            EventType::OrderPlaced,
            EventType::OrderPaid,
            EventType::OrderShipped,
        ],
    );
    let (json, protobuf): (Vec<Received>, Vec<Received>) = orders_before
        .into_iter()
        .partition(|r| r.event().event_type() != EventType::OrderShipped);
    assert_eq!(content_types(&json), ["application/json"]);
    assert_eq!(content_types(&protobuf), ["application/protobuf"]);

    let orders_after = records_of(
        "mart.orders",
        &after,
        &[EventType::OrderPlaced, EventType::OrderPaid],
    );
    assert_eq!(content_types(&orders_after), ["application/protobuf"]);
    assert!(
        orders_after.iter().all(|r| r.header("ce_id").is_some()),
        "binary mode: attributes in headers"
    );
    let inventory_after = records_of("mart.inventory", &after, &[EventType::InventoryReserved]);
    assert_eq!(content_types(&inventory_after), ["application/protobuf"]);
    let payments_after = records_of("mart.payments", &after, &[EventType::PaymentSucceeded]);
    assert_eq!(
        content_types(&payments_after),
        ["application/cloudevents+protobuf"]
    );
    for record in &payments_after {
        assert!(
            record.headers.iter().all(|(k, _)| !k.starts_with("ce_")),
            "structured mode: attributes inside the value, {record:?}"
        );
        let event = record.event();
        assert_eq!(event.subject, after);
        assert_eq!(event.source, "/mart/payments");
    }
}
