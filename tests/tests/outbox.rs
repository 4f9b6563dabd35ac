//! The outbox relay end to end: writes through the real catalog component,
//! a broker that goes away and comes back, every event arriving in order.

use std::collections::HashMap;
use std::time::Duration;

use mart_integration_tests::broker::{broker, Broker};
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

/// The app's manifest with `[application.trigger.kafka] outbox` changed:
/// `databases` relayed, `processed_events` pruned.
fn manifest_with_outbox(name: &str, databases: &[&str], processed_events: &[&str]) -> String {
    let path = mart_integration_tests::app_manifest_with(name, |m| {
        let outbox = m["application"]["trigger"]["kafka"]["outbox"]
            .as_table_mut()
            .unwrap();
        let list = |names: &[&str]| {
            toml::Value::Array(names.iter().map(|n| toml::Value::from(*n)).collect())
        };
        outbox.insert("databases".into(), list(databases));
        outbox.insert("processed_events".into(), list(processed_events));
    });
    path.display().to_string()
}

/// A database with event handlers but no outbox (carts, notifications) is
/// not an outbox database: listed as one, the host refuses to start,
/// naming it, instead of polling it for ever (issue 27).
#[test]
fn an_outbox_database_without_an_outbox_is_refused_at_start() {
    use mart_integration_tests::{free_port, repo_root, JWT_PRIVATE_KEY, JWT_PUBLIC_KEY};
    let manifest = manifest_with_outbox("outbox-carts", &["carts"], &[]);
    let mut up = std::process::Command::new(mart_integration_tests::mart_bin())
        .current_dir(repo_root())
        .args(["up", "--from", &manifest])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--cache-dir")
        .arg(repo_root().join("target/mart-test-cache"))
        .env("MART_DATABASE_URL", postgres().server_url())
        .env("MART_KAFKA_BROKERS", broker().bootstrap())
        .env("SPIN_VARIABLE_PG_PORT", postgres().port.to_string())
        .env("SPIN_VARIABLE_JWT_PRIVATE_KEY", JWT_PRIVATE_KEY)
        .env("SPIN_VARIABLE_JWT_PUBLIC_KEY", JWT_PUBLIC_KEY)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let exited = loop {
        if let Some(status) = up.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = up.kill();
            let _ = up.wait();
            panic!("mart up started with an outbox database that has no outbox");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut up.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!exited.success(), "{stderr}");
    assert!(
        stderr.contains("outbox.databases lists database `carts`, which has no `outbox` table"),
        "{stderr}"
    );
}

/// The handlers' processed-event records in databases without an outbox
/// are pruned after the retention like any other (issue 27): retention is
/// not the relay's, and needs no outbox.
#[test]
fn processed_events_are_pruned_in_databases_without_an_outbox() {
    let old_event = |db: &str| {
        let id = mart_integration_tests::unique("old-event");
        postgres().query(
            db,
            &format!(
                "INSERT INTO processed_events (consumer, event_id, processed_at) \
                 VALUES ('test', '{id}', now() - interval '30 days') RETURNING event_id"
            ),
        );
        id
    };
    let kept = |db: &str, id: &str| -> i64 {
        postgres().query(
            db,
            &format!("SELECT count(*) FROM processed_events WHERE event_id = '{id}'"),
        )[0]
        .get(0)
    };
    let carts = old_event("carts");
    let notifications = old_event("notifications");
    // Relaying no outbox (the other test of this binary relays catalog to
    // a broker of its own); only the retention runs, at start.
    let manifest = manifest_with_outbox("outbox-retention", &[], &["carts", "notifications"]);
    let _host = Host::start(&manifest, &[]);
    eventually(WAIT, "old processed events to be pruned", || {
        (kept("carts", &carts) == 0 && kept("notifications", &notifications) == 0).then_some(())
    });
}
