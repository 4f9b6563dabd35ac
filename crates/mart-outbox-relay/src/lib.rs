//! The outbox relay. Services write events into their database's `outbox`
//! table in the same transaction as the change they announce; this relay
//! publishes them to Kafka (CloudEvents, in the format the manifest chose
//! for the service's database: `Database::format`; topic
//! `mart.<aggregate_type>`, key = aggregate id) and marks them sent only
//! after the broker acknowledged them.
//!
//! Guarantees: no event is lost (a row stays unsent until acknowledged,
//! across broker outages and host crashes); events of one aggregate keep
//! their order (rows go out in `seq` order with one request in flight per
//! broker, and one key always maps to one partition); an event may be published
//! more than once (a crash between the acknowledgement and the update), so
//! consumers dedupe on the event id (`processed_events`).
//!
//! One relay per database across all hosts: a session-level advisory lock
//! elects it; the others stand by and take over when its session ends.
//! It wakes on `NOTIFY mart_outbox` (sent by a trigger at commit) and polls
//! as a fallback.
//!
//! Retention is a separate task: sent outbox rows are pruned by the relay of
//! their database, and the handlers' processed-event records by a retention
//! task per database that has them (`RelayOptions::processed_events`), so
//! a database with handlers but no outbox (carts, notifications) is pruned
//! without being polled for events it never writes. `check_databases`
//! refuses at start a relayed database that has no outbox.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use mart_domain::events::{self, EncodedEvent, Envelope, EventFormat};
use mart_kafka::{Publisher, Record};
use mart_metrics::{Metrics, TaskKind};
use mart_telemetry::{Span, SpanKind, TraceParent};
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// The span of one event's publish (OpenTelemetry's messaging conventions),
/// a child of the trace that wrote the event, or a new trace.
fn publish_span(topic: &str, written_in: Option<&TraceParent>, envelope: &Envelope) -> Span {
    let mut span = Span::start(|| format!("send {topic}"), SpanKind::Producer, written_in);
    if span.is_recording() {
        span.set("messaging.system", "kafka");
        span.set("messaging.operation.type", "send");
        span.set("messaging.destination.name", topic.to_string());
        span.set("messaging.message.id", envelope.id.clone());
        span.set("cloudevents.event_type", envelope.event_type.clone());
        span.set("cloudevents.event_source", envelope.source.clone());
    }
    span
}

/// `pg_try_advisory_lock` key of the relay ("mart-out" in ASCII).
const RELAY_LOCK: i64 = 0x6d61_7274_2d6f_7574;
/// The channel the outbox trigger notifies (migrations/outbox_notify.sql).
const CHANNEL: &str = "mart_outbox";

#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Rows read and published per round.
    pub batch_size: i64,
    /// Fallback poll when no notification arrives.
    pub poll_interval: Duration,
    /// How long sent outbox rows and processed-event records are kept.
    pub retention: Duration,
    /// How often pruning runs.
    pub prune_interval: Duration,
    /// The databases whose `processed_events` records (the handlers'
    /// memory of events applied) are pruned after `retention`.
    pub processed_events: Vec<HandlerDatabase>,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_interval: Duration::from_secs(600),
            processed_events: Vec::new(),
        }
    }
}

/// A database whose handlers record the events they applied
/// (`processed_events`), pruned by the retention task.
#[derive(Debug, Clone)]
pub struct HandlerDatabase {
    pub name: String,
    pub url: String,
}

/// Refuses, before anything starts, a relayed database without an `outbox`
/// table (it would be polled for ever for events it never writes) and a
/// database listed for retention without `processed_events`, naming the
/// database and the setting. A database that cannot be reached now is not
/// refused (the server may still be starting): its relay waits for it.
pub async fn check_databases(
    relayed: &[Database],
    processed_events: &[HandlerDatabase],
) -> anyhow::Result<()> {
    let relayed = relayed.iter().map(|db| {
        (
            db.name.as_str(),
            db.url.as_str(),
            "outbox",
            "outbox.databases",
        )
    });
    let pruned = processed_events.iter().map(|db| {
        (
            db.name.as_str(),
            db.url.as_str(),
            "processed_events",
            "outbox.processed_events",
        )
    });
    for (name, url, table, setting) in relayed.chain(pruned) {
        match has_table(url, table).await {
            Ok(true) => {}
            Ok(false) => anyhow::bail!(
                "[application.trigger.kafka] {setting} lists database `{name}`, which has no \
                 `{table}` table{}",
                if table == "outbox" {
                    ": only a database its service writes events to has an outbox; remove it \
                     from outbox.databases (list it in outbox.processed_events if its event \
                     handlers' records are to be pruned), or run its migrations first"
                } else {
                    ": remove it from outbox.processed_events, or run its migrations first"
                }
            ),
            Err(e) => tracing::warn!(database = %name, error = %format!("{e:#}"),
                "cannot check the database at start; its relay and retention wait for it"),
        }
    }
    Ok(())
}

/// Whether the database at `url` has `table` (in its search path).
async fn has_table(url: &str, table: &str) -> anyhow::Result<bool> {
    let connect = tokio_postgres::connect(url, NoTls);
    let (client, connection) = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .context("timed out connecting")??;
    let driver = tokio::spawn(connection);
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await?
        .get(0);
    drop(client);
    let _ = driver.await;
    Ok(exists)
}

/// A database whose outbox is relayed.
#[derive(Debug, Clone)]
pub struct Database {
    pub name: String,
    pub url: String,
    /// The format its events go out in (chosen per service in the manifest).
    pub format: EventFormat,
}

/// The running relays, one task per database.
pub struct OutboxRelay {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl OutboxRelay {
    pub fn start(
        databases: Vec<Database>,
        publisher: Publisher,
        metrics: Arc<Metrics>,
        options: RelayOptions,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut tasks: Vec<_> = databases
            .into_iter()
            .map(|db| {
                let relay = DatabaseRelay {
                    db,
                    publisher: publisher.clone(),
                    metrics: metrics.clone(),
                    options: options.clone(),
                    stop: stopped.clone(),
                };
                tokio::spawn(metrics.busy(TaskKind::Relay, relay.run()))
            })
            .collect();
        tasks.extend(options.processed_events.iter().cloned().map(|db| {
            let retention = Retention {
                db,
                retention: options.retention,
                interval: options.prune_interval,
                stop: stopped.clone(),
            };
            tokio::spawn(metrics.busy(TaskKind::Relay, retention.run()))
        }));
        Self { stop, tasks }
    }

    /// Stops relaying; a round in progress finishes (rows it published are
    /// marked sent), up to `grace`.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let all = futures::future::join_all(self.tasks);
        let _ = tokio::time::timeout(grace, all).await;
    }
}

struct DatabaseRelay {
    db: Database,
    publisher: Publisher,
    metrics: Arc<Metrics>,
    options: RelayOptions,
    stop: watch::Receiver<bool>,
}

impl DatabaseRelay {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Relays until stopped, reconnecting with backoff after errors.
    async fn run(mut self) {
        let mut backoff = Duration::from_millis(250);
        while !self.stopped() {
            match self.run_connected().await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(database = %self.db.name, error = %format!("{e:#}"), "outbox relay interrupted; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.stop.wait_for(|s| *s) => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// One database session: wait to lead, then relay. `Ok` only when stopped.
    async fn run_connected(&mut self) -> anyhow::Result<()> {
        let (client, mut connection) = tokio_postgres::connect(&self.db.url, NoTls)
            .await
            .with_context(|| format!("connecting to database `{}`", self.db.name))?;
        let (wake_tx, mut wake) = mpsc::unbounded_channel::<()>();
        let driver = tokio::spawn(self.metrics.busy(TaskKind::Relay, async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        let _ = wake_tx.send(());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "outbox relay connection closed");
                        break;
                    }
                }
            }
        }));
        let result = self.lead_and_relay(&client, &mut wake).await;
        drop(client);
        driver.abort();
        result
    }

    async fn lead_and_relay(
        &mut self,
        client: &Client,
        wake: &mut mpsc::UnboundedReceiver<()>,
    ) -> anyhow::Result<()> {
        if !self.wait_for_outbox_and_lock(client).await? {
            return Ok(());
        }
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .context("LISTEN")?;
        tracing::info!(database = %self.db.name, "relaying the outbox");
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            if last_prune.is_none_or(|t| t.elapsed() >= self.options.prune_interval) {
                self.prune(client).await?;
                last_prune = Some(tokio::time::Instant::now());
            }
            let published = self.relay_round(client).await?;
            if self.stopped() {
                return Ok(());
            }
            if published as i64 == self.options.batch_size {
                continue; // more rows are waiting
            }
            tokio::select! {
                _ = wake.recv() => {}
                _ = tokio::time::sleep(self.options.poll_interval) => {}
                _ = self.stop.wait_for(|s| *s) => return Ok(()),
            }
            while wake.try_recv().is_ok() {}
        }
    }

    /// Waits until the database has an outbox (its migrations ran) and this
    /// session holds the relay lock. `false` if stopped first.
    async fn wait_for_outbox_and_lock(&mut self, client: &Client) -> anyhow::Result<bool> {
        let mut announced = false;
        let mut missing = false;
        loop {
            let has_outbox: bool = client
                .query_one("SELECT to_regclass('outbox') IS NOT NULL", &[])
                .await?
                .get(0);
            if !has_outbox && !missing {
                tracing::warn!(database = %self.db.name, "no outbox table (yet); waiting for the migrations");
                missing = true;
            }
            if has_outbox {
                let locked: bool = client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&RELAY_LOCK])
                    .await?
                    .get(0);
                if locked {
                    return Ok(true);
                }
                if !announced {
                    tracing::info!(database = %self.db.name, "another host relays this outbox; standing by");
                    announced = true;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = self.stop.wait_for(|s| *s) => return Ok(false),
            }
        }
    }

    /// Publishes the oldest unsent rows, in order, and marks those the
    /// broker acknowledged. Returns how many were read.
    async fn relay_round(&self, client: &Client) -> anyhow::Result<usize> {
        let rows = client
            .query(
                "SELECT seq, id::text, aggregate_type, aggregate_id, event_type, payload::text, \
                        created_at, traceparent \
                   FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1",
                &[&self.options.batch_size],
            )
            .await
            .context("reading the outbox")?;
        let backlog = rows.len();
        if rows.is_empty() {
            self.metrics.outbox_backlog(&self.db.name, 0);
            return Ok(0);
        }
        let source = format!("/mart/{}", self.db.name);
        let mut pending = Vec::with_capacity(rows.len());
        let mut enqueue_failure = None;
        for row in &rows {
            let created: chrono::DateTime<chrono::Utc> = row.get(6);
            let aggregate_type: String = row.get(2);
            let event_type: String = row.get(4);
            if let Err(why) = events::check_origin(&self.db.name, &aggregate_type, &event_type) {
                // Never published, never skipped: it and the rows behind
                // it wait, loudly, until an operator removes it.
                let id: String = row.get(1);
                tracing::error!(database = %self.db.name, event = %id,
                    "outbox row refused: {why}; it and the rows after it wait until it is removed");
                enqueue_failure = Some(anyhow::anyhow!("outbox row {id} refused: {why}"));
                break;
            }
            let envelope = Envelope {
                id: row.get(1),
                event_type,
                source: source.clone(),
                time: created.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                subject: row.get(3),
                data: row.get::<_, String>(5).into_bytes(),
            };
            let topic = events::topic(&aggregate_type);
            // The trace of the change that wrote the event goes on through
            // this publish to the handlers.
            let written_in = row
                .get::<_, Option<String>>(7)
                .as_deref()
                .and_then(TraceParent::parse);
            let span = publish_span(&topic, written_in.as_ref(), &envelope);
            let EncodedEvent { mut headers, value } = self.encode(&envelope);
            headers.push((
                "traceparent".into(),
                span.context().to_string().into_bytes(),
            ));
            let record = Record {
                topic,
                partition: None,
                key: Some(envelope.subject.clone().into_bytes()),
                headers,
                value,
            };
            let seq: i64 = row.get(0);
            match self.publisher.enqueue(&record) {
                Ok(delivery) => pending.push((seq, created, envelope.event_type, delivery, span)),
                Err(e) => {
                    // Stop here: a later row of the same aggregate must not
                    // overtake this one. The rest go out next round, in order.
                    tracing::warn!(database = %self.db.name, error = %e, "cannot queue outbox row");
                    enqueue_failure = Some(e.into());
                    break;
                }
            }
        }
        let mut acknowledged = Vec::with_capacity(pending.len());
        let mut oldest = None;
        let mut failure = enqueue_failure;
        let mut acknowledged_types = Vec::with_capacity(pending.len());
        for (seq, created, event_type, delivery, mut span) in pending {
            match Publisher::acknowledged(delivery).await {
                Ok((partition, offset)) => {
                    acknowledged.push(seq);
                    acknowledged_types.push(event_type);
                    oldest.get_or_insert(created);
                    span.set("messaging.destination.partition.id", partition.to_string());
                    span.set("messaging.kafka.offset", offset);
                }
                Err(e) => {
                    span.fail(e.to_string());
                    failure.get_or_insert(e.into());
                }
            }
        }
        if !acknowledged.is_empty() {
            client
                .execute(
                    "UPDATE outbox SET sent_at = now() WHERE seq = ANY($1)",
                    &[&acknowledged],
                )
                .await
                .context("marking outbox rows sent")?;
            let age = oldest
                .map(|t| (chrono::Utc::now() - t).to_std().unwrap_or_default())
                .unwrap_or_default();
            self.metrics.outbox_published(
                &self.db.name,
                acknowledged_types.iter().map(String::as_str),
                age,
            );
        }
        self.metrics
            .outbox_backlog(&self.db.name, (backlog - acknowledged.len()) as i64);
        match failure {
            Some(e) => Err(e).context("publishing outbox rows"),
            None => Ok(backlog),
        }
    }

    /// An outbox row as a record in this service's format. An event the
    /// Protobuf formats cannot carry (a type this version does not know, or
    /// data that does not fit its type) goes out as JSON, which every
    /// consumer reads: held back, it would stop the rows behind it, and
    /// the consumers name what is wrong with it when they dead-letter it.
    fn encode(&self, envelope: &Envelope) -> EncodedEvent {
        envelope.encode(self.db.format).unwrap_or_else(|e| {
            tracing::warn!(database = %self.db.name, event = %envelope.id, error = %e,
                "event sent as JSON: {} cannot carry it", self.db.format.content_type());
            envelope
                .encode(EventFormat::Json)
                .expect("JSON carries any event")
        })
    }

    /// Deletes sent rows older than the retention (processed-event records
    /// are the retention task's).
    async fn prune(&self, client: &Client) -> anyhow::Result<()> {
        let cutoff = cutoff(self.options.retention);
        let sent = client
            .execute(
                "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1",
                &[&cutoff],
            )
            .await
            .context("pruning the outbox")?;
        if sent > 0 {
            tracing::info!(database = %self.db.name, sent, "pruned sent outbox rows");
        }
        Ok(())
    }
}

fn cutoff(retention: Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX)
}

/// Prunes one database's processed-event records past the retention, at
/// start and then every `interval`. Idempotent, so every host runs it (no
/// lock): the records must outlive the longest redelivery window, which
/// the retention (default 7 days) covers.
struct Retention {
    db: HandlerDatabase,
    retention: Duration,
    interval: Duration,
    stop: watch::Receiver<bool>,
}

impl Retention {
    async fn run(mut self) {
        loop {
            if let Err(e) = self.prune().await {
                tracing::warn!(database = %self.db.name, error = %format!("{e:#}"),
                    "pruning processed events failed; trying again later");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = self.stop.wait_for(|s| *s) => return,
            }
        }
    }

    async fn prune(&self) -> anyhow::Result<()> {
        let (client, connection) = tokio_postgres::connect(&self.db.url, NoTls)
            .await
            .with_context(|| format!("connecting to database `{}`", self.db.name))?;
        let driver = tokio::spawn(connection);
        // Without the setting, the host lists every relayed database, and
        // not each has handlers: a database without the table has nothing
        // to prune (`check_databases` refused it if it was listed).
        let processed = match client
            .query_one("SELECT to_regclass('processed_events') IS NOT NULL", &[])
            .await
        {
            Ok(row) if row.get::<_, bool>(0) => client
                .execute(
                    "DELETE FROM processed_events WHERE processed_at < $1",
                    &[&cutoff(self.retention)],
                )
                .await
                .context("pruning processed events"),
            Ok(_) => Ok(0),
            Err(e) => Err(e).context("looking for processed_events"),
        };
        drop(client);
        let _ = driver.await;
        let processed = processed?;
        if processed > 0 {
            tracing::info!(database = %self.db.name, processed, "pruned old processed-event records");
        }
        Ok(())
    }
}
