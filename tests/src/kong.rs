//! kong/kong.yml, Kong's declarative config in front of the app, as the
//! packaging and Kubernetes tests read it.

use serde_yaml::Value as Yaml;

/// kong/kong.yml as docker compose's kong-config service renders it (a
/// stand-in public key in place of the template's).
pub fn rendered() -> Yaml {
    let key =
        "          -----BEGIN PUBLIC KEY-----\n          MFkw\n          -----END PUBLIC KEY-----";
    let text =
        std::fs::read_to_string(crate::repo_root().join("kong/kong.yml")).expect("kong/kong.yml");
    let rendered = text.replace("${MART_JWT_PUBLIC_KEY_INDENTED}", key);
    serde_yaml::from_str(&rendered).expect("the rendered kong.yml is valid YAML")
}

/// One of kong.yml's routes.
pub struct KongRoute {
    pub name: String,
    pub paths: Vec<String>,
    /// Empty: every method.
    pub methods: Vec<String>,
    /// The names of the route's own plugins (`jwt`, `rate-limiting`).
    pub plugins: Vec<String>,
}

impl KongRoute {
    /// Whether the route requires a token.
    pub fn jwt(&self) -> bool {
        self.plugins.iter().any(|p| p == "jwt")
    }
}

/// Every route, checking what every route must have: it forwards to the
/// host's app listener and hands paths on unchanged.
pub fn routes() -> Vec<KongRoute> {
    let kong = rendered();
    let mut routes = Vec::new();
    for service in kong["services"].as_sequence().unwrap() {
        assert_eq!(
            service["url"], "http://mart:3000",
            "Kong forwards to the host's app listener only"
        );
        for route in service["routes"].as_sequence().unwrap() {
            assert_eq!(
                route["strip_path"],
                Yaml::Bool(false),
                "paths reach the host unchanged"
            );
            routes.push(KongRoute {
                name: route["name"].as_str().unwrap().into(),
                paths: strings(&route["paths"]),
                methods: strings(&route["methods"]),
                plugins: plugin_names(&route["plugins"]),
            });
        }
    }
    routes
}

/// The plugins kong.yml applies to every route.
pub fn global_plugins() -> Vec<String> {
    plugin_names(&rendered()["plugins"])
}

fn plugin_names(plugins: &Yaml) -> Vec<String> {
    plugins
        .as_sequence()
        .map(|ps| {
            ps.iter()
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn strings(v: &Yaml) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}
