//! A component as `spin new -t http-rust` makes it with spin-sdk 7: one
//! `#[http_service] async fn`. Its routes let the tests see what the host
//! does with an instance: how many requests one serves (a counter in a
//! global, which reuse keeps and a fresh instance resets), whether a trap
//! retires it, and whether p3 outbound HTTP follows the allow-list.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use spin_sdk::http::{EmptyBody, IntoResponse, Request, Response, StatusCode};
use spin_sdk::http_service;
use spin_sdk::wasip3;

/// Requests this instance has served: the point of the probe is that this
/// global outlives a request when the host reuses the instance.
static SERVED: AtomicU64 = AtomicU64::new(0);
/// Chosen at the instance's first request, to tell instances apart.
static INSTANCE: OnceLock<u64> = OnceLock::new();
/// Requests this instance is serving at this moment (while they sleep).
static IN_FLIGHT: AtomicU64 = AtomicU64::new(0);

#[http_service]
async fn handle(request: Request) -> anyhow::Result<impl IntoResponse> {
    let served = SERVED.fetch_add(1, Ordering::SeqCst) + 1;
    let instance = *INSTANCE.get_or_init(wasip3::random::random::get_random_u64);
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let body = match path.rsplit('/').next().unwrap_or_default() {
        "count" => format!("instance={instance} served={served}"),
        "sleep" => {
            let ms: u64 = param("ms").and_then(|v| v.parse().ok()).unwrap_or(100);
            let at_once = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
            wasip3::clocks::monotonic_clock::wait_for(ms * 1_000_000).await;
            let at_end = IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
            // The most requests this one saw running in the instance.
            let seen = at_once.max(at_end);
            format!("instance={instance} served={served} in_flight={seen}")
        }
        "trap" => panic!("the probe was asked to trap"),
        "outbound" => {
            let url = param("url").unwrap_or_default();
            return Ok(outbound(&url).await);
        }
        _ => "hello from a WASIp3 component".to_string(),
    };
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(body)?)
}

/// GETs `url` with p3 outbound HTTP and says what came back: the status,
/// or the error code the host gave (a refused host is `HTTP-request-denied`).
async fn outbound(url: &str) -> Response<String> {
    let answer = match Request::get(url).body(EmptyBody::new()) {
        Err(e) => (StatusCode::BAD_REQUEST, format!("bad url: {e}")),
        Ok(request) => match spin_sdk::http::send(request).await {
            Ok(response) => (
                StatusCode::OK,
                format!("status={}", response.status().as_u16()),
            ),
            Err(e) => (StatusCode::BAD_GATEWAY, format!("error={e:?}")),
        },
    };
    Response::builder()
        .status(answer.0)
        .body(answer.1)
        .expect("a status and a string make a response")
}
