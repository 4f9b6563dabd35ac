//! Notifications through the `http` channel, against a local fake of a
//! mail API: one message per event, the event id as idempotency key,
//! retried when the API fails, dead-lettered when it refuses.

mod saga_support;

use mart_integration_tests::broker::broker;
use mart_integration_tests::fake_http::{FakeHttp, Recorded};
use mart_integration_tests::{eventually, postgres, Host};
use saga_support::*;
use serde_json::{json, Value};

const API_KEY: &str = "mail-key-test";

/// Fails the first attempt for addresses starting `flaky`, refuses
/// addresses starting `bounce`, accepts the rest.
fn answer(r: &Recorded, before: &[Recorded]) -> (u16, Value) {
    if r.header("authorization") != Some(&format!("Bearer {API_KEY}")) {
        return (401, json!({"error": "bad key"}));
    }
    let to = r.json()["to"]["email"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let tried = before
        .iter()
        .filter(|b| b.header("idempotency-key") == r.header("idempotency-key"))
        .count();
    if to.starts_with("bounce") {
        (422, json!({"error": "undeliverable address"}))
    } else if to.starts_with("flaky") && tried == 0 {
        (503, json!({"error": "try later"}))
    } else {
        (202, json!({"id": format!("msg-{tried}")}))
    }
}

fn mail() -> &'static FakeHttp {
    static MAIL: std::sync::OnceLock<FakeHttp> = std::sync::OnceLock::new();
    MAIL.get_or_init(|| FakeHttp::start(answer))
}

/// The binary's one host, delivering through the fake mail API (see
/// `Host::shared`).
fn mail_host() -> &'static Host {
    Host::shared(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_NOTIFICATION_CHANNEL", "http".into()),
            ("SPIN_VARIABLE_NOTIFICATION_API_BASE", mail().url.clone()),
            ("SPIN_VARIABLE_NOTIFICATION_API_KEY", API_KEY.into()),
        ],
    )
}

fn register(host: &Host, email: &str) {
    let r = host.send_json(
        "POST",
        "/users",
        &json!({"email": email, "name": "Mia", "password": "correct horse battery"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

fn messages_to(email: &str) -> Vec<Recorded> {
    mail()
        .requests("/messages")
        .into_iter()
        .filter(|r| r.json()["to"]["email"] == email)
        .collect()
}

#[test]
fn a_welcome_message_goes_out_once_even_when_the_api_fails_first() {
    let host = mail_host();
    let email = format!("{}@example.com", unique("flaky"));
    register(host, &email);
    // The first attempt fails (503) and is retried; the retry is accepted.
    let sent = eventually(WAIT, "the welcome message to be accepted", || {
        let sent = messages_to(&email);
        (sent.len() >= 2).then_some(sent)
    });
    // Every attempt carries the same idempotency key: the event id.
    let key = sent[0].header("idempotency-key").unwrap().to_string();
    assert!(sent
        .iter()
        .all(|m| m.header("idempotency-key") == Some(key.as_str())));
    assert_eq!(sent[1].json()["subject"], "Welcome to Mart");
    assert_eq!(sent[1].header("content-type"), Some("application/json"));
    // The handler records the message in its transaction after the API
    // accepted it: the fake can see the request before that commits.
    let recorded: Vec<String> = eventually(WAIT, "the welcome message to be recorded", || {
        let rows: Vec<String> = postgres()
            .query(
                "notifications",
                &format!(
                    "SELECT event_id FROM notifications WHERE kind = 'welcome' AND event_id = '{key}'"
                ),
            )
            .iter()
            .map(|r| r.get(0))
            .collect();
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(recorded, [key], "recorded once, under the event id");
}

#[test]
fn a_refused_message_is_dead_lettered_with_the_reason() {
    let host = mail_host();
    let email = format!("{}@example.com", unique("bounce"));
    register(host, &email);
    let letter = broker().read_one(
        "mart.users.dlq",
        "the refused event in the dead-letter topic",
        WAIT,
        |l| l.json()["email"] == email,
    );
    assert_eq!(
        letter.header("mart-dlq-error"),
        Some("the notification API refused the message (422)")
    );
    assert_eq!(
        letter.header("mart-dlq-component"),
        Some("notifications-events")
    );
    assert_eq!(messages_to(&email).len(), 1, "a refusal is not retried");
}

/// The `log` channel (the default) writes no personal data to the host's
/// log (issue 27): the welcome names its recipient by initials and a
/// shortened address; the stored notification, which only the recipient
/// reads, keeps the full text.
///
/// A second host consumes `mart.users` for the `log` channel in a group
/// and a database of its own (so it neither takes partitions from the
/// binary's shared host nor finds the event already applied there).
#[test]
fn the_log_channel_redacts_names_and_addresses() {
    let host = mail_host();
    let database = "notifications_log";
    postgres().query("postgres", &format!("CREATE DATABASE {database}"));
    for migration in ["0001_notifications.sql", "0002_processed_events.sql"] {
        let sql = std::fs::read_to_string(
            mart_integration_tests::repo_root()
                .join("migrations/notifications")
                .join(migration),
        )
        .unwrap();
        postgres().execute_script(database, &sql);
    }
    let group = unique("mart-test-log");
    let manifest = mart_integration_tests::app_manifest_with("notifications-log", |m| {
        let triggers = m["trigger"].as_table_mut().unwrap();
        triggers.retain(|kind, _| kind == "http" || kind == "kafka");
        let kafka = triggers["kafka"].as_array_mut().unwrap();
        kafka.retain(|t| t["component"].as_str() == Some("notifications-events"));
        let trigger = kafka[0].as_table_mut().unwrap();
        trigger.insert(
            "topics".into(),
            toml::Value::Array(vec!["mart.users".into()]),
        );
        trigger.insert("group".into(), group.clone().into());
        let variables = m["component"]["notifications-events"]["variables"]
            .as_table_mut()
            .unwrap();
        variables.insert(
            "db_url".into(),
            format!("postgres://mart@127.0.0.1:{{{{ pg_port }}}}/{database}").into(),
        );
    });
    let logging = Host::start(
        manifest.to_str().unwrap(),
        &[
            ("SPIN_VARIABLE_NOTIFICATION_CHANNEL", "log".into()),
            ("MART_NO_OUTBOX_RELAY", "true".into()),
        ],
    );

    let local = unique("jane.doe");
    let email = format!("{local}@example.com");
    let r = host.send_json(
        "POST",
        "/users",
        &json!({"email": email, "name": "Jane Doe", "password": "correct horse battery"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let user = r.json()["id"].as_str().unwrap().to_string();
    let line = eventually(WAIT, "the welcome in the log channel's log", || {
        logging
            .log()
            .lines()
            .find(|l| l.contains(&format!("notification to {user} (welcome)")))
            .map(str::to_string)
    });
    assert!(
        line.contains("Hello J. D., your account j***@example.com is ready."),
        "{line}"
    );
    assert!(!line.contains(&local) && !line.contains("Jane"), "{line}");
    let stored: String = postgres().query(
        database,
        &format!("SELECT body FROM notifications WHERE user_id = '{user}'"),
    )[0]
    .get(0);
    assert_eq!(
        stored,
        format!("Hello Jane Doe, your account {email} is ready."),
        "the recipient's own copy is whole"
    );
}
