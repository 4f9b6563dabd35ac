//! Every metric the host exports, registered once and shared by the
//! triggers, the runtime and the admin listener (`GET /metrics`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus::{
    Counter, CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets from 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    /// Every metric family with its labels, for checking what dashboards
    /// query against what is exported.
    families: Vec<Family>,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    http_refused: IntCounterVec,
    http_connections_open: IntGauge,
    instances_active: IntGauge,
    instantiation: Histogram,
    pg_pool_size: IntGaugeVec,
    pg_pool_available: IntGaugeVec,
    kafka_handled: IntCounterVec,
    kafka_handler_duration: HistogramVec,
    kafka_lag: IntGaugeVec,
    kafka_stalled: IntGaugeVec,
    kafka_group_lag: IntGaugeVec,
    kafka_group_lag_stuck: IntGaugeVec,
    outbox_backlog: IntGaugeVec,
    outbox_published: IntCounterVec,
    outbox_latency: HistogramVec,
    timer_ticks: IntCounterVec,
    /// One resolved series per `TaskKind`, so that counting a poll costs
    /// no label lookup.
    task_busy: [Counter; TaskKind::ALL.len()],
}

/// A metric family: its full name (a histogram's series add `_bucket`,
/// `_sum` and `_count`) and its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub name: String,
    pub labels: Vec<String>,
}

/// The host's kinds of work, for attributing the time its worker threads
/// spend: every trigger runs on one tokio pool in one process, so `/proc`
/// cannot tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// HTTP connections: parsing, routing, the components they invoke.
    Http,
    /// Kafka partition workers: the handlers they invoke, offsets, retries.
    Kafka,
    /// The outbox relays: reading rows, publishing, marking them sent.
    Relay,
    /// Timer ticks and the components they invoke.
    Timer,
}

impl TaskKind {
    pub const ALL: [TaskKind; 4] = [
        TaskKind::Http,
        TaskKind::Kafka,
        TaskKind::Relay,
        TaskKind::Timer,
    ];

    pub fn label(self) -> &'static str {
        match self {
            TaskKind::Http => "http",
            TaskKind::Kafka => "kafka",
            TaskKind::Relay => "relay",
            TaskKind::Timer => "timer",
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("mart".into()), None).expect("a valid prefix");
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by component, route and status",
            ),
            &["component", "route", "status"],
        )
        .expect("valid metric");
        let http_refused = IntCounterVec::new(
            Opts::new(
                "http_refused_total",
                "HTTP requests and connections the host refused to protect itself, by reason \
                 (connections_full, busy, body_timeout)",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to the response head, by component and route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["component", "route"],
        )
        .expect("valid metric");
        let http_connections_open = IntGauge::new(
            "http_connections_open",
            "HTTP connections the host holds open now (the cap is MART_HTTP_MAX_CONNECTIONS)",
        )
        .expect("valid metric");
        let instances_active = IntGauge::new("instances_active", "Component instances alive now")
            .expect("valid metric");
        let instantiation = Histogram::with_opts(
            HistogramOpts::new(
                "instantiation_duration_seconds",
                "Time to instantiate a component",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let pg_pool_size = IntGaugeVec::new(
            Opts::new(
                "pg_pool_connections",
                "Open PostgreSQL connections per pool (a database, for one trigger kind)",
            ),
            &["pool", "trigger"],
        )
        .expect("valid metric");
        let pg_pool_available = IntGaugeVec::new(
            Opts::new(
                "pg_pool_idle_connections",
                "Idle PostgreSQL connections per pool (a database, for one trigger kind)",
            ),
            &["pool", "trigger"],
        )
        .expect("valid metric");
        let kafka_handled = IntCounterVec::new(
            Opts::new(
                "kafka_messages_total",
                "Kafka messages by component, topic and outcome (ok, retried, dead_lettered)",
            ),
            &["component", "topic", "outcome"],
        )
        .expect("valid metric");
        let kafka_handler_duration = HistogramVec::new(
            HistogramOpts::new(
                "kafka_handler_duration_seconds",
                "Time of one handler invocation (a batch), by component",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["component"],
        )
        .expect("valid metric");
        let kafka_lag = IntGaugeVec::new(
            Opts::new(
                "kafka_consumer_lag",
                "Messages not yet processed, per consumer group and topic-partition",
            ),
            &["group", "topic", "partition"],
        )
        .expect("valid metric");
        let kafka_stalled = IntGaugeVec::new(
            Opts::new(
                "kafka_partition_stalled_seconds",
                "How long a partition's next message has been failing and retried (0 when it moves)",
            ),
            &["group", "topic", "partition"],
        )
        .expect("valid metric");
        let kafka_group_lag = IntGaugeVec::new(
            Opts::new(
                "kafka_group_lag",
                "Messages past the consumer group's committed offset, per partition of every \
                 topic the group reads, whichever member owns it (or none), read from the broker \
                 every 10 s",
            ),
            &["group", "topic", "partition"],
        )
        .expect("valid metric");
        let kafka_group_lag_stuck = IntGaugeVec::new(
            Opts::new(
                "kafka_group_lag_stuck_seconds",
                "How long a partition has lagged without the group's committed offset moving \
                 (0 when it moves or has no lag): a partition nobody consumes keeps growing",
            ),
            &["group", "topic", "partition"],
        )
        .expect("valid metric");
        let outbox_backlog = IntGaugeVec::new(
            Opts::new(
                "outbox_backlog",
                "Outbox rows not yet relayed, per database",
            ),
            &["database"],
        )
        .expect("valid metric");
        let outbox_published = IntCounterVec::new(
            Opts::new(
                "outbox_published_total",
                "Outbox rows the broker acknowledged, per database and event type \
                 (the saga's funnel: order.placed, inventory.reserved, order.paid, order.cancelled)",
            ),
            &["database", "type"],
        )
        .expect("valid metric");
        let outbox_latency = HistogramVec::new(
            HistogramOpts::new(
                "outbox_relay_latency_seconds",
                "Per relay round: from the write of its oldest row to the broker's acknowledgement, per database",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["database"],
        )
        .expect("valid metric");
        let timer_ticks = IntCounterVec::new(
            Opts::new(
                "timer_ticks_total",
                "Timer trigger ticks by component and outcome (ok, failed)",
            ),
            &["component", "outcome"],
        )
        .expect("valid metric");
        let task_busy_vec = CounterVec::new(
            Opts::new(
                "task_busy_seconds_total",
                "Time the host's worker threads spent running each kind of task (http, kafka, \
                 relay, timer), summed over the polls of its futures: CPU time, unless a thread \
                 was preempted during a poll",
            ),
            &["task"],
        )
        .expect("valid metric");
        let task_busy = TaskKind::ALL.map(|kind| task_busy_vec.with_label_values(&[kind.label()]));
        let mut families = Vec::new();
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(http_refused.clone()),
            Box::new(http_connections_open.clone()),
            Box::new(instances_active.clone()),
            Box::new(instantiation.clone()),
            Box::new(pg_pool_size.clone()),
            Box::new(pg_pool_available.clone()),
            Box::new(kafka_handled.clone()),
            Box::new(kafka_handler_duration.clone()),
            Box::new(kafka_lag.clone()),
            Box::new(kafka_stalled.clone()),
            Box::new(kafka_group_lag.clone()),
            Box::new(kafka_group_lag_stuck.clone()),
            Box::new(outbox_backlog.clone()),
            Box::new(outbox_published.clone()),
            Box::new(outbox_latency.clone()),
            Box::new(timer_ticks.clone()),
            Box::new(task_busy_vec),
        ] {
            families.extend(collector.desc().into_iter().map(|desc| Family {
                name: format!("mart_{}", desc.fq_name),
                labels: desc.variable_labels.clone(),
            }));
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            registry,
            families,
            http_requests,
            http_duration,
            http_refused,
            http_connections_open,
            instances_active,
            instantiation,
            pg_pool_size,
            pg_pool_available,
            kafka_handled,
            kafka_handler_duration,
            kafka_lag,
            kafka_stalled,
            kafka_group_lag,
            kafka_group_lag_stuck,
            outbox_backlog,
            outbox_published,
            outbox_latency,
            timer_ticks,
            task_busy,
        }
    }

    /// Every metric family the host exports (even before its first
    /// observation, when Prometheus' text leaves it out).
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// `task`, with the time spent polling it counted as `kind`'s work.
    /// Wrap the root future of a spawned task only: a wrapped future inside
    /// another would be counted twice.
    pub fn busy<F: Future>(&self, kind: TaskKind, task: F) -> Busy<F> {
        Busy {
            task,
            counter: self.task_busy[kind as usize].clone(),
        }
    }

    /// `outcome`: `ok` or `failed`.
    pub fn timer_tick(&self, component: &str, outcome: &str) {
        self.timer_ticks
            .with_label_values(&[component, outcome])
            .inc();
    }

    /// `outcome`: `ok`, `retried` or `dead_lettered`; counted per message.
    pub fn kafka_messages(&self, component: &str, topic: &str, outcome: &str, count: u64) {
        self.kafka_handled
            .with_label_values(&[component, topic, outcome])
            .inc_by(count);
    }

    pub fn kafka_invocation(&self, component: &str, elapsed: Duration) {
        self.kafka_handler_duration
            .with_label_values(&[component])
            .observe(elapsed.as_secs_f64());
    }

    pub fn kafka_lag(&self, group: &str, topic: &str, partition: i32, lag: i64) {
        self.kafka_lag
            .with_label_values(&[group, topic, &partition.to_string()])
            .set(lag);
    }

    /// How long the partition's next message has been failing (0: it moves).
    pub fn kafka_stalled(&self, group: &str, topic: &str, partition: i32, stalled: Duration) {
        self.kafka_stalled
            .with_label_values(&[group, topic, &partition.to_string()])
            .set(stalled.as_secs() as i64);
    }

    /// The group's lag on one partition from its committed offset, and how
    /// long it has lagged without that offset moving.
    pub fn kafka_group_lag(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
        lag: i64,
        stuck: Duration,
    ) {
        let labels = [group, topic, &partition.to_string()];
        self.kafka_group_lag.with_label_values(&labels).set(lag);
        self.kafka_group_lag_stuck
            .with_label_values(&labels)
            .set(stuck.as_secs() as i64);
    }

    /// Drops the lag series of a partition this host no longer owns.
    pub fn kafka_lag_forget(&self, group: &str, topic: &str, partition: i32) {
        let _ = self
            .kafka_lag
            .remove_label_values(&[group, topic, &partition.to_string()]);
    }

    pub fn outbox_backlog(&self, database: &str, rows: i64) {
        self.outbox_backlog.with_label_values(&[database]).set(rows);
    }

    /// A relay round's acknowledged rows, by event type, and how old the
    /// oldest of them was.
    pub fn outbox_published<'a>(
        &self,
        database: &str,
        event_types: impl IntoIterator<Item = &'a str>,
        oldest_age: Duration,
    ) {
        for event_type in event_types {
            self.outbox_published
                .with_label_values(&[database, event_type])
                .inc();
        }
        self.outbox_latency
            .with_label_values(&[database])
            .observe(oldest_age.as_secs_f64());
    }

    /// A connection or request refused before any component ran.
    pub fn http_refused(&self, reason: &str) {
        self.http_refused.with_label_values(&[reason]).inc();
    }

    /// One HTTP request handled; `route` is the manifest route, never the raw path.
    pub fn http_request(&self, component: &str, route: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .with_label_values(&[component, route, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[component, route])
            .observe(elapsed.as_secs_f64());
    }

    pub fn instantiated(&self, elapsed: Duration) {
        self.instantiation.observe(elapsed.as_secs_f64());
    }

    /// Component instances alive now.
    pub fn instances_alive(&self) -> i64 {
        self.instances_active.get()
    }

    /// Counts an instance alive until the returned guard is dropped.
    pub fn instance_alive(&self) -> GaugeGuard {
        GaugeGuard::count(&self.instances_active)
    }

    /// Counts an accepted HTTP connection open until the returned guard is
    /// dropped, so operators see how near the host is to its cap.
    pub fn connection_open(&self) -> GaugeGuard {
        GaugeGuard::count(&self.http_connections_open)
    }

    /// `pool`: the database (`host:port/name`); `trigger`: the kind of
    /// trigger whose instances it serves (`http`, `kafka`, `timer`).
    pub fn pg_pool(&self, pool: &str, trigger: &str, size: usize, idle: usize) {
        self.pg_pool_size
            .with_label_values(&[pool, trigger])
            .set(size as i64);
        self.pg_pool_available
            .with_label_values(&[pool, trigger])
            .set(idle as i64);
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

pin_project_lite::pin_project! {
    /// A future whose polls are timed (see `Metrics::busy`). A poll never
    /// blocks, so its wall time is the CPU time it used unless the thread
    /// was preempted meanwhile; reading the monotonic clock costs tens of
    /// nanoseconds where the thread's CPU clock costs a system call.
    pub struct Busy<F> {
        #[pin]
        task: F,
        counter: Counter,
    }
}

impl<F: Future> Future for Busy<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let started = Instant::now();
        let poll = this.task.poll(cx);
        this.counter.inc_by(started.elapsed().as_secs_f64());
        poll
    }
}

/// One unit of a gauge of things alive now (instances, connections): added
/// when made, taken away when dropped, so no early return can leak a count.
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    fn count(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_recorded() {
        let m = Metrics::new();
        m.http_request("catalog", "/products/...", 200, Duration::from_millis(3));
        m.http_request("catalog", "/products/...", 404, Duration::from_millis(1));
        let guard = m.instance_alive();
        m.pg_pool("127.0.0.1:5432/catalog", "http", 4, 3);
        let text = m.render();
        assert!(text.contains(r#"mart_http_requests_total{component="catalog",route="/products/...",status="200"} 1"#), "{text}");
        assert!(text.contains("mart_instances_active 1"), "{text}");
        assert!(
            text.contains(
                r#"mart_pg_pool_connections{pool="127.0.0.1:5432/catalog",trigger="http"} 4"#
            ),
            "{text}"
        );
        drop(guard);
        assert!(m.render().contains("mart_instances_active 0"));
        m.kafka_group_lag(
            "mart.orders-events",
            "mart.payments",
            3,
            7,
            Duration::from_secs(90),
        );
        let text = m.render();
        assert!(text.contains(r#"mart_kafka_group_lag{group="mart.orders-events",partition="3",topic="mart.payments"} 7"#), "{text}");
        assert!(text.contains(r#"mart_kafka_group_lag_stuck_seconds{group="mart.orders-events",partition="3",topic="mart.payments"} 90"#), "{text}");
        assert!(m.families().iter().any(
            |f| f.name == "mart_kafka_group_lag" && f.labels == ["group", "topic", "partition"]
        ));
    }

    #[test]
    fn the_time_a_task_runs_is_counted_for_its_kind_only() {
        let m = Metrics::new();
        let busy = async {
            let started = Instant::now();
            while started.elapsed() < Duration::from_millis(20) {
                std::hint::spin_loop();
            }
        };
        run_to_end(m.busy(TaskKind::Relay, busy));
        let text = m.render();
        let seconds = |task: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(&format!("mart_task_busy_seconds_total{{task=\"{task}\"}} "))
                })
                .map(|v| v.parse::<f64>().unwrap())
                .unwrap_or_else(|| panic!("no series for {task}: {text}"))
        };
        assert!(seconds("relay") >= 0.02, "{text}");
        assert_eq!(seconds("http"), 0.0, "{text}");
    }

    /// Polls a future that never waits to its end.
    fn run_to_end<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
        }
    }
}
