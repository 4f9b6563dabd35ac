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

pub use export::{init_from_env, ExportGuard, TelemetryConfig};
pub use opentelemetry::Value;
pub use trace_parent::TraceParent;

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

/// One operation in a trace. Ends when [`Span::end`] is called or when it
/// is dropped; only a sampled span of a host that exports is recorded, and
/// one that is not recorded costs nothing beyond its ids.
pub struct Span {
    context: TraceParent,
    recording: Option<Box<Recording>>,
}

struct Recording {
    name: Cow<'static, str>,
    kind: SpanKind,
    parent: Option<(String, bool)>,
    start: SystemTime,
    attributes: Vec<opentelemetry::KeyValue>,
    events: Vec<(&'static str, SystemTime)>,
    error: Option<Cow<'static, str>>,
}

impl Span {
    /// A span continuing the trace of `incoming` (a `traceparent` from
    /// another process: a request header, a Kafka record header, an outbox
    /// row), or starting a new trace without one.
    pub fn start(
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        incoming: Option<&TraceParent>,
    ) -> Self {
        let context = incoming.map_or_else(TraceParent::root, TraceParent::child);
        let parent = incoming.map(|p| (p.parent_id.clone(), true));
        Self::recorded(context, parent, name.into(), kind)
    }

    /// A span for work this span does in-process (an outbound call).
    pub fn child(&self, name: impl Into<Cow<'static, str>>, kind: SpanKind) -> Self {
        Self::child_of(&self.context, name, kind)
    }

    /// A span whose parent is the span `parent` names, in this process.
    pub fn child_of(
        parent: &TraceParent,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
    ) -> Self {
        let context = parent.child();
        let parent = Some((parent.parent_id.clone(), false));
        Self::recorded(context, parent, name.into(), kind)
    }

    fn recorded(
        context: TraceParent,
        parent: Option<(String, bool)>,
        name: Cow<'static, str>,
        kind: SpanKind,
    ) -> Self {
        let recording = (export::enabled() && context.sampled()).then(|| {
            Box::new(Recording {
                name,
                kind,
                parent,
                start: SystemTime::now(),
                attributes: Vec::new(),
                events: Vec::new(),
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

    /// Renames the span once more is known (the route matched).
    pub fn rename(&mut self, name: impl Into<Cow<'static, str>>) {
        if let Some(r) = &mut self.recording {
            r.name = name.into();
        }
    }

    /// A moment in the span (e.g. the instance was ready).
    pub fn event(&mut self, name: &'static str) {
        if let Some(r) = &mut self.recording {
            r.events.push((name, SystemTime::now()));
        }
    }

    /// Marks the operation failed, with what went wrong.
    pub fn fail(&mut self, description: impl Into<Cow<'static, str>>) {
        if let Some(r) = &mut self.recording {
            r.error = Some(description.into());
        }
    }

    pub fn end(self) {
        drop(self);
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(recording) = self.recording.take() {
            export::finished(&self.context, *recording, SystemTime::now());
        }
    }
}
