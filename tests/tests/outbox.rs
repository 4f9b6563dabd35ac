//! The outbox relay end to end: writes through the real catalog component,
//! a broker that goes away and comes back, every event arriving in order.

use std::collections::HashMap;
use std::time::Duration;

use mart_integration_tests::broker::Broker;
use mart_integration_tests::{admin_token, eventually, postgres, Host};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);

fn create_product(host: &Host, name: &str) -> String {
    let body = json!({"name": name, "description": "d", "category": "outbox", "price_minor": 100, "currency": "EUR"});
    let r = host.send_json_as(&admin_token(), "POST", "/products", &body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

fn rename(host: &Host, id: &str, name: &str) {
    let body = json!({"name": name, "description": "d", "category": "outbox", "price_minor": 100, "currency": "EUR"});
    let r = host.send_json_as(&admin_token(), "PUT", &format!("/products/{id}"), &body);
    assert_eq!(r.status, 200, "{}", r.text());
}

fn unsent() -> i64 {
    postgres().query(
        "catalog",
        "SELECT count(*) FROM outbox WHERE sent_at IS NULL",
    )[0]
    .get(0)
}

#[test]
fn events_survive_a_broker_outage_and_keep_their_order() {
    let broker = Broker::start_new();
    let host = Host::start("spin.toml", &[("MART_KAFKA_BROKERS", broker.bootstrap())]);
    let mut products = Vec::new();
    for i in 0..5 {
        products.push(create_product(&host, &format!("before-{i}")));
    }
    eventually(WAIT, "the relay to publish the first events", || {
        (unsent() == 0).then_some(())
    });

    broker.stop();
    // Writes go on while the broker is away: the outbox holds the events.
    for i in 0..5 {
        products.push(create_product(&host, &format!("during-{i}")));
    }
    for round in 0..3 {
        for id in &products[..3] {
            rename(&host, id, &format!("renamed-{round}"));
        }
    }
    assert!(unsent() >= 14, "events were marked sent without a broker");
    broker.start();
    eventually(
        WAIT,
        "the outbox to drain after the broker came back",
        || (unsent() == 0).then_some(()),
    );

    let expected: Vec<(String, String, String)> = postgres()
        .query(
            "catalog",
            // This test binary has the cluster to itself: every event is ours.
            "SELECT id::text, aggregate_id, event_type FROM outbox ORDER BY seq",
        )
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(expected.len(), 19, "{expected:?}");
    let received = broker.read("mart.catalog", expected.len(), WAIT);

    // Nothing lost: every event id arrived (duplicates would be allowed).
    let by_id: HashMap<&str, _> = received
        .iter()
        .map(|r| (r.header("ce_id").unwrap(), r))
        .collect();
    for (id, aggregate, event_type) in &expected {
        let record = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("event {id} was lost"));
        assert_eq!(record.key.as_deref(), Some(aggregate.as_str()));
        assert_eq!(record.header("ce_type"), Some(event_type.as_str()));
        assert_eq!(record.header("ce_source"), Some("/mart/catalog"));
        assert_eq!(record.header("ce_specversion"), Some("1.0"));
        assert_eq!(record.header("content-type"), Some("application/json"));
    }
    // Per aggregate, the broker holds the events in the order they were written.
    for product in &products {
        let written: Vec<&str> = expected
            .iter()
            .filter(|(_, a, _)| a == product)
            .map(|(id, _, _)| id.as_str())
            .collect();
        let mut arrived: Vec<_> = received
            .iter()
            .filter(|r| r.key.as_deref() == Some(product.as_str()))
            .collect();
        arrived.sort_by_key(|r| (r.partition, r.offset));
        let mut seen = Vec::new();
        for r in arrived {
            let id = r.header("ce_id").unwrap();
            if !seen.contains(&id) {
                seen.push(id);
            }
        }
        assert_eq!(seen, written, "events of product {product} out of order");
    }

    let metrics = host.metrics();
    assert!(
        metrics
            .contains("mart_outbox_published_total{database=\"catalog\",type=\"product.created\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mart_outbox_backlog{database=\"catalog\"} 0"),
        "{metrics}"
    );

    // Sent rows are pruned after the retention period (0 hours here): the
    // next relay to take over the database prunes as it starts.
    drop(host);
    let _pruner = Host::start(
        "spin.toml",
        &[
            ("MART_KAFKA_BROKERS", broker.bootstrap()),
            ("MART_EVENT_RETENTION_HOURS", "0".into()),
        ],
    );
    eventually(WAIT, "sent outbox rows to be pruned", || {
        let sent: i64 = postgres().query(
            "catalog",
            "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL",
        )[0]
        .get(0);
        (sent == 0).then_some(())
    });
}
