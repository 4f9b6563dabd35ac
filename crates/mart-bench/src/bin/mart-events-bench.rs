//! `make bench`, event side: throughput of the Kafka trigger, and the
//! checkout saga end to end (orders/s, placed → paid latency, and the
//! time of each hop). Prints figures; asserts nothing.
//!
//! Needs a running broker, a host serving `tests/fixtures/bench-events.toml`
//! (`--trigger-admin`) and a host serving `spin.toml` (`--app`), both started
//! by scripts/bench.sh.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use clap::Parser;
use mart_bench::cost::{self, Cpu, Processes};
use mart_metrics::TaskKind;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    brokers: String,
    /// Admin listener of the host running bench-events.toml.
    #[arg(long)]
    trigger_admin: String,
    /// The host running spin.toml.
    #[arg(long)]
    app: String,
    /// PostgreSQL server of the app.
    #[arg(long)]
    database_url: String,
    /// An admin token for the app.
    #[arg(long, env = "BENCH_ADMIN_TOKEN")]
    admin_token: String,
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    #[arg(long, default_value_t = 400)]
    orders: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Admin listener of the host running spin.toml (its metrics).
    #[arg(long)]
    app_admin: String,
    /// The host running spin.toml, PostgreSQL's postmaster and the broker:
    /// whose CPU an order costs.
    #[arg(long)]
    host_pid: u32,
    #[arg(long)]
    postgres_pid: u32,
    #[arg(long)]
    broker_pid: u32,
    /// How long the shop is watched idle after the burst.
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    trigger_throughput(&args).await?;
    saga(&args).await?;
    Ok(())
}

/// Messages the trigger host handled (`outcome="ok"`), from its metrics.
fn handled(admin: &str) -> anyhow::Result<u64> {
    let text = cost::metrics(admin)?;
    Ok(cost::metric_sum(&text, "mart_kafka_messages_total", "outcome=\"ok\"") as u64)
}

async fn trigger_throughput(args: &Args) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("linger.ms", "5")
        .create()?;
    let before = handled(&args.trigger_admin)?;
    let started = Instant::now();
    let payload = br#"{"id":"x","action":"noop"}"#;
    let mut deliveries = Vec::with_capacity(args.events);
    for i in 0..args.events {
        let key = format!("k{}", i % 64);
        let record = FutureRecord::to("bench.events")
            .key(&key)
            .payload(&payload[..]);
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push(delivery),
            Err((e, _)) => bail!("producing: {e}"),
        }
    }
    for d in deliveries {
        d.await?.map_err(|(e, _)| e)?;
    }
    let produced = started.elapsed();
    let target = before + args.events as u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    while handled(&args.trigger_admin)? < target {
        if Instant::now() > deadline {
            bail!("the trigger did not finish {} events in 300 s", args.events);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = started.elapsed();
    println!();
    println!("Kafka trigger, no-op handler (batch_size 100, concurrency 4), {} events over 4 partitions:", args.events);
    println!("| | events/s | time |");
    println!("|---|---:|---:|");
    println!(
        "| produce (acks=1) | {:.0} | {:.2} s |",
        args.events as f64 / produced.as_secs_f64(),
        produced.as_secs_f64()
    );
    println!(
        "| produce → handled by the trigger | {:.0} | {:.2} s |",
        args.events as f64 / total.as_secs_f64(),
        total.as_secs_f64()
    );
    Ok(())
}

fn post(
    app: &str,
    path: &str,
    token: &str,
    body: &Value,
    extra: &[(&str, &str)],
) -> anyhow::Result<Value> {
    let mut request = ureq::post(&format!("{app}{path}"))
        .set("authorization", &format!("Bearer {token}"))
        .set("content-type", "application/json");
    for (k, v) in extra {
        request = request.set(k, v);
    }
    let response = request
        .send_json(body.clone())
        .with_context(|| format!("POST {path}"))?;
    Ok(response.into_json()?)
}

/// Orders one bench customer places in the burst: below the orders
/// service's bound on a customer's open orders (5).
const ORDERS_PER_CUSTOMER: usize = 4;

/// Registers a customer and signs in; their token.
fn new_customer(app: &str, name: &str) -> anyhow::Result<String> {
    let email = format!("{name}@example.com");
    ureq::post(&format!("{app}/users"))
        .send_json(json!({"email": email, "name": "Bench", "password": "bench password 1"}))?;
    Ok(ureq::post(&format!("{app}/auth/token"))
        .send_json(json!({"email": email, "password": "bench password 1"}))?
        .into_json::<Value>()?["access_token"]
        .as_str()
        .context("no token")?
        .to_string())
}

async fn saga(args: &Args) -> anyhow::Result<()> {
    // Customers enough that none has more open orders than the service
    // allows, and a product with stock for every order.
    let suffix = std::process::id();
    let customers = args.orders.div_ceil(ORDERS_PER_CUSTOMER).max(1);
    let tokens = (0..customers)
        .map(|c| new_customer(&args.app, &format!("bench-{suffix}-{c}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let token = tokens[0].clone();
    let product = post(
        &args.app,
        "/products",
        &args.admin_token,
        &json!({"name": format!("bench-{suffix}"), "description": "", "category": "bench", "price_minor": 100, "currency": "EUR"}),
        &[],
    )?;
    let product_id = product["id"].as_str().context("no product id")?.to_string();
    ureq::put(&format!("{}/inventory/{product_id}", args.app))
        .set("authorization", &format!("Bearer {}", args.admin_token))
        .send_json(json!({"on_hand": args.orders as i32 * 2 + 10}))?;

    let body = json!({
        "items": [{"product_id": product_id, "quantity": 1}],
        "shipping_address": {"name": "B", "line1": "1 Road", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "payment": {"provider": "fake", "token": "tok_visa"}
    });
    let mut unloaded = tokio::task::block_in_place(|| one_at_a_time(args, &token, &body, suffix))?;
    let processes = Processes {
        host: args.host_pid,
        postgres: args.postgres_pid,
        broker: args.broker_pid,
    };
    let before = Counters::read(args, processes).await?;
    let started = Instant::now();
    let mut handles = Vec::new();
    let per_worker = args.orders.div_ceil(args.concurrency);
    for w in 0..args.concurrency {
        let (app, tokens, body) = (args.app.clone(), tokens.clone(), body.clone());
        let count = per_worker.min(args.orders.saturating_sub(w * per_worker));
        handles.push(tokio::task::spawn_blocking(
            move || -> anyhow::Result<Vec<String>> {
                (0..count)
                    .map(|i| {
                        let key = format!("bench-{w}-{i}-{suffix}");
                        let token = &tokens[(w * per_worker + i) / ORDERS_PER_CUSTOMER];
                        let order =
                            post(&app, "/orders", token, &body, &[("idempotency-key", &key)])?;
                        Ok(order["id"].as_str().context("no order id")?.to_string())
                    })
                    .collect()
            },
        ));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.extend(h.await??);
    }
    let placed = started.elapsed();

    let orders_db = db(&args.database_url, "orders").await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let paid: i64 = orders_db
            .query_one(
                "SELECT count(*) FROM orders WHERE id::text = ANY($1) AND status = 'paid'",
                &[&ids],
            )
            .await?
            .get(0);
        if paid as usize == ids.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {paid} of {} orders were paid within 300 s", ids.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cost = Counters::read(args, processes).await?.since(&before);
    // Latencies from the services' own timestamps (one clock: one machine).
    let rows = orders_db
        .query(
            "SELECT o.id::text, \
                    (SELECT at FROM order_history h WHERE h.order_id = o.id AND h.status = 'pending'), \
                    (SELECT at FROM order_history h WHERE h.order_id = o.id AND h.status = 'paid') \
               FROM orders o WHERE o.id::text = ANY($1)",
            &[&ids],
        )
        .await?;
    let mut placed_to_paid = Vec::new();
    let (mut first, mut last) = (
        None::<chrono::DateTime<chrono::Utc>>,
        None::<chrono::DateTime<chrono::Utc>>,
    );
    for r in &rows {
        let p: chrono::DateTime<chrono::Utc> = r.get(1);
        let d: chrono::DateTime<chrono::Utc> = r.get(2);
        placed_to_paid.push((d - p).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        first = Some(first.map_or(p, |f| f.min(p)));
        last = Some(last.map_or(d, |l| l.max(d)));
    }
    let span = (last.unwrap() - first.unwrap()).num_milliseconds() as f64 / 1000.0;
    let hops = hops(args, &orders_db, &ids).await?;
    println!();
    println!(
        "Checkout saga, {} orders from {} concurrent clients (one line each, fake provider):",
        ids.len(),
        args.concurrency
    );
    println!("| | value |");
    println!("|---|---:|");
    println!(
        "| POST /orders (201) | {:.0} orders/s |",
        ids.len() as f64 / placed.as_secs_f64()
    );
    println!(
        "| placed → paid, all orders | {:.0} orders/s |",
        ids.len() as f64 / span
    );
    println!(
        "| placed → paid p50 | {:.1} ms |",
        percentile(&mut placed_to_paid, 0.50)
    );
    println!(
        "| placed → paid p99 | {:.1} ms |",
        percentile(&mut placed_to_paid, 0.99)
    );
    println!(
        "| placed → paid, one order at a time (client view) p50 | {:.1} ms |",
        percentile(&mut unloaded, 0.50)
    );
    println!(
        "| placed → paid, one order at a time (client view) p99 | {:.1} ms |",
        percentile(&mut unloaded, 0.99)
    );
    cost.print(ids.len());
    idle(args, processes).await?;
    println!();
    println!("Where the time goes under that burst (per order, from the services' timestamps):");
    println!("| hop | p50 | p99 |");
    println!("|---|---:|---:|");
    for (hop, mut values) in hops {
        println!(
            "| {hop} | {:.1} ms | {:.1} ms |",
            percentile(&mut values, 0.50),
            percentile(&mut values, 0.99)
        );
    }
    Ok(())
}

/// Placed → paid with nothing else going on, as the client sees it (POST,
/// then polling GET every 2 ms until `paid`): the saga's own latency.
fn one_at_a_time(args: &Args, token: &str, body: &Value, suffix: u32) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::new();
    for i in 0..30 {
        let started = Instant::now();
        let key = format!("bench-single-{i}-{suffix}");
        let order = post(
            &args.app,
            "/orders",
            token,
            body,
            &[("idempotency-key", &key)],
        )?;
        let id = order["id"].as_str().context("no order id")?;
        loop {
            let current: Value = ureq::get(&format!("{}/orders/{id}", args.app))
                .set("authorization", &format!("Bearer {token}"))
                .call()?
                .into_json()?;
            if current["status"] == "paid" {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("order {id} was not paid within 30 s");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(latencies)
}

/// From `order.placed` entering the orders outbox to the reservation the
/// inventory handler wrote: one relay hop plus one trigger hop.
/// Where the time goes, hop by hop, from the services' own timestamps: an
/// outbox row's `created_at` (its transaction's start: the effect) and
/// `sent_at` (set after the broker acknowledged it, so a consumer can be
/// a little ahead of it), and the order's `paid` history entry.
async fn hops(
    args: &Args,
    orders_db: &tokio_postgres::Client,
    ids: &[String],
) -> anyhow::Result<Vec<(&'static str, Vec<f64>)>> {
    type Stamps = HashMap<String, (DateTime<Utc>, DateTime<Utc>)>;
    async fn outbox(
        client: &tokio_postgres::Client,
        event: &str,
        ids: &[String],
    ) -> anyhow::Result<Stamps> {
        Ok(client
            .query(
                "SELECT aggregate_id, created_at, sent_at FROM outbox \
                  WHERE event_type = $1 AND aggregate_id = ANY($2) AND sent_at IS NOT NULL",
                &[&event, &ids],
            )
            .await?
            .into_iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect())
    }
    let placed = outbox(orders_db, "order.placed", ids).await?;
    let reserved = outbox(
        &db(&args.database_url, "inventory").await?,
        "inventory.reserved",
        ids,
    )
    .await?;
    let charged = outbox(
        &db(&args.database_url, "payments").await?,
        "payment.succeeded",
        ids,
    )
    .await?;
    let paid: HashMap<String, DateTime<Utc>> = orders_db
        .query(
            "SELECT order_id::text, at FROM order_history WHERE status = 'paid' AND order_id::text = ANY($1)",
            &[&ids],
        )
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let ms = |a: DateTime<Utc>, b: DateTime<Utc>| {
        (b - a).num_microseconds().unwrap_or(0) as f64 / 1000.0
    };
    let mut rows: Vec<(&'static str, Vec<f64>)> = vec![
        ("orders outbox → broker (relay)", vec![]),
        ("broker → inventory reserves", vec![]),
        ("inventory outbox → broker (relay)", vec![]),
        ("broker → payments charges", vec![]),
        ("payments outbox → broker (relay)", vec![]),
        ("broker → orders marks paid", vec![]),
    ];
    for id in ids {
        let (Some(p), Some(r), Some(c), Some(done)) = (
            placed.get(id),
            reserved.get(id),
            charged.get(id),
            paid.get(id),
        ) else {
            continue;
        };
        for (row, value) in rows.iter_mut().zip([
            ms(p.0, p.1),
            ms(p.1, r.0),
            ms(r.0, r.1),
            ms(r.1, c.0),
            ms(c.0, c.1),
            ms(c.1, *done),
        ]) {
            row.1.push(value);
        }
    }
    Ok(rows)
}

/// What the shop has used and done so far: CPU per process and per kind
/// of host thread, the time the host's tasks ran per kind, PostgreSQL
/// transactions and statements, and the host's own counters.
#[derive(Debug, Clone, Default)]
struct Counters {
    cpu: Cpu,
    host_threads: BTreeMap<&'static str, f64>,
    busy: BTreeMap<&'static str, f64>,
    transactions: f64,
    /// Per database, by the components' own roles; the relay and this
    /// bench connect as the owner, counted under `OWNER`.
    statements: BTreeMap<String, f64>,
    consumed: f64,
    produced: f64,
    http_requests: f64,
}

/// Where `Counters::statements` counts the owner role's statements.
const OWNER: &str = "(owner role: outbox relays, this bench's polling)";

impl Counters {
    async fn read(args: &Args, processes: Processes) -> anyhow::Result<Self> {
        let postgres = db(&args.database_url, "postgres").await?;
        let transactions: i64 = postgres
            .query_one(
                "SELECT (sum(xact_commit) + sum(xact_rollback))::bigint FROM pg_stat_database",
                &[],
            )
            .await?
            .get(0);
        let metrics = cost::metrics(&args.app_admin)?;
        let busy = TaskKind::ALL
            .iter()
            .map(|kind| {
                let label = format!("task=\"{}\"", kind.label());
                let seconds = cost::metric_sum(&metrics, "mart_task_busy_seconds_total", &label);
                (kind.label(), seconds)
            })
            .collect();
        Ok(Self {
            cpu: Cpu::now(processes)?,
            host_threads: cost::thread_cpu_seconds(processes.host)?,
            busy,
            transactions: transactions as f64,
            statements: statements(&postgres).await?,
            consumed: cost::metric_sum(&metrics, "mart_kafka_messages_total", ""),
            produced: cost::metric_sum(&metrics, "mart_outbox_published_total", ""),
            http_requests: cost::metric_sum(&metrics, "mart_http_requests_total", ""),
        })
    }

    fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            cpu: self.cpu.since(&earlier.cpu),
            host_threads: difference(&self.host_threads, &earlier.host_threads),
            busy: difference(&self.busy, &earlier.busy),
            transactions: self.transactions - earlier.transactions,
            statements: difference(&self.statements, &earlier.statements),
            consumed: self.consumed - earlier.consumed,
            produced: self.produced - earlier.produced,
            http_requests: self.http_requests - earlier.http_requests,
        }
    }

    fn print(&self, orders: usize) {
        let per = |v: f64| v / orders as f64;
        println!();
        println!("What one order of that burst costs (all orders placed → paid; from /proc and the host's metrics):");
        println!("| per order | value | goal |");
        println!("|---|---:|---:|");
        println!(
            "| host CPU (every trigger: HTTP, Kafka handlers, relay, timer) | {:.2} ms | ≤ 1 ms |",
            per(self.cpu.host) * 1e3
        );
        println!(
            "| PostgreSQL CPU (postmaster and backends) | {:.2} ms | ≤ 1 ms |",
            per(self.cpu.postgres) * 1e3
        );
        println!(
            "| broker CPU (tansu, the test broker) | {:.2} ms | |",
            per(self.cpu.broker) * 1e3
        );
        println!(
            "| Kafka messages produced (outbox rows relayed) | {:.1} | |",
            per(self.produced)
        );
        println!(
            "| Kafka messages consumed by handlers | {:.1} | |",
            per(self.consumed)
        );
        println!(
            "| PostgreSQL transactions (every database; includes the bench's polling) | {:.1} | |",
            per(self.transactions)
        );
        println!(
            "| PostgreSQL statements (BEGIN and COMMIT included) | {} | |",
            if self.statements.is_empty() {
                "not counted (pg_stat_statements is not loaded)".to_string()
            } else {
                format!("{:.1}", per(self.statements.values().sum()))
            }
        );
        println!(
            "| HTTP requests to the app (the bench's POST and polls) | {:.1} | |",
            per(self.http_requests)
        );
        println!();
        println!("The host's CPU per order, by thread (from /proc/<pid>/task):");
        println!("| thread | CPU per order |");
        println!("|---|---:|");
        for (kind, seconds) in &self.host_threads {
            println!("| {kind} | {:.2} ms |", per(*seconds) * 1e3);
        }
        let listed: f64 = self.host_threads.values().sum();
        println!(
            "| threads that exited meanwhile (tokio's blocking pool) | {:.2} ms |",
            per(self.cpu.host - listed).max(0.0) * 1e3
        );
        println!();
        println!("Time tokio's threads ran each trigger's tasks, per order (mart_task_busy_seconds_total: the wall time of their polls, so a thread preempted mid-poll counts the wait too; what tokio's threads did outside them is PostgreSQL connections, the admin listener and the runtime itself):");
        println!("| tasks | time per order | share |");
        println!("|---|---:|---:|");
        let all: f64 = self.busy.values().sum();
        for (kind, seconds) in &self.busy {
            println!(
                "| {kind} | {:.2} ms | {:.0} % |",
                per(*seconds) * 1e3,
                100.0 * seconds / all.max(f64::MIN_POSITIVE)
            );
        }
        println!();
        println!("PostgreSQL statements per order, by database:");
        println!("| database | statements per order |");
        println!("|---|---:|");
        for (database, calls) in &self.statements {
            println!("| {database} | {:.1} |", per(*calls));
        }
    }
}

/// Statements run so far, per database by the components' roles
/// (`mart_<service>`) and in all databases by the owner role, from
/// pg_stat_statements; empty when PostgreSQL was started without it.
async fn statements(postgres: &tokio_postgres::Client) -> anyhow::Result<BTreeMap<String, f64>> {
    if postgres
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .is_err()
    {
        return Ok(BTreeMap::new());
    }
    let rows = match postgres
        .query(
            "SELECT CASE WHEN r.rolname LIKE 'mart\\_%' THEN d.datname ELSE $1 END, \
                    sum(s.calls)::float8 \
               FROM pg_stat_statements s \
               JOIN pg_database d ON d.oid = s.dbid \
               JOIN pg_roles r ON r.oid = s.userid \
              GROUP BY 1",
            &[&OWNER],
        )
        .await
    {
        Ok(rows) => rows,
        // Created, but not in shared_preload_libraries: nothing counted.
        Err(_) => return Ok(BTreeMap::new()),
    };
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// `now - earlier`, key by key.
fn difference<K: Ord + Clone>(
    now: &BTreeMap<K, f64>,
    earlier: &BTreeMap<K, f64>,
) -> BTreeMap<K, f64> {
    now.iter()
        .map(|(k, v)| (k.clone(), v - earlier.get(k).copied().unwrap_or(0.0)))
        .collect()
}

/// CPU the shop uses doing nothing (consumers polling, relays and timers
/// waking), as a share of one core, and the host's resident memory.
async fn idle(args: &Args, processes: Processes) -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_secs(5)).await; // let the burst's tail settle
    let start = Cpu::now(processes)?;
    let threads_start = cost::thread_cpu_seconds(processes.host)?;
    let watched = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let used = Cpu::now(processes)?.since(&start);
    let threads = difference(&cost::thread_cpu_seconds(processes.host)?, &threads_start);
    let share = |seconds: f64| 100.0 * seconds / watched.elapsed().as_secs_f64();
    println!();
    println!(
        "The shop idle for {} s (share of one core):",
        args.idle_secs
    );
    println!("| process | CPU | goal |");
    println!("|---|---:|---:|");
    println!("| host | {:.2} % | < 1 % |", share(used.host));
    for (kind, seconds) in &threads {
        println!("| host: {kind} | {:.2} % | |", share(*seconds));
    }
    println!("| PostgreSQL | {:.2} % | |", share(used.postgres));
    println!("| broker (tansu) | {:.2} % | |", share(used.broker));
    println!(
        "| host resident memory, idle | {:.0} MiB | |",
        cost::rss_mib(processes.host)?
    );
    Ok(())
}

async fn db(server: &str, database: &str) -> anyhow::Result<tokio_postgres::Client> {
    let url = format!(
        "{}/{database}",
        server.rsplit_once('/').context("a database URL")?.0
    );
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index]
}
