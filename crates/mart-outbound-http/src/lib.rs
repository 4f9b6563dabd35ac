//! `wasi:http/outgoing-handler` policy for components.
//!
//! Every outgoing request is checked against the component's
//! `allowed_outbound_hosts` before any connection is made. Requests to
//! `http://<component>.spin.internal` never touch the network: they are
//! handed to the HTTP trigger, which runs that component in-process (Spin's
//! service chaining).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::uri::Scheme;
use mart_outbound_networking::{well_known_port, AllowedHosts, OutboundTarget};
use mart_telemetry::{Span, SpanKind};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<WasiBody>, HttpError>> + Send>>;

/// Runs a component of this application for a chained request.
pub trait LocalDispatch: Send + Sync {
    /// `component` is the id from `<component>.spin.internal`; the request
    /// keeps its path and query.
    fn dispatch(&self, component: &str, request: http::Request<WasiBody>)
        -> Option<ResponseFuture>;
}

/// One instance's outbound HTTP policy.
#[derive(Clone)]
pub struct OutboundHttp {
    component: Arc<str>,
    allowed: Arc<AllowedHosts>,
    local: Option<Arc<dyn LocalDispatch>>,
    /// The trace this instance runs in; outbound requests continue it.
    trace: mart_telemetry::CurrentTrace,
}

impl OutboundHttp {
    pub fn new(
        component: Arc<str>,
        allowed: Arc<AllowedHosts>,
        local: Option<Arc<dyn LocalDispatch>>,
    ) -> Self {
        Self {
            component,
            allowed,
            local,
            trace: mart_telemetry::CurrentTrace::default(),
        }
    }

    pub fn with_trace(mut self, trace: mart_telemetry::CurrentTrace) -> Self {
        self.trace = trace;
        self
    }

    fn target(request: &http::Request<WasiBody>) -> Result<OutboundTarget, HttpError> {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https");
        let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?;
        let port = uri
            .port_u16()
            .or_else(|| well_known_port(scheme))
            .ok_or(HttpError::HttpRequestUriInvalid)?;
        Ok(OutboundTarget::new(scheme, host, port))
    }
}

impl WasiHttpHooks for OutboundHttp {
    fn default_scheme(&mut self) -> Option<Scheme> {
        Some(Scheme::HTTPS)
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let mut request = request;
        let span = self.client_span(&mut request);
        let sent = self.send(request, options, fut);
        Box::new(async move {
            let result = Box::into_pin(sent).await;
            if let Some(mut span) = span {
                match &result {
                    Ok((response, _)) => {
                        let status = response.status();
                        span.set("http.response.status_code", i64::from(status.as_u16()));
                        if status.is_server_error() {
                            span.fail(format!("answered {status}"));
                        }
                    }
                    Err(e) => span.fail(e.to_string()),
                }
            }
            result
        })
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl OutboundHttp {
    /// The outbound call's span, a child of the instance's, whose context
    /// the request carries on, unless the component set its own
    /// `traceparent` (it then continues the trace itself).
    fn client_span(&self, request: &mut http::Request<WasiBody>) -> Option<Span> {
        let trace = self.trace.get()?;
        if request.headers().contains_key("traceparent") {
            return None;
        }
        let method = request.method().as_str().to_string();
        let mut span = Span::child_of(&trace, || method.clone(), SpanKind::Client);
        let value = http::HeaderValue::from_str(&span.context().to_string()).ok()?;
        request.headers_mut().insert("traceparent", value);
        if span.is_recording() {
            span.set("http.request.method", method);
            span.set("url.full", request.uri().to_string());
            if let Some(host) = request.uri().host() {
                span.set("server.address", host.to_string());
            }
            if let Some(port) = request.uri().port_u16() {
                span.set("server.port", i64::from(port));
            }
        }
        Some(span)
    }

    /// Sends `request` where the policy says: refused, to a component of
    /// this app, or over the network.
    fn send(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let decision = self.decide(&request);
        let local = self.local.clone();
        let no_io = || Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>;
        match decision {
            Decision::Deny(target) => {
                tracing::warn!(component = %self.component, %target, "outbound HTTP refused: not in allowed_outbound_hosts");
                Box::new(async { Err(HttpError::HttpRequestDenied) })
            }
            Decision::Chain(component) => {
                let Some(response) = local.and_then(|l| l.dispatch(&component, request)) else {
                    return Box::new(async { Err(HttpError::DestinationNotFound) });
                };
                Box::new(async move { Ok((response.await?, no_io())) })
            }
            Decision::Network => {
                let default = wasmtime_wasi_http::default_hooks();
                default.send_request(request, options, fut)
            }
        }
    }
}

enum Decision {
    Deny(String),
    Chain(String),
    Network,
}

impl OutboundHttp {
    fn decide(&self, request: &http::Request<WasiBody>) -> Decision {
        let target = match Self::target(request) {
            Ok(t) => t,
            Err(_) => return Decision::Deny(request.uri().to_string()),
        };
        if let Some(component) = target.chained_component() {
            return if self.allowed.allows_component(target.scheme(), component) {
                Decision::Chain(component.to_string())
            } else {
                Decision::Deny(target.to_string())
            };
        }
        if self.allowed.allows(&target) {
            Decision::Network
        } else {
            Decision::Deny(target.to_string())
        }
    }
}
