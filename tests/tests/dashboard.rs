//! The order-tracking dashboard and the docs page in a real browser, and the
//! API the dashboard reads (`/orders/summary`, `/orders/activity`), which
//! follows the same visibility rules as the rest of the orders API.
//!
//! The browser part runs tests/browser/dashboard.mjs (playwright-core driving
//! Debian's Chromium; `make browser` installs both) against the real host,
//! PostgreSQL and the broker. Screenshots land in target/test-artifacts/.

mod saga_support;

use std::time::Duration;

use mart_integration_tests::{admin_token, browser, eventually};
use saga_support::*;
use serde_json::json;

const BROWSER_TIMEOUT: Duration = Duration::from_secs(600);

#[test]
fn the_dashboard_shows_a_new_order_turn_paid_without_a_reload() {
    let host = shared_host();
    let product = product(host, 1299, 5);
    let email = format!("{}@example.com", unique("watcher"));
    let password = "dashboard watcher pass";
    let r = host.send_json(
        "POST",
        "/users",
        &json!({"email": email, "name": "Watcher", "password": password}),
    );
    assert_eq!(r.status, 201, "{}", r.text());

    let run = browser::run_script(
        "dashboard.mjs",
        &[
            ("MART_URL", host.base.clone()),
            ("MART_EMAIL", email),
            ("MART_PASSWORD", password.to_string()),
            ("MART_PRODUCT_ID", product),
        ],
        BROWSER_TIMEOUT,
    );
    assert!(
        run.output.contains("the order turned paid on the page"),
        "{}",
        run.output
    );
    run.assert_screenshots(&["dashboard.png", "docs.png"]);
}

#[test]
fn summary_and_activity_cover_the_callers_orders_and_everything_for_an_admin() {
    let host = shared_host();
    let product = product(host, 500, 20);
    let alice = customer(host);
    let bob = customer(host);
    let paid = place_items(host, &alice, &product, 1, "tok_visa");
    let declined = place_items(host, &alice, &product, 1, "tok_chargeDeclined");
    let bobs = place_items(host, &bob, &product, 1, "tok_visa");
    wait_for(host, &alice, &paid, "paid");
    wait_for(host, &alice, &declined, "cancelled");
    wait_for(host, &bob, &bobs, "paid");

    let summary = host.get_as(&alice, "/orders/summary").json();
    assert_eq!(summary["total"], 2, "{summary}");
    assert_eq!(summary["counts"]["paid"], 1, "{summary}");
    assert_eq!(summary["counts"]["cancelled"], 1, "{summary}");
    assert_eq!(summary["counts"]["shipped"], 0, "every status is listed");
    assert_eq!(summary["counts"].as_object().unwrap().len(), 7);

    let activity = host.get_as(&alice, "/orders/activity?limit=100").json();
    let items = activity["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .all(|i| i["order_id"] == paid || i["order_id"] == declined),
        "alice sees only her own orders' events: {activity}"
    );
    let cancellation = items
        .iter()
        .find(|i| i["order_id"] == declined && i["status"] == "cancelled")
        .expect("the cancellation is an event");
    assert!(
        cancellation["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("payment declined")),
        "{cancellation}"
    );
    let times: Vec<&str> = items.iter().map(|i| i["at"].as_str().unwrap()).collect();
    let mut newest_first = times.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, newest_first, "newest first");

    // An admin sees everyone's orders, Bob's included.
    let all = eventually(Duration::from_secs(60), "admin summary", || {
        let s = host.get_as(&admin_token(), "/orders/summary").json();
        (s["total"].as_i64()? >= 3).then_some(s)
    });
    assert!(all["counts"]["paid"].as_i64().unwrap() >= 2, "{all}");
    let feed = host
        .get_as(&admin_token(), "/orders/activity?limit=100")
        .json();
    assert!(
        feed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["order_id"] == bobs),
        "{feed}"
    );

    let bad = host.get_as(&alice, "/orders/activity?limit=0");
    let problem = bad.problem(422);
    assert!(problem.to_string().contains("limit"), "{problem}");
    host.get_as(&alice, "/orders/summary?user_id=x")
        .problem(422);
    assert_eq!(host.get("/orders/summary").status, 401);
}
