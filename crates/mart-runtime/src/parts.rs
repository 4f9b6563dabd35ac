//! Host interfaces as parts, the way Spin's factors are: each interface a
//! component may import adds its functions to the linker once, and gives
//! every instance the state those functions work on. The runtime knows the
//! parts only through this trait, so an interface is added (or left out of
//! a binary) without touching the runtime: `spin:postgres` and Spin's
//! variables are built in (`PgPart`, `VariablesPart`), Mart's Kafka
//! producer comes from `mart-kafka` and is added by whoever runs the app.
//!
//! WASI itself (clocks, random, files, sockets, wasi:http) is the core of
//! every instance, not a part: `InstanceState` implements its views.

use std::any::Any;
use std::sync::Arc;

use mart_otel::OtelHost;
use mart_outbound_pg::{PgCompatibility, PgHost, PgPools};
use mart_telemetry::CurrentTrace;
use mart_variables::VariablesHost;
use wasmtime::component::Linker;

use crate::{AppComponent, InstanceState, TriggerKind};

/// What one instance's state of a part may depend on.
pub struct InstanceContext<'a> {
    pub component: &'a AppComponent,
    /// The trigger running it (whose database pools it uses).
    pub kind: TriggerKind,
    /// The span calls the part makes are children of (a reused instance
    /// is handed each request's as the request starts).
    pub trace: &'a CurrentTrace,
}

/// A host interface components may import.
pub trait HostPart: Send + Sync + 'static {
    /// Adds the interface's functions to the linker; they reach their state
    /// with `InstanceState::part::<State>()`.
    fn link(&self, linker: &mut Linker<InstanceState>) -> anyhow::Result<()>;

    /// The state one instance holds of this part.
    fn instance(&self, of: &InstanceContext<'_>) -> Box<dyn Any + Send>;
}

/// `spin:postgres/postgres@4.0.0`, on the host's pools per trigger kind.
pub struct PgPart {
    pub pools: Arc<PgPools>,
    pub compatibility: PgCompatibility,
}

impl HostPart for PgPart {
    fn link(&self, linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
        mart_outbound_pg::add_to_linker(linker, InstanceState::part::<PgHost>)?;
        Ok(())
    }

    fn instance(&self, of: &InstanceContext<'_>) -> Box<dyn Any + Send> {
        let host = PgHost::new(
            self.pools.clone(),
            of.kind,
            of.component.allowed_hosts.clone(),
            self.compatibility,
        );
        Box::new(host.with_trace(of.trace.clone()))
    }
}

/// `fermyon:spin/variables@2.0.0` and `wasi:config/store`: the component's
/// own variables, resolved at load.
pub struct VariablesPart;

impl HostPart for VariablesPart {
    fn link(&self, linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
        mart_variables::add_to_linker(linker, InstanceState::part::<VariablesHost>)?;
        Ok(())
    }

    fn instance(&self, of: &InstanceContext<'_>) -> Box<dyn Any + Send> {
        Box::new(VariablesHost::new(of.component.variables.clone()))
    }
}

/// `wasi:otel@0.2.0-rc.2` (Spin 4's platform world): a component's own
/// spans, children of the invocation's span and parents of the host calls
/// made while they are open, exported with the host's.
pub struct OtelPart;

impl HostPart for OtelPart {
    fn link(&self, linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
        mart_otel::add_to_linker(linker, InstanceState::part::<OtelHost>)?;
        Ok(())
    }

    fn instance(&self, of: &InstanceContext<'_>) -> Box<dyn Any + Send> {
        Box::new(OtelHost::new(of.component.id.clone(), of.trace.clone()))
    }
}
