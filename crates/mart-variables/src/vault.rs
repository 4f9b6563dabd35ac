//! Spin's `vault` variables provider: HashiCorp Vault's KV v2 secrets
//! engine, one secret per variable at `<mount>/<prefix>/<name>`, its value
//! under the key `value` (Spin 4.0.2: `crates/variables-vault`).
//!
//! Spin reads Vault on every `get`; Mart's host resolves every variable
//! once at start (see resolver.rs), so the values are read then, and a
//! secret changed in Vault is seen at the next start.

use std::time::Duration;

/// Connect, read and write timeouts of each request to Vault.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Where the secrets live.
#[derive(Debug, Clone)]
pub struct VaultSettings {
    pub url: String,
    pub token: String,
    pub mount: String,
    pub prefix: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("Vault at {url}: reading `{path}`: {reason}")]
    Read {
        url: String,
        path: String,
        reason: String,
    },
}

/// The values Vault holds for `names`; a name Vault has no secret for is
/// left to the next provider, as in Spin. Any other failure (refused
/// token, unreachable server) is an error: the app must not start with a
/// secret silently taken from elsewhere.
pub fn read_vault<'a>(
    settings: &VaultSettings,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<(String, String)>, VaultError> {
    let agent = ureq::AgentBuilder::new().timeout(TIMEOUT).build();
    let mut values = Vec::new();
    for name in names {
        let path = match &settings.prefix {
            Some(prefix) => format!("{}/{name}", prefix.trim_matches('/')),
            None => name.to_string(),
        };
        if let Some(value) = read_secret(&agent, settings, &path)? {
            values.push((name.to_string(), value));
        }
    }
    Ok(values)
}

fn read_secret(
    agent: &ureq::Agent,
    settings: &VaultSettings,
    path: &str,
) -> Result<Option<String>, VaultError> {
    let fail = |reason: String| VaultError::Read {
        url: settings.url.clone(),
        path: path.to_string(),
        reason,
    };
    let url = format!(
        "{}/v1/{}/data/{path}",
        settings.url.trim_end_matches('/'),
        settings.mount.trim_matches('/')
    );
    let response = match agent.get(&url).set("X-Vault-Token", &settings.token).call() {
        Ok(response) => response,
        Err(ureq::Error::Status(404, _)) => return Ok(None),
        Err(ureq::Error::Status(status, _)) => {
            return Err(fail(format!("Vault answered {status}")))
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    let body: serde_json::Value = response
        .into_json()
        .map_err(|e| fail(format!("not JSON: {e}")))?;
    match body.pointer("/data/data/value") {
        Some(serde_json::Value::String(value)) => Ok(Some(value.clone())),
        _ => Err(fail("the secret has no string `value`".into())),
    }
}
