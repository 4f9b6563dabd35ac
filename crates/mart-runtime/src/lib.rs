//! The engine every trigger shares.
//!
//! Components are compiled once at start (with wasmtime's on-disk cache, so a
//! restart does not recompile), linked once into an `InstancePre`, and then
//! instantiated fresh for every request or event in a `Store` of its own:
//! Spin's isolation model. The pooling allocator keeps that cheap.

mod componentize;
mod engine;
pub mod files;
mod invoke;
mod limits;
mod parts;
mod state;
mod wasi_versions;

pub use engine::{begin_next_call, Runtime, RuntimeOptions};
pub use invoke::{instantiate_span, panic_text, Invocation, InvokeError};
pub use limits::InvocationLimits;
pub use mart_outbound_pg::{PgCompatibility, PoolBudgets, PoolSettings, TriggerKind};
pub use parts::{HostPart, InstanceContext, PgPart, VariablesPart};
pub use state::{AppComponent, InstanceState};
