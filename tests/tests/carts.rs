//! Carts through the real host: prices from the catalog and stock from
//! inventory via service chaining, owner-only access, closed carts.

mod saga_support;

use mart_domain::auth::Role;
use mart_integration_tests::{admin_token, postgres, token, Host};
use saga_support::stocked_product;
use serde_json::{json, Value};

fn host() -> Host {
    Host::start("spin.toml", &[])
}

fn new_id() -> String {
    postgres().query("postgres", "SELECT gen_random_uuid()::text")[0].get(0)
}

/// A product in the catalog with `stock` units in inventory.
fn product(host: &Host, name: &str, price: i64, stock: i32) -> String {
    let body = json!({ "name": name, "price_minor": price, "currency": "EUR" });
    stocked_product(host, &body, Some(stock))
}

fn customer() -> String {
    token(&new_id(), Role::Customer)
}

fn new_cart(host: &Host, who: &str) -> String {
    let r = host.send_json_as(who, "POST", "/carts", &json!({}));
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

fn add(host: &Host, who: &str, cart: &str, product: &str, quantity: i64) -> (u16, Value) {
    let r = host.send_json_as(
        who,
        "POST",
        &format!("/carts/{cart}/items"),
        &json!({ "product_id": product, "quantity": quantity }),
    );
    (r.status, r.json())
}

#[test]
fn lines_carry_prices_and_totals() {
    let host = host();
    let mug = product(&host, "Mug", 1299, 10);
    let pot = product(&host, "Pot", 650, 10);
    let me = customer();
    let cart = new_cart(&host, &me);

    let (status, body) = add(&host, &me, &cart, &mug, 2);
    assert_eq!(status, 200, "{body}");
    let (_, body) = add(&host, &me, &cart, &pot, 1);
    let (_, body2) = add(&host, &me, &cart, &mug, 1);
    assert_eq!(body["total_minor"], 2 * 1299 + 650);
    let lines = body2["lines"].as_array().unwrap();
    assert_eq!(lines[0]["quantity"], 3, "adding again increments");
    assert_eq!(lines[0]["unit_price_minor"], 1299);
    assert_eq!(lines[0]["line_total_minor"], 3 * 1299);
    assert_eq!(lines[0]["name"], "Mug");
    assert_eq!(body2["total_minor"], 3 * 1299 + 650);
    assert_eq!(body2["currency"], "EUR");

    let r = host.send_json_as(
        &me,
        "PUT",
        &format!("/carts/{cart}/items/{pot}"),
        &json!({ "quantity": 4 }),
    );
    assert_eq!(r.json()["total_minor"], 3 * 1299 + 4 * 650);
    let r = host.request(
        "DELETE",
        &format!("/carts/{cart}/items/{mug}"),
        &[("authorization", &format!("Bearer {me}"))],
        None,
    );
    assert_eq!(r.json()["total_minor"], 4 * 650);
    let r = host.request(
        "DELETE",
        &format!("/carts/{cart}"),
        &[("authorization", &format!("Bearer {me}"))],
        None,
    );
    assert_eq!(r.json()["lines"].as_array().unwrap().len(), 0);
    assert_eq!(
        host.get_as(&me, &format!("/carts/{cart}")).json()["total_minor"],
        0
    );
}

#[test]
fn bad_quantities_unknown_products_and_short_stock() {
    let host = host();
    let mug = product(&host, "Mug", 100, 3);
    let me = customer();
    let cart = new_cart(&host, &me);
    for quantity in [0, -1, 1001] {
        let (status, body) = add(&host, &me, &cart, &mug, quantity);
        assert_eq!(status, 422, "{quantity}: {body}");
        assert_eq!(body["errors"][0]["field"], "quantity");
    }
    let (status, body) = add(&host, &me, &cart, &mug, i64::from(i32::MAX) + 1);
    assert_eq!(status, 422, "{body}");
    let (status, _) = add(&host, &me, &cart, &new_id(), 1);
    assert_eq!(status, 404, "unknown product");
    let (status, body) = add(&host, &me, &cart, "not-a-uuid", 1);
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("product_id"))
    );
    let (status, body) = add(&host, &me, &cart, &mug, 4);
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("only 3"),
        "{body}"
    );
    assert_eq!(add(&host, &me, &cart, &mug, 3).0, 200);
    assert_eq!(
        add(&host, &me, &cart, &mug, 1).0,
        409,
        "the cart's own quantity counts"
    );
}

#[test]
fn only_the_owner_or_an_admin_sees_a_cart() {
    let host = host();
    let me = customer();
    let cart = new_cart(&host, &me);
    let other = customer();
    let p = host.get_as(&other, &format!("/carts/{cart}")).problem(404);
    assert!(p["detail"].as_str().unwrap().contains(&cart));
    host.send_json_as(
        &other,
        "POST",
        &format!("/carts/{cart}/items"),
        &json!({ "product_id": new_id(), "quantity": 1 }),
    )
    .problem(404);
    assert_eq!(
        host.get_as(&admin_token(), &format!("/carts/{cart}"))
            .status,
        200
    );
    host.get(&format!("/carts/{cart}")).problem(401);
    host.get_as(&me, &format!("/carts/{}", new_id()))
        .problem(404);
}

#[test]
fn a_checked_out_cart_is_closed() {
    let host = host();
    let mug = product(&host, "Mug", 100, 5);
    let me = customer();
    let cart = new_cart(&host, &me);
    assert_eq!(add(&host, &me, &cart, &mug, 1).0, 200);
    postgres().query(
        "carts",
        &format!("UPDATE carts SET status = 'checked_out' WHERE id = '{cart}'"),
    );
    assert_eq!(add(&host, &me, &cart, &mug, 1).0, 409);
    host.request(
        "DELETE",
        &format!("/carts/{cart}"),
        &[("authorization", &format!("Bearer {me}"))],
        None,
    )
    .problem(409);
    assert_eq!(
        host.get_as(&me, &format!("/carts/{cart}")).json()["status"],
        "checked_out"
    );
}
