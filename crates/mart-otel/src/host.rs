//! One instance's `wasi:otel`: the component's open spans and the trace the
//! instance's host calls belong to.

use std::sync::Arc;

use mart_telemetry::{CurrentTrace, TraceParent};
use opentelemetry::trace::SpanId;
use wasmtime::component::{HasData, Linker};

use crate::bindings::wasi::otel::{logs, metrics, tracing as otel_tracing, types};
use crate::convert;

/// Open spans tracked per instance. A component that starts spans and
/// never ends them (a reused instance lives for many requests) must not
/// grow the host's memory: past this, the oldest is forgotten (ending it
/// later then traps, as ending any span not started does).
const MAX_OPEN_SPANS: usize = 1024;
/// Attributes of a log record written to the host's log.
const MAX_LOG_ATTRIBUTES: usize = 32;

/// The instance's state of `wasi:otel`.
pub struct OtelHost {
    /// The component's id (shared: an instance is made per request).
    component: Arc<str>,
    trace: CurrentTrace,
    /// The component's spans started and not yet ended, oldest first, as
    /// on Spin (`guest_span_contexts`); empty unless spans are exported.
    open: Vec<OpenSpan>,
}

struct OpenSpan {
    id: SpanId,
    /// The span as the parent of host calls, when its ids are valid.
    as_parent: Option<TraceParent>,
    /// The invocation it was started in.
    invocation: Option<TraceParent>,
}

impl OtelHost {
    /// `trace` is the instance's, shared with its other parts.
    pub fn new(component: Arc<str>, trace: CurrentTrace) -> Self {
        Self {
            component,
            trace,
            open: Vec::new(),
        }
    }

    /// Host calls made from now on are children of the innermost span the
    /// component opened in the current invocation, else of the invocation
    /// (Spin's `reparent_tracing_span`).
    fn reparent(&self) {
        let invocation = self.trace.invocation();
        let innermost = self
            .open
            .iter()
            .rev()
            .filter(|span| span.invocation == invocation)
            .find_map(|span| span.as_parent.clone());
        self.trace.set_guest_span(invocation.as_ref(), innermost);
    }
}

impl otel_tracing::Host for OtelHost {
    fn on_start(&mut self, context: otel_tracing::SpanContext) -> wasmtime::Result<()> {
        if !mart_telemetry::exporting() {
            return Ok(());
        }
        if self.open.len() >= MAX_OPEN_SPANS {
            self.open.remove(0);
        }
        self.open.push(OpenSpan {
            id: convert::span_context(context.clone()).span_id(),
            as_parent: convert::as_trace_parent(&context),
            invocation: self.trace.invocation(),
        });
        self.reparent();
        Ok(())
    }

    fn on_end(&mut self, span: otel_tracing::SpanData) -> wasmtime::Result<()> {
        if !mart_telemetry::exporting() {
            return Ok(());
        }
        let data = convert::span_data(span);
        let id = data.span_context.span_id();
        let Some(at) = self.open.iter().rposition(|span| span.id == id) else {
            // Spin traps here too ("Trying to end a span that was not started").
            return Err(wasmtime::format_err!(
                "wasi:otel/tracing on-end: span {id} of component `{}` was not started",
                self.component
            ));
        };
        self.open.remove(at);
        self.reparent();
        // As the SDK's tracer does, a span the component does not sample
        // is not exported.
        if data.span_context.is_sampled() {
            mart_telemetry::export_span(data);
        }
        Ok(())
    }

    fn outer_span_context(&mut self) -> wasmtime::Result<otel_tracing::SpanContext> {
        Ok(convert::outer_context(self.trace.invocation().as_ref()))
    }
}

impl types::Host for OtelHost {}

/// Accepted and dropped: see the crate's documentation.
impl metrics::Host for OtelHost {
    fn export(
        &mut self,
        _metrics: metrics::ResourceMetrics,
    ) -> wasmtime::Result<Result<(), metrics::Error>> {
        Ok(Ok(()))
    }
}

/// The component's log records in the host's log, with its id, at the
/// level their severity number names (OpenTelemetry's ranges: 1–4 trace,
/// 5–8 debug, 9–12 info, 13–16 warn, 17–24 error and fatal; none or
/// another number, info).
impl logs::Host for OtelHost {
    fn on_emit(&mut self, record: logs::LogRecord) -> wasmtime::Result<()> {
        let body = record.body.map(log_body).unwrap_or_default();
        let attributes = record
            .attributes
            .unwrap_or_default()
            .into_iter()
            .take(MAX_LOG_ATTRIBUTES)
            .map(|kv| format!("{}={}", convert::bounded(kv.key), log_body(kv.value)))
            .collect::<Vec<_>>()
            .join(" ");
        let severity = record
            .severity_text
            .map(convert::bounded)
            .unwrap_or_default();
        let event = record.event_name.map(convert::bounded).unwrap_or_default();
        let trace_id = record.trace_id.map(convert::bounded).unwrap_or_default();
        let span_id = record.span_id.map(convert::bounded).unwrap_or_default();
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: "wasi_otel",
                    $level,
                    component = %self.component,
                    severity = %severity,
                    event = %event,
                    trace_id = %trace_id,
                    span_id = %span_id,
                    attributes = %attributes,
                    "{body}"
                )
            };
        }
        match record.severity_number.unwrap_or(0) {
            1..=4 => emit!(tracing::Level::TRACE),
            5..=8 => emit!(tracing::Level::DEBUG),
            13..=16 => emit!(tracing::Level::WARN),
            17..=24 => emit!(tracing::Level::ERROR),
            _ => emit!(tracing::Level::INFO),
        }
        Ok(())
    }
}

/// A log body or attribute value (JSON) as text: a JSON string without
/// its quotes, anything else as sent; bounded.
fn log_body(json: String) -> String {
    match serde_json::from_str::<String>(&json) {
        Ok(text) => convert::bounded(text),
        Err(_) => convert::bounded(json),
    }
}

struct Otel;

impl HasData for Otel {
    type Data<'a> = &'a mut OtelHost;
}

/// Adds `wasi:otel/{types,tracing,logs,metrics}@0.2.0-rc.2` to `linker`;
/// `get` finds the instance's state.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut OtelHost,
) -> wasmtime::Result<()> {
    types::add_to_linker::<T, Otel>(linker, get)?;
    otel_tracing::add_to_linker::<T, Otel>(linker, get)?;
    logs::add_to_linker::<T, Otel>(linker, get)?;
    metrics::add_to_linker::<T, Otel>(linker, get)?;
    Ok(())
}
