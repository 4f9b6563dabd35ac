//! `spin:postgres/postgres@4.0.0` and `@4.2.0` (Spin 4's, with async
//! calls) for components.
//!
//! - `client.rs`: pooled connections, one pool per trigger kind and address,
//!   shared by that kind's instances; statements are prepared once per
//!   pooled connection.
//! - `host.rs`: the 4.0.0 WIT trait implementation and nothing else.
//! - `v4_2.rs`: 4.2.0, on 4.0.0's types and statements: the connection
//!   builder and the async calls spin-sdk 6 and 7 make.
//! - `convert.rs`: WIT values to and from PostgreSQL's binary format.
//! - `spin40.rs`: what Fermyon Spin 4.0.x's host cannot do, refused alike
//!   (the default; see [`PgCompatibility`]).
//! - `txn.rs`: knows whether a connection was left inside a transaction, so a
//!   trapped instance never hands an open transaction to the next one.

mod client;
mod convert;
mod host;
mod spin40;
mod txn;
mod v4_2;

use std::sync::Arc;

use mart_telemetry::CurrentTrace;

use mart_outbound_networking::AllowedHosts;
use wasmtime::component::{HasData, Linker, ResourceTable};

pub use client::{PgPools, PoolBudgets, PoolSettings, TriggerKind};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin/postgres@4.0.0"],
        inline: "
            package mart:host-pg;
            world pg-host {
                import spin:postgres/postgres@4.0.0;
            }
        ",
        world: "mart:host-pg/pg-host",
        imports: { default: async },
        with: {
            "spin:postgres/postgres.connection": crate::client::Connection,
        },
    });
}

/// How closely the host follows Fermyon Spin 4.0.x's PostgreSQL host.
///
/// The default is [`PgCompatibility::Spin40`]: Mart's components (and any
/// Spin app) must run under `spin up` too, and Spin 4.0.0–4.0.2 cannot do
/// two things the interface allows. Refusing them here, loudly, makes a
/// query that would fail or hang under Spin fail in Mart's own tests instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PgCompatibility {
    /// Refuse what Spin 4.0.x cannot do: results with a `timestamptz` column
    /// (its host decodes them as naive date-times and fails) and queries
    /// that return no rows (its host never answers them,
    /// spinframework/spin#3671); `json`, `name` and `"char"` columns come
    /// back as `unsupported`, as there.
    #[default]
    Spin40,
    /// Everything the interface can express.
    Full,
}

/// One instance's PostgreSQL state: its open connections, what it may
/// reach, and whose pools it draws from.
pub struct PgHost {
    pools: Arc<PgPools>,
    kind: TriggerKind,
    allowed: Arc<AllowedHosts>,
    table: ResourceTable,
    compatibility: PgCompatibility,
    /// The invocation's span: each statement is a client span under it.
    trace: CurrentTrace,
}

impl PgHost {
    pub fn new(
        pools: Arc<PgPools>,
        kind: TriggerKind,
        allowed: Arc<AllowedHosts>,
        compatibility: PgCompatibility,
    ) -> Self {
        Self {
            pools,
            kind,
            allowed,
            table: ResourceTable::new(),
            compatibility,
            trace: CurrentTrace::default(),
        }
    }

    pub fn with_trace(mut self, trace: CurrentTrace) -> Self {
        self.trace = trace;
        self
    }
}

struct Pg;

impl HasData for Pg {
    type Data<'a> = &'a mut PgHost;
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut PgHost,
) -> wasmtime::Result<()> {
    bindings::spin::postgres::postgres::add_to_linker::<T, Pg>(linker, get)?;
    v4_2::add_to_linker(linker, get)
}
