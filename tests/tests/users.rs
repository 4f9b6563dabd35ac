//! Users and authentication through the real host and PostgreSQL.

use mart_domain::auth::{Role, Signer};
use mart_integration_tests::{postgres, token, Host, JWT_OTHER_PRIVATE_KEY, JWT_PRIVATE_KEY};
use serde_json::{json, Value};

const ADMIN_EMAIL: &str = "root@mart.test";
const ADMIN_PASSWORD: &str = "admin-secret-123";

fn host() -> Host {
    Host::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_ADMIN_EMAIL", ADMIN_EMAIL.into()),
            ("SPIN_VARIABLE_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
        ],
    )
}

fn unique_email() -> String {
    format!("{}@example.com", mart_integration_tests::unique("user"))
}

fn register(host: &Host, email: &str, password: &str) -> Value {
    let r = host.send_json(
        "POST",
        "/users",
        &json!({ "email": email, "name": "Ada", "password": password }),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

fn login(host: &Host, email: &str, password: &str) -> Result<String, (u16, Value)> {
    let r = host.send_json(
        "POST",
        "/auth/token",
        &json!({ "email": email, "password": password }),
    );
    if r.status == 200 {
        let body = r.json();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 300, "access tokens are short-lived");
        Ok(body["access_token"].as_str().unwrap().to_string())
    } else {
        Err((r.status, r.json()))
    }
}

#[test]
fn register_log_in_and_read_the_profile() {
    let host = host();
    let email = unique_email();
    let profile = register(
        &host,
        &format!("  {} ", email.to_uppercase()),
        "correct horse battery",
    );
    assert_eq!(profile["email"], email, "stored normalised");
    assert_eq!(profile["role"], "customer");
    assert!(profile.get("password_hash").is_none() && !profile.to_string().contains("argon2"));

    let token = login(&host, &email, "correct horse battery").unwrap();
    let me = host.get_as(&token, "/users/me");
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json()["id"], profile["id"]);

    let stored = postgres().query(
        "users",
        &format!("SELECT password_hash FROM users WHERE email = '{email}'"),
    );
    let hash: String = stored[0].get(0);
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );

    let events = postgres().query(
        "users",
        &format!("SELECT event_type, aggregate_id, payload->>'email' FROM outbox WHERE aggregate_id = '{}'", profile["id"].as_str().unwrap()),
    );
    assert_eq!(events.len(), 1, "one user.registered event in the outbox");
    assert_eq!(events[0].get::<_, String>(0), "user.registered");
    assert_eq!(events[0].get::<_, String>(2), email);
}

#[test]
fn registration_rules() {
    let host = host();
    let email = unique_email();
    register(&host, &email, "correct horse battery");
    let dup = host.send_json(
        "POST",
        "/users",
        &json!({ "email": email.to_uppercase(), "name": "B", "password": "another password" }),
    );
    dup.problem(409);
    for (body, field) in [
        (
            json!({ "email": unique_email(), "name": "A", "password": "short" }),
            "password",
        ),
        (
            json!({ "email": "Me@Example.com", "name": "A", "password": "me@example.com" }),
            "password",
        ),
        (
            json!({ "email": "not-an-email", "name": "A", "password": "long enough" }),
            "email",
        ),
        (
            json!({ "email": unique_email(), "name": "", "password": "long enough" }),
            "name",
        ),
        (
            json!({ "email": unique_email(), "name": "x".repeat(101), "password": "long enough" }),
            "name",
        ),
        (
            json!({ "email": unique_email(), "name": "A", "password": "long enough", "role": "admin" }),
            "role",
        ),
    ] {
        let p = host.send_json("POST", "/users", &body).problem(422);
        assert_eq!(p["errors"][0]["field"], field, "{body}: {p}");
    }
}

#[test]
fn wrong_password_and_unknown_email_look_the_same_and_slow_down() {
    let host = host();
    let email = unique_email();
    register(&host, &email, "correct horse battery");
    let (status, wrong) = login(&host, &email, "wrong password").unwrap_err();
    let (status2, unknown) = login(&host, &unique_email(), "wrong password").unwrap_err();
    assert_eq!((status, status2), (401, 401));
    assert_eq!(wrong["detail"], unknown["detail"], "no account enumeration");

    for _ in 0..2 {
        assert_eq!(login(&host, &email, "wrong password").unwrap_err().0, 401);
    }
    // Three failures: the next attempt must wait, even with the right password.
    let r = host.send_json(
        "POST",
        "/auth/token",
        &json!({ "email": email, "password": "correct horse battery" }),
    );
    r.problem(429);
    assert_eq!(r.header("retry-after"), Some("1"));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert!(
        login(&host, &email, "correct horse battery").is_ok(),
        "a delay, not a lockout"
    );
}

#[test]
fn changing_the_password_revokes_earlier_tokens() {
    let host = host();
    let email = unique_email();
    register(&host, &email, "first password");
    let old = login(&host, &email, "first password").unwrap();

    let bad = host.send_json_as(
        &old,
        "PATCH",
        "/users/me",
        &json!({ "password": "second password", "current_password": "nope" }),
    );
    assert_eq!(bad.problem(422)["errors"][0]["field"], "current_password");

    let ok = host.send_json_as(&old, "PATCH", "/users/me", &json!({ "password": "second password", "current_password": "first password", "name": "Ada L." }));
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["name"], "Ada L.");

    let revoked = host.get_as(&old, "/users/me").problem(401);
    assert!(revoked["detail"]
        .as_str()
        .unwrap()
        .contains("password change"));
    assert_eq!(login(&host, &email, "first password").unwrap_err().0, 401);
    let new = login(&host, &email, "second password").unwrap();
    assert_eq!(host.get_as(&new, "/users/me").status, 200);
}

#[test]
fn admin_is_bootstrapped_and_only_admins_read_other_users() {
    let host = host();
    // Nobody can take the admin's address before the admin first signs in.
    host.send_json(
        "POST",
        "/users",
        &json!({ "email": ADMIN_EMAIL.to_uppercase(), "name": "Mallory", "password": "squatter password" }),
    )
    .problem(409);
    let email = unique_email();
    let user = register(&host, &email, "customer password");
    let id = user["id"].as_str().unwrap();
    let customer = login(&host, &email, "customer password").unwrap();

    let admin = login(&host, ADMIN_EMAIL, ADMIN_PASSWORD).unwrap();
    let me = host.get_as(&admin, "/users/me").json();
    assert_eq!(me["role"], "admin");
    assert_eq!(
        login(&host, ADMIN_EMAIL, "not the admin password")
            .unwrap_err()
            .0,
        401
    );

    assert_eq!(
        host.get_as(&admin, &format!("/users/{id}")).json()["email"],
        email
    );
    host.get_as(&customer, &format!("/users/{id}")).problem(403);
    host.get(&format!("/users/{id}")).problem(401);
    host.get_as(&admin, "/users/00000000-0000-4000-8000-00000000dead")
        .problem(404);
}

#[test]
fn expired_forged_and_malformed_tokens_are_401() {
    let host = host();
    let expired = Signer::new(JWT_PRIVATE_KEY, "mart-1", "mart", 60)
        .unwrap()
        .sign("x", Role::Admin, 0, mart_domain::auth::now() - 3600)
        .unwrap();
    let forged = Signer::new(JWT_OTHER_PRIVATE_KEY, "mart-1", "mart", 900)
        .unwrap()
        .sign("x", Role::Admin, 0, mart_domain::auth::now())
        .unwrap();
    let wrong_issuer = Signer::new(JWT_PRIVATE_KEY, "mart-1", "elsewhere", 900)
        .unwrap()
        .sign("x", Role::Admin, 0, mart_domain::auth::now())
        .unwrap();
    for (token, why) in [
        (expired, "expired"),
        (forged, "signature"),
        (wrong_issuer, "issuer"),
        ("abc.def.ghi".to_string(), "malformed"),
    ] {
        let p = host.get_as(&token, "/users/me").problem(401);
        assert!(p["detail"].as_str().unwrap().contains(why), "{why}: {p}");
    }
    // A valid token for an account that does not exist.
    host.get_as(
        &token("00000000-0000-4000-8000-00000000beef", Role::Customer),
        "/users/me",
    )
    .problem(401);
}

#[test]
fn another_clients_guessing_never_delays_the_owner() {
    let host = host();
    let email = unique_email();
    register(&host, &email, "correct horse battery");
    let attempt = |source: &str, password: &str| {
        host.post_json_from(
            source,
            "/auth/token",
            &json!({ "email": email, "password": password }),
        )
        .0
    };
    // An attacker on 127.0.0.2 guesses until it is slowed down...
    for _ in 0..3 {
        assert_eq!(attempt("127.0.0.2", "guess"), 401);
    }
    assert_eq!(attempt("127.0.0.2", "guess"), 429);
    // ...while the owner on 127.0.0.3 signs in at once.
    assert_eq!(attempt("127.0.0.3", "correct horse battery"), 200);
}

/// `count` logins to `email` at once from the loopback address `source`:
/// each one's status and body.
fn logins_at_once(
    host: &Host,
    source: &str,
    email: &str,
    password: &str,
    count: usize,
) -> Vec<(u16, String)> {
    std::thread::scope(|s| {
        let logins: Vec<_> = (0..count)
            .map(|_| {
                s.spawn(|| {
                    host.post_json_from(
                        source,
                        "/auth/token",
                        &json!({ "email": email, "password": password }),
                    )
                })
            })
            .collect();
        logins.into_iter().map(|l| l.join().unwrap()).collect()
    })
}

#[test]
fn parallel_guesses_are_each_counted() {
    let host = host();
    let email = unique_email();
    register(&host, &email, "correct horse battery");
    // Twelve guesses at once from one client: the free attempts and then
    // the delay apply to all of them, not only to those that came one by one.
    let statuses: Vec<u16> = logins_at_once(&host, "127.0.0.4", &email, "guess", 12)
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        checked <= 4,
        "only the free attempts are checked: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [401, 429].contains(s)),
        "{statuses:?}"
    );
}

#[test]
fn guessing_the_current_password_is_throttled_too() {
    let host = host();
    let email = unique_email();
    register(&host, &email, "first password");
    let token = login(&host, &email, "first password").unwrap();
    let change = |current: &str| {
        host.send_json_as(
            &token,
            "PATCH",
            "/users/me",
            &json!({ "password": "second password", "current_password": current }),
        )
        .status
    };
    for _ in 0..3 {
        assert_eq!(change("guess"), 422);
    }
    assert_eq!(change("guess"), 429);
}

/// The configured admin password passes the password policy and is not a
/// template's placeholder (issue 27): a deployment made from `.env.example`
/// (`MART_ADMIN_PASSWORD=change-me-admin`) must not hand the admin account
/// to whoever read the template. Its login is the operator's error (500,
/// naming the variable and the rule, never the value), and no account is
/// created.
#[test]
fn a_placeholder_or_weak_admin_password_creates_no_admin() {
    for (password, rule) in [
        ("change-me-admin", "placeholder"),
        ("short", "at least 8 characters"),
    ] {
        let email = format!("{}@mart.test", mart_integration_tests::unique("admin"));
        let host = Host::start(
            "spin.toml",
            &[
                ("SPIN_VARIABLE_ADMIN_EMAIL", email.clone()),
                ("SPIN_VARIABLE_ADMIN_PASSWORD", password.into()),
            ],
        );
        let (status, problem) = login(&host, &email, password).unwrap_err();
        assert_eq!(status, 500, "{password}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("admin_password") && detail.contains(rule),
            "{password}: {detail}"
        );
        assert!(!detail.contains(password), "the password is not echoed");
        let created = postgres().query(
            "users",
            &format!("SELECT count(*) FROM users WHERE email = '{email}'"),
        );
        assert_eq!(created[0].get::<_, i64>(0), 0, "{password}: no admin");
        // Anyone else still signs in and registers as before.
        let customer = unique_email();
        register(&host, &customer, "correct horse battery");
        assert!(login(&host, &customer, "correct horse battery").is_ok());
    }
}

/// POSTs a login from this machine (127.0.0.1) with `X-Forwarded-For`;
/// the status.
fn login_forwarded_for(host: &Host, forwarded_for: &str, email: &str, password: &str) -> u16 {
    let body = serde_json::to_vec(&json!({ "email": email, "password": password })).unwrap();
    host.request(
        "POST",
        "/auth/token",
        &[
            ("content-type", "application/json"),
            ("x-forwarded-for", forwarded_for),
        ],
        Some(&body),
    )
    .status
}

/// Behind a proxy (Kong) every client connects from the proxy's address:
/// with the proxy in `trusted_proxies`, the throttle keys on the client it
/// names in `X-Forwarded-For` (the rightmost hop it did not add itself), so
/// a guesser behind the proxy never delays the owner behind it (issue 27).
#[test]
fn behind_a_trusted_proxy_a_guesser_never_delays_the_owner() {
    let host = Host::start(
        "spin.toml",
        &[("SPIN_VARIABLE_TRUSTED_PROXIES", "127.0.0.1".into())],
    );
    let email = unique_email();
    register(&host, &email, "correct horse battery");
    // The guesser puts the owner's address first; the proxy appends the
    // address the guesser really came from, which is what counts.
    let guesser = "198.51.100.7, 203.0.113.9";
    for _ in 0..3 {
        assert_eq!(login_forwarded_for(&host, guesser, &email, "guess"), 401);
    }
    assert_eq!(login_forwarded_for(&host, guesser, &email, "guess"), 429);
    assert_eq!(
        login_forwarded_for(&host, "203.0.113.9", &email, "guess"),
        429,
        "the same client however it fills in the left of the header"
    );
    assert_eq!(
        login_forwarded_for(&host, "198.51.100.7", &email, "correct horse battery"),
        200,
        "the owner behind the same proxy signs in at once"
    );
}

/// Without a trusted proxy, `X-Forwarded-For` is the client's own text:
/// a client cannot escape its throttle by changing it.
#[test]
fn a_forged_forwarded_for_does_not_escape_the_throttle() {
    let host = host();
    let email = unique_email();
    register(&host, &email, "correct horse battery");
    for i in 0..3 {
        let forged = format!("203.0.113.{i}");
        assert_eq!(login_forwarded_for(&host, &forged, &email, "guess"), 401);
    }
    assert_eq!(
        login_forwarded_for(&host, "198.51.100.99", &email, "correct horse battery"),
        429,
        "still this client's throttle"
    );
}

/// `POST /auth/token` with a refresh token: the status and body.
fn refresh(host: &Host, refresh_token: &str) -> (u16, Value) {
    let r = host.send_json(
        "POST",
        "/auth/token",
        &json!({ "refresh_token": refresh_token }),
    );
    (r.status, r.json())
}

/// A password change ends every earlier session everywhere (issue 27).
/// Other services verify access tokens with the public key alone and cannot
/// know of the change, so access tokens are short-lived (5 minutes) and a
/// session goes on only through single-use refresh tokens, which the users
/// service refuses once the account's token version has moved on: a session
/// of before the change ends at every service when its access token expires.
#[test]
fn a_password_change_ends_earlier_sessions_at_their_next_refresh() {
    let host = host();
    let email = unique_email();
    register(&host, &email, "first password");
    let r = host.send_json(
        "POST",
        "/auth/token",
        &json!({ "email": email, "password": "first password" }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let session = r.json();
    assert_eq!(session["expires_in"], 300);
    let first = session["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no refresh token: {session}"))
        .to_string();
    assert_eq!(session["refresh_expires_in"], 14 * 24 * 3600);

    // A refresh hands out a new access token and a new refresh token; the
    // one used is spent.
    let (status, next) = refresh(&host, &first);
    assert_eq!(status, 200, "{next}");
    let access = next["access_token"].as_str().unwrap().to_string();
    assert_eq!(host.get_as(&access, "/users/me").status, 200);
    let second = next["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    assert_eq!(refresh(&host, &first).0, 401, "single use");

    // Another session of the same account, from before the change.
    let other = host
        .send_json(
            "POST",
            "/auth/token",
            &json!({ "email": email, "password": "first password" }),
        )
        .json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let changed = host.send_json_as(
        &access,
        "PATCH",
        "/users/me",
        &json!({ "password": "second password", "current_password": "first password" }),
    );
    assert_eq!(changed.status, 200, "{}", changed.text());
    for earlier in [&second, &other] {
        let (status, problem) = refresh(&host, earlier);
        assert_eq!(status, 401, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("revoked"),
            "{problem}"
        );
    }
    let stored: i64 = postgres().query(
        "users",
        &format!(
            "SELECT count(*) FROM refresh_tokens t JOIN users u ON u.id = t.user_id \
             WHERE u.email = '{email}'"
        ),
    )[0]
    .get(0);
    assert_eq!(
        stored, 0,
        "a password change deletes the account's refresh tokens"
    );
    // The new password starts a new session, which refreshes.
    let fresh = host
        .send_json(
            "POST",
            "/auth/token",
            &json!({ "email": email, "password": "second password" }),
        )
        .json();
    let (status, _) = refresh(&host, fresh["refresh_token"].as_str().unwrap());
    assert_eq!(status, 200);
    // A malformed refresh request is the client's error.
    host.send_json(
        "POST",
        "/auth/token",
        &json!({ "refresh_token": "x", "password": "y" }),
    )
    .problem(422);
    // A refresh token stored with an older token version (one issued by a
    // refresh that raced a password change past its deletion) is refused
    // by the version check itself, not only by the deletion.
    let raced = host
        .send_json(
            "POST",
            "/auth/token",
            &json!({ "email": email, "password": "second password" }),
        )
        .json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    postgres().execute_script(
        "users",
        &format!("UPDATE users SET token_version = token_version + 1 WHERE email = '{email}'"),
    );
    let (status, problem) = refresh(&host, &raced);
    assert_eq!(status, 401, "an older token version: {problem}");
}

/// The owner signing in from two tabs (or the storefront and another
/// client) at once: correct passwords are never throttled while the free
/// attempts last, whichever attempt's transaction began first. (A login
/// that began before another's attempt was recorded once measured the
/// time since that attempt as negative and was told to wait: the CI
/// failure of 2026-12-07 in payfast.rs.)
#[test]
fn an_owners_parallel_sign_ins_are_not_throttled() {
    let host = host();
    let email = unique_email();
    register(&host, &email, "correct horse battery");
    for round in 0..8 {
        let statuses = logins_at_once(&host, "127.0.0.5", &email, "correct horse battery", 3);
        let refused: Vec<&(u16, String)> = statuses.iter().filter(|(s, _)| *s != 200).collect();
        assert!(refused.is_empty(), "round {round}: {refused:?}");
    }
}
