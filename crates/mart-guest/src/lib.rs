//! What every Mart component does the same way, on top of `spin-sdk` 6
//! (Spin 4.0's SDK: WASIp3, async handlers): requests and responses
//! (`http`), configuration (`config`), caller identity (`auth`), the
//! database (`db`), Kafka handlers (`kafka`) and timer ticks (`timer`),
//! the last two Mart's own interfaces. Domain rules stay in `mart-domain`;
//! this crate is only the Spin edge.
//!
//! Instances may be reused for many requests, several at once (Spin 4 and
//! `mart up` both do): nothing here keeps per-request data in a global.
//! The one piece of per-request context, the trace, is scoped to its
//! request's future (`trace`).

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
    subpath, Method, Query, Request, Response, ServiceResponse,
};

/// Serves one request: reads it, runs `route` within the request's
/// trace, and answers an error as problem+json. Every component's
/// `#[http_service]` is this one line:
///
/// ```ignore
/// #[spin_sdk::http_service]
/// async fn handle(request: spin_sdk::http::Request) -> mart_guest::ServiceResponse {
///     mart_guest::serve(request, route).await
/// }
/// ```
pub async fn serve(
    request: spin_sdk::http::Request,
    route: impl AsyncFnOnce(&Request) -> Result<Response, mart_domain::Problem>,
) -> ServiceResponse {
    let trace = trace::of(&request);
    let answer = async move {
        let request = Request::read(request).await?;
        route(&request).await
    };
    trace::scoped(trace, answer)
        .await
        .unwrap_or_else(|problem| problem_response(&problem))
        .into_service_response()
}
