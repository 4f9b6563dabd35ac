//! Spin's HTTP trigger.
//!
//! - `routes.rs`: which component a path goes to (pure).
//! - `headers.rs`: the `spin-*` request headers.
//! - `wasi.rs`: one request through a component (a fresh p2 instance).
//! - `wasip3.rs`: reused p3 instances, as Spin 4 reuses them.
//! - `reuse.rs`: Spin 4's reuse options and their syntax.
//! - `server.rs`: accept, route, dispatch, shut down gracefully.
//! - `problem.rs`: the host's own error responses (RFC 9457 problem+json).

mod headers;
mod problem;
mod reuse;
mod routes;
mod server;
mod wasi;
mod wasip3;

pub use reuse::{parse_count_range, parse_duration_range, InstanceReuse, Range};
pub use routes::{RouteMatch, Router};
pub use server::{HttpTrigger, ServeOptions};
