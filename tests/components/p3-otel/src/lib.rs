//! A component recording a span of its own through `wasi:otel`, as an
//! OpenTelemetry SDK in a guest does. `/otel/work` asks the host for the
//! span it runs in, starts a child of it (`on-start`), runs a statement
//! when given a database (`?db=<url>`), and ends the span with an
//! attribute (`on-end`); it answers with the ids, so a test can find the
//! span. The other routes try the rest of the interface and its edges:
//! `/otel/log?message=…` (`logs`), `/otel/metrics` (`metrics`),
//! `/otel/unstarted` (ending a span never started), `/otel/huge` (a span
//! with 10,000 attributes).

use std::hash::{BuildHasher, Hasher};

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_service;
use spin_sdk::pg::Connection;

mod bindings {
    spin_sdk::wit_bindgen::generate!({
        inline: r#"
            package mart-test:p3-otel;
            world p3-otel {
                import wasi:otel/tracing@0.2.0-rc.2;
                import wasi:otel/logs@0.2.0-rc.2;
                import wasi:otel/metrics@0.2.0-rc.2;
                import wasi:clocks/wall-clock@0.2.0;
            }
        "#,
        path: ["../../../wit/spin/otel@0.2.0-rc.2"],
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        generate_all,
    });
}

use bindings::wasi::clocks::wall_clock;
use bindings::wasi::otel::tracing::{self as otel, SpanContext, SpanData, SpanKind, Status};
use bindings::wasi::otel::types::{InstrumentationScope, KeyValue, Resource};
use bindings::wasi::otel::{logs, metrics};

/// The attribute the component sets on its span; a test looks for it.
const ATTRIBUTE: &str = "mart.test.flavour";

#[http_service]
async fn handle(request: Request) -> anyhow::Result<impl IntoResponse> {
    let query = request.uri().query().unwrap_or_default().to_string();
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let route = request.uri().path().rsplit('/').next().unwrap_or_default();
    let body = match route {
        "work" => work(param("db")).await,
        "log" => log(&param("message").unwrap_or_default()),
        "metrics" => export_metrics(),
        "unstarted" => end_unstarted(),
        "huge" => huge(),
        _ => return Ok(Response::builder().status(404).body(String::new())?),
    };
    Ok(Response::builder().status(200).body(body)?)
}

/// A span of the component's own around a statement.
async fn work(db: Option<String>) -> String {
    let outer = otel::outer_span_context();
    let context = SpanContext {
        span_id: new_span_id(),
        is_remote: false,
        ..outer.clone()
    };
    let start = wall_clock::now();
    otel::on_start(&context);
    let statement = match db {
        Some(url) => run_statement(&url).await,
        None => Ok(()),
    };
    let mut span = span_data(&outer, &context, "p3-otel work", start);
    span.attributes = vec![attribute(ATTRIBUTE, "\"tea\"")];
    span.status = match &statement {
        Ok(()) => Status::Ok,
        Err(e) => Status::Error(e.clone()),
    };
    otel::on_end(&span);
    format!(
        "trace_id={} outer={} span={} statement={}",
        outer.trace_id,
        outer.span_id,
        context.span_id,
        statement.err().unwrap_or_else(|| "ok".into())
    )
}

/// The finished span `context`, a child of `outer`, without attributes.
fn span_data(
    outer: &SpanContext,
    context: &SpanContext,
    name: &str,
    start: wall_clock::Datetime,
) -> SpanData {
    SpanData {
        span_context: context.clone(),
        parent_span_id: outer.span_id.clone(),
        span_kind: SpanKind::Internal,
        name: name.into(),
        start_time: start,
        end_time: wall_clock::now(),
        attributes: Vec::new(),
        events: Vec::new(),
        links: Vec::new(),
        status: Status::Unset,
        instrumentation_scope: scope(),
        dropped_attributes: 0,
        dropped_events: 0,
        dropped_links: 0,
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "p3-otel".into(),
        version: None,
        schema_url: None,
        attributes: Vec::new(),
    }
}

fn attribute(key: &str, json: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: json.into(),
    }
}

/// A warning log record with `message` as its body.
fn log(message: &str) -> String {
    logs::on_emit(&logs::LogRecord {
        timestamp: Some(wall_clock::now()),
        observed_timestamp: None,
        severity_text: Some("WARN".into()),
        severity_number: Some(13),
        body: Some(format!("\"{message}\"")),
        attributes: Some(vec![attribute("mart.test.flavour", "\"tea\"")]),
        event_name: None,
        resource: None,
        instrumentation_scope: Some(scope()),
        trace_id: None,
        span_id: None,
        trace_flags: None,
    });
    "logged".into()
}

/// One counter's sum.
fn export_metrics() -> String {
    let now = wall_clock::now();
    let sum = metrics::Sum {
        data_points: vec![metrics::SumDataPoint {
            attributes: Vec::new(),
            value: metrics::MetricNumber::U64(1),
            exemplars: Vec::new(),
        }],
        start_time: now,
        time: now,
        temporality: metrics::Temporality::Cumulative,
        is_monotonic: true,
    };
    let exported = metrics::export(&metrics::ResourceMetrics {
        resource: Resource {
            attributes: Vec::new(),
            schema_url: None,
        },
        scope_metrics: vec![metrics::ScopeMetrics {
            scope: scope(),
            metrics: vec![metrics::Metric {
                name: "p3_otel_requests".into(),
                description: String::new(),
                unit: String::new(),
                data: metrics::MetricData::U64Sum(sum),
            }],
        }],
    });
    match exported {
        Ok(()) => "exported".into(),
        Err(e) => format!("refused: {e}"),
    }
}

/// Ends a span that was never started.
fn end_unstarted() -> String {
    let outer = otel::outer_span_context();
    let context = SpanContext {
        span_id: new_span_id(),
        ..outer.clone()
    };
    otel::on_end(&span_data(
        &outer,
        &context,
        "never started",
        wall_clock::now(),
    ));
    "ended".into()
}

/// A span with 10,000 attributes.
fn huge() -> String {
    let outer = otel::outer_span_context();
    let context = SpanContext {
        span_id: new_span_id(),
        ..outer.clone()
    };
    let start = wall_clock::now();
    otel::on_start(&context);
    let mut span = span_data(&outer, &context, "huge", start);
    span.attributes = (0..10_000)
        .map(|i| attribute(&format!("k{i}"), "1"))
        .collect();
    otel::on_end(&span);
    format!("span={}", context.span_id)
}

async fn run_statement(url: &str) -> Result<(), String> {
    let connection = Connection::open(url).await.map_err(|e| format!("{e:?}"))?;
    connection
        .execute("SELECT 1", Vec::new())
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

/// 8 random bytes in hex (std's hasher keys come from wasi's random).
fn new_span_id() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(1);
    format!("{:016x}", hasher.finish() | 1)
}
