use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ManifestError;

/// Every top-level key Fermyon Spin 4's runtime config understands (read
/// from Spin 4.0.2: `crates/runtime-config/src/lib.rs` and each factor's
/// runtime-config parser). Spin refuses a file with any other key
/// ("unused runtime config key(s)"), so `mart up` refuses it too: a file
/// that works here must work under `spin up`.
pub const SPIN_RUNTIME_CONFIG_KEYS: &[&str] = &[
    "state_dir",
    "log_dir",
    "max_instance_memory",
    "variables_provider",
    "config_provider",
    "key_value_store",
    "sqlite_database",
    "llm_compute",
    "outbound_http",
    "outbound_networking",
    "client_tls",
];

/// `runtime-config.toml`: where the app's resources live for this deployment.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Spin's variable providers. The environment provider (`SPIN_VARIABLE_*`)
    /// is always present; more may be listed here.
    pub variables_provider: Vec<VariablesProvider>,
    /// `[key_value_store.<label>]`: where each key-value store lives.
    pub key_value_store: BTreeMap<String, Backend>,
    /// `[sqlite_database.<label>]`: where each SQLite database lives.
    pub sqlite_database: BTreeMap<String, Backend>,
    /// `state_dir`, where the `default` store and database live (`""`
    /// keeps them in memory, as Spin's).
    pub state_dir: Option<String>,
    /// The directory of the file: Spin resolves key-value stores' relative
    /// paths against it.
    pub dir: Option<PathBuf>,
    /// Keys Spin knows that Mart's host does not act on (reported at start).
    pub ignored: Vec<String>,
}

/// One labelled resource: its `type` and that type's settings, read by
/// the host part that provides the interface.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Backend {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub settings: toml::Table,
}

impl Backend {
    /// The settings as the backend's own type; errors name the field.
    pub fn settings<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        toml::Value::Table(self.settings.clone())
            .try_into()
            .map_err(|e: toml::de::Error| e.message().to_string())
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum VariablesProvider {
    /// Environment variables `<PREFIX>_<NAME>`; `prefix` defaults to `SPIN_VARIABLE`.
    Env {
        #[serde(default)]
        prefix: Option<String>,
        /// A dotenv file read at start, relative to the runtime config.
        #[serde(default)]
        dotenv_path: Option<String>,
    },
    /// HashiCorp Vault's KV v2 secrets engine (Spin's `vault` provider).
    Vault {
        url: String,
        token: String,
        mount: String,
        #[serde(default)]
        prefix: Option<String>,
    },
    /// Azure Key Vault (Spin's `azure_key_vault` provider).
    AzureKeyVault {
        vault_url: String,
        #[serde(default)]
        client_id: Option<String>,
        #[serde(default)]
        client_secret: Option<String>,
        #[serde(default)]
        tenant_id: Option<String>,
        #[serde(default)]
        authority_host: Option<String>,
    },
}

impl RuntimeConfig {
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Self::parse(&text).map_err(|message| ManifestError::Parse {
            path: path.display().to_string(),
            message,
        })?;
        config.dir = Some(
            std::path::absolute(path)
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .unwrap_or_default(),
        );
        Ok(config)
    }

    /// Reads the file as Spin does: unknown keys are an error; Spin reads
    /// `config_provider` (the old name) only when `variables_provider` is
    /// absent, and refuses the file when both are present.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        if table.contains_key("variables_provider") && table.contains_key("config_provider") {
            return Err("unused runtime config key(s): config_provider".into());
        }
        let mut unknown: Vec<&str> = table
            .keys()
            .map(String::as_str)
            .filter(|k| !SPIN_RUNTIME_CONFIG_KEYS.contains(k))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(format!(
                "unused runtime config key(s): {} (Fermyon Spin 4 refuses keys it does not know)",
                unknown.join(", ")
            ));
        }
        if table.contains_key("llm_compute") {
            return Err("llm_compute: Mart's host runs no language models (Spin's \
                        fermyon:spin/llm); remove the section, or run the app under Spin"
                .into());
        }
        let providers_key = if table.contains_key("variables_provider") {
            "variables_provider"
        } else {
            "config_provider"
        };
        let providers = take(&mut table, providers_key)?.unwrap_or_default();
        let state_dir = take(&mut table, "state_dir")?;
        Ok(Self {
            variables_provider: providers,
            key_value_store: take(&mut table, "key_value_store")?.unwrap_or_default(),
            sqlite_database: take(&mut table, "sqlite_database")?.unwrap_or_default(),
            state_dir,
            dir: None,
            // What is left configures what Mart's host does not act on
            // (logs, memory, TLS and networking settings).
            ignored: table.keys().cloned().collect(),
        })
    }

    /// Where the `default` key-value store and SQLite database live, as
    /// Spin decides it: `flag` (`--state-dir`) first, then `state_dir` in
    /// this file, then `.spin` in a local app's directory; an empty value,
    /// or an app with no local directory, keeps them in memory (`None`).
    pub fn state_dir(&self, flag: Option<&str>, app_dir: Option<&Path>) -> Option<PathBuf> {
        match flag.or(self.state_dir.as_deref()) {
            Some("") => None,
            Some(dir) => Some(std::path::absolute(dir).unwrap_or_else(|_| dir.into())),
            None => app_dir.map(|dir| dir.join(".spin")),
        }
    }
}

/// Removes `key` from `table` and reads it as a `T`; errors name the key.
fn take<T: serde::de::DeserializeOwned>(
    table: &mut toml::Table,
    key: &str,
) -> Result<Option<T>, String> {
    table
        .remove(key)
        .map(|value| value.try_into())
        .transpose()
        .map_err(|e: toml::de::Error| format!("{key}: {}", e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_env_provider() {
        let rc = RuntimeConfig::parse(
            r#"
[[variables_provider]]
type = "env"
prefix = "MART"
"#,
        )
        .unwrap();
        assert_eq!(
            rc.variables_provider,
            vec![VariablesProvider::Env {
                prefix: Some("MART".into()),
                dotenv_path: None
            }]
        );
    }

    #[test]
    fn empty_config_is_valid() {
        let rc = RuntimeConfig::parse("").unwrap();
        assert!(rc.variables_provider.is_empty());
    }

    #[test]
    fn keys_spin_does_not_know_are_refused_as_spin_refuses_them() {
        let err = RuntimeConfig::parse("[kafka]\nbrokers = \"b:9092\"\n[mart]\n").unwrap_err();
        assert!(
            err.contains("unused runtime config key(s): kafka, mart"),
            "{err}"
        );
        let both = "[[variables_provider]]\ntype = \"env\"\n[[config_provider]]\ntype = \"env\"\n";
        assert!(RuntimeConfig::parse(both)
            .unwrap_err()
            .contains("config_provider"));
    }

    #[test]
    fn spin_keys_mart_does_not_act_on_are_reported_not_refused() {
        let rc = RuntimeConfig::parse(
            "client_tls = []\n[[config_provider]]\ntype = \"env\"\nprefix = \"OLD\"\n",
        )
        .unwrap();
        assert_eq!(rc.ignored, ["client_tls"]);
        assert_eq!(rc.variables_provider.len(), 1, "the old name is still read");
    }

    #[test]
    fn labelled_stores_and_databases_keep_their_type_and_settings() {
        let rc = RuntimeConfig::parse(
            r#"
state_dir = "/var/lib/app"
[key_value_store.default]
type = "redis"
url = "redis://127.0.0.1:6379"
[key_value_store.cache]
type = "spin"
path = "cache.db"
[sqlite_database.orders]
type = "spin"
path = "orders.db"
"#,
        )
        .unwrap();
        assert_eq!(rc.key_value_store["default"].kind, "redis");
        assert_eq!(
            rc.key_value_store["cache"].settings["path"].as_str(),
            Some("cache.db")
        );
        assert_eq!(rc.sqlite_database["orders"].kind, "spin");
        assert!(rc.ignored.is_empty());
        let app = Some(Path::new("/srv/app"));
        assert_eq!(rc.state_dir(None, app), Some("/var/lib/app".into()));
        assert_eq!(
            rc.state_dir(Some(""), app),
            None,
            "an empty flag keeps state in memory"
        );
        assert_eq!(
            RuntimeConfig::default().state_dir(None, app),
            Some("/srv/app/.spin".into()),
            "Spin's default: .spin beside the manifest"
        );
        assert_eq!(
            RuntimeConfig::default().state_dir(None, None),
            None,
            "a remote app's state is in memory"
        );
    }

    #[test]
    fn llm_compute_is_refused_with_the_reason() {
        let err = RuntimeConfig::parse("[llm_compute]\ntype = \"spin\"\n").unwrap_err();
        assert!(err.contains("runs no language models"), "{err}");
    }

    /// The repository's own runtime config must start under `spin up`.
    #[test]
    fn the_repositorys_runtime_config_is_one_spin_accepts() {
        let text = include_str!("../../../runtime-config.toml");
        let rc = RuntimeConfig::parse(text).unwrap();
        assert!(rc.ignored.is_empty());
    }
}
