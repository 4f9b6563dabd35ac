//! `mart`: Mart's host for Spin apps.
//!
//! `mart up` runs the app described by `spin.toml` (HTTP trigger, Spin host
//! interfaces, Mart's Kafka trigger and outbox relay); `mart migrate` creates
//! and migrates the service databases; `mart dead-letters` inspects and
//! redrives a dead-letter topic.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use mart_manifest::{App, RuntimeConfig, VariablesProvider};
use mart_runtime::{Runtime, RuntimeOptions};
use mart_trigger_http::{HttpTrigger, ServeOptions};
use mart_variables::{EnvProvider, Resolver};

#[derive(Parser)]
#[command(
    name = "mart",
    version,
    about = "Runs Spin apps on Mart's wasmtime host"
)]
struct Cli {
    /// Log format: human-readable text or one JSON object per line.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "MART_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the app.
    Up(UpArgs),
    /// Create the service databases and apply pending migrations.
    Migrate(MigrateArgs),
    /// List a dead-letter topic's messages not yet redriven, or send them
    /// back to their original topics (`--redrive`).
    DeadLetters(DeadLettersArgs),
    /// Write an HTTP-only copy of the manifest that Fermyon Spin can run.
    SpinManifest {
        #[arg(short = 'f', long = "from", default_value = "spin.toml")]
        manifest: PathBuf,
        #[arg(long, default_value = "spin.http.toml")]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct UpArgs {
    /// The Spin manifest.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    manifest: PathBuf,
    /// Spin runtime config.
    #[arg(long, env = "MART_RUNTIME_CONFIG")]
    runtime_config_file: Option<PathBuf>,
    /// Address for the HTTP trigger.
    #[arg(long, default_value = "127.0.0.1:3000", env = "MART_LISTEN")]
    listen: SocketAddr,
    /// Where compiled components are cached (default: ~/.cache/mart/wasmtime).
    #[arg(long, env = "MART_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Do not cache compiled components on disk.
    #[arg(long)]
    no_cache: bool,
    /// Admin listener (health, readiness, metrics); keep it off the gateway.
    #[arg(long, default_value = "127.0.0.1:9090", env = "MART_ADMIN_LISTEN")]
    admin_listen: SocketAddr,
    /// Database server for readiness checks (a database that exists, e.g. `postgres`).
    #[arg(long, env = "MART_DATABASE_URL")]
    database_url: Option<String>,
    /// Migrations the readiness check expects to be applied; their
    /// databases' outboxes are relayed to Kafka.
    #[arg(long, default_value = "migrations")]
    migrations: PathBuf,
    /// Kafka brokers (`host:port,...`); overrides `[kafka] brokers` in the runtime config.
    #[arg(long, env = "MART_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// Do not relay the databases' outboxes to Kafka from this host.
    #[arg(long, env = "MART_NO_OUTBOX_RELAY")]
    no_outbox_relay: bool,
    /// Hours sent outbox rows and processed-event records are kept.
    #[arg(long, default_value_t = 168, env = "MART_EVENT_RETENTION_HOURS")]
    event_retention_hours: u64,
}

#[derive(clap::Args)]
struct DeadLettersArgs {
    /// The dead-letter topic, e.g. `mart.orders.dlq`.
    topic: String,
    /// Send the listed messages back to their original topics.
    #[arg(long)]
    redrive: bool,
    /// Kafka brokers (`host:port,...`).
    #[arg(long, env = "MART_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// Spin runtime config with a `[kafka]` table.
    #[arg(long, env = "MART_RUNTIME_CONFIG")]
    runtime_config_file: Option<PathBuf>,
}

#[derive(clap::Args)]
struct MigrateArgs {
    /// A database URL on the server to migrate (its database must exist, e.g. `postgres`).
    #[arg(long, env = "MART_DATABASE_URL")]
    database_url: String,
    /// Folder with one sub-folder of migrations per database.
    #[arg(long, default_value = "migrations")]
    migrations: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Up(args) => up(args).await,
            Command::Migrate(args) => migrate(args).await,
            Command::DeadLetters(args) => dead_letters(args).await,
            Command::SpinManifest { manifest, out } => spin_manifest(&manifest, &out),
        }
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let app = App::load(&args.manifest)?;
    let runtime_config = match &args.runtime_config_file {
        Some(path) => RuntimeConfig::load(path)?,
        None => RuntimeConfig::default(),
    };
    let resolver = resolver(&app, &runtime_config, args.runtime_config_file.as_deref())?;
    let kafka = kafka_client(&runtime_config, args.kafka_brokers.clone(), &resolver)?;
    let options = RuntimeOptions {
        cache_dir: cache_dir(&args),
        ..RuntimeOptions::default()
    };
    let loading = std::time::Instant::now();
    let runtime = Arc::new(Runtime::load(&app, &resolver, &options)?);
    let trigger = HttpTrigger::new(&app, runtime.clone(), ServeOptions::default())?;
    let events = start_events(&app, &runtime, kafka.as_ref(), &args).await?;
    let timers = mart_trigger_timer::TimerTriggers::start(&app, runtime.clone(), &resolver)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", args.admin_listen))?;
    print_routes(&trigger, listener.local_addr()?, loading.elapsed());
    events.print(kafka.as_ref());
    for (component, every) in &timers.timers {
        eprintln!("Timer: {component} every {} s", every.as_secs());
    }
    eprintln!(
        "Admin on http://{}/{{healthz,readyz,metrics}}",
        admin_listener.local_addr()?
    );

    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = Arc::new(admin(&runtime, &args, kafka.clone()));
    let admin_task = tokio::spawn(admin.serve(admin_listener, async {
        let _ = admin_stopped.await;
    }));
    let served = trigger.serve(listener, shutdown_signal()).await;
    timers.shutdown().await;
    events.shutdown().await;
    let _ = stop_admin.send(());
    let _ = admin_task.await;
    served
}

/// Kafka settings: `[kafka]` from the runtime config with `{{ variable }}`
/// templates rendered, brokers overridden by `--kafka-brokers`.
fn kafka_client(
    config: &RuntimeConfig,
    brokers: Option<String>,
    resolver: &Resolver,
) -> anyhow::Result<Option<mart_kafka::KafkaClient>> {
    let render = |value: &Option<String>, key: &str| -> anyhow::Result<Option<String>> {
        value
            .as_deref()
            .map(|v| {
                let template =
                    mart_variables::Template::parse(v).with_context(|| format!("[kafka] {key}"))?;
                resolver
                    .render(&template)
                    .with_context(|| format!("[kafka] {key}"))
            })
            .transpose()
    };
    let mut kafka = config.kafka.clone();
    kafka.brokers = match brokers {
        Some(b) => Some(b),
        None => render(&kafka.brokers, "brokers")?,
    };
    kafka.security_protocol = render(&kafka.security_protocol, "security_protocol")?;
    kafka.sasl_mechanism = render(&kafka.sasl_mechanism, "sasl_mechanism")?;
    kafka.sasl_username = render(&kafka.sasl_username, "sasl_username")?;
    kafka.sasl_password = render(&kafka.sasl_password, "sasl_password")?;
    Ok(mart_kafka::KafkaClient::new(kafka))
}

/// The event side of the app: Kafka triggers, the outbox relay and the
/// producer components publish through.
struct Events {
    triggers: Option<mart_trigger_kafka::KafkaTriggers>,
    relay: Option<mart_outbox_relay::OutboxRelay>,
    relayed: Vec<String>,
    publisher: Option<mart_kafka::Publisher>,
}

async fn start_events(
    app: &App,
    runtime: &Arc<Runtime>,
    kafka: Option<&mart_kafka::KafkaClient>,
    args: &UpArgs,
) -> anyhow::Result<Events> {
    let has_triggers = !app
        .manifest
        .kafka_triggers()
        .map_err(anyhow::Error::msg)?
        .is_empty();
    let Some(kafka) = kafka else {
        anyhow::ensure!(
            !has_triggers,
            "spin.toml has [[trigger.kafka]] entries but no Kafka brokers are configured: \
             set `brokers` under [kafka] in the runtime config, or MART_KAFKA_BROKERS"
        );
        return Ok(Events {
            triggers: None,
            relay: None,
            relayed: Vec::new(),
            publisher: None,
        });
    };
    mart_kafka::ensure_topics(kafka, &topics_to_create(app)?).await?;
    let publisher = mart_kafka::Publisher::new(kafka, "mart-host")?;
    runtime.set_publisher(publisher.clone());
    let triggers = mart_trigger_kafka::KafkaTriggers::start(app, runtime.clone(), kafka)?;
    let mut relayed = Vec::new();
    let mut relay = None;
    if let (Some(url), false) = (&args.database_url, args.no_outbox_relay) {
        let databases = mart_migrate::discover(&args.migrations)?
            .into_iter()
            .map(|(name, _)| {
                Ok(mart_outbox_relay::Database {
                    url: mart_migrate::database_url(url, &name)?,
                    name,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        relayed = databases.iter().map(|d| d.name.clone()).collect();
        let options = mart_outbox_relay::RelayOptions {
            retention: std::time::Duration::from_secs(args.event_retention_hours * 3600),
            ..Default::default()
        };
        relay = Some(mart_outbox_relay::OutboxRelay::start(
            databases,
            publisher.clone(),
            runtime.metrics().clone(),
            options,
        ));
    }
    Ok(Events {
        triggers: Some(triggers),
        relay,
        relayed,
        publisher: Some(publisher),
    })
}

/// Every topic the app touches: one per aggregate type, what the triggers
/// read and dead-letter to, and what components may publish to.
fn topics_to_create(app: &App) -> anyhow::Result<Vec<String>> {
    let mut topics = mart_trigger_kafka::KafkaTriggers::topics(app)?;
    topics.extend(
        mart_domain::events::EventType::ALL
            .iter()
            .map(|t| t.topic()),
    );
    for component in app.manifest.component.values() {
        let settings = component.mart_settings().map_err(anyhow::Error::msg)?;
        topics.extend(settings.kafka_publish_topics);
    }
    topics.sort();
    topics.dedup();
    Ok(topics)
}

impl Events {
    fn print(&self, kafka: Option<&mart_kafka::KafkaClient>) {
        let Some(kafka) = kafka else {
            eprintln!("Kafka: not configured (HTTP only)");
            return;
        };
        let mut table = format!("Kafka at {}\n", kafka.brokers());
        for t in self.triggers.iter().flat_map(|t| t.summary()) {
            table.push_str(&format!(
                "  {:<32} -> {} (group {})\n",
                t.topics.join(","),
                t.component,
                t.group
            ));
        }
        if !self.relayed.is_empty() {
            table.push_str(&format!(
                "  outbox relay for databases: {}\n",
                self.relayed.join(", ")
            ));
        }
        eprint!("{table}");
    }

    /// Stops consuming (running invocations finish and are committed),
    /// then the relay, then flushes what components published.
    async fn shutdown(self) {
        let grace = std::time::Duration::from_secs(10);
        if let Some(triggers) = self.triggers {
            triggers.shutdown(grace).await;
        }
        if let Some(relay) = self.relay {
            relay.shutdown(grace).await;
        }
        if let Some(publisher) = self.publisher {
            let _ = tokio::task::spawn_blocking(move || publisher.flush(grace)).await;
        }
    }
}

async fn dead_letters(args: DeadLettersArgs) -> anyhow::Result<()> {
    let runtime_config = match &args.runtime_config_file {
        Some(path) => RuntimeConfig::load(path)?,
        None => RuntimeConfig::default(),
    };
    let resolver = Resolver::new(
        Default::default(),
        vec![EnvProvider::new(None, std::env::vars())],
    );
    let kafka = kafka_client(&runtime_config, args.kafka_brokers.clone(), &resolver)?
        .context("no Kafka brokers: pass --kafka-brokers or set MART_KAFKA_BROKERS")?;
    let letters = mart_trigger_kafka::redrive(&kafka, &args.topic, args.redrive).await?;
    for l in &letters {
        println!(
            "{}/{}@{}\tattempts={}\tcomponent={}\tat={}\terror={}",
            l.topic, l.partition, l.offset, l.attempts, l.component, l.time, l.reason
        );
    }
    let verb = if args.redrive { "redriven" } else { "pending" };
    eprintln!("{} dead letter(s) {verb} in {}", letters.len(), args.topic);
    Ok(())
}

/// The admin listener: readiness checks what the app needs to serve.
fn admin(
    runtime: &Arc<Runtime>,
    args: &UpArgs,
    kafka: Option<mart_kafka::KafkaClient>,
) -> mart_admin::Admin {
    let mut checks = Vec::new();
    if let Some(kafka) = kafka {
        checks.push(mart_admin::Check {
            name: "kafka",
            run: Box::new(move || {
                let kafka = kafka.clone();
                Box::pin(async move { kafka.ping(std::time::Duration::from_secs(2)).await })
            }),
        });
    }
    if let Some(url) = args.database_url.clone() {
        let migrations = args.migrations.clone();
        let pg_url = url.clone();
        checks.push(mart_admin::Check {
            name: "postgres",
            run: Box::new(move || {
                let url = pg_url.clone();
                Box::pin(async move {
                    let connect = tokio_postgres::connect(&url, tokio_postgres::NoTls);
                    let (client, connection) =
                        tokio::time::timeout(std::time::Duration::from_secs(2), connect)
                            .await
                            .map_err(|_| "timed out connecting".to_string())?
                            .map_err(|e| e.to_string())?;
                    tokio::spawn(connection);
                    client
                        .simple_query("SELECT 1")
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            }),
        });
        checks.push(mart_admin::Check {
            name: "migrations",
            run: Box::new(move || {
                let (url, migrations) = (url.clone(), migrations.clone());
                Box::pin(async move {
                    match mart_migrate::is_up_to_date(&url, &migrations).await {
                        Ok(true) => Ok(()),
                        Ok(false) => Err("migrations are pending; run `mart migrate`".into()),
                        Err(e) => Err(format!("{e:#}")),
                    }
                })
            }),
        });
    }
    let pools = runtime.pg_pools().clone();
    let metrics = runtime.metrics().clone();
    mart_admin::Admin {
        metrics: runtime.metrics().clone(),
        checks,
        before_scrape: Box::new(move || {
            for (pool, size, idle) in pools.status() {
                metrics.pg_pool(&pool, size, idle);
            }
        }),
    }
}

/// Providers in runtime-config order, then Spin's default environment provider.
fn resolver(
    app: &App,
    config: &RuntimeConfig,
    config_path: Option<&std::path::Path>,
) -> anyhow::Result<Resolver> {
    let mut providers = Vec::new();
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
                        .unwrap_or(std::path::Path::new("."));
                    vars.extend(read_dotenv(&base.join(dotenv))?);
                }
                providers.push(EnvProvider::new(prefix.as_deref(), vars));
            }
        }
    }
    providers.push(EnvProvider::new(None, std::env::vars()));
    Ok(Resolver::new(app.manifest.variables.clone(), providers))
}

/// `KEY=value` lines; the process environment wins over the file.
fn read_dotenv(path: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
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

fn cache_dir(args: &UpArgs) -> Option<PathBuf> {
    if args.no_cache {
        return None;
    }
    args.cache_dir.clone().or_else(|| {
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/mart/wasmtime"))
    })
}

fn print_routes(trigger: &HttpTrigger, addr: SocketAddr, took: std::time::Duration) {
    let mut table = format!("Serving http://{addr} (ready in {} ms)\n", took.as_millis());
    for (route, component) in trigger.router().routes() {
        table.push_str(&format!("  {route:<32} -> {component}\n"));
    }
    eprint!("{table}");
    tracing::info!(%addr, "serving");
}

async fn shutdown_signal() {
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

fn spin_manifest(manifest: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let http_only = mart_manifest::http_only(&text).map_err(anyhow::Error::msg)?;
    std::fs::write(out, http_only).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("wrote {} (HTTP triggers only)", out.display());
    Ok(())
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let reports = mart_migrate::migrate(&args.database_url, &args.migrations).await?;
    for report in reports {
        eprintln!(
            "{}: {}{} migration(s) applied",
            report.database,
            if report.created { "created, " } else { "" },
            report.applied.len()
        );
    }
    Ok(())
}
