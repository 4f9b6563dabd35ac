//! Spin variables, with failures turned into 500 problems (a missing
//! variable is our misconfiguration, never the caller's fault).

use mart_domain::Problem;
use spin_sdk::variables;

pub fn variable(name: &str) -> Result<String, Problem> {
    variables::get(name).map_err(|e| {
        eprintln!("variable {name}: {e}");
        Problem::internal(format!("the service is not configured ({name})"))
    })
}

/// An optional variable: absent or empty means `None`.
pub fn optional_variable(name: &str) -> Option<String> {
    variables::get(name).ok().filter(|v| !v.trim().is_empty())
}
