//! `wasi:otel@0.2.0-rc.2`, which Spin 4's platform world imports, so a
//! component's own spans join the host's trace (Spin 4.0.2:
//! `crates/factor-otel`):
//!
//! - `tracing`: `outer-span-context` is the span of the invocation the
//!   component runs in; `on-start` and `on-end` track the component's open
//!   spans, so the host's own spans made meanwhile (a statement) are
//!   children of the innermost one, and `on-end` hands the finished span to
//!   the host's OTLP exporter ([`mart_telemetry::export_span`]). With no
//!   exporter both do nothing, as on Spin.
//! - `logs`: each record goes to the host's log with the component's id.
//!   Spin sends them to an OTLP logs endpoint instead; this host exports
//!   traces only, and its log is where a component's output already goes.
//! - `metrics`: accepted and dropped. Spin hands them to an OTLP metrics
//!   exporter only when `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (or the
//!   generic endpoint) is set and does nothing otherwise; this host has no
//!   OTLP metrics exporter (its metrics are Prometheus', `mart-metrics`),
//!   so it answers as Spin does without one.
//!
//! Unlike Spin 4.0.2, which links `wasi:otel` only under
//! `--experimental-wasi-otel`, the host always links it: a component
//! importing it must load.

mod convert;
mod host;

pub use host::{add_to_linker, OtelHost};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/spin/otel@0.2.0-rc.2",
        world: "wasi:otel/imports",
        // `on-end` of a span never started traps, as on Spin.
        imports: { default: trappable },
    });
}
