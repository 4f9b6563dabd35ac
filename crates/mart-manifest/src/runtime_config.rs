use std::path::Path;

use serde::Deserialize;

use crate::ManifestError;

/// `runtime-config.toml`: where the app's resources live for this deployment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Spin's variable providers. The environment provider (`SPIN_VARIABLE_*`)
    /// is always present; more may be listed here.
    #[serde(default, alias = "config_provider")]
    pub variables_provider: Vec<VariablesProvider>,
    /// Brokers for Mart's Kafka trigger, outbox relay and producer (`[kafka]`).
    #[serde(default)]
    pub kafka: crate::KafkaConfig,
    /// Mart's own settings for the host (`[mart]`).
    #[serde(default)]
    pub mart: toml::Table,
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
        toml::from_str(&text).map_err(|e| ManifestError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_env_provider() {
        let rc: RuntimeConfig = toml::from_str(
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
        let rc: RuntimeConfig = toml::from_str("").unwrap();
        assert!(rc.variables_provider.is_empty());
    }
}
