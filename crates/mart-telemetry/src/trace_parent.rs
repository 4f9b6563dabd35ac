//! W3C Trace Context (`traceparent`), so one order's path can be followed
//! across components: every trigger continues the caller's trace (or starts
//! one), and every outbound request of the instance carries it on.

use std::fmt;

/// `00-<trace id: 32 hex>-<parent id: 16 hex>-<flags: 2 hex>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: String,
    pub parent_id: String,
    pub flags: String,
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn random_hex(bytes: usize) -> String {
    let mut out = String::new();
    while out.len() < bytes * 2 {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(bytes * 2);
    out
}

impl TraceParent {
    /// Parses a `traceparent` value; anything malformed is ignored, as the
    /// spec asks (a new trace is started instead).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace_id, parent_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = is_hex(version, 2)
            && version != "ff"
            && is_hex(trace_id, 32)
            && trace_id.bytes().any(|b| b != b'0')
            && is_hex(parent_id, 16)
            && parent_id.bytes().any(|b| b != b'0')
            && is_hex(flags, 2)
            && (version != "00" || parts.next().is_none());
        valid.then(|| Self {
            trace_id: trace_id.into(),
            parent_id: parent_id.into(),
            flags: flags.into(),
        })
    }

    /// A new trace, sampled.
    pub fn root() -> Self {
        Self {
            trace_id: random_hex(16),
            parent_id: random_hex(8),
            flags: "01".into(),
        }
    }

    /// Whether the trace is sampled (the `sampled` flag): spans of a trace
    /// the caller does not record are not exported either.
    pub fn sampled(&self) -> bool {
        u8::from_str_radix(&self.flags, 16).is_ok_and(|flags| flags & 1 == 1)
    }

    /// The same trace with a new span of ours as the parent.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id.clone(),
            parent_id: random_hex(8),
            flags: self.flags.clone(),
        }
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-{}", self.trace_id, self.parent_id, self.flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_prints_the_spec_example() {
        let t = TraceParent::parse(SAMPLE).unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.to_string(), SAMPLE);
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn children_keep_the_trace_and_get_a_new_span() {
        let root = TraceParent::root();
        assert!(TraceParent::parse(&root.to_string()).is_some());
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.parent_id, root.parent_id);
        assert!(child.sampled());
    }

    #[test]
    fn the_sampled_flag_is_the_lowest_bit() {
        let unsampled = SAMPLE.replace("-01", "-00");
        assert!(!TraceParent::parse(&unsampled).unwrap().sampled());
        let other_flags = SAMPLE.replace("-01", "-03");
        assert!(TraceParent::parse(&other_flags).unwrap().sampled());
    }
}

/// The trace an instance's host calls belong to, shared by the parts of
/// one instance (outbound HTTP, PostgreSQL). An instance that serves one
/// request keeps the trace it was made with; a reused instance (WASIp3)
/// is given each request's trace as the request starts, so its calls join
/// that request's trace. With requests running concurrently in one
/// instance, a call joins the trace of the request started last: the host
/// cannot tell which of the instance's tasks made it.
///
/// A component that records spans of its own (`wasi:otel`) names its
/// innermost open one, so the host's spans made meanwhile (a statement)
/// are that span's children, as on Spin; the invocation's span stays what
/// the component is told it runs in.
#[derive(Debug, Clone, Default)]
pub struct CurrentTrace(std::sync::Arc<std::sync::Mutex<Slots>>);

#[derive(Debug, Default)]
struct Slots {
    invocation: Option<TraceParent>,
    guest_span: Option<TraceParent>,
}

impl CurrentTrace {
    pub fn new(trace: Option<TraceParent>) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(Slots {
            invocation: trace,
            guest_span: None,
        })))
    }

    /// The span calls made now are children of: the component's open span,
    /// else the invocation's.
    pub fn get(&self) -> Option<TraceParent> {
        let slots = self.lock();
        slots
            .guest_span
            .clone()
            .or_else(|| slots.invocation.clone())
    }

    /// The invocation's span, whatever span the component has open.
    pub fn invocation(&self) -> Option<TraceParent> {
        self.lock().invocation.clone()
    }

    /// Calls made from now on belong to `trace`, a new invocation: a span
    /// the component opened in an earlier one parents none of them.
    pub fn set(&self, trace: Option<TraceParent>) {
        *self.lock() = Slots {
            invocation: trace,
            guest_span: None,
        };
    }

    /// The component's innermost open span (`None`: none is open), if the
    /// invocation is still `invocation` (a reused instance may have begun
    /// another one since the span started).
    pub fn set_guest_span(&self, invocation: Option<&TraceParent>, span: Option<TraceParent>) {
        let mut slots = self.lock();
        if slots.invocation.as_ref() == invocation {
            slots.guest_span = span;
        }
    }

    /// A poisoned lock only means a panic elsewhere held it; the values
    /// (ids) are still whole.
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod current_trace_tests {
    use super::*;

    #[test]
    fn every_holder_sees_the_trace_set_last() {
        let first = TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        let current = CurrentTrace::new(first.clone());
        let held_by_a_part = current.clone();
        assert_eq!(held_by_a_part.get(), first);
        current.set(None);
        assert_eq!(held_by_a_part.get(), None);
    }

    #[test]
    fn a_guest_span_parents_calls_until_the_next_invocation() {
        let invocation = TraceParent::root();
        let current = CurrentTrace::new(Some(invocation.clone()));
        let guest = invocation.child();
        current.set_guest_span(Some(&invocation), Some(guest.clone()));
        assert_eq!(current.get(), Some(guest.clone()));
        assert_eq!(current.invocation(), Some(invocation.clone()));

        // A reused instance's next request: the old span parents nothing,
        // and a late end of it does not bring it back.
        let next = TraceParent::root();
        current.set(Some(next.clone()));
        assert_eq!(current.get(), Some(next.clone()));
        current.set_guest_span(Some(&invocation), Some(guest));
        assert_eq!(current.get(), Some(next));
    }
}
