use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ManifestError;

/// A parsed `spin.toml` with its location, so relative paths resolve against it.
#[derive(Debug, Clone)]
pub struct App {
    pub manifest: Manifest,
    /// Folder holding the manifest; component sources are relative to it.
    pub base_dir: PathBuf,
}

impl App {
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let manifest = Manifest::parse(&text).map_err(|message| ManifestError::Parse {
            path: path.display().to_string(),
            message,
        })?;
        manifest
            .validate()
            .map_err(|message| ManifestError::Invalid {
                path: path.display().to_string(),
                message,
            })?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Self { manifest, base_dir })
    }

    /// The app whose manifest is `text`, as if its file were in `base_dir`:
    /// parsed and validated as `load` does (for tests and tools that hold
    /// the text).
    pub fn from_text(text: &str, base_dir: &Path) -> Result<Self, String> {
        let manifest = Manifest::parse(text)?;
        manifest.validate()?;
        Ok(Self {
            manifest,
            base_dir: base_dir.to_path_buf(),
        })
    }

    /// The app in a Spin lock file (what `spin up` hands a trigger plugin);
    /// `app_dir` is the folder its `files` were staged in.
    pub fn load_locked(path: &Path, app_dir: &Path) -> Result<Self, ManifestError> {
        let at = || path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ManifestError::Read { path: at(), source })?;
        let manifest = crate::LockedApp::parse(&text)
            .and_then(|lock| lock.into_manifest(app_dir))
            .map_err(|message| ManifestError::Parse {
                path: at(),
                message,
            })?;
        manifest
            .validate()
            .map_err(|message| ManifestError::Invalid {
                path: at(),
                message,
            })?;
        Ok(Self {
            manifest,
            base_dir: app_dir.to_path_buf(),
        })
    }

    /// Only the triggers of `kinds` and the components they run: what one
    /// trigger process needs (Spin starts one process per trigger type).
    pub fn retain_trigger_types(&mut self, kinds: &[&str]) {
        let m = &mut self.manifest;
        if !kinds.contains(&"http") {
            m.trigger.http.clear();
        }
        m.trigger
            .other
            .retain(|kind, _| kinds.contains(&kind.as_str()));
        self.drop_untriggered_components();
    }

    /// Components no trigger runs are left out, as Spin leaves them.
    fn drop_untriggered_components(&mut self) {
        let m = &mut self.manifest;
        let triggered: std::collections::BTreeSet<String> = m
            .trigger
            .http
            .iter()
            .map(|t| t.component.clone())
            .chain(
                m.trigger
                    .other
                    .values()
                    .flatten()
                    .filter_map(|t| t.get("component")?.as_str().map(String::from)),
            )
            .collect();
        m.component.retain(|id, _| triggered.contains(id));
    }

    /// Only the triggers of the components `ids` and those components, as
    /// Spin's `spin up --component-id` (`-c`) keeps them: one process can
    /// then run a subset of the app (one Kafka handler per Deployment). As
    /// in Spin, an id the app lacks is refused, and so is a kept component
    /// that calls one left out (`http://<id>.spin.internal`, or any with
    /// `*.spin.internal`) — that call would fail on every request.
    pub fn retain_components(&mut self, ids: &[&str]) -> Result<(), String> {
        let m = &mut self.manifest;
        if let Some(missing) = ids.iter().find(|id| !m.component.contains_key(**id)) {
            return Err(format!(
                "component `{missing}` is not in the app (its components: {})",
                m.component.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        for id in ids {
            for host in &m.component[*id].allowed_outbound_hosts {
                if let Some(target) = chained_component(host) {
                    if !ids.contains(&target) {
                        return Err(format!(
                            "component `{id}` calls {host} (allowed_outbound_hosts), \
                             which is not among the components kept; keep `{target}` too"
                        ));
                    }
                }
            }
        }
        let kept = |component: &str| ids.contains(&component);
        m.trigger.http.retain(|t| kept(&t.component));
        for triggers in m.trigger.other.values_mut() {
            triggers.retain(|t| {
                t.get("component")
                    .and_then(|c| c.as_str())
                    .is_some_and(kept)
            });
        }
        m.trigger.other.retain(|_, triggers| !triggers.is_empty());
        self.drop_untriggered_components();
        Ok(())
    }

    pub fn component_source_path(&self, component: &Component) -> PathBuf {
        self.base_dir.join(&component.source)
    }
}

/// The component an `allowed_outbound_hosts` entry chains to
/// (`http://<id>.spin.internal`, `*` for every one); templated entries are
/// not resolved here and so name none, as in Spin's check.
fn chained_component(host: &str) -> Option<&str> {
    if host.contains("{{") {
        return None;
    }
    let authority = host.split_once("://").map_or(host, |(_, rest)| rest);
    let name = authority.split([':', '/']).next()?;
    name.strip_suffix(".spin.internal")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub spin_manifest_version: u32,
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, Component>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub targets: Vec<String>,
    /// Application-level trigger settings (`[application.trigger.http]`).
    #[serde(default)]
    pub trigger: BTreeMap<String, toml::Table>,
    /// Tool-specific tables; Mart reads `[application.tool.mart]`.
    #[serde(default)]
    pub tool: BTreeMap<String, toml::Table>,
}

/// An application variable (`[variables]`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub description: Option<String>,
}

/// `[[trigger.<type>]]` tables. HTTP is Spin's; other trigger types (such as
/// Mart's own `kafka`) are kept raw for the trigger that owns them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Triggers {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Vec<toml::Table>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    #[serde(default)]
    pub id: Option<String>,
    pub route: HttpRoute,
    pub component: String,
    #[serde(default)]
    pub executor: Option<toml::Table>,
}

/// A trigger route: a path pattern, or `{ private = true }` for a component
/// reachable only through service chaining.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum HttpRoute {
    Path(String),
    Private { private: bool },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub source: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Deprecated Spin 1 spelling; accepted so older manifests still load.
    #[serde(default)]
    pub allowed_http_hosts: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Files the component can read at run time (read-only, under `/`).
    #[serde(default)]
    pub files: Vec<FileMount>,
    /// Glob patterns (relative to the manifest) left out of `files` patterns.
    #[serde(default)]
    pub exclude_files: Vec<String>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub ai_models: Vec<String>,
    #[serde(default)]
    pub build: Option<toml::Table>,
    #[serde(default)]
    pub dependencies: Option<toml::Table>,
    #[serde(default)]
    pub dependencies_inherit_configuration: Option<bool>,
    /// Tool-specific tables; Mart reads `[component.<id>.tool.mart]`.
    #[serde(default)]
    pub tool: BTreeMap<String, toml::Table>,
}

impl Component {
    /// Mart's per-component settings from `[component.<id>.tool.mart]`.
    pub fn mart_settings(&self) -> Result<ComponentSettings, String> {
        match self.tool.get("mart") {
            None => Ok(ComponentSettings::default()),
            Some(table) => toml::Value::Table(table.clone())
                .try_into()
                .map_err(|e: toml::de::Error| format!("[tool.mart]: {}", e.message())),
        }
    }

    pub fn all_outbound_hosts(&self) -> impl Iterator<Item = &String> {
        self.allowed_outbound_hosts
            .iter()
            .chain(&self.allowed_http_hosts)
    }
}

/// One entry of a component's `files`, as Spin writes it: a glob pattern
/// relative to the manifest (each match keeps its relative path under `/`),
/// or a mapping of a host directory or file to a guest path.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum FileMount {
    Pattern(String),
    Mapping { source: String, destination: String },
}

/// Mart's own per-component knobs (`[component.<id>.tool.mart]`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ComponentSettings {
    /// Wall-clock limit for one invocation, in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Linear-memory cap for one instance, in MiB.
    #[serde(default)]
    pub max_memory_mib: Option<u64>,
    /// Topics the component may publish to through `mart:kafka/producer`.
    #[serde(default)]
    pub kafka_publish_topics: Vec<String>,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Mart's `[[trigger.kafka]]` entries.
    pub fn kafka_triggers(&self) -> Result<Vec<crate::KafkaTrigger>, String> {
        self.mart_triggers("kafka")
    }

    /// `[application.trigger.kafka]`: the Kafka trigger's connection and
    /// outbox settings (defaults when the table is absent).
    pub fn kafka_config(&self) -> Result<crate::KafkaConfig, String> {
        match self.application.trigger.get("kafka") {
            None => Ok(crate::KafkaConfig::default()),
            Some(table) => {
                toml::Value::Table(table.clone())
                    .try_into()
                    .map_err(|e: toml::de::Error| {
                        format!("[application.trigger.kafka]: {}", e.message())
                    })
            }
        }
    }

    /// Mart's `[[trigger.timer]]` entries.
    pub fn timer_triggers(&self) -> Result<Vec<crate::TimerTrigger>, String> {
        self.mart_triggers("timer")
    }

    /// `[[trigger.cron]]` entries (the `trigger-cron` Spin plugin's), which
    /// Mart's timer trigger runs.
    pub fn cron_triggers(&self) -> Result<Vec<crate::CronTrigger>, String> {
        self.mart_triggers("cron")
    }

    /// The `[[trigger.<kind>]]` tables of one of Mart's own trigger types.
    fn mart_triggers<T: serde::de::DeserializeOwned>(&self, kind: &str) -> Result<Vec<T>, String> {
        let Some(tables) = self.trigger.other.get(kind) else {
            return Ok(Vec::new());
        };
        tables
            .iter()
            .map(|t| {
                toml::Value::Table(t.clone())
                    .try_into()
                    .map_err(|e: toml::de::Error| format!("[[trigger.{kind}]]: {}", e.message()))
            })
            .collect()
    }

    /// Checks that go beyond the shape: references resolve and names are legal.
    pub fn validate(&self) -> Result<(), String> {
        if self.spin_manifest_version != 2 {
            return Err(format!(
                "spin_manifest_version {} is not supported (expected 2)",
                self.spin_manifest_version
            ));
        }
        for name in self.variables.keys() {
            check_variable_name(name)?;
        }
        for (id, decl) in &self.variables {
            if decl.required && decl.default.is_some() {
                return Err(format!(
                    "variable `{id}` is both required and has a default; choose one"
                ));
            }
        }
        for (id, component) in &self.component {
            check_component_id(id)?;
            for name in component.variables.keys() {
                check_variable_name(name).map_err(|e| format!("component `{id}`: {e}"))?;
            }
            component
                .mart_settings()
                .map_err(|e| format!("component `{id}`: {e}"))?;
        }
        self.kafka_config()?;
        for trigger in self.kafka_triggers()? {
            trigger.validate()?;
            if !self.component.contains_key(&trigger.component) {
                return Err(format!(
                    "Kafka trigger names component `{}`, which is not defined",
                    trigger.component
                ));
            }
        }
        for trigger in self.timer_triggers()? {
            trigger.validate()?;
            if !self.component.contains_key(&trigger.component) {
                return Err(format!(
                    "timer trigger names component `{}`, which is not defined",
                    trigger.component
                ));
            }
        }
        for trigger in self.cron_triggers()? {
            if !self.component.contains_key(&trigger.component) {
                return Err(format!(
                    "cron trigger names component `{}`, which is not defined",
                    trigger.component
                ));
            }
        }
        for trigger in &self.trigger.http {
            if !self.component.contains_key(&trigger.component) {
                return Err(format!(
                    "HTTP trigger for route {:?} names component `{}`, which is not defined",
                    trigger.route, trigger.component
                ));
            }
            if let HttpRoute::Path(path) = &trigger.route {
                if !path.starts_with('/') {
                    return Err(format!("HTTP route `{path}` must start with `/`"));
                }
            }
        }
        Ok(())
    }
}

/// Spin variable names: lower-case ASCII letters, digits and `_`, starting
/// with a letter, no `__` and no trailing `_` (so env names map back uniquely).
pub fn check_variable_name(name: &str) -> Result<(), String> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.contains("__")
        && !name.ends_with('_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid variable name `{name}`: use lower-case letters, digits and single underscores, starting with a letter"
        ))
    }
}

/// Spin component ids: lower-case kebab-case words of letters and digits.
pub fn check_component_id(id: &str) -> Result<(), String> {
    let valid = !id.is_empty()
        && id.split('-').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && id.starts_with(|c: char| c.is_ascii_lowercase());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid component id `{id}`: use lower-case kebab-case such as `my-component`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
spin_manifest_version = 2

[application]
name = "mart"
version = "0.1.0"

[variables]
db_host = { default = "127.0.0.1" }
jwt_key = { required = true, secret = true }

[[trigger.http]]
route = "/products/..."
component = "catalog"

[[trigger.http]]
route = { private = true }
component = "catalog"

[[trigger.kafka]]
component = "catalog"
topics = ["mart.orders"]

[component.catalog]
source = "target/wasm32-wasip2/release/catalog.wasm"
allowed_outbound_hosts = ["postgres://{{ db_host }}:5432"]
variables = { db_url = "postgres://{{ db_host }}/catalog" }

[component.catalog.build]
command = "cargo build"

[component.catalog.tool.mart]
timeout_ms = 5000
max_memory_mib = 64
"#;

    #[test]
    fn reads_spin_tables_and_keeps_other_triggers_raw() {
        let m = Manifest::parse(SAMPLE).unwrap();
        m.validate().unwrap();
        assert_eq!(m.trigger.http.len(), 2);
        assert_eq!(
            m.trigger.http[1].route,
            HttpRoute::Private { private: true }
        );
        assert_eq!(m.trigger.other["kafka"].len(), 1);
        let c = &m.component["catalog"];
        assert_eq!(c.variables["db_url"], "postgres://{{ db_host }}/catalog");
        assert_eq!(
            c.mart_settings().unwrap(),
            ComponentSettings {
                timeout_ms: Some(5000),
                max_memory_mib: Some(64),
                kafka_publish_topics: Vec::new(),
            }
        );
        assert!(m.variables["jwt_key"].secret);
    }

    #[test]
    fn rejects_unknown_keys_in_spin_tables() {
        let text = SAMPLE.replace("source =", "sauce = \"x\"\nsource =");
        let err = Manifest::parse(&text).unwrap_err();
        assert!(err.contains("sauce"), "{err}");
    }

    #[test]
    fn rejects_trigger_for_missing_component() {
        let text = SAMPLE.replace(
            "component = \"catalog\"\n\n[[trigger.http]]",
            "component = \"nope\"\n\n[[trigger.http]]",
        );
        let err = Manifest::parse(&text).unwrap().validate().unwrap_err();
        assert!(err.contains("`nope`"), "{err}");
    }

    #[test]
    fn rejects_unknown_mart_settings() {
        let text = SAMPLE.replace("timeout_ms = 5000", "timeout_secs = 5");
        let err = Manifest::parse(&text).unwrap().validate().unwrap_err();
        assert!(err.contains("timeout_secs"), "{err}");
    }

    #[test]
    fn variable_names_follow_spin_rules() {
        for ok in ["a", "db_host", "x1_y2"] {
            check_variable_name(ok).unwrap();
        }
        for bad in ["", "A", "1a", "a__b", "a_", "a-b", "_a"] {
            assert!(check_variable_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn component_ids_are_kebab_case() {
        for ok in ["a", "catalog", "order-saga2"] {
            check_component_id(ok).unwrap();
        }
        for bad in ["", "Catalog", "a--b", "-a", "a-", "a_b", "1a"] {
            assert!(check_component_id(bad).is_err(), "{bad}");
        }
    }

    const CHAINED: &str = r#"
spin_manifest_version = 2
[application]
name = "shop"

[[trigger.http]]
route = "/orders/..."
component = "orders"

[[trigger.http]]
route = "/products/..."
component = "catalog"

[[trigger.kafka]]
component = "orders-events"
topics = ["mart.payments"]

[[trigger.timer]]
component = "orders-expiry"
interval_secs = "30"

[component.orders]
source = "orders.wasm"
allowed_outbound_hosts = ["http://catalog.spin.internal", "postgres://{{ host }}"]

[component.catalog]
source = "catalog.wasm"

[component.orders-events]
source = "orders.wasm"

[component.orders-expiry]
source = "orders.wasm"
"#;

    fn chained() -> App {
        App::from_text(CHAINED, Path::new(".")).unwrap()
    }

    #[test]
    fn kept_components_keep_their_triggers_only() {
        let mut app = chained();
        app.retain_components(&["orders-events"]).unwrap();
        let m = &app.manifest;
        assert!(m.trigger.http.is_empty());
        assert_eq!(m.trigger.other.keys().collect::<Vec<_>>(), ["kafka"]);
        assert_eq!(m.component.keys().collect::<Vec<_>>(), ["orders-events"]);

        let mut app = chained();
        app.retain_components(&["orders", "catalog", "orders-expiry"])
            .unwrap();
        let m = &app.manifest;
        assert_eq!(m.trigger.http.len(), 2);
        assert_eq!(m.trigger.other.keys().collect::<Vec<_>>(), ["timer"]);
        assert_eq!(m.component.len(), 3);
    }

    #[test]
    fn keeping_a_component_without_the_one_it_calls_is_refused() {
        let err = chained().retain_components(&["orders"]).unwrap_err();
        assert!(
            err.contains("`orders` calls http://catalog.spin.internal"),
            "{err}"
        );
        assert!(err.contains("keep `catalog` too"), "{err}");
        let wildcard = CHAINED.replace("http://catalog.spin.internal", "http://*.spin.internal");
        let mut app = App::from_text(&wildcard, Path::new(".")).unwrap();
        assert!(
            app.retain_components(&["orders", "catalog"]).is_err(),
            "* chains to every component"
        );
    }

    #[test]
    fn keeping_a_component_the_app_lacks_is_refused() {
        let err = chained().retain_components(&["order-events"]).unwrap_err();
        assert!(err.contains("`order-events` is not in the app"), "{err}");
        assert!(err.contains("orders-events"), "lists the components: {err}");
    }
}
