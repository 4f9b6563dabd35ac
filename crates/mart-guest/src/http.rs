//! HTTP in and out: a request read whole, JSON responses, every error an
//! RFC 9457 problem, and outbound calls (service chaining, providers).
//!
//! Components see these types, not spin-sdk's: a request here is already
//! read (bodies are small and bounded; the host caps them), headers are
//! text, and a response is plain data, so routes stay simple functions
//! and the SDK's body streaming stays in this file.

use std::fmt;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use mart_domain::problem::CONTENT_TYPE as PROBLEM_JSON;
use mart_domain::{FieldError, Problem};
use serde::Serialize;
use spin_sdk::wasip3::http::types::ErrorCode;

/// The response type a component's `#[http_service]` returns.
pub type ServiceResponse = http::Response<Full<Bytes>>;

/// A request method, as components match on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
    Other(String),
}

impl From<&http::Method> for Method {
    fn from(method: &http::Method) -> Self {
        match *method {
            http::Method::GET => Method::Get,
            http::Method::POST => Method::Post,
            http::Method::PUT => Method::Put,
            http::Method::PATCH => Method::Patch,
            http::Method::DELETE => Method::Delete,
            http::Method::HEAD => Method::Head,
            http::Method::OPTIONS => Method::Options,
            ref other => Method::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            Method::Other(other) => other,
        })
    }
}

/// An incoming request, body included.
pub struct Request {
    method: Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Request {
    /// Reads `request` whole. A body that breaks off is the client's
    /// fault (400).
    pub async fn read(request: spin_sdk::http::Request) -> Result<Self, Problem> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| Problem::bad_request(format!("the request body could not be read: {e}")))?
            .to_bytes();
        Ok(Self {
            method: Method::from(&parts.method),
            uri: parts.uri,
            headers: parts.headers,
            body,
        })
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The query string without `?` (`""` if none).
    pub fn query(&self) -> &str {
        self.uri.query().unwrap_or_default()
    }

    /// The first value of header `name`, if it is UTF-8. Not only visible
    /// ASCII (`HeaderValue::to_str`): a value with other characters must
    /// reach the component's own check (a 400 naming the header), not look
    /// absent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(header_text)
    }

    /// Every value of header `name` that is UTF-8, in order.
    pub fn header_all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> {
        self.headers
            .get_all(name)
            .into_iter()
            .filter_map(header_text)
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

fn header_text(value: &http::HeaderValue) -> Option<&str> {
    std::str::from_utf8(value.as_bytes()).ok()
}

/// A response: status, headers and body.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A response with no body (`204`, `202`).
    pub fn empty(status: u16) -> Self {
        Self::new(status, Vec::new())
    }

    /// Adds header `name` (or replaces its value).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set_header(name, value);
        self
    }

    /// Sets header `name`, replacing any value it had.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.into()));
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// As the SDK sends it. A header the `http` crate refuses is our bug:
    /// the response becomes a 500 problem rather than a panic.
    pub fn into_service_response(self) -> ServiceResponse {
        let mut builder = http::Response::builder().status(self.status);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        builder
            .body(Full::new(Bytes::from(self.body)))
            .unwrap_or_else(|e| {
                eprintln!("response not sendable: {e}");
                let problem = Problem::internal("the response could not be formed");
                http::Response::builder()
                    .status(500)
                    .header("content-type", PROBLEM_JSON)
                    .body(Full::new(Bytes::from(problem.to_json())))
                    .expect("a status and a content type make a response")
            })
    }
}

pub fn json_response<T: Serialize>(status: u16, value: &T) -> Response {
    Response::new(
        status,
        serde_json::to_vec(value).expect("response types serialise"),
    )
    .with_header("content-type", "application/json")
}

pub fn problem_response(problem: &Problem) -> Response {
    let mut response =
        Response::new(problem.status, problem.to_json()).with_header("content-type", PROBLEM_JSON);
    if problem.status == 401 {
        response.set_header("www-authenticate", "Bearer");
    }
    if !problem.allow.is_empty() {
        response.set_header("allow", problem.allow.join(", "));
    }
    response
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
    let content_type = request.header("content-type").unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(Problem::unsupported_media_type(format!(
            "send the body as application/json (got `{content_type}`)"
        )))
    }
}

/// Sends a request (service chaining, a provider's API) and reads the
/// answer whole. `Err` is a transport failure, described; any status is
/// an answer.
///
/// A chained call (`http://<component>.spin.internal/<path>`) that the host
/// cannot resolve goes to `services_origin` instead (a variable: the app's
/// own listener, which routes the same path to the same component, and
/// which the manifest lists in `allowed_outbound_hosts`). Why: Fermyon Spin
/// 4.0.0–4.0.2 does not chain from WASIp3 components (their stores get
/// neither the chaining interceptor nor the self-request origin; fixed on
/// Spin's main in 78d7e696 "trigger-http: Fix service chaining for wasip3
/// handlers", in no release yet), so the call reaches DNS and fails there.
/// Mart's host chains them, and never takes this path.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Response, String> {
    // The body again only for a chained call, the one kind that may go twice.
    let again = chained_path(url).is_some().then(|| body.clone());
    match try_send(&method, url, headers, body).await {
        Err(Failure::Unresolved(reason)) => match (chained_fallback(url).await, again) {
            (Some(fallback), Some(body)) => try_send(&method, &fallback, headers, body)
                .await
                .map_err(|e| format!("{reason}; then at {fallback}: {}", e.reason())),
            _ => Err(reason),
        },
        other => other.map_err(Failure::reason),
    }
}

/// Why a request got no answer.
enum Failure {
    /// The host could not resolve its address.
    Unresolved(String),
    Other(String),
}

impl Failure {
    fn reason(self) -> String {
        match self {
            Failure::Unresolved(reason) | Failure::Other(reason) => reason,
        }
    }
}

/// `url` at the app's own listener (`services_origin`), if it is a chained
/// call and that variable is set.
async fn chained_fallback(url: &str) -> Option<String> {
    chained_path(url)?;
    let origin = crate::config::optional_variable("services_origin").await?;
    at_origin(url, &origin)
}

/// The path (and query) of a chained call, `http://<component>.spin.internal<path>`.
fn chained_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    authority.strip_suffix(".spin.internal")?;
    Some(path)
}

/// The chained call `url` sent to `origin` instead.
fn at_origin(url: &str, origin: &str) -> Option<String> {
    Some(format!(
        "{}{}",
        origin.trim_end_matches('/'),
        chained_path(url)?
    ))
}

async fn try_send(
    method: &Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Response, Failure> {
    let mut builder = http::Request::builder()
        .method(method.to_string().as_str())
        .uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Failure::Other(format!("{method} {url}: {e}")))?;
    let response = match spin_sdk::http::send(request).await {
        Ok(response) => response,
        Err(code @ ErrorCode::DnsError(_)) => {
            return Err(Failure::Unresolved(format!("{method} {url}: {code:?}")))
        }
        Err(e) => return Err(Failure::Other(format!("{method} {url}: {e:?}"))),
    };
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| Failure::Other(format!("{method} {url}: reading the answer: {e:?}")))?
        .to_bytes();
    let headers = parts
        .headers
        .iter()
        .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    Ok(Response {
        status: parts.status.as_u16(),
        headers,
        body: body.to_vec(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chained_call_goes_to_the_same_path_at_the_origin() {
        assert_eq!(
            at_origin(
                "http://catalog.spin.internal/products/7?x=1",
                "http://127.0.0.1:3000/"
            )
            .as_deref(),
            Some("http://127.0.0.1:3000/products/7?x=1")
        );
        assert_eq!(
            at_origin("http://carts.spin.internal", "http://127.0.0.1:80").as_deref(),
            Some("http://127.0.0.1:80")
        );
    }

    #[test]
    fn only_chained_calls_go_elsewhere() {
        for url in [
            "https://api.stripe.com/v1/refunds",
            "http://spin.internal.example.com/x",
            "https://catalog.spin.internal/products",
            "http://evil.com/catalog.spin.internal/",
        ] {
            assert_eq!(at_origin(url, "http://127.0.0.1:3000"), None, "{url}");
        }
    }
}
