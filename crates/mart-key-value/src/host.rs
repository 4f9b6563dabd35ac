//! The `fermyon:spin/key-value@2.0.0` trait implementation.

use std::collections::BTreeSet;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::{Backend, Stores};

mod bindings {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin/key-value@2.0.0"],
        inline: "
            package mart:host-key-value;
            world key-value-host {
                import fermyon:spin/key-value@2.0.0;
            }
        ",
        world: "mart:host-key-value/key-value-host",
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/key-value.store": crate::host::OpenStore,
        },
    });
}

use bindings::fermyon::spin::key_value::{self as kv, Error};

/// Stores one instance may hold open at once (Spin's limit); beyond it,
/// `open` is `store-table-full`.
const MAX_OPEN_STORES: usize = 256;

/// An open store: its label and where its keys live.
#[derive(Clone)]
pub struct OpenStore {
    label: Arc<str>,
    backend: Arc<Backend>,
}

/// One instance's key-value state: what it may open and what it holds open.
pub struct KeyValueHost {
    stores: Arc<Stores>,
    allowed: Arc<BTreeSet<String>>,
    table: ResourceTable,
    open: usize,
}

impl KeyValueHost {
    pub fn new(stores: Arc<Stores>, component: &str) -> Self {
        Self {
            allowed: stores.allowed_for(component),
            stores,
            table: ResourceTable::new(),
            open: 0,
        }
    }

    fn store(&self, handle: &Resource<OpenStore>) -> wasmtime::Result<OpenStore> {
        Ok(self.table.get(handle)?.clone())
    }
}

/// A call's answer: the guest sees the interface's error, never a trap.
type Answer<T> = wasmtime::Result<Result<T, Error>>;

fn answer<T>(result: Result<T, String>) -> Answer<T> {
    Ok(result.map_err(|message| {
        tracing::warn!(error = %message, "key-value store failed");
        Error::Other(message)
    }))
}

impl kv::Host for KeyValueHost {}

impl kv::HostStore for KeyValueHost {
    /// A label the component does not list is `access-denied`, whether or
    /// not a store has it, as on Spin.
    async fn open(&mut self, label: String) -> Answer<Resource<OpenStore>> {
        if !self.allowed.contains(&label) {
            return Ok(Err(Error::AccessDenied));
        }
        let Some(backend) = self.stores.get(&label).cloned() else {
            return Ok(Err(Error::NoSuchStore));
        };
        if self.open >= MAX_OPEN_STORES {
            return Ok(Err(Error::StoreTableFull));
        }
        if let Err(message) = backend.ready().await {
            return answer(Err(message));
        }
        self.open += 1;
        let store = OpenStore {
            label: label.into(),
            backend,
        };
        Ok(Ok(self.table.push(store)?))
    }

    async fn get(&mut self, store: Resource<OpenStore>, key: String) -> Answer<Option<Vec<u8>>> {
        let store = self.store(&store)?;
        answer(store.backend.get(&store.label, &key).await)
    }

    async fn set(&mut self, store: Resource<OpenStore>, key: String, value: Vec<u8>) -> Answer<()> {
        let store = self.store(&store)?;
        answer(store.backend.set(&store.label, &key, value).await)
    }

    async fn delete(&mut self, store: Resource<OpenStore>, key: String) -> Answer<()> {
        let store = self.store(&store)?;
        answer(store.backend.delete(&store.label, &key).await)
    }

    async fn exists(&mut self, store: Resource<OpenStore>, key: String) -> Answer<bool> {
        let store = self.store(&store)?;
        answer(store.backend.exists(&store.label, &key).await)
    }

    async fn get_keys(&mut self, store: Resource<OpenStore>) -> Answer<Vec<String>> {
        let store = self.store(&store)?;
        answer(store.backend.keys(&store.label).await)
    }

    async fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        self.open -= 1;
        Ok(())
    }
}

struct KeyValue;

impl HasData for KeyValue {
    type Data<'a> = &'a mut KeyValueHost;
}

/// Adds the key-value interface to `linker`; `get` finds the instance's state.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut KeyValueHost,
) -> wasmtime::Result<()> {
    kv::add_to_linker::<T, KeyValue>(linker, get)
}
