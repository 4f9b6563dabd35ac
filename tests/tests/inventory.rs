//! Inventory through the real host and PostgreSQL: stock, audit trail,
//! all-or-nothing idempotent reservations, and no overselling under load.

mod saga_support;

use mart_domain::auth::Role;
use mart_integration_tests::{admin_token, http, postgres, token, Host};
use saga_support::set_stock;
use serde_json::{json, Value};

fn host() -> Host {
    Host::start("spin.toml", &[])
}

fn new_id() -> String {
    let row = postgres().query("postgres", "SELECT gen_random_uuid()::text");
    row[0].get(0)
}

fn reserve(host: &Host, order: &str, lines: &[(&str, i32)]) -> (u16, Value) {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(p, q)| json!({ "product_id": p, "quantity": q }))
        .collect();
    let r = host.send_json_as(
        &admin_token(),
        "POST",
        "/inventory/reservations",
        &json!({ "order_id": order, "lines": lines }),
    );
    (r.status, r.json())
}

fn stock(host: &Host, product: &str) -> Value {
    host.get(&format!("/inventory/{product}")).json()
}

#[test]
fn stock_is_set_adjusted_and_audited_by_admins_only() {
    let host = host();
    let product = new_id();
    let item = set_stock(&host, &product, 10);
    assert_eq!(
        (item["on_hand"].as_i64(), item["available"].as_i64()),
        (Some(10), Some(10))
    );

    let admin = admin_token();
    let r = host.send_json_as(
        &admin,
        "POST",
        &format!("/inventory/{product}/adjustments"),
        &json!({ "delta": -3, "reason": "damaged in transit" }),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["on_hand"], 7);
    host.send_json_as(
        &admin,
        "POST",
        &format!("/inventory/{product}/adjustments"),
        &json!({ "delta": -8, "reason": "x" }),
    )
    .problem(409);
    assert_eq!(
        stock(&host, &product)["on_hand"],
        7,
        "a refused adjustment changes nothing"
    );

    let history = host
        .get_as(&admin, &format!("/inventory/{product}/adjustments"))
        .json();
    let entries = history["items"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["reason"], "damaged in transit");
    assert_eq!(entries[0]["delta"], -3);
    assert_eq!(entries[1]["delta"], 10);

    let customer = token("00000000-0000-4000-8000-00000000c0c0", Role::Customer);
    host.send_json_as(
        &customer,
        "PUT",
        &format!("/inventory/{product}"),
        &json!({ "on_hand": 1 }),
    )
    .problem(403);
    host.send_json(
        "PUT",
        &format!("/inventory/{product}"),
        &json!({ "on_hand": 1 }),
    )
    .problem(401);
    host.send_json_as(
        &admin,
        "PUT",
        &format!("/inventory/{product}"),
        &json!({ "on_hand": -1 }),
    )
    .problem(422);
    host.send_json_as(
        &admin,
        "POST",
        &format!("/inventory/{product}/adjustments"),
        &json!({ "delta": 0, "reason": "" }),
    )
    .problem(422);
    host.get(&format!("/inventory/{}", new_id())).problem(404);
    host.get("/inventory/not-a-uuid").problem(404);

    let other = new_id();
    set_stock(&host, &other, 4);
    let listed = host
        .get(&format!(
            "/inventory?product_ids={product},{other},{}",
            new_id()
        ))
        .json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    host.get("/inventory?product_ids=nope").problem(422);
    host.get("/inventory").problem(422);
}

#[test]
fn reservations_are_all_or_nothing_and_idempotent() {
    let host = host();
    let (a, b) = (new_id(), new_id());
    set_stock(&host, &a, 5);
    set_stock(&host, &b, 1);

    let short_order = new_id();
    let (status, body) = reserve(&host, &short_order, &[(&a, 2), (&b, 2)]);
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"].as_str().unwrap().contains(&b));
    assert_eq!(
        stock(&host, &a)["reserved"],
        0,
        "nothing reserved when one line is short"
    );

    let order = new_id();
    let (status, body) = reserve(&host, &order, &[(&a, 2), (&b, 1), (&a, 1)]);
    assert_eq!(status, 201, "{body}");
    assert_eq!(stock(&host, &a)["reserved"], 3, "repeated lines are merged");
    assert_eq!(stock(&host, &b)["available"], 0);
    let (again, _) = reserve(&host, &order, &[(&a, 2), (&b, 1), (&a, 1)]);
    assert_eq!(again, 200, "a retry reserves nothing more");
    assert_eq!(stock(&host, &a)["reserved"], 3);

    let admin = admin_token();
    let release = |o: &str| {
        host.send_json_as(
            &admin,
            "POST",
            &format!("/inventory/reservations/{o}/release"),
            &json!({}),
        )
    };
    let commit = |o: &str| {
        host.send_json_as(
            &admin,
            "POST",
            &format!("/inventory/reservations/{o}/commit"),
            &json!({}),
        )
    };
    assert_eq!(release(&order).status, 200);
    assert_eq!(release(&order).status, 200, "releasing twice is fine");
    assert_eq!(stock(&host, &a)["reserved"], 0);
    commit(&order).problem(409);

    let order2 = new_id();
    assert_eq!(reserve(&host, &order2, &[(&a, 2)]).0, 201);
    assert_eq!(commit(&order2).status, 200);
    assert_eq!(commit(&order2).status, 200, "committing twice is fine");
    let after = stock(&host, &a);
    assert_eq!(
        (after["on_hand"].as_i64(), after["reserved"].as_i64()),
        (Some(3), Some(0))
    );
    release(&new_id()).problem(404);

    let events = postgres().query(
        "inventory",
        &format!("SELECT event_type FROM outbox WHERE aggregate_id IN ('{order}', '{order2}', '{short_order}') ORDER BY seq"),
    );
    let types: Vec<String> = events.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        types,
        [
            "inventory.rejected",
            "inventory.reserved",
            "inventory.released",
            "inventory.reserved",
            "inventory.committed"
        ]
    );
}

#[test]
fn concurrent_reservations_never_oversell() {
    let host = host();
    let product = new_id();
    set_stock(&host, &product, 10);
    let base = host.base.clone();
    let admin = admin_token();
    let workers: Vec<_> = (0..24)
        .map(|_| {
            let (base, admin, product, order) = (base.clone(), admin.clone(), product.clone(), new_id());
            std::thread::spawn(move || {
                let body = json!({ "order_id": order, "lines": [{ "product_id": product, "quantity": 1 }] });
                match http().post(&format!("{base}/inventory/reservations"))
                    .set("authorization", &format!("Bearer {admin}"))
                    .send_json(body)
                {
                    Ok(r) => r.status(),
                    Err(ureq::Error::Status(code, _)) => code,
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    let statuses: Vec<u16> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        14,
        "{statuses:?}"
    );
    let after = stock(&host, &product);
    assert_eq!(
        (after["reserved"].as_i64(), after["available"].as_i64()),
        (Some(10), Some(0))
    );

    // The same order reserved from many threads at once counts once.
    let other = new_id();
    set_stock(&host, &other, 10);
    let order = new_id();
    let dupes: Vec<_> = (0..8)
        .map(|_| {
            let (base, admin, other, order) =
                (base.clone(), admin.clone(), other.clone(), order.clone());
            std::thread::spawn(move || {
                let body =
                    json!({ "order_id": order, "lines": [{ "product_id": other, "quantity": 3 }] });
                let _ = http()
                    .post(&format!("{base}/inventory/reservations"))
                    .set("authorization", &format!("Bearer {admin}"))
                    .send_json(body);
            })
        })
        .collect();
    dupes.into_iter().for_each(|d| d.join().unwrap());
    assert_eq!(stock(&host, &other)["reserved"], 3);
}
