//! The OpenAPI document (openapi/openapi.json) stays true to the app:
//! - its paths and spin.toml's HTTP routes cover each other;
//! - a scenario drives every documented operation through the real host,
//!   and every response (status, media type, body, documented headers) is
//!   validated against the document with a JSON Schema 2020-12 validator;
//!   every request the host accepted is validated against it too;
//! - the host serves the document itself at /openapi.json.

mod saga_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use mart_integration_tests::fake_http::FakeHttp;
use mart_integration_tests::{admin_token, eventually, repo_root, Host};
use saga_support::{unique, wait_for, WAIT};
use serde_json::{json, Value};

const WEBHOOK_SECRET: &str = "whsec_openapi_test";
const PAYFAST_MERCHANT: &str = "10000100";
const PAYFAST_PASSPHRASE: &str = "openapi passphrase";

/// PayFast's ITN validation, answering `VALID` to everything.
fn payfast_fake() -> FakeHttp {
    FakeHttp::start(|_, _| (200, json!("VALID")))
}

fn document() -> Value {
    let path = repo_root().join("openapi/openapi.json");
    serde_json::from_slice(&std::fs::read(&path).expect("openapi/openapi.json"))
        .expect("openapi/openapi.json is JSON")
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Every (METHOD, path template) the document describes.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut all = BTreeSet::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                all.insert((method.to_uppercase(), template.clone()));
            }
        }
    }
    all
}

/// Whether `path` (concrete) fits `template`; a trailing `{path}` takes the
/// rest of the path (static files in folders). More literal segments win.
fn template_score(template: &str, path: &str) -> Option<usize> {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    let mut literals = 0;
    for (i, segment) in t.iter().enumerate() {
        let is_param = segment.starts_with('{') && segment.ends_with('}');
        if *segment == "{path}" && i == t.len() - 1 {
            return (p.len() > i && p[i..].iter().any(|s| !s.is_empty())).then_some(literals);
        }
        let actual = p.get(i)?;
        if is_param {
            if actual.is_empty() {
                return None;
            }
        } else if segment != actual {
            return None;
        } else {
            literals += 1;
        }
    }
    (p.len() == t.len()).then_some(literals)
}

fn find_template<'d>(doc: &'d Value, path: &str) -> Option<&'d str> {
    doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter_map(|t| template_score(t, path).map(|score| (score, t)))
        .max_by_key(|(score, _)| *score)
        .map(|(_, t)| t.as_str())
}

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// A request made during the scenario.
struct Call<'a> {
    method: &'a str,
    path: &'a str,
    token: Option<&'a str>,
    body: Option<Value>,
    /// A form-encoded body instead of JSON (PayFast's ITN).
    form: Option<String>,
    headers: Vec<(&'a str, String)>,
}

/// Sends requests to the host and checks each answer against the document.
struct Conformance<'h> {
    host: &'h Host,
    doc: Value,
    agent: ureq::Agent,
    validators: Mutex<HashMap<String, jsonschema::Validator>>,
    /// Operations that answered with a documented success (2xx or 3xx).
    succeeded: Mutex<BTreeSet<(String, String)>>,
}

struct Answer {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl<'h> Conformance<'h> {
    fn new(host: &'h Host) -> Self {
        Self {
            host,
            doc: document(),
            // Redirects are answers to check, not to follow.
            agent: ureq::AgentBuilder::new()
                .redirects(0)
                .timeout(Duration::from_secs(60))
                .build(),
            validators: Mutex::new(HashMap::new()),
            succeeded: Mutex::new(BTreeSet::new()),
        }
    }

    fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Call {
            method: "GET",
            path,
            token,
            body: None,
            form: None,
            headers: Vec::new(),
        })
    }

    fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        self.call(Call {
            method,
            path,
            token,
            body,
            form: None,
            headers: Vec::new(),
        })
    }

    /// Sends `call`, then fails the test if the answer is not one the
    /// document describes for that operation.
    fn call(&self, call: Call<'_>) -> Answer {
        let answer = self.perform(&call);
        let what = format!("{} {}", call.method, call.path);
        if let Err(e) = self.check(&call, &answer) {
            panic!(
                "{what} answered {} in a way the document does not describe: {e}\nbody: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        answer
    }

    fn perform(&self, call: &Call<'_>) -> Answer {
        let mut request = self
            .agent
            .request(call.method, &format!("{}{}", self.host.base, call.path));
        if let Some(token) = call.token {
            request = request.set("authorization", &format!("Bearer {token}"));
        }
        for (name, value) in &call.headers {
            request = request.set(name, value);
        }
        let result = match (&call.body, &call.form) {
            (Some(body), _) => request
                .set("content-type", "application/json")
                .send_bytes(&serde_json::to_vec(body).unwrap()),
            (None, Some(form)) => request
                .set("content-type", "application/x-www-form-urlencoded")
                .send_bytes(form.as_bytes()),
            (None, None) => request.call(),
        };
        let response = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{} {}: {e}", call.method, call.path),
        };
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .map(|n| {
                let v = response.header(&n).unwrap_or_default().to_string();
                (n, v)
            })
            .collect();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut body).unwrap();
        Answer {
            status,
            body,
            headers,
        }
    }

    fn check(&self, call: &Call<'_>, answer: &Answer) -> Result<(), String> {
        let (path_only, query) = call.path.split_once('?').unwrap_or((call.path, ""));
        let template = find_template(&self.doc, path_only)
            .ok_or_else(|| format!("no path in the document matches {path_only}"))?;
        let method = call.method.to_lowercase();
        let op_pointer = format!("/paths/{}/{method}", escape_pointer(template));
        let op = self
            .doc
            .pointer(&op_pointer)
            .ok_or_else(|| format!("{} {template} is not documented", call.method))?;
        self.check_query(op, query)?;
        let status = answer.status.to_string();
        let response = op["responses"].get(&status).ok_or_else(|| {
            format!(
                "status {status} is not documented for {}",
                op["operationId"]
            )
        })?;
        let accepted = (200..400).contains(&answer.status);
        if accepted {
            if let Some(body) = &call.body {
                let schema = format!("{op_pointer}/requestBody/content/application~1json/schema");
                self.validate(&schema, body).map_err(|e| {
                    format!("the host accepted a request body the document forbids: {e}")
                })?;
            }
            self.succeeded
                .lock()
                .unwrap()
                .insert((call.method.to_string(), template.to_string()));
        }
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            if header["required"] == true && answer.header(name).is_none() {
                return Err(format!("the documented header {name} is missing"));
            }
        }
        let content = response["content"].as_object();
        if answer.body.is_empty() {
            return Ok(());
        }
        let content = content.ok_or("a body came back where none is documented")?;
        let media_type = answer
            .header("content-type")
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap()
            .trim()
            .to_string();
        let documented = content
            .get(&media_type)
            .or_else(|| content.get(&format!("{}/*", media_type.split('/').next().unwrap_or(""))))
            .or_else(|| content.get("*/*"))
            .ok_or_else(|| format!("media type {media_type} is not documented"))?;
        if media_type.ends_with("json") && documented.get("schema").is_some() {
            let body: Value = serde_json::from_slice(&answer.body)
                .map_err(|e| format!("the body is not JSON: {e}"))?;
            let pointer = format!(
                "{op_pointer}/responses/{status}/content/{}/schema",
                escape_pointer(&media_type)
            );
            self.validate(&pointer, &body)?;
        }
        Ok(())
    }

    /// Every query parameter sent is documented for the operation.
    fn check_query(&self, op: &Value, query: &str) -> Result<(), String> {
        let documented: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str())
            .collect();
        for (name, _) in form_urlencoded::parse(query.as_bytes()) {
            if !documented.contains(name.as_ref()) {
                return Err(format!("query parameter `{name}` is not documented"));
            }
        }
        Ok(())
    }

    /// Validates `instance` against the schema at `pointer` in the
    /// document; `$ref`s resolve within the document.
    fn validate(&self, pointer: &str, instance: &Value) -> Result<(), String> {
        let mut validators = self.validators.lock().unwrap();
        if !validators.contains_key(pointer) {
            if self.doc.pointer(pointer).is_none() {
                return Err(format!("the document has no schema at {pointer}"));
            }
            let mut root = self.doc.clone();
            root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
            // A fragment is a URI part: braces of path templates are escaped.
            let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
            root["$ref"] = json!(format!("#{fragment}"));
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(&root)
                .map_err(|e| format!("the schema at {pointer} does not compile: {e}"))?;
            validators.insert(pointer.to_string(), validator);
        }
        let errors: Vec<String> = validators[pointer]
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Fails naming every documented operation the scenario never got a
    /// success from.
    fn assert_every_operation_succeeded(&self) {
        let succeeded = self.succeeded.lock().unwrap();
        let missing: Vec<String> = operations(&self.doc)
            .into_iter()
            .filter(|op| !succeeded.contains(op))
            .map(|(m, p)| format!("{m} {p}"))
            .collect();
        assert!(
            missing.is_empty(),
            "documented operations the scenario never drove to success: {missing:#?}"
        );
    }
}

#[test]
fn the_document_and_spin_toml_cover_the_same_routes() {
    let doc = document();
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..4]), Some("3.1."));
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo_root().join("spin.toml")).unwrap()).unwrap();
    let routes: Vec<String> = manifest["trigger"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["route"].as_str().map(String::from))
        .collect();
    let templates: Vec<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();

    // Spin's matching: `/x/...` takes `/x` and everything under it.
    let route_takes = |route: &str, template: &str| match route.strip_suffix("/...") {
        Some(prefix) => template == prefix || template.starts_with(&format!("{prefix}/")),
        None => template == route,
    };
    let undocumented: Vec<&String> = routes
        .iter()
        .filter(|r| !templates.iter().any(|t| route_takes(r, t)))
        .collect();
    assert!(
        undocumented.is_empty(),
        "routes in spin.toml with no path in the document: {undocumented:?}"
    );
    let unrouted: Vec<&String> = templates
        .iter()
        .filter(|t| !routes.iter().any(|r| route_takes(r, t)))
        .collect();
    assert!(
        unrouted.is_empty(),
        "paths in the document no route in spin.toml serves: {unrouted:?}"
    );

    // Operation ids are unique, and every operation says who may call it.
    let mut ids = BTreeMap::new();
    for (method, template) in operations(&doc) {
        let op = &doc["paths"][&template][method.to_lowercase()];
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {template}: no operationId"));
        if let Some(other) = ids.insert(id.to_string(), format!("{method} {template}")) {
            panic!("operationId {id} is used by {other} and {method} {template}");
        }
        assert!(
            op.get("security").is_some() || doc.get("security").is_some(),
            "{method} {template}: no security requirement"
        );
    }
}

#[test]
fn template_matching_prefers_literal_segments() {
    let doc = document();
    assert_eq!(
        find_template(&doc, "/orders/summary"),
        Some("/orders/summary")
    );
    assert_eq!(
        find_template(&doc, "/orders/0b6f5c1e-8d7a-4b8e-9a43-1f0c8a1d2e3f"),
        Some("/orders/{order_id}")
    );
    assert_eq!(find_template(&doc, "/docs/a/b.css"), Some("/docs/{path}"));
    assert_eq!(find_template(&doc, "/docs"), Some("/docs"));
    assert_eq!(find_template(&doc, "/orders/x/y/z"), None);
}

#[test]
fn every_documented_operation_answers_as_documented() {
    // Prices in rand, so that every provider (PayFast is ZAR-only) runs.
    let payfast = payfast_fake();
    let host = Host::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
            ("SPIN_VARIABLE_SHOP_CURRENCY", "ZAR".into()),
            ("SPIN_VARIABLE_PAYMENT_PROVIDERS", "fake,payfast".into()),
            ("SPIN_VARIABLE_PAYFAST_MERCHANT_ID", PAYFAST_MERCHANT.into()),
            ("SPIN_VARIABLE_PAYFAST_MERCHANT_KEY", "key".into()),
            (
                "SPIN_VARIABLE_PAYFAST_PASSPHRASE",
                PAYFAST_PASSPHRASE.into(),
            ),
            ("SPIN_VARIABLE_PAYFAST_BASE", payfast.url.clone()),
            ("SPIN_VARIABLE_PAYFAST_API_BASE", payfast.url.clone()),
            (
                "SPIN_VARIABLE_PAYFAST_NOTIFY_URL",
                "https://shop.example/payments/webhooks/payfast".into(),
            ),
        ],
    );
    let api = Conformance::new(&host);
    let admin = admin_token();

    web_pages(&api);
    let (customer, user_id) = users(&api);
    let (product, spare) = catalog(&api, &admin);
    inventory(&api, &admin, &product, &spare);
    let cart = carts(&api, &customer, &product, &spare);
    orders_and_payments(&api, &admin, &customer, &user_id, &product, &cart);
    notifications(&api, &customer);
    stripe_webhook(&api);
    payfast_itn(&api, &customer, &product);
    problems(&api, &customer);

    api.assert_every_operation_succeeded();
}

fn web_pages(api: &Conformance<'_>) {
    let served = api.get("/openapi.json", None);
    assert_eq!(served.status, 200);
    assert_eq!(
        served.json(),
        api.doc,
        "the host serves the document as it is"
    );
    let etag = served.header("etag").expect("an ETag").to_string();
    let again = api.call(Call {
        method: "GET",
        path: "/openapi.json",
        token: None,
        body: None,
        form: None,
        headers: vec![("if-none-match", etag)],
    });
    assert_eq!(again.status, 304);
    for (page, asset) in [
        ("/docs", "/docs/init.js"),
        ("/dashboard", "/dashboard/app.js"),
        ("/shop", "/shop/app.js"),
    ] {
        let redirect = api.get(page, None);
        assert_eq!(redirect.status, 308);
        assert_eq!(
            redirect.header("location"),
            Some(format!("{page}/").as_str())
        );
        let html = api.get(&format!("{page}/"), None);
        assert_eq!(html.status, 200);
        assert!(html.header("content-security-policy").is_some());
        assert_eq!(
            html.header("strict-transport-security"),
            Some("max-age=31536000")
        );
        assert_eq!(html.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(api.get(asset, None).status, 200);
        assert_eq!(api.get(&format!("{page}/missing.txt"), None).status, 404);
    }
    assert_eq!(
        api.get("/docs/vendor/swagger-ui-bundle.js", None).status,
        200
    );
    // A token pasted into the API page is not kept in the shop's origin
    // (Swagger UI's persistAuthorization writes it to localStorage, where
    // any script on the site could read it later).
    let init = api.get("/docs/init.js", None);
    let init = String::from_utf8_lossy(&init.body);
    assert!(init.contains("persistAuthorization: false"), "{init}");
    // (`%2e%2e` would be resolved by the client's URL parser before sending.)
    assert_eq!(api.get("/docs/a%5C..%5Csecret", None).status, 400);
}

fn users(api: &Conformance<'_>) -> (String, String) {
    let email = format!("{}@example.com", unique("spec"));
    let password = "spec reader pass";
    let registered = api.send(
        "POST",
        "/users",
        None,
        Some(json!({"email": email, "name": "Spec Reader", "password": password})),
    );
    assert_eq!(registered.status, 201);
    let user_id = registered.json()["id"].as_str().unwrap().to_string();
    let token = api.send(
        "POST",
        "/auth/token",
        None,
        Some(json!({"email": email, "password": password})),
    );
    assert_eq!(token.status, 200);
    let customer = token.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(api.get("/users/me", Some(&customer)).status, 200);
    let renamed = api.send(
        "PATCH",
        "/users/me",
        Some(&customer),
        Some(json!({"name": "Spec Reader II"})),
    );
    assert_eq!(renamed.status, 200);
    assert_eq!(
        api.get(&format!("/users/{user_id}"), Some(&admin_token()))
            .status,
        200
    );
    (customer, user_id)
}

fn catalog(api: &Conformance<'_>, admin: &str) -> (String, String) {
    let create = |name: &str| {
        let r = api.send(
            "POST",
            "/products",
            Some(admin),
            Some(json!({"name": name, "description": "for the spec", "category": "spec", "price_minor": 1500, "currency": "ZAR"})),
        );
        assert_eq!(r.status, 201);
        r.json()["id"].as_str().unwrap().to_string()
    };
    let product = create(&unique("kettle"));
    let spare = create(&unique("spare"));
    let doomed = create(&unique("doomed"));
    assert_eq!(api.get("/products?limit=5&category=spec", None).status, 200);
    assert_eq!(api.get(&format!("/products/{product}"), None).status, 200);
    let replaced = api.send(
        "PUT",
        &format!("/products/{product}"),
        Some(admin),
        Some(json!({"name": unique("kettle"), "description": "renamed", "category": "spec", "price_minor": 1600, "currency": "ZAR"})),
    );
    assert_eq!(replaced.status, 200);
    assert_eq!(
        api.send("DELETE", &format!("/products/{doomed}"), Some(admin), None)
            .status,
        204
    );
    (product, spare)
}

fn inventory(api: &Conformance<'_>, admin: &str, product: &str, spare: &str) {
    for id in [product, spare] {
        let set = api.send(
            "PUT",
            &format!("/inventory/{id}"),
            Some(admin),
            Some(json!({"on_hand": 50})),
        );
        assert_eq!(set.status, 200);
    }
    assert_eq!(
        api.get(&format!("/inventory?product_ids={product}"), None)
            .status,
        200
    );
    assert_eq!(api.get(&format!("/inventory/{product}"), None).status, 200);
    let adjusted = api.send(
        "POST",
        &format!("/inventory/{product}/adjustments"),
        Some(admin),
        Some(json!({"delta": 5, "reason": "found in the back"})),
    );
    assert_eq!(adjusted.status, 201);
    assert_eq!(
        api.get(&format!("/inventory/{product}/adjustments"), Some(admin))
            .status,
        200
    );
    // Manual reservations (an admin's tool): one committed, one released.
    for action in ["commit", "release"] {
        let order = fake_uuid();
        let reserved = api.send(
            "POST",
            "/inventory/reservations",
            Some(admin),
            Some(json!({"order_id": order, "lines": [{"product_id": product, "quantity": 1}]})),
        );
        assert_eq!(reserved.status, 201);
        let done = api.send(
            "POST",
            &format!("/inventory/reservations/{order}/{action}"),
            Some(admin),
            None,
        );
        assert_eq!(done.status, 200, "{action}");
    }
}

fn carts(api: &Conformance<'_>, customer: &str, product: &str, spare: &str) -> String {
    let scratch = api.send("POST", "/carts", Some(customer), None);
    assert_eq!(scratch.status, 201);
    let scratch = scratch.json()["id"].as_str().unwrap().to_string();
    let items = format!("/carts/{scratch}/items");
    let added = api.send(
        "POST",
        &items,
        Some(customer),
        Some(json!({"product_id": spare, "quantity": 2})),
    );
    assert_eq!(added.status, 200);
    let set = api.send(
        "PUT",
        &format!("{items}/{spare}"),
        Some(customer),
        Some(json!({"quantity": 3})),
    );
    assert_eq!(set.status, 200);
    assert_eq!(
        api.send("DELETE", &format!("{items}/{spare}"), Some(customer), None)
            .status,
        200
    );
    assert_eq!(
        api.get(&format!("/carts/{scratch}"), Some(customer)).status,
        200
    );
    assert_eq!(
        api.send("DELETE", &format!("/carts/{scratch}"), Some(customer), None)
            .status,
        200
    );

    let cart = api.send("POST", "/carts", Some(customer), None).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let added = api.send(
        "POST",
        &format!("/carts/{cart}/items"),
        Some(customer),
        Some(json!({"product_id": product, "quantity": 2})),
    );
    assert_eq!(added.status, 200);
    cart
}

fn place(api: &Conformance<'_>, customer: &str, source: Value) -> Answer {
    let mut body = json!({
        "shipping_address": {"name": "Spec Reader", "line1": "1 Schema Street", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "payment": {"provider": "fake", "token": "tok_visa"}
    });
    for (k, v) in source.as_object().unwrap() {
        body[k] = v.clone();
    }
    api.call(Call {
        method: "POST",
        path: "/orders",
        token: Some(customer),
        body: Some(body),
        form: None,
        headers: vec![("idempotency-key", unique("spec-order"))],
    })
}

fn orders_and_payments(
    api: &Conformance<'_>,
    admin: &str,
    customer: &str,
    user_id: &str,
    product: &str,
    cart: &str,
) {
    let from_cart = place(api, customer, json!({"cart_id": cart}));
    assert_eq!(from_cart.status, 201);
    let shipped = from_cart.json()["id"].as_str().unwrap().to_string();
    let items = json!({"items": [{"product_id": product, "quantity": 1}]});
    let cancelled = place(api, customer, items.clone()).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let refunded = place(api, customer, items).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for order in [&shipped, &cancelled, &refunded] {
        wait_for(api.host, customer, order, "paid");
    }

    assert_eq!(api.get("/orders?limit=2", Some(customer)).status, 200);
    let filtered = api.get(
        &format!("/orders?status=paid&user_id={user_id}"),
        Some(admin),
    );
    assert_eq!(filtered.status, 200);
    assert_eq!(
        api.get(&format!("/orders/{shipped}"), Some(customer))
            .status,
        200
    );
    assert_eq!(api.get("/orders/summary", Some(customer)).status, 200);
    assert_eq!(
        api.get("/orders/activity?limit=10", Some(customer)).status,
        200
    );
    let moved = api.send(
        "PUT",
        &format!("/orders/{shipped}/status"),
        Some(admin),
        Some(json!({"status": "shipped"})),
    );
    assert_eq!(moved.status, 200);
    let cancel = api.send(
        "POST",
        &format!("/orders/{cancelled}/cancel"),
        Some(customer),
        None,
    );
    assert_eq!(cancel.status, 200);

    let payments = api.get(&format!("/payments?order_id={refunded}"), Some(customer));
    assert_eq!(payments.status, 200);
    let payment = payments.json()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        api.get(&format!("/payments/{payment}"), Some(customer))
            .status,
        200
    );
    let refund = api.send(
        "POST",
        &format!("/payments/{payment}/refund"),
        Some(admin),
        None,
    );
    assert_eq!(refund.status, 200);
    wait_for(api.host, customer, &refunded, "refunded");
}

fn notifications(api: &Conformance<'_>, customer: &str) {
    // The welcome message comes through Kafka; wait until it is there.
    eventually(WAIT, "the customer's notifications", || {
        let list = api.get("/notifications?limit=50", Some(customer));
        (list.status == 200 && !list.json()["items"].as_array()?.is_empty()).then_some(())
    });
}

fn stripe_webhook(api: &Conformance<'_>) {
    // An event type Mart does not act on is acknowledged.
    let event = json!({"id": unique("evt"), "type": "customer.created", "data": {"object": {"id": "cus_1"}}});
    let payload = serde_json::to_vec(&event).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signature = mart_domain::stripe::sign(&payload, WEBHOOK_SECRET, now);
    let answer = api.call(Call {
        method: "POST",
        path: "/payments/webhooks/stripe",
        token: None,
        body: Some(event.clone()),
        form: None,
        headers: vec![("stripe-signature", signature)],
    });
    assert_eq!(answer.status, 200);
    let forged = api.call(Call {
        method: "POST",
        path: "/payments/webhooks/stripe",
        token: None,
        body: Some(event),
        form: None,
        headers: vec![("stripe-signature", format!("t={now},v1=00"))],
    });
    assert_eq!(forged.status, 400);
}

/// A PayFast order: the order offers the payment page, the ITN pays it.
fn payfast_itn(api: &Conformance<'_>, customer: &str, product: &str) {
    let placed = place(
        api,
        customer,
        json!({"items": [{"product_id": product, "quantity": 1}], "payment": {"provider": "payfast"}}),
    );
    assert_eq!(placed.status, 201);
    let order = placed.json()["id"].as_str().unwrap().to_string();
    let waiting = eventually(WAIT, "the PayFast payment page", || {
        let o = api.get(&format!("/orders/{order}"), Some(customer)).json();
        o.get("payment_redirect_url").is_some().then_some(o)
    });
    let amount = mart_domain::payfast::amount_text(waiting["total_minor"].as_i64().unwrap());
    let fields: Vec<(String, String)> = [
        ("m_payment_id", order.as_str()),
        ("pf_payment_id", "4242"),
        ("payment_status", "COMPLETE"),
        ("amount_gross", amount.as_str()),
        ("merchant_id", PAYFAST_MERCHANT),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signature = mart_domain::payfast::itn_signature(&fields, PAYFAST_PASSPHRASE);
    let answer = api.call(Call {
        method: "POST",
        path: "/payments/webhooks/payfast",
        token: None,
        body: None,
        form: Some(format!(
            "{}&signature={signature}",
            mart_domain::payfast::itn_string(&fields)
        )),
        headers: Vec::new(),
    });
    assert_eq!(answer.status, 200);
    wait_for(api.host, customer, &order, "paid");
}

/// Errors are documented too: each of these must match its operation's
/// problem response.
fn problems(api: &Conformance<'_>, customer: &str) {
    let missing = fake_uuid();
    assert_eq!(api.get("/orders", None).status, 401);
    assert_eq!(api.get(&format!("/products/{missing}"), None).status, 404);
    assert_eq!(
        api.get(&format!("/orders/{missing}"), Some(customer))
            .status,
        404
    );
    assert_eq!(api.get("/orders?limit=0", Some(customer)).status, 422);
    let bad = api.send("POST", "/users", None, Some(json!({"email": "x"})));
    assert_eq!(bad.status, 422);
    assert_eq!(
        api.send("POST", "/products", Some(customer), Some(json!({})))
            .status,
        403
    );
    // A method the document does not list on a path it does is 405 in
    // every service (not 404: the resource exists).
    let auth = format!("Bearer {customer}");
    for (method, path) in [
        ("PATCH", format!("/inventory/{missing}")),
        ("PATCH", format!("/carts/{missing}")),
        ("PUT", format!("/payments/{missing}")),
        ("DELETE", "/orders".to_string()),
        ("GET", "/payments/webhooks/payfast".to_string()),
    ] {
        let r = api
            .host
            .request(method, &path, &[("authorization", &auth)], None);
        r.problem(405);
    }
}

fn fake_uuid() -> String {
    let n = mart_integration_tests::free_port();
    format!(
        "00000000-0000-4000-8000-{:012x}",
        u64::from(n) * 7919 + u64::from(std::process::id())
    )
}
