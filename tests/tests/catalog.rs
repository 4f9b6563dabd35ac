//! The product catalog through the real host and PostgreSQL.

use mart_domain::auth::Role;
use mart_integration_tests::{admin_token, token, Host, Resp};
use serde_json::{json, Value};

fn host() -> Host {
    Host::start("spin.toml", &[])
}

/// A category no other test uses, so parallel tests see only their products.
fn unique_category() -> String {
    mart_integration_tests::unique("t")
}

fn product(name: &str, category: &str, price: i64) -> Value {
    json!({ "name": name, "description": "test item", "category": category, "price_minor": price, "currency": "EUR" })
}

fn create(host: &Host, body: &Value) -> Value {
    let r = host.send_json_as(&admin_token(), "POST", "/products", body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

#[test]
fn create_read_update_delete() {
    let host = host();
    let category = unique_category();
    let admin = admin_token();
    let r = host.send_json_as(
        &admin,
        "POST",
        "/products",
        &product("  Teapot ", &category, 2500),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.content_type, "application/json");
    let created = r.json();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("/products/{id}").as_str())
    );
    assert_eq!(created["name"], "Teapot", "names are trimmed");
    assert_eq!(created["price_minor"], 2500);
    assert_eq!(created["currency"], "EUR");

    let fetched = host.get(&format!("/products/{id}"));
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.json(), created);

    let updated = host.send_json_as(
        &admin,
        "PUT",
        &format!("/products/{id}"),
        &product("Big teapot", &category, 3100),
    );
    assert_eq!(updated.status, 200, "{}", updated.text());
    assert_eq!(updated.json()["name"], "Big teapot");
    assert_eq!(
        host.get(&format!("/products/{id}")).json()["price_minor"],
        3100
    );

    let bearer = format!("Bearer {admin}");
    let delete = |path: &str| host.request("DELETE", path, &[("authorization", &bearer)], None);
    assert_eq!(delete(&format!("/products/{id}")).status, 204);
    host.get(&format!("/products/{id}")).problem(404);
    delete(&format!("/products/{id}")).problem(404);

    // Every change went out through the outbox, in order, once.
    let events = mart_integration_tests::postgres().query(
        "catalog",
        &format!("SELECT event_type, payload->>'name' FROM outbox WHERE aggregate_id = '{id}' ORDER BY seq"),
    );
    let events: Vec<(String, Option<String>)> =
        events.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        events,
        [
            ("product.created".to_string(), Some("Teapot".to_string())),
            (
                "product.updated".to_string(),
                Some("Big teapot".to_string())
            ),
            ("product.deleted".to_string(), None),
        ]
    );
    host.send_json_as(
        &admin,
        "PUT",
        &format!("/products/{id}"),
        &product("Gone", &category, 1),
    )
    .problem(404);
}

#[test]
fn list_filters_and_pages_with_a_cursor() {
    let host = host();
    let category = unique_category();
    for (name, price) in [
        ("Cup E", 5),
        ("Cup A", 1),
        ("Cup D", 4),
        ("Plate B", 2),
        ("Cup C", 3),
    ] {
        create(&host, &product(name, &category, price));
    }
    let page = |query: &str| -> Value {
        let r = host.get(&format!("/products?category={category}{query}"));
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };

    let all = page("");
    assert_eq!(
        names(&all),
        ["Cup A", "Cup C", "Cup D", "Cup E", "Plate B"],
        "sorted by name"
    );
    assert!(all["next_cursor"].is_null());

    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let p = page(&format!("&limit=2{cursor}"));
        seen.extend(names(&p));
        match p["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, names(&all), "cursor pages cover everything once");

    assert_eq!(names(&page("&offset=3")), ["Cup E", "Plate B"]);
    assert_eq!(
        names(&page("&q=plate")),
        ["Plate B"],
        "q matches case-insensitively"
    );
    assert_eq!(names(&page("&q=CUP+c")), ["Cup C"], "form-encoded spaces");
    assert_eq!(
        names(&page("&q=%27%3B+DROP+TABLE+products%3B--")),
        Vec::<String>::new(),
        "SQL stays data"
    );
    assert_eq!(
        page("").as_object().unwrap()["items"]
            .as_array()
            .unwrap()
            .len(),
        5,
        "table still there"
    );
}

#[test]
fn bad_list_queries_are_422_naming_the_parameter() {
    let host = host();
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("cursor=garbage!", "cursor"),
        // A cursor that decodes but was tampered with: not a database error.
        ("cursor=WyJhIiwiMTsgRFJPUCJd", "cursor"),
        ("category=Not%20A%20Slug", "category"),
        ("colour=red", "colour"),
        // PostgreSQL cannot store NUL in text: the client's error, not ours.
        ("q=tea%00pot", "q"),
    ] {
        let problem = host.get(&format!("/products?{query}")).problem(422);
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }
}

#[test]
fn bad_bodies_get_precise_problems() {
    let host = host();
    let category = unique_category();
    let bearer = format!("Bearer {}", admin_token());
    let post = |body: &[u8], content_type: &str| -> Resp {
        host.request(
            "POST",
            "/products",
            &[("content-type", content_type), ("authorization", &bearer)],
            Some(body),
        )
    };
    post(b"{\"name\": \"x\",", "application/json").problem(400);
    post(b"", "application/json").problem(400);
    post(b"name=x", "application/x-www-form-urlencoded").problem(415);

    let cases = [
        (
            json!({"name": "x", "price_minor": "12", "currency": "EUR"}),
            "price_minor",
        ),
        (
            json!({"name": "x", "price_minor": 1.5, "currency": "EUR"}),
            "price_minor",
        ),
        (
            json!({"name": "x", "price_minor": -1, "currency": "EUR"}),
            "price_minor",
        ),
        (
            json!({"name": "x", "price_minor": 1, "currency": "EUR", "colour": "red"}),
            "colour",
        ),
        (json!({"price_minor": 1, "currency": "EUR"}), "name"),
        (
            json!({"name": "", "price_minor": 1, "currency": "EUR"}),
            "name",
        ),
        (
            json!({"name": "x", "price_minor": 1, "currency": "USD"}),
            "currency",
        ),
        (
            json!({"name": "x", "price_minor": 1, "currency": "EUR", "category": "Bad Cat"}),
            "category",
        ),
        (
            json!({"name": "x".repeat(201), "price_minor": 1, "currency": "EUR"}),
            "name",
        ),
    ];
    let admin = admin_token();
    for (body, field) in cases {
        let problem = host
            .send_json_as(&admin, "POST", "/products", &body)
            .problem(422);
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }

    let huge = json!({"name": "x", "description": "y".repeat(100_000), "price_minor": 1, "currency": "EUR"});
    host.send_json_as(&admin, "POST", "/products", &huge)
        .problem(413);

    // Nothing above was written.
    let listed = host.get(&format!("/products?category={category}")).json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 0);
}

#[test]
fn unknown_ids_and_methods() {
    let host = host();
    host.get("/products/00000000-0000-4000-8000-00000000dead")
        .problem(404);
    host.get("/products/not-a-uuid").problem(404);
    host.get("/products/1;DROP").problem(404);
    // RFC 9110: a 405 names what the resource accepts.
    // Methods the collection does not take, PUT and DELETE among them
    // (which the item takes: the collection is not an item with no id).
    for method in ["PATCH", "PUT", "DELETE"] {
        let r = host.request(method, "/products", &[], None);
        r.problem(405);
        assert_eq!(r.header("allow"), Some("GET, POST"), "{method}");
    }
    let r = host.request("PUT", "/inventory/reservations", &[], None);
    r.problem(405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = host.request(
        "TRACE",
        "/products/00000000-0000-4000-8000-00000000dead",
        &[],
        None,
    );
    r.problem(405);
    assert_eq!(r.header("allow"), Some("GET, PUT, DELETE"));
}

#[test]
fn text_with_nul_characters_is_the_clients_error() {
    let host = host();
    let body = product("tea\u{0}pot", &unique_category(), 100);
    let problem = host
        .send_json_as(&admin_token(), "POST", "/products", &body)
        .problem(422);
    assert_eq!(problem["errors"][0]["field"], "name", "{problem}");
}

#[test]
fn writes_need_an_admin_token() {
    let host = host();
    let body = product("Kettle", &unique_category(), 100);
    let p = host.send_json("POST", "/products", &body).problem(401);
    assert!(p["detail"]
        .as_str()
        .unwrap()
        .contains("missing bearer token"));
    let customer = token("00000000-0000-4000-8000-00000000c0c0", Role::Customer);
    host.send_json_as(&customer, "POST", "/products", &body)
        .problem(403);
    let forged = mart_domain::auth::Signer::new(
        mart_integration_tests::JWT_OTHER_PRIVATE_KEY,
        "mart-1",
        "mart",
        900,
    )
    .unwrap()
    .sign("x", Role::Admin, 0, mart_domain::auth::now())
    .unwrap();
    host.send_json_as(&forged, "POST", "/products", &body)
        .problem(401);
    let r = host.send_json(
        "DELETE",
        "/products/00000000-0000-4000-8000-000000000001",
        &serde_json::json!({}),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    host.get("/no-such-route").problem(404);
}

#[test]
fn a_product_shows_a_picture_from_this_site_or_https_only() {
    let host = host();
    let mut body = product("Lamp", &unique_category(), 900);
    let created = create(&host, &body);
    assert_eq!(created["image_url"], Value::Null, "none unless given");

    body["image_url"] = json!("/shop/images/lamp.svg");
    let created = create(&host, &body);
    assert_eq!(created["image_url"], "/shop/images/lamp.svg");
    let id = created["id"].as_str().unwrap();
    assert_eq!(host.get(&format!("/products/{id}")).json(), created);

    for refused in [
        "javascript:alert(1)",
        "http://cdn.example.com/l.png",
        "//cdn.example.com/l.png",
    ] {
        body["image_url"] = json!(refused);
        let r = host.send_json_as(&admin_token(), "POST", "/products", &body);
        let problem = r.problem(422);
        assert_eq!(
            problem["errors"][0]["field"], "image_url",
            "{refused}: {problem}"
        );
    }
}
