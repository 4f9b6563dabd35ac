//! Spin 4's generation on the host: spin-sdk 7 (WASI 0.3.0) and spin-sdk 6
//! (Spin 4.0's SDK, WASI 0.3.0-rc-2026-03-15) components serve beside a p2
//! one, and their instances are reused as Spin 4 reuses them. The probe
//! (tests/components/p3-probe, built with each SDK: `/p3` and `/rc`) keeps
//! a counter and an id in globals, so each answer says which instance
//! served it and how many requests that instance has served.

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::Duration;

use mart_integration_tests::servers::{pong_once, pong_once_on};
use mart_integration_tests::Host;

const APP: &str = "tests/fixtures/p3.toml";
/// The probe's routes: built with spin-sdk 7, and with spin-sdk 6.
const BOTH_VERSIONS: [&str; 2] = ["/p3", "/rc"];

/// An answer of the probe: `instance=<id> served=<n> [in_flight=<m>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Served {
    instance: String,
    served: u64,
    in_flight: Option<u64>,
}

fn served(host: &Host, path: &str) -> Served {
    let response = host.get(path);
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    parse(&response.text())
}

fn parse(text: &str) -> Served {
    let fields: HashMap<&str, &str> = text
        .split_whitespace()
        .filter_map(|field| field.split_once('='))
        .collect();
    Served {
        instance: fields["instance"].to_string(),
        served: fields["served"].parse().unwrap(),
        in_flight: fields.get("in_flight").map(|n| n.parse().unwrap()),
    }
}

/// Reuse options for a test; the idle timeout is long unless the test is
/// about it, so a slow moment of a loaded machine retires nothing.
fn host_with(options: &[&str]) -> Host {
    let mut args = vec!["--idle-instance-timeout", "120s"];
    args.extend_from_slice(options);
    Host::start_with(APP, &args, &[])
}

#[test]
fn a_spin_sdk_7_component_serves() {
    let host = host_with(&[]);
    let hello = host.get("/p3/hello");
    assert_eq!(hello.status, 200, "{}", hello.text());
    assert_eq!(hello.text(), "hello from a WASIp3 component");
    assert_eq!(hello.header("content-type"), Some("text/plain"));
}

#[test]
fn spin_4_templates_component_serves() {
    let host = host_with(&[]);
    let hello = host.get("/hello");
    assert_eq!(hello.status, 200, "{}", hello.text());
    assert_eq!(hello.text(), "Hello World!");
    // Its println! reaches the log (written by the host's log writer,
    // so possibly just after the answer) with Spin's spin-full-url.
    mart_integration_tests::eventually(Duration::from_secs(30), "the println! in the log", || {
        host.log()
            .contains("Handling request to Some(\"http://127.0.0.1:")
            .then_some(())
    });
}

#[test]
fn one_instance_serves_up_to_the_reuse_count_then_a_new_one_starts() {
    let host = host_with(&["--max-instance-reuse-count", "3"]);
    for version in BOTH_VERSIONS {
        let path = format!("{version}/count");
        instances_retire_after_three(&host, &path);
    }
}

fn instances_retire_after_three(host: &Host, path: &str) {
    let answers: Vec<Served> = (0..7).map(|_| served(host, path)).collect();
    let counts: Vec<u64> = answers.iter().map(|a| a.served).collect();
    assert_eq!(counts, [1, 2, 3, 1, 2, 3, 1], "{answers:?}");
    for (i, batch) in answers.chunks(3).enumerate() {
        assert!(
            batch.iter().all(|a| a.instance == batch[0].instance),
            "batch {i} was served by one instance: {answers:?}"
        );
    }
    assert_ne!(answers[0].instance, answers[3].instance, "{answers:?}");
    assert_ne!(answers[3].instance, answers[6].instance, "{answers:?}");
}

#[test]
fn the_default_reuse_keeps_one_instance_for_consecutive_requests() {
    let host = host_with(&[]);
    let answers: Vec<Served> = (0..20).map(|_| served(&host, "/p3/count")).collect();
    assert_eq!(
        answers.iter().map(|a| a.served).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>(),
        "Spin's default reuses an instance for 128 requests"
    );
}

#[test]
fn p2_instances_are_never_reused() {
    let host = host_with(&["--max-instance-reuse-count", "50"]);
    for _ in 0..5 {
        let response = host.get("/p2/count");
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.text(), "served=1");
    }
}

#[test]
fn a_trap_retires_the_instance() {
    let host = host_with(&[]);
    for (version, component) in BOTH_VERSIONS.into_iter().zip(["p3-probe", "p3-rc-probe"]) {
        let count = format!("{version}/count");
        let first = served(&host, &count);
        assert_eq!(served(&host, &count).served, 2);
        let trapped = host.get(&format!("{version}/trap"));
        assert_eq!(trapped.status, 500, "{}", trapped.text());
        assert!(
            trapped.text().contains(&format!("`{component}`")),
            "the problem names the component: {}",
            trapped.text()
        );
        let after = served(&host, &count);
        assert_eq!(after.served, 1, "a fresh instance: {after:?}");
        assert_ne!(after.instance, first.instance);
    }
}

#[test]
fn an_idle_instance_is_retired_after_the_idle_timeout() {
    let host = Host::start_with(APP, &["--idle-instance-timeout", "300ms"], &[]);
    let first = served(&host, "/p3/count");
    std::thread::sleep(Duration::from_millis(1500));
    let after = served(&host, "/p3/count");
    assert_eq!(after.served, 1, "the idle instance went: {after:?}");
    assert_ne!(after.instance, first.instance);
}

#[test]
fn an_instance_serves_at_most_the_concurrent_reuse_count_at_once() {
    let host = host_with(&[
        "--max-instance-concurrent-reuse-count",
        "2",
        "--max-instance-reuse-count",
        "100",
    ]);
    // Whether two overlapping requests meet in one instance depends on
    // when each worker is ready for another; a loaded machine may give
    // every request its own. So bursts until one overlap is seen (the
    // reuse), and never more than 2 at once in any (the limit).
    let mut seen = Vec::new();
    for _ in 0..5 {
        let answers: Vec<Served> = std::thread::scope(|scope| {
            let requests: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| served(&host, "/p3/sleep?ms=1500")))
                .collect();
            requests.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let most = answers.iter().filter_map(|a| a.in_flight).max().unwrap();
        assert!(most <= 2, "never more than 2 in one instance: {answers:?}");
        seen.push(most);
        if most == 2 {
            return;
        }
    }
    panic!("no two requests ever overlapped in one instance: {seen:?}");
}

#[test]
fn a_request_past_its_deadline_is_a_504_and_the_instance_goes() {
    // The component's own deadline (timeout_ms = 5000) is the request timeout.
    let host = host_with(&[]);
    let first = served(&host, "/p3/count");
    let slow = host.get("/p3/sleep?ms=20000");
    assert_eq!(slow.status, 504, "{}", slow.text());
    let after = served(&host, "/p3/count");
    assert_eq!(after.served, 1, "{after:?}");
    assert_ne!(after.instance, first.instance);

    let host = host_with(&["--request-timeout", "1s"]);
    let slow = host.get("/p3/sleep?ms=3000");
    assert_eq!(slow.status, 504, "--request-timeout wins: {}", slow.text());

    // A longer --request-timeout lets a request outlive timeout_ms.
    let host = host_with(&["--request-timeout", "20s"]);
    let slow = host.get("/p3/sleep?ms=6000");
    assert_eq!(slow.status, 200, "--request-timeout wins: {}", slow.text());
}

#[test]
fn p3_outbound_http_is_limited_to_allowed_hosts() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let host = Host::start(APP, &[("SPIN_VARIABLE_UPSTREAM_PORT", port.to_string())]);
    for version in BOTH_VERSIONS {
        let server = pong_once_on(TcpListener::bind(("127.0.0.1", port)).unwrap());
        let allowed = host.get(&format!(
            "{version}/outbound?url=http://127.0.0.1:{port}/ping"
        ));
        assert_eq!(allowed.text(), "status=200", "{version}");
        server.join().unwrap();

        let (other, _server) = pong_once();
        let refused = host.get(&format!(
            "{version}/outbound?url=http://127.0.0.1:{other}/ping"
        ));
        assert_eq!(refused.status, 502, "{version}: {}", refused.text());
        assert!(
            refused.text().contains("HttpRequestDenied"),
            "{version}: {}",
            refused.text()
        );
    }
}

#[test]
fn a_wasi_version_the_host_does_not_serve_is_refused_at_load_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let component =
        wat::parse_str(r#"(component (import "wasi:http/types@0.3.0-rc-2025-09-16" (instance)))"#)
            .unwrap();
    std::fs::write(dir.path().join("old.wasm"), component).unwrap();
    std::fs::write(
        dir.path().join("spin.toml"),
        r#"spin_manifest_version = 2
[application]
name = "old"
[[trigger.http]]
route = "/..."
component = "old"
[component.old]
source = "old.wasm"
"#,
    )
    .unwrap();
    let output = std::process::Command::new(mart_integration_tests::mart_bin())
        .args(["up", "--from"])
        .arg(dir.path().join("spin.toml"))
        .args([
            "--listen",
            &format!("127.0.0.1:{}", mart_integration_tests::free_port()),
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("component `old`"), "{stderr}");
    assert!(
        stderr.contains(
            "`wasi:http/types@0.3.0-rc-2025-09-16`, a WASI version this host does not serve"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("spin-sdk 6"), "says what to do: {stderr}");
}

#[test]
fn reuse_options_are_checked_when_read() {
    for (option, value, says) in [
        ("--max-instance-reuse-count", "0", "at least 1"),
        ("--max-instance-concurrent-reuse-count", "8..8", "empty"),
        ("--idle-instance-timeout", "5m", "unknown unit"),
    ] {
        let output = std::process::Command::new(mart_integration_tests::mart_bin())
            .args(["up", "--from", APP, option, value])
            .current_dir(mart_integration_tests::repo_root())
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{option} {value}: {stderr}");
    }
}

/// The probe's PostgreSQL routes, against the test cluster.
struct Pg<'a> {
    host: &'a Host,
    url: String,
}

impl Pg<'_> {
    fn call(&self, route: &str, sql: &str, arg: &str) -> (u16, String) {
        let path = format!(
            "/pg/{route}?url={}&sql={}&arg={}",
            encode(&self.url),
            encode(sql),
            encode(arg)
        );
        let response = self.host.get(&path);
        (response.status, response.text())
    }
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn pg_host(args: &[&str]) -> Host {
    let port = mart_integration_tests::postgres().port;
    Host::start_with(APP, args, &[("SPIN_VARIABLE_PG_PORT", port.to_string())])
}

fn pg_url() -> String {
    let port = mart_integration_tests::postgres().port;
    format!("postgres://mart@127.0.0.1:{port}/postgres")
}

#[test]
fn spin_variables_3_gives_a_component_its_own_variables() {
    let host = pg_host(&[]);
    let greeting = host.get("/pg/var?name=greeting");
    assert_eq!(
        (greeting.status, greeting.text()),
        (200, "hello, world".into())
    );
    let undefined = host.get("/pg/var?name=upstream_port");
    assert_eq!(undefined.status, 404);
    assert!(
        undefined.text().contains("Undefined"),
        "{}",
        undefined.text()
    );
    let invalid = host.get("/pg/var?name=Not-A-Name");
    assert!(invalid.text().contains("InvalidName"), "{}", invalid.text());
}

#[test]
fn postgres_4_2_streams_rows_executes_and_reports_errors_as_spin_4_0_does() {
    let host = pg_host(&[]);
    let pg = Pg {
        host: &host,
        url: pg_url(),
    };
    let table = format!("p3_items_{}", std::process::id());
    let create =
        format!("CREATE TABLE {table} (name text PRIMARY KEY, qty int4 NOT NULL DEFAULT 1)");
    assert_eq!(pg.call("execute", &create, ""), (200, "0".into()));
    let insert = format!("INSERT INTO {table} (name) VALUES ($1)");
    assert_eq!(pg.call("execute", &insert, "tea"), (200, "1".into()));
    assert_eq!(pg.call("execute", &insert, "jam"), (200, "1".into()));

    let (status, body) = pg.call(
        "query",
        &format!("SELECT name, qty FROM {table} ORDER BY name"),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rows["columns"], serde_json::json!(["name", "qty"]));
    assert_eq!(
        rows["rows"],
        serde_json::json!([["jam", "1"], ["tea", "1"]])
    );

    // As Spin 4.0.2: no rows, and no columns (it reads them off the first row).
    let (status, body) = pg.call(
        "query",
        &format!("SELECT name FROM {table} WHERE name = $1"),
        "none",
    );
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"columns":[],"rows":[]}"#)
    );

    // A unique violation raised while the statement runs: structured, at
    // the stream's end for a query, as the call's error for an execute.
    let returning = format!("INSERT INTO {table} (name) VALUES ($1) RETURNING name");
    let (status, body) = pg.call("query", &returning, "tea");
    assert_eq!(status, 502);
    assert!(
        body.starts_with("end: PgError(Error::QueryFailed(QueryError::DbError(DbError {"),
        "{body}"
    );
    assert!(body.contains(r#"code: "23505""#), "{body}");
    let (status, body) = pg.call("execute", &insert, "tea");
    assert_eq!(status, 502);
    assert!(
        body.contains("Error::QueryFailed(QueryError::DbError(DbError {"),
        "{body}"
    );
    assert!(body.contains(r#"code: "23505""#), "{body}");

    // A statement PostgreSQL refuses before running it: the call's error.
    let (status, body) = pg.call("query", "SELEC 1", "");
    assert_eq!(status, 502);
    assert!(
        body.starts_with("call: PgError(Error::QueryFailed("),
        "{body}"
    );

    pg.call("execute", &format!("DROP TABLE {table}"), "");
}

#[test]
fn postgres_4_2_without_spin_4_0s_limits_gives_columns_of_an_empty_result() {
    let host = pg_host(&["--pg-compatibility", "full"]);
    let pg = Pg {
        host: &host,
        url: pg_url(),
    };
    let (status, body) = pg.call("query", "SELECT 1::int4 AS n WHERE false", "");
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"columns":["n"],"rows":[]}"#)
    );
}

#[test]
fn postgres_4_2_reaches_only_the_addresses_a_component_lists() {
    let host = pg_host(&[]);
    let port = mart_integration_tests::postgres().port;
    let open = |url: String| host.get(&format!("/pg/open?url={}", encode(&url)));
    let allowed = open(pg_url());
    assert_eq!((allowed.status, allowed.text()), (200, "opened".into()));
    for url in [
        format!("postgres://mart@127.0.0.2:{port}/postgres"),
        format!("postgres://mart@127.0.0.1:{}/postgres", port + 1),
    ] {
        let refused = open(url.clone());
        assert_eq!(refused.status, 502, "{url}");
        assert!(
            refused.text().contains("is not permitted"),
            "{url}: {}",
            refused.text()
        );
    }
}
