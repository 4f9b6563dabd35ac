//! The WIT interfaces components call to read their variables.

use std::collections::BTreeMap;
use std::sync::Arc;

use mart_manifest::check_variable_name;
use wasmtime::component::{HasData, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: [
            "../../wit/spin/variables@2.0.0",
            "../../wit/spin/config@0.2.0-draft-2024-09-27",
        ],
        inline: "
            package mart:host-variables;
            world variables-host {
                import fermyon:spin/variables@2.0.0;
                import wasi:config/store@0.2.0-draft-2024-09-27;
            }
        ",
        world: "mart:host-variables/variables-host",
    });
}

use bindings::fermyon::spin::variables;
use bindings::wasi::config::store;

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

impl variables::Host for VariablesHost {
    fn get(&mut self, name: String) -> Result<String, variables::Error> {
        check_variable_name(&name).map_err(|_| variables::Error::InvalidName(name.clone()))?;
        self.values
            .get(&name)
            .cloned()
            .ok_or(variables::Error::Undefined(name))
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

/// Adds both variable interfaces to `linker`; `get` finds the instance's state.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut VariablesHost,
) -> wasmtime::Result<()> {
    variables::add_to_linker::<T, Variables>(linker, get)?;
    store::add_to_linker::<T, Variables>(linker, get)?;
    Ok(())
}
