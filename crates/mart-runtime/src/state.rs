use std::collections::BTreeMap;
use std::sync::Arc;

use mart_kafka::ProducerHost;
use mart_outbound_http::OutboundHttp;
use mart_outbound_networking::AllowedHosts;
use mart_outbound_pg::PgHost;
use mart_variables::VariablesHost;
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
    /// Topics the component may publish to (`kafka_publish_topics`).
    pub publish_topics: Arc<std::collections::BTreeSet<String>>,
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
    pub(crate) pg: PgHost,
    pub(crate) variables: VariablesHost,
    pub(crate) kafka: ProducerHost,
    pub(crate) limits: StoreLimits,
    /// Keeps the live-instance gauge up while this instance exists.
    pub(crate) _alive: mart_metrics::InstanceGuard,
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
