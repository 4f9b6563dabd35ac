//! Work in progress: a skeleton that builds, so the workspace builds.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_service;

#[http_service]
async fn handle(_request: Request) -> anyhow::Result<impl IntoResponse> {
    Ok(Response::builder().status(404).body(String::new())?)
}
