//! The admin listener, separate from the app's so the gateway never routes
//! it and it never shadows an app route:
//! - `GET /healthz`: the process is alive.
//! - `GET /readyz`: every readiness check passes (PostgreSQL reachable,
//!   migrations applied, …); 503 with the failing checks otherwise.
//! - `GET /metrics`: Prometheus text format.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mart_metrics::Metrics;
use tokio::net::TcpListener;

pub type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One named readiness check.
pub struct Check {
    pub name: &'static str,
    pub run: Box<dyn Fn() -> CheckFuture + Send + Sync>,
}

pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub checks: Vec<Check>,
    /// Called before each scrape, to refresh gauges read from elsewhere.
    pub before_scrape: Box<dyn Fn() + Send + Sync>,
}

impl Admin {
    /// Serves until `shutdown` resolves.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let this = self.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let this = this.clone();
                            async move { Ok::<_, Infallible>(this.handle(req).await) }
                        });
                        let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
                    });
                }
                () = &mut shutdown => return,
            }
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        match request.uri().path() {
            "/healthz" => text(StatusCode::OK, "text/plain", "ok".into()),
            "/readyz" => self.readiness().await,
            "/metrics" => {
                (self.before_scrape)();
                text(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.metrics.render(),
                )
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found: try /healthz, /readyz or /metrics".into(),
            ),
        }
    }

    async fn readiness(&self) -> Response<Full<Bytes>> {
        let results = join_all(self.checks.iter().map(|c| (c.run)())).await;
        let mut body = serde_json::Map::new();
        let mut ready = true;
        for (check, result) in self.checks.iter().zip(results) {
            let value = match result {
                Ok(()) => "ok".to_string(),
                Err(e) => {
                    ready = false;
                    e
                }
            };
            body.insert(check.name.to_string(), value.into());
        }
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let json = serde_json::json!({ "ready": ready, "checks": body });
        text(status, "application/json", json.to_string())
    }
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a static response is valid")
}
