//! One handler invocation: a fresh instance, the batch, the verdict.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use mart_kafka::bindings::{KafkaHandlerPre, Message, MessageHeader};
use mart_runtime::{AppComponent, InstanceState, InvokeError, Runtime};
use mart_telemetry::{Span, SpanKind, TraceParent};
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
    pub async fn invoke(&self, batch: &[OwnedMessage], group: &str) -> Outcome {
        let mut span = self.span(batch, group);
        let mut messages: Vec<Message> = batch.iter().map(to_wit).collect();
        // As an HTTP component sees its request's span as the parent, the
        // handler sees this invocation's span in the message the span
        // continues: the events it records carry the trace on from here.
        if let Some(first) = messages.first_mut() {
            set_traceparent(first, span.context());
        }
        let started = Instant::now();
        let result = self
            .runtime
            .invoke(
                &self.component,
                mart_runtime::TriggerKind::Kafka,
                Some(span.context().clone()),
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
        let outcome = self.outcome(result, batch.len());
        if let Outcome::Failed { reason, .. } = &outcome {
            span.fail(reason.clone());
        }
        outcome
    }

    /// The invocation's span, continuing the trace of the batch's first
    /// message (its producer's span), with OpenTelemetry's messaging
    /// attributes.
    fn span(&self, batch: &[OwnedMessage], group: &str) -> Span {
        let first = batch.first();
        let incoming = first
            .and_then(|m| header(m, "traceparent"))
            .and_then(|v| std::str::from_utf8(v).ok().and_then(TraceParent::parse));
        let topic = first.map(|m| m.topic()).unwrap_or_default();
        let mut span = Span::start(
            || format!("process {topic}"),
            SpanKind::Consumer,
            incoming.as_ref(),
        );
        if let (true, Some(first)) = (span.is_recording(), first) {
            span.set("messaging.system", "kafka");
            span.set("messaging.operation.type", "process");
            span.set("messaging.destination.name", topic.to_string());
            span.set("messaging.consumer.group.name", group.to_string());
            span.set(
                "messaging.destination.partition.id",
                first.partition().to_string(),
            );
            span.set("messaging.kafka.offset", first.offset());
            span.set("messaging.batch.message_count", batch.len() as i64);
            span.set("mart.component", self.component.id.clone());
        }
        span
    }

    fn outcome(
        &self,
        result: Result<Result<(), mart_kafka::bindings::Failure>, InvokeError>,
        len: usize,
    ) -> Outcome {
        match result {
            Ok(Ok(())) => Outcome::Done,
            Ok(Err(failure)) => self.reported(failure, len),
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

fn set_traceparent(message: &mut Message, trace: &TraceParent) {
    let value = trace.to_string().into_bytes();
    message.headers.retain(|h| h.key != "traceparent");
    message.headers.push(MessageHeader {
        key: "traceparent".into(),
        value,
    });
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
