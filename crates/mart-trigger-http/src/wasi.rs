//! One request through a component: a fresh instance of a WASIp2
//! `wasi:http/incoming-handler` for each request, or a reused instance of a
//! WASIp3 `wasi:http/handler` (see wasip3.rs).

use std::sync::Arc;

use futures::FutureExt as _;
use mart_metrics::TaskKind;
use mart_telemetry::TraceParent;

use mart_runtime::{AppComponent, Runtime};
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use mart_runtime::InstanceState;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::reuse::InstanceReuse;
use crate::wasip3::ReusedInstances;

/// A component prepared for HTTP: its export looked up once.
pub(crate) struct HttpComponent {
    pub(crate) component: Arc<AppComponent>,
    handler: Handler,
}

/// The two generations of `wasi:http` a component may export.
enum Handler {
    /// `wasi:http/incoming-handler@0.2.x`: one instance per request.
    P2(ProxyPre<InstanceState>),
    /// `wasi:http/handler@0.3.0`: reused instances.
    P3(ReusedInstances),
}

impl HttpComponent {
    pub(crate) fn new(
        runtime: &Arc<Runtime>,
        component: Arc<AppComponent>,
        reuse: InstanceReuse,
    ) -> anyhow::Result<Self> {
        let handler = match ServicePre::new(component.pre.clone()) {
            Ok(service) => Handler::P3(ReusedInstances::new(
                runtime.clone(),
                component.clone(),
                service,
                reuse,
            )),
            Err(p3) => Handler::P2(ProxyPre::new(component.pre.clone()).map_err(|p2| {
                anyhow::anyhow!(
                    "component `{}` exports neither wasi:http/incoming-handler@0.2 ({p2}) \
                     nor wasi:http/handler@0.3.0 ({p3})",
                    component.id
                )
            })?),
        };
        Ok(Self { component, handler })
    }
}

/// Why an invocation produced no response.
#[derive(Debug)]
pub(crate) enum InvokeError {
    /// The guest trapped or the host failed while running it.
    Failed(String),
    /// The wall-clock deadline passed.
    Deadline,
    /// The guest answered with a wasi:http error code instead of a response.
    ErrorCode(ErrorCode),
}

/// Hands `request` to `target`. The body of the returned response keeps
/// streaming from the instance, which lives until the body is done or the
/// deadline passes.
pub(crate) async fn invoke<B>(
    runtime: &Runtime,
    target: &HttpComponent,
    request: http::Request<B>,
    trace: Option<TraceParent>,
) -> Result<http::Response<HyperOutgoingBody>, InvokeError>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    match &target.handler {
        Handler::P2(proxy) => invoke_p2(runtime, &target.component, proxy, request, trace).await,
        Handler::P3(instances) => instances.handle(request, trace).await,
    }
}

/// Instantiates a p2 component in a fresh store and hands it `request`.
async fn invoke_p2<B>(
    runtime: &Runtime,
    component: &Arc<AppComponent>,
    proxy: &ProxyPre<InstanceState>,
    request: http::Request<B>,
    trace: Option<TraceParent>,
) -> Result<http::Response<HyperOutgoingBody>, InvokeError>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let (mut store, invocation) = runtime
        .prepare(component, mart_runtime::TriggerKind::Http, trace)
        .map_err(InvokeError::from)?;
    let (sender, mut receiver) = tokio::sync::oneshot::channel();
    let setup = (|| {
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        Ok::<_, wasmtime::Error>((req, out))
    })();
    let (req, out) = setup.map_err(|e| InvokeError::Failed(format!("{e:#}")))?;

    let proxy = proxy.clone();
    let mut run = Box::pin(async move {
        invocation
            .run(
                store,
                async |store| proxy.instantiate_async(store).await,
                async move |proxy, store| {
                    proxy
                        .wasi_http_incoming_handler()
                        .call_handle(store, req, out)
                        .await
                },
            )
            .await
            .map_err(InvokeError::from)
    });

    // The guest runs on this task, not a spawned one: handing each request to
    // another worker thread and back cost more than the instance itself.
    let mut finished = None;
    let response = tokio::select! {
        biased;
        response = &mut receiver => response,
        result = &mut run => {
            finished = Some(result);
            receiver.await
        }
    };
    match (response, finished) {
        (Ok(response), None) => {
            // The guest usually writes its body and returns right after
            // setting the response; only a guest still busy gets a task.
            if let Some(result) = (&mut run).now_or_never() {
                log_late_failure(&component.id, result);
            } else {
                let id = component.id.clone();
                let rest = async move { log_late_failure(&id, run.await) };
                tokio::spawn(runtime.metrics().busy(TaskKind::Http, rest));
            }
            response.map_err(InvokeError::ErrorCode)
        }
        (Ok(response), Some(result)) => {
            log_late_failure(&component.id, result);
            response.map_err(InvokeError::ErrorCode)
        }
        // The instance ended without setting a response: say why.
        (Err(_), Some(Err(e))) => Err(e),
        (Err(_), Some(Ok(()))) => Err(InvokeError::Failed(
            "the component returned without setting a response".into(),
        )),
        (Err(_), None) => match run.await {
            Err(e) => Err(e),
            Ok(()) => Err(InvokeError::Failed(
                "the component dropped its response without setting it".into(),
            )),
        },
    }
}

/// A failure after the response head was sent can only be logged.
fn log_late_failure(component: &str, result: Result<(), InvokeError>) {
    if let Err(error) = result {
        tracing::error!(
            component,
            ?error,
            "component failed after sending its response head"
        );
    }
}

impl From<mart_runtime::InvokeError> for InvokeError {
    fn from(error: mart_runtime::InvokeError) -> Self {
        match error {
            mart_runtime::InvokeError::Deadline(_) => InvokeError::Deadline,
            other => InvokeError::Failed(other.to_string()),
        }
    }
}
