//! Spin's locked app (`spin.lock`, lock version 1): the app as `spin up` hands
//! it to a trigger plugin through `SPIN_LOCKED_URL`.
//!
//! The shapes follow Spin 4's `spin-locked-app` crate (`crates/locked-app/src/
//! locked.rs`); Spin's crates are not on crates.io, so they are read here from
//! the JSON itself. A locked app becomes the same [`App`] that `spin.toml`
//! becomes, so every trigger runs one model whichever way the app arrived.
//! Sources and `files` are already resolved by Spin to `file://` URLs (for a
//! local app, the files are copied under Spin's working directory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{Application, Component, FileMount, HttpTrigger, Manifest, Triggers, VariableDecl};

/// What a lock may list in `must_understand`; anything else is refused, as
/// Spin's own triggers refuse it.
const UNDERSTOOD: &[&str] = &["host_requirements", "component_host_requirements"];
/// Host requirements this host meets (`local_service_chaining`); a value of
/// `optional` never blocks.
const SUPPORTED_HOST_REQUIREMENTS: &[&str] = &["local_service_chaining"];

#[derive(Debug, Deserialize)]
pub struct LockedApp {
    pub spin_lock_version: u32,
    #[serde(default)]
    pub must_understand: Vec<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    #[serde(default)]
    pub host_requirements: Map<String, Value>,
    #[serde(default)]
    pub variables: BTreeMap<String, LockedVariable>,
    pub triggers: Vec<LockedTrigger>,
    pub components: Vec<LockedComponent>,
}

#[derive(Debug, Deserialize)]
pub struct LockedVariable {
    #[serde(default)]
    pub description: Option<String>,
    /// No default means the variable is required.
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Deserialize)]
pub struct LockedTrigger {
    pub id: String,
    pub trigger_type: String,
    pub trigger_config: Value,
}

#[derive(Debug, Deserialize)]
pub struct LockedComponent {
    pub id: String,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    pub source: ContentRef,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<ContentPath>,
    /// The component's variables (`[component.<id>.variables]`), unrendered.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub dependencies: Map<String, Value>,
    #[serde(default)]
    pub host_requirements: Map<String, Value>,
}

/// Content by reference (`source`, a URL) or inline bytes; this host reads
/// only `file://` references.
#[derive(Debug, Deserialize)]
pub struct ContentRef {
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub inline: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ContentPath {
    #[serde(flatten)]
    pub content: ContentRef,
    pub path: String,
}

impl LockedApp {
    pub fn parse(json: &str) -> Result<Self, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    /// Turns the lock into the manifest model; `app_dir` is where `files`
    /// must live (Spin's working directory for a local app).
    pub fn into_manifest(self, app_dir: &Path) -> Result<Manifest, String> {
        self.check_understood()?;
        let mut triggers = Triggers::default();
        for trigger in self.triggers {
            if trigger.trigger_type == "http" {
                let mut http: HttpTrigger = serde_json::from_value(trigger.trigger_config)
                    .map_err(|e| format!("trigger `{}`: {e}", trigger.id))?;
                http.id.get_or_insert(trigger.id);
                triggers.http.push(http);
            } else {
                let table = json_to_table(trigger.trigger_config)
                    .map_err(|e| format!("trigger `{}`: {e}", trigger.id))?;
                triggers
                    .other
                    .entry(trigger.trigger_type)
                    .or_default()
                    .push(table);
            }
        }
        let component = self
            .components
            .into_iter()
            .map(|c| Ok((c.id.clone(), c.into_component(app_dir)?)))
            .collect::<Result<_, String>>()?;
        Ok(Manifest {
            spin_manifest_version: 2,
            application: application(&self.metadata)?,
            variables: self
                .variables
                .into_iter()
                .map(|(name, v)| {
                    let decl = VariableDecl {
                        required: v.default.is_none(),
                        default: v.default,
                        secret: v.secret,
                        description: v.description,
                    };
                    (name, decl)
                })
                .collect(),
            trigger: triggers,
            component,
        })
    }

    fn check_understood(&self) -> Result<(), String> {
        if self.spin_lock_version > 1 {
            return Err(format!(
                "spin_lock_version {} is newer than this host understands (1)",
                self.spin_lock_version
            ));
        }
        if let Some(unknown) = self
            .must_understand
            .iter()
            .find(|m| !UNDERSTOOD.contains(&m.as_str()))
        {
            return Err(format!(
                "the lock needs `{unknown}`, which this host does not understand"
            ));
        }
        let component_requirements = self.components.iter().map(|c| &c.host_requirements);
        for requirements in std::iter::once(&self.host_requirements).chain(component_requirements) {
            for (key, value) in requirements {
                if value.as_str() != Some("optional")
                    && !SUPPORTED_HOST_REQUIREMENTS.contains(&key.as_str())
                {
                    return Err(format!(
                        "the app requires `{key}`, which this host does not support"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `metadata` keys Spin writes from `[application]`; `triggers` holds the
/// `[application.trigger.<type>]` tables.
fn application(metadata: &Map<String, Value>) -> Result<Application, String> {
    let text = |key: &str| metadata.get(key).and_then(Value::as_str).map(String::from);
    let trigger = match metadata.get("triggers") {
        Some(Value::Object(by_type)) => by_type
            .iter()
            .map(|(kind, settings)| {
                json_to_table(settings.clone())
                    .map(|t| (kind.clone(), t))
                    .map_err(|e| format!("[application.trigger.{kind}]: {e}"))
            })
            .collect::<Result<_, _>>()?,
        _ => BTreeMap::new(),
    };
    Ok(Application {
        name: text("name").ok_or("the lock's metadata has no application `name`")?,
        version: text("version"),
        description: text("description"),
        authors: Vec::new(),
        targets: Vec::new(),
        trigger,
        tool: BTreeMap::new(),
    })
}

impl LockedComponent {
    fn into_component(self, app_dir: &Path) -> Result<Component, String> {
        let who = format!("component `{}`", self.id);
        if !self.dependencies.is_empty() {
            return Err(format!(
                "{who}: component dependencies are not supported by this host"
            ));
        }
        let source = file_path(&self.source).map_err(|e| format!("{who}: source: {e}"))?;
        let files = self
            .files
            .iter()
            .map(|f| {
                let path = file_path(&f.content).map_err(|e| format!("{who}: files: {e}"))?;
                let relative = path.strip_prefix(app_dir).map_err(|_| {
                    format!(
                        "{who}: files: {} is outside the app folder {}",
                        path.display(),
                        app_dir.display()
                    )
                })?;
                Ok(FileMount::Mapping {
                    source: relative.display().to_string(),
                    destination: f.path.clone(),
                })
            })
            .collect::<Result<_, String>>()?;
        let strings = |key: &str| -> Result<Vec<String>, String> {
            match self.metadata.get(key) {
                None => Ok(Vec::new()),
                Some(v) => {
                    serde_json::from_value(v.clone()).map_err(|e| format!("{who}: {key}: {e}"))
                }
            }
        };
        Ok(Component {
            source: source.display().to_string(),
            description: self
                .metadata
                .get("description")
                .and_then(Value::as_str)
                .map(String::from),
            allowed_outbound_hosts: strings("allowed_outbound_hosts")?,
            allowed_http_hosts: Vec::new(),
            variables: self.config,
            environment: self.env,
            files,
            exclude_files: Vec::new(),
            key_value_stores: strings("key_value_stores")?,
            // Spin writes `[component].sqlite_databases` as `databases`.
            sqlite_databases: strings("databases")?,
            ai_models: strings("ai_models")?,
            build: None,
            dependencies: None,
            dependencies_inherit_configuration: None,
            tool: BTreeMap::new(),
        })
    }
}

/// The local path of a `file://` reference.
fn file_path(content: &ContentRef) -> Result<PathBuf, String> {
    match (&content.source, &content.inline) {
        (Some(url), _) => url
            .strip_prefix("file://")
            .map(PathBuf::from)
            .ok_or_else(|| {
                format!("`{url}` is not a file:// URL (this host reads local files only)")
            }),
        (None, Some(_)) => Err("inline content is not supported".into()),
        (None, None) => Err("no source".into()),
    }
}

fn json_to_table(value: Value) -> Result<toml::Table, String> {
    match toml::Value::try_from(value).map_err(|e| e.to_string())? {
        toml::Value::Table(table) => Ok(table),
        other => Err(format!("expected a table, found {}", other.type_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Spin 4.0.2 wrote for this repository's spin.toml (tests/fixtures).
    const RECORDED: &str = include_str!("../../../tests/fixtures/spin-4.0.2-locked-app.json");

    fn recorded() -> Manifest {
        LockedApp::parse(RECORDED)
            .unwrap()
            .into_manifest(Path::new("/srv/spinup-work"))
            .unwrap()
    }

    #[test]
    fn a_lock_recorded_from_spin_becomes_the_same_model_as_spin_toml() {
        let m = recorded();
        m.validate().unwrap();
        assert_eq!(m.application.name, "mart");
        let orders = &m.component["orders"];
        assert_eq!(
            orders.source,
            "/srv/mart/target/wasm32-wasip2/wasm/orders.wasm"
        );
        assert!(orders
            .allowed_outbound_hosts
            .contains(&"http://catalog.spin.internal".to_string()));
        assert_eq!(
            orders.variables["db_url"],
            "postgres://{{ pg_user }}:{{ pg_password }}@{{ pg_host }}:{{ pg_port }}/orders"
        );
        assert_eq!(
            m.component["docs"].files,
            vec![FileMount::Mapping {
                source: "assets/docs".into(),
                destination: "/".into()
            }]
        );
        assert_eq!(
            m.component["openapi"].environment["DEFAULT_FILE"],
            "openapi.json"
        );
        assert!(m.variables["jwt_public_key"].required);
        assert!(m.variables["jwt_private_key"].secret);
        assert_eq!(m.variables["pg_port"].default.as_deref(), Some("5432"));
        assert_eq!(m.kafka_triggers().unwrap().len(), 5);
        let timers = m.timer_triggers().unwrap();
        assert_eq!(timers[0].component, "orders-expiry");
        assert!(m
            .trigger
            .http
            .iter()
            .any(|t| t.id.as_deref() == Some("catalog-http-trigger")));
    }

    #[test]
    fn what_the_host_cannot_honour_is_refused_by_name() {
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut v: Value = serde_json::from_str(RECORDED).unwrap();
            edit(&mut v);
            LockedApp::parse(&v.to_string())
                .unwrap()
                .into_manifest(Path::new("/srv/spinup-work"))
                .unwrap_err()
        };
        let err = with(&|v| v["must_understand"] = serde_json::json!(["time_travel"]));
        assert!(err.contains("time_travel"), "{err}");
        let err = with(&|v| {
            v["components"][0]["host_requirements"] = serde_json::json!({"gpu": "required"})
        });
        assert!(err.contains("gpu"), "{err}");
        let err =
            with(&|v| v["components"][0]["source"]["source"] = "https://example.com/a.wasm".into());
        assert!(err.contains("not a file:// URL"), "{err}");
        let err = with(&|v| v["spin_lock_version"] = 2.into());
        assert!(err.contains("spin_lock_version 2"), "{err}");
        // Files must stay inside the folder Spin staged them in.
        let err = LockedApp::parse(RECORDED)
            .unwrap()
            .into_manifest(Path::new("/elsewhere"))
            .unwrap_err();
        assert!(err.contains("outside the app folder"), "{err}");
    }

    #[test]
    fn optional_host_requirements_never_block() {
        let mut v: Value = serde_json::from_str(RECORDED).unwrap();
        v["host_requirements"] = serde_json::json!({"gpu": "optional"});
        LockedApp::parse(&v.to_string())
            .unwrap()
            .into_manifest(Path::new("/srv/spinup-work"))
            .unwrap();
    }
}
