//! One way to run a component, whatever triggered it: a fresh store with the
//! component's limits, instantiation (counted), the call of the trigger's
//! export, the deadline, and a panic in host code during the call caught
//! and reported instead of taking the trigger's task down. Each trigger
//! only says how to instantiate and what to call, and what an error means
//! to its caller (a 504, a retried batch, a failed tick).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use mart_metrics::Metrics;
use mart_telemetry::{Span, SpanKind, TraceParent};
use wasmtime::{AsContextMut as _, Store, Trap};

use crate::{AppComponent, InstanceState, Runtime, TriggerKind};

/// Why an invocation did not return a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// No instance could be set up (its files, its limits).
    #[error("cannot set up an instance: {0}")]
    Setup(String),
    /// The guest trapped, or the host failed while running it (wasmtime
    /// reports both as the call's error).
    #[error("the component trapped: {0}")]
    Trapped(String),
    /// Host code panicked during the call (a bug of ours).
    #[error("the host panicked during the call: {0}")]
    Panicked(String),
    /// The component's deadline passed.
    #[error("the component did not finish within {} ms", .0.as_millis())]
    Deadline(Duration),
}

/// What running one invocation needs, owned, so that the call may outlive
/// the borrow it was started from (an HTTP body keeps streaming).
pub struct Invocation {
    metrics: Arc<Metrics>,
    timeout: Duration,
    /// The invocation's trace and component, when spans are exported: the
    /// instantiation is a span of its own under the invocation's.
    traced: Option<(TraceParent, Arc<str>)>,
}

impl Runtime {
    /// A fresh store for one invocation of `component` by a `kind` trigger.
    pub fn prepare(
        &self,
        component: &AppComponent,
        kind: TriggerKind,
        trace: Option<TraceParent>,
    ) -> Result<(Store<InstanceState>, Invocation), InvokeError> {
        let traced = trace
            .as_ref()
            .filter(|_| mart_telemetry::exporting())
            .map(|t| (t.clone(), component.id.clone()));
        let store = self
            .new_store(component, kind, trace)
            .map_err(|e| InvokeError::Setup(format!("{e:#}")))?;
        let invocation = Invocation {
            metrics: self.metrics().clone(),
            timeout: component.limits.timeout,
            traced,
        };
        Ok((store, invocation))
    }

    /// Prepares a store and runs the invocation in it (see `Invocation::run`).
    pub async fn invoke<I, T>(
        &self,
        component: &AppComponent,
        kind: TriggerKind,
        trace: Option<TraceParent>,
        instantiate: impl AsyncFnOnce(&mut Store<InstanceState>) -> wasmtime::Result<I>,
        call: impl AsyncFnOnce(I, &mut Store<InstanceState>) -> wasmtime::Result<T>,
    ) -> Result<T, InvokeError> {
        let (store, invocation) = self.prepare(component, kind, trace)?;
        invocation.run(store, instantiate, call).await
    }
}

impl Runtime {
    /// The next invocation in a store the caller kept from an earlier one
    /// (a reused instance): its deadline armed afresh and its host calls
    /// joining `trace`. Call it with `Invocation::call_in`.
    pub fn resume(
        &self,
        component: &AppComponent,
        store: &mut Store<InstanceState>,
        trace: Option<TraceParent>,
    ) -> Invocation {
        crate::begin_next_call(store.as_context_mut(), trace, component.limits.timeout);
        Invocation {
            metrics: self.metrics().clone(),
            timeout: component.limits.timeout,
            traced: None,
        }
    }
}

impl Invocation {
    /// Instantiates the component in `store` and calls its export, under
    /// the component's deadline.
    pub async fn run<I, T>(
        self,
        mut store: Store<InstanceState>,
        instantiate: impl AsyncFnOnce(&mut Store<InstanceState>) -> wasmtime::Result<I>,
        call: impl AsyncFnOnce(I, &mut Store<InstanceState>) -> wasmtime::Result<T>,
    ) -> Result<T, InvokeError> {
        self.run_in(&mut store, instantiate, call).await
    }

    /// As `run`, in a store the caller keeps afterwards (to reuse the
    /// instance, which `call` may hand out).
    pub async fn run_in<I, T>(
        self,
        store: &mut Store<InstanceState>,
        instantiate: impl AsyncFnOnce(&mut Store<InstanceState>) -> wasmtime::Result<I>,
        call: impl AsyncFnOnce(I, &mut Store<InstanceState>) -> wasmtime::Result<T>,
    ) -> Result<T, InvokeError> {
        let metrics = self.metrics.clone();
        let traced = self.traced.clone();
        self.call_in(store, async |store| {
            let started = Instant::now();
            let span = traced
                .as_ref()
                .map(|(parent, component)| instantiate_span(parent, component));
            let instance = instantiate(store).await;
            metrics.instantiated(started.elapsed());
            if let (Some(mut span), Err(e)) = (span, &instance) {
                span.fail(format!("{e:#}"));
            }
            call(instance?, store).await
        })
        .await
    }

    /// Calls into an instance that already exists in `store`, under the
    /// component's deadline, a host panic caught: what every invocation
    /// ends with, and all a reused instance's next invocation needs.
    pub async fn call_in<T>(
        self,
        store: &mut Store<InstanceState>,
        call: impl AsyncFnOnce(&mut Store<InstanceState>) -> wasmtime::Result<T>,
    ) -> Result<T, InvokeError> {
        let work = std::panic::AssertUnwindSafe(call(store)).catch_unwind();
        match tokio::time::timeout(self.timeout, work).await {
            Err(_) => Err(InvokeError::Deadline(self.timeout)),
            Ok(Err(panic)) => Err(InvokeError::Panicked(panic_text(&*panic))),
            Ok(Ok(Err(error))) => Err(classify(&error, self.timeout)),
            Ok(Ok(Ok(value))) => Ok(value),
        }
    }
}

/// The span of an instantiation, under the invocation's span.
pub fn instantiate_span(parent: &TraceParent, component: &str) -> Span {
    let mut span = Span::child_of(
        parent,
        || format!("instantiate {component}"),
        SpanKind::Internal,
    );
    span.set("mart.component", component.to_string());
    span
}

/// The epoch deadline interrupts a guest busy in its own code: that is the
/// deadline too, whichever of the two fired first.
fn classify(error: &wasmtime::Error, timeout: Duration) -> InvokeError {
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => InvokeError::Deadline(timeout),
        _ => InvokeError::Trapped(format!("{error:#}")),
    }
}

/// The message of a caught panic.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_kept() {
        let caught = std::panic::catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(panic_text(&*caught), "boom 7");
    }

    #[test]
    fn an_interrupted_guest_ran_out_of_time() {
        let timeout = Duration::from_millis(250);
        let interrupted = wasmtime::Error::from(Trap::Interrupt);
        assert_eq!(
            classify(&interrupted, timeout),
            InvokeError::Deadline(timeout)
        );
        let trapped = wasmtime::Error::from(Trap::UnreachableCodeReached);
        assert!(matches!(
            classify(&trapped, timeout),
            InvokeError::Trapped(_)
        ));
        assert_eq!(
            InvokeError::Deadline(timeout).to_string(),
            "the component did not finish within 250 ms"
        );
    }
}
