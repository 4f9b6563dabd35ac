//! One worker per assigned partition: batches its messages in offset order,
//! runs the handler, retries with backoff, dead-letters what cannot succeed
//! (and parks the later messages of its key, see parking.rs), and reports
//! the offset up to which everything is finished.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mart_kafka::{Publisher, Record};
use mart_manifest::KafkaTrigger;
use mart_metrics::Metrics;
use rdkafka::message::{Message as _, OwnedMessage};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::dead_letter::{position, redriven_for, DeadLetter};
use crate::invoke::{Handler, Outcome};
use crate::parking::{resolved_record, Disposition, Ledger, Parked};

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
    /// Where the partition's parked keys are read back from.
    pub ledger: Ledger,
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

/// How a run of messages given to the handler ended.
enum Ran {
    /// Every message was handled.
    Handled,
    /// Messages before `index` were handled; `index` went to the
    /// dead-letter topic (the rest of the run was not looked at).
    DeadLettered { index: usize },
}

impl Worker {
    pub async fn run(mut self, ctx: Arc<WorkerContext>, progress: Arc<dyn Progress>) {
        let Some(mut parked) = self.parked(&ctx).await else {
            return;
        };
        loop {
            let Some(batch) = self.next_batch(&ctx.trigger).await else {
                return;
            };
            self.queued.fetch_sub(batch.len(), Ordering::Relaxed);
            if !self
                .process_batch(&ctx, &*progress, &mut parked, &batch)
                .await
            {
                return;
            }
        }
    }

    /// The partition's parked keys, rebuilt from the dead-letter topic
    /// (retried until it can be read: handling a message of a parked key
    /// would break its aggregate's order); `None` if stopped first.
    async fn parked(&mut self, ctx: &WorkerContext) -> Option<Parked> {
        let dlq = ctx.trigger.dead_letter_topic_for(&self.partition.0);
        let (topic, partition) = self.partition.clone();
        let mut attempt = 1;
        loop {
            match ctx
                .ledger
                .parked(&dlq, (&topic, partition), &ctx.group)
                .await
            {
                Ok(parked) => {
                    if !parked.is_empty() {
                        tracing::info!(
                            topic = %self.partition.0, partition = self.partition.1,
                            group = %ctx.group, keys = parked.len(),
                            "keys parked behind dead letters"
                        );
                    }
                    return Some(parked);
                }
                Err(e) => {
                    tracing::warn!(
                        topic = %self.partition.0, partition = self.partition.1,
                        dead_letter_topic = %dlq, error = %format!("{e:#}"),
                        "cannot read the dead-letter topic; retrying"
                    );
                    let delay =
                        crate::backoff::delay(&ctx.trigger.retry, attempt, &mut rand::rng());
                    if !self.sleep(delay).await {
                        return None;
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// Takes the batch's messages in order, each as its key's parking says
    /// (see parking.rs): runs of messages to handle go to the handler
    /// together, a redriven copy alone (its outcome may release its key).
    /// Returns `false` if asked to stop first.
    async fn process_batch(
        &mut self,
        ctx: &WorkerContext,
        progress: &dyn Progress,
        parked: &mut Parked,
        batch: &[OwnedMessage],
    ) -> bool {
        let mut rest = batch;
        while let Some(first) = rest.first() {
            let taken = match parked.disposition(first, &ctx.group) {
                Disposition::PassOver => 1,
                Disposition::Park { behind } => {
                    if !self.park(ctx, parked, first, behind).await {
                        return false;
                    }
                    1
                }
                Disposition::Discard => {
                    tracing::info!(
                        topic = %self.partition.0, partition = self.partition.1,
                        position = position(first), "redriven message discarded"
                    );
                    if !self.resolve(ctx, parked, first).await {
                        return false;
                    }
                    1
                }
                Disposition::Handle => {
                    let run = if redriven_for(first).is_some() {
                        1
                    } else {
                        1 + rest[1..]
                            .iter()
                            .take_while(|m| {
                                redriven_for(m).is_none()
                                    && parked.disposition(m, &ctx.group) == Disposition::Handle
                            })
                            .count()
                    };
                    match self.process(ctx, progress, &rest[..run]).await {
                        None => return false,
                        Some(Ran::Handled) => {
                            if !self.resolve(ctx, parked, first).await {
                                return false;
                            }
                            run
                        }
                        Some(Ran::DeadLettered { index }) => {
                            parked.park(rest[index].key(), position(&rest[index]));
                            index + 1
                        }
                    }
                }
            };
            progress.finished(&self.partition, self.id, rest[taken - 1].offset() + 1);
            rest = &rest[taken..];
        }
        true
    }

    /// Dead-letters `message` unhandled, behind the older letter of its key.
    async fn park(
        &mut self,
        ctx: &WorkerContext,
        parked: &mut Parked,
        message: &OwnedMessage,
        behind: i64,
    ) -> bool {
        let reason = format!(
            "parked behind {}/{}@{behind}: an older message of the same key was dead-lettered \
             and is not resolved yet",
            self.partition.0, self.partition.1
        );
        let component = ctx.handler.component_id();
        let letter = DeadLetter::new(message, &reason, 0, component, &ctx.group);
        if !self.dead_letter(ctx, &letter).await {
            return false;
        }
        ctx.metrics
            .kafka_messages(component, &self.partition.0, "parked", 1);
        parked.park(message.key(), letter.offset);
        true
    }

    /// Records that `message`'s letter is resolved (it was handled or
    /// discarded), if it was parked: the marker goes out before the offset
    /// is finished, or the next owner would keep its key parked for ever.
    async fn resolve(
        &mut self,
        ctx: &WorkerContext,
        parked: &mut Parked,
        message: &OwnedMessage,
    ) -> bool {
        let (key, position) = (message.key(), position(message));
        if !parked.is_parked(key, position) {
            return true;
        }
        let dlq = ctx.trigger.dead_letter_topic_for(&self.partition.0);
        let partition = (self.partition.0.as_str(), self.partition.1);
        let marker = resolved_record(&dlq, partition, &ctx.group, key, position);
        if !self.publish_until_taken(ctx, &marker).await {
            return false;
        }
        parked.resolve(key, position);
        if !parked.holds(key) {
            tracing::info!(
                topic = %self.partition.0, partition = self.partition.1, position,
                "every dead letter of the key resolved: the key is released"
            );
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

    /// Runs the handler on `run` until every message is handled or one
    /// goes to the dead-letter topic, retrying failures as the trigger's
    /// policy says. `None` if asked to stop before that; what is unfinished
    /// then stays uncommitted and is delivered again. The last message's
    /// progress is the caller's to report, after its own bookkeeping.
    async fn process(
        &mut self,
        ctx: &WorkerContext,
        progress: &dyn Progress,
        run: &[OwnedMessage],
    ) -> Option<Ran> {
        let component = ctx.handler.component_id().to_string();
        let topic = self.partition.0.clone();
        let mut rest = run;
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
                return None;
            }
            let outcome = {
                let _permit = tokio::select! {
                    permit = ctx.permits.acquire() => permit.expect("never closed"),
                    _ = self.stop.wait_for(|stop| *stop) => return None,
                };
                ctx.handler.invoke(rest, &ctx.group).await
            };
            let (index, retry, reason) = match outcome {
                Outcome::Done => {
                    if failing_since.is_some() {
                        stalled(None);
                    }
                    ctx.metrics
                        .kafka_messages(&component, &topic, "ok", rest.len() as u64);
                    return Some(Ran::Handled);
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
                    return None;
                }
                attempt += 1;
                continue;
            }
            let letter = DeadLetter::new(failing, &reason, attempt, &component, &ctx.group);
            if !self.dead_letter(ctx, &letter).await {
                return None;
            }
            ctx.metrics
                .kafka_messages(&component, &topic, "dead_lettered", 1);
            stalled(None);
            return Some(Ran::DeadLettered {
                index: run.len() - rest.len(),
            });
        }
        Some(Ran::Handled)
    }

    /// Publishes to the dead-letter topic, retrying until the broker takes
    /// it: moving on without that would lose the message.
    async fn dead_letter(&mut self, ctx: &WorkerContext, letter: &DeadLetter) -> bool {
        let dlq = ctx.trigger.dead_letter_topic_for(&self.partition.0);
        if !self.publish_until_taken(ctx, &letter.record(&dlq)).await {
            return false;
        }
        tracing::warn!(
            topic = %self.partition.0, partition = self.partition.1,
            offset = letter.offset, dead_letter_topic = %dlq, reason = %letter.reason,
            "message dead-lettered"
        );
        true
    }

    /// Publishes a record to the dead-letter topic, retrying until the
    /// broker takes it. A record on its way is waited for even when the
    /// worker is asked to stop (for a while: the broker may be down), so
    /// that the partition's next owner finds it there.
    async fn publish_until_taken(&mut self, ctx: &WorkerContext, record: &Record) -> bool {
        let mut attempt = 1;
        loop {
            let mut delivery = std::pin::pin!(ctx.dead_letters.publish(record));
            let published = match tokio::time::timeout(DEAD_LETTER_GRACE, &mut delivery).await {
                Ok(published) => published,
                Err(_) => tokio::select! {
                    published = &mut delivery => published,
                    _ = self.stop.wait_for(|stop| *stop) => return false,
                },
            };
            let Err(e) = published else {
                return true;
            };
            tracing::error!(dead_letter_topic = %record.topic, error = %e, "cannot write to the dead-letter topic; retrying");
            let delay = crate::backoff::delay(&ctx.trigger.retry, attempt, &mut rand::rng());
            if !self.sleep(delay).await {
                return false;
            }
            attempt += 1;
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
