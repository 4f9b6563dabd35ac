//! One handler invocation: a fresh instance, the batch, the verdict.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use mart_kafka::bindings::{KafkaHandlerPre, Message, MessageHeader};
use mart_outbound_http::trace::TraceParent;
use mart_runtime::{AppComponent, InstanceState, InvokeError, Runtime};
use rdkafka::message::{Headers as _, Message as _, OwnedMessage};

use crate::dead_letter::header;

/// What became of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every message was processed.
    Done,
    /// Messages before `index` were processed; `index` was not.
    Failed {
        index: usize,
        retry: bool,
        reason: String,
    },
}

pub struct Handler {
    runtime: Arc<Runtime>,
    component: Arc<AppComponent>,
    pre: KafkaHandlerPre<InstanceState>,
}

impl Handler {
    pub fn new(runtime: Arc<Runtime>, component: Arc<AppComponent>) -> anyhow::Result<Self> {
        let pre = KafkaHandlerPre::new(component.pre.clone())
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "component `{}` is named by a [[trigger.kafka]] entry but does not export \
                     mart:kafka/handler@0.1.0",
                    component.id
                )
            })?;
        Ok(Self {
            runtime,
            component,
            pre,
        })
    }

    pub fn component_id(&self) -> &str {
        &self.component.id
    }

    /// Runs the component on `batch` (messages of one partition, in order)
    /// in a fresh instance with the component's time and memory limits.
    pub async fn invoke(&self, batch: &[OwnedMessage]) -> Outcome {
        let messages: Vec<Message> = batch.iter().map(to_wit).collect();
        let trace = batch
            .first()
            .and_then(|m| header(m, "traceparent"))
            .and_then(|v| std::str::from_utf8(v).ok().and_then(TraceParent::parse))
            .map(|parent| parent.child());
        let started = Instant::now();
        let result = self
            .runtime
            .invoke(
                &self.component,
                mart_runtime::TriggerKind::Kafka,
                trace,
                async |store| self.pre.instantiate_async(store).await,
                async |handler, store| {
                    handler
                        .mart_kafka_handler()
                        .call_handle(store, &messages)
                        .await
                },
            )
            .await;
        self.runtime
            .metrics()
            .kafka_invocation(&self.component.id, started.elapsed());
        match result {
            Ok(Ok(())) => Outcome::Done,
            Ok(Err(failure)) => self.reported(failure, batch.len()),
            // Retried (then dead-lettered): a trap, the deadline, or a panic
            // in host code fails this batch, never the partition's worker.
            Err(error) => {
                let reason = error.to_string();
                if matches!(error, InvokeError::Panicked(_)) {
                    tracing::error!(component = %self.component.id, %reason, "Kafka handler failed");
                } else {
                    tracing::warn!(component = %self.component.id, %reason, "Kafka handler failed");
                }
                Outcome::Failed {
                    index: 0,
                    retry: true,
                    reason,
                }
            }
        }
    }

    /// A failure the guest returned; an index outside the batch is the
    /// guest's bug, treated as a retryable failure of the whole batch.
    fn reported(&self, failure: mart_kafka::bindings::Failure, len: usize) -> Outcome {
        let index = failure.index as usize;
        if index >= len {
            return Outcome::Failed {
                index: 0,
                retry: true,
                reason: format!(
                    "the handler reported a failure at index {index} of a batch of {len}: {}",
                    failure.reason
                ),
            };
        }
        tracing::info!(
            component = %self.component.id,
            index, retry = failure.retry, reason = %failure.reason,
            "Kafka handler reported a failure"
        );
        Outcome::Failed {
            index,
            retry: failure.retry,
            reason: failure.reason,
        }
    }
}

fn to_wit(message: &OwnedMessage) -> Message {
    Message {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers: message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| MessageHeader {
                        key: h.key.to_string(),
                        value: h.value.unwrap_or_default().to_vec(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        timestamp_ms: message.timestamp().to_millis(),
    }
}
