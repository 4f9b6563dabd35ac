use std::path::Path;

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
    /// Keys Spin knows that Mart's host does not act on (reported at start).
    pub ignored: Vec<String>,
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
}

impl RuntimeConfig {
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ManifestError::Parse {
            path: path.display().to_string(),
            message,
        })
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
        let providers = table
            .remove("variables_provider")
            .or_else(|| table.remove("config_provider"))
            .map(|v| v.try_into())
            .transpose()
            .map_err(|e: toml::de::Error| format!("variables_provider: {}", e.message()))?
            .unwrap_or_default();
        // What is left configures what Mart's host does not provide yet
        // (key-value, SQLite, LLM, TLS and networking settings).
        Ok(Self {
            variables_provider: providers,
            ignored: table.keys().cloned().collect(),
        })
    }
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
            "[key_value_store.default]\ntype = \"spin\"\n[[config_provider]]\ntype = \"env\"\nprefix = \"OLD\"\n",
        )
        .unwrap();
        assert_eq!(rc.ignored, ["key_value_store"]);
        assert_eq!(rc.variables_provider.len(), 1, "the old name is still read");
    }

    /// The repository's own runtime config must start under `spin up`.
    #[test]
    fn the_repositorys_runtime_config_is_one_spin_accepts() {
        let text = include_str!("../../../runtime-config.toml");
        let rc = RuntimeConfig::parse(text).unwrap();
        assert!(rc.ignored.is_empty());
    }
}
