//! `mart`: Mart's host for Spin apps.
//!
//! `mart up` runs the app described by `spin.toml` (HTTP trigger, Spin host
//! interfaces); `mart migrate` creates and migrates the service databases.

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
    /// Migrations the readiness check expects to be applied.
    #[arg(long, default_value = "migrations")]
    migrations: PathBuf,
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
    let options = RuntimeOptions {
        cache_dir: cache_dir(&args),
        ..RuntimeOptions::default()
    };
    let loading = std::time::Instant::now();
    let runtime = Arc::new(Runtime::load(&app, &resolver, &options)?);
    let trigger = HttpTrigger::new(&app, runtime.clone(), ServeOptions::default())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", args.admin_listen))?;
    print_routes(&trigger, listener.local_addr()?, loading.elapsed());
    eprintln!(
        "Admin on http://{}/{{healthz,readyz,metrics}}",
        admin_listener.local_addr()?
    );

    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = Arc::new(admin(&runtime, &args));
    let admin_task = tokio::spawn(admin.serve(admin_listener, async {
        let _ = admin_stopped.await;
    }));
    let served = trigger.serve(listener, shutdown_signal()).await;
    let _ = stop_admin.send(());
    let _ = admin_task.await;
    served
}

/// The admin listener: readiness checks what the app needs to serve.
fn admin(runtime: &Arc<Runtime>, args: &UpArgs) -> mart_admin::Admin {
    let mut checks = Vec::new();
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
