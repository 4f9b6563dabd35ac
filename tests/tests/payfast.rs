//! PayFast through the whole saga, against a local fake of PayFast (payment
//! page, ITN validation, refunds API) that checks the request shapes; never
//! the internet. The order answers with PayFast's payment page once its
//! stock is held; the ITN completes or cancels it after its signature, the
//! amount and PayFast's confirmation were checked.

mod saga_support;

use std::time::Duration;

use mart_domain::payfast;
use mart_integration_tests::fake_http::{FakeHttp, Recorded};
use mart_integration_tests::{admin_token, browser, eventually, Host};
use saga_support::*;
use serde_json::{json, Value};

const MERCHANT_ID: &str = "10000100";
const MERCHANT_KEY: &str = "46f0cd694581a";
const PASSPHRASE: &str = "jt7NOE43FZPn";
const NOTIFY_URL: &str = "https://shop.example/payments/webhooks/payfast";
/// An ITN PayFast's validation does not vouch for.
const FORGED_PAYMENT_ID: &str = "999999";
/// A payment whose first refund PayFast makes but whose answer is lost
/// (a 500 after the money went back).
const LOST_ANSWER_PAYMENT_ID: &str = "3000001";
/// A payment whose first refund PayFast cannot take (503, nothing made).
const UNAVAILABLE_ONCE_PAYMENT_ID: &str = "3000002";
/// A payment PayFast refuses to refund, for good.
const REFUSED_PAYMENT_ID: &str = "3000003";

/// PayFast's validation answers `VALID` for the ITNs the tests send as
/// PayFast (and checks that no signature is sent back); refunds need the
/// merchant headers and a signature. Like PayFast, the fake refunds a
/// payment once: the first refund of a payment is made, a later one is
/// refused (its balance is gone), and the refund retrieval reports it.
fn answer(r: &Recorded, before: &[Recorded]) -> (u16, Value) {
    // The buyer's browser at PayFast's payment page (storefront test).
    if r.path.starts_with("/eng/process?") {
        return (
            200,
            json!("PayFast's payment page (a fake): the buyer pays here"),
        );
    }
    if r.path == "/favicon.ico" {
        return (204, json!(""));
    }
    if r.path == "/eng/query/validate" {
        let genuine = r.field("signature").is_none()
            && r.field("m_payment_id").is_some()
            && r.field("pf_payment_id") != Some(FORGED_PAYMENT_ID);
        return (200, json!(if genuine { "VALID" } else { "INVALID" }));
    }
    if r.path.starts_with("/refunds/") {
        let signed = ["merchant-id", "version", "timestamp", "signature"]
            .iter()
            .all(|h| r.header(h).is_some());
        if r.header("merchant-id") != Some(MERCHANT_ID) || !signed {
            return (
                401,
                json!({"status": "failed", "data": {"message": "unauthorised"}}),
            );
        }
        // The POSTs that made a refund: all but a 503'd first one.
        let unavailable_once = r.path.ends_with(UNAVAILABLE_ONCE_PAYMENT_ID);
        let made = before
            .iter()
            .filter(|earlier| earlier.method == "POST" && earlier.path == r.path)
            .nth(usize::from(unavailable_once));
        return match (r.method.as_str(), made) {
            ("GET", Some(refund)) => {
                let cents: f64 = refund.field("amount").unwrap().parse().unwrap();
                let refund = json!({"status": "COMPLETE", "refund_amount": cents / 100.0});
                (
                    200,
                    json!({"code": 200, "status": "success", "data": {"response": refund}}),
                )
            }
            ("GET", None) => (
                404,
                json!({"code": 404, "status": "failed", "data": {"response": "no refund"}}),
            ),
            ("POST", Some(_)) => (
                400,
                json!({"code": 400, "status": "failed",
                       "data": {"response": "Refund amount exceeds the available balance"}}),
            ),
            ("POST", None) if r.path.ends_with(REFUSED_PAYMENT_ID) => (
                400,
                json!({"code": 400, "status": "failed",
                       "data": {"response": "Refunds are not available for this transaction"}}),
            ),
            _ if r.path.ends_with(LOST_ANSWER_PAYMENT_ID) => {
                (500, json!({"code": 500, "status": "failed"}))
            }
            _ if unavailable_once
                && !before
                    .iter()
                    .any(|earlier| earlier.method == "POST" && earlier.path == r.path) =>
            {
                (503, json!({"code": 503, "status": "failed"}))
            }
            _ => (
                200,
                json!({"code": 200, "status": "success", "data": {"response": true}}),
            ),
        };
    }
    (404, json!({"message": "unknown path"}))
}

fn payfast_fake() -> &'static FakeHttp {
    static FAKE: std::sync::OnceLock<FakeHttp> = std::sync::OnceLock::new();
    FAKE.get_or_init(|| FakeHttp::start(answer))
}

/// The binary's one host, configured for PayFast (see `Host::shared`).
fn payfast_host() -> &'static Host {
    let fake = payfast_fake();
    Host::shared(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_SHOP_CURRENCY", "ZAR".into()),
            ("SPIN_VARIABLE_PAYMENT_PROVIDERS", "fake,payfast".into()),
            ("SPIN_VARIABLE_PAYFAST_MERCHANT_ID", MERCHANT_ID.into()),
            ("SPIN_VARIABLE_PAYFAST_MERCHANT_KEY", MERCHANT_KEY.into()),
            ("SPIN_VARIABLE_PAYFAST_PASSPHRASE", PASSPHRASE.into()),
            ("SPIN_VARIABLE_PAYFAST_BASE", fake.url.clone()),
            ("SPIN_VARIABLE_PAYFAST_API_BASE", fake.url.clone()),
            ("SPIN_VARIABLE_PAYFAST_NOTIFY_URL", NOTIFY_URL.into()),
            (
                "SPIN_VARIABLE_PAYFAST_RETURN_URL",
                "https://shop.example/orders".into(),
            ),
        ],
    )
}

/// A product priced in rand (cents), with stock.
fn rand_product(host: &Host, price: i64, on_hand: i32) -> String {
    product_in(host, "ZAR", price, on_hand)
}

fn payfast_order(host: &Host, user: &str, product: &str, quantity: i32) -> String {
    let mut body = order_body(json!([{"product_id": product, "quantity": quantity}]), "");
    body["payment"] = json!({"provider": "payfast"});
    let r = place(host, user, &unique("k"), &body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

/// The order once it offers PayFast's payment page.
fn redirect_url(host: &Host, user: &str, order: &str) -> String {
    eventually(WAIT, "the order's payment page", || {
        let o = host.get_as(user, &format!("/orders/{order}")).json();
        o["payment_redirect_url"].as_str().map(String::from)
    })
}

/// An ITN as PayFast sends it, signed with `passphrase`.
fn itn(order: &str, pf_payment_id: &str, status: &str, amount: &str, passphrase: &str) -> String {
    itn_from(
        MERCHANT_ID,
        order,
        pf_payment_id,
        status,
        amount,
        passphrase,
    )
}

fn itn_from(
    merchant: &str,
    order: &str,
    pf_payment_id: &str,
    status: &str,
    amount: &str,
    passphrase: &str,
) -> String {
    let fields: Vec<(String, String)> = [
        ("m_payment_id", order),
        ("pf_payment_id", pf_payment_id),
        ("payment_status", status),
        ("item_name", "Mart order"),
        ("amount_gross", amount),
        ("amount_fee", "-2.30"),
        ("amount_net", "47.70"),
        ("name_first", "Test"),
        // PayFast posts blank fields too, and signs them.
        ("name_last", ""),
        ("custom_str1", ""),
        ("email_address", "buyer@example.com"),
        ("merchant_id", merchant),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signature = payfast::itn_signature(&fields, passphrase);
    format!("{}&signature={signature}", payfast::itn_string(&fields))
}

fn send_itn(host: &Host, body: &str) -> mart_integration_tests::Resp {
    host.request(
        "POST",
        "/payments/webhooks/payfast",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(body.as_bytes()),
    )
}

fn status(host: &Host, user: &str, order: &str) -> Value {
    host.get_as(user, &format!("/orders/{order}")).json()["status"].clone()
}

#[test]
fn the_order_offers_payfasts_page_and_a_verified_itn_pays_it_once() {
    let host = payfast_host();
    let fake = payfast_fake();
    let user = customer(host);
    let tongs = rand_product(host, 2500, 10);
    let order = payfast_order(host, &user, &tongs, 2);

    // Once the stock is held, the order answers with a signed link to
    // PayFast's payment page for exactly this order and amount.
    let url = redirect_url(host, &user, &order);
    let (page, query) = url.split_once('?').unwrap();
    assert_eq!(page, format!("{}/eng/process", fake.url));
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("merchant_id"), Some(MERCHANT_ID));
    assert_eq!(field("merchant_key"), Some(MERCHANT_KEY));
    assert_eq!(field("m_payment_id"), Some(order.as_str()));
    assert_eq!(field("amount"), Some("50.00"));
    assert_eq!(field("notify_url"), Some(NOTIFY_URL));
    let (signed, signature) = pairs.split_at(pairs.len() - 1);
    assert_eq!(signature[0].0, "signature");
    assert_eq!(signature[0].1, payfast::signature(signed, PASSPHRASE));
    let payment = host
        .get_as(&user, &format!("/payments?order_id={order}"))
        .json()["items"][0]
        .clone();
    assert_eq!(payment["status"], "pending");
    assert_eq!(payment["redirect_url"], url.as_str());

    // Refused: a wrong signature, a signed ITN with another amount, and a
    // well-signed ITN PayFast does not confirm.
    let forged = itn(&order, "1089250", "COMPLETE", "50.00", "not the passphrase");
    assert_eq!(
        send_itn(host, &forged).problem(400)["detail"],
        "the ITN's signature does not match"
    );
    let cheap = itn(&order, "1089250", "COMPLETE", "1.00", PASSPHRASE);
    let problem = send_itn(host, &cheap).problem(400);
    assert_eq!(
        problem["detail"],
        "amount_gross is not the payment's amount"
    );
    let unconfirmed = itn(&order, FORGED_PAYMENT_ID, "COMPLETE", "50.00", PASSPHRASE);
    send_itn(host, &unconfirmed).problem(400);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_ne!(status(host, &user, &order), "paid", "nothing paid it yet");

    // The genuine ITN pays the order, once, however often PayFast sends it.
    let genuine = itn(&order, "1089250", "COMPLETE", "50.00", PASSPHRASE);
    for _ in 0..2 {
        let r = send_itn(host, &genuine);
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.body.is_empty(), "PayFast expects an empty 200");
    }
    let paid = wait_for(host, &user, &order, "paid");
    assert!(paid.get("payment_redirect_url").is_none(), "{paid}");
    assert_eq!(history(&paid).iter().filter(|s| *s == "paid").count(), 1);
    let confirmations = fake.requests("/eng/query/validate");
    let signed_part = genuine.split("&signature=").next().unwrap();
    let confirmed = confirmations
        .iter()
        .find(|r| r.body == signed_part)
        .expect("the genuine ITN's signed fields went back to PayFast as they came");
    assert_eq!(
        confirmed.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let payment = host
        .get_as(&user, &format!("/payments?order_id={order}"))
        .json()["items"][0]
        .clone();
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["provider_ref"], "1089250");
    assert!(payment.get("redirect_url").is_none(), "{payment}");
    eventually(WAIT, "the stock committed", || {
        (stock(host, &tongs) == (8, 0)).then_some(())
    });

    // An admin refund goes through PayFast's refunds API for that payment.
    let id = payment["id"].as_str().unwrap();
    let r = host.send_json_as(
        &admin_token(),
        "POST",
        &format!("/payments/{id}/refund"),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let refund = &fake.requests("/refunds/1089250")[0];
    assert_eq!(refund.field("amount"), Some("5000"), "cents");
    assert_eq!(refund.header("version"), Some("v1"));
    let timestamp = refund.header("timestamp").unwrap();
    let merchant = payfast::Merchant {
        merchant_id: MERCHANT_ID.into(),
        merchant_key: MERCHANT_KEY.into(),
        passphrase: PASSPHRASE.into(),
        return_url: String::new(),
        cancel_url: String::new(),
        notify_url: NOTIFY_URL.into(),
    };
    let reason = refund.field("reason").unwrap();
    let (expected, _) = payfast::refund_request(&merchant, 5000, reason, timestamp);
    let signature = expected.iter().find(|(k, _)| k == "signature").unwrap();
    assert_eq!(refund.header("signature"), Some(signature.1.as_str()));
    wait_for(host, &user, &order, "refunded");
}

#[test]
fn a_cancelled_payfast_payment_cancels_the_order_and_releases_the_stock() {
    let host = payfast_host();
    let user = customer(host);
    let tongs = rand_product(host, 1000, 5);
    let order = payfast_order(host, &user, &tongs, 5);
    redirect_url(host, &user, &order);
    assert_eq!(stock(host, &tongs), (5, 5), "held while the buyer pays");

    let cancelled = itn(&order, "1089300", "CANCELLED", "50.00", PASSPHRASE);
    assert_eq!(send_itn(host, &cancelled).status, 200);
    let o = wait_for(host, &user, &order, "cancelled");
    let reason = o["history"].as_array().unwrap().last().unwrap()["reason"].clone();
    assert!(
        reason.as_str().unwrap().contains("cancelled the payment"),
        "{reason}"
    );
    eventually(WAIT, "the stock released", || {
        (stock(host, &tongs) == (5, 0)).then_some(())
    });
}

#[test]
fn a_payfast_order_takes_no_token_and_itns_need_payfast() {
    let host = payfast_host();
    let user = customer(host);
    let tongs = rand_product(host, 1000, 5);
    let mut body = order_body(json!([{"product_id": tongs, "quantity": 1}]), "tok_visa");
    body["payment"]["provider"] = json!("payfast");
    let problem = place(host, &user, &unique("k"), &body).problem(422);
    assert_eq!(problem["errors"][0]["field"], "payment.token");

    let r = host.request(
        "POST",
        "/payments/webhooks/payfast",
        &[("content-type", "application/json")],
        Some(b"{}"),
    );
    r.problem(415);
    let unknown = itn(&fake_order(), "1089400", "COMPLETE", "10.00", PASSPHRASE);
    send_itn(host, &unknown).problem(400);
}

fn fake_order() -> String {
    format!("00000000-0000-4000-8000-{:012}", std::process::id())
}

/// Sends PayFast's ITN for `order` (R 20.00) and expects it accepted.
fn itn_accepted(host: &Host, order: &str, pf_payment_id: &str, status: &str) {
    let r = send_itn(
        host,
        &itn(order, pf_payment_id, status, "20.00", PASSPHRASE),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A new customer's order of R 20.00, paid on PayFast as `pf_payment_id`.
fn paid_through_payfast(host: &Host, pf_payment_id: &str) -> (String, String) {
    let user = customer(host);
    let tongs = rand_product(host, 2000, 5);
    let order = payfast_order(host, &user, &tongs, 1);
    redirect_url(host, &user, &order);
    itn_accepted(host, &order, pf_payment_id, "COMPLETE");
    wait_for(host, &user, &order, "paid");
    (user, order)
}

/// Waits until PayFast was asked to refund `pf_payment_id`.
fn refunded_at_payfast(pf_payment_id: &str) {
    let path = format!("/refunds/{pf_payment_id}");
    eventually(WAIT, &format!("a refund of {pf_payment_id}"), || {
        (!payfast_fake().requests(&path).is_empty()).then_some(())
    });
}

fn payment_of(host: &Host, user: &str, order: &str) -> Value {
    host.get_as(user, &format!("/payments?order_id={order}"))
        .json()["items"][0]
        .clone()
}

#[test]
fn a_second_payment_or_one_after_cancellation_goes_back_and_odd_itns_are_refused() {
    let host = payfast_host();
    let user = customer(host);
    let tongs = rand_product(host, 2000, 10);

    // Paid once, then the buyer pays again from another tab: the order
    // stays paid once, and the second charge is refunded.
    let order = payfast_order(host, &user, &tongs, 1);
    redirect_url(host, &user, &order);
    itn_accepted(host, &order, "2000001", "COMPLETE");
    wait_for(host, &user, &order, "paid");
    itn_accepted(host, &order, "2000002", "COMPLETE");
    refunded_at_payfast("2000002");
    assert!(
        payfast_fake().requests("/refunds/2000001").is_empty(),
        "the counted charge stays"
    );
    assert_eq!(status(host, &user, &order), "paid");

    // A FAILED ITN cancels the order; a COMPLETE one for it afterwards
    // (the buyer tried again) is refunded.
    let failed = payfast_order(host, &user, &tongs, 1);
    redirect_url(host, &user, &failed);
    itn_accepted(host, &failed, "2000003", "FAILED");
    wait_for(host, &user, &failed, "cancelled");
    itn_accepted(host, &failed, "2000004", "COMPLETE");
    refunded_at_payfast("2000004");

    // Cancelled by the buyer while PayFast's page was open: the page is
    // withdrawn, and a payment that still lands is refunded.
    let abandoned = payfast_order(host, &user, &tongs, 1);
    redirect_url(host, &user, &abandoned);
    let r = cancel(host, &user, &abandoned);
    assert_eq!(r.status, 200, "{}", r.text());
    eventually(WAIT, "the payment page withdrawn", || {
        payment_of(host, &user, &abandoned)
            .get("redirect_url")
            .is_none()
            .then_some(())
    });
    itn_accepted(host, &abandoned, "2000005", "COMPLETE");
    refunded_at_payfast("2000005");
    eventually(WAIT, "the payment recorded as refunded", || {
        (payment_of(host, &user, &abandoned)["status"] == "refunded").then_some(())
    });
    assert_eq!(status(host, &user, &abandoned), "cancelled");

    // An ITN for another merchant is refused.
    let other = payfast_order(host, &user, &tongs, 1);
    redirect_url(host, &user, &other);
    let foreign = itn_from(
        "10000999", &other, "2000006", "COMPLETE", "20.00", PASSPHRASE,
    );
    assert_eq!(
        send_itn(host, &foreign).problem(400)["detail"],
        "the ITN is for another merchant"
    );
}

#[test]
fn a_refund_whose_answer_was_lost_is_looked_up_not_made_twice() {
    let host = payfast_host();
    let (user, order) = paid_through_payfast(host, LOST_ANSWER_PAYMENT_ID);

    // The buyer cancels the paid order: PayFast makes the refund, but its
    // answer is lost. Asking again would be refused (the balance is gone)
    // and, with a provider that allowed it, refund twice.
    let r = cancel(host, &user, &order);
    assert_eq!(r.status, 200, "{}", r.text());
    eventually(WAIT, "the payment recorded as refunded", || {
        (payment_of(host, &user, &order)["status"] == "refunded").then_some(())
    });
    let path = format!("/refunds/{LOST_ANSWER_PAYMENT_ID}");
    let asked = payfast_fake().requests(&path);
    let posts = asked.iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 1, "one refund asked for: {asked:?}");
    let lookup = asked.iter().find(|r| r.method == "GET").expect("looked up");
    assert_eq!(lookup.header("merchant-id"), Some(MERCHANT_ID));
    assert!(lookup.header("signature").is_some());
    assert_eq!(status(host, &user, &order), "refunded");
}

#[test]
fn an_admin_refund_the_provider_cannot_take_now_is_made_later() {
    let host = payfast_host();
    let (user, order) = paid_through_payfast(host, UNAVAILABLE_ONCE_PAYMENT_ID);

    // PayFast cannot take the first refund POST. The admin's refund is
    // recorded (with payment.refund_due) before it is made, so the payments
    // handler may make its own attempt at once, beside the admin's request:
    // whichever of the two meets the outage, the refund is made once, and
    // the admin is told the truth: 503 (it will be retried) while it is not
    // made, 200 with the payment refunded once it is.
    let payment = payment_of(host, &user, &order);
    let r = host.send_json_as(
        &admin_token(),
        "POST",
        &format!("/payments/{}/refund", payment["id"].as_str().unwrap()),
        &json!({}),
    );
    if r.status == 200 {
        assert_eq!(r.json()["status"], "refunded", "{}", r.text());
    } else {
        let problem = r.problem(503);
        assert!(
            problem["detail"].as_str().unwrap().contains("refund"),
            "{problem}"
        );
    }
    eventually(WAIT, "the payment refunded", || {
        (payment_of(host, &user, &order)["status"] == "refunded").then_some(())
    });
    wait_for(host, &user, &order, "refunded");
    // Asked again after the 503 (looking first), by the handler or the
    // admin's request, so exactly one more POST.
    let path = format!("/refunds/{UNAVAILABLE_ONCE_PAYMENT_ID}");
    let asked = payfast_fake().requests(&path);
    let posts = asked.iter().filter(|r| r.method == "POST").count();
    assert_eq!(
        posts, 2,
        "the 503'd one and the one that made it: {asked:?}"
    );
}

#[test]
fn a_refund_refused_for_good_is_a_violation_operators_see() {
    let host = payfast_host();
    let (user, order) = paid_through_payfast(host, REFUSED_PAYMENT_ID);
    let r = cancel(host, &user, &order);
    assert_eq!(r.status, 200, "{}", r.text());
    // Not retried for ever: dead-lettered with PayFast's reason...
    let letter = mart_integration_tests::broker::broker().read_one(
        "mart.payments.dlq",
        "the refund's dead letter",
        WAIT,
        |l| l.key.as_deref() == Some(order.as_str()),
    );
    let reason = letter
        .header("mart-dlq-error")
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("not available for this transaction"),
        "{reason}"
    );
    // ...and mart check names the order whose money did not go back.
    let report = eventually(WAIT, "mart check to report it", || {
        let (code, report) = mart_check();
        (code == 1 && report.contains(&order)).then_some(report)
    });
    assert!(report.contains("refused to refund its payment"), "{report}");
    assert_eq!(payment_of(host, &user, &order)["status"], "succeeded");
}

/// The storefront's PayFast checkout in a real browser
/// (tests/browser/shop-payfast.mjs): the order page links to PayFast's page
/// for this order; the buyer goes there and comes back, and the page turns
/// paid without a reload once PayFast's ITN arrives (sent here once the
/// fake saw the buyer, as PayFast would after the buyer paid).
#[test]
fn a_shopper_pays_with_payfast_from_the_storefront() {
    let host = payfast_host();
    let tag = unique("pf").replace('-', "");
    let body = json!({"name": format!("{tag} tongs"), "description": "Braai tongs.", "category": "kitchen", "price_minor": 2500, "currency": "ZAR"});
    stocked_product(host, &body, Some(10));
    let email = format!("{tag}@example.com");
    let password = "thandi pays with payfast";

    let payfast = {
        let (email, password) = (email.clone(), password.to_string());
        std::thread::spawn(move || {
            let signed_up = format!("SELECT 1 FROM users WHERE email = '{email}'");
            eventually(Duration::from_secs(120), "the shopper's account", || {
                (!mart_integration_tests::postgres()
                    .query("users", &signed_up)
                    .is_empty())
                .then_some(())
            });
            let token = host.log_in(&email, &password)["access_token"]
                .as_str()
                .unwrap()
                .to_string();
            let order = eventually(Duration::from_secs(120), "the shopper's order", || {
                host.get_as(&token, "/orders").json()["items"][0]["id"]
                    .as_str()
                    .map(String::from)
            });
            redirect_url(host, &token, &order);
            // The buyer pays on PayFast's page; PayFast then sends the ITN.
            eventually(
                Duration::from_secs(120),
                "the buyer at PayFast's page",
                || {
                    payfast_fake()
                        .requests("/eng/process")
                        .iter()
                        .any(|r| r.path.contains(&format!("m_payment_id={order}")))
                        .then_some(())
                },
            );
            let paid = send_itn(
                host,
                &itn(&order, "5000001", "COMPLETE", "25.00", PASSPHRASE),
            );
            assert_eq!(paid.status, 200, "{}", paid.text());
            order
        })
    };
    let run = browser::run_script(
        "shop-payfast.mjs",
        &[
            ("MART_URL", host.base.clone()),
            ("MART_TAG", tag),
            ("MART_EMAIL", email),
            ("MART_PASSWORD", password.into()),
            (
                "MART_PAYFAST_PAGE",
                format!("{}/eng/process", payfast_fake().url),
            ),
        ],
        Duration::from_secs(300),
    );
    let order = payfast.join().expect("PayFast's side of the test");
    assert!(
        run.output
            .contains(&format!("order {order} offers PayFast's page")),
        "{}",
        run.output
    );
    assert!(
        run.output.contains("turned paid on the page"),
        "{}",
        run.output
    );
    run.assert_screenshots(&["shop-payfast-pay.png", "shop-payfast-paid.png"]);
}
