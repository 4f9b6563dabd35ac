//! `spin:postgres/postgres@4.0.0` for components.
//!
//! - `client.rs`: pooled connections, one pool per address, shared by all
//!   instances; statements are prepared once per pooled connection.
//! - `host.rs`: the WIT trait implementation and nothing else.
//! - `convert.rs`: WIT values to and from PostgreSQL's binary format.
//! - `txn.rs`: knows whether a connection was left inside a transaction, so a
//!   trapped instance never hands an open transaction to the next one.

mod client;
mod convert;
mod host;
mod txn;

use std::sync::Arc;

use mart_outbound_networking::AllowedHosts;
use wasmtime::component::{HasData, Linker, ResourceTable};

pub use client::{PgPools, PoolSettings};

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

/// One instance's PostgreSQL state: its open connections and what it may reach.
pub struct PgHost {
    pools: Arc<PgPools>,
    allowed: Arc<AllowedHosts>,
    table: ResourceTable,
}

impl PgHost {
    pub fn new(pools: Arc<PgPools>, allowed: Arc<AllowedHosts>) -> Self {
        Self {
            pools,
            allowed,
            table: ResourceTable::new(),
        }
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
    bindings::spin::postgres::postgres::add_to_linker::<T, Pg>(linker, get)
}
