//! The key-value interfaces' trait implementations: `fermyon:spin/key-value@2.0.0`,
//! `spin:key-value/key-value@3.0.0` (async) and `wasi:keyvalue@0.2.0-draft2`
//! (`store`, `atomics`, `batch`). All three hold their open stores in one
//! table, as Spin's do, and reach the same backends; the logic lives in
//! `KeyValueHost` and the backend, each version is a thin adapter.

use std::collections::BTreeSet;
use std::sync::Arc;

use wasmtime::component::{
    Accessor, FutureReader, HasData, Linker, Resource, ResourceTable, StreamReader,
};

use crate::backend::Watch;
use crate::{Backend, Stores};

mod bindings {
    wasmtime::component::bindgen!({
        path: [
            "../../wit/spin/key-value@2.0.0",
            "../../wit/spin/key-value@3.0.0",
            "../../wit/spin/wasi-keyvalue@0.2.0-draft2",
        ],
        inline: "
            package mart:host-key-value;
            world key-value-host {
                import fermyon:spin/key-value@2.0.0;
                import spin:key-value/key-value@3.0.0;
                import wasi:keyvalue/store@0.2.0-draft2;
                import wasi:keyvalue/atomics@0.2.0-draft2;
                import wasi:keyvalue/batch@0.2.0-draft2;
            }
        ",
        world: "mart:host-key-value/key-value-host",
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/key-value.store": crate::host::OpenStore,
            "spin:key-value/key-value.store": crate::host::OpenStore,
            "wasi:keyvalue/store.bucket": crate::host::OpenStore,
            "wasi:keyvalue/atomics.cas": crate::host::Cas,
        },
    });
}

use bindings::fermyon::spin::key_value as v2;
use bindings::spin::key_value::key_value as v3;
use bindings::wasi::keyvalue::{atomics, batch, store as wasi};

/// Stores one instance may hold open at once (Spin's limit); beyond it,
/// `open` is `store-table-full`.
const MAX_OPEN_STORES: usize = 256;

/// Compare-and-swaps one instance may hold at once (Spin's limit).
const MAX_OPEN_CAS: usize = 256;

/// An open store: its label and where its keys live.
#[derive(Clone)]
pub struct OpenStore {
    label: Arc<str>,
    backend: Arc<Backend>,
}

/// A wasi:keyvalue compare-and-swap: the key, and what `current` read.
pub struct Cas {
    store: OpenStore,
    key: String,
    watch: Option<Watch>,
}

/// Why a call failed, before each version names it in its own error type.
#[derive(Debug)]
enum Failure {
    AccessDenied,
    NoSuchStore,
    StoreTableFull,
    Other(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        tracing::warn!(error = %message, "key-value store failed");
        Failure::Other(message)
    }
}

/// One instance's key-value state: what it may open and what it holds open.
pub struct KeyValueHost {
    stores: Arc<Stores>,
    allowed: Arc<BTreeSet<String>>,
    table: ResourceTable,
    open: usize,
    open_cas: usize,
}

impl KeyValueHost {
    pub fn new(stores: Arc<Stores>, component: &str) -> Self {
        Self {
            allowed: stores.allowed_for(component),
            stores,
            table: ResourceTable::new(),
            open: 0,
            open_cas: 0,
        }
    }

    /// The backend `label` names, if the component may open it: a label it
    /// does not list is `access-denied` whether or not a store has it, as
    /// on Spin.
    fn backend_of(&self, label: &str) -> Result<Arc<Backend>, Failure> {
        if !self.allowed.contains(label) {
            return Err(Failure::AccessDenied);
        }
        self.stores.get(label).cloned().ok_or(Failure::NoSuchStore)
    }

    /// Holds a store the backend answered for, if the table has room.
    fn hold(
        &mut self,
        label: String,
        backend: Arc<Backend>,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, Failure>> {
        if self.open >= MAX_OPEN_STORES {
            return Ok(Err(Failure::StoreTableFull));
        }
        let store = OpenStore {
            label: label.into(),
            backend,
        };
        let handle = self.table.push(store)?;
        self.open += 1;
        Ok(Ok(handle))
    }

    /// Opens `label` in one go, for the versions whose calls hold the
    /// instance's state throughout.
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, Failure>> {
        let backend = match self.backend_of(&label) {
            Ok(backend) => backend,
            Err(failure) => return Ok(Err(failure)),
        };
        if let Err(message) = backend.ready().await {
            return Ok(Err(message.into()));
        }
        self.hold(label, backend)
    }

    fn store(&self, handle: &Resource<OpenStore>) -> wasmtime::Result<OpenStore> {
        Ok(self.table.get(handle)?.clone())
    }

    fn close(&mut self, handle: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        self.open -= 1;
        Ok(())
    }

    /// A compare-and-swap of `key` in `store`, nothing read yet.
    fn new_cas(
        &mut self,
        store: OpenStore,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, Failure>> {
        if self.open_cas >= MAX_OPEN_CAS {
            return Ok(Err(Failure::Other(
                "too many compare_and_swaps opened".into(),
            )));
        }
        let cas = Cas {
            store,
            key,
            watch: None,
        };
        let handle = self.table.push(cas)?;
        self.open_cas += 1;
        Ok(Ok(handle))
    }

    /// Reads the compare-and-swap's key, remembering what it read.
    async fn cas_current(
        &mut self,
        handle: &Resource<Cas>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Failure>> {
        let cas = self.table.get(handle)?;
        let (store, key) = (cas.store.clone(), cas.key.clone());
        match store.backend.watch(&store.label, &key).await {
            Ok((value, watch)) => {
                self.table.get_mut(handle)?.watch = Some(watch);
                Ok(Ok(value))
            }
            Err(message) => Ok(Err(message.into())),
        }
    }

    fn drop_cas(&mut self, handle: Resource<Cas>) -> wasmtime::Result<Cas> {
        let cas = self.table.delete(handle)?;
        self.open_cas -= 1;
        Ok(cas)
    }
}

/// A call's answer: the guest sees the interface's error, never a trap.
type Answer<T, E> = wasmtime::Result<Result<T, E>>;

/// A backend call's result as `E` (a version's error type).
fn answer<T, E: From<Failure>>(result: Result<T, String>) -> Answer<T, E> {
    Ok(result.map_err(|message| Failure::from(message).into()))
}

fn named<T, E: From<Failure>>(result: wasmtime::Result<Result<T, Failure>>) -> Answer<T, E> {
    result.map(|r| r.map_err(Into::into))
}

// fermyon:spin/key-value@2.0.0

impl From<Failure> for v2::Error {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::AccessDenied => v2::Error::AccessDenied,
            Failure::NoSuchStore => v2::Error::NoSuchStore,
            Failure::StoreTableFull => v2::Error::StoreTableFull,
            Failure::Other(message) => v2::Error::Other(message),
        }
    }
}

impl v2::Host for KeyValueHost {}

impl v2::HostStore for KeyValueHost {
    async fn open(&mut self, label: String) -> Answer<Resource<OpenStore>, v2::Error> {
        named(KeyValueHost::open(self, label).await)
    }

    async fn get(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> Answer<Option<Vec<u8>>, v2::Error> {
        let store = self.store(&store)?;
        answer(store.backend.get(&store.label, &key).await)
    }

    async fn set(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Answer<(), v2::Error> {
        let store = self.store(&store)?;
        answer(store.backend.set(&store.label, &key, value).await)
    }

    async fn delete(&mut self, store: Resource<OpenStore>, key: String) -> Answer<(), v2::Error> {
        let store = self.store(&store)?;
        answer(store.backend.delete(&store.label, &key).await)
    }

    async fn exists(&mut self, store: Resource<OpenStore>, key: String) -> Answer<bool, v2::Error> {
        let store = self.store(&store)?;
        answer(store.backend.exists(&store.label, &key).await)
    }

    async fn get_keys(&mut self, store: Resource<OpenStore>) -> Answer<Vec<String>, v2::Error> {
        let store = self.store(&store)?;
        answer(store.backend.keys(&store.label).await)
    }

    async fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.close(store)
    }
}

// spin:key-value/key-value@3.0.0: async functions, which reach the
// instance's state only between awaits (`Accessor::with`), so other calls of
// the same instance run meanwhile.

impl From<Failure> for v3::Error {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::AccessDenied => v3::Error::AccessDenied,
            Failure::NoSuchStore => v3::Error::NoSuchStore,
            Failure::StoreTableFull => v3::Error::StoreTableFull,
            Failure::Other(message) => v3::Error::Other(message),
        }
    }
}

impl v3::Host for KeyValueHost {}

impl v3::HostStore for KeyValueHost {
    async fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.close(store)
    }
}

/// The open store behind `handle`, taken out of the instance's state.
fn open_store<T>(
    accessor: &Accessor<T, KeyValue>,
    handle: &Resource<OpenStore>,
) -> wasmtime::Result<OpenStore> {
    accessor.with(|mut access| access.get().store(handle))
}

impl<T: Send> v3::HostStoreWithStore<T> for KeyValue {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> Answer<Resource<OpenStore>, v3::Error> {
        let backend = match accessor.with(|mut access| access.get().backend_of(&label)) {
            Ok(backend) => backend,
            Err(failure) => return Ok(Err(failure.into())),
        };
        if let Err(message) = backend.ready().await {
            return Ok(Err(Failure::from(message).into()));
        }
        named(accessor.with(|mut access| access.get().hold(label, backend)))
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Answer<Option<Vec<u8>>, v3::Error> {
        let store = open_store(accessor, &store)?;
        answer(store.backend.get(&store.label, &key).await)
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Answer<(), v3::Error> {
        let store = open_store(accessor, &store)?;
        answer(store.backend.set(&store.label, &key, value).await)
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Answer<(), v3::Error> {
        let store = open_store(accessor, &store)?;
        answer(store.backend.delete(&store.label, &key).await)
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Answer<bool, v3::Error> {
        let store = open_store(accessor, &store)?;
        answer(store.backend.exists(&store.label, &key).await)
    }

    /// The keys as a stream, then the outcome as a future: a failure is an
    /// empty stream and the error in the future.
    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), v3::Error>>)> {
        let store = open_store(accessor, &store)?;
        let (keys, outcome) = match store.backend.keys(&store.label).await {
            Ok(keys) => (keys, Ok(())),
            Err(message) => (Vec::new(), Err(Failure::from(message).into())),
        };
        accessor.with(|mut access| {
            let keys = StreamReader::new(&mut access, keys)?;
            let outcome =
                FutureReader::new(
                    &mut access,
                    async move { Ok::<_, wasmtime::Error>(outcome) },
                )?;
            Ok((keys, outcome))
        })
    }
}

// wasi:keyvalue@0.2.0-draft2, on the same stores (Spin's identifiers are
// the store labels). Its error has no `store-table-full`: Spin answers
// `other("store table full")`.

impl From<Failure> for wasi::Error {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::AccessDenied => wasi::Error::AccessDenied,
            Failure::NoSuchStore => wasi::Error::NoSuchStore,
            Failure::StoreTableFull => wasi::Error::Other("store table full".into()),
            Failure::Other(message) => wasi::Error::Other(message),
        }
    }
}

impl wasi::Host for KeyValueHost {
    async fn open(&mut self, identifier: String) -> Answer<Resource<OpenStore>, wasi::Error> {
        named(KeyValueHost::open(self, identifier).await)
    }
}

impl wasi::HostBucket for KeyValueHost {
    async fn get(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> Answer<Option<Vec<u8>>, wasi::Error> {
        let store = self.store(&bucket)?;
        answer(store.backend.get(&store.label, &key).await)
    }

    async fn set(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Answer<(), wasi::Error> {
        let store = self.store(&bucket)?;
        answer(store.backend.set(&store.label, &key, value).await)
    }

    async fn delete(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> Answer<(), wasi::Error> {
        let store = self.store(&bucket)?;
        answer(store.backend.delete(&store.label, &key).await)
    }

    async fn exists(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> Answer<bool, wasi::Error> {
        let store = self.store(&bucket)?;
        answer(store.backend.exists(&store.label, &key).await)
    }

    /// Every key in one response; a cursor is refused, as on Spin (it never
    /// hands one out).
    async fn list_keys(
        &mut self,
        bucket: Resource<OpenStore>,
        cursor: Option<String>,
    ) -> Answer<wasi::KeyResponse, wasi::Error> {
        if cursor.is_some() {
            return Ok(Err(wasi::Error::Other(
                "list_keys: cursor not supported".into(),
            )));
        }
        let store = self.store(&bucket)?;
        let keys = store.backend.keys(&store.label).await;
        answer(keys.map(|keys| wasi::KeyResponse { keys, cursor: None }))
    }

    async fn drop(&mut self, bucket: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.close(bucket)
    }
}

impl batch::Host for KeyValueHost {
    async fn get_many(
        &mut self,
        bucket: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> Answer<Vec<(String, Option<Vec<u8>>)>, wasi::Error> {
        let store = self.store(&bucket)?;
        answer(store.backend.get_many(&store.label, keys).await)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<OpenStore>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Answer<(), wasi::Error> {
        let store = self.store(&bucket)?;
        answer(store.backend.set_many(&store.label, key_values).await)
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> Answer<(), wasi::Error> {
        let store = self.store(&bucket)?;
        answer(store.backend.delete_many(&store.label, keys).await)
    }
}

impl atomics::Host for KeyValueHost {
    async fn increment(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
        delta: i64,
    ) -> Answer<i64, wasi::Error> {
        let store = self.store(&bucket)?;
        answer(store.backend.increment(&store.label, &key, delta).await)
    }

    /// Sets the value if the key still holds what `current` read. When it
    /// does not, the answer carries a new compare-and-swap that has read
    /// the key's latest value, for the guest to retry with.
    async fn swap(&mut self, cas: Resource<Cas>, value: Vec<u8>) -> Answer<(), atomics::CasError> {
        let Cas { store, key, watch } = self.drop_cas(cas)?;
        let swapped = store.backend.swap(&store.label, &key, watch, value).await;
        let failed = |failure: Failure| Ok(Err(atomics::CasError::StoreError(failure.into())));
        match swapped {
            Ok(true) => Ok(Ok(())),
            Err(message) => failed(message.into()),
            Ok(false) => {
                let retry = match self.new_cas(store, key)? {
                    Ok(retry) => retry,
                    Err(failure) => return failed(failure),
                };
                if let Err(failure) = self.cas_current(&retry).await? {
                    return failed(failure);
                }
                Ok(Err(atomics::CasError::CasFailed(retry)))
            }
        }
    }
}

impl atomics::HostCas for KeyValueHost {
    async fn new(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> Answer<Resource<Cas>, wasi::Error> {
        let store = self.store(&bucket)?;
        named(self.new_cas(store, key))
    }

    async fn current(&mut self, cas: Resource<Cas>) -> Answer<Option<Vec<u8>>, wasi::Error> {
        named(self.cas_current(&cas).await)
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.drop_cas(cas).map(drop)
    }
}

struct KeyValue;

impl HasData for KeyValue {
    type Data<'a> = &'a mut KeyValueHost;
}

/// Adds the key-value interfaces to `linker`; `get` finds the instance's state.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut KeyValueHost,
) -> wasmtime::Result<()> {
    v2::add_to_linker::<T, KeyValue>(linker, get)?;
    v3::add_to_linker::<T, KeyValue>(linker, get)?;
    wasi::add_to_linker::<T, KeyValue>(linker, get)?;
    atomics::add_to_linker::<T, KeyValue>(linker, get)?;
    batch::add_to_linker::<T, KeyValue>(linker, get)?;
    Ok(())
}
