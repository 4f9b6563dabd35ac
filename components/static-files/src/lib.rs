//! Serves the files Spin mounted into this component (its `files` in
//! spin.toml, read-only under `/`), for GET and HEAD.
//!
//! One Wasm serves the API document (`/openapi.json`), the docs page
//! (`/docs/...`) and the dashboard (`/dashboard/...`); each route is its own
//! Spin component with its own files. Only standard Spin and WASI interfaces
//! are used, so it runs unchanged on Fermyon Spin.
//!
//! Settings (component `environment`):
//! - `DEFAULT_FILE`: served for a folder or for an exact route (default `index.html`).
//! - `CONTENT_SECURITY_POLICY`: sent with HTML; the default allows only this origin.

use std::io::Read;

use mart_domain::Problem;
use mart_guest::{method_not_allowed, Method, Request, Response};

const DEFAULT_CSP: &str = "default-src 'self'; img-src 'self' data:; \
    style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'";

#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> mart_guest::ServiceResponse {
    mart_guest::serve(request, route).await
}

async fn route(request: &Request) -> Result<Response, Problem> {
    let head = match request.method() {
        Method::Get => false,
        Method::Head => true,
        _ => return Err(method_not_allowed(request, &["GET", "HEAD"])),
    };
    let path_info = request.header("spin-path-info").unwrap_or_default();
    if let Some(location) = folder_redirect(request, path_info) {
        return Ok(Response::empty(308).with_header("location", location));
    }
    let relative = file_path(path_info)?;
    let file = read(&relative)?;
    let etag = file.etag();
    let not_modified = request
        .header("if-none-match")
        .is_some_and(|tags| etag_matches(tags, &etag));
    let content_type = content_type(&relative);
    // No Content-Length without a body: the outgoing body would not match it.
    let body = if head || not_modified {
        Vec::new()
    } else {
        file.bytes
    };
    let mut response = Response::new(if not_modified { 304 } else { 200 }, body)
        .with_header("content-type", content_type.as_str())
        .with_header("etag", etag.as_str())
        // Revalidate every time: the ETag makes that a 304 when nothing changed,
        // and a redeploy is never hidden behind a stale cache.
        .with_header("cache-control", "no-cache")
        .with_header("x-content-type-options", "nosniff")
        // Pages that hold a session token: only ever over https once a
        // browser has seen the site over it (browsers ignore the header on
        // plain http, so local runs are unaffected), and no page address
        // (order ids) handed to the sites they link to, PayFast's included.
        .with_header("strict-transport-security", "max-age=31536000")
        .with_header("referrer-policy", "no-referrer");
    if content_type.starts_with("text/html") {
        let csp = std::env::var("CONTENT_SECURITY_POLICY").unwrap_or_else(|_| DEFAULT_CSP.into());
        response.set_header("content-security-policy", csp);
    }
    Ok(response)
}

/// `/docs` (a wildcard route asked for without its trailing slash) goes to
/// `/docs/`, so that the page's relative links resolve under it.
fn folder_redirect(request: &Request, path_info: &str) -> Option<String> {
    let wildcard = request
        .header("spin-matched-route")
        .is_some_and(|r| r.ends_with("/..."));
    if !wildcard || !path_info.is_empty() || request.path().ends_with('/') {
        return None;
    }
    Some(match request.query() {
        "" => format!("{}/", request.path()),
        query => format!("{}/?{query}", request.path()),
    })
}

/// The file to serve for `path_info`: percent-decoded, never outside the
/// mount, `DEFAULT_FILE` for a folder or for the route itself.
fn file_path(path_info: &str) -> Result<String, Problem> {
    let decoded = percent_encoding::percent_decode_str(path_info)
        .decode_utf8()
        .map_err(|_| Problem::bad_request("the path is not UTF-8"))?;
    let mut parts = Vec::new();
    for part in decoded.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." || part.contains(['\\', '\0']) {
            return Err(Problem::bad_request(format!(
                "`{part}` is not allowed in a file path"
            )));
        }
        parts.push(part.to_string());
    }
    if parts.is_empty() || decoded.ends_with('/') {
        parts.push(std::env::var("DEFAULT_FILE").unwrap_or_else(|_| "index.html".into()));
    }
    Ok(parts.join("/"))
}

struct File {
    bytes: Vec<u8>,
    modified_nanos: u128,
}

impl File {
    /// Size and modification time, as web servers commonly do: files are
    /// staged once per deployment, so this changes exactly when they do.
    fn etag(&self) -> String {
        format!("\"{:x}-{:x}\"", self.bytes.len(), self.modified_nanos)
    }
}

fn read(relative: &str) -> Result<File, Problem> {
    let not_found = || Problem::not_found(format!("no file at /{relative}"));
    let path = format!("/{relative}");
    let mut handle = std::fs::File::open(&path).map_err(|_| not_found())?;
    let meta = handle
        .metadata()
        .map_err(|e| Problem::internal(format!("reading {path}: {e}")))?;
    if !meta.is_file() {
        return Err(not_found());
    }
    let modified_nanos = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    handle
        .read_to_end(&mut bytes)
        .map_err(|e| Problem::internal(format!("reading {path}: {e}")))?;
    Ok(File {
        bytes,
        modified_nanos,
    })
}

/// `If-None-Match` holds `*` or a list of tags, weak ones compared weakly.
fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

fn content_type(path: &str) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    match mime.type_() {
        mime_guess::mime::TEXT => format!("{mime}; charset=utf-8"),
        _ if mime.subtype() == mime_guess::mime::JAVASCRIPT => format!("{mime}; charset=utf-8"),
        _ => mime.to_string(),
    }
}
