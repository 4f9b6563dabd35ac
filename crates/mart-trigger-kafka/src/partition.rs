//! One worker per assigned partition: batches its messages in offset order,
//! runs the handler, retries with backoff, dead-letters what cannot succeed,
//! and reports the offset up to which everything is finished.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mart_kafka::Publisher;
use mart_manifest::KafkaTrigger;
use mart_metrics::Metrics;
use rdkafka::message::{Message as _, OwnedMessage};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::dead_letter::{meant_for_another_group, DeadLetter};
use crate::invoke::{Handler, Outcome};

/// How long a dead letter being published is waited for after a stop.
const DEAD_LETTER_GRACE: Duration = Duration::from_secs(10);

/// From how long a message has been failing its partition is reported as
/// stalled (a warning per further attempt; the stalled-seconds gauge always).
const STALLED_AFTER: Duration = Duration::from_secs(60);

/// A partition of a topic.
pub type TopicPartition = (String, i32);

/// What every partition worker of one trigger shares.
pub struct WorkerContext {
    pub trigger: KafkaTrigger,
    pub group: String,
    pub handler: Handler,
    /// Invocations running at once across the trigger's partitions.
    pub permits: Semaphore,
    pub dead_letters: Publisher,
    pub metrics: Arc<Metrics>,
}

/// Where a worker reports progress: the offset *after* the last message
/// that is finished (processed or dead-lettered), i.e. what to commit.
pub trait Progress: Send + Sync + 'static {
    fn finished(&self, partition: &TopicPartition, worker: u64, next_offset: i64);
}

pub struct Worker {
    pub partition: TopicPartition,
    pub id: u64,
    pub messages: mpsc::UnboundedReceiver<OwnedMessage>,
    /// Messages handed to this worker and not yet taken into a batch.
    pub queued: Arc<AtomicUsize>,
    /// Becomes `true` when the partition is revoked or the host stops: the
    /// worker finishes the invocation in progress and exits.
    pub stop: watch::Receiver<bool>,
}

impl Worker {
    pub async fn run(mut self, ctx: Arc<WorkerContext>, progress: Arc<dyn Progress>) {
        loop {
            let Some(batch) = self.next_batch(&ctx.trigger).await else {
                return;
            };
            self.queued.fetch_sub(batch.len(), Ordering::Relaxed);
            if !self.process_own(&ctx, &*progress, &batch).await {
                return;
            }
        }
    }

    /// Processes the batch's messages, passing over (finished, never
    /// invoked) a redriven copy meant for another group: that group
    /// dead-lettered it, this one handled the original already.
    async fn process_own(
        &mut self,
        ctx: &WorkerContext,
        progress: &dyn Progress,
        batch: &[OwnedMessage],
    ) -> bool {
        let mut rest = batch;
        while !rest.is_empty() {
            let foreign = rest
                .iter()
                .position(|m| meant_for_another_group(m, &ctx.group))
                .unwrap_or(rest.len());
            let (own, after) = rest.split_at(foreign);
            if !own.is_empty() && !self.process(ctx, progress, own).await {
                return false;
            }
            let Some((passed_over, after)) = after.split_first() else {
                break;
            };
            progress.finished(&self.partition, self.id, passed_over.offset() + 1);
            rest = after;
        }
        true
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Up to `batch_size` messages, waiting at most `max_wait_ms` for a
    /// partial batch to fill; `None` when the worker should exit.
    async fn next_batch(&mut self, trigger: &KafkaTrigger) -> Option<Vec<OwnedMessage>> {
        let first = tokio::select! {
            message = self.messages.recv() => message?,
            _ = self.stop.wait_for(|stop| *stop) => return None,
        };
        if self.stopped() {
            return None;
        }
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(trigger.max_wait_ms);
        while batch.len() < trigger.batch_size as usize {
            match self.messages.try_recv() {
                Ok(message) => batch.push(message),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, self.messages.recv()).await {
                        Ok(Some(message)) => batch.push(message),
                        _ => break,
                    }
                }
            }
        }
        Some(batch)
    }

    /// Runs the batch to completion (every message processed or
    /// dead-lettered). Returns `false` if asked to stop before that; what
    /// is unfinished then stays uncommitted and is delivered again.
    async fn process(
        &mut self,
        ctx: &WorkerContext,
        progress: &dyn Progress,
        batch: &[OwnedMessage],
    ) -> bool {
        let component = ctx.handler.component_id().to_string();
        let topic = self.partition.0.clone();
        let mut rest = batch;
        let mut attempt = 1u32;
        // Since when the partition's next message has been failing.
        let mut failing_since: Option<tokio::time::Instant> = None;
        let partition = self.partition.1;
        let stalled = |since: Option<tokio::time::Instant>| {
            let elapsed = since.map(|t| t.elapsed()).unwrap_or_default();
            ctx.metrics
                .kafka_stalled(&ctx.group, &topic, partition, elapsed);
            elapsed
        };
        while let Some(first) = rest.first() {
            // A stopped worker starts nothing new: its partition may already
            // belong to another member.
            if self.stopped() {
                return false;
            }
            let outcome = {
                let _permit = tokio::select! {
                    permit = ctx.permits.acquire() => permit.expect("never closed"),
                    _ = self.stop.wait_for(|stop| *stop) => return false,
                };
                ctx.handler.invoke(rest).await
            };
            let (index, retry, reason) = match outcome {
                Outcome::Done => {
                    if failing_since.is_some() {
                        stalled(None);
                    }
                    let last = rest.last().expect("non-empty");
                    ctx.metrics
                        .kafka_messages(&component, &topic, "ok", rest.len() as u64);
                    progress.finished(&self.partition, self.id, last.offset() + 1);
                    return true;
                }
                Outcome::Failed {
                    index,
                    retry,
                    reason,
                } => (index, retry, reason),
            };
            if index > 0 {
                ctx.metrics
                    .kafka_messages(&component, &topic, "ok", index as u64);
                progress.finished(&self.partition, self.id, rest[index].offset());
                rest = &rest[index..];
                attempt = 1;
                failing_since = None;
            }
            let failing = rest.first().unwrap_or(first);
            let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
            let stalled_for = stalled(Some(since));
            if retry && ctx.trigger.retry.allows_another(attempt) {
                ctx.metrics.kafka_messages(&component, &topic, "retried", 1);
                let delay = crate::backoff::delay(&ctx.trigger.retry, attempt, &mut rand::rng());
                if stalled_for >= STALLED_AFTER {
                    tracing::warn!(
                        component, topic, partition = self.partition.1, offset = failing.offset(),
                        attempt, stalled_s = stalled_for.as_secs(), %reason,
                        "partition stalled: its next message keeps failing and is retried"
                    );
                } else {
                    tracing::info!(
                        component, topic, partition = self.partition.1, offset = failing.offset(),
                        attempt, delay_ms = delay.as_millis() as u64, %reason, "retrying"
                    );
                }
                if !self.sleep(delay).await {
                    return false;
                }
                attempt += 1;
                continue;
            }
            let letter = DeadLetter::new(failing, &reason, attempt, &component, &ctx.group);
            if !self.dead_letter(ctx, &letter).await {
                return false;
            }
            ctx.metrics
                .kafka_messages(&component, &topic, "dead_lettered", 1);
            progress.finished(&self.partition, self.id, failing.offset() + 1);
            rest = &rest[1..];
            attempt = 1;
            failing_since = None;
            stalled(None);
        }
        true
    }

    /// Publishes to the dead-letter topic, retrying until the broker takes
    /// it: moving on without that would lose the message.
    async fn dead_letter(&mut self, ctx: &WorkerContext, letter: &DeadLetter) -> bool {
        let dlq = ctx.trigger.dead_letter_topic_for(&self.partition.0);
        let record = letter.record(&dlq);
        let mut attempt = 1;
        loop {
            // A dead letter on its way is waited for even when the worker is
            // asked to stop (for a while: the broker may be down), so that
            // the partition's next owner does not handle the message again.
            let mut delivery = std::pin::pin!(ctx.dead_letters.publish(&record));
            let published = match tokio::time::timeout(DEAD_LETTER_GRACE, &mut delivery).await {
                Ok(published) => published,
                Err(_) => tokio::select! {
                    published = &mut delivery => published,
                    _ = self.stop.wait_for(|stop| *stop) => return false,
                },
            };
            match published {
                Ok(_) => {
                    tracing::warn!(
                        topic = %self.partition.0, partition = self.partition.1,
                        offset = letter.offset, dead_letter_topic = %dlq, reason = %letter.reason,
                        "message dead-lettered"
                    );
                    return true;
                }
                Err(e) => {
                    tracing::error!(dead_letter_topic = %dlq, error = %e, "cannot dead-letter; retrying");
                    let delay =
                        crate::backoff::delay(&ctx.trigger.retry, attempt, &mut rand::rng());
                    if !self.sleep(delay).await {
                        return false;
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// Sleeps unless asked to stop first; `false` if stopped.
    async fn sleep(&mut self, delay: Duration) -> bool {
        let slept = tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = self.stop.wait_for(|stop| *stop) => false,
        };
        slept && !self.stopped()
    }
}
