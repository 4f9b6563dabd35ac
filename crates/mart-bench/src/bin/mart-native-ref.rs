//! The reference for `make bench`: the same two routes as the Wasm side,
//! written natively on hyper + deadpool-postgres, on the same database.
//!   GET /noop           -> 200, empty
//!   GET /products/{id}  -> the product as JSON (same query and shape as the catalog)

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use clap::Parser;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    listen: SocketAddr,
    /// URL of the catalog database.
    #[arg(long)]
    database_url: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config: tokio_postgres::Config = args.database_url.parse()?;
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager).max_size(16).build()?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("native reference on http://{}", args.listen);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let pool = pool.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let pool = pool.clone();
                async move { Ok::<_, Infallible>(handle(req, &pool).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(req: Request<Incoming>, pool: &Pool) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path == "/noop" {
        return Response::new(Full::new(Bytes::new()));
    }
    let Some(id) = path
        .strip_prefix("/products/")
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
    else {
        return status(StatusCode::NOT_FOUND);
    };
    match product(pool, id).await {
        Ok(Some(json)) => Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json)))
            .unwrap(),
        Ok(None) => status(StatusCode::NOT_FOUND),
        Err(e) => {
            eprintln!("query failed: {e}");
            status(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

async fn product(pool: &Pool, id: uuid::Uuid) -> anyhow::Result<Option<Vec<u8>>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT id, name, description, category, price_minor, currency, created_at, updated_at FROM products WHERE id = $1",
        )
        .await?;
    let Some(row) = client.query_opt(&statement, &[&id]).await? else {
        return Ok(None);
    };
    let ts = |i: usize| {
        row.get::<_, chrono::DateTime<chrono::Utc>>(i)
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    };
    let json = serde_json::json!({
        "id": row.get::<_, uuid::Uuid>(0).to_string(),
        "name": row.get::<_, String>(1),
        "description": row.get::<_, String>(2),
        "category": row.get::<_, Option<String>>(3),
        "price_minor": row.get::<_, i64>(4),
        "currency": row.get::<_, String>(5),
        "created_at": ts(6),
        "updated_at": ts(7),
    });
    Ok(Some(serde_json::to_vec(&json)?))
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .body(Full::new(Bytes::new()))
        .unwrap()
}
