//! Settings every entry point reads the same way: the runtime config, the
//! variable providers, the Kafka client and the compile cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use mart_manifest::{App, RuntimeConfig, VariablesProvider};
use mart_runtime::HostPart;
use mart_variables::{EnvProvider, Resolver};

/// The runtime config at `path`, or the empty one.
pub fn runtime_config(path: Option<&Path>) -> anyhow::Result<RuntimeConfig> {
    let config = match path {
        Some(path) => RuntimeConfig::load(path)?,
        None => RuntimeConfig::default(),
    };
    for key in &config.ignored {
        tracing::warn!(key = %key, "runtime config: a Spin feature Mart's host does not provide; ignored");
    }
    Ok(config)
}

/// The app's variables: `--variable` values first (Spin's static provider),
/// then the providers of the runtime config (read from `config_path`) in
/// its order, then Spin's default environment provider.
pub fn resolver(
    app: &App,
    config: &RuntimeConfig,
    config_path: Option<&Path>,
    cli_variables: &[String],
) -> anyhow::Result<Resolver> {
    let mut providers = vec![EnvProvider::with_values(
        cli_variables
            .iter()
            .map(|v| parse_variable_flag(v))
            .collect::<anyhow::Result<Vec<_>>>()?,
    )];
    for provider in &config.variables_provider {
        match provider {
            VariablesProvider::Env {
                prefix,
                dotenv_path,
            } => {
                let mut vars: Vec<(String, String)> = std::env::vars().collect();
                if let Some(dotenv) = dotenv_path {
                    let base = config_path
                        .and_then(|p| p.parent())
                        .unwrap_or(Path::new("."));
                    vars.extend(read_dotenv(&base.join(dotenv))?);
                }
                providers.push(EnvProvider::new(prefix.as_deref(), vars));
            }
            VariablesProvider::Vault {
                url,
                token,
                mount,
                prefix,
            } => {
                let settings = mart_variables::VaultSettings {
                    url: url.clone(),
                    token: token.clone(),
                    mount: mount.clone(),
                    prefix: prefix.clone(),
                };
                let names = app.manifest.variables.keys().map(String::as_str);
                let values = mart_variables::read_vault(&settings, names)?;
                providers.push(EnvProvider::with_values(values));
            }
            VariablesProvider::AzureKeyVault { .. } => anyhow::bail!(
                "runtime config: variables_provider `azure_key_vault` is not provided by Mart's \
                 host (`env` and `vault` are); pass secrets as SPIN_VARIABLE_<NAME> or \
                 --variable, or run the app under Spin"
            ),
        }
    }
    // Spin's default provider, always last: SPIN_VARIABLE_<NAME>, then a
    // `.env` file in the working directory for names the environment lacks
    // (Spin 4: crates/variables-env).
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    let dotenv = Path::new(".env");
    if dotenv.is_file() {
        vars.extend(read_dotenv(dotenv)?);
    }
    providers.push(EnvProvider::new(None, vars));
    Ok(Resolver::new(app.manifest.variables.clone(), providers))
}

/// Spin's built-in interfaces beyond PostgreSQL and variables, as host
/// parts: key-value and SQLite with the stores and databases of `config`,
/// outbound Redis and MQTT. The `default` store and database live in the
/// state directory: `state_dir_flag`, then `state_dir` in `config`, then
/// `.spin` in a local app's `app_dir`, else memory. Fails, as Spin does, if
/// a component lists a store or database nothing defines.
pub fn spin_parts(
    app: &App,
    config: &RuntimeConfig,
    state_dir_flag: Option<&str>,
    app_dir: Option<&Path>,
) -> anyhow::Result<Vec<Arc<dyn HostPart>>> {
    let state_dir = config.state_dir(state_dir_flag, app_dir);
    let stores = mart_key_value::Stores::resolve(app, config, state_dir.as_deref())?;
    let databases = mart_sqlite::Databases::resolve(app, config, state_dir.as_deref())?;
    Ok(vec![
        Arc::new(mart_key_value::KeyValuePart::new(stores)),
        Arc::new(mart_sqlite::SqlitePart::new(databases)),
        Arc::new(mart_outbound_redis::RedisPart),
        Arc::new(mart_outbound_mqtt::MqttPart),
    ])
}

/// One `--variable` as Spin reads it: `name=value`, or `name=@file` for a
/// file's contents.
fn parse_variable_flag(flag: &str) -> anyhow::Result<(String, String)> {
    let (name, value) = flag
        .split_once('=')
        .with_context(|| format!("--variable `{flag}`: expected name=value or name=@file"))?;
    let value = match value.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("--variable {name}: reading {file}"))?,
        None => value.to_string(),
    };
    Ok((name.trim().to_ascii_lowercase(), value))
}

/// `KEY=value` lines; the process environment wins over the file.
fn read_dotenv(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| std::env::var_os(k.trim()).is_none())
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect())
}

/// The Kafka trigger's settings: `[application.trigger.kafka]` with its
/// `{{ variable }}` templates rendered; `brokers_override` (the
/// `--kafka-brokers` flag or `MART_KAFKA_BROKERS`) wins over `brokers`;
/// the host's own identity (`host_identity`) over the manifest's.
/// `None` when no brokers are configured.
pub fn kafka_client(
    app: &App,
    brokers_override: Option<String>,
    resolver: &Resolver,
) -> anyhow::Result<Option<mart_kafka::KafkaClient>> {
    let render_setting = |value: Option<String>, key: &str| -> anyhow::Result<Option<String>> {
        value
            .map(|v| {
                render(resolver, &v).with_context(|| format!("[application.trigger.kafka] {key}"))
            })
            .transpose()
    };
    let mut kafka = app.manifest.kafka_config().map_err(anyhow::Error::msg)?;
    kafka.brokers = match brokers_override {
        Some(b) => Some(b),
        None => render_setting(kafka.brokers, "brokers")?,
    };
    kafka.security_protocol = render_setting(kafka.security_protocol, "security_protocol")?;
    kafka.sasl_mechanism = render_setting(kafka.sasl_mechanism, "sasl_mechanism")?;
    kafka.sasl_username = render_setting(kafka.sasl_username, "sasl_username")?;
    kafka.sasl_password = render_setting(kafka.sasl_password, "sasl_password")?;
    host_identity(&mut kafka, |name| std::env::var(name).ok());
    if let Some(outbox) = kafka.outbox.as_mut() {
        outbox.server = render(resolver, &outbox.server)
            .context("[application.trigger.kafka] outbox.server")?;
        crate::events::check_outbox_formats(outbox)?;
    }
    Ok(mart_kafka::KafkaClient::new(kafka))
}

/// Who this host is to the brokers, which is a deployment's business, not
/// the app's: each workload logs in as its own Kafka user (its ACLs say
/// which topics it may write), so the login comes from the host's
/// environment, as `MART_KAFKA_INSTANCE_ID` (static membership) does, and
/// wins over the manifest. `MART_KAFKA_SECURITY_PROTOCOL`,
/// `MART_KAFKA_SASL_MECHANISM`, `MART_KAFKA_SASL_USERNAME`,
/// `MART_KAFKA_SASL_PASSWORD`, and `MART_KAFKA_SSL_CA_LOCATION` (the CA that
/// signed the brokers' certificates). Unset or empty leaves the setting as
/// it was.
fn host_identity(kafka: &mut mart_manifest::KafkaConfig, env: impl Fn(&str) -> Option<String>) {
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let overrides = [
        ("MART_KAFKA_SECURITY_PROTOCOL", &mut kafka.security_protocol),
        ("MART_KAFKA_SASL_MECHANISM", &mut kafka.sasl_mechanism),
        ("MART_KAFKA_SASL_USERNAME", &mut kafka.sasl_username),
        ("MART_KAFKA_SASL_PASSWORD", &mut kafka.sasl_password),
        ("MART_KAFKA_INSTANCE_ID", &mut kafka.instance_id),
    ];
    for (name, setting) in overrides {
        if let Some(value) = env(name) {
            *setting = Some(value);
        }
    }
    if let Some(ca) = env("MART_KAFKA_SSL_CA_LOCATION") {
        kafka.properties.insert("ssl.ca.location".into(), ca);
    }
}

/// A `{{ variable }}` template rendered with the app's variables.
pub fn render(resolver: &Resolver, text: &str) -> anyhow::Result<String> {
    let template = mart_variables::Template::parse(text)?;
    Ok(resolver.render(&template)?)
}

/// Where compiled components are cached: `dir`, or `~/.cache/mart/wasmtime`;
/// `None` turns the cache off.
pub fn cache_dir(enabled: bool, dir: Option<PathBuf>) -> Option<PathBuf> {
    if !enabled {
        return None;
    }
    dir.or_else(|| {
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/mart/wasmtime"))
    })
}

/// Logs to stderr, as text or one JSON object per line; `RUST_LOG` filters.
///
/// Lines are written by a thread of their own: a request formats its log
/// line and queues it, and never waits for a write to stderr (a pipe to a
/// container runtime can be slow). The queue holds 128,000 lines; only a
/// writer that far behind makes callers wait, so no line is lost. Keep the
/// returned guard until the process ends: dropping it flushes the queue.
#[must_use = "dropping the guard stops the log writer"]
pub fn init_logging(json: bool) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")
    });
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    guard
}

/// Resolves on SIGINT or SIGTERM (Spin stops its trigger processes with either).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_kafka_login_comes_from_its_environment_over_the_manifest() {
        let mut kafka = mart_manifest::KafkaConfig {
            security_protocol: Some("plaintext".into()),
            sasl_username: Some("from-the-manifest".into()),
            ..Default::default()
        };
        let env = [
            ("MART_KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("MART_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("MART_KAFKA_SASL_USERNAME", "mart-payments-events"),
            ("MART_KAFKA_SASL_PASSWORD", "s3cret"),
            ("MART_KAFKA_SSL_CA_LOCATION", "/etc/kafka-ca/ca.crt"),
            ("MART_KAFKA_INSTANCE_ID", " "),
        ];
        host_identity(&mut kafka, |name| {
            env.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        });
        assert_eq!(kafka.security_protocol.as_deref(), Some("sasl_ssl"));
        assert_eq!(kafka.sasl_mechanism.as_deref(), Some("SCRAM-SHA-512"));
        assert_eq!(kafka.sasl_username.as_deref(), Some("mart-payments-events"));
        assert_eq!(kafka.sasl_password.as_deref(), Some("s3cret"));
        assert_eq!(kafka.properties["ssl.ca.location"], "/etc/kafka-ca/ca.crt");
        assert_eq!(kafka.instance_id, None, "blank is unset");

        let mut untouched = mart_manifest::KafkaConfig {
            sasl_username: Some("from-the-manifest".into()),
            ..Default::default()
        };
        host_identity(&mut untouched, |_| None);
        assert_eq!(
            untouched.sasl_username.as_deref(),
            Some("from-the-manifest")
        );
        assert!(untouched.properties.is_empty());
    }

    #[test]
    fn variable_flags_read_as_spin_reads_them() {
        assert_eq!(
            parse_variable_flag("Kafka_Brokers=b:9092,c:9092").unwrap(),
            ("kafka_brokers".into(), "b:9092,c:9092".into())
        );
        let file = std::env::temp_dir().join(format!("mart-var-{}", std::process::id()));
        std::fs::write(&file, "-----BEGIN KEY-----").unwrap();
        let (_, value) =
            parse_variable_flag(&format!("jwt_public_key=@{}", file.display())).unwrap();
        assert_eq!(value, "-----BEGIN KEY-----");
        std::fs::remove_file(&file).unwrap();
        let err = parse_variable_flag("no_value").unwrap_err().to_string();
        assert!(err.contains("expected name=value"), "{err}");
    }
}
