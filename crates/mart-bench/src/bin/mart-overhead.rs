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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let app = App::load(&args.manifest)?;
    let resolver = Resolver::new(
        app.manifest.variables.clone(),
        vec![EnvProvider::new(None, std::env::vars())],
    );
    let runtime = Arc::new(Runtime::load(&app, &resolver, &RuntimeOptions::default())?);
    let trigger = HttpTrigger::new(&app, runtime, ServeOptions::default())?;
    let client: SocketAddr = ([127, 0, 0, 1], 1).into();
    let one = || async {
        let request = http::Request::get(&args.path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = trigger.call(request, client).await;
        assert_eq!(response.status(), 200, "{} must answer 200", args.path);
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
    };
    for _ in 0..1_000 {
        one().await;
    }
    let started = Instant::now();
    for _ in 0..args.iterations {
        one().await;
    }
    let mean = started.elapsed() / args.iterations;
    println!("in-process per request (route + instantiate + call + body + drop): {:.1} µs mean over {} requests", mean.as_secs_f64() * 1e6, args.iterations);
    Ok(())
}
