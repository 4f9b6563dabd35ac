//! W3C trace context inside a component: the `traceparent` of the request
//! or Kafka message being handled, so the events it records carry it and
//! one order's path can be followed across services (the outbox relay puts
//! it on the Kafka record; the trigger hands it to the next handler).

use std::cell::RefCell;

thread_local! {
    static CURRENT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Continues the trace of an incoming HTTP request (the host always sets
/// `traceparent`, continuing the caller's trace or starting one).
pub fn continue_from(request: &spin_sdk::http::Request) {
    let value = request
        .header("traceparent")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    set(value);
}

pub fn set(traceparent: Option<String>) {
    CURRENT.with(|c| *c.borrow_mut() = traceparent.filter(|t| valid(t)));
}

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
