//! Exporting spans over OTLP, configured from the environment as Spin reads
//! it (`crates/telemetry/src/env.rs` in Spin 4.0.2):
//!
//! - on when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set and not empty, off again
//!   when `OTEL_SDK_DISABLED` is set and not empty;
//! - protocol from `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, then
//!   `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf` (the default, as on
//!   Spin); `grpc` and `http/json` are refused with the reason;
//! - the endpoint, headers and timeout as the OTLP exporter reads them
//!   (`/v1/traces` appended to the generic endpoint), batching as the
//!   batch processor reads `OTEL_BSP_*`;
//! - service name from `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES`,
//!   else `mart`.
//!
//! Spans are handed to the SDK's batch processor, which exports them from a
//! thread of its own: a slow or absent collector never holds up a request
//! (a full queue drops spans, as the SDK does).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind as OtelKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SpanData, SpanEvents, SpanExporter as _, SpanLinks, SpanProcessor as _,
};
use opentelemetry_sdk::Resource;

use crate::{Recording, SpanKind, TraceParent};

/// How long the last spans may take to leave when the host stops.
const FLUSH_ON_EXIT: Duration = Duration::from_secs(5);

struct Exporter {
    processor: BatchSpanProcessor,
    scope: InstrumentationScope,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// Whether spans are exported: work that only feeds spans (and has no
/// trace context to hand on) can be skipped when they are not.
pub fn exporting() -> bool {
    EXPORTER.get().is_some()
}

/// What the environment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TelemetryConfig {
    Off,
    /// OTLP over HTTP/protobuf; the endpoint is read by the exporter.
    HttpProtobuf,
}

impl TelemetryConfig {
    /// Reads the variables Spin reads; `var` is the environment.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
        if set("OTEL_SDK_DISABLED")
            || !(set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        {
            return Ok(Self::Off);
        }
        let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_default();
        match protocol.trim() {
            "" | "http/protobuf" => Ok(Self::HttpProtobuf),
            "grpc" => bail!(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported by this host; \
                 use http/protobuf (Spin's default; collectors take it on port 4318)"
            ),
            "http/json" => bail!(
                "OTEL_EXPORTER_OTLP_PROTOCOL=http/json is not supported (nor by Spin); \
                 use http/protobuf"
            ),
            other => {
                tracing::warn!(
                    protocol = other,
                    "unknown OTLP protocol; using http/protobuf"
                );
                Ok(Self::HttpProtobuf)
            }
        }
    }
}

/// Flushes the spans still queued when dropped (at the host's exit).
pub struct ExportGuard(());

impl Drop for ExportGuard {
    fn drop(&mut self) {
        if let Some(exporter) = EXPORTER.get() {
            let _ = exporter.processor.shutdown_with_timeout(FLUSH_ON_EXIT);
        }
    }
}

/// Starts exporting spans if the environment asks for it; `None` when it
/// does not. Call once, outside the async runtime's threads (the batch
/// processor and its HTTP client run on a thread of their own).
pub fn init_from_env() -> anyhow::Result<Option<ExportGuard>> {
    match TelemetryConfig::from_vars(|name| std::env::var(name).ok())? {
        TelemetryConfig::Off => Ok(None),
        TelemetryConfig::HttpProtobuf => {
            let mut exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .build()
                .context("setting up the OTLP span exporter")?;
            exporter.set_resource(&resource());
            let exporter = Exporter {
                processor: BatchSpanProcessor::builder(exporter).build(),
                scope: InstrumentationScope::builder("mart")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build(),
            };
            if EXPORTER.set(exporter).is_err() {
                bail!("span export was already set up");
            }
            tracing::info!("exporting traces over OTLP (http/protobuf)");
            Ok(Some(ExportGuard(())))
        }
    }
}

/// The service's resource: the SDK reads `OTEL_SERVICE_NAME` and
/// `OTEL_RESOURCE_ATTRIBUTES`; `mart` when neither names the service.
fn resource() -> Resource {
    let resource = Resource::builder().build();
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    if named {
        resource
    } else {
        Resource::builder().with_service_name("mart").build()
    }
}

/// Hands a span recorded elsewhere (a component's own, through
/// `wasi:otel`) to the batch processor, to leave with the host's spans
/// under the host's resource; nothing happens when spans are not exported.
pub fn export_span(span: SpanData) {
    if let Some(exporter) = EXPORTER.get() {
        exporter.processor.on_end(span);
    }
}

/// Hands a finished span to the batch processor.
pub(crate) fn finished(context: &TraceParent, recording: Recording, end: SystemTime) {
    let Some(exporter) = EXPORTER.get() else {
        return;
    };
    let (Ok(trace_id), Ok(span_id)) = (
        TraceId::from_hex(&context.trace_id),
        SpanId::from_hex(&context.parent_id),
    ) else {
        return; // TraceParent only holds valid ids
    };
    let (parent_span_id, parent_span_is_remote) = match &recording.parent {
        Some((id, remote)) => (SpanId::from_hex(id).unwrap_or(SpanId::INVALID), *remote),
        None => (SpanId::INVALID, false),
    };
    let status = match recording.error {
        Some(description) => Status::Error { description },
        None => Status::Unset,
    };
    exporter.processor.on_end(SpanData {
        span_context: SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id,
        parent_span_is_remote,
        span_kind: otel_kind(recording.kind),
        name: recording.name.into(),
        start_time: recording.start,
        end_time: end,
        attributes: recording.attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: exporter.scope.clone(),
    });
}

fn otel_kind(kind: SpanKind) -> OtelKind {
    match kind {
        SpanKind::Server => OtelKind::Server,
        SpanKind::Client => OtelKind::Client,
        SpanKind::Producer => OtelKind::Producer,
        SpanKind::Consumer => OtelKind::Consumer,
        SpanKind::Internal => OtelKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<TelemetryConfig> {
        TelemetryConfig::from_vars(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn export_is_on_only_with_an_endpoint_and_not_disabled() {
        assert_eq!(config(&[]).unwrap(), TelemetryConfig::Off);
        assert_eq!(
            config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")]).unwrap(),
            TelemetryConfig::Off
        );
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert_eq!(config(&[endpoint]).unwrap(), TelemetryConfig::HttpProtobuf);
        let traces = (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces",
        );
        assert_eq!(config(&[traces]).unwrap(), TelemetryConfig::HttpProtobuf);
        assert_eq!(
            config(&[endpoint, ("OTEL_SDK_DISABLED", "true")]).unwrap(),
            TelemetryConfig::Off
        );
    }

    #[test]
    fn protocols_other_than_http_protobuf_are_refused_with_the_reason() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317");
        let grpc = config(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        assert!(grpc.unwrap_err().to_string().contains("http/protobuf"));
        let json = config(&[
            endpoint,
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ]);
        assert!(json.is_err());
        // The traces-specific variable wins over the generic one.
        let both = config(&[
            endpoint,
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ]);
        assert_eq!(both.unwrap(), TelemetryConfig::HttpProtobuf);
    }
}
