use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use mart_manifest::App;
use mart_metrics::Metrics;
use mart_outbound_http::{LocalDispatch, OutboundHttp};
use mart_outbound_networking::AllowedHosts;
use mart_outbound_pg::{PgCompatibility, PgPools, PoolBudgets, TriggerKind};
use mart_telemetry::{CurrentTrace, TraceParent};
use mart_variables::{ComponentVariables, Resolver, Template};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    AsContextMut as _, Cache, CacheConfig, Config, Enabled, Engine, InstanceAllocationStrategy,
    PoolingAllocationConfig, Store, StoreLimitsBuilder,
};
use wasmtime_wasi::{FsPerms, WasiCtx};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::parts::{HostPart, InstanceContext, OtelPart, PgPart, VariablesPart};
use crate::{AppComponent, InstanceState, InvocationLimits};

/// How much of a memory slot is reset in place rather than released to the OS.
const RESET_IN_PLACE_BYTES: usize = 16 << 20;

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How often it advances while no instance is alive: deadlines matter only
/// while something runs, and an idle host should not wake 100 times a
/// second. An instance started meanwhile gets its first tick at most this
/// late, so its deadline passes at most this much later.
const IDLE_EPOCH_TICK: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct RuntimeOptions {
    /// Where compiled machine code is cached between runs; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// Instances that may be alive at once (pooling allocator slots).
    pub max_instances: u32,
    /// Limits for components that do not set their own.
    pub default_limits: InvocationLimits,
    pub pg_pools: PoolBudgets,
    /// How closely `spin:postgres` follows Fermyon Spin 4.0.x's host.
    pub pg_compatibility: PgCompatibility,
    /// Where the runtime and the triggers record what they do.
    pub metrics: Arc<Metrics>,
    /// Host interfaces beyond the built-in ones (`spin:postgres`, Spin's
    /// variables), e.g. Mart's Kafka producer.
    pub parts: Vec<Arc<dyn HostPart>>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            cache_dir: None,
            max_instances: 1000,
            default_limits: InvocationLimits::DEFAULT,
            pg_pools: PoolBudgets::default(),
            pg_compatibility: PgCompatibility::default(),
            metrics: Arc::new(Metrics::new()),
            parts: Vec::new(),
        }
    }
}

/// The engine, the linked components and the resources they share.
pub struct Runtime {
    engine: Engine,
    components: HashMap<String, Arc<AppComponent>>,
    pg_pools: Arc<PgPools>,
    parts: Vec<Arc<dyn HostPart>>,
    local_dispatch: OnceLock<Arc<dyn LocalDispatch>>,
    metrics: Arc<Metrics>,
}

impl Runtime {
    /// Compiles and links every component of `app`. Fails, naming the
    /// component and the interface, if a component imports something this
    /// host does not provide, or if its variables or allowed hosts are invalid.
    pub fn load(app: &App, resolver: &Resolver, options: &RuntimeOptions) -> anyhow::Result<Self> {
        let variables = ComponentVariables::resolve(&app.manifest, resolver)?;
        let settings: Vec<_> = app
            .manifest
            .component
            .iter()
            .map(|(id, c)| Ok((id, c, component_limits(c, options)?)))
            .collect::<anyhow::Result<_>>()?;
        let largest_memory = settings
            .iter()
            .map(|(_, _, l)| l.max_memory_bytes)
            .chain([options.default_limits.max_memory_bytes])
            .max()
            .unwrap_or(options.default_limits.max_memory_bytes);
        let engine = build_engine(options, largest_memory)?;
        let pg_pools = Arc::new(PgPools::new(options.pg_pools));
        let builtin: [Arc<dyn HostPart>; 3] = [
            Arc::new(PgPart {
                pools: pg_pools.clone(),
                compatibility: options.pg_compatibility,
            }),
            Arc::new(VariablesPart),
            Arc::new(OtelPart),
        ];
        let parts: Vec<_> = builtin
            .into_iter()
            .chain(options.parts.iter().cloned())
            .collect();
        let linker = build_linker(&engine, &parts)?;
        start_epoch_ticker(&engine, options.metrics.clone());

        crate::files::remove_stale_staging();
        let mut components = HashMap::new();
        let total = settings.len();
        // The first start compiles each component (seconds each); later
        // starts load machine code from the cache. Either way, say how far.
        tracing::info!(components = total, "loading components");
        for (done, (id, manifest_component, limits)) in settings.into_iter().enumerate() {
            let path = app.component_source_path(manifest_component);
            let started = std::time::Instant::now();
            let component = std::fs::read(&path)
                .map_err(anyhow::Error::from)
                .and_then(crate::componentize::componentize_if_needed)
                .and_then(crate::wasi_versions::adapt)
                .and_then(|bytes| Component::new(&engine, &bytes).map_err(anyhow::Error::from))
                .with_context(|| format!("component `{id}`: cannot load {}", path.display()))?;
            let pre = linker
                .instantiate_pre(&component)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!("component `{id}` imports an interface this host does not provide")
                })?;
            tracing::info!(
                component = %id,
                progress = format!("{}/{total}", done + 1),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "component ready"
            );
            let files = crate::files::stage(
                &app.base_dir,
                &manifest_component.files,
                &manifest_component.exclude_files,
            )
            .with_context(|| format!("component `{id}`"))?;
            let allowed = allowed_hosts(id, manifest_component.all_outbound_hosts(), resolver)?;
            components.insert(
                id.clone(),
                Arc::new(AppComponent {
                    id: Arc::from(id.as_str()),
                    pre,
                    limits,
                    allowed_hosts: Arc::new(allowed),
                    variables: variables.for_component(id),
                    environment: manifest_component
                        .environment
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    files,
                }),
            );
        }
        Ok(Self {
            engine,
            components,
            pg_pools,
            parts,
            local_dispatch: OnceLock::new(),
            metrics: options.metrics.clone(),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn component(&self, id: &str) -> Option<&Arc<AppComponent>> {
        self.components.get(id)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn pg_pools(&self) -> &Arc<PgPools> {
        &self.pg_pools
    }

    pub fn component_ids(&self) -> impl Iterator<Item = &str> {
        self.components.keys().map(String::as_str)
    }

    /// Lets outbound HTTP to `<component>.spin.internal` reach the HTTP trigger.
    pub fn set_local_dispatch(&self, dispatch: Arc<dyn LocalDispatch>) {
        let _ = self.local_dispatch.set(dispatch);
    }

    /// A fresh store for one invocation of `component` by a `kind` trigger
    /// (whose database pools it uses), with its limits armed; `trace` is
    /// the trace context its outbound requests continue.
    pub fn new_store(
        &self,
        component: &AppComponent,
        kind: TriggerKind,
        trace: Option<TraceParent>,
    ) -> anyhow::Result<Store<InstanceState>> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout()
            .inherit_stderr()
            .envs(&component.environment);
        allow_outbound_tcp(&mut wasi, component.allowed_hosts.clone());
        if let Some(files) = &component.files {
            wasi.preopened_dir(files.root(), "/", FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("component `{}`: mounting its files", component.id))?;
        }
        let trace = CurrentTrace::new(trace);
        let context = InstanceContext {
            component,
            kind,
            trace: &trace,
        };
        let parts = self.parts.iter().map(|p| p.instance(&context)).collect();
        let state = InstanceState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            http_hooks: OutboundHttp::new(
                component.id.clone(),
                component.allowed_hosts.clone(),
                self.local_dispatch.get().cloned(),
            )
            .with_trace(trace.clone()),
            parts,
            limits: StoreLimitsBuilder::new()
                .memory_size(component.limits.max_memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            trace,
            _alive: self.metrics.instance_alive(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        arm_deadline(store.as_context_mut(), component.limits.timeout);
        store.epoch_deadline_trap();
        Ok(store)
    }
}

/// Lets a guest busy in its own code run for `timeout` from now, then traps
/// it. Set when a store is made, and again as each call starts in a
/// reused instance (`begin_next_call`).
fn arm_deadline(mut store: wasmtime::StoreContextMut<'_, InstanceState>, timeout: Duration) {
    let ticks = timeout.as_millis().div_ceil(EPOCH_TICK.as_millis());
    store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX).max(1));
}

/// The next call in a reused instance (a WASIp3 HTTP request, an async
/// Kafka batch): its host calls join `trace`, and a guest busy in its own
/// code is stopped `timeout` from now.
pub fn begin_next_call(
    mut store: wasmtime::StoreContextMut<'_, InstanceState>,
    trace: Option<TraceParent>,
    timeout: Duration,
) {
    store.data().continue_trace(trace);
    arm_deadline(store.as_context_mut(), timeout);
}

impl Runtime {}

/// Outbound TCP through `wasi:sockets`, as `allowed_outbound_hosts` says
/// (`tcp://address:port`, CIDR ranges); every other use of sockets
/// (listening, binding, UDP) is refused, and a refused connection is the
/// guest's `access-denied`. Name lookups only for a component that may use
/// TCP.
fn allow_outbound_tcp(wasi: &mut wasmtime_wasi::WasiCtxBuilder, allowed: Arc<AllowedHosts>) {
    let tcp = allowed.mentions_scheme("tcp");
    wasi.allow_tcp(tcp)
        .allow_udp(false)
        .allow_ip_name_lookup(tcp);
    if tcp {
        wasi.socket_addr_check(move |address, use_| {
            use wasmtime_wasi::sockets::SocketAddrUse;
            let allowed = match use_ {
                SocketAddrUse::TcpConnect => allowed.allows_tcp(address),
                // A connect first checks the implicit bind to the wildcard
                // address and an ephemeral port; listening (its own check)
                // stays refused, so this opens nothing to the outside.
                SocketAddrUse::TcpBind => address.ip().is_unspecified() && address.port() == 0,
                _ => false,
            };
            Box::pin(std::future::ready(allowed))
        });
    }
}

fn component_limits(
    component: &mart_manifest::Component,
    options: &RuntimeOptions,
) -> anyhow::Result<InvocationLimits> {
    let settings = component.mart_settings().map_err(anyhow::Error::msg)?;
    let mut limits = options.default_limits;
    if let Some(ms) = settings.timeout_ms {
        limits.timeout = Duration::from_millis(ms);
    }
    if let Some(mib) = settings.max_memory_mib {
        limits.max_memory_bytes = usize::try_from(mib << 20).context("max_memory_mib too large")?;
    }
    Ok(limits)
}

fn allowed_hosts<'a>(
    id: &str,
    entries: impl Iterator<Item = &'a String>,
    resolver: &Resolver,
) -> anyhow::Result<AllowedHosts> {
    let rendered = entries
        .map(|entry| {
            let template = Template::parse(entry)
                .with_context(|| format!("component `{id}`: allowed_outbound_hosts"))?;
            resolver
                .render(&template)
                .with_context(|| format!("component `{id}`: allowed_outbound_hosts `{entry}`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    AllowedHosts::parse(&rendered).with_context(|| format!("component `{id}`"))
}

fn build_engine(options: &RuntimeOptions, largest_memory: usize) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    // WASIp3 components (spin-sdk 7, `wasi:http/handler@0.3.0`) use
    // component-model async: streams, futures and async exports.
    config.wasm_component_model_async(true);
    if let Some(dir) = &options.cache_dir {
        let mut cache = CacheConfig::new();
        cache.with_directory(dir);
        config.cache(Some(
            Cache::new(cache)
                .map_err(anyhow::Error::from)
                .context("wasmtime compilation cache")?,
        ));
    }
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(options.max_instances)
        .total_memories(options.max_instances)
        .total_tables(options.max_instances)
        .total_stacks(options.max_instances)
        .total_core_instances(options.max_instances * 4)
        .max_memory_size(largest_memory)
        // Reset a slot by rewriting only the pages the last instance dirtied
        // (found with Linux's PAGEMAP_SCAN, kernel >= 6.7) instead of
        // madvise-ing them away: no page faults on reuse and no TLB-shootdown
        // IPIs across worker threads. Elsewhere this falls back to memset of
        // the kept-resident prefix. Measured with `make bench`.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(RESET_IN_PLACE_BYTES)
        .table_keep_resident(1 << 20)
        .async_stack_keep_resident(1 << 20);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("creating the wasmtime engine")
}

fn build_linker(
    engine: &Engine,
    parts: &[Arc<dyn HostPart>],
) -> anyhow::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    // The same WASI state serves both generations: a p3 component gets the
    // same files, environment, socket allow-list and outbound HTTP hooks.
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    for part in parts {
        part.link(&mut linker)?;
    }
    Ok(linker)
}

/// Advances the engine's epoch until the engine is dropped: every
/// `EPOCH_TICK` while instances run, every `IDLE_EPOCH_TICK` otherwise.
fn start_epoch_ticker(engine: &Engine, metrics: Arc<Metrics>) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("mart-epoch".into())
        .spawn(move || loop {
            let busy = metrics.instances_alive() > 0;
            std::thread::sleep(if busy { EPOCH_TICK } else { IDLE_EPOCH_TICK });
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
        })
        .expect("spawning the epoch thread");
}
