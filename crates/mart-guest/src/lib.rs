//! What every Mart component does the same way, on top of `spin-sdk`:
//! responses (`http`), configuration (`config`), caller identity (`auth`),
//! the database (`db`) and Kafka handlers (`kafka`, Mart's own interface).
//! Domain rules stay in `mart-domain`; this crate is only the Spin edge.

pub mod auth;
pub mod config;
pub mod db;
pub mod http;
pub mod kafka;
pub mod timer;
pub mod trace;

pub use mart_domain::DomainError;

pub use http::{
    json_body, json_response, method_not_allowed, problem_response, require_json, segments,
    subpath, Query,
};

/// The response for a handler's result: the errors become problem+json.
pub fn respond(
    result: Result<spin_sdk::http::Response, mart_domain::Problem>,
) -> spin_sdk::http::Response {
    result.unwrap_or_else(|problem| problem_response(&problem))
}
