//! Spin route matching.
//!
//! Routes are exact (`/cart`), with single-segment parameters (`/users/:id`)
//! or with a trailing wildcard (`/static/...`). The request path is matched
//! raw (no percent-decoding, query excluded); one trailing `/` is tolerated.
//! When several routes match, the most specific wins regardless of manifest
//! order: comparing segment by segment, an exact segment beats a parameter,
//! which beats the wildcard; a route that ends where another continues with
//! a wildcard wins (`/foo` over `/foo/...` for `/foo`).

use mart_manifest::{HttpRoute, HttpTrigger};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    Exact,
    Param,
    Wildcard,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Exact(String),
    Param(String),
}

#[derive(Debug, Clone)]
struct Route {
    component: String,
    /// The route as written in the manifest.
    raw: String,
    /// Absolute, without one trailing `/` (Spin's "based route").
    based: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

/// The component a request goes to, with what the `spin-*` headers report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub component: String,
    pub raw_route: String,
    pub based_route: String,
    /// The route without its trailing `/...`.
    pub component_route: String,
    /// The part of the path matched by the trailing wildcard (else empty).
    pub path_info: String,
    /// `:name` captures, in route order.
    pub params: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Builds the router from `[[trigger.http]]`; private routes are skipped
    /// (they are reachable only through service chaining). Of two triggers
    /// with the same route text, the later wins, as in Spin; the returned
    /// list names the ones that will never be used.
    pub fn build(triggers: &[HttpTrigger]) -> Result<(Self, Vec<String>), String> {
        let mut routes: Vec<Route> = Vec::new();
        let mut shadowed = Vec::new();
        for trigger in triggers {
            let raw = match &trigger.route {
                HttpRoute::Path(path) => path.clone(),
                HttpRoute::Private { private: true } => continue,
                HttpRoute::Private { private: false } => {
                    return Err(format!(
                        "route must be a string pattern or '{{ private = true }}': '{}' has {{ private = false }}",
                        trigger.component
                    ))
                }
            };
            let route = parse_route(&raw, &trigger.component)?;
            if let Some(existing) = routes.iter_mut().find(|r| r.raw == raw) {
                shadowed.push(format!(
                    "{}: {} (duplicate of {})",
                    existing.component, raw, route.component
                ));
                *existing = route;
            } else {
                routes.push(route);
            }
        }
        Ok((Self { routes }, shadowed))
    }

    /// The most specific route matching `path`, if any.
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        self.routes
            .iter()
            .filter_map(|r| r.matches(path).map(|m| (r, m)))
            .min_by(|(a, _), (b, _)| a.specificity().cmp(&b.specificity()))
            .map(|(_, m)| m)
    }

    /// Routes as `(route, component)`, for the start-up table.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.routes
            .iter()
            .map(|r| (r.raw.as_str(), r.component.as_str()))
    }

    /// A match for a chained request to `component`, as Spin synthesises it:
    /// the whole path is the wildcard part of a `/...` route.
    pub fn synthetic(component: &str, path: &str) -> RouteMatch {
        RouteMatch {
            component: component.to_string(),
            raw_route: "/...".into(),
            based_route: "/...".into(),
            component_route: String::new(),
            path_info: path.to_string(),
            params: Vec::new(),
        }
    }
}

fn parse_route(raw: &str, component: &str) -> Result<Route, String> {
    let absolute = if raw.starts_with('/') {
        raw.to_string()
    } else {
        format!("/{raw}")
    };
    let based = absolute.strip_suffix('/').unwrap_or(&absolute).to_string();
    let (prefix, wildcard) = match based.strip_suffix("/...") {
        Some(prefix) => (prefix, true),
        None if based == "/..." => ("", true),
        None => (based.as_str(), false),
    };
    let mut segments = Vec::new();
    for part in prefix.split('/').skip(1) {
        let segment = match part.strip_prefix(':') {
            Some("") => {
                return Err(format!(
                    "route `{raw}` of component `{component}`: parameters must be named"
                ))
            }
            Some(name) => Segment::Param(name.to_string()),
            None if part == "..." => {
                return Err(format!(
                    "route `{raw}` of component `{component}`: `...` may only end a route"
                ))
            }
            None => Segment::Exact(part.to_string()),
        };
        segments.push(segment);
    }
    Ok(Route {
        component: component.to_string(),
        raw: raw.to_string(),
        based,
        segments,
        wildcard,
    })
}

impl Route {
    fn specificity(&self) -> Vec<Specificity> {
        let mut spec: Vec<_> = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Exact(_) => Specificity::Exact,
                Segment::Param(_) => Specificity::Param,
            })
            .collect();
        if self.wildcard {
            spec.push(Specificity::Wildcard);
        }
        spec
    }

    fn matches(&self, path: &str) -> Option<RouteMatch> {
        let (params, remainder) = self.match_segments(path)?;
        let path_info = if self.wildcard {
            remainder.to_string()
        } else if remainder.is_empty() || remainder == "/" {
            String::new()
        } else {
            return None;
        };
        let component_route = match self.raw.strip_suffix("...") {
            Some(prefix) => prefix.strip_suffix('/').unwrap_or(prefix),
            None => &self.raw,
        };
        Some(RouteMatch {
            component: self.component.clone(),
            raw_route: self.raw.clone(),
            based_route: self.based.clone(),
            component_route: component_route.to_string(),
            path_info,
            params,
        })
    }

    /// Matches the route's segments against the start of `path`; returns the
    /// captures and what is left (empty or starting with `/`).
    fn match_segments<'p>(&self, path: &'p str) -> Option<(Vec<(String, String)>, &'p str)> {
        let mut rest = path;
        let mut params = Vec::new();
        for segment in &self.segments {
            let after_slash = rest.strip_prefix('/')?;
            let end = after_slash.find('/').unwrap_or(after_slash.len());
            let part = &after_slash[..end];
            match segment {
                Segment::Exact(expected) if expected == part => {}
                Segment::Param(name) if !part.is_empty() => {
                    params.push((name.clone(), part.to_string()))
                }
                _ => return None,
            }
            rest = &after_slash[end..];
        }
        Some((params, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[&str]) -> Router {
        let triggers: Vec<HttpTrigger> = routes
            .iter()
            .map(|r| HttpTrigger {
                id: None,
                route: HttpRoute::Path(r.to_string()),
                component: format!("c{}", r),
                executor: None,
            })
            .collect();
        Router::build(&triggers).unwrap().0
    }

    fn winner(routes: &[&str], path: &str) -> Option<String> {
        router(routes).route(path).map(|m| m.raw_route)
    }

    #[test]
    fn exact_routes_match_with_or_without_trailing_slash() {
        assert_eq!(
            winner(&["/foo", "/foo/bar"], "/foo").as_deref(),
            Some("/foo")
        );
        assert_eq!(
            winner(&["/foo", "/foo/bar"], "/foo/").as_deref(),
            Some("/foo")
        );
        assert_eq!(
            winner(&["/foo", "/foo/bar"], "/foo/bar").as_deref(),
            Some("/foo/bar")
        );
        assert_eq!(winner(&["/foo"], "/foo/baz"), None);
        assert_eq!(winner(&["/foo"], "/fo"), None);
    }

    #[test]
    fn most_specific_wins_in_any_order() {
        let wild = ["/one/...", "/one/two/...", "/one/two/three/..."];
        let mut reversed = wild;
        reversed.reverse();
        for routes in [wild, reversed] {
            assert_eq!(
                winner(&routes, "/one/two/three/four").as_deref(),
                Some("/one/two/three/...")
            );
            assert_eq!(winner(&routes, "/one/x").as_deref(), Some("/one/..."));
        }
        assert_eq!(winner(&["/...", "/one"], "/one").as_deref(), Some("/one"));
        assert_eq!(winner(&["/...", "/one"], "/two").as_deref(), Some("/..."));
        let users = ["/users/...", "/users/admin", "/users/:id", "/..."];
        assert_eq!(
            winner(&users, "/users/admin").as_deref(),
            Some("/users/admin")
        );
        assert_eq!(winner(&users, "/users/7").as_deref(), Some("/users/:id"));
        assert_eq!(winner(&users, "/users/7/x").as_deref(), Some("/users/..."));
        assert_eq!(winner(&users, "/users").as_deref(), Some("/users/..."));
        assert_eq!(winner(&users, "/shop").as_deref(), Some("/..."));
        assert_eq!(winner(&["/", "/..."], "/").as_deref(), Some("/"));
        assert_eq!(
            winner(&["/a/b/...", "/a/:x/c"], "/a/b/c").as_deref(),
            Some("/a/b/...")
        );
    }

    #[test]
    fn wildcard_path_info() {
        let r = router(&["/test/..."]);
        let info = |p: &str| r.route(p).map(|m| m.path_info);
        assert_eq!(info("/test").as_deref(), Some(""));
        assert_eq!(info("/test/").as_deref(), Some("/"));
        assert_eq!(info("/test/hello").as_deref(), Some("/hello"));
        assert_eq!(info("/test/hello/").as_deref(), Some("/hello/"));
        assert_eq!(info("/testing"), None);
        assert_eq!(
            router(&["/..."]).route("/1/2/3").unwrap().path_info,
            "/1/2/3"
        );
    }

    #[test]
    fn params_are_captured_raw() {
        let m = router(&["/1/:two/..."]).route("/1/2%20x/3").unwrap();
        assert_eq!(m.params, vec![("two".to_string(), "2%20x".to_string())]);
        assert_eq!(m.path_info, "/3");
        assert_eq!(m.component_route, "/1/:two");
        let edit = router(&["/users/:userid/edit"]);
        assert!(edit.route("/users/1/edit").is_some());
        for miss in ["/users", "/users/1", "/users/1/edit/cart", "/users//edit"] {
            assert!(edit.route(miss).is_none(), "{miss}");
        }
    }

    #[test]
    fn header_values_follow_spin() {
        let m = router(&["/foo/:userid/..."]).route("/foo/42/bar").unwrap();
        assert_eq!(m.based_route, "/foo/:userid/...");
        assert_eq!(m.component_route, "/foo/:userid");
        assert_eq!(m.path_info, "/bar");
        let root = router(&["/..."]).route("/x").unwrap();
        assert_eq!(root.component_route, "");
        let slash = router(&["/foo/"]).route("/foo").unwrap();
        assert_eq!(slash.based_route, "/foo");
        assert_eq!(slash.raw_route, "/foo/");
    }

    #[test]
    fn later_duplicate_wins_and_is_reported() {
        let triggers = vec![
            HttpTrigger {
                id: None,
                route: HttpRoute::Path("/a".into()),
                component: "first".into(),
                executor: None,
            },
            HttpTrigger {
                id: None,
                route: HttpRoute::Path("/a".into()),
                component: "second".into(),
                executor: None,
            },
            HttpTrigger {
                id: None,
                route: HttpRoute::Private { private: true },
                component: "hidden".into(),
                executor: None,
            },
        ];
        let (r, shadowed) = Router::build(&triggers).unwrap();
        assert_eq!(r.route("/a").unwrap().component, "second");
        assert_eq!(
            shadowed,
            vec!["first: /a (duplicate of second)".to_string()]
        );
        assert_eq!(r.routes().count(), 1);
    }

    #[test]
    fn rejects_bad_routes() {
        let bad = |route: &str| {
            Router::build(&[HttpTrigger {
                id: None,
                route: HttpRoute::Path(route.into()),
                component: "c".into(),
                executor: None,
            }])
            .is_err()
        };
        assert!(bad("/a/:/b"));
        assert!(bad("/a/.../b"));
        assert!(!bad("/a/:id/..."));
    }
}
