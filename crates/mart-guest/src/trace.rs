//! W3C trace context inside a component: the `traceparent` of the request
//! or Kafka message being handled, so the events it records carry it and
//! one order's path can be followed across services (the outbox relay puts
//! it on the Kafka record; the trigger hands it to the next handler).
//!
//! The value is scoped, never left behind: `within` makes it current for
//! one call and `scoped` for one future, and each restores what was
//! current before. An instance may serve many requests (WASIp3 reuse, as
//! Spin 4 does), several at once, interleaved at their `.await`s: a
//! future's trace is current only while that future is polled, as
//! `tokio::task_local!` does it, so one request's trace never reaches
//! another's events.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    static CURRENT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The trace an incoming HTTP request continues (the host always sets
/// `traceparent`, continuing the caller's trace or starting one).
pub fn of(request: &spin_sdk::http::Request) -> Option<String> {
    request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Runs `work` with `traceparent` (if valid) as the current trace, then
/// restores the trace that was current before.
pub fn within<T>(traceparent: Option<String>, work: impl FnOnce() -> T) -> T {
    let before = CURRENT.with(|c| c.replace(traceparent.filter(|t| valid(t))));
    let result = work();
    CURRENT.with(|c| *c.borrow_mut() = before);
    result
}

/// `future` with `traceparent` as the current trace while it is polled.
pub fn scoped<F: Future>(traceparent: Option<String>, future: F) -> Scoped<F> {
    Scoped {
        traceparent: traceparent.filter(|t| valid(t)),
        future: Box::pin(future),
    }
}

/// A future whose trace is current only while it is polled (`scoped`).
pub struct Scoped<F> {
    traceparent: Option<String>,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        within(this.traceparent.clone(), || this.future.as_mut().poll(cx))
    }
}

/// The trace of the request or message being handled, if any.
pub fn current() -> Option<String> {
    CURRENT.with(|c| c.borrow().clone())
}

/// `00-<32 hex>-<16 hex>-<2 hex>`: anything else is not passed on.
fn valid(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    parts.len() == 4
        && [2, 32, 16, 2]
            .iter()
            .zip(&parts)
            .all(|(len, p)| p.len() == *len && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traceparent(n: u8) -> String {
        format!("00-{}-{}-01", format!("{n:02x}").repeat(16), "ab".repeat(8))
    }

    /// Pending once, then ready with what was current at each poll.
    async fn observe() -> (Option<String>, Option<String>) {
        let first = current();
        let mut yielded = false;
        std::future::poll_fn(|_| {
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                Poll::Pending
            }
        })
        .await;
        (first, current())
    }

    #[test]
    fn interleaved_requests_each_see_only_their_own_trace() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut a = scoped(Some(traceparent(1)), observe());
        let mut b = scoped(Some(traceparent(2)), observe());
        // a, b, a, b: as an instance serving two requests at once polls them.
        assert!(Pin::new(&mut a).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut b).poll(&mut cx).is_pending());
        assert_eq!(current(), None, "nothing is left between polls");
        let Poll::Ready(seen_by_a) = Pin::new(&mut a).poll(&mut cx) else {
            panic!("a finishes on its second poll");
        };
        let Poll::Ready(seen_by_b) = Pin::new(&mut b).poll(&mut cx) else {
            panic!("b finishes on its second poll");
        };
        assert_eq!(seen_by_a, (Some(traceparent(1)), Some(traceparent(1))));
        assert_eq!(seen_by_b, (Some(traceparent(2)), Some(traceparent(2))));
        assert_eq!(current(), None, "nothing is left after either");
    }

    #[test]
    fn within_restores_the_outer_trace_and_drops_invalid_ones() {
        within(Some(traceparent(3)), || {
            assert_eq!(current(), Some(traceparent(3)));
            within(Some("not a traceparent".into()), || {
                assert_eq!(current(), None)
            });
            assert_eq!(current(), Some(traceparent(3)));
        });
        assert_eq!(current(), None);
    }
}
