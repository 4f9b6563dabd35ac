//! Spin's built-in interfaces through the real host: key-value, SQLite
//! (2.0.0 and 3.0.0), outbound Redis and MQTT, called by a component built
//! with spin-sdk (`tests/components/spin-interfaces`) as any Spin app
//! calls them, against real Redis and Mosquitto servers.
//!
//! Two components of one app run the same code: `allowed` lists the stores,
//! databases and addresses, `denied` lists none, and gets Spin's
//! access-denied answers from a call, never a failed load.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use mart_integration_tests::servers::{mosquitto, redis, redis_on};
use mart_integration_tests::{
    eventually, free_port, mart_bin, remove_when_this_process_exits, repo_root, unique, Host,
};

/// The app's files: manifest, runtime config and state directory.
struct App {
    dir: PathBuf,
    manifest: PathBuf,
    runtime_config: PathBuf,
}

impl App {
    fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![(
            "MART_RUNTIME_CONFIG",
            self.runtime_config.display().to_string(),
        )]
    }
}

fn component(id: &str, settings: &str) -> String {
    let wasm = repo_root().join("target/wasm32-wasip2/wasm/spin_interfaces.wasm");
    format!(
        "[[trigger.http]]\nroute = \"/{id}/...\"\ncomponent = \"{id}\"\n\n\
         [component.{id}]\nsource = \"{}\"\n{settings}\n",
        wasm.display()
    )
}

/// Writes an app whose components are `components` (id, manifest settings).
fn write_app(name: &str, components: &[(&str, &str)]) -> App {
    let dir = std::env::temp_dir().join(format!("mart-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    remove_when_this_process_exits(&dir);
    let manifest = dir.join("spin.toml");
    let body: String = components
        .iter()
        .map(|(id, settings)| component(id, settings))
        .collect();
    std::fs::write(
        &manifest,
        format!("spin_manifest_version = 2\n\n[application]\nname = \"{name}\"\n\n{body}"),
    )
    .unwrap();
    // As Spin resolves them: a key-value store's relative path against this
    // file's directory, a database's against the working directory (hence
    // absolute here), `default` of both in the state directory.
    let runtime_config = dir.join("runtime-config.toml");
    std::fs::write(
        &runtime_config,
        format!(
            "state_dir = \"{state}\"\n\n\
             [key_value_store.cache]\ntype = \"spin\"\npath = \"cache.db\"\n\n\
             [key_value_store.shared]\ntype = \"redis\"\nurl = \"redis://{redis}\"\n\n\
             [sqlite_database.orders]\ntype = \"spin\"\npath = \"{orders}\"\n",
            state = dir.join("state").display(),
            redis = redis().address(),
            orders = dir.join("orders.db").display(),
        ),
    )
    .unwrap();
    App {
        dir,
        manifest,
        runtime_config,
    }
}

/// The app every test but the load-failure one shares, with one host.
fn shop() -> (&'static App, &'static Host) {
    static APP: OnceLock<App> = OnceLock::new();
    let app = APP.get_or_init(|| {
        let allowed = format!(
            "key_value_stores = [\"default\", \"cache\", \"shared\"]\n\
             sqlite_databases = [\"default\", \"orders\"]\n\
             allowed_outbound_hosts = [\"redis://127.0.0.1:{}\", \"mqtt://127.0.0.1:{}\"]",
            redis().port,
            mosquitto().port
        );
        // Listed addresses on other ports: allowed_outbound_hosts is
        // checked by host and port.
        let denied = format!(
            "allowed_outbound_hosts = [\"redis://127.0.0.1:{}\", \"mqtt://127.0.0.1:{}\"]",
            free_port(),
            free_port()
        );
        write_app(
            "spin-interfaces",
            &[("allowed", &allowed), ("denied", &denied)],
        )
    });
    let host = Host::shared(app.manifest.to_str().unwrap(), &app.env());
    (app, host)
}

/// GET `path` with `query` pairs (encoded), answering (status, body).
fn call(host: &Host, path: &str, query: &[(&str, &str)]) -> (u16, String) {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query)
        .finish();
    let response = host.get(&format!("{path}?{query}"));
    (response.status, response.text())
}

fn ok(host: &Host, path: &str, query: &[(&str, &str)]) -> serde_json::Value {
    let (status, body) = call(host, path, query);
    assert_eq!(status, 200, "{path} {query:?}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn a_key_value_store_is_open_to_the_components_that_list_it() {
    let (_, host) = shop();
    let key = unique("cart");
    let kv = |component: &str, store: &str, op: &str, value: &str| {
        call(
            host,
            &format!("/{component}/kv"),
            &[
                ("store", store),
                ("op", op),
                ("key", &key),
                ("value", value),
            ],
        )
    };
    assert_eq!(
        kv("allowed", "default", "set", "3 apples"),
        (200, "null".into())
    );
    assert_eq!(
        kv("allowed", "default", "get", ""),
        (200, "\"3 apples\"".into())
    );
    assert_eq!(kv("allowed", "default", "exists", ""), (200, "true".into()));
    let keys = ok(host, "/allowed/kv", &[("store", "default"), ("op", "keys")]);
    assert!(
        keys.as_array().unwrap().contains(&key.clone().into()),
        "{keys}"
    );
    // Stores keep their own keys.
    assert_eq!(kv("allowed", "cache", "get", ""), (200, "null".into()));
    assert_eq!(
        kv("allowed", "cache", "set", "cached"),
        (200, "null".into())
    );
    assert_eq!(kv("allowed", "default", "delete", ""), (200, "null".into()));
    assert_eq!(kv("allowed", "default", "get", ""), (200, "null".into()));
    assert_eq!(
        kv("allowed", "cache", "get", ""),
        (200, "\"cached\"".into())
    );
    // A store the component does not list, whether or not it exists: the
    // call is refused, the component still runs.
    assert_eq!(
        kv("denied", "default", "get", ""),
        (409, "Error::AccessDenied".into())
    );
    assert_eq!(
        kv("allowed", "elsewhere", "get", ""),
        (409, "Error::AccessDenied".into())
    );
}

#[test]
fn a_redis_backed_store_keeps_its_keys_in_redis() {
    let (_, host) = shop();
    let key = unique("stock-cache");
    let kv = |op: &str, value: &str| {
        call(
            host,
            "/allowed/kv",
            &[
                ("store", "shared"),
                ("op", op),
                ("key", &key),
                ("value", value),
            ],
        )
    };
    assert_eq!(kv("set", "17"), (200, "null".into()));
    // As Spin's redis store: the key as given, no label prefix.
    let stored: String = redis::cmd("GET")
        .arg(&key)
        .query(&mut redis_client())
        .unwrap();
    assert_eq!(stored, "17");
    assert_eq!(kv("get", ""), (200, "\"17\"".into()));
    assert_eq!(kv("exists", ""), (200, "true".into()));
    assert_eq!(kv("delete", ""), (200, "null".into()));
    assert_eq!(kv("get", ""), (200, "null".into()));
}

#[test]
fn a_redis_backed_store_works_again_once_redis_is_back() {
    let port = free_port();
    let first = redis_on(port);
    let app = write_app(
        &unique("flaky-redis"),
        &[("app", "key_value_stores = [\"flaky\"]")],
    );
    let config = std::fs::read_to_string(&app.runtime_config).unwrap();
    std::fs::write(
        &app.runtime_config,
        format!("{config}\n[key_value_store.flaky]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let mut host = Host::start(app.manifest.to_str().unwrap(), &app.env());
    let kv = |op: &str, value: &str| {
        call(
            &host,
            "/app/kv",
            &[
                ("store", "flaky"),
                ("op", op),
                ("key", "k"),
                ("value", value),
            ],
        )
    };
    assert_eq!(kv("set", "1"), (200, "null".into()));
    first.kill();
    let (status, body) = kv("get", "");
    assert_eq!(status, 409, "Redis is down: {body}");
    assert!(body.starts_with("Error::Other("), "{body}");
    // Redis is back (empty: it keeps nothing on disk): the store reconnects
    // by itself, without a restart of the host.
    let second = redis_on(port);
    eventually(Duration::from_secs(60), "the store works again", || {
        (kv("set", "2").0 == 200).then_some(())
    });
    assert_eq!(kv("get", ""), (200, "\"2\"".into()));
    host.terminate(Duration::from_secs(90));
    second.kill();
}

#[test]
fn key_value_data_lives_in_spins_files_shared_by_every_host_of_the_app() {
    let (app, host) = shop();
    let key = unique("session");
    let set = [
        ("store", "default"),
        ("op", "set"),
        ("key", &key),
        ("value", "kept"),
    ];
    assert_eq!(call(host, "/allowed/kv", &set).0, 200);
    // Where Spin keeps them: `default` in the state directory, `cache`
    // beside the runtime config.
    assert!(app.state_dir().join("sqlite_key_value.db").is_file());
    let cache = [
        ("store", "cache"),
        ("op", "set"),
        ("key", &key),
        ("value", "x"),
    ];
    assert_eq!(call(host, "/allowed/kv", &cache).0, 200);
    assert!(app.dir.join("cache.db").is_file());
    // A second host of the app (as `spin up` and a trigger plugin run side
    // by side) reads what the first wrote.
    let mut second = Host::start(app.manifest.to_str().unwrap(), &app.env());
    let get = [("store", "default"), ("op", "get"), ("key", key.as_str())];
    assert_eq!(call(&second, "/allowed/kv", &get), (200, "\"kept\"".into()));
    second.terminate(Duration::from_secs(90));
}

#[test]
fn sqlite_databases_answer_as_on_spin_and_only_to_the_components_that_list_them() {
    let (_, host) = shop();
    let table = unique("orders").replace('-', "_");
    let sql = |path: &str, db: &str, sql: &str, args: &[&str]| {
        let mut query = vec![("db", db), ("sql", sql)];
        query.extend(args.iter().map(|a| ("arg", *a)));
        call(host, path, &query)
    };
    let create = format!(
        "CREATE TABLE {table} (id INTEGER PRIMARY KEY, item TEXT, price REAL, photo BLOB, note)"
    );
    assert_eq!(sql("/allowed/sqlite", "orders", &create, &[]).0, 200);
    let insert = format!("INSERT INTO {table} (item, price, photo, note) VALUES (?, ?, ?, ?)");
    let (status, body) = sql(
        "/allowed/sqlite3",
        "orders",
        &insert,
        &["t:tea", "r:2.5", "b:png", "null"],
    );
    assert_eq!(status, 200, "{body}");
    let inserted: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        inserted["changes"], 1,
        "3.0.0's changes() counts the insert"
    );
    assert_eq!(inserted["last_insert_rowid"], 1);
    let select = format!("SELECT id, item, price, photo, note FROM {table} WHERE price > ?");
    let rows = ok(
        host,
        "/allowed/sqlite",
        &[("db", "orders"), ("sql", &select), ("arg", "i:1")],
    );
    assert_eq!(
        rows,
        serde_json::json!({
            "columns": ["id", "item", "price", "photo", "note"],
            "rows": [[1, "tea", 2.5, {"blob": [112, 110, 103]}, null]],
        })
    );
    let (status, body) = sql("/allowed/sqlite", "orders", "SELEC 1", &[]);
    assert_eq!(status, 409);
    assert!(
        body.contains("Io(") && body.contains("syntax error"),
        "{body}"
    );
    // The default database is another file.
    let (status, body) = sql(
        "/allowed/sqlite",
        "default",
        &format!("SELECT * FROM {table}"),
        &[],
    );
    assert_eq!(status, 409);
    assert!(body.contains("no such table"), "{body}");
    // A statement may not reach files beyond its database.
    let attach = format!(
        "ATTACH DATABASE '{}' AS other",
        std::env::temp_dir().join("x.db").display()
    );
    let (status, body) = sql("/allowed/sqlite", "orders", &attach, &[]);
    assert_eq!(status, 409, "{body}");
    // Nor with the file's name bound as a parameter (which SQLite's
    // authorizer never sees), nor in memory: every attach is refused.
    let file = std::env::temp_dir().join(unique("attached") + ".db");
    let bound = format!("t:{}", file.display());
    let (status, body) = sql(
        "/allowed/sqlite",
        "orders",
        "ATTACH DATABASE ? AS other",
        &[&bound],
    );
    assert_eq!(status, 409, "{body}");
    assert!(!file.exists(), "the attach created {}", file.display());
    let (status, body) = sql("/allowed/sqlite", "orders", "ATTACH ':memory:' AS m", &[]);
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        sql("/denied/sqlite", "orders", "SELECT 1", &[]),
        (409, "Error::AccessDenied".into())
    );
    assert_eq!(
        sql("/denied/sqlite3", "default", "SELECT 1", &[]),
        (409, "Error::AccessDenied".into())
    );
}

#[test]
fn a_store_or_database_no_runtime_config_defines_stops_the_app_naming_it() {
    for (settings, expected) in [
        (
            "key_value_stores = [\"sessions\"]",
            "uses key-value store `sessions`",
        ),
        (
            "sqlite_databases = [\"ledger\"]",
            "uses SQLite database `ledger`",
        ),
    ] {
        let app = write_app(&unique("undefined"), &[("app", settings)]);
        let output = Command::new(mart_bin())
            .args(["up", "--from"])
            .arg(&app.manifest)
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--runtime-config-file")
            .arg(&app.runtime_config)
            .env_remove("MART_KAFKA_BROKERS")
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("component `app` {expected}")),
            "{stderr}"
        );
    }
}

fn redis_client() -> redis::Connection {
    redis::Client::open(format!("redis://{}", redis().address()))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(10))
        .unwrap()
}

/// Connections the Redis server has accepted since it started.
fn connections_received(redis: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(redis).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("INFO stats has total_connections_received")
}

#[test]
fn outbound_redis_reaches_only_the_addresses_a_component_lists() {
    let (_, host) = shop();
    let address = format!("redis://{}", redis().address());
    let key = unique("stock");
    let op = |component: &str, op: &str, value: &str| {
        call(
            host,
            &format!("/{component}/redis"),
            &[
                ("addr", &address),
                ("op", op),
                ("key", &key),
                ("value", value),
            ],
        )
    };
    let mut server = redis_client();
    assert_eq!(op("allowed", "set", "41"), (200, "null".into()));
    let stored: String = redis::cmd("GET").arg(&key).query(&mut server).unwrap();
    assert_eq!(stored, "41", "the value reached the server");
    assert_eq!(op("allowed", "incr", ""), (200, "42".into()));
    assert_eq!(op("allowed", "get", ""), (200, "\"42\"".into()));
    assert_eq!(op("allowed", "del", ""), (200, "1".into()));
    assert_eq!(op("allowed", "get", ""), (200, "null".into()));
    assert_eq!(op("allowed", "sadd", "red,green,red"), (200, "2".into()));
    assert_eq!(
        op("allowed", "smembers", ""),
        (200, "[\"green\",\"red\"]".into())
    );
    assert_eq!(
        op("allowed", "incr", ""),
        (409, "Error::TypeError".into()),
        "INCR of a set"
    );
    assert_eq!(op("allowed", "srem", "red"), (200, "1".into()));
    let executed = call(
        host,
        "/allowed/redis",
        &[
            ("addr", &address),
            ("op", "execute"),
            ("key", "SET"),
            ("value", &format!("{key}-n 7")),
        ],
    );
    assert_eq!(executed, (200, "[{\"status\":\"OK\"}]".into()));
    // Denied: Spin's answer, and nothing dialled. Asked of a Redis of its
    // own, whose connection count no other test moves.
    let lone = redis_on(free_port());
    let mut lone_client = redis::Client::open(format!("redis://{}", lone.address()))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(10))
        .unwrap();
    let before = connections_received(&mut lone_client);
    let denied = call(
        host,
        "/denied/redis",
        &[
            ("addr", &format!("redis://{}", lone.address())),
            ("op", "get"),
            ("key", &key),
            ("value", ""),
        ],
    );
    let after = connections_received(&mut lone_client);
    lone.kill();
    assert_eq!(denied, (409, "Error::InvalidAddress".into()));
    assert_eq!(after, before, "the denied component dialled Redis");
}

#[test]
fn outbound_mqtt_publishes_only_to_the_brokers_a_component_lists() {
    let (_, host) = shop();
    let topic = unique("orders/paid");
    let mut options = rumqttc::MqttOptions::new(unique("listener"), "127.0.0.1", mosquitto().port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut connection) = rumqttc::Client::new(options, 10);
    client.subscribe(&topic, rumqttc::QoS::AtLeastOnce).unwrap();
    let next = |connection: &mut rumqttc::Connection| {
        connection
            .recv_timeout(Duration::from_secs(30))
            .expect("an MQTT event within 30 s")
            .expect("the listener's connection holds")
    };
    while !matches!(
        next(&mut connection),
        rumqttc::Event::Incoming(rumqttc::Incoming::SubAck(_))
    ) {}

    let address = format!(
        "mqtt://{}?client_id={}",
        mosquitto().address(),
        unique("shop")
    );
    let published = call(
        host,
        "/allowed/mqtt",
        &[
            ("addr", &address),
            ("topic", &topic),
            ("payload", "order 7 paid"),
            ("qos", "1"),
        ],
    );
    assert_eq!(published, (200, "\"published\"".into()));
    let message = loop {
        if let rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p)) = next(&mut connection) {
            break p;
        }
    };
    assert_eq!(message.topic, topic);
    assert_eq!(&message.payload[..], b"order 7 paid");

    let (status, body) = call(
        host,
        "/denied/mqtt",
        &[
            ("addr", &address),
            ("topic", &topic),
            ("payload", "x"),
            ("qos", "1"),
        ],
    );
    assert_eq!(status, 409);
    assert!(
        body.contains("ConnectionFailed") && body.contains("not permitted"),
        "{body}"
    );
}
