//! JSON in and out; every error is an RFC 9457 problem.

use mart_domain::problem::CONTENT_TYPE as PROBLEM_JSON;
use mart_domain::{FieldError, Problem};
use serde::Serialize;
use spin_sdk::http::{Request, Response};

pub fn json_response<T: Serialize>(status: u16, value: &T) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(value).expect("response types serialise"))
        .build()
}

pub fn problem_response(problem: &Problem) -> Response {
    let mut builder = Response::builder();
    builder
        .status(problem.status)
        .header("content-type", PROBLEM_JSON);
    if problem.status == 401 {
        builder.header("www-authenticate", "Bearer");
    }
    if !problem.allow.is_empty() {
        builder.header("allow", problem.allow.join(", "));
    }
    builder.body(problem.to_json()).build()
}

/// 405 for this request: its method is not one of `allowed` on its path.
pub fn method_not_allowed(request: &Request, allowed: &'static [&'static str]) -> Problem {
    Problem::method_not_allowed(&request.method().to_string(), request.path(), allowed)
}

/// Parses a JSON body of at most `max_bytes`, after checking its media type.
pub fn json_body<T: serde::de::DeserializeOwned>(
    request: &Request,
    max_bytes: usize,
) -> Result<T, Problem> {
    require_json(request)?;
    if request.body().len() > max_bytes {
        return Err(Problem::payload_too_large(format!(
            "the body is {} bytes; the limit is {max_bytes}",
            request.body().len()
        )));
    }
    mart_domain::json::parse(request.body())
}

/// What follows `prefix` in the request path (`""` for the prefix itself).
///
/// Components route on the request path rather than `spin-path-info`: on a
/// chained request (`http://<component>.spin.internal/...`) Spin reports the
/// whole path as path-info, while the path itself is the same either way.
pub fn subpath<'a>(request: &'a Request, prefix: &str) -> Option<&'a str> {
    let rest = request.path().strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// The path segments after `prefix`: `/carts/7/items` under `/carts` is `["7", "items"]`.
pub fn segments<'a>(request: &'a Request, prefix: &str) -> Vec<&'a str> {
    subpath(request, prefix)
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

pub fn require_json(request: &Request) -> Result<(), Problem> {
    let content_type = request
        .header("content-type")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(Problem::unsupported_media_type(format!(
            "send the body as application/json (got `{content_type}`)"
        )))
    }
}

/// Decoded query parameters, in order.
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Decodes `query`, refusing parameters the endpoint does not know (so
    /// typos are not ignored) and values no text column can store (NUL).
    pub fn parse(query: &str, known: &[&str]) -> Result<Self, Problem> {
        let query = Self(
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        );
        query.check(known)?;
        Ok(query)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn check(&self, known: &[&str]) -> Result<(), Problem> {
        let errors: Vec<FieldError> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                if !known.contains(&k.as_str()) {
                    Some(match known {
                        [] => FieldError::new(k.clone(), "this resource takes no query parameters"),
                        _ => FieldError::new(
                            k.clone(),
                            format!("unknown query parameter; use one of {}", known.join(", ")),
                        ),
                    })
                } else if v.contains('\0') {
                    Some(FieldError::new(k.clone(), mart_domain::json::NUL_MESSAGE))
                } else {
                    None
                }
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::invalid(errors))
        }
    }
}
