//! `wasi:otel@0.2.0-rc.2` (Spin 4's platform world) through the real host:
//! a spin-sdk 6 component (tests/components/p3-otel) asks for the span it
//! runs in, starts a child of it, runs a statement, and ends its span with
//! an attribute. With an exporter, its span arrives at the collector (a
//! receiver in the test decoding OTLP) in the request's trace, between the
//! server span and the statement's span; without one, nothing fails.

use std::collections::HashMap;
use std::time::Duration;

use mart_integration_tests::otlp::{OtlpReceiver, ReceivedSpan, CLIENT, INTERNAL, SERVER};
use mart_integration_tests::{postgres, Host};

const APP: &str = "tests/fixtures/otel.toml";
const SPANS: Duration = Duration::from_secs(30);

fn exporting_to(receiver: &OtlpReceiver) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.clone()),
        ("OTEL_SERVICE_NAME", "mart-under-test".into()),
        // The batch processor's default is 5 s; the test waits less.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ]
}

/// The component's answer: `trace_id=… outer=… span=… statement=…`.
fn fields(text: &str) -> HashMap<String, String> {
    text.split_whitespace()
        .filter_map(|field| field.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `/otel/work`, running its statement against the test cluster.
fn work(host: &Host, headers: &[(&str, &str)]) -> HashMap<String, String> {
    let db: String = percent_encoded(&postgres().database_url("postgres"));
    let response = host.request("GET", &format!("/otel/work?db={db}"), headers, None);
    assert_eq!(response.status, 200, "{}\n{}", response.text(), host.log());
    let answer = fields(&response.text());
    assert_eq!(answer["statement"], "ok", "{answer:?}");
    answer
}

/// `text` as a query parameter's value.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn find<'a>(spans: &'a [ReceivedSpan], span_id: &str) -> Option<&'a ReceivedSpan> {
    spans.iter().find(|s| s.span_id == span_id)
}

#[test]
fn a_components_own_span_joins_the_trace_under_the_server_span_and_over_its_statement() {
    let receiver = OtlpReceiver::start();
    let host = Host::start(APP, &exporting_to(&receiver));
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let answer = work(
        &host,
        &[("traceparent", &format!("00-{trace_id}-{caller}-01"))],
    );

    // outer-span-context is the request's server span, in the caller's trace.
    assert_eq!(answer["trace_id"], trace_id);
    let (outer, own) = (&answer["outer"], &answer["span"]);

    let spans = receiver.wait_for(SPANS, "the component's span and its statement", |spans| {
        find(spans, own).is_some()
            && find(spans, outer).is_some()
            && spans
                .iter()
                .any(|s| &s.parent_span_id == own && s.kind == CLIENT)
    });

    let server = find(&spans, outer).unwrap();
    assert_eq!(server.kind, SERVER);
    assert_eq!(server.name, "GET /otel/...");
    assert_eq!(server.parent_span_id, caller);

    let component = find(&spans, own).unwrap();
    assert_eq!(component.trace_id, trace_id);
    assert_eq!(component.parent_span_id, *outer, "{component:#?}");
    assert_eq!(component.name, "p3-otel work");
    assert_eq!(component.kind, INTERNAL);
    assert_eq!(component.attribute("mart.test.flavour"), Some("tea"));
    assert_eq!(component.service, "mart-under-test");

    // The host's statement span, made while the component's span was
    // open, is that span's child, as on Spin.
    let statement = spans
        .iter()
        .find(|s| &s.parent_span_id == own && s.kind == CLIENT)
        .unwrap();
    assert_eq!(statement.trace_id, trace_id);
    assert_eq!(statement.attribute("db.system.name"), Some("postgresql"));
    assert_eq!(statement.attribute("db.query.text"), Some("SELECT 1"));
}

#[test]
fn without_an_exporter_the_component_loads_and_its_route_answers() {
    let host = Host::start(APP, &[]);
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let answer = work(
        &host,
        &[("traceparent", &format!("00-{trace_id}-b7ad6b7169203331-01"))],
    );
    // The ids still reach the component: the host continues the trace
    // whether or not it exports.
    assert_eq!(answer["trace_id"], trace_id);
    assert_ne!(answer["outer"], "b7ad6b7169203331");
    assert_ne!(answer["outer"], "0".repeat(16));
    // A second request: on-start and on-end did nothing and failed nothing.
    work(&host, &[]);
}

#[test]
fn ending_a_span_never_started_traps_as_on_spin_and_huge_attribute_lists_are_bounded() {
    let receiver = OtlpReceiver::start();
    let host = Host::start(APP, &exporting_to(&receiver));

    // Spin's factor-otel fails the call ("Trying to end a span that was
    // not started"): the invocation traps and answers 500; the host serves on.
    let unstarted = host.get("/otel/unstarted");
    assert_eq!(unstarted.status, 500, "{}", unstarted.text());
    // Logged when the worker retires the trapped instance, which may be
    // just after the 500 went out.
    mart_integration_tests::eventually(SPANS, "the trap in the host's log", || {
        host.log().contains("was not started").then_some(())
    });

    let huge = host.get("/otel/huge");
    assert_eq!(huge.status, 200, "{}", huge.text());
    let span = fields(&huge.text())["span"].clone();
    let spans = receiver.wait_for(SPANS, "the huge span", |spans| find(spans, &span).is_some());
    let attributes = find(&spans, &span).unwrap().attributes.len();
    assert_eq!(attributes, 128, "the SDK's default span limit");

    work(&host, &[]);
}

#[test]
fn logs_reach_the_hosts_log_with_the_component_id_and_metrics_are_accepted() {
    let host = Host::start(APP, &[]);
    let message = format!("otel-log-{}", std::process::id());
    let logged = host.get(&format!("/otel/log?message={message}"));
    assert_eq!(logged.status, 200, "{}", logged.text());
    let line = mart_integration_tests::eventually(
        Duration::from_secs(10),
        "the record in the host's log",
        || {
            host.log()
                .lines()
                .find(|line| line.contains(&message))
                .map(str::to_string)
        },
    );
    assert!(line.contains("p3-otel"), "{line}");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("mart.test.flavour=tea"), "{line}");

    // Without an OTLP metrics exporter (this host has none), as on Spin
    // without one: accepted, nothing sent.
    let exported = host.get("/otel/metrics");
    assert_eq!(exported.status, 200, "{}", exported.text());
    assert_eq!(exported.text(), "exported");

    // No exporter: nothing is tracked, so ending an unknown span is no
    // error either (Spin checks only when it exports).
    assert_eq!(host.get("/otel/unstarted").status, 200);
}
