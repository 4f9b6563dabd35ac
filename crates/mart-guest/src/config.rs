//! Spin variables, a missing one being our failure (a misconfiguration,
//! never the caller's fault).

use mart_domain::DomainError;
use spin_sdk::variables;

pub async fn variable(name: &str) -> Result<String, DomainError> {
    variables::get(name).await.map_err(|e| {
        eprintln!("variable {name}: {e}");
        DomainError::Internal(format!("the service is not configured ({name})"))
    })
}

/// An optional variable: absent or empty means `None`.
pub async fn optional_variable(name: &str) -> Option<String> {
    variables::get(name)
        .await
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// A switch: `true` or `false` (absent or empty is `false`). Anything else
/// is a misconfiguration, not a guess: a mistyped switch must not turn a
/// safeguard off, nor silently leave it on where someone meant it off.
pub async fn switch(name: &str) -> Result<bool, DomainError> {
    match optional_variable(name).await.as_deref().map(str::trim) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => {
            eprintln!("variable {name}: `{other}` is not true or false");
            Err(DomainError::Internal(format!(
                "the service is not configured ({name} must be true or false)"
            )))
        }
    }
}

/// Whether the `fake` payment provider may run here: the development switch
/// `allow_fake_payments` (see `mart_domain::payments::FAKE_PROVIDER_REFUSED`).
pub async fn fake_payments_allowed() -> Result<bool, DomainError> {
    switch("allow_fake_payments").await
}
