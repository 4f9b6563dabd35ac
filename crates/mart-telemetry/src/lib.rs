//! Tracing across components: W3C trace context (`traceparent`) and spans.
//!
//! The host always continues (or starts) a trace for every invocation, so
//! the ids reach the components and the log lines whether or not anything
//! is exported. When `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`)
//! is set, as for Spin, the spans are also exported over OTLP with
//! HTTP/protobuf by the OpenTelemetry SDK's batch processor ([`export`]).
//!
//! A [`Span`] takes its ids from the `traceparent` it hands on: the id the
//! component (or the next hop) sees as its parent is the span's own id, so
//! the exported spans and the propagated context are one and the same.

mod export;
mod trace_parent;

use std::borrow::Cow;
use std::time::SystemTime;

pub use export::{export_span, exporting, init_from_env, ExportGuard, TelemetryConfig};
pub use opentelemetry::Value;
pub use trace_parent::{CurrentTrace, TraceParent};

/// What a span stands for, as OpenTelemetry names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// An HTTP request served.
    Server,
    /// An outbound call (HTTP, PostgreSQL).
    Client,
    /// A record sent to Kafka.
    Producer,
    /// A Kafka message handled.
    Consumer,
    /// Work of the host's own (a timer tick).
    Internal,
}

/// One operation in a trace, ended when dropped. Only a sampled span of a
/// host that exports is recorded; one that is not costs nothing beyond its
/// ids: its name (built by the function given), its parent's id and its
/// attributes are kept only when recorded.
pub struct Span {
    context: TraceParent,
    recording: Option<Box<Recording>>,
}

struct Recording {
    name: String,
    kind: SpanKind,
    parent: Option<(String, bool)>,
    start: SystemTime,
    attributes: Vec<opentelemetry::KeyValue>,
    error: Option<Cow<'static, str>>,
}

impl Span {
    /// A span continuing the trace of `incoming` (a `traceparent` from
    /// another process: a request header, a Kafka record header, an outbox
    /// row), or starting a new trace without one.
    pub fn start(
        name: impl FnOnce() -> String,
        kind: SpanKind,
        incoming: Option<&TraceParent>,
    ) -> Self {
        let context = incoming.map_or_else(TraceParent::root, TraceParent::child);
        let parent = incoming.map(|p| (p.parent_id.as_str(), true));
        Self::recorded(context, parent, name, kind)
    }

    /// A span whose parent is the span `parent` names, in this process
    /// (an outbound call of an invocation).
    pub fn child_of(parent: &TraceParent, name: impl FnOnce() -> String, kind: SpanKind) -> Self {
        let context = parent.child();
        Self::recorded(context, Some((&parent.parent_id, false)), name, kind)
    }

    fn recorded(
        context: TraceParent,
        parent: Option<(&str, bool)>,
        name: impl FnOnce() -> String,
        kind: SpanKind,
    ) -> Self {
        let recording = (exporting() && context.sampled()).then(|| {
            Box::new(Recording {
                name: name(),
                kind,
                parent: parent.map(|(id, remote)| (id.to_string(), remote)),
                start: SystemTime::now(),
                attributes: Vec::new(),
                error: None,
            })
        });
        Self { context, recording }
    }

    /// The `traceparent` to hand on: this span as the parent.
    pub fn context(&self) -> &TraceParent {
        &self.context
    }

    pub fn trace_id(&self) -> &str {
        &self.context.trace_id
    }

    /// Whether attributes set on this span go anywhere (compute costly
    /// ones only then).
    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(r) = &mut self.recording {
            r.attributes.push(opentelemetry::KeyValue::new(key, value));
        }
    }

    /// Ends the span as an operation that already happened, from `start`
    /// to `end`: work done before the trace it belongs to was known (an
    /// instance made for a request that was waiting for it).
    pub fn finish_between(mut self, start: SystemTime, end: SystemTime) {
        if let Some(mut recording) = self.recording.take() {
            recording.start = start;
            export::finished(&self.context, *recording, end);
        }
    }

    /// Marks the operation failed, with what went wrong.
    pub fn fail(&mut self, description: impl Into<Cow<'static, str>>) {
        if let Some(r) = &mut self.recording {
            r.error = Some(description.into());
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(recording) = self.recording.take() {
            export::finished(&self.context, *recording, SystemTime::now());
        }
    }
}
