use std::collections::BTreeMap;
use std::sync::Arc;

use mart_outbound_http::OutboundHttp;
use mart_outbound_networking::AllowedHosts;
use wasmtime::component::{InstancePre, ResourceTable};
use wasmtime::StoreLimits;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::InvocationLimits;

/// A component of the app, compiled and linked, ready to instantiate.
pub struct AppComponent {
    pub id: Arc<str>,
    pub pre: InstancePre<InstanceState>,
    pub limits: InvocationLimits,
    pub allowed_hosts: Arc<AllowedHosts>,
    pub variables: Arc<BTreeMap<String, String>>,
    pub environment: Vec<(String, String)>,
    /// The component's `files`, mounted read-only as `/` in every instance.
    pub files: Option<crate::files::StagedFiles>,
}

/// Everything one instance owns; dropped with its `Store` after the call.
pub struct InstanceState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_hooks: OutboundHttp,
    /// Each host part's state for this instance (see parts.rs).
    pub(crate) parts: Vec<Box<dyn std::any::Any + Send>>,
    pub(crate) limits: StoreLimits,
    /// The trace the instance's host calls join (see `continue_trace`).
    pub(crate) trace: mart_telemetry::CurrentTrace,
    /// Keeps the live-instance gauge up while this instance exists.
    pub(crate) _alive: mart_metrics::GaugeGuard,
}

impl InstanceState {
    /// The instance's state of the part whose state is a `T`: how a part's
    /// linked functions reach it.
    pub fn part<T: 'static>(&mut self) -> &mut T {
        self.parts
            .iter_mut()
            .find_map(|p| p.downcast_mut::<T>())
            .expect("a linked part has its state in every instance")
    }
}

impl InstanceState {
    /// Host calls made from now on join `trace`: how a reused instance's
    /// outbound requests and statements follow the request they serve.
    pub(crate) fn continue_trace(&self, trace: Option<mart_telemetry::TraceParent>) {
        self.trace.set(trace);
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}
