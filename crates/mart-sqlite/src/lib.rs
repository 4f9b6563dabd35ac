//! Spin's SQLite interfaces, `fermyon:spin/sqlite@2.0.0`,
//! `spin:sqlite/sqlite@3.0.0` and `spin:sqlite/sqlite@3.1.0` (Spin 4's, with
//! async functions and streamed rows), on local SQLite files.
//!
//! - `databases.rs`: the app's databases by label, from the runtime
//!   config's `[sqlite_database.<label>]` tables and Spin's `default`, and
//!   which labels each component may open (its `sqlite_databases`).
//! - `connection.rs`: one open database, its statements run on tokio's
//!   blocking pool (SQLite's API is synchronous).
//! - `host.rs`: the three WIT versions' trait implementations and nothing else.
//!
//! As on Spin: a component that lists no database still instantiates, and
//! its `open` returns `access-denied`; a component listing a label no
//! database has stops the app at load.

mod connection;
mod databases;
mod host;

pub use connection::{Connection, QueryOutput, SqlValue, SqliteError, Stepped};
pub use databases::{Database, Databases, Location};
pub use host::{add_to_linker, SqliteHost};

use std::sync::Arc;

use mart_runtime::{HostPart, InstanceContext, InstanceState};
use wasmtime::component::Linker;

/// The SQLite interfaces as a host part of the runtime.
pub struct SqlitePart {
    databases: Arc<Databases>,
}

impl SqlitePart {
    pub fn new(databases: Databases) -> Self {
        Self {
            databases: Arc::new(databases),
        }
    }
}

impl HostPart for SqlitePart {
    fn link(&self, linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
        add_to_linker(linker, InstanceState::part::<SqliteHost>)?;
        Ok(())
    }

    fn instance(&self, of: &InstanceContext<'_>) -> Box<dyn std::any::Any + Send> {
        Box::new(SqliteHost::new(self.databases.clone(), &of.component.id))
    }
}
