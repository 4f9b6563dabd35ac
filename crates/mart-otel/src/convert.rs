//! What a component hands over through `wasi:otel`, as the OpenTelemetry
//! SDK's types, as Spin converts it (`crates/world/src/wasi_otel` in Spin
//! 4.0.2), with two differences the host needs: nothing a component sends
//! panics the host (Spin panics on an attribute value that is not JSON),
//! and every list and text is bounded, since a span waits in the export
//! queue in the host's memory.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, Link, SpanContext as OtelContext, SpanId, SpanKind as OtelKind, Status as OtelStatus,
    TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue as OtelKeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData as OtelSpanData, SpanEvents, SpanLinks};

use crate::bindings::wasi::clocks::wall_clock::Datetime;
use crate::bindings::wasi::otel::tracing::{
    Event as WasiEvent, Link as WasiLink, SpanContext, SpanData, SpanKind, Status,
    TraceFlags as WasiFlags,
};
use crate::bindings::wasi::otel::types::{InstrumentationScope as WasiScope, KeyValue};

/// Attributes, events and links kept per span, and attributes per event
/// and link: the OpenTelemetry SDK's default span limits. The rest are
/// counted as dropped.
pub(crate) const MAX_ITEMS: usize = 128;
/// Bytes kept of a name, key, attribute value or status description.
pub(crate) const MAX_TEXT: usize = 4096;
/// `tracestate` entries kept (W3C Trace Context allows 32).
const MAX_TRACE_STATE: usize = 32;

/// `text` cut to `MAX_TEXT` bytes, at a character boundary.
pub(crate) fn bounded(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Keeps the first `MAX_ITEMS` of `items`, converted; how many were
/// left out is added to `dropped` (saturating: the count is guest-given).
fn first_items<T, U>(items: Vec<T>, dropped: u32, convert: impl Fn(T) -> U) -> (Vec<U>, u32) {
    let left_out = u32::try_from(items.len().saturating_sub(MAX_ITEMS)).unwrap_or(u32::MAX);
    let kept = items.into_iter().take(MAX_ITEMS).map(convert).collect();
    (kept, dropped.saturating_add(left_out))
}

pub(crate) fn span_data(span: SpanData) -> OtelSpanData {
    let (attributes, dropped_attributes_count) =
        first_items(span.attributes, span.dropped_attributes, key_value);
    let mut events = SpanEvents::default();
    (events.events, events.dropped_count) = first_items(span.events, span.dropped_events, event);
    let mut links = SpanLinks::default();
    (links.links, links.dropped_count) = first_items(span.links, span.dropped_links, link);
    OtelSpanData {
        span_context: span_context(span.span_context),
        parent_span_id: SpanId::from_hex(&span.parent_span_id).unwrap_or(SpanId::INVALID),
        parent_span_is_remote: false,
        span_kind: span_kind(span.span_kind),
        name: bounded(span.name).into(),
        start_time: system_time(span.start_time),
        end_time: system_time(span.end_time),
        attributes,
        dropped_attributes_count,
        events,
        links,
        status: status(span.status),
        instrumentation_scope: scope(span.instrumentation_scope),
    }
}

/// Ids that are not hex of the right length become the invalid ids, as
/// on Spin; an invalid `tracestate` becomes an empty one, as the WIT says.
pub(crate) fn span_context(context: SpanContext) -> OtelContext {
    let trace_state = context.trace_state.into_iter().take(MAX_TRACE_STATE);
    OtelContext::new(
        TraceId::from_hex(&context.trace_id).unwrap_or(TraceId::INVALID),
        SpanId::from_hex(&context.span_id).unwrap_or(SpanId::INVALID),
        trace_flags(context.trace_flags),
        context.is_remote,
        TraceState::from_key_value(trace_state).unwrap_or_default(),
    )
}

fn trace_flags(flags: WasiFlags) -> TraceFlags {
    if flags.contains(WasiFlags::SAMPLED) {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    }
}

/// The host's span as the component sees it (`outer-span-context`):
/// `None`, no trace at all, is the invalid context (zero ids), as Spin
/// answers outside any span.
pub(crate) fn outer_context(trace: Option<&mart_telemetry::TraceParent>) -> SpanContext {
    let Some(trace) = trace else {
        return SpanContext {
            trace_id: format!("{:032x}", 0u128),
            span_id: format!("{:016x}", 0u64),
            trace_flags: WasiFlags::empty(),
            is_remote: false,
            trace_state: Vec::new(),
        };
    };
    SpanContext {
        trace_id: trace.trace_id.clone(),
        span_id: trace.parent_id.clone(),
        trace_flags: if trace.sampled() {
            WasiFlags::SAMPLED
        } else {
            WasiFlags::empty()
        },
        is_remote: false,
        trace_state: Vec::new(),
    }
}

/// The component's span as the parent of the host's calls, when its ids
/// are valid (a `traceparent` needs lower-case hex ids, not all zero).
pub(crate) fn as_trace_parent(context: &SpanContext) -> Option<mart_telemetry::TraceParent> {
    let flags = if context.trace_flags.contains(WasiFlags::SAMPLED) {
        "01"
    } else {
        "00"
    };
    let text = format!("00-{}-{}-{flags}", context.trace_id, context.span_id);
    mart_telemetry::TraceParent::parse(&text)
}

fn span_kind(kind: SpanKind) -> OtelKind {
    match kind {
        SpanKind::Client => OtelKind::Client,
        SpanKind::Server => OtelKind::Server,
        SpanKind::Producer => OtelKind::Producer,
        SpanKind::Consumer => OtelKind::Consumer,
        SpanKind::Internal => OtelKind::Internal,
    }
}

fn status(status: Status) -> OtelStatus {
    match status {
        Status::Unset => OtelStatus::Unset,
        Status::Ok => OtelStatus::Ok,
        Status::Error(description) => OtelStatus::Error {
            description: Cow::Owned(bounded(description)),
        },
    }
}

fn event(event: WasiEvent) -> Event {
    let (attributes, dropped) = first_items(event.attributes, 0, key_value);
    Event::new(
        bounded(event.name),
        system_time(event.time),
        attributes,
        dropped,
    )
}

fn link(link: WasiLink) -> Link {
    let (attributes, dropped) = first_items(link.attributes, 0, key_value);
    Link::new(span_context(link.span_context), attributes, dropped)
}

fn scope(scope: WasiScope) -> InstrumentationScope {
    let (attributes, _) = first_items(scope.attributes, 0, key_value);
    let mut builder =
        InstrumentationScope::builder(bounded(scope.name)).with_attributes(attributes);
    if let Some(version) = scope.version {
        builder = builder.with_version(bounded(version));
    }
    if let Some(url) = scope.schema_url {
        builder = builder.with_schema_url(bounded(url));
    }
    builder.build()
}

/// A time the component gave; one past what `SystemTime` holds is the
/// epoch rather than a panic.
pub(crate) fn system_time(at: Datetime) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::new(at.seconds, 0))
        .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(at.nanoseconds))))
        .unwrap_or(UNIX_EPOCH)
}

pub(crate) fn key_value(kv: KeyValue) -> OtelKeyValue {
    OtelKeyValue::new(bounded(kv.key), value(kv.value))
}

/// An attribute value, which the WIT sends as JSON: a boolean, a number,
/// a string, or an array of one of those. Anything else (text that is not
/// JSON, an object, a mixed array, an integer past i64) is kept as its
/// text, where Spin would panic or fail.
pub(crate) fn value(json: String) -> Value {
    if json.len() > MAX_TEXT {
        return Value::String(bounded(json).into());
    }
    match serde_json::from_str::<serde_json::Value>(&json) {
        Ok(serde_json::Value::Bool(b)) => Value::Bool(b),
        Ok(serde_json::Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::I64(i),
            (None, Some(f)) if !n.is_u64() => Value::F64(f),
            _ => Value::String(json.into()),
        },
        Ok(serde_json::Value::String(s)) => Value::String(s.into()),
        Ok(serde_json::Value::Array(items)) => {
            array(&items).map_or(Value::String(json.into()), Value::Array)
        }
        _ => Value::String(json.into()),
    }
}

/// A JSON array of one kind as OpenTelemetry's array of that kind (an
/// empty one as booleans, as on Spin); `None` for a mixed one.
fn array(items: &[serde_json::Value]) -> Option<Array> {
    let all = |f: fn(&serde_json::Value) -> bool| items.iter().all(f);
    if all(serde_json::Value::is_boolean) {
        Some(Array::Bool(
            items.iter().filter_map(|v| v.as_bool()).collect(),
        ))
    } else if all(serde_json::Value::is_i64) {
        Some(Array::I64(
            items.iter().filter_map(|v| v.as_i64()).collect(),
        ))
    } else if all(|v| v.is_f64() || v.is_i64()) {
        Some(Array::F64(
            items.iter().filter_map(|v| v.as_f64()).collect(),
        ))
    } else if all(serde_json::Value::is_string) {
        let strings = items.iter().filter_map(|v| v.as_str());
        Some(Array::String(
            strings.map(|s| StringValue::from(s.to_string())).collect(),
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> Datetime {
        Datetime {
            seconds,
            nanoseconds: 5,
        }
    }

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }

    fn context(trace_id: &str, span_id: &str) -> SpanContext {
        SpanContext {
            trace_id: trace_id.into(),
            span_id: span_id.into(),
            trace_flags: WasiFlags::SAMPLED,
            is_remote: false,
            trace_state: vec![("vendor".into(), "x".into())],
        }
    }

    fn span(attributes: Vec<KeyValue>) -> SpanData {
        SpanData {
            span_context: context("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"),
            parent_span_id: "00f067aa0ba902b7".into(),
            span_kind: SpanKind::Internal,
            name: "checkout".into(),
            start_time: at(1),
            end_time: at(2),
            attributes,
            events: vec![WasiEvent {
                name: "priced".into(),
                time: at(1),
                attributes: vec![kv("n", "1")],
            }],
            links: Vec::new(),
            status: Status::Error("out of stock".into()),
            instrumentation_scope: WasiScope {
                name: "p3-otel".into(),
                version: Some("1".into()),
                schema_url: None,
                attributes: Vec::new(),
            },
            dropped_attributes: 0,
            dropped_events: 0,
            dropped_links: 0,
        }
    }

    #[test]
    fn attribute_values_are_read_as_json() {
        assert_eq!(value("true".into()), Value::Bool(true));
        assert_eq!(value("-6".into()), Value::I64(-6));
        assert_eq!(value("1.5".into()), Value::F64(1.5));
        assert_eq!(value("\"tea\"".into()), Value::String("tea".into()));
        assert_eq!(value("[1,2]".into()), Value::Array(Array::I64(vec![1, 2])));
        assert_eq!(
            value("[1,2.5]".into()),
            Value::Array(Array::F64(vec![1.0, 2.5]))
        );
        assert_eq!(
            value("[\"a\",\"b\"]".into()),
            Value::Array(Array::String(vec!["a".into(), "b".into()]))
        );
        assert_eq!(value("[]".into()), Value::Array(Array::Bool(vec![])));
    }

    #[test]
    fn values_that_are_not_plain_json_are_kept_as_text() {
        for text in [
            "not json",
            "{\"a\":1}",
            "[1,\"a\"]",
            "null",
            "18446744073709551615",
        ] {
            assert_eq!(
                value(text.into()),
                Value::String(text.to_string().into()),
                "{text}"
            );
        }
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT);
        let cut = bounded(long);
        assert!(cut.len() <= MAX_TEXT && cut.len() > MAX_TEXT - 2);
        assert!(
            matches!(value(format!("\"{}\"", "a".repeat(2 * MAX_TEXT))), Value::String(s) if s.as_str().len() == MAX_TEXT)
        );
    }

    #[test]
    fn a_span_converts_with_its_ids_parent_status_and_scope() {
        let data = span_data(span(vec![kv("cart.items", "3")]));
        assert_eq!(
            data.span_context.trace_id(),
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap()
        );
        assert_eq!(
            data.span_context.span_id(),
            SpanId::from_hex("b7ad6b7169203331").unwrap()
        );
        assert!(data.span_context.is_sampled());
        assert_eq!(data.span_context.trace_state().get("vendor"), Some("x"));
        assert_eq!(
            data.parent_span_id,
            SpanId::from_hex("00f067aa0ba902b7").unwrap()
        );
        assert_eq!(data.span_kind, OtelKind::Internal);
        assert_eq!(data.name, "checkout");
        assert_eq!(data.start_time, UNIX_EPOCH + Duration::new(1, 5));
        assert_eq!(data.attributes, vec![OtelKeyValue::new("cart.items", 3i64)]);
        assert_eq!(data.events.events[0].name, "priced");
        assert_eq!(
            data.status,
            OtelStatus::Error {
                description: "out of stock".into()
            }
        );
        assert_eq!(data.instrumentation_scope.name(), "p3-otel");
        assert_eq!(data.instrumentation_scope.version(), Some("1"));
    }

    #[test]
    fn huge_attribute_lists_are_bounded_and_counted_as_dropped() {
        let many = (0..10_000).map(|i| kv(&format!("k{i}"), "1")).collect();
        let mut guest = span(many);
        guest.dropped_attributes = u32::MAX - 5;
        let data = span_data(guest);
        assert_eq!(data.attributes.len(), MAX_ITEMS);
        assert_eq!(data.dropped_attributes_count, u32::MAX);
    }

    #[test]
    fn bad_ids_and_times_do_not_panic() {
        let mut guest = span(Vec::new());
        guest.span_context = context("zz", "");
        guest.parent_span_id = "not hex".into();
        guest.end_time = Datetime {
            seconds: u64::MAX,
            nanoseconds: u32::MAX,
        };
        let data = span_data(guest);
        assert_eq!(data.span_context.trace_id(), TraceId::INVALID);
        assert_eq!(data.parent_span_id, SpanId::INVALID);
        assert_eq!(data.end_time, UNIX_EPOCH);
        assert_eq!(as_trace_parent(&context("zz", "")), None);
    }

    #[test]
    fn the_outer_context_is_the_invocations_span() {
        let trace = mart_telemetry::TraceParent::parse(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        );
        let outer = outer_context(trace.as_ref());
        assert_eq!(outer.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(outer.span_id, "b7ad6b7169203331");
        assert!(outer.trace_flags.contains(WasiFlags::SAMPLED));
        assert_eq!(as_trace_parent(&outer), trace);
        let none = outer_context(None);
        assert_eq!(none.trace_id, "0".repeat(32));
        assert_eq!(none.span_id, "0".repeat(16));
    }
}
