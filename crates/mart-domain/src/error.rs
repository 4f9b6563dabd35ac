//! Why a domain operation did not happen, in the domain's words. HTTP
//! handlers answer it as a `Problem` (the mapping below is the only place a
//! status code is chosen for it); event handlers get it as a retry or a
//! dead letter from the runner (`mart_guest::events`). Neither side decides
//! anything on a status code.

use crate::{FieldError, Problem};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainError {
    /// What it names does not exist.
    NotFound(String),
    /// The current state does not allow it (an order that is cancelled
    /// cannot become paid, a second live order for one cart).
    Conflict(String),
    /// The input breaks a rule, field by field.
    Invalid(Vec<FieldError>),
    /// Another party (a provider, an API) refused it for good.
    Refused(String),
    /// Something it needs is down for now (a database, a provider): the
    /// same request may succeed later.
    Unavailable(String),
    /// Our failure (a query that should not fail); logged where it happened,
    /// `detail` says nothing of our internals.
    Internal(String),
}

impl DomainError {
    /// Whether trying the same thing again later may succeed: our failures
    /// and unavailable dependencies, never a rule or a state.
    pub fn is_transient(&self) -> bool {
        matches!(self, DomainError::Unavailable(_) | DomainError::Internal(_))
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        DomainError::NotFound(detail.into())
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        DomainError::Conflict(detail.into())
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        DomainError::Unavailable(detail.into())
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        DomainError::Internal(detail.into())
    }
}

impl std::fmt::Display for DomainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DomainError::Invalid(_) => f.write_str(&Problem::from(self.clone()).detail),
            DomainError::NotFound(detail)
            | DomainError::Conflict(detail)
            | DomainError::Refused(detail)
            | DomainError::Unavailable(detail)
            | DomainError::Internal(detail) => f.write_str(detail),
        }
    }
}

impl std::error::Error for DomainError {}

impl From<DomainError> for Problem {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::NotFound(detail) => Problem::not_found(detail),
            DomainError::Conflict(detail) => Problem::conflict(detail),
            DomainError::Invalid(errors) => Problem::invalid(errors),
            // Not the caller's fault, and not ours to retry.
            DomainError::Refused(detail) => Problem::new(502, "Bad Gateway", detail),
            DomainError::Unavailable(detail) => Problem::service_unavailable(detail),
            DomainError::Internal(detail) => Problem::internal(detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_failures_and_outages_are_worth_retrying() {
        assert!(DomainError::Unavailable("db".into()).is_transient());
        assert!(DomainError::Internal("db".into()).is_transient());
        assert!(!DomainError::Conflict("cancelled".into()).is_transient());
        assert!(!DomainError::NotFound("order".into()).is_transient());
        assert!(!DomainError::invalid("quantity", "too many").is_transient());
        assert!(!DomainError::Refused("the API refused it".into()).is_transient());
    }

    #[test]
    fn http_answers_them_with_their_status() {
        let statuses: Vec<u16> = [
            DomainError::NotFound("x".into()),
            DomainError::Conflict("x".into()),
            DomainError::invalid("name", "must not be empty"),
            DomainError::Refused("x".into()),
            DomainError::Unavailable("x".into()),
            DomainError::Internal("x".into()),
        ]
        .into_iter()
        .map(|e| Problem::from(e).status)
        .collect();
        assert_eq!(statuses, [404, 409, 422, 502, 503, 500]);
        assert_eq!(
            DomainError::invalid("name", "must not be empty").to_string(),
            "name: must not be empty"
        );
    }
}
