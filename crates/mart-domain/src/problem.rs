//! RFC 9457 problem details, the one error shape every Mart API answers with.

use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// One invalid field of a request body or query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON path of the field (`price_minor`, `items[2].quantity`) or the
    /// query parameter name.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For a 405: the methods the resource accepts (the `Allow` header
    /// RFC 9110 requires); not part of the body.
    #[serde(skip)]
    pub allow: &'static [&'static str],
}

impl Problem {
    pub fn new(status: u16, title: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: "about:blank".into(),
            title: title.into(),
            status,
            detail: detail.into(),
            errors: Vec::new(),
            allow: &[],
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(400, "Bad Request", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, "Not Found", detail)
    }

    /// 405 for `method` on `path`, naming the methods `allowed` there.
    pub fn method_not_allowed(method: &str, path: &str, allowed: &'static [&'static str]) -> Self {
        let mut problem = Self::new(
            405,
            "Method Not Allowed",
            format!(
                "{method} is not supported on {path}; use {}",
                allowed.join(" or ")
            ),
        );
        problem.allow = allowed;
        problem
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(409, "Conflict", detail)
    }

    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(413, "Content Too Large", detail)
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(415, "Unsupported Media Type", detail)
    }

    /// 422 with the fields that failed; the detail names the first.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [] => "the request is invalid".to_string(),
            [one] => format!("{}: {}", one.field, one.message),
            [first, rest @ ..] => format!(
                "{}: {} (and {} more)",
                first.field,
                first.message,
                rest.len()
            ),
        };
        Self {
            errors,
            ..Self::new(422, "Unprocessable Content", detail)
        }
    }

    /// A failure on our side; `detail` must not leak internals.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(500, "Internal Server Error", detail)
    }

    pub fn service_unavailable(detail: impl Into<String>) -> Self {
        Self::new(503, "Service Unavailable", detail)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a problem is plain data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_the_first_field_and_lists_all() {
        let p = Problem::invalid(vec![
            FieldError::new("price_minor", "must not be negative"),
            FieldError::new("name", "must not be empty"),
        ]);
        assert_eq!(p.status, 422);
        assert_eq!(p.detail, "price_minor: must not be negative (and 1 more)");
        let json: serde_json::Value = serde_json::from_slice(&p.to_json()).unwrap();
        assert_eq!(json["type"], "about:blank");
        assert_eq!(json["errors"][1]["field"], "name");
    }

    #[test]
    fn errors_are_omitted_when_empty() {
        let json: serde_json::Value =
            serde_json::from_slice(&Problem::not_found("x").to_json()).unwrap();
        assert!(json.get("errors").is_none());
        assert_eq!(json["status"], 404);
    }
}
