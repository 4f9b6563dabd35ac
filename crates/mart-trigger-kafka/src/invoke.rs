//! One handler invocation: an instance, the batch, the verdict. The
//! component exports `mart:kafka/handler@0.1.0` (sync: a fresh instance per
//! batch) or `@0.2.0` (async: reused instances, reuse.rs); everything else
//! (the span, the messages, what the result means) is the same for both.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use mart_kafka::bindings::{Failure, KafkaHandlerPre, Message, MessageHeader};
use mart_runtime::{AppComponent, InstanceState, InvokeError, Runtime};
use mart_telemetry::{Span, SpanKind, TraceParent};
use rdkafka::message::{Headers as _, Message as _, OwnedMessage};

use crate::dead_letter::header;
use crate::reuse::Instances;

/// Host bindings for `mart:kafka@0.2.0` (wit/mart/kafka@0.2.0).
pub(crate) mod p3 {
    wasmtime::component::bindgen!({
        path: "../../wit/mart/kafka@0.2.0",
        world: "mart:kafka/kafka-handler",
        exports: { default: async | store },
    });
}

/// Which handler the component exports, and so how it is called.
enum Export {
    /// `mart:kafka/handler@0.1.0`: a fresh instance per batch.
    Sync(KafkaHandlerPre<InstanceState>),
    /// `mart:kafka/handler@0.2.0`: `handle` is async; instances are reused.
    Async(Instances),
}

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
    export: Export,
}

impl Handler {
    /// Must be called in the Tokio runtime (see `Instances::new`).
    pub fn new(runtime: Arc<Runtime>, component: Arc<AppComponent>) -> anyhow::Result<Self> {
        let export = export(&component)?;
        Ok(Self {
            runtime,
            component,
            export,
        })
    }

    pub fn component_id(&self) -> &str {
        &self.component.id
    }

    /// Runs the component on `batch` (messages of one partition, in order)
    /// in an instance with the component's time and memory limits.
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
        let result = self.call(messages, span.context().clone()).await;
        self.runtime
            .metrics()
            .kafka_invocation(&self.component.id, started.elapsed());
        let outcome = self.outcome(result, batch.len());
        if let Outcome::Failed { reason, .. } = &outcome {
            span.fail(reason.clone());
        }
        outcome
    }

    /// Calls the handler the component exports; the same result either way.
    async fn call(
        &self,
        messages: Vec<Message>,
        trace: TraceParent,
    ) -> Result<Result<(), Failure>, InvokeError> {
        match &self.export {
            Export::Sync(pre) => {
                self.runtime
                    .invoke(
                        &self.component,
                        mart_runtime::TriggerKind::Kafka,
                        Some(trace),
                        async |store| pre.instantiate_async(store).await,
                        async |handler, store| {
                            handler
                                .mart_kafka_handler()
                                .call_handle(store, &messages)
                                .await
                        },
                    )
                    .await
            }
            Export::Async(instances) => {
                let messages = messages.into_iter().map(to_p3).collect();
                let result = instances
                    .handle(&self.runtime, &self.component, Some(trace), messages)
                    .await;
                result.map(|handled| handled.map_err(from_p3))
            }
        }
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

    fn outcome(&self, result: Result<Result<(), Failure>, InvokeError>, len: usize) -> Outcome {
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
    fn reported(&self, failure: Failure, len: usize) -> Outcome {
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

/// The handler the component exports: 0.2.0 (async) if it has it, else
/// 0.1.0; a component with neither is refused, both named.
fn export(component: &AppComponent) -> anyhow::Result<Export> {
    if let Ok(pre) = p3::KafkaHandlerPre::new(component.pre.clone()) {
        return Ok(Export::Async(Instances::new(pre)));
    }
    KafkaHandlerPre::new(component.pre.clone())
        .map(Export::Sync)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "component `{}` is named by a [[trigger.kafka]] entry but exports neither \
                 mart:kafka/handler@0.1.0 nor mart:kafka/handler@0.2.0 (async)",
                component.id
            )
        })
}

/// A message as the 0.2.0 handler takes it (the same fields as 0.1.0's).
fn to_p3(message: Message) -> p3::exports::mart::kafka::handler::Message {
    use p3::exports::mart::kafka::handler as v2;
    v2::Message {
        topic: message.topic,
        partition: message.partition,
        offset: message.offset,
        key: message.key,
        value: message.value,
        headers: message
            .headers
            .into_iter()
            .map(|h| v2::Header {
                key: h.key,
                value: h.value,
            })
            .collect(),
        timestamp_ms: message.timestamp_ms,
    }
}

/// A 0.2.0 handler's failure, read as a 0.1.0 one (the same fields).
fn from_p3(failure: p3::exports::mart::kafka::handler::Failure) -> Failure {
    Failure {
        index: failure.index,
        retry: failure.retry,
        reason: failure.reason,
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
