//! Mart's triggers as Fermyon Spin trigger plugins (`trigger-kafka`,
//! `trigger-timer`).
//!
//! `spin up` runs every trigger type it has no built-in for as a plugin
//! process named `trigger-<type>` (Spin 4: `src/commands/up.rs`). The
//! protocol, as Spin's `crates/trigger/src/cli.rs` implements it for its own
//! triggers (Spin's crates are not on crates.io, so it is implemented here):
//! - `--launch-metadata-only`: print `{"all_flags":[{"long":..,"short":..}]}`
//!   on **stderr** and exit. Spin asks every trigger of a multi-trigger app
//!   first, then forwards to each only the `spin up` flags it declared.
//! - `--help-args-only`: print the flags' help (for `spin up --help`).
//! - otherwise run the app in the lock file named by `SPIN_LOCKED_URL`
//!   (`file://`), with `SPIN_WORKING_DIR` (where Spin staged `files`) and
//!   `SPIN_LOCAL_APP_DIR`, until SIGINT or SIGTERM.
//!
//! Everything comes from the lock (sources, files, variables, allowed hosts,
//! trigger tables, `[application.trigger.<type>]`), never from re-reading
//! spin.toml, so a plugin runs exactly the app Spin resolved.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{CommandFactory, Parser};
use mart_manifest::App;
use mart_runtime::{Runtime, RuntimeOptions};
use serde::Serialize;

use crate::config;
use crate::events::{EventOptions, Events};

/// Which of Mart's triggers this plugin process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerType {
    Kafka,
    Timer,
}

impl TriggerType {
    pub fn name(self) -> &'static str {
        match self {
            TriggerType::Kafka => "kafka",
            TriggerType::Timer => "timer",
        }
    }
}

/// The flags a Mart trigger plugin accepts: the ones of Spin's common trigger
/// flags it honours, and the two Spin uses to query a trigger. Only declared
/// flags are forwarded by `spin up` (launch metadata), so none is declared
/// that the plugin would ignore.
#[derive(Debug, Parser)]
#[command(about = "Mart's trigger for Fermyon Spin (run by `spin up`)", version)]
pub struct PluginArgs {
    /// Configuration file for config providers (Spin's runtime config).
    #[arg(long = "runtime-config-file", env = "RUNTIME_CONFIG_FILE")]
    pub runtime_config_file: Option<PathBuf>,
    /// The application state directory (Spin's `--state-dir`): where the
    /// `default` key-value store and SQLite database live, as under `spin
    /// up` ("" keeps them in memory). The triggers' own state (offsets)
    /// lives in the broker.
    #[arg(long = "state-dir")]
    pub state_dir: Option<String>,
    /// An application variable, `name=value` or `name=@file` (Spin's
    /// `--variable`); wins over every other provider.
    #[arg(long = "variable", value_name = "NAME=VALUE")]
    pub variables: Vec<String>,
    /// Do not cache compiled components on disk (`~/.cache/mart/wasmtime`).
    #[arg(long = "disable-cache", env = "DISABLE_WASMTIME_CACHE")]
    pub disable_cache: bool,
    #[arg(long = "help-args-only", hide = true)]
    pub help_args_only: bool,
    #[arg(long = "launch-metadata-only", hide = true)]
    pub launch_metadata_only: bool,
}

/// What `--launch-metadata-only` prints (Spin's `LaunchMetadata`).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct LaunchMetadata {
    pub all_flags: Vec<LaunchFlag>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct LaunchFlag {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub short: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub long: Option<String>,
}

impl LaunchMetadata {
    /// Every named flag of [`PluginArgs`], as Spin infers it for its triggers.
    pub fn of_plugin() -> Self {
        let all_flags = PluginArgs::command()
            .get_arguments()
            .filter(|a| !a.is_positional())
            .map(|a| LaunchFlag {
                short: a.get_short().map(|c| format!("-{c}")),
                long: a.get_long().map(|l| format!("--{l}")),
            })
            .collect();
        Self { all_flags }
    }
}

/// The environment `spin up` gives a trigger process.
#[derive(Debug)]
pub struct SpinEnvironment {
    pub locked_file: PathBuf,
    pub working_dir: PathBuf,
    /// The app's directory, for a local app (Spin's state directory
    /// defaults to `.spin` in it).
    pub local_app_dir: Option<PathBuf>,
}

impl SpinEnvironment {
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| {
            std::env::var(name).with_context(|| {
                format!("{name} is not set: this plugin is started by `spin up`, not by hand")
            })
        };
        let locked_url = var("SPIN_LOCKED_URL")?;
        let locked_file = url::Url::parse(&locked_url)
            .ok()
            .filter(|u| u.scheme() == "file")
            .and_then(|u| u.to_file_path().ok())
            .with_context(|| format!("SPIN_LOCKED_URL `{locked_url}` is not a file:// URL"))?;
        Ok(Self {
            locked_file,
            working_dir: PathBuf::from(var("SPIN_WORKING_DIR")?),
            local_app_dir: std::env::var_os("SPIN_LOCAL_APP_DIR").map(PathBuf::from),
        })
    }
}

/// The plugin's `main`: answers Spin's queries or runs the trigger.
pub fn main(trigger: TriggerType) -> std::process::ExitCode {
    let args = PluginArgs::parse();
    if args.launch_metadata_only {
        let json = serde_json::to_string_pretty(&LaunchMetadata::of_plugin())
            .expect("launch metadata serialises");
        eprintln!("{json}");
        return std::process::ExitCode::SUCCESS;
    }
    if args.help_args_only {
        let mut command = PluginArgs::command()
            .disable_help_flag(true)
            .help_template("{all-args}");
        return match command.print_long_help() {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(_) => std::process::ExitCode::FAILURE,
        };
    }
    let _log_writer =
        config::init_logging(std::env::var("MART_LOG_FORMAT").is_ok_and(|f| f == "json"));
    // Spin hands its environment to the plugin: the same OTEL_* variables
    // that make `spin up` export traces make its triggers export theirs.
    let result = mart_telemetry::init_from_env().and_then(|_span_export| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(run(trigger, args)))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: trigger-{}: {e:#}", trigger.name());
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(trigger: TriggerType, args: PluginArgs) -> anyhow::Result<()> {
    let spin = SpinEnvironment::from_env()?;
    let app = load_app(trigger, &spin.locked_file, &spin.working_dir)?;
    let config_path = args.runtime_config_file.as_deref();
    let runtime_config = config::runtime_config(config_path)?;
    let resolver = config::resolver(&app, &runtime_config, config_path, &args.variables)?;
    // Components run by either trigger may publish through mart:kafka, and
    // use Spin's key-value store and SQLite database beside `spin up`'s
    // HTTP trigger (the same files, in the same state directory).
    let producer = Arc::new(mart_kafka::ProducerPart::new(&app)?);
    let mut parts = config::spin_parts(
        &app,
        &runtime_config,
        args.state_dir.as_deref(),
        spin.local_app_dir.as_deref(),
    )?;
    parts.push(producer.clone());
    let options = RuntimeOptions {
        cache_dir: config::cache_dir(!args.disable_cache, None),
        parts,
        ..RuntimeOptions::default()
    };
    let runtime = Arc::new(Runtime::load(&app, &resolver, &options)?);
    match trigger {
        TriggerType::Kafka => {
            let kafka =
                config::kafka_client(&app, std::env::var("MART_KAFKA_BROKERS").ok(), &resolver)?;
            let events = Events::start(
                &app,
                &runtime,
                kafka.as_ref(),
                &producer,
                &EventOptions {
                    relay: true,
                    retention: std::time::Duration::from_secs(
                        crate::events::DEFAULT_RETENTION_HOURS * 3600,
                    ),
                },
            )
            .await?;
            events.print();
            config::shutdown_signal().await;
            events.shutdown().await;
        }
        TriggerType::Timer => {
            let timers = mart_trigger_timer::TimerTriggers::start(&app, runtime, &resolver)?;
            for (component, every) in &timers.timers {
                eprintln!("Timer: {component} every {} s", every.as_secs());
            }
            config::shutdown_signal().await;
            timers.shutdown().await;
        }
    }
    Ok(())
}

/// The lock's triggers of this plugin's type and the components they run.
pub fn load_app(trigger: TriggerType, locked: &Path, working_dir: &Path) -> anyhow::Result<App> {
    let mut app = App::load_locked(locked, working_dir)?;
    app.retain_trigger_types(&[trigger.name()]);
    anyhow::ensure!(
        !app.manifest.component.is_empty(),
        "the app has no [[trigger.{}]] entries",
        trigger.name()
    );
    Ok(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_metadata_names_every_flag_spin_may_forward() {
        let meta = LaunchMetadata::of_plugin();
        let longs: Vec<_> = meta
            .all_flags
            .iter()
            .filter_map(|f| f.long.as_deref())
            .collect();
        for flag in [
            "--runtime-config-file",
            "--state-dir",
            "--disable-cache",
            "--variable",
            "--help-args-only",
            "--launch-metadata-only",
        ] {
            assert!(longs.contains(&flag), "{flag} missing from {longs:?}");
        }
        // Spin reads it back with serde into its own LaunchMetadata shape.
        let json = serde_json::to_string(&meta).unwrap();
        assert!(json.starts_with(r#"{"all_flags":[{"long":"#), "{json}");
        assert!(!json.contains("null"), "{json}");
    }

    #[test]
    fn spin_forwards_flags_with_or_without_values() {
        let args = PluginArgs::try_parse_from([
            "trigger-kafka",
            "--runtime-config-file",
            "runtime-config.toml",
            "--state-dir",
            "",
        ])
        .unwrap();
        assert_eq!(
            args.runtime_config_file.unwrap(),
            Path::new("runtime-config.toml")
        );
        assert_eq!(args.state_dir.as_deref(), Some(""));
        assert!(PluginArgs::try_parse_from(["trigger-kafka", "--listen", "x"]).is_err());
    }
}
