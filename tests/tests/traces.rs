//! Traces exported over OTLP (issue 18): with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! set, as for Spin, the host sends its spans to a collector (here a
//! receiver in the test decoding OTLP's protobuf messages). One placed
//! order is one trace, from the caller's `POST /orders` through every
//! outbox publish and Kafka handler to the payment that makes it paid.

mod saga_support;

use std::sync::OnceLock;
use std::time::Duration;

use mart_integration_tests::otlp::{
    OtlpReceiver, ReceivedSpan, CLIENT, CONSUMER, INTERNAL, PRODUCER, SERVER, STATUS_ERROR,
};
use mart_integration_tests::Host;
use saga_support::*;

/// Long enough for the saga's hops on a loaded machine.
const SPANS: Duration = Duration::from_secs(90);

fn exporting_to(receiver: &OtlpReceiver) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.clone()),
        ("OTEL_SERVICE_NAME", "mart-under-test".into()),
        // The batch processor's default is 5 s; the test waits less.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ]
}

/// The whole app, exporting to one receiver, shared by this binary's tests
/// of it: two hosts of one app would share its consumer groups and its
/// outbox, so one test's order could be carried, and its spans exported,
/// by the other test's host (each test picks its own spans out).
fn app() -> (&'static OtlpReceiver, &'static Host) {
    static RECEIVER: OnceLock<OtlpReceiver> = OnceLock::new();
    let receiver = RECEIVER.get_or_init(OtlpReceiver::start);
    (receiver, Host::shared("spin.toml", &exporting_to(receiver)))
}

fn in_trace<'a>(spans: &'a [ReceivedSpan], trace_id: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.trace_id == trace_id).collect()
}

fn parent<'a>(spans: &[&'a ReceivedSpan], span: &ReceivedSpan) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .copied()
        .find(|s| s.span_id == span.parent_span_id)
}

/// The consumer span of `group` handling a record of `topic`.
fn handled<'a>(spans: &[&'a ReceivedSpan], group: &str, topic: &str) -> Option<&'a ReceivedSpan> {
    spans.iter().copied().find(|s| {
        s.kind == CONSUMER
            && s.attribute("messaging.consumer.group.name") == Some(group)
            && s.attribute("messaging.destination.name") == Some(topic)
    })
}

#[test]
fn one_placed_order_is_one_trace_from_post_orders_to_paid() {
    let (receiver, host) = app();
    let user = customer(host);
    let item = product(host, 250, 5);
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let order = place_traced(
        host,
        &user,
        &item,
        &format!("00-{trace_id}-{caller_span}-01"),
    );
    wait_for(host, &user, &order, "paid");

    // The last hop, orders-events handling the payment's outcome, and every
    // span between it and the request: spans are exported in batches as they
    // end, so a hop's span may arrive after its child's.
    let spans = receiver.wait_for(
        SPANS,
        "the chain from the request to the payment reaching orders",
        |spans| {
            let trace = in_trace(spans, trace_id);
            let Some(mut at) = handled(&trace, "mart.orders-events", "mart.payments") else {
                return false;
            };
            while let Some(up) = parent(&trace, at) {
                at = up;
            }
            at.parent_span_id == caller_span
        },
    );
    let trace = in_trace(&spans, trace_id);

    // The request: a server span continuing the caller's span.
    let request = trace
        .iter()
        .find(|s| s.kind == SERVER && s.name == "POST /orders")
        .unwrap_or_else(|| panic!("no POST /orders span in {trace:#?}"));
    assert_eq!(request.parent_span_id, caller_span);
    assert_eq!(request.service, "mart-under-test");
    assert_eq!(request.attribute("http.request.method"), Some("POST"));
    assert_eq!(request.attribute("http.route"), Some("/orders"));
    assert_eq!(request.attribute("http.response.status_code"), Some("201"));
    assert_eq!(request.attribute("mart.component"), Some("orders"));
    assert_ne!(request.status_code, STATUS_ERROR);

    // The component's statements: client spans under the request, the
    // prepared SQL without the values bound to it.
    let statements: Vec<_> = trace
        .iter()
        .filter(|s| s.kind == CLIENT && s.parent_span_id == request.span_id)
        .filter(|s| s.attribute("db.system.name") == Some("postgresql"))
        .collect();
    assert!(
        statements.iter().any(|s| s.name == "INSERT orders"
            && s.attribute("db.namespace") == Some("orders")
            && s.attribute("db.operation.name") == Some("INSERT")),
        "no INSERT into the orders database under the request: {statements:#?}"
    );
    for statement in &statements {
        let sql = statement.attribute("db.query.text").unwrap_or_default();
        assert!(
            !sql.contains("Tea Street"),
            "values are not in spans: {sql}"
        );
    }

    // Instantiating the component is a span of its own in the request's.
    let instantiated = |invocation: &ReceivedSpan, component: &str| {
        let name = format!("instantiate {component}");
        trace
            .iter()
            .find(|s| s.parent_span_id == invocation.span_id && s.name == name)
            .map(|s| (s.kind, s.attribute("mart.component").map(str::to_string)))
    };
    assert_eq!(
        instantiated(request, "orders"),
        Some((INTERNAL, Some("orders".to_string()))),
        "{trace:#?}"
    );

    // Every hop of the saga, each a child of the one that caused it:
    // request -> publish -> handler -> publish -> handler ...
    let publish_placed = trace
        .iter()
        .find(|s| {
            s.kind == PRODUCER && parent(&trace, s).map(|p| &p.span_id) == Some(&request.span_id)
        })
        .unwrap_or_else(|| panic!("no publish of the request's event in {trace:#?}"));
    assert_eq!(publish_placed.name, "send mart.orders");
    assert_eq!(publish_placed.attribute("messaging.system"), Some("kafka"));
    assert_eq!(
        publish_placed.attribute("cloudevents.event_type"),
        Some("order.placed")
    );
    let reserve = handled(&trace, "mart.inventory-events", "mart.orders")
        .unwrap_or_else(|| panic!("inventory did not handle the order in this trace: {trace:#?}"));
    assert_eq!(reserve.parent_span_id, publish_placed.span_id);
    assert_eq!(reserve.name, "process mart.orders");
    assert!(
        instantiated(reserve, "inventory-events").is_some(),
        "a handler's instantiation is in its span: {trace:#?}"
    );
    assert!(reserve.attribute("messaging.kafka.offset").is_some());
    assert!(reserve
        .attribute("messaging.destination.partition.id")
        .is_some());
    let paid = handled(&trace, "mart.orders-events", "mart.payments").unwrap();
    // Walking up from the last hop reaches the caller through the hops.
    let mut hops = vec![paid.name.clone()];
    let mut at = paid;
    while let Some(up) = parent(&trace, at) {
        hops.push(up.name.clone());
        at = up;
    }
    assert_eq!(
        at.span_id, request.span_id,
        "the chain ends at the request: {hops:?}"
    );
    assert!(
        hops.iter().filter(|n| n.starts_with("process ")).count() >= 2,
        "the payment's outcome came through at least two handlers: {hops:?}"
    );
    for span in &trace {
        assert_ne!(span.status_code, STATUS_ERROR, "{span:#?}");
    }
}

#[test]
fn failures_are_error_spans_and_chained_calls_are_client_and_server_spans() {
    let receiver = OtlpReceiver::start();
    let mut env = vec![("SPIN_VARIABLE_API_KEY", "k-123".to_string())];
    env.extend(exporting_to(&receiver));
    let host = Host::start("tests/fixtures/probe.toml", &env);

    let trapped = host.get("/probe/trap");
    assert_eq!(trapped.status, 500);
    let spans = receiver.wait_for(SPANS, "span of the trapped request", |spans| {
        spans
            .iter()
            .any(|s| s.attribute("url.path") == Some("/probe/trap"))
    });
    let trap = spans
        .iter()
        .find(|s| s.attribute("url.path") == Some("/probe/trap"))
        .unwrap();
    assert_eq!(trap.kind, SERVER);
    assert_eq!(trap.status_code, STATUS_ERROR, "{trap:#?}");
    assert_eq!(trap.attribute("http.response.status_code"), Some("500"));
    assert_eq!(
        trap.parent_span_id, "",
        "a request without traceparent starts a trace"
    );

    let chained = host.get("/probe/chain");
    assert_eq!(chained.status, 200, "{}", chained.text());
    let spans = receiver.wait_for(SPANS, "spans of the chained call", |spans| {
        spans.iter().any(|s| s.kind == CLIENT)
            && spans.iter().filter(|s| s.kind == SERVER).count() >= 3
    });
    let call = spans.iter().find(|s| s.kind == CLIENT).unwrap();
    let trace = in_trace(&spans, &call.trace_id);
    let caller = parent(&trace, call).expect("the client span's parent is exported");
    assert_eq!(caller.kind, SERVER);
    assert_eq!(caller.attribute("url.path"), Some("/probe/chain"));
    let callee = trace
        .iter()
        .find(|s| s.kind == SERVER && s.parent_span_id == call.span_id)
        .unwrap_or_else(|| {
            panic!("the chained component's span is not the call's child: {trace:#?}")
        });
    assert_eq!(
        call.attribute("http.response.status_code"),
        callee.attribute("http.response.status_code")
    );
}

/// A failed statement's span says what failed (SQLSTATE and the server's
/// message), never the row's values: PostgreSQL's detail (`Key
/// (email)=(…) already exists`) is personal data and stays out of traces
/// (issue 27).
#[test]
fn a_failed_statements_span_holds_no_row_values() {
    let (receiver, host) = app();
    let email = format!("{}@example.com", mart_integration_tests::unique("pii"));
    let register = || {
        host.send_json(
            "POST",
            "/users",
            &serde_json::json!({"email": email, "name": "Ada", "password": "correct horse battery"}),
        )
        .status
    };
    assert_eq!(register(), 201);
    assert_eq!(register(), 409, "the address is taken");
    // The INSERT's span: a statement on the users database that failed.
    let failed_statement = |s: &&ReceivedSpan| {
        s.kind == CLIENT
            && s.attribute("db.namespace") == Some("users")
            && s.status_code == STATUS_ERROR
    };
    let spans = receiver.wait_for(SPANS, "the failed INSERT's span", |spans| {
        spans.iter().any(|s| failed_statement(&s))
    });
    let failed = spans.iter().find(failed_statement).unwrap();
    assert!(
        failed
            .status_message
            .starts_with("SQLSTATE 23505: duplicate key value"),
        "{failed:#?}"
    );
    for span in &spans {
        let text = format!("{span:?}");
        assert!(!text.contains(&email), "the email is in a span: {span:#?}");
    }
}
