use std::time::Duration;

/// What one invocation may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvocationLimits {
    /// Wall-clock time for the whole invocation, host calls included.
    pub timeout: Duration,
    /// Linear memory of the instance, in bytes.
    pub max_memory_bytes: usize,
}

impl InvocationLimits {
    /// 30 s, and 128 MiB: room for argon2id password hashing (OWASP's
    /// 19 MiB) on top of a component's own heap.
    pub const DEFAULT: Self = Self {
        timeout: Duration::from_secs(30),
        max_memory_bytes: 128 << 20,
    };
}

impl Default for InvocationLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
