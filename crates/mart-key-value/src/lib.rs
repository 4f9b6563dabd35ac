//! Spin's key-value interfaces: `fermyon:spin/key-value@2.0.0`, Spin 4's
//! async `spin:key-value/key-value@3.0.0`, and `wasi:keyvalue@0.2.0-draft2`
//! (`store`, `atomics`, `batch`), all on the same stores, so a p2 and a p3
//! component of one app see the same keys.
//!
//! - `stores.rs`: the app's stores by label, from the runtime config's
//!   `[key_value_store.<label>]` tables and Spin's `default`, and which
//!   labels each component may open (its `key_value_stores`).
//! - `backend.rs`: where a store's keys live: a SQLite file with Spin's
//!   own schema (so `spin up` and `mart up` share `.spin/sqlite_key_value.db`),
//!   or a Redis server.
//! - `host.rs`: the three interfaces' trait implementations, thin adapters
//!   over one open-store table and the backend.
//!
//! As on Spin: a component that lists no store still instantiates, and its
//! `open` returns `access-denied`; a component listing a label no store has
//! stops the app at load.

mod backend;
mod host;
mod stores;

pub use backend::Backend;
pub use host::{add_to_linker, KeyValueHost};
pub use stores::Stores;

use std::sync::Arc;

use mart_runtime::{HostPart, InstanceContext, InstanceState};
use wasmtime::component::Linker;

/// The key-value interfaces as a host part of the runtime.
pub struct KeyValuePart {
    stores: Arc<Stores>,
}

impl KeyValuePart {
    pub fn new(stores: Stores) -> Self {
        Self {
            stores: Arc::new(stores),
        }
    }
}

impl HostPart for KeyValuePart {
    fn link(&self, linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
        add_to_linker(linker, InstanceState::part::<KeyValueHost>)?;
        Ok(())
    }

    fn instance(&self, of: &InstanceContext<'_>) -> Box<dyn std::any::Any + Send> {
        Box::new(KeyValueHost::new(self.stores.clone(), &of.component.id))
    }
}
