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
    #[error("Vault at {url}: {reason}")]
    Address { url: String, reason: String },
    #[error("Vault at {url}: reading `{path}`: {reason}")]
    Read {
        url: String,
        path: String,
        reason: String,
    },
}

/// The values Vault holds for `names`; a name Vault has no secret for is
/// left to the next provider, as in Spin. Any other failure (refused
/// token, unreachable server, a redirect) is an error: the app must not
/// start with a secret silently taken from elsewhere.
///
/// The token goes only where the settings say: over https (plain http only
/// to this machine, where nothing is on the wire), and never after a
/// redirect, which could hand it to any server.
pub fn read_vault<'a>(
    settings: &VaultSettings,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<(String, String)>, VaultError> {
    check_vault_url(&settings.url)?;
    let agent = ureq::AgentBuilder::new()
        .timeout(TIMEOUT)
        .redirects(0)
        .build();
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

/// Refuses a Vault address that would send the token in clear over a
/// network: `https://`, or `http://` to a loopback address only.
fn check_vault_url(address: &str) -> Result<(), VaultError> {
    let refuse = |reason: &str| VaultError::Address {
        url: address.to_string(),
        reason: reason.to_string(),
    };
    let url = url::Url::parse(address).map_err(|e| refuse(&e.to_string()))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err(refuse(
            "plain http sends the token in clear; use https (http only to a loopback address)",
        )),
        other => Err(refuse(&format!("`{other}` is not http or https"))),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
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
        Ok(response) if (300..400).contains(&response.status()) => {
            return Err(fail(format!(
                "Vault answered {} (a redirect to `{}`), which is not followed: the token \
                 would go with it; set `url` to the address that answers",
                response.status(),
                response.header("location").unwrap_or_default()
            )))
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_over_https_or_to_this_machine_only() {
        for allowed in [
            "https://vault.example.com:8200",
            "http://127.0.0.1:8200",
            "http://[::1]:8200",
            "http://localhost:8200",
        ] {
            assert!(check_vault_url(allowed).is_ok(), "{allowed}");
        }
        for refused in [
            "http://vault.example.com:8200",
            "http://10.0.0.5:8200",
            "http://127.0.0.1.nip.io:8200",
            "ftp://127.0.0.1",
            "not a url",
        ] {
            assert!(check_vault_url(refused).is_err(), "{refused}");
        }
    }
}
