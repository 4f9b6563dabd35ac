//! In-process cost of one request through the host: route, fresh instance,
//! call, read the whole body, drop the instance. No network, no database.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use mart_manifest::App;
use mart_runtime::{Runtime, RuntimeOptions};
use mart_trigger_http::{HttpTrigger, ServeOptions};
use mart_variables::{EnvProvider, Resolver};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    manifest: PathBuf,
    /// Path to request (must answer 200).
    #[arg(long, default_value = "/probe/noop")]
    path: String,
    #[arg(long, default_value_t = 20_000)]
    iterations: u32,
    /// Pooling allocator slots (as `mart up`'s default unless given). Under
    /// valgrind, which cannot reserve the terabytes of address space 1,000
    /// slots take, pass a handful.
    #[arg(long, default_value_t = RuntimeOptions::default().max_instances)]
    max_instances: u32,
    /// Compiled-code cache (none unless given): with one, repeated runs
    /// load the components instead of compiling them (under valgrind,
    /// compiling takes minutes).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let app = App::load(&args.manifest)?;
    let resolver = Resolver::new(
        app.manifest.variables.clone(),
        vec![EnvProvider::new(None, std::env::vars())],
    );
    // The host interfaces `mart up` links, so each instance costs what it
    // costs there (state in memory: nothing here writes to disk).
    let mut parts = mart_host::config::spin_parts(
        &app,
        &mart_manifest::RuntimeConfig::default(),
        Some(""),
        None,
    )?;
    parts.push(Arc::new(mart_kafka::ProducerPart::new(&app)?));
    let options = RuntimeOptions {
        parts,
        max_instances: args.max_instances,
        cache_dir: args.cache_dir.clone(),
        ..RuntimeOptions::default()
    };
    let runtime = Arc::new(Runtime::load(&app, &resolver, &options)?);
    let trigger = HttpTrigger::new(&app, runtime, ServeOptions::default())?;
    requests(&trigger, &args.path, 1_000).await;
    let started = Instant::now();
    requests(&trigger, &args.path, args.iterations).await;
    let mean = started.elapsed() / args.iterations;
    println!("in-process per request (route + instantiate + call + body + drop): {:.1} µs mean over {} requests", mean.as_secs_f64() * 1e6, args.iterations);
    Ok(())
}

/// `count` requests to `path`, one after another. Its own function so that
/// `make bench` can count the instructions of these alone
/// (`callgrind --toggle-collect=mart_overhead::requests*`).
#[inline(never)]
async fn requests(trigger: &HttpTrigger, path: &str, count: u32) {
    let client: SocketAddr = ([127, 0, 0, 1], 1).into();
    for _ in 0..count {
        let request = http::Request::get(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = trigger.call(request, client).await;
        assert_eq!(response.status(), 200, "{path} must answer 200");
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
    }
}
