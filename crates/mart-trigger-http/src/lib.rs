//! Spin's HTTP trigger.
//!
//! - `routes.rs`: which component a path goes to (pure).
//! - `headers.rs`: the `spin-*` request headers.
//! - `wasi.rs`: one request through one fresh component instance.
//! - `server.rs`: accept, route, dispatch, shut down gracefully.
//! - `problem.rs`: the host's own error responses (RFC 9457 problem+json).

mod headers;
mod problem;
mod routes;
mod server;
mod wasi;

pub use routes::{RouteMatch, Router};
pub use server::{HttpTrigger, ServeOptions};
