//! One consumer-group member per `[[trigger.kafka]]` entry. A dedicated
//! thread polls librdkafka, hands each message to its partition's worker,
//! applies backpressure by pausing partitions whose workers fall behind,
//! and commits finished offsets in batches. Rebalance callbacks run on that
//! thread too, so a revoked partition's worker can be drained and its
//! progress committed before the partition moves to another member.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mart_kafka::{KafkaClient, Publisher};
use mart_manifest::KafkaTrigger;
use mart_metrics::{Metrics, TaskKind};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Message as _, OwnedMessage};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::invoke::Handler;
use crate::partition::{Progress, TopicPartition, Worker, WorkerContext};

/// How often finished offsets are committed (asynchronously).
const COMMIT_INTERVAL: Duration = Duration::from_millis(200);
/// How often paused partitions are reconsidered.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(500);
/// How long a revoked partition's worker may take to finish its invocation.
const REVOKE_GRACE: Duration = Duration::from_secs(30);
/// How long leaving the group may take before the thread is abandoned.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct TriggerConsumer {
    component: String,
    topics: Vec<String>,
    group: String,
    stop: Arc<AtomicBool>,
    grace: Arc<Mutex<Duration>>,
    /// Fires once the final commit is done (before librdkafka's close).
    committed: Option<tokio::sync::oneshot::Receiver<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TriggerConsumer {
    pub fn start(
        client: &KafkaClient,
        trigger: KafkaTrigger,
        group: String,
        handler: Handler,
        dead_letters: Publisher,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let component = handler.component_id().to_string();
        let topics = trigger.topics.clone();
        let worker_context = Arc::new(WorkerContext {
            permits: Semaphore::new(trigger.concurrency as usize),
            trigger: trigger.clone(),
            group: group.clone(),
            handler,
            dead_letters,
            ledger: crate::parking::Ledger::new(client, &group)?,
            metrics: metrics.clone(),
        });
        let partitions = Arc::new(Partitions::default());
        let context = GroupContext {
            partitions: partitions.clone(),
            runtime: tokio::runtime::Handle::current(),
            group: group.clone(),
            metrics: metrics.clone(),
        };
        // Tuning a deployment may override in `properties`. The fetch wait:
        // the test broker (tansu) holds every fetch for its full wait, so
        // hops wait 10 ms at most; a Kafka broker answers as soon as data
        // arrives, so there a longer wait (Kafka's default, 500 ms) costs no
        // latency and polls far less when the shop is idle (README,
        // Benchmarks).
        let tuning = [
            ("fetch.wait.max.ms", "10"),
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
            // Also the rebalance timeout: how long a rebalance waits for a
            // member that does not rejoin. The poll thread polls every 50 ms
            // and blocks only while draining revoked partitions (REVOKE_GRACE).
            ("max.poll.interval.ms", "45000"),
            ("statistics.interval.ms", "1000"),
        ];
        let mut config = client.base_with_defaults(&format!("mart-{component}"), &tuning);
        // Static membership (KIP-345) when the host has a stable identity:
        // a host restarted after a crash takes its partitions back at once
        // instead of waiting for the broker to expire its old member.
        if let Some(instance) = client.instance_id() {
            config.set("group.instance.id", format!("{instance}.{group}"));
        }
        let consumer: BaseConsumer<GroupContext> = config
            .set("group.id", &group)
            // Offsets are committed by us, only for finished messages.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", trigger.start.as_str())
            .set("enable.partition.eof", "false")
            .set("allow.auto.create.topics", "false")
            .create_with_context(context)
            .with_context(|| format!("creating the Kafka consumer for `{component}`"))?;
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topic_refs)
            .with_context(|| format!("subscribing `{component}` to {topics:?}"))?;
        // Shared with the group's lag monitor, whose requests block.
        let consumer = Arc::new(consumer);

        let stop = Arc::new(AtomicBool::new(false));
        crate::group_lag::spawn_monitor(
            Arc::downgrade(&consumer),
            group.clone(),
            topics.clone(),
            trigger.start.as_str() == "earliest",
            metrics.clone(),
            stop.clone(),
        )
        .context("spawning the Kafka lag monitor thread")?;
        let grace = Arc::new(Mutex::new(REVOKE_GRACE));
        let (committed_tx, committed_rx) = tokio::sync::oneshot::channel();
        let poller = Poller {
            consumer,
            partitions,
            worker_context,
            runtime: tokio::runtime::Handle::current(),
            stop: stop.clone(),
            grace: grace.clone(),
            group: group.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("kafka-{component}"))
            .spawn(move || poller.run(committed_tx))
            .context("spawning the Kafka consumer thread")?;
        tracing::info!(%component, ?topics, %group, "Kafka trigger started");
        Ok(Self {
            component,
            topics,
            group,
            stop,
            grace,
            committed: Some(committed_rx),
            thread: Some(thread),
        })
    }

    pub fn component(&self) -> &str {
        &self.component
    }

    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub async fn shutdown(mut self, grace: Duration) {
        *self.grace.lock().expect("not poisoned") = grace;
        self.stop.store(true, Ordering::SeqCst);
        if let Some(committed) = self.committed.take() {
            let _ = tokio::time::timeout(grace + CLOSE_TIMEOUT, committed).await;
        }
        // Leaving the group can block inside librdkafka for minutes with some
        // brokers after the group already let go of us; wait briefly only.
        if let Some(thread) = self.thread.take() {
            let joined = tokio::task::spawn_blocking(move || thread.join());
            if tokio::time::timeout(CLOSE_TIMEOUT, joined).await.is_err() {
                tracing::warn!(component = %self.component, "Kafka consumer close is slow; not waiting");
            }
        }
    }
}

/// The partitions this member works on, shared by the poll thread and the
/// workers.
#[derive(Default)]
struct Partitions {
    workers: Mutex<HashMap<TopicPartition, WorkerHandle>>,
    /// Per partition: the next offset to commit and who reported it.
    finished: Mutex<HashMap<TopicPartition, Finished>>,
    next_worker: AtomicU64,
}

struct Finished {
    next_offset: i64,
    committed: bool,
}

struct WorkerHandle {
    id: u64,
    /// The first message handed to the worker: where its partition
    /// restarts if it dies before finishing anything.
    first_offset: i64,
    sender: mpsc::UnboundedSender<OwnedMessage>,
    queued: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
    /// Taken by whoever waits for the worker to exit.
    done: Option<std::sync::mpsc::Receiver<()>>,
    paused: bool,
}

impl Progress for Partitions {
    fn finished(&self, partition: &TopicPartition, worker: u64, next_offset: i64) {
        // A worker whose partition was revoked (and maybe re-assigned to a
        // newer worker) must not report progress for it any more.
        let current = self
            .workers
            .lock()
            .expect("not poisoned")
            .get(partition)
            .map(|w| w.id);
        if current != Some(worker) {
            return;
        }
        self.finished.lock().expect("not poisoned").insert(
            partition.clone(),
            Finished {
                next_offset,
                committed: false,
            },
        );
    }
}

impl Partitions {
    /// Finished offsets to commit, marked as committed: those not committed
    /// yet, or all of them (`everything`, for the synchronous commits on
    /// revoke and shutdown: an earlier asynchronous commit may have failed
    /// without telling us).
    fn take_uncommitted(
        &self,
        only: Option<&[TopicPartition]>,
        everything: bool,
    ) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        let mut finished = self.finished.lock().expect("not poisoned");
        for ((topic, partition), f) in finished.iter_mut() {
            let wanted = only.is_none_or(|o| o.iter().any(|(t, p)| t == topic && p == partition));
            if wanted && (everything || !f.committed) {
                f.committed = true;
                let _ = list.add_partition_offset(topic, *partition, Offset::Offset(f.next_offset));
            }
        }
        list
    }

    /// Stops the workers of `partitions`, waits for each to finish what it
    /// is running (up to `grace` in all) and forgets them.
    fn stop_workers(&self, partitions: &[TopicPartition], grace: Duration) {
        // Workers stay registered while they finish, so the progress they
        // report on the way out still counts; they are forgotten after.
        let waits: Vec<(u64, std::sync::mpsc::Receiver<()>)> = {
            let mut workers = self.workers.lock().expect("not poisoned");
            let mut waits = Vec::new();
            for p in partitions {
                if let Some(w) = workers.get_mut(p) {
                    let _ = w.stop.send(true);
                    if let Some(done) = w.done.take() {
                        waits.push((w.id, done));
                    }
                }
            }
            waits
        };
        let deadline = Instant::now() + grace;
        for (id, done) in waits {
            let left = deadline.saturating_duration_since(Instant::now());
            if done.recv_timeout(left).is_err() {
                tracing::warn!(worker = id, "a Kafka worker did not stop in time");
            }
        }
        let mut workers = self.workers.lock().expect("not poisoned");
        for p in partitions {
            workers.remove(p);
        }
    }

    fn forget_finished(&self, partitions: &[TopicPartition]) {
        let mut finished = self.finished.lock().expect("not poisoned");
        for p in partitions {
            finished.remove(p);
        }
    }
}

struct GroupContext {
    partitions: Arc<Partitions>,
    runtime: tokio::runtime::Handle,
    group: String,
    metrics: Arc<Metrics>,
}

impl ClientContext for GroupContext {
    /// librdkafka's statistics (every `statistics.interval.ms`) carry each
    /// partition's end offset; lag is that minus what this member finished
    /// (or librdkafka's own lag before it finished anything).
    fn stats(&self, statistics: rdkafka::Statistics) {
        let finished = self.partitions.finished.lock().expect("not poisoned");
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                if *partition < 0 || p.hi_offset < 0 {
                    continue; // the internal "unassigned" partition, or unknown
                }
                let lag = match finished.get(&(topic.clone(), *partition)) {
                    Some(f) => p.hi_offset - f.next_offset,
                    None if p.consumer_lag >= 0 => p.consumer_lag,
                    None => continue,
                };
                self.metrics
                    .kafka_lag(&self.group, topic, *partition, lag.max(0));
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    /// Before partitions leave this member: drain their workers and commit
    /// what they finished, so the next owner starts exactly there.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let revoked: Vec<TopicPartition> = list
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        tracing::info!(group = %self.group, ?revoked, "partitions revoked");
        let _entered = self.runtime.enter();
        self.partitions.stop_workers(&revoked, REVOKE_GRACE);
        let offsets = self.partitions.take_uncommitted(Some(&revoked), true);
        if offsets.count() > 0 {
            if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
                tracing::warn!(group = %self.group, error = %e, "commit on revoke failed");
            }
        }
        self.partitions.forget_finished(&revoked);
        for (topic, partition) in &revoked {
            self.metrics
                .kafka_lag_forget(&self.group, topic, *partition);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                // librdkafka keeps a partition paused by the application
                // paused across revoke and re-assignment; this member has no
                // worker (and so no backlog) for it any more.
                if let Err(e) = consumer.resume(list) {
                    tracing::warn!(group = %self.group, error = %e, "resuming assigned partitions failed");
                }
                let assigned: Vec<_> = list
                    .elements()
                    .iter()
                    .map(|e| format!("{}/{}", e.topic(), e.partition()))
                    .collect();
                tracing::info!(group = %self.group, ?assigned, "partitions assigned");
            }
            Rebalance::Error(e) => {
                tracing::warn!(group = %self.group, error = %e, "rebalance failed")
            }
            Rebalance::Revoke(_) => {}
        }
    }
}

/// The poll thread's state.
struct Poller {
    consumer: Arc<BaseConsumer<GroupContext>>,
    partitions: Arc<Partitions>,
    worker_context: Arc<WorkerContext>,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
    grace: Arc<Mutex<Duration>>,
    group: String,
}

impl Poller {
    /// Backlog of one partition at which it is paused, and resumed below half.
    fn high_water(&self) -> usize {
        (self.worker_context.trigger.batch_size as usize * 4).max(500)
    }

    fn run(self, committed: tokio::sync::oneshot::Sender<()>) {
        let mut last_commit = Instant::now();
        let mut last_housekeeping = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            match self.consumer.poll(Duration::from_millis(50)) {
                Some(Ok(message)) => self.dispatch(message.detach()),
                Some(Err(e)) => {
                    tracing::warn!(group = %self.group, error = %e, "Kafka consumer error")
                }
                None => {}
            }
            if last_commit.elapsed() >= COMMIT_INTERVAL {
                self.commit(CommitMode::Async);
                last_commit = Instant::now();
            }
            if last_housekeeping.elapsed() >= HOUSEKEEPING_INTERVAL {
                self.restart_dead_workers();
                self.resume_drained();
                last_housekeeping = Instant::now();
            }
        }
        self.finish(committed);
    }

    fn dispatch(&self, message: OwnedMessage) {
        let key = (message.topic().to_string(), message.partition());
        let mut workers = self.partitions.workers.lock().expect("not poisoned");
        let offset = message.offset();
        let handle = workers
            .entry(key.clone())
            .or_insert_with(|| self.spawn_worker(key.clone(), offset));
        handle.queued.fetch_add(1, Ordering::Relaxed);
        if handle.sender.send(message).is_err() {
            // The worker died (a panic in our code): messages it held are
            // gone from memory but not from Kafka. Forget it and fetch the
            // partition again from its first unfinished message; the next
            // message starts a new worker.
            let lost = workers.remove(&key).expect("just used");
            drop(workers);
            self.restart_partition(&key, lost);
            return;
        }
        if !handle.paused
            && handle.queued.load(Ordering::Relaxed) >= self.high_water()
            && self.set_paused(&key, true)
        {
            handle.paused = true;
        }
    }

    /// Workers that died (their receiver is gone) without a message
    /// arriving since: a paused or quiet partition would otherwise wait.
    fn restart_dead_workers(&self) {
        let dead: Vec<(TopicPartition, WorkerHandle)> = {
            let mut workers = self.partitions.workers.lock().expect("not poisoned");
            let keys: Vec<TopicPartition> = workers
                .iter()
                .filter(|(_, w)| w.sender.is_closed())
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| workers.remove(&k).map(|w| (k, w)))
                .collect()
        };
        for (key, lost) in dead {
            self.restart_partition(&key, lost);
        }
    }

    fn restart_partition(&self, key: &TopicPartition, lost: WorkerHandle) {
        let finished = self
            .partitions
            .finished
            .lock()
            .expect("not poisoned")
            .get(key)
            .map(|f| f.next_offset);
        let from = restart_offset(finished, lost.first_offset);
        tracing::error!(
            topic = %key.0,
            partition = key.1,
            offset = from,
            "a Kafka worker died; its partition restarts from the first unfinished message"
        );
        if let Err(e) =
            self.consumer
                .seek(&key.0, key.1, Offset::Offset(from), Duration::from_secs(10))
        {
            tracing::error!(topic = %key.0, partition = key.1, error = %e, "rewinding the partition failed");
        }
        if lost.paused {
            self.set_paused(key, false);
        }
    }

    fn spawn_worker(&self, partition: TopicPartition, first_offset: i64) -> WorkerHandle {
        let id = self.partitions.next_worker.fetch_add(1, Ordering::Relaxed);
        let (sender, messages) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done) = std::sync::mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            partition,
            id,
            messages,
            queued: queued.clone(),
            stop: stop_rx,
        };
        let context = self.worker_context.clone();
        let progress: Arc<dyn Progress> = self.partitions.clone();
        let (topic, number) = worker.partition.clone();
        let metrics = context.metrics.clone();
        let task = async move {
            // A panic must not pass silently: it is logged here, and the
            // poll thread restarts the partition when it next dispatches.
            let run = std::panic::AssertUnwindSafe(worker.run(context, progress));
            if let Err(panic) = futures::FutureExt::catch_unwind(run).await {
                tracing::error!(%topic, partition = number, panic = %mart_runtime::panic_text(&*panic), "a Kafka worker panicked");
            }
            let _ = done_tx.send(());
        };
        self.runtime.spawn(metrics.busy(TaskKind::Kafka, task));
        WorkerHandle {
            id,
            first_offset,
            sender,
            queued,
            stop,
            done: Some(done),
            paused: false,
        }
    }

    fn set_paused(&self, (topic, partition): &TopicPartition, pause: bool) -> bool {
        let mut list = TopicPartitionList::new();
        list.add_partition(topic, *partition);
        let result = if pause {
            self.consumer.pause(&list)
        } else {
            self.consumer.resume(&list)
        };
        match result {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(%topic, partition, pause, error = %e, "pause/resume failed");
                false
            }
        }
    }

    fn resume_drained(&self) {
        let mut workers = self.partitions.workers.lock().expect("not poisoned");
        for (key, handle) in workers.iter_mut() {
            if handle.paused
                && handle.queued.load(Ordering::Relaxed) < self.high_water() / 2
                && self.set_paused(key, false)
            {
                handle.paused = false;
            }
        }
    }

    fn commit(&self, mode: CommitMode) {
        let everything = matches!(mode, CommitMode::Sync);
        let offsets = self.partitions.take_uncommitted(None, everything);
        if offsets.count() == 0 {
            return;
        }
        if let Err(e) = self.consumer.commit(&offsets, mode) {
            tracing::warn!(group = %self.group, error = %e, "offset commit failed");
        }
    }

    /// Graceful stop: let running invocations finish, commit, leave.
    fn finish(self, committed: tokio::sync::oneshot::Sender<()>) {
        let grace = *self.grace.lock().expect("not poisoned");
        let all: Vec<TopicPartition> = self
            .partitions
            .workers
            .lock()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect();
        {
            let _entered = self.runtime.enter();
            self.partitions.stop_workers(&all, grace);
        }
        self.commit(CommitMode::Sync);
        let _ = committed.send(());
        self.consumer.unsubscribe();
        tracing::info!(group = %self.group, "Kafka trigger stopped");
        // Dropping the consumer closes it (LeaveGroup); see CLOSE_TIMEOUT.
    }
}

/// Where a partition whose worker died starts again: after what was
/// finished, or at the worker's first message if it finished nothing.
fn restart_offset(finished: Option<i64>, first_offset: i64) -> i64 {
    finished.unwrap_or(first_offset)
}

#[cfg(test)]
mod restart_tests {
    use super::*;

    #[test]
    fn a_dead_worker_restarts_after_what_was_finished() {
        assert_eq!(restart_offset(Some(42), 10), 42);
        assert_eq!(restart_offset(None, 10), 10);
    }
}
