//! The WIT interfaces components call to read their variables.

use std::collections::BTreeMap;
use std::sync::Arc;

use mart_manifest::check_variable_name;
use wasmtime::component::{HasData, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: [
            "../../wit/spin/variables@2.0.0",
            "../../wit/spin/variables@3.0.0",
            "../../wit/spin/config@0.2.0-draft-2024-09-27",
        ],
        inline: "
            package mart:host-variables;
            world variables-host {
                import fermyon:spin/variables@2.0.0;
                import spin:variables/variables@3.0.0;
                import wasi:config/store@0.2.0-draft-2024-09-27;
            }
        ",
        world: "mart:host-variables/variables-host",
    });
}

use bindings::fermyon::spin::variables;
use bindings::spin::variables::variables as variables3;
use bindings::wasi::config::store;
use wasmtime::component::Accessor;

/// One instance's view of its component's resolved variables.
#[derive(Debug, Clone, Default)]
pub struct VariablesHost {
    values: Arc<BTreeMap<String, String>>,
}

impl VariablesHost {
    pub fn new(values: Arc<BTreeMap<String, String>>) -> Self {
        Self { values }
    }
}

/// Why a variable has no value for the component (both versions of
/// Spin's interface say it alike).
enum Lookup {
    InvalidName(String),
    Undefined(String),
}

impl VariablesHost {
    fn lookup(&self, name: String) -> Result<String, Lookup> {
        if check_variable_name(&name).is_err() {
            return Err(Lookup::InvalidName(name));
        }
        self.values
            .get(&name)
            .cloned()
            .ok_or(Lookup::Undefined(name))
    }
}

impl variables::Host for VariablesHost {
    fn get(&mut self, name: String) -> Result<String, variables::Error> {
        self.lookup(name).map_err(|e| match e {
            Lookup::InvalidName(n) => variables::Error::InvalidName(n),
            Lookup::Undefined(n) => variables::Error::Undefined(n),
        })
    }
}

/// `spin:variables@3.0.0` (Spin 4's): the same lookup, as an async call.
impl variables3::Host for VariablesHost {}

impl<T> variables3::HostWithStore<T> for Variables {
    async fn get(accessor: &Accessor<T, Self>, name: String) -> Result<String, variables3::Error> {
        accessor.with(|mut access| {
            access.get().lookup(name).map_err(|e| match e {
                Lookup::InvalidName(n) => variables3::Error::InvalidName(n),
                Lookup::Undefined(n) => variables3::Error::Undefined(n),
            })
        })
    }
}

impl store::Host for VariablesHost {
    fn get(&mut self, key: String) -> Result<Option<String>, store::Error> {
        Ok(self.values.get(&key).cloned())
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, store::Error> {
        Ok(self
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

struct Variables;

impl HasData for Variables {
    type Data<'a> = &'a mut VariablesHost;
}

/// Adds the variable interfaces to `linker`; `get` finds the instance's state.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut VariablesHost,
) -> wasmtime::Result<()> {
    variables::add_to_linker::<T, Variables>(linker, get)?;
    variables3::add_to_linker::<T, Variables>(linker, get)?;
    store::add_to_linker::<T, Variables>(linker, get)?;
    Ok(())
}
