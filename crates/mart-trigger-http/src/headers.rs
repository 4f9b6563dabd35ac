//! The `spin-*` headers a component receives, with Spin's names and values.

use std::net::SocketAddr;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::RouteMatch;

const PREFIX: &str = "spin-";

/// Replaces any `spin-*` header the client sent with the host's values.
///
/// Spin itself appends its values after client-supplied ones; a component
/// reading the first value could then be fooled by a client, so the host
/// removes the client's copies first. Components see the same values either way.
pub(crate) fn set_spin_headers(
    headers: &mut HeaderMap,
    route: &RouteMatch,
    full_url: &str,
    client: SocketAddr,
) {
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(PREFIX))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(&name);
    }
    let mut set = |name: &str, value: &str| {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(name, value);
        }
    };
    set("spin-full-url", full_url);
    set("spin-path-info", &route.path_info);
    set("spin-matched-route", &route.based_route);
    set("spin-base-path", "/");
    set("spin-raw-component-route", &route.raw_route);
    set("spin-component-route", &route.component_route);
    set("spin-client-addr", &client.to_string());
    for (name, value) in &route.params {
        let name = format!(
            "spin-path-match-{}",
            name.to_ascii_lowercase().replace('_', "-")
        );
        set(&name, value);
    }
}

/// `{scheme}://{host}{path?query}`, the host taken from the `Host` header.
pub(crate) fn full_url(scheme: &str, host: Option<&str>, path_and_query: &str) -> String {
    format!("{scheme}://{}{path_and_query}", host.unwrap_or("localhost"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Router;
    use mart_manifest::{HttpRoute, HttpTrigger};

    #[test]
    fn spin_test_vector() {
        let trigger = HttpTrigger {
            id: None,
            route: HttpRoute::Path("/foo/:userid/...".into()),
            component: "c".into(),
            executor: None,
        };
        let (router, _) = Router::build(&[trigger]).unwrap();
        let m = router.route("/foo/42/bar").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("spin-path-info", HeaderValue::from_static("/forged"));
        headers.insert("accept", HeaderValue::from_static("*/*"));
        let url = full_url(
            "https",
            Some("fermyon.dev"),
            "/foo/42/bar?key1=value1&key2=value2",
        );
        set_spin_headers(&mut headers, &m, &url, "127.0.0.1:8777".parse().unwrap());
        let get = |n: &str| {
            let all: Vec<_> = headers
                .get_all(n)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(all.len(), 1, "{n} has one value");
            all[0].to_string()
        };
        assert_eq!(
            get("spin-full-url"),
            "https://fermyon.dev/foo/42/bar?key1=value1&key2=value2"
        );
        assert_eq!(get("spin-path-info"), "/bar");
        assert_eq!(get("spin-matched-route"), "/foo/:userid/...");
        assert_eq!(get("spin-base-path"), "/");
        assert_eq!(get("spin-raw-component-route"), "/foo/:userid/...");
        assert_eq!(get("spin-component-route"), "/foo/:userid");
        assert_eq!(get("spin-client-addr"), "127.0.0.1:8777");
        assert_eq!(get("spin-path-match-userid"), "42");
        assert_eq!(get("accept"), "*/*");
    }

    #[test]
    fn param_names_use_dashes() {
        let trigger = HttpTrigger {
            id: None,
            route: HttpRoute::Path("/u/:user_id".into()),
            component: "c".into(),
            executor: None,
        };
        let (router, _) = Router::build(&[trigger]).unwrap();
        let m = router.route("/u/7").unwrap();
        let mut headers = HeaderMap::new();
        set_spin_headers(&mut headers, &m, "http://x/u/7", "[::1]:5".parse().unwrap());
        assert_eq!(headers["spin-path-match-user-id"], "7");
        assert_eq!(headers["spin-client-addr"], "[::1]:5");
        assert_eq!(headers["spin-path-info"], "");
    }
}
