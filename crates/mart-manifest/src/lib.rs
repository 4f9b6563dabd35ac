//! The Spin manifest (`spin.toml`, manifest version 2) and runtime config
//! (`runtime-config.toml`) as plain data.
//!
//! Only Spin's documented keys live in Spin's tables. Mart's own settings live
//! in `tool.mart` tables (Spin reserves `tool` tables for tools), so the same
//! manifest stays valid for Fermyon Spin.

mod export;
mod grants;
mod kafka;
mod locked;
mod manifest;
mod runtime_config;
mod timer;

pub use export::http_only;
pub use grants::Grants;
pub use kafka::*;
pub use locked::LockedApp;
pub use manifest::*;
pub use runtime_config::*;
pub use timer::*;

/// Why a manifest or runtime config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid manifest: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}
