//! Spin application variables.
//!
//! - `template.rs`: the `{{ name }}` expressions used in component variables
//!   and `allowed_outbound_hosts`.
//! - `resolver.rs`: providers (environment, defaults) and resolution of every
//!   component's variables, done once at start so a missing required variable
//!   stops the app before it serves anything.
//! - `vault.rs`: Spin's `vault` provider (HashiCorp Vault KV v2), read at
//!   start.
//! - `host.rs`: the `fermyon:spin/variables@2.0.0` and `wasi:config/store`
//!   interfaces a component imports.

mod host;
mod resolver;
mod template;
mod vault;

pub use host::{add_to_linker, VariablesHost};
pub use resolver::{ComponentVariables, EnvProvider, Resolver, VariableError};
pub use template::{Template, TemplateError};
pub use vault::{read_vault, VaultError, VaultSettings};
