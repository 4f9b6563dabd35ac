//! The storefront (`/shop/`) in a real browser, as people use it: a
//! shopper signs up, searches, fills and changes a cart, checks out and
//! watches the order turn `paid` without a reload; sees what is sold out,
//! is refused more than is in stock, and sees an order the stock could not
//! cover cancelled with its reason; then the admin ships the paid order and
//! restocks a product. tests/browser/shop.mjs drives Debian's Chromium
//! against the real host, PostgreSQL and broker; no console error is
//! allowed. Screenshots land in target/test-artifacts/ (shop-*.png). The
//! host's access tokens live seconds, so the pages renew their sessions
//! (refresh tokens) all along; shop-session.mjs checks that on its own.

mod saga_support;

use std::time::Duration;

use mart_integration_tests::{browser, Host};
use saga_support::*;
use serde_json::json;

/// Generous for a loaded 2-core machine: two sagas run inside it.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(600);
const ADMIN_EMAIL: &str = "admin@shop.test";
const ADMIN_PASSWORD: &str = "the shop's admin password";

fn product_named(host: &Host, name: &str, image: Option<&str>, on_hand: Option<i32>) -> String {
    let body = json!({
        "name": name,
        "description": format!("A {name} for the storefront test."),
        "category": "kitchen",
        "price_minor": 1450,
        "currency": "EUR",
        "image_url": image,
    });
    stocked_product(host, &body, on_hand)
}

/// How long the shop host's access tokens live: a few seconds, so the
/// pages renew sessions all through these tests (the services accept a
/// token 30 s past its expiry).
const TTL_SECS: u64 = 5;

/// The binary's one host, with an admin account and short-lived access
/// tokens (see `Host::shared`).
fn shop_host() -> &'static Host {
    Host::shared(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_ADMIN_EMAIL", ADMIN_EMAIL.into()),
            ("SPIN_VARIABLE_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
            ("SPIN_VARIABLE_JWT_TTL_SECS", TTL_SECS.to_string()),
        ],
    )
}

#[test]
fn a_shopper_buys_in_the_storefront_and_the_admin_ships_it() {
    let host = shop_host();
    // A word no other product has, so that the search finds these three.
    let tag = unique("zq").replace('-', "");
    for (name, image) in [
        ("teapot", Some("/shop/images/mug.svg")),
        ("cup", None),
        ("spoon", Some("/shop/images/knife.svg")),
    ] {
        product_named(host, &format!("{tag} {name}"), image, Some(10));
    }
    let sold_out = product_named(host, "Sold-out lamp", Some("/shop/images/lamp.svg"), None);
    let scarce = product_named(
        host,
        "Last plant pot",
        Some("/shop/images/pot.svg"),
        Some(1),
    );

    let run = browser::run_script(
        "shop.mjs",
        &[
            ("MART_URL", host.base.clone()),
            ("MART_ADMIN_EMAIL", ADMIN_EMAIL.into()),
            ("MART_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
            ("MART_TAG", tag),
            ("MART_SOLD_OUT_ID", sold_out),
            ("MART_SCARCE_ID", scarce),
        ],
        BROWSER_TIMEOUT,
    );
    for said in [
        "turned paid on the page",
        "cancelled with its reason",
        "the admin shipped the order and restocked a product",
        "shop checks passed",
    ] {
        assert!(run.output.contains(said), "{}", run.output);
    }
    run.assert_screenshots(&[
        "shop-search.png",
        "shop-cart.png",
        "shop-order-paid.png",
        "shop-order-cancelled.png",
        "shop-admin.png",
        "shop-phone.png",
    ]);
}

/// A signed-in shopper stays signed in: once the access token has expired
/// (the services refuse it), the orders page still shows their order
/// without signing in again; parallel requests that meet a refused token
/// share one renewal (refresh tokens are single use); a reload renews too;
/// signing out forgets the tokens, and after a password change the renewal
/// is refused and the shopper is signed out. tests/browser/shop-session.mjs.
#[test]
fn a_signed_in_shopper_stays_signed_in_as_access_tokens_expire() {
    let host = shop_host();
    let email = format!("{}@example.com", unique("stayer"));
    let password = "stays signed in";
    host.sign_up(&email, "Stayer", password);
    let login = host.log_in(&email, password);
    assert_eq!(login["expires_in"], TTL_SECS, "{login}");
    let token = login["access_token"].as_str().unwrap();
    let product = product_named(host, &unique("kettle"), None, Some(5));
    let order = place_items(host, token, &product, 1, "tok_visa");

    let run = browser::run_script(
        "shop-session.mjs",
        &[
            ("MART_URL", host.base.clone()),
            ("MART_EMAIL", email),
            ("MART_PASSWORD", password.into()),
            ("MART_ORDER_ID", order),
            ("MART_TTL_SECS", TTL_SECS.to_string()),
        ],
        BROWSER_TIMEOUT,
    );
    for said in [
        "the shopper saw their orders after the access token expired",
        "parallel requests shared one renewal",
        "a reload with an expired access token renewed the session",
        "a session whose password changed ended at its renewal",
        "shop session checks passed",
    ] {
        assert!(run.output.contains(said), "{}", run.output);
    }
    run.assert_screenshots(&["shop-session.png"]);
}

#[test]
fn the_storefront_is_served_with_its_pictures_under_the_same_csp() {
    let host = shop_host();
    let page = host.get("/shop/");
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline"),
        "no inline script or style: {csp}"
    );
    let html = page.text();
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script type=\"module\" src=").count(),
        "every script is a module from a file: {html}"
    );
    assert!(
        !html.contains("<style") && !html.contains("style="),
        "{html}"
    );
    let picture = host.get("/shop/images/placeholder.svg");
    assert_eq!(picture.status, 200);
    assert_eq!(picture.header("content-type"), Some("image/svg+xml"));
}
