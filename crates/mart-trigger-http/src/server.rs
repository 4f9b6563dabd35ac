//! Accept connections, route each request, run the component, answer.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use mart_manifest::App;
use mart_metrics::TaskKind;
use mart_outbound_http::{LocalDispatch, ResponseFuture};
use mart_runtime::Runtime;
use mart_telemetry::{Span, SpanKind, TraceParent};
use tokio::net::TcpListener;
use tracing::Instrument;
use wasmtime_wasi_http::WasiBody;

use crate::headers::{full_url, set_spin_headers};
use crate::problem::{problem, text};
use crate::reuse::InstanceReuse;
use crate::wasi::{invoke, HttpComponent, InvokeError};
use crate::{RouteMatch, Router};

pub(crate) type Body = UnsyncBoxBody<Bytes, anyhow::Error>;

/// How the listener protects the host from slow and abusive clients. A
/// client that is slow to send its headers or body holds a connection, never
/// an instance: bodies are read whole before a component runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Largest request body the host accepts, in bytes.
    pub max_request_body: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// How long a client may take to send a request's headers (then the
    /// connection is closed).
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body (then 408).
    pub body_timeout: Duration,
    /// Open connections at most; further ones are answered 503 and closed.
    pub max_connections: usize,
    /// Open connections one client address may hold at most (0: no limit),
    /// so one client cannot take every connection; further ones are
    /// answered 503 and closed. Behind a gateway, which connects from one
    /// address for everyone and limits clients itself, set 0.
    pub max_connections_per_client: usize,
    /// Requests running a component at once (chained calls not counted);
    /// the instance pool is shared with the Kafka and timer triggers, which
    /// keep the rest. Further requests wait up to `queue_wait`, then 503.
    pub max_concurrent_requests: usize,
    pub queue_wait: Duration,
    /// Add `x-request-id` to every response (off: as Spin, the host puts
    /// nothing in a response the component did not write; the id is in the
    /// logs and traces either way).
    pub request_id_header: bool,
    /// How WASIp3 instances are reused (Spin 4's options).
    pub reuse: InstanceReuse,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_request_body: 10 << 20,
            shutdown_grace: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1000,
            max_connections_per_client: 100,
            max_concurrent_requests: 500,
            queue_wait: Duration::from_secs(5),
            request_id_header: false,
            reuse: InstanceReuse::default(),
        }
    }
}

/// The HTTP trigger of one app.
pub struct HttpTrigger {
    app_name: String,
    app_version: String,
    runtime: Arc<Runtime>,
    router: Router,
    /// Every component with an HTTP trigger (routed or private).
    components: HashMap<String, HttpComponent>,
    options: ServeOptions,
    /// Permits for requests running a component (`max_concurrent_requests`).
    running: Arc<tokio::sync::Semaphore>,
}

impl HttpTrigger {
    pub fn new(
        app: &App,
        runtime: Arc<Runtime>,
        options: ServeOptions,
    ) -> anyhow::Result<Arc<Self>> {
        let (router, shadowed) =
            Router::build(&app.manifest.trigger.http).map_err(anyhow::Error::msg)?;
        if !shadowed.is_empty() {
            tracing::error!(
                "these component routes are duplicates and will never be used: {}",
                shadowed.join("; ")
            );
        }
        let mut components = HashMap::new();
        for trigger in &app.manifest.trigger.http {
            let id = &trigger.component;
            if components.contains_key(id) {
                continue;
            }
            let component = runtime
                .component(id)
                .ok_or_else(|| anyhow::anyhow!("HTTP trigger names unknown component `{id}`"))?;
            components.insert(
                id.clone(),
                HttpComponent::new(&runtime, component.clone(), options.reuse)?,
            );
        }
        let trigger = Arc::new(Self {
            app_name: app.manifest.application.name.clone(),
            app_version: app.manifest.application.version.clone().unwrap_or_default(),
            runtime: runtime.clone(),
            router,
            components,
            running: Arc::new(tokio::sync::Semaphore::new(options.max_concurrent_requests)),
            options,
        });
        runtime.set_local_dispatch(Arc::new(Chaining(Arc::downgrade(&trigger))));
        Ok(trigger)
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Serves until `shutdown` resolves, then stops accepting and waits (up to
    /// the grace period) for requests in flight.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.options.header_timeout);
        builder.http2().timer(TokioTimer::new());
        let connections = Arc::new(tokio::sync::Semaphore::new(self.options.max_connections));
        let per_client = PerClient::new(self.options.max_connections_per_client);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, client) = match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // E.g. out of file descriptors: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let Some(client_slot) = per_client.try_acquire(client.ip()) else {
                        self.runtime.metrics().http_refused("client_connections_full");
                        tokio::spawn(self.runtime.metrics().busy(TaskKind::Http, refuse_connection(stream)));
                        continue;
                    };
                    let Ok(slot) = connections.clone().try_acquire_owned() else {
                        self.runtime.metrics().http_refused("connections_full");
                        tokio::spawn(self.runtime.metrics().busy(TaskKind::Http, refuse_connection(stream)));
                        continue;
                    };
                    let open = self.runtime.metrics().connection_open();
                    let this = self.clone();
                    let service = hyper::service::service_fn(move |req| {
                        let this = this.clone();
                        async move { Ok::<_, std::convert::Infallible>(this.handle(req, client).await) }
                    });
                    let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                    let conn = graceful.watch(conn);
                    let connection = async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        drop((slot, client_slot, open));
                    };
                    tokio::spawn(self.runtime.metrics().busy(TaskKind::Http, connection));
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        tracing::info!("shutting down: waiting for requests in flight");
        if tokio::time::timeout(self.options.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("requests still in flight after the grace period; stopping anyway");
        }
        Ok(())
    }

    async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<Body> {
        let request_id = request_id(&request);
        let span = tracing::info_span!("request", id = %request_id, method = %request.method(), path = %request.uri().path(), trace_id = tracing::field::Empty);
        let started = Instant::now();
        async move {
            let mut response = self.route_and_invoke(request, client, &request_id).await;
            if self.options.request_id_header {
                if let Ok(value) = HeaderValue::from_str(&request_id) {
                    response.headers_mut().insert("x-request-id", value);
                }
            }
            tracing::info!(
                status = response.status().as_u16(),
                elapsed_us = started.elapsed().as_micros() as u64,
                "handled"
            );
            response
        }
        .instrument(span)
        .await
    }

    /// Handles one request in-process, exactly as if it came over the
    /// network from `client` (benchmarks and embedding).
    pub async fn call<B>(&self, request: Request<B>, client: SocketAddr) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let request_id = uuid::Uuid::new_v4().to_string();
        self.route_and_invoke(request, client, &request_id).await
    }

    async fn route_and_invoke<B>(
        &self,
        request: Request<B>,
        client: SocketAddr,
        request_id: &str,
    ) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = request.uri().path().to_string();
        if let Some(response) = self.well_known(&path, request_id) {
            return response;
        }
        let Some(route) = self.router.route(&path) else {
            self.runtime
                .metrics()
                .http_request("none", "none", 404, Duration::ZERO);
            return problem(
                StatusCode::NOT_FOUND,
                &format!("no route matches {path}"),
                request_id,
            );
        };
        let started = Instant::now();
        if let Some(length) = content_length(&request) {
            if length > self.options.max_request_body as u64 {
                return problem(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!(
                        "the request body is {length} bytes; the limit is {}",
                        self.options.max_request_body
                    ),
                    request_id,
                );
            }
        }
        let (mut parts, body) = request.into_parts();
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let url = full_url("http", host.as_deref(), path_and_query(&parts.uri));
        set_spin_headers(&mut parts.headers, &route, &url, client);
        if host.is_none() {
            parts
                .headers
                .insert(header::HOST, HeaderValue::from_static("localhost"));
        }
        // The whole body first: a client that sends it slowly (or never)
        // holds its connection, not an instance the others need.
        let body = match self.read_body(body).await {
            Ok(bytes) => Full::new(bytes)
                .map_err(|never: Infallible| -> wasmtime_wasi_http::Error { match never {} }),
            Err(refusal) => return refusal.problem(&self.options, request_id),
        };
        let Ok(_running) =
            tokio::time::timeout(self.options.queue_wait, self.running.acquire()).await
        else {
            self.runtime.metrics().http_refused("busy");
            let mut response = problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "the host is running as many requests as it may; try again shortly",
                request_id,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        };
        let span = server_span(&mut parts, &route);
        let request = Request::from_parts(parts, body);
        let response = self.run(&route, request, request_id, span).await;
        let status = response.status().as_u16();
        self.runtime.metrics().http_request(
            &route.component,
            &route.raw_route,
            status,
            started.elapsed(),
        );
        response
    }

    /// The request body, whole, within `max_request_body` and `body_timeout`.
    async fn read_body<B>(&self, body: B) -> Result<Bytes, BodyRefusal>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let limited = Limited::new(body, self.options.max_request_body);
        match tokio::time::timeout(self.options.body_timeout, limited.collect()).await {
            Err(_) => {
                self.runtime.metrics().http_refused("body_timeout");
                Err(BodyRefusal::TimedOut)
            }
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyRefusal::TooLarge),
            Ok(Err(e)) => Err(BodyRefusal::Broken(e.to_string())),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
        }
    }

    async fn run<B>(
        &self,
        route: &RouteMatch,
        request: Request<B>,
        request_id: &str,
        mut span: Span,
    ) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let response = match self.components.get(&route.component) {
            Some(target) => {
                self.invoke_component(route, target, request, request_id, &span)
                    .await
            }
            None => problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the route names a component that is not loaded",
                request_id,
            ),
        };
        let status = response.status();
        span.set("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.fail(format!("the component answered {status}"));
        }
        response
    }

    async fn invoke_component<B>(
        &self,
        route: &RouteMatch,
        target: &HttpComponent,
        request: Request<B>,
        request_id: &str,
        span: &Span,
    ) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        match invoke(&self.runtime, target, request, Some(span.context().clone())).await {
            Ok(response) => response.map(|body| {
                body.map_err(|code| anyhow::anyhow!("{code:?}"))
                    .boxed_unsync()
            }),
            Err(InvokeError::Deadline) => {
                tracing::error!(component = %route.component, timeout = ?target.component.limits.timeout, "deadline exceeded");
                problem(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!(
                        "component `{}` did not answer within {:?}",
                        route.component, target.component.limits.timeout
                    ),
                    request_id,
                )
            }
            Err(InvokeError::Failed(error)) => {
                tracing::error!(component = %route.component, %error, "component failed");
                problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!(
                        "component `{}` failed while handling the request",
                        route.component
                    ),
                    request_id,
                )
            }
            Err(InvokeError::ErrorCode(code)) => {
                tracing::error!(component = %route.component, ?code, "component answered with an error code");
                problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("component `{}` failed: {code:?}", route.component),
                    request_id,
                )
            }
        }
    }

    /// Spin's reserved `/.well-known/spin/*` endpoints.
    fn well_known(&self, path: &str, request_id: &str) -> Option<Response<Body>> {
        let rest = path.strip_prefix("/.well-known/spin/")?;
        Some(match rest {
            "health" => text(StatusCode::OK, "text/plain", "OK"),
            "info" => {
                let info = serde_json::json!({ "name": self.app_name, "version": self.app_version, "host": "mart" });
                text(StatusCode::OK, "application/json", info.to_string())
            }
            _ => problem(
                StatusCode::NOT_FOUND,
                &format!("no route matches {path}"),
                request_id,
            ),
        })
    }
}

/// Service chaining: `http://<component>.spin.internal/...` from a component.
struct Chaining(Weak<HttpTrigger>);

impl LocalDispatch for Chaining {
    fn dispatch(&self, component: &str, request: Request<WasiBody>) -> Option<ResponseFuture> {
        let trigger = self.0.upgrade()?;
        if !trigger.components.contains_key(component) {
            return None;
        }
        let component = component.to_string();
        Some(Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let route = Router::synthetic(&component, parts.uri.path());
            let url = format!(
                "http://{component}.spin.internal{}",
                path_and_query(&parts.uri)
            );
            let client: SocketAddr = ([0, 0, 0, 0], 0).into();
            set_spin_headers(&mut parts.headers, &route, &url, client);
            parts.headers.insert(
                header::HOST,
                HeaderValue::from_str(&format!("{component}.spin.internal"))
                    .map_err(|_| wasmtime_wasi_http::Error::HttpRequestUriInvalid)?,
            );
            let request_id = uuid::Uuid::new_v4().to_string();
            let span = server_span(&mut parts, &route);
            let response = trigger
                .run(&route, Request::from_parts(parts, body), &request_id, span)
                .await;
            Ok(response.map(|body| {
                body.map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(e.to_string())))
                    .boxed_unsync()
            }))
        }))
    }
}

/// The request's span, continuing the caller's W3C trace (or starting
/// one): the component sees a `traceparent` naming this span as the parent,
/// and the log line carries the trace id so one request can be followed
/// across components. Named and described as Spin's HTTP trigger does
/// (`"{method} {route}"`, HTTP semantic conventions).
fn server_span(parts: &mut http::request::Parts, route: &RouteMatch) -> Span {
    let incoming = parts
        .headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse);
    let method = parts.method.as_str();
    let mut span = Span::start(
        || format!("{method} {}", route.raw_route),
        SpanKind::Server,
        incoming.as_ref(),
    );
    if span.is_recording() {
        span.set("http.request.method", method.to_string());
        span.set("http.route", route.raw_route.clone());
        span.set("url.path", parts.uri.path().to_string());
        span.set("mart.component", route.component.clone());
    }
    if let Ok(value) = HeaderValue::from_str(&span.context().to_string()) {
        parts.headers.insert("traceparent", value);
    }
    tracing::Span::current().record("trace_id", span.trace_id());
    span
}

fn request_id(request: &Request<Incoming>) -> String {
    request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn path_and_query(uri: &http::Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

fn content_length<B>(request: &Request<B>) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Why a request body was not taken.
enum BodyRefusal {
    TimedOut,
    TooLarge,
    Broken(String),
}

impl BodyRefusal {
    fn problem(&self, options: &ServeOptions, request_id: &str) -> Response<Body> {
        match self {
            BodyRefusal::TimedOut => problem(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the request body did not arrive within {:?}",
                    options.body_timeout
                ),
                request_id,
            ),
            BodyRefusal::TooLarge => problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "the request body exceeds the limit of {} bytes",
                    options.max_request_body
                ),
                request_id,
            ),
            BodyRefusal::Broken(error) => problem(
                StatusCode::BAD_REQUEST,
                &format!("the request body could not be read: {error}"),
                request_id,
            ),
        }
    }
}

/// Open connections per client address.
type OpenPerClient = Arc<std::sync::Mutex<HashMap<std::net::IpAddr, usize>>>;

/// Open connections per client address, each counted until its guard drops.
struct PerClient {
    limit: usize,
    open: OpenPerClient,
}

/// One open connection of a client.
struct ClientSlot {
    client: std::net::IpAddr,
    open: OpenPerClient,
}

impl PerClient {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            open: Arc::default(),
        }
    }

    /// A slot for `client`, or `None` if it holds `limit` connections
    /// already (a limit of 0 refuses none).
    fn try_acquire(&self, client: std::net::IpAddr) -> Option<ClientSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(client).or_default();
        if self.limit != 0 && *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            client,
            open: self.open.clone(),
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// Answers a connection over a cap with a 503 and closes it.
async fn refuse_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    const BODY: &str = r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"too many open connections; try again shortly"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        stream.write_all(response.as_bytes()),
    )
    .await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_cannot_take_more_than_its_share_of_connections() {
        let per_client = PerClient::new(2);
        let abuser: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        let other: std::net::IpAddr = "127.0.0.3".parse().unwrap();
        let first = per_client.try_acquire(abuser).unwrap();
        let _second = per_client.try_acquire(abuser).unwrap();
        assert!(per_client.try_acquire(abuser).is_none(), "over its share");
        assert!(
            per_client.try_acquire(other).is_some(),
            "others still served"
        );
        drop(first);
        assert!(
            per_client.try_acquire(abuser).is_some(),
            "a closed one frees a slot"
        );
        let unlimited = PerClient::new(0);
        let held: Vec<_> = (0..500).map(|_| unlimited.try_acquire(abuser)).collect();
        assert!(held.iter().all(Option::is_some));
    }
}
