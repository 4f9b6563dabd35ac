//! Spin's key-value interface, `fermyon:spin/key-value@2.0.0`.
//!
//! - `stores.rs`: the app's stores by label, from the runtime config's
//!   `[key_value_store.<label>]` tables and Spin's `default`, and which
//!   labels each component may open (its `key_value_stores`).
//! - `backend.rs`: where a store's keys live: a SQLite file with Spin's
//!   own schema (so `spin up` and `mart up` share `.spin/sqlite_key_value.db`),
//!   or a Redis server.
//! - `host.rs`: the WIT trait implementation and nothing else.
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

/// The key-value interface as a host part of the runtime.
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
