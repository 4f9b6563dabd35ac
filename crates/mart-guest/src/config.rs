//! Spin variables, a missing one being our failure (a misconfiguration,
//! never the caller's fault).

use mart_domain::DomainError;
use spin_sdk::variables;

pub fn variable(name: &str) -> Result<String, DomainError> {
    variables::get(name).map_err(|e| {
        eprintln!("variable {name}: {e}");
        DomainError::Internal(format!("the service is not configured ({name})"))
    })
}

/// An optional variable: absent or empty means `None`.
pub fn optional_variable(name: &str) -> Option<String> {
    variables::get(name).ok().filter(|v| !v.trim().is_empty())
}
