//! The Kafka trigger end to end: a real broker, the real host, the real
//! `kafka-probe` component (tests/components/kafka-probe) and PostgreSQL.
//! Each test uses its own topic, consumer group and database.

use std::collections::HashMap;
use std::time::Duration;

use mart_integration_tests::broker::broker;
use mart_integration_tests::{eventually, http, mart_bin, postgres, repo_root, Host};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);

/// A database with the probe's tables, and a manifest wiring the probe to `topic`.
struct Setup {
    db: String,
    manifest: std::path::PathBuf,
    topic: String,
}

/// Component settings that make the host create the test's topic with one
/// partition (a manifest may define `[application.trigger.kafka]` last).
const ONE_PARTITION: &str = "[application.trigger.kafka]\npartitions = 1";

fn setup(name: &str, trigger_settings: &str) -> Setup {
    setup_with(name, trigger_settings, "")
}

/// `component_settings`: extra lines for `[component.probe.tool.mart]`.
fn setup_with(name: &str, trigger_settings: &str, component_settings: &str) -> Setup {
    setup_component(name, "kafka_probe", trigger_settings, component_settings)
}

/// As `setup_with`, the component named `probe` being `target/.../<wasm>.wasm`.
fn setup_component(
    name: &str,
    wasm: &str,
    trigger_settings: &str,
    component_settings: &str,
) -> Setup {
    let db = format!("kafka_{name}");
    probe_database(&db);
    let topic = format!("test.{name}");
    let wasm = repo_root().join(format!("target/wasm32-wasip2/wasm/{wasm}.wasm"));
    let manifest =
        std::env::temp_dir().join(format!("mart-kafka-{name}-{}.toml", std::process::id()));
    std::fs::write(
        &manifest,
        format!(
            r#"spin_manifest_version = 2

[application]
name = "kafka-test-{name}"

[variables]
pg_port = {{ required = true }}

[[trigger.kafka]]
component = "probe"
topics = ["{topic}"]
{trigger_settings}

[component.probe]
source = "{wasm}"
allowed_outbound_hosts = ["postgres://127.0.0.1:{{{{ pg_port }}}}"]
variables = {{ db_url = "postgres://mart@127.0.0.1:{{{{ pg_port }}}}/{db}" }}

[component.probe.tool.mart]
{component_settings}
"#,
            wasm = wasm.display()
        ),
    )
    .unwrap();
    Setup {
        db,
        manifest,
        topic,
    }
}

/// A database with the probe's tables.
fn probe_database(db: &str) {
    let pg = postgres();
    pg.query("postgres", &format!("CREATE DATABASE {db}"));
    pg.query(
        db,
        "CREATE TABLE attempts (seq bigserial PRIMARY KEY, id text NOT NULL, origin text NOT NULL, at timestamptz NOT NULL DEFAULT now())",
    );
    pg.query(
        db,
        "CREATE TABLE effects (seq bigserial PRIMARY KEY, id text NOT NULL, origin text NOT NULL)",
    );
    pg.execute_script(
        db,
        &std::fs::read_to_string(repo_root().join("migrations/processed_events.sql")).unwrap(),
    );
}

fn start_host(setup: &Setup) -> Host {
    start_host_with(setup, &[])
}

fn start_host_with(setup: &Setup, env: &[(&str, String)]) -> Host {
    let mut all = vec![
        ("MART_KAFKA_BROKERS", broker().bootstrap()),
        ("MART_NO_OUTBOX_RELAY", "true".into()),
    ];
    all.extend(env.iter().cloned());
    Host::start(setup.manifest.to_str().unwrap(), &all)
}

fn count(db: &str, sql: &str) -> i64 {
    postgres().query(db, sql)[0].get(0)
}

/// Effects per id.
fn effects(db: &str) -> HashMap<String, i64> {
    postgres()
        .query(db, "SELECT id, count(*) FROM effects GROUP BY id")
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn each_message_is_applied_once_in_partition_order() {
    let s = setup("order", "batch_size = 8\nmax_wait_ms = 20");
    let _host = start_host(&s);
    let records: Vec<(String, serde_json::Value)> = (0..60)
        .map(|i| {
            (
                format!("key-{}", i % 6),
                json!({"id": format!("m{i:02}"), "action": "ok"}),
            )
        })
        .collect();
    let refs: Vec<(&str, serde_json::Value)> = records
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    broker().produce(&s.topic, &refs);

    eventually(WAIT, "60 effects", || {
        (count(&s.db, "SELECT count(*) FROM effects") >= 60).then_some(())
    });
    let applied = effects(&s.db);
    assert_eq!(applied.len(), 60);
    assert!(applied.values().all(|n| *n == 1), "{applied:?}");
    // Within one key (one partition) effects happen in production order.
    let rows = postgres().query(&s.db, "SELECT id FROM effects ORDER BY seq");
    let order: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    for key in 0..6 {
        let of_key: Vec<&String> = order
            .iter()
            .filter(|id| id[1..].parse::<usize>().unwrap() % 6 == key)
            .collect();
        let mut sorted = of_key.clone();
        sorted.sort();
        assert_eq!(of_key, sorted, "key-{key} out of order");
    }
}

#[test]
fn by_default_a_retryable_failure_holds_its_partition_until_it_succeeds() {
    // No retry settings: a failure that outlasts any fixed number of quick
    // attempts (a database restart, a provider outage) is retried, with the
    // partition held, until it succeeds; nothing is dead-lettered or skipped.
    let s = setup("patient", "");
    let host = start_host(&s);
    broker().produce(
        &s.topic,
        &[
            ("k", json!({"id": "outage", "action": {"fail_times": 7}})),
            ("k", json!({"id": "after", "action": "ok"})),
        ],
    );
    // While it fails, the partition is reported as stalled.
    let metrics = format!("{}/metrics", host.admin);
    let stalled_seconds = || -> Option<i64> {
        let text = http().get(&metrics).call().ok()?.into_string().ok()?;
        text.lines()
            .filter(|l| l.starts_with("mart_kafka_partition_stalled_seconds{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
            .max()
    };
    eventually(WAIT, "the stalled-seconds gauge to rise", || {
        stalled_seconds().filter(|s| *s >= 2).map(|_| ())
    });
    eventually(WAIT, "the message after the outage", || {
        effects(&s.db).contains_key("after").then_some(())
    });
    let attempts = count(&s.db, "SELECT count(*) FROM attempts WHERE id = 'outage'");
    assert_eq!(attempts, 8, "seven failures, then success");
    let order: Vec<String> = postgres()
        .query(&s.db, "SELECT id FROM effects ORDER BY seq")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(order, ["outage", "after"], "in partition order, each once");
    eventually(WAIT, "the gauge back to 0", || {
        (stalled_seconds() == Some(0)).then_some(())
    });
}

#[test]
fn failures_are_retried_then_dead_lettered_and_the_partition_moves_on() {
    let s = setup_with(
        "retry",
        "retry = { max_attempts = 3, initial_backoff_ms = 10, max_backoff_ms = 50 }",
        ONE_PARTITION,
    );
    let host = start_host(&s);
    // One partition, so later messages wait behind the failures; a key
    // each, so none is parked behind another's dead letter.
    broker().produce(
        &s.topic,
        &[
            ("k1", json!({"id": "first", "action": "ok"})),
            ("k2", json!({"id": "flaky", "action": {"fail_times": 2}})),
            ("k3", json!({"id": "poison", "action": "poison"})),
            ("k4", json!({"id": "trap", "action": "trap"})),
            ("k5", json!({"id": "last", "action": "ok"})),
        ],
    );
    eventually(WAIT, "the last message's effect", || {
        effects(&s.db).contains_key("last").then_some(())
    });
    let applied = effects(&s.db);
    assert_eq!(applied.get("first"), Some(&1));
    assert_eq!(
        applied.get("flaky"),
        Some(&1),
        "succeeds on its third attempt"
    );
    assert!(!applied.contains_key("poison") && !applied.contains_key("trap"));
    let attempts = |id: &str| {
        count(
            &s.db,
            &format!("SELECT count(*) FROM attempts WHERE id = '{id}'"),
        )
    };
    assert_eq!(attempts("flaky"), 3);
    assert_eq!(attempts("poison"), 1, "a permanent failure is not retried");
    assert_eq!(
        attempts("trap"),
        3,
        "a trap is retried like a transient failure"
    );

    let dlq = format!("{}.dlq", s.topic);
    let letters = broker().read(&dlq, 2, WAIT);
    let poison = letters.iter().find(|l| l.json()["id"] == "poison").unwrap();
    assert_eq!(poison.header("mart-dlq-error"), Some("poison is poison"));
    assert_eq!(poison.header("mart-dlq-attempts"), Some("1"));
    assert_eq!(poison.header("mart-dlq-topic"), Some(s.topic.as_str()));
    assert_eq!(poison.header("mart-dlq-component"), Some("probe"));
    assert_eq!(
        poison.header("test"),
        Some("yes"),
        "original headers are kept"
    );
    assert_eq!(poison.key.as_deref(), Some("k3"));
    let trap = letters.iter().find(|l| l.json()["id"] == "trap").unwrap();
    assert_eq!(trap.header("mart-dlq-attempts"), Some("3"));
    assert!(
        trap.header("mart-dlq-error").unwrap().contains("trapped"),
        "{trap:?}"
    );

    let metrics = host.metrics();
    let dead = format!(
        "mart_kafka_messages_total{{component=\"probe\",outcome=\"dead_lettered\",topic=\"{}\"}} 2",
        s.topic
    );
    assert!(metrics.contains(&dead), "{metrics}");

    // The operator lists the dead letters, then sends them back once.
    let list = dead_letters(&dlq, &[]);
    assert!(list.contains("2 dead letter(s) pending"), "{list}");
    assert!(list.contains("poison is poison"), "{list}");
    let redriven = dead_letters(&dlq, &["--redrive"]);
    assert!(redriven.contains("2 dead letter(s) redriven"), "{redriven}");
    eventually(WAIT, "the redriven messages to be tried again", || {
        (attempts("poison") == 2 && attempts("trap") == 6).then_some(())
    });
    // They fail again and land in the dead-letter topic again; only those
    // new letters are pending now.
    broker().read(&dlq, 4, WAIT);
    let list = dead_letters(&dlq, &[]);
    assert!(list.contains("2 dead letter(s) pending"), "{list}");
}

/// `mart dead-letters <topic> <args>`: what it printed.
fn dead_letters(topic: &str, args: &[&str]) -> String {
    let (succeeded, text) = try_dead_letters(topic, args);
    assert!(succeeded, "{text}");
    text
}

/// Whether `mart dead-letters <topic> <args>` succeeded, and what it printed.
fn try_dead_letters(topic: &str, args: &[&str]) -> (bool, String) {
    let mut command = std::process::Command::new(mart_bin());
    // Next to spin.toml, whose [application.trigger.kafka] says how to reach Kafka.
    command.current_dir(repo_root()).args([
        "dead-letters",
        topic,
        "--kafka-brokers",
        &broker().bootstrap(),
    ]);
    let output = command.args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn a_killed_host_resumes_without_losing_or_reapplying() {
    let s = setup("crash", "batch_size = 4\nmax_wait_ms = 5");
    // A stable identity (static membership): the restarted host takes the
    // killed one's place at once, not when the broker expires it.
    let identity = [("MART_KAFKA_INSTANCE_ID", "kafka-crash-host".to_string())];
    let mut host = start_host_with(&s, &identity);
    let records: Vec<(String, serde_json::Value)> = (0..80)
        .map(|i| {
            (
                format!("key-{}", i % 8),
                json!({"id": format!("c{i:02}"), "action": {"sleep_ms": 250}}),
            )
        })
        .collect();
    let refs: Vec<(&str, serde_json::Value)> = records
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    broker().produce(&s.topic, &refs);
    // 250 ms a message keeps the work going for seconds (20 messages a
    // partition), so however slowly this test polls, the kill comes while
    // the handlers are busy.
    eventually(WAIT, "some effects before the crash", || {
        (count(&s.db, "SELECT count(*) FROM effects") >= 5).then_some(())
    });
    host.kill();
    let before = count(&s.db, "SELECT count(*) FROM effects");
    assert!(before < 80, "the crash came too late to test anything");

    let _host = start_host_with(&s, &identity);
    eventually(WAIT, "all 80 effects after the restart", || {
        (effects(&s.db).len() == 80).then_some(())
    });
    let applied = effects(&s.db);
    assert!(
        applied.values().all(|n| *n == 1),
        "applied twice: {applied:?}"
    );
}

#[test]
fn two_hosts_share_the_partitions_and_hand_them_over() {
    let s = setup("group", "");
    let first = start_host(&s);
    let mut second = start_host(&s);
    let batch = |from: usize, to: usize| -> Vec<(String, serde_json::Value)> {
        (from..to)
            .map(|i| {
                (
                    format!("key-{}", i % 16),
                    json!({"id": format!("g{i:03}"), "action": {"sleep_ms": 5}}),
                )
            })
            .collect()
    };
    let produce = |records: &[(String, serde_json::Value)]| {
        let refs: Vec<(&str, serde_json::Value)> = records
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        broker().produce(&s.topic, &refs);
    };
    // Both members must own partitions before the work starts, or one would
    // take everything; wait until each has some.
    let handled = |host: &Host| -> u64 {
        let text = host.metrics();
        text.lines()
            .filter(|l| l.starts_with("mart_kafka_messages_total") && l.contains("outcome=\"ok\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let mut produced = 0;
    eventually(WAIT, "both hosts to handle messages", || {
        produce(&batch(produced, produced + 32));
        produced += 32;
        std::thread::sleep(Duration::from_millis(500));
        (handled(&first) > 0 && handled(&second) > 0).then_some(())
    });
    let status = second.terminate(Duration::from_secs(90));
    assert!(status.success(), "{}", second.log());
    produce(&batch(produced, produced + 64));
    produced += 64;
    // The first host must be given the partitions back: a rebalance, which
    // tansu can take a minute or more to settle (see Host::shared).
    eventually(
        Duration::from_secs(300),
        "every message once the second host left",
        || (effects(&s.db).len() == produced).then_some(()),
    );
    let applied = effects(&s.db);
    assert!(
        applied.values().all(|n| *n == 1),
        "applied twice: {applied:?}"
    );
}

#[test]
fn components_publish_only_to_the_topics_their_manifest_lists() {
    let s = setup_with(
        "publish",
        "",
        "kafka_publish_topics = [\"test.publish.out\"]",
    );
    let _host = start_host(&s);
    broker().produce(
        &s.topic,
        &[
            (
                "k",
                json!({"id": "allowed", "action": {"publish": "test.publish.out"}}),
            ),
            (
                "k",
                json!({"id": "refused", "action": {"publish": "test.publish.secret"}}),
            ),
        ],
    );
    let published = broker().read("test.publish.out", 1, WAIT);
    assert_eq!(published[0].key.as_deref(), Some("allowed"));
    assert_eq!(published[0].header("published-by"), Some("kafka-probe"));
    assert_eq!(published[0].json()["id"], "allowed");
    let letters = broker().read(&format!("{}.dlq", s.topic), 1, WAIT);
    assert_eq!(letters[0].json()["id"], "refused");
    let error = letters[0].header("mart-dlq-error").unwrap();
    assert!(
        error.contains("`test.publish.secret` is not in this component's kafka_publish_topics"),
        "{error}"
    );
}

#[test]
fn api_load_never_takes_the_handlers_database_connections() {
    // An HTTP component on the handler's database: requests that hold
    // every connection the API may have must leave the handler its own.
    let probe = repo_root().join("target/wasm32-wasip2/wasm/probe.wasm");
    let web = format!(
        r#"
[[trigger.http]]
route = "/probe/..."
component = "web"

[component.web]
source = "{probe}"
allowed_outbound_hosts = ["postgres://127.0.0.1:{{{{ pg_port }}}}"]

[component.web.tool.mart]
timeout_ms = 120000
"#,
        probe = probe.display()
    );
    let s = setup_with("budgets", "", &web);
    let host = start_host(&s);
    broker().produce(&s.topic, &[("k", json!({"id": "warm-up", "action": "ok"}))]);
    eventually(WAIT, "the handler running", || {
        effects(&s.db).contains_key("warm-up").then_some(())
    });

    // Twenty slow API requests on that database: more than the API's pool
    // (and more than the one pool every trigger shared before).
    let url = format!("postgres://mart@127.0.0.1:{}/{}", postgres().port, s.db);
    let path = format!(
        "/probe/pg-query?url={}&sql={}",
        form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>(),
        form_urlencoded::byte_serialize(b"SELECT pg_sleep(60)").collect::<String>()
    );
    let base = host.base.clone();
    let slow: Vec<_> = (0..20)
        .map(|_| {
            let url = format!("{base}{path}");
            std::thread::spawn(move || {
                http()
                    .get(&url)
                    .timeout(Duration::from_secs(180))
                    .call()
                    .map(|r| r.status())
                    .unwrap_or_else(|e| match e {
                        ureq::Error::Status(status, _) => status,
                        other => panic!("{other}"),
                    })
            })
        })
        .collect();
    let sleeping = || {
        count(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND query LIKE '%pg_sleep(60)%' AND state = 'active'",
                s.db
            ),
        )
    };
    eventually(WAIT, "the API's connections all taken", || {
        (sleeping() >= 10).then_some(())
    });

    let produced = std::time::Instant::now();
    broker().produce(&s.topic, &[("k", json!({"id": "during", "action": "ok"}))]);
    eventually(WAIT, "the handler's effect", || {
        effects(&s.db).contains_key("during").then_some(())
    });
    // The API's queries sleep a minute from before the message was
    // produced: an effect well within it did not wait for their connections
    // (a handler takes milliseconds; the margin is for a loaded machine).
    let took = produced.elapsed();
    assert!(
        took < Duration::from_secs(45),
        "the handler waited {took:?} for the API's connections to free up"
    );
    for request in slow {
        let status = request.join().unwrap();
        assert!(matches!(status, 200 | 500 | 502), "{status}");
    }
}

#[test]
fn a_redriven_message_reaches_only_the_group_that_dead_lettered_it() {
    // A second group on the same topic, with a database of its own.
    let other_db = "kafka_redrive_other";
    probe_database(other_db);
    let kafka_probe = repo_root().join("target/wasm32-wasip2/wasm/kafka_probe.wasm");
    let s = setup_with(
        "redrive",
        "",
        &format!(
            r#"
[[trigger.kafka]]
component = "other"
topics = ["test.redrive"]

[component.other]
source = "{kafka_probe}"
allowed_outbound_hosts = ["postgres://127.0.0.1:{{{{ pg_port }}}}"]
variables = {{ db_url = "postgres://mart@127.0.0.1:{{{{ pg_port }}}}/{other_db}" }}
"#,
            kafka_probe = kafka_probe.display()
        ),
    );
    let _host = start_host(&s);
    // The message is poison for the first group only (once): that group
    // parks the next message of its key behind it, the other handles both.
    broker().produce(
        &s.topic,
        &[
            (
                "k",
                json!({"id": "m", "action": {"poison_in_db": s.db, "times": 1}}),
            ),
            ("k", json!({"id": "n", "action": "ok"})),
        ],
    );
    eventually(WAIT, "the other group past both messages", || {
        effects(other_db).contains_key("n").then_some(())
    });
    let dlq = format!("{}.dlq", s.topic);
    broker().read(&dlq, 2, WAIT);
    let applied = effects(&s.db);
    assert!(
        !applied.contains_key("m") && !applied.contains_key("n"),
        "dead-lettered, and parked behind it, in the first group: {applied:?}"
    );

    let redriven = dead_letters(&dlq, &["--redrive"]);
    assert!(redriven.contains("2 dead letter(s) redriven"), "{redriven}");
    assert!(
        redriven.contains("group=kafka-test-redrive.probe"),
        "{redriven}"
    );
    eventually(WAIT, "the redriven messages applied in their group", || {
        effects(&s.db).contains_key("n").then_some(())
    });
    assert_eq!(effect_order(&s.db), ["m", "n"], "in their key's order");
    let attempts = |db: &str, id: &str| {
        count(
            db,
            &format!("SELECT count(*) FROM attempts WHERE id = '{id}'"),
        )
    };
    assert_eq!(attempts(&s.db, "m"), 2, "the first group tried it again");
    assert_eq!(attempts(&s.db, "n"), 1, "never tried while parked");
    // The redriven copies are on the topic, and the other group passed over
    // them: its handler was not invoked again (a later message proves the
    // group is past the copies). The first group's key is released.
    broker().produce(&s.topic, &[("k", json!({"id": "after", "action": "ok"}))]);
    eventually(WAIT, "both groups past the copies", || {
        (effects(other_db).contains_key("after") && effects(&s.db).contains_key("after"))
            .then_some(())
    });
    assert_eq!(
        attempts(other_db, "m"),
        1,
        "the other group never saw the copy"
    );
    assert_eq!(attempts(other_db, "n"), 1);
    assert_eq!(effects(other_db).get("m"), Some(&1));
    assert_eq!(effects(&s.db).get("m"), Some(&1));
    let list = dead_letters(&dlq, &[]);
    assert!(list.contains("0 dead letter(s) pending"), "{list}");
}

/// Effects in the order they happened.
fn effect_order(db: &str) -> Vec<String> {
    postgres()
        .query(db, "SELECT id FROM effects ORDER BY seq")
        .into_iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn a_dead_lettered_key_is_parked_until_its_letters_are_resolved_in_order() {
    let s = setup_with("parking", "", ONE_PARTITION);
    let host = start_host(&s);
    // `a1` is poison on its first attempt. The later messages of key `a`
    // wait behind it; key `b`, on the same partition, goes on.
    broker().produce(
        &s.topic,
        &[
            (
                "a",
                json!({"id": "a1", "action": {"poison_in_db": s.db, "times": 1}}),
            ),
            ("a", json!({"id": "a2", "action": "ok"})),
            ("b", json!({"id": "b1", "action": "ok"})),
            ("a", json!({"id": "a3", "action": "ok"})),
            ("b", json!({"id": "b2", "action": "ok"})),
        ],
    );
    eventually(WAIT, "key b handled", || {
        effects(&s.db).contains_key("b2").then_some(())
    });
    let dlq = format!("{}.dlq", s.topic);
    let letters = broker().read(&dlq, 3, WAIT);
    let poison = letters.iter().find(|l| l.json()["id"] == "a1").unwrap();
    let a1 = format!(
        "{}/0@{}",
        s.topic,
        poison.header("mart-dlq-offset").unwrap()
    );
    let parked = letters.iter().find(|l| l.json()["id"] == "a3").unwrap();
    assert_eq!(parked.header("mart-dlq-attempts"), Some("0"), "never tried");
    assert!(
        parked
            .header("mart-dlq-error")
            .unwrap()
            .contains(&format!("parked behind {a1}")),
        "{parked:?}"
    );
    assert_eq!(effect_order(&s.db), ["b1", "b2"]);
    let metrics = host.metrics();
    let parked_metric = format!(
        "mart_kafka_messages_total{{component=\"probe\",outcome=\"parked\",topic=\"{}\"}} 2",
        s.topic
    );
    assert!(metrics.contains(&parked_metric), "{metrics}");

    // A new host (a restart, or another member taking the partition over)
    // rebuilds the parked keys from the dead-letter topic.
    drop(host);
    let host = start_host(&s);
    broker().produce(
        &s.topic,
        &[
            ("a", json!({"id": "a4", "action": "ok"})),
            ("b", json!({"id": "b3", "action": "ok"})),
        ],
    );
    eventually(WAIT, "key b handled by the new host", || {
        effects(&s.db).contains_key("b3").then_some(())
    });
    broker().read(&dlq, 4, WAIT);
    assert!(!effects(&s.db).contains_key("a4"), "still parked");

    // Redriven, key a's messages are handled in their order, and the key
    // is released.
    let redriven = dead_letters(&dlq, &["--redrive"]);
    assert!(redriven.contains("4 dead letter(s) redriven"), "{redriven}");
    broker().produce(&s.topic, &[("a", json!({"id": "a5", "action": "ok"}))]);
    eventually(WAIT, "key a handled", || {
        effects(&s.db).contains_key("a5").then_some(())
    });
    assert_eq!(
        effect_order(&s.db),
        ["b1", "b2", "b3", "a1", "a2", "a3", "a4", "a5"]
    );

    // A message that can never succeed is discarded, and its key's parked
    // message redriven behind it.
    broker().produce(
        &s.topic,
        &[
            ("c", json!({"id": "c1", "action": "poison"})),
            ("c", json!({"id": "c2", "action": "ok"})),
        ],
    );
    // 4 letters and the 4 markers that resolved them, then these 2.
    let letters = broker().read(&dlq, 10, WAIT);
    let c1 = letters
        .iter()
        .find(|l| l.header("mart-dlq-resolved").is_none() && l.json()["id"] == "c1")
        .unwrap();
    let c1 = format!("{}/0@{}", s.topic, c1.header("mart-dlq-offset").unwrap());
    let (succeeded, refused) =
        try_dead_letters(&dlq, &["--redrive", "--discard", "test.parking/0@999999"]);
    assert!(
        !succeeded && refused.contains("no pending dead letter"),
        "{refused}"
    );
    let redriven = dead_letters(&dlq, &["--redrive", "--discard", &c1]);
    assert!(redriven.contains("2 dead letter(s) redriven"), "{redriven}");
    assert!(redriven.contains("discarded"), "{redriven}");
    broker().produce(&s.topic, &[("c", json!({"id": "c3", "action": "ok"}))]);
    eventually(WAIT, "key c handled", || {
        effects(&s.db).contains_key("c3").then_some(())
    });
    let order = effect_order(&s.db);
    assert_eq!(order[order.len() - 2..], ["c2", "c3"]);
    assert_eq!(
        count(&s.db, "SELECT count(*) FROM attempts WHERE id = 'c1'"),
        1,
        "a discarded message is not handled again"
    );
    drop(host);
}

/// Creates `topics` with one partition each (the host is not involved).
fn create_topics(topics: &[&str]) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker().bootstrap())
        .create()
        .unwrap();
    let new: Vec<_> = topics
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for result in rt
        .block_on(admin.create_topics(&new, &AdminOptions::new()))
        .unwrap()
    {
        result.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
}

/// Writes a dead letter to `dlq` as anyone who can write to it could:
/// every `mart-dlq-*` header is the writer's text.
fn write_letter(dlq: &str, source: &str, offset: i64, id: &str, error: &str) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker().bootstrap())
        .create()
        .unwrap();
    let offset = offset.to_string();
    let mut headers = OwnedHeaders::new();
    for (key, value) in [
        ("mart-dlq-error", error),
        ("mart-dlq-attempts", "1"),
        ("mart-dlq-topic", source),
        ("mart-dlq-partition", "0"),
        ("mart-dlq-offset", offset.as_str()),
        ("mart-dlq-component", "probe"),
        ("mart-dlq-group", "kafka-test-dlq.probe"),
        ("mart-dlq-time", "2026-01-01T00:00:00.000Z"),
    ] {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    let payload = serde_json::to_vec(&json!({"id": id, "action": "ok"})).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(
        producer.send(
            FutureRecord::to(dlq)
                .key(id)
                .payload(&payload)
                .headers(headers),
            Duration::from_secs(30),
        ),
    )
    .map_err(|(e, _)| e)
    .expect("the broker acknowledged");
}

/// How many records `topic`'s one partition holds.
fn records_in(topic: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker().bootstrap())
        .set("group.id", "test-watermarks")
        .create()
        .unwrap();
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(30))
        .unwrap();
    high - low
}

/// `mart dead-letters` trusts no letter's headers (issue 27): a letter
/// whose source is not a topic that dead-letters into the topic being read
/// is never sent anywhere (the redrive is refused until the operator skips
/// it with --discard), what it prints of the headers is escaped (no
/// terminal escape sequence or line break of a writer's reaches the
/// operator's terminal), and --dry-run shows where each letter would go
/// without sending or recording anything.
#[test]
fn a_redrive_refuses_forged_sources_escapes_headers_and_can_dry_run() {
    let topic = "test.dlqcheck";
    let dlq = "test.dlqcheck.dlq";
    let victim = "test.dlqcheck-victim";
    create_topics(&[topic, dlq, victim]);
    write_letter(
        dlq,
        topic,
        3,
        "genuine",
        "boom\u{1b}[2J\u{1b}]0;owned\u{7}\r\nfake\tline",
    );
    write_letter(dlq, victim, 7, "forged", "forged");
    let forged = format!("{victim}/0@7");

    let list = dead_letters(dlq, &[]);
    assert!(list.contains("2 dead letter(s) pending"), "{list}");
    for raw in ['\u{1b}', '\u{7}', '\r'] {
        assert!(
            !list.contains(raw),
            "{raw:?} reached the terminal: {list:?}"
        );
    }
    assert!(
        list.contains(r"error=boom\u{1b}[2J\u{1b}]0;owned\u{7}\u{d}\u{a}fake\u{9}line"),
        "{list}"
    );
    assert!(
        list.contains(&format!(
            "refused: its source topic `{victim}` does not dead-letter to `{dlq}`"
        )),
        "{list}"
    );

    // The forged letter stops the whole redrive: nothing is sent.
    let (succeeded, refused) = try_dead_letters(dlq, &["--redrive"]);
    assert!(!succeeded, "{refused}");
    assert!(
        refused.contains("nothing was sent back") && refused.contains(&forged),
        "{refused}"
    );

    // A dry run says where each would go, and sends and records nothing.
    let dry = dead_letters(dlq, &["--redrive", "--dry-run", "--discard", &forged]);
    assert!(
        dry.contains("2 dead letter(s) would be redriven (dry run: nothing sent)"),
        "{dry}"
    );
    assert!(
        dry.contains(&format!("-> {topic}/0 for kafka-test-dlq.probe")),
        "{dry}"
    );
    assert!(dry.contains("discarded (refused: not sent)"), "{dry}");
    assert_eq!(records_in(topic), 0, "a dry run sends nothing");
    let list = dead_letters(dlq, &[]);
    assert!(list.contains("2 dead letter(s) pending"), "{list}");

    // Skipping the forged letter, the genuine one goes back; the forged
    // one goes nowhere, not even as a discard.
    let redriven = dead_letters(dlq, &["--redrive", "--discard", &forged]);
    assert!(redriven.contains("2 dead letter(s) redriven"), "{redriven}");
    let back = broker().read_one(topic, "the genuine letter", WAIT, |r| {
        r.json()["id"] == "genuine"
    });
    assert_eq!(
        back.header("mart-redrive-for"),
        Some("kafka-test-dlq.probe")
    );
    assert_eq!(records_in(topic), 1);
    assert_eq!(records_in(victim), 0, "nothing went to the forged source");
    let list = dead_letters(dlq, &[]);
    assert!(list.contains("0 dead letter(s) pending"), "{list}");
}

/// `(instance, records it had been handed)` of each attempt at `id`, in
/// order, as the async probe (tests/components/p3-events) records them.
fn origins(db: &str, id: &str) -> Vec<(String, u64)> {
    postgres()
        .query(
            db,
            &format!("SELECT origin FROM attempts WHERE id = '{id}' ORDER BY seq"),
        )
        .iter()
        .map(|r| {
            let origin: String = r.get(0);
            let (instance, handed) = origin.split_once('#').expect("instance#handed");
            (instance.to_string(), handed.parse().expect("a count"))
        })
        .collect()
}

#[test]
fn an_async_handler_retries_dead_letters_and_commits_as_a_sync_one_does() {
    // tests/components/p3-events: mart:kafka/handler@0.2.0, an `async fn`
    // on spin-sdk 6. Values are "<id> <action>" (see its src/lib.rs).
    let s = setup_component(
        "p3",
        "p3_events",
        "retry = { max_attempts = 3, initial_backoff_ms = 10, max_backoff_ms = 50 }",
        ONE_PARTITION,
    );
    let identity = [("MART_KAFKA_INSTANCE_ID", "kafka-p3-host".to_string())];
    let mut host = start_host_with(&s, &identity);
    broker().produce(
        &s.topic,
        &[
            ("k1", json!("first ok")),
            ("k2", json!("flaky fail:2")),
            ("k3", json!("poison poison")),
            ("k4", json!("trap trap:1")),
            ("k5", json!("last ok")),
        ],
    );
    eventually(WAIT, "the last message's effect", || {
        effects(&s.db).contains_key("last").then_some(())
    });
    let attempts = |id: &str| origins(&s.db, id).len();
    let applied = effects(&s.db);
    assert_eq!(applied.get("first"), Some(&1));
    assert_eq!(
        applied.get("flaky"),
        Some(&1),
        "succeeds on its third attempt"
    );
    assert_eq!(applied.get("trap"), Some(&1), "succeeds after one trap");
    assert!(!applied.contains_key("poison"));
    assert_eq!(attempts("flaky"), 3);
    assert_eq!(attempts("poison"), 1, "a permanent failure is not retried");
    assert_eq!(
        attempts("trap"),
        2,
        "a trap is retried like a transient failure"
    );
    let dlq = format!("{}.dlq", s.topic);
    let letter = broker().read_one(&dlq, "the poison letter", WAIT, |l| {
        l.json() == json!("poison poison")
    });
    assert_eq!(letter.header("mart-dlq-error"), Some("poison is poison"));
    assert_eq!(letter.header("mart-dlq-attempts"), Some("1"));

    // Committed after success: a restarted host hands none of them again.
    host.terminate(Duration::from_secs(120));
    let _host = start_host_with(&s, &identity);
    broker().produce(&s.topic, &[("k6", json!("after ok"))]);
    eventually(WAIT, "the message after the restart", || {
        effects(&s.db).contains_key("after").then_some(())
    });
    for (id, tried) in [
        ("first", 1),
        ("flaky", 3),
        ("poison", 1),
        ("trap", 2),
        ("last", 1),
    ] {
        assert_eq!(attempts(id), tried, "{id} was delivered again");
    }
}

#[test]
fn an_async_handlers_instance_is_reused_until_it_traps_or_idles() {
    // One record per batch, so each record is its own call: an instance
    // that handles several has been reused across calls.
    let s = setup_component("p3_reuse", "p3_events", "batch_size = 1", ONE_PARTITION);
    let _host = start_host(&s);
    let mut records: Vec<(String, serde_json::Value)> = (0..8)
        .map(|i| ("k".to_string(), json!(format!("r{i} ok"))))
        .collect();
    records.push(("k".into(), json!("trap trap:1")));
    records.push(("k".into(), json!("after ok")));
    let refs: Vec<(&str, serde_json::Value)> = records
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    broker().produce(&s.topic, &refs);
    eventually(WAIT, "the effect after the trap", || {
        effects(&s.db).contains_key("after").then_some(())
    });
    // The eight records came at once, one partition, one call each, back
    // to back: a later call met an instance an earlier one had used (its
    // id, and a counter in the component's globals, say so).
    let first: Vec<(String, u64)> = (0..8)
        .map(|i| origins(&s.db, &format!("r{i}"))[0].clone())
        .collect();
    assert!(
        first
            .windows(2)
            .any(|pair| pair[0].0 == pair[1].0 && pair[1].1 > pair[0].1),
        "no instance served two calls: {first:?}"
    );
    // The trap retired its instance: the retry ran in a new one, whose
    // first record it was.
    let trap = origins(&s.db, "trap");
    assert_eq!(trap.len(), 2, "{trap:?}");
    assert_ne!(trap[0].0, trap[1].0, "the trapped instance was reused");
    assert_eq!(trap[1].1, 1, "{trap:?}");
    // An instance idle for longer than its timeout (1 s) is retired: a
    // record after a quiet spell meets a new one.
    std::thread::sleep(Duration::from_secs(4));
    broker().produce(&s.topic, &[("k", json!("later ok"))]);
    eventually(WAIT, "the effect after the quiet spell", || {
        effects(&s.db).contains_key("later").then_some(())
    });
    let (after, later) = (&origins(&s.db, "after")[0], &origins(&s.db, "later")[0]);
    assert_ne!(
        after.0, later.0,
        "an idle instance was kept: {after:?} {later:?}"
    );
    assert_eq!(later.1, 1, "{later:?}");
}

#[test]
fn a_component_without_either_kafka_handler_is_refused_naming_both() {
    let manifest =
        std::env::temp_dir().join(format!("mart-kafka-no-handler-{}.toml", std::process::id()));
    let wasm = repo_root().join("target/wasm32-wasip2/wasm/probe.wasm");
    std::fs::write(
        &manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"kafka-no-handler\"\n\
             [[trigger.kafka]]\ncomponent = \"probe\"\ntopics = [\"test.no_handler\"]\n\
             [component.probe]\nsource = \"{}\"\n",
            wasm.display()
        ),
    )
    .unwrap();
    let output = std::process::Command::new(mart_bin())
        .current_dir(repo_root())
        .args(["up", "--from", manifest.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("MART_KAFKA_BROKERS", broker().bootstrap())
        .env("MART_NO_OUTBOX_RELAY", "true")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("component `probe`"), "{stderr}");
    assert!(stderr.contains("mart:kafka/handler@0.1.0"), "{stderr}");
    assert!(stderr.contains("mart:kafka/handler@0.2.0"), "{stderr}");
}
