//! A component recording a span of its own through `wasi:otel`, as an
//! OpenTelemetry SDK in a guest does: it asks the host for the span it
//! runs in, starts a child of it (`on-start`), runs a statement when given
//! a database (`?db=<url>`), and ends the span with an attribute
//! (`on-end`). It answers with the ids, so a test can find the span.

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
use bindings::wasi::otel::types::{InstrumentationScope, KeyValue};

/// The attribute the component sets on its span; a test looks for it.
const ATTRIBUTE: &str = "mart.test.flavour";

#[http_service]
async fn handle(request: Request) -> anyhow::Result<impl IntoResponse> {
    let query = request.uri().query().unwrap_or_default().to_string();
    let db = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "db")
        .map(|(_, v)| v.into_owned());

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
    otel::on_end(&SpanData {
        span_context: context.clone(),
        parent_span_id: outer.span_id.clone(),
        span_kind: SpanKind::Internal,
        name: "p3-otel work".into(),
        start_time: start,
        end_time: wall_clock::now(),
        attributes: vec![KeyValue {
            key: ATTRIBUTE.into(),
            value: "\"tea\"".into(),
        }],
        events: Vec::new(),
        links: Vec::new(),
        status: match &statement {
            Ok(()) => Status::Ok,
            Err(e) => Status::Error(e.clone()),
        },
        instrumentation_scope: InstrumentationScope {
            name: "p3-otel".into(),
            version: None,
            schema_url: None,
            attributes: Vec::new(),
        },
        dropped_attributes: 0,
        dropped_events: 0,
        dropped_links: 0,
    });
    let body = format!(
        "trace_id={} outer={} span={} statement={}",
        outer.trace_id,
        outer.span_id,
        context.span_id,
        statement.err().unwrap_or_else(|| "ok".into())
    );
    Ok(Response::builder().status(200).body(body)?)
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
