//! Requests to a `wasi:http/handler@0.3.0` component (WASIp3, spin-sdk 7),
//! through instances that are reused as Spin 4 reuses them: one instance
//! serves up to `max_instance_reuse_count` requests, up to
//! `max_instance_concurrent_reuse_count` at once, and is retired after its
//! count, when it traps, when a request outlives its timeout, or when it
//! has been idle for `idle_instance_timeout`.
//!
//! wasmtime's `ProxyHandler` (the engine of `wasmtime serve`, which Spin 4
//! uses too) runs the workers; this file says when an instance is made,
//! what each request hands it (its trace, a fresh deadline), and when it
//! goes. Every instance is made by the runtime as a p2 instance is (same
//! limits, files, allow-lists), so reuse changes how long an instance
//! lives, never what it may do.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::BodyExt as _;
use mart_runtime::{AppComponent, InstanceState, Runtime, TriggerKind};
use mart_telemetry::TraceParent;
use wasmtime::component::GuestTaskId;
use wasmtime::{AsContextMut as _, Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, Proxy, ProxyHandler, ShouldAccept, WorkerExpiration,
    WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::{http::types::ErrorCode, ServicePre};
use wasmtime_wasi_http::{WasiBody, WasiHttpView};

use crate::reuse::InstanceReuse;
use crate::wasi::InvokeError;

/// A p3 component's pool of reusable instances.
pub(crate) struct ReusedInstances(ProxyHandler<Instances>);

impl ReusedInstances {
    pub(crate) fn new(
        runtime: Arc<Runtime>,
        component: Arc<AppComponent>,
        pre: ServicePre<InstanceState>,
        reuse: InstanceReuse,
    ) -> Self {
        Self(ProxyHandler::new(Instances {
            runtime,
            component,
            pre,
            reuse,
        }))
    }

    /// Hands `request` to an instance that has room, or to a new one.
    pub(crate) async fn handle<B>(
        &self,
        request: http::Request<B>,
        trace: Option<TraceParent>,
    ) -> Result<http::Response<WasiBody>, InvokeError>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let request = request.map(|body| body.map_err(Into::into).boxed_unsync());
        self.0
            .handle(trace, request)
            .await
            .map_err(|error| classify(&error))
    }
}

/// What a failed p3 request means to the client.
fn classify(error: &wasmtime::Error) -> InvokeError {
    if error.is::<ExpirationError>() {
        InvokeError::Deadline
    } else if let Some(code) = error.downcast_ref::<ErrorCode>() {
        InvokeError::Failed(format!(
            "the component answered with an error code: {code:?}"
        ))
    } else {
        InvokeError::Failed(format!("{error:#}"))
    }
}

/// How the instances of one component are made and how long they live.
struct Instances {
    runtime: Arc<Runtime>,
    component: Arc<AppComponent>,
    pre: ServicePre<InstanceState>,
    reuse: InstanceReuse,
}

impl Instances {
    fn request_timeout(&self) -> Duration {
        self.reuse
            .request_timeout
            .map(|range| range.draw())
            .unwrap_or(self.component.limits.timeout)
    }
}

impl HandlerState for Instances {
    type StoreData = InstanceState;
    type WorkerExpiration = Lifetime;
    type WorkerState = Reuse;

    async fn instantiate(&self) -> wasmtime::Result<Instance<InstanceState, Lifetime, Reuse>> {
        let mut store = self
            .runtime
            .new_store(&self.component, TriggerKind::Http, None)
            .map_err(wasmtime::Error::from_anyhow)?;
        let started = Instant::now();
        let started_at = SystemTime::now();
        let instantiating = self.pre.instantiate_async(&mut store);
        let service = tokio::time::timeout(self.component.limits.timeout, instantiating)
            .await
            .map_err(|_| {
                wasmtime::format_err!(
                    "instantiating `{}` took longer than {:?}",
                    self.component.id,
                    self.component.limits.timeout
                )
            })??;
        self.runtime.metrics().instantiated(started.elapsed());
        let request_timeout = self.request_timeout();
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: <InstanceState as WasiHttpView>::http,
            expiration: Lifetime {
                idle: self.reuse.idle_instance_timeout.draw(),
                busy: request_timeout,
                timer: None,
            },
            state: Reuse {
                component: self.component.clone(),
                instantiated: Mutex::new(Some((started_at, SystemTime::now()))),
                max_total: self.reuse.max_instance_reuse_count.draw(),
                max_concurrent: self.reuse.max_instance_concurrent_reuse_count.draw(),
                request_timeout,
            },
        })
    }
}

/// One instance's share of requests.
struct Reuse {
    component: Arc<AppComponent>,
    /// When the instance was made, until its first request reports it.
    instantiated: Mutex<Option<(SystemTime, SystemTime)>>,
    max_total: usize,
    max_concurrent: usize,
    request_timeout: Duration,
}

impl Reuse {
    /// The instance's making, as a span of the first request it serves
    /// (the request that waited for it), as a p2 request has its own.
    fn report_instantiation(&self, trace: Option<&TraceParent>) {
        let made = self
            .instantiated
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let (Some((start, end)), Some(trace)) = (made, trace) {
            mart_runtime::instantiate_span(trace, &self.component.id).finish_between(start, end);
        }
    }
}

impl WorkerState for Reuse {
    type StoreData = InstanceState;
    type RequestData = Option<TraceParent>;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_total {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, InstanceState>,
        trace: Option<TraceParent>,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        // A guest busy in its own code is stopped at the request's timeout
        // too (which is the component's deadline unless --request-timeout
        // says otherwise).
        self.report_instantiation(trace.as_ref());
        mart_runtime::begin_next_call(store.as_context_mut(), trace, self.request_timeout);
        Box::pin(tokio::time::sleep(self.request_timeout))
    }

    fn drop(&self, store: Store<InstanceState>, result: wasmtime::Result<()>) {
        if let Err(error) = result {
            tracing::warn!(component = %self.component.id, error = %format!("{error:#}"), "instance retired after a failure");
        }
        drop(store);
    }
}

/// When an instance goes: idle longer than `idle`, or busy (a request, or
/// the guest's work after its last response) longer than `busy`. The
/// worker asks from outside the guest's event loop, so this holds even
/// while the guest is stuck in a host call.
struct Lifetime {
    idle: Duration,
    busy: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl WorkerExpiration for Lifetime {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        since: Instant,
    ) -> Poll<()> {
        let allowed = match status {
            WorkerStatus::Idle => self.idle,
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.busy,
        };
        let Some(deadline) = since.checked_add(allowed) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx)
    }
}
