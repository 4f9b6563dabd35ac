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
use mart_host::config;
use mart_host::events::{EventOptions, Events};
use mart_manifest::App;
use mart_runtime::{PoolBudgets, PoolSettings, Runtime, RuntimeOptions};
use mart_trigger_http::{HttpTrigger, ServeOptions};

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
    Up(Box<UpArgs>),
    /// Create the service databases and apply pending migrations.
    Migrate(MigrateArgs),
    /// List a dead-letter topic's messages not yet redriven, or send them
    /// back to their original topics and partitions (`--redrive`), each for
    /// the consumer group that dead-lettered it only, to be handled again
    /// or dropped for good (`--discard`), in order behind its key.
    DeadLetters(DeadLettersArgs),
    /// Check the shop's invariants across the service databases (orders
    /// final, paid orders charged once with stock committed, cancelled ones
    /// holding neither stock nor money, reserved stock matching reservations).
    /// With brokers, also every consumer group's lag per partition: a
    /// partition that lags without its committed offset moving (nobody
    /// consumes it) is unsettled. Exits 1 on a violation, 2 while anything
    /// is unsettled.
    Check {
        /// A database URL on the server (its database must exist, e.g. `postgres`).
        #[arg(long, env = "MART_DATABASE_URL")]
        database_url: String,
        /// The Kafka brokers whose consumer groups to check (plaintext).
        #[arg(long, env = "MART_KAFKA_BROKERS")]
        kafka_brokers: Option<String>,
    },
    /// Print where each event goes (a Markdown table: its topic, the
    /// components whose database writes it, the handlers that take it).
    /// Exits 1 if a handler takes an event its trigger does not read.
    Events {
        #[arg(short = 'f', long = "from", default_value = "spin.toml")]
        manifest: PathBuf,
    },
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
    /// Run only this component and its triggers (repeatable; default: all),
    /// as Spin's `--component-id`: e.g. one Kafka handler per Deployment.
    #[arg(short = 'c', long = "component-id", value_name = "ID")]
    components: Vec<String>,
    /// Spin runtime config.
    #[arg(long, env = "MART_RUNTIME_CONFIG")]
    runtime_config_file: Option<PathBuf>,
    /// Where the `default` key-value store and SQLite database live (Spin's
    /// `--state-dir`; default: `state_dir` in the runtime config, else
    /// `.spin` beside the manifest; "" keeps them in memory).
    #[arg(long = "state-dir", env = "MART_STATE_DIR")]
    state_dir: Option<String>,
    /// An application variable, `name=value` or `name=@file` (as Spin's
    /// `--variable`); wins over every other provider.
    #[arg(long = "variable", value_name = "NAME=VALUE")]
    variables: Vec<String>,
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
    /// Migrations the readiness check expects to be applied.
    #[arg(long, default_value = "migrations")]
    migrations: PathBuf,
    /// Kafka brokers (`host:port,...`); overrides `brokers` in the
    /// manifest's `[application.trigger.kafka]`.
    #[arg(long, env = "MART_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// Do not relay the outboxes of `[application.trigger.kafka] outbox` from this host.
    #[arg(long, env = "MART_NO_OUTBOX_RELAY")]
    no_outbox_relay: bool,
    /// Open HTTP connections at most; further ones are answered 503.
    #[arg(long, default_value_t = 1000, env = "MART_HTTP_MAX_CONNECTIONS")]
    http_max_connections: usize,
    /// Open HTTP connections one client address may hold (0: no limit; set
    /// 0 behind a gateway, which connects for every client from one address).
    #[arg(
        long,
        default_value_t = 100,
        env = "MART_HTTP_MAX_CONNECTIONS_PER_CLIENT"
    )]
    http_max_connections_per_client: usize,
    /// HTTP requests running a component at once (the instance pool is
    /// shared with the Kafka and timer triggers); more wait, then 503.
    #[arg(long, default_value_t = 500, env = "MART_HTTP_MAX_CONCURRENT_REQUESTS")]
    http_max_concurrent_requests: usize,
    /// Requests one WASIp3 instance serves before it is retired (Spin 4's
    /// option: a number, or a range like `1..8` each new instance draws
    /// from). WASIp2 instances always serve one.
    #[arg(long, value_parser = mart_trigger_http::parse_count_range)]
    max_instance_reuse_count: Option<mart_trigger_http::Range<usize>>,
    /// Requests one WASIp3 instance serves at once (number or range).
    #[arg(long, value_parser = mart_trigger_http::parse_count_range)]
    max_instance_concurrent_reuse_count: Option<mart_trigger_http::Range<usize>>,
    /// How long a request to a WASIp3 instance may run (`30s`, `500ms`, or
    /// a range such as `1..8s`); default: the component's own deadline.
    #[arg(long, value_parser = mart_trigger_http::parse_duration_range)]
    request_timeout: Option<mart_trigger_http::Range<std::time::Duration>>,
    /// How long an idle WASIp3 instance is kept for the next request.
    #[arg(long, default_value = "1s", value_parser = mart_trigger_http::parse_duration_range)]
    idle_instance_timeout: mart_trigger_http::Range<std::time::Duration>,
    /// PostgreSQL connections per database for HTTP requests; each trigger
    /// kind has pools of its own, so API load never takes the handlers'.
    #[arg(long, default_value_t = 10, env = "MART_PG_POOL_HTTP")]
    pg_pool_http: usize,
    /// PostgreSQL connections per database for the Kafka handlers.
    #[arg(long, default_value_t = 6, env = "MART_PG_POOL_KAFKA")]
    pg_pool_kafka: usize,
    /// PostgreSQL connections per database for the timers.
    #[arg(long, default_value_t = 2, env = "MART_PG_POOL_TIMER")]
    pg_pool_timer: usize,
    /// Add `x-request-id` to every response. Off by default: Spin adds no
    /// header of its own, and tools that check responses exactly (Spin's
    /// conformance expectations) refuse one; the id is logged either way.
    #[arg(long, env = "MART_HTTP_REQUEST_ID_HEADER")]
    http_request_id_header: bool,
    /// Seconds a client may take to send a request body (then 408).
    #[arg(long, default_value_t = 30, env = "MART_HTTP_BODY_TIMEOUT_SECS")]
    http_body_timeout_secs: u64,
    /// `spin-4.0`: refuse what Fermyon Spin 4.0.x's PostgreSQL host cannot do
    /// (timestamptz results, queries without rows), so an app that runs here
    /// runs under `spin up`; `full`: everything spin:postgres can express.
    #[arg(
        long,
        value_enum,
        default_value = "spin-4.0",
        env = "MART_PG_COMPATIBILITY"
    )]
    pg_compatibility: PgCompatibilityArg,
    /// Hours sent outbox rows and processed-event records are kept.
    #[arg(
        long,
        default_value_t = mart_host::events::DEFAULT_RETENTION_HOURS,
        env = "MART_EVENT_RETENTION_HOURS"
    )]
    event_retention_hours: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum PgCompatibilityArg {
    #[value(name = "spin-4.0")]
    Spin40,
    Full,
}

impl From<PgCompatibilityArg> for mart_runtime::PgCompatibility {
    fn from(arg: PgCompatibilityArg) -> Self {
        match arg {
            PgCompatibilityArg::Spin40 => Self::Spin40,
            PgCompatibilityArg::Full => Self::Full,
        }
    }
}

#[derive(clap::Args)]
struct DeadLettersArgs {
    /// The dead-letter topic, e.g. `mart.orders.dlq`.
    topic: String,
    /// Send the listed messages back to their original topics, to be
    /// handled again by the group that dead-lettered each.
    #[arg(long)]
    redrive: bool,
    /// With `--redrive`: a letter (`topic/partition@offset`, as listed) to
    /// drop for good instead: its group resolves it without handling it.
    /// May be given more than once.
    #[arg(long, value_name = "SOURCE", requires = "redrive")]
    discard: Vec<String>,
    /// With `--redrive`: check every letter and show where each would go,
    /// but send nothing and record nothing.
    #[arg(long, requires = "redrive")]
    dry_run: bool,
    /// Kafka brokers (`host:port,...`); overrides the manifest's.
    #[arg(long, env = "MART_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// The Spin manifest whose `[application.trigger.kafka]` says how to reach Kafka.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    manifest: PathBuf,
    /// Spin runtime config (variable providers).
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
    let _log_writer = config::init_logging(matches!(cli.log_format, LogFormat::Json));
    // Before the async runtime, so the last spans are flushed after it ends.
    let _span_export = match cli.command {
        Command::Up(_) => mart_telemetry::init_from_env()?,
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Up(args) => up(*args).await,
            Command::Migrate(args) => migrate(args).await,
            Command::Check {
                database_url,
                kafka_brokers,
            } => check(&database_url, kafka_brokers.as_deref()).await,
            Command::DeadLetters(args) => dead_letters(args).await,
            Command::Events { manifest } => events(&manifest),
            Command::SpinManifest { manifest, out } => spin_manifest(&manifest, &out),
        }
    })
}

fn events(manifest: &std::path::Path) -> anyhow::Result<()> {
    use mart_host::event_map;
    let app = App::load(manifest)?;
    print!("{}", event_map::markdown(&event_map::routes(&app)?));
    let problems = event_map::problems(&app)?;
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    anyhow::ensure!(
        problems.is_empty(),
        "{} handler(s) take events they never receive",
        problems.len()
    );
    Ok(())
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let mut app = App::load(&args.manifest)?;
    if !args.components.is_empty() {
        let ids: Vec<&str> = args.components.iter().map(String::as_str).collect();
        app.retain_components(&ids)
            .map_err(anyhow::Error::msg)
            .context("--component-id")?;
    }
    let config_path = args.runtime_config_file.as_deref();
    let runtime_config = config::runtime_config(config_path)?;
    let resolver = config::resolver(&app, &runtime_config, config_path, &args.variables)?;
    let kafka = config::kafka_client(&app, args.kafka_brokers.clone(), &resolver)?;
    let producer = Arc::new(mart_kafka::ProducerPart::new(&app)?);
    let mut parts = config::spin_parts(
        &app,
        &runtime_config,
        args.state_dir.as_deref(),
        Some(&app.base_dir),
    )?;
    parts.push(producer.clone());
    let options = RuntimeOptions {
        cache_dir: config::cache_dir(!args.no_cache, args.cache_dir.clone()),
        pg_compatibility: args.pg_compatibility.into(),
        pg_pools: pool_budgets(&args),
        parts,
        ..RuntimeOptions::default()
    };
    let loading = std::time::Instant::now();
    let runtime = Arc::new(Runtime::load(&app, &resolver, &options)?);
    let serve = ServeOptions {
        max_connections: args.http_max_connections,
        max_connections_per_client: args.http_max_connections_per_client,
        max_concurrent_requests: args.http_max_concurrent_requests,
        body_timeout: std::time::Duration::from_secs(args.http_body_timeout_secs),
        request_id_header: args.http_request_id_header,
        reuse: instance_reuse(&args),
        ..ServeOptions::default()
    };
    let trigger = HttpTrigger::new(&app, runtime.clone(), serve)?;
    let events = Events::start(
        &app,
        &runtime,
        kafka.as_ref(),
        &producer,
        &EventOptions {
            relay: !args.no_outbox_relay,
            retention: std::time::Duration::from_secs(args.event_retention_hours * 3600),
        },
    )
    .await?;
    let timers = mart_trigger_timer::TimerTriggers::start(&app, runtime.clone(), &resolver)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", args.admin_listen))?;
    print_routes(&trigger, listener.local_addr()?, loading.elapsed());
    events.print();
    for (component, every) in &timers.timers {
        eprintln!("Timer: {component} every {} s", every.as_secs());
    }
    for (component, expression) in &timers.crons {
        eprintln!("Cron: {component} on \"{expression}\"");
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
    let served = trigger.serve(listener, config::shutdown_signal()).await;
    timers.shutdown().await;
    events.shutdown().await;
    let _ = stop_admin.send(());
    let _ = admin_task.await;
    served
}

async fn dead_letters(args: DeadLettersArgs) -> anyhow::Result<()> {
    use mart_trigger_kafka::Resolution;
    let app = App::load(&args.manifest)?;
    let config_path = args.runtime_config_file.as_deref();
    let runtime_config = config::runtime_config(config_path)?;
    let resolver = config::resolver(&app, &runtime_config, config_path, &[])?;
    let kafka = config::kafka_client(&app, args.kafka_brokers.clone(), &resolver)?.context(
        "no Kafka brokers: set them in [application.trigger.kafka], or pass --kafka-brokers",
    )?;
    // A letter goes back only to a source whose failures this topic holds
    // (the manifest's triggers, else `<topic>.dlq`); what it prints of the
    // letters' headers is escaped (they are anyone's text).
    let origins = mart_trigger_kafka::Origins::of(&app, &args.topic)?;
    let (resolution, verb) = match (args.redrive, args.dry_run) {
        (true, dry_run) => {
            let discard = args.discard.clone();
            let verb = if dry_run {
                "would be redriven (dry run: nothing sent)"
            } else {
                "redriven"
            };
            (Resolution::Redrive { discard, dry_run }, verb)
        }
        (false, _) => (Resolution::List, "pending"),
    };
    let letters = mart_trigger_kafka::redrive(&kafka, &args.topic, &resolution, &origins).await?;
    for l in &letters {
        let refused = origins.refusal(l);
        let discarded = match (args.discard.contains(&l.source()), &refused) {
            (true, Some(_)) => "\tdiscarded (refused: not sent)".to_string(),
            (true, None) => "\tdiscarded".to_string(),
            (false, Some(why)) => format!("\trefused: {why}"),
            (false, None) if args.dry_run => format!(
                "\t-> {}/{} for {}",
                mart_trigger_kafka::printable(&l.topic),
                l.partition,
                mart_trigger_kafka::printable(&l.group)
            ),
            (false, None) => String::new(),
        };
        println!("{}{discarded}", l.line());
    }
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
            for (pool, trigger, size, idle) in pools.status() {
                metrics.pg_pool(&pool, trigger.as_str(), size, idle);
            }
        }),
    }
}

/// The `--pg-pool-*` sizes, with the default wait for a free connection.
/// Spin 4's reuse options, its defaults where not given.
fn instance_reuse(args: &UpArgs) -> mart_trigger_http::InstanceReuse {
    let defaults = mart_trigger_http::InstanceReuse::default();
    mart_trigger_http::InstanceReuse {
        max_instance_reuse_count: args
            .max_instance_reuse_count
            .unwrap_or(defaults.max_instance_reuse_count),
        max_instance_concurrent_reuse_count: args
            .max_instance_concurrent_reuse_count
            .unwrap_or(defaults.max_instance_concurrent_reuse_count),
        request_timeout: args.request_timeout,
        idle_instance_timeout: args.idle_instance_timeout,
    }
}

fn pool_budgets(args: &UpArgs) -> PoolBudgets {
    let sized = |max_size, default: PoolSettings| PoolSettings {
        max_size,
        ..default
    };
    let defaults = PoolBudgets::default();
    PoolBudgets {
        http: sized(args.pg_pool_http, defaults.http),
        kafka: sized(args.pg_pool_kafka, defaults.kafka),
        timer: sized(args.pg_pool_timer, defaults.timer),
    }
}

fn print_routes(trigger: &HttpTrigger, addr: SocketAddr, took: std::time::Duration) {
    let mut table = format!("Serving http://{addr} (ready in {} ms)\n", took.as_millis());
    for (route, component) in trigger.router().routes() {
        table.push_str(&format!("  {route:<32} -> {component}\n"));
    }
    eprint!("{table}");
    tracing::info!(%addr, "serving");
}

fn spin_manifest(manifest: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let http_only = mart_manifest::http_only(&text).map_err(anyhow::Error::msg)?;
    std::fs::write(out, http_only).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("wrote {} (HTTP triggers only)", out.display());
    Ok(())
}

async fn check(database_url: &str, kafka_brokers: Option<&str>) -> anyhow::Result<()> {
    let report = mart_check::check_with(database_url, kafka_brokers).await?;
    print!("{report}");
    match report.exit_code() {
        0 => Ok(()),
        code => std::process::exit(code),
    }
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
