//! Spin's built-in interfaces through the real host: key-value, SQLite,
//! outbound Redis and MQTT, called as any Spin app calls them, against real
//! Redis and Mosquitto servers, in both generations side by side: p2
//! (`tests/components/spin-interfaces`, spin-sdk 5.2: key-value 2.0.0,
//! SQLite 2.0.0 and 3.0.0, Redis and MQTT 2.0.0) and p3
//! (`tests/components/p3-interfaces`, spin-sdk 6: Spin 4's async key-value
//! 3.0.0, SQLite 3.1.0, Redis and MQTT 3.0.0, and wasi:keyvalue). Both
//! answer the same routes the same way, so each test runs against both.
//!
//! Each generation has two components in one app running the same code:
//! `allowed` lists the stores, databases and addresses, `denied` lists
//! none, and gets Spin's access-denied answers from a call, never a failed
//! load. The p3 components are `allowed-p3` and `denied-p3`.

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

/// The component ids' suffixes of the two generations.
const GENERATIONS: [&str; 2] = ["", P3];

/// A p3 component's id ends with this (it runs `p3-interfaces`).
const P3: &str = "-p3";

fn component(id: &str, settings: &str) -> String {
    let file = if id.ends_with(P3) {
        "p3_interfaces.wasm"
    } else {
        "spin_interfaces.wasm"
    };
    let wasm = repo_root().join("target/wasm32-wasip2/wasm").join(file);
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
            &[
                ("allowed", &allowed),
                ("denied", &denied),
                ("allowed-p3", &allowed),
                ("denied-p3", &denied),
            ],
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
    for g in GENERATIONS {
        key_value_store_is_open_to_the_components_that_list_it(host, g);
    }
}

fn key_value_store_is_open_to_the_components_that_list_it(host: &Host, g: &str) {
    let key = unique("cart");
    let kv = |component: &str, store: &str, op: &str, value: &str| {
        call(
            host,
            &format!("/{component}{g}/kv"),
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
    let keys = ok(
        host,
        &format!("/allowed{g}/kv"),
        &[("store", "default"), ("op", "keys")],
    );
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
    for g in GENERATIONS {
        redis_backed_store_keeps_its_keys_in_redis(host, g);
    }
}

fn redis_backed_store_keeps_its_keys_in_redis(host: &Host, g: &str) {
    let key = unique("stock-cache");
    let kv = |op: &str, value: &str| {
        call(
            host,
            &format!("/allowed{g}/kv"),
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
    let stores = "key_value_stores = [\"flaky\"]";
    let app = write_app(
        &unique("flaky-redis"),
        &[("app", stores), ("app-p3", stores)],
    );
    let config = std::fs::read_to_string(&app.runtime_config).unwrap();
    std::fs::write(
        &app.runtime_config,
        format!("{config}\n[key_value_store.flaky]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let mut host = Host::start(app.manifest.to_str().unwrap(), &app.env());
    let kv = |g: &str, op: &str, value: &str| {
        call(
            &host,
            &format!("/app{g}/kv"),
            &[
                ("store", "flaky"),
                ("op", op),
                ("key", "k"),
                ("value", value),
            ],
        )
    };
    for g in GENERATIONS {
        assert_eq!(kv(g, "set", "1"), (200, "null".into()));
    }
    first.kill();
    for g in GENERATIONS {
        let (status, body) = kv(g, "get", "");
        assert_eq!(status, 409, "Redis is down: {body}");
        assert!(body.starts_with("Error::Other("), "{body}");
    }
    // Redis is back (empty: it keeps nothing on disk): the store reconnects
    // by itself, without a restart of the host.
    let second = redis_on(port);
    for g in GENERATIONS {
        eventually(Duration::from_secs(60), "the store works again", || {
            (kv(g, "set", "2").0 == 200).then_some(())
        });
        assert_eq!(kv(g, "get", ""), (200, "\"2\"".into()));
    }
    host.terminate(Duration::from_secs(90));
    second.kill();
}

#[test]
fn key_value_data_lives_in_spins_files_shared_by_every_host_of_the_app() {
    let (app, host) = shop();
    let keys = GENERATIONS.map(|g| unique(&format!("session{g}")));
    for (g, key) in GENERATIONS.iter().zip(&keys) {
        key_value_data_lives_in_spins_files(app, host, g, key);
    }
    // A second host of the app (as `spin up` and a trigger plugin run side
    // by side) reads what the first wrote, in either generation.
    let mut second = Host::start(app.manifest.to_str().unwrap(), &app.env());
    for (g, key) in GENERATIONS.iter().zip(&keys) {
        for reader in GENERATIONS {
            let get = [("store", "default"), ("op", "get"), ("key", key.as_str())];
            let answer = call(&second, &format!("/allowed{reader}/kv"), &get);
            assert_eq!(answer, (200, "\"kept\"".into()), "written by {g:?}");
        }
    }
    second.terminate(Duration::from_secs(90));
}

fn key_value_data_lives_in_spins_files(app: &App, host: &Host, g: &str, key: &str) {
    let path = format!("/allowed{g}/kv");
    let set = [
        ("store", "default"),
        ("op", "set"),
        ("key", key),
        ("value", "kept"),
    ];
    assert_eq!(call(host, &path, &set).0, 200);
    // Where Spin keeps them: `default` in the state directory, `cache`
    // beside the runtime config.
    assert!(app.state_dir().join("sqlite_key_value.db").is_file());
    let cache = [
        ("store", "cache"),
        ("op", "set"),
        ("key", key),
        ("value", "x"),
    ];
    assert_eq!(call(host, &path, &cache).0, 200);
    assert!(app.dir.join("cache.db").is_file());
}

#[test]
fn sqlite_databases_answer_as_on_spin_and_only_to_the_components_that_list_them() {
    let (_, host) = shop();
    for g in GENERATIONS {
        sqlite_databases_answer_as_on_spin(host, g);
    }
}

/// Runs `sql` with `args` through `probe` (e.g. `sqlite`) of `component`
/// in generation `g`.
fn run_sql(
    host: &Host,
    component: &str,
    g: &str,
    probe: &str,
    (db, sql): (&str, &str),
    args: &[&str],
) -> (u16, String) {
    let mut query = vec![("db", db), ("sql", sql)];
    query.extend(args.iter().map(|a| ("arg", *a)));
    call(host, &format!("/{component}{g}/{probe}"), &query)
}

fn sqlite_databases_answer_as_on_spin(host: &Host, g: &str) {
    let table = unique("orders").replace('-', "_");
    let sql = |path: &str, db: &str, statement: &str, args: &[&str]| {
        let (component, probe) = path
            .trim_start_matches('/')
            .split_once('/')
            .expect("/<component>/<probe>");
        run_sql(host, component, g, probe, (db, statement), args)
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
        "3.0.0's (and 3.1.0's) changes() counts the insert"
    );
    assert_eq!(inserted["last_insert_rowid"], 1);
    let select = format!("SELECT id, item, price, photo, note FROM {table} WHERE price > ?");
    let rows = ok(
        host,
        &format!("/allowed{g}/sqlite"),
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
        for g in GENERATIONS {
            refuses_to_load(settings, expected, g);
        }
    }
}

fn refuses_to_load(settings: &str, expected: &str, g: &str) {
    {
        let id = format!("app{g}");
        let app = write_app(&unique("undefined"), &[(&id, settings)]);
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
            stderr.contains(&format!("component `{id}` {expected}")),
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
    for g in GENERATIONS {
        outbound_redis_reaches_only_listed_addresses(host, g);
    }
}

fn outbound_redis_reaches_only_listed_addresses(host: &Host, g: &str) {
    let address = format!("redis://{}", redis().address());
    let key = unique("stock");
    let op = |component: &str, op: &str, value: &str| {
        call(
            host,
            &format!("/{component}{g}/redis"),
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
        &format!("/allowed{g}/redis"),
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
        &format!("/denied{g}/redis"),
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
    for g in GENERATIONS {
        outbound_mqtt_publishes_only_to_listed_brokers(host, g);
    }
}

fn outbound_mqtt_publishes_only_to_listed_brokers(host: &Host, g: &str) {
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
        &format!("/allowed{g}/mqtt"),
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
        &format!("/denied{g}/mqtt"),
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

// What only the p3 generation has.

/// A wasi:keyvalue call through `component` (`op` and its parameters).
fn wasi_kv(host: &Host, component: &str, query: &[(&str, &str)]) -> (u16, String) {
    call(host, &format!("/{component}/wasi-kv"), query)
}

#[test]
fn a_p2_and_a_p3_component_of_one_app_share_stores_and_databases() {
    let (_, host) = shop();
    let key = unique("shared-cart");
    for store in ["default", "cache", "shared"] {
        let kv = |component: &str, op: &str, value: &str| {
            let query = [
                ("store", store),
                ("op", op),
                ("key", key.as_str()),
                ("value", value),
            ];
            call(host, &format!("/{component}/kv"), &query)
        };
        assert_eq!(kv("allowed", "set", "from p2"), (200, "null".into()));
        assert_eq!(kv("allowed-p3", "get", ""), (200, "\"from p2\"".into()));
        let wasi = [("store", store), ("op", "get"), ("key", key.as_str())];
        assert_eq!(
            wasi_kv(host, "allowed-p3", &wasi),
            (200, "\"from p2\"".into()),
            "wasi:keyvalue reads spin:key-value's store {store}"
        );
        assert_eq!(kv("allowed-p3", "set", "from p3"), (200, "null".into()));
        assert_eq!(kv("allowed", "get", ""), (200, "\"from p3\"".into()));
        assert_eq!(kv("allowed-p3", "delete", ""), (200, "null".into()));
        assert_eq!(kv("allowed", "exists", ""), (200, "false".into()));
    }
    // A table one generation creates, the other reads.
    let table = unique("shared").replace('-', "_");
    let create = format!("CREATE TABLE {table} (item TEXT)");
    let (status, body) = run_sql(host, "allowed", "", "sqlite", ("orders", &create), &[]);
    assert_eq!(status, 200, "{body}");
    let insert = format!("INSERT INTO {table} VALUES (?)");
    let (status, body) = run_sql(
        host,
        "allowed",
        "-p3",
        "sqlite",
        ("orders", &insert),
        &["t:tea"],
    );
    assert_eq!(status, 200, "{body}");
    let select = format!("SELECT item FROM {table}");
    let (status, body) = run_sql(host, "allowed", "", "sqlite", ("orders", &select), &[]);
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"columns":["item"],"rows":[["tea"]]}"#)
    );
}

#[test]
fn wasi_keyvalue_serves_spins_stores_with_batches_and_counters() {
    let (_, host) = shop();
    for store in ["default", "shared"] {
        wasi_keyvalue_on(host, store);
    }
    // The same access rules as spin:key-value: a label the component does
    // not list is refused at `open`, whether or not a store has it.
    for (component, store) in [("denied-p3", "default"), ("allowed-p3", "elsewhere")] {
        assert_eq!(
            wasi_kv(
                host,
                component,
                &[("store", store), ("op", "get"), ("key", "k")]
            ),
            (409, "Error::AccessDenied".into())
        );
    }
}

fn wasi_keyvalue_on(host: &Host, store: &str) {
    let key = unique("wasi");
    let op = |op: &str, more: &[(&str, &str)]| {
        let mut query = vec![("store", store), ("op", op), ("key", key.as_str())];
        query.extend_from_slice(more);
        wasi_kv(host, "allowed-p3", &query)
    };
    let at = |store: &str| format!("store {store}");
    // store: the bucket's own calls.
    assert_eq!(
        op("set", &[("value", "v1")]),
        (200, "null".into()),
        "{}",
        at(store)
    );
    assert_eq!(op("get", &[]), (200, "\"v1\"".into()));
    assert_eq!(op("exists", &[]), (200, "true".into()));
    let (status, listed) = op("list", &[]);
    assert_eq!(status, 200, "{listed}");
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert!(
        listed["keys"]
            .as_array()
            .unwrap()
            .contains(&key.clone().into()),
        "{listed}"
    );
    assert_eq!(
        listed["cursor"],
        serde_json::Value::Null,
        "one page, as Spin"
    );
    assert_eq!(
        op("list", &[("cursor", "next")]),
        (
            409,
            r#"Error::Other("list_keys: cursor not supported")"#.into()
        ),
        "Spin refuses a cursor"
    );
    assert_eq!(op("delete", &[]), (200, "null".into()));
    assert_eq!(op("get", &[]), (200, "null".into()));
    assert_eq!(op("exists", &[]), (200, "false".into()));

    // batch: each key asked for answers, none where it is absent.
    let (a, b, absent) = (format!("{key}-a"), format!("{key}-b"), format!("{key}-c"));
    let pairs = format!("{a}=1,{b}=2");
    assert_eq!(op("set-many", &[("pairs", &pairs)]), (200, "null".into()));
    let keys = format!("{a},{b},{absent}");
    assert_eq!(
        ok_json(op("get-many", &[("keys", &keys)])),
        serde_json::json!([[a, "1"], [b, "2"], [absent, null]])
    );
    assert_eq!(
        op("delete-many", &[("keys", &format!("{a},{b}"))]),
        (200, "null".into())
    );
    assert_eq!(
        ok_json(op("get-many", &[("keys", &keys)])),
        serde_json::json!([[a, null], [b, null], [absent, null]])
    );

    // atomics: a counter starts at 0.
    let counter = [("value", "5")];
    assert_eq!(op("increment", &counter), (200, "5".into()));
    assert_eq!(op("increment", &[("value", "-7")]), (200, "-2".into()));
    assert_eq!(op("increment", &[("value", "0")]), (200, "-2".into()));

    // A compare-and-swap nobody interferes with swaps.
    let cas = |value: &str, meanwhile: &str| {
        ok_json(op("cas", &[("value", value), ("meanwhile", meanwhile)]))
    };
    assert_eq!(op("set", &[("value", "old")]), (200, "null".into()));
    assert_eq!(
        cas("new", ""),
        serde_json::json!({ "read": "old", "swapped": true })
    );
    assert_eq!(op("get", &[]), (200, "\"new\"".into()));
    // One whose key changed after the read fails, and hands back a
    // compare-and-swap that has read the new value, which then swaps.
    assert_eq!(
        cas("mine", "theirs"),
        serde_json::json!({ "read": "new", "swapped": false, "reread": "theirs", "retried": true })
    );
    assert_eq!(op("get", &[]), (200, "\"mine\"".into()));
    // An absent key read as absent: a value set meanwhile fails the swap.
    assert_eq!(op("delete", &[]), (200, "null".into()));
    assert_eq!(
        cas("mine", "theirs"),
        serde_json::json!({ "read": null, "swapped": false, "reread": "theirs", "retried": true })
    );
    assert_eq!(op("delete", &[]), (200, "null".into()));
}

fn ok_json((status, body): (u16, String)) -> serde_json::Value {
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn a_counter_is_kept_as_spin_keeps_it_and_a_non_counter_is_an_error() {
    let (_, host) = shop();
    let key = unique("counter");
    let op = |store: &str, op: &str, value: &str| {
        let query = [
            ("store", store),
            ("op", op),
            ("key", key.as_str()),
            ("value", value),
        ];
        wasi_kv(host, "allowed-p3", &query)
    };
    // Redis: INCRBY's decimal text, readable by any Redis client.
    assert_eq!(op("shared", "increment", "41"), (200, "41".into()));
    let stored: String = redis::cmd("GET")
        .arg(&key)
        .query(&mut redis_client())
        .unwrap();
    assert_eq!(stored, "41");
    // SQLite: 8 bytes little-endian, as Spin's SQLite store writes it; a
    // value that is not one is an error, not a guess.
    assert_eq!(op("default", "increment", "2"), (200, "2".into()));
    assert_eq!(op("default", "set", "two"), (200, "null".into()));
    let (status, body) = op("default", "increment", "1");
    assert_eq!(status, 409);
    assert!(body.contains("not a counter"), "{body}");
}

#[test]
fn get_keys_streams_every_key_of_a_store() {
    let (_, host) = shop();
    let prefix = unique("many");
    let names: Vec<String> = (0..60).map(|i| format!("{prefix}-{i:02}")).collect();
    let pairs = names
        .iter()
        .map(|n| format!("{n}=x"))
        .collect::<Vec<_>>()
        .join(",");
    let query = [
        ("store", "cache"),
        ("op", "set-many"),
        ("pairs", pairs.as_str()),
    ];
    assert_eq!(wasi_kv(host, "allowed-p3", &query), (200, "null".into()));
    // More keys than a stream's buffer: the component reads them one by
    // one, then the outcome.
    let keys = ok(
        host,
        "/allowed-p3/kv",
        &[("store", "cache"), ("op", "keys")],
    );
    let streamed: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k.as_str())
        .filter(|k| k.starts_with(&prefix))
        .collect();
    assert_eq!(streamed, names);
    // A store the component may not open: refused at open.
    assert_eq!(
        call(host, "/denied-p3/kv", &[("store", "cache"), ("op", "keys")]),
        (409, "Error::AccessDenied".into())
    );
}

#[test]
fn sqlite_3_1_streams_rows_and_reports_a_failure_after_them() {
    let (_, host) = shop();
    let stream = |statement: &str| {
        run_sql(
            host,
            "allowed",
            P3,
            "sqlite-stream",
            ("default", statement),
            &[],
        )
    };
    // Many rows, read one by one.
    let (status, body) = stream(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) \
         SELECT i FROM n",
    );
    assert_eq!(status, 200, "{body}");
    let streamed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rows = streamed["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 500);
    assert_eq!(
        (rows[0].clone(), rows[499].clone()),
        (serde_json::json!([1]), serde_json::json!([500]))
    );
    assert_eq!(streamed["end"], "ok");
    // A statement that fails on its second row: the first row streams,
    // the failure comes in the outcome.
    let (status, body) =
        stream("SELECT abs(i) FROM (SELECT 1 AS i UNION ALL SELECT -9223372036854775807 - 1) ");
    assert_eq!(status, 200, "{body}");
    let streamed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(streamed["rows"], serde_json::json!([[1]]));
    let end = streamed["end"].as_str().unwrap();
    assert!(
        end.contains("Io(") && end.contains("integer overflow"),
        "{end}"
    );
    // A statement that cannot start is the call's error.
    let (status, body) = stream("SELEC 1");
    assert_eq!(status, 409);
    assert!(body.contains("syntax error"), "{body}");
    // Access is 3.0's: open-async refuses a database not listed.
    assert_eq!(
        run_sql(
            host,
            "denied",
            P3,
            "sqlite-stream",
            ("default", "SELECT 1"),
            &[]
        ),
        (409, "Error::AccessDenied".into())
    );
}
