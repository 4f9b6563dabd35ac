//! Mart's Kafka trigger (`[[trigger.kafka]]` in `spin.toml`). Spin has no
//! Kafka trigger; this one and its WIT (`wit/mart/kafka.wit`) are Mart's own.
//!
//! Delivery is at least once. Per trigger entry, one consumer-group member
//! reads the topics; each assigned partition gets a worker that hands its
//! messages, in offset order, to component instances in batches (a fresh
//! one per batch for a `mart:kafka/handler@0.1.0` component, reused ones for
//! an async `@0.2.0` component: reuse.rs). An
//! offset is committed only after the handler succeeded for every message
//! before it (or the message went to the dead-letter topic), in batched
//! commits. Partitions run concurrently, up to the trigger's `concurrency`.
//! Handlers must therefore be idempotent: a crash between the handler's
//! effect and the commit delivers the message again.

mod backoff;
mod consumer;
mod dead_letter;
mod group_lag;
mod invoke;
mod parking;
mod partition;
mod read;
mod reuse;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use mart_kafka::{KafkaClient, Publisher};
use mart_manifest::App;
use mart_runtime::Runtime;

pub use dead_letter::{printable, redrive, DeadLetter, Origins, Resolution, DLQ_HEADERS};

/// The Kafka triggers of an app, consuming until `shutdown`.
pub struct KafkaTriggers {
    consumers: Vec<consumer::TriggerConsumer>,
}

/// What `mart up` prints at start.
pub struct TriggerSummary {
    pub component: String,
    pub topics: Vec<String>,
    pub group: String,
}

impl KafkaTriggers {
    /// Topics the triggers read and dead-letter to (so they can be created).
    pub fn topics(app: &App) -> anyhow::Result<Vec<String>> {
        let mut topics = Vec::new();
        for trigger in app.manifest.kafka_triggers().map_err(anyhow::Error::msg)? {
            for topic in &trigger.topics {
                topics.push(topic.clone());
                topics.push(trigger.dead_letter_topic_for(topic));
            }
        }
        topics.sort();
        topics.dedup();
        Ok(topics)
    }

    /// Starts one consumer per `[[trigger.kafka]]` entry. Fails, naming the
    /// component, if a component exports neither `mart:kafka/handler@0.1.0`
    /// nor `@0.2.0`.
    pub fn start(app: &App, runtime: Arc<Runtime>, client: &KafkaClient) -> anyhow::Result<Self> {
        let triggers = app.manifest.kafka_triggers().map_err(anyhow::Error::msg)?;
        let dead_letters = Publisher::new(client, "mart-dead-letter")?;
        let mut consumers = Vec::new();
        for trigger in triggers {
            let component = runtime
                .component(&trigger.component)
                .with_context(|| format!("component `{}` is not loaded", trigger.component))?
                .clone();
            let handler = invoke::Handler::new(runtime.clone(), component)?;
            let group = trigger.group_id(&app.manifest.application.name);
            consumers.push(consumer::TriggerConsumer::start(
                client,
                trigger,
                group,
                handler,
                dead_letters.clone(),
                runtime.metrics().clone(),
            )?);
        }
        Ok(Self { consumers })
    }

    pub fn summary(&self) -> Vec<TriggerSummary> {
        self.consumers
            .iter()
            .map(|c| TriggerSummary {
                component: c.component().to_string(),
                topics: c.topics().to_vec(),
                group: c.group().to_string(),
            })
            .collect()
    }

    /// Stops reading, lets running invocations finish (up to `grace`),
    /// commits what finished and leaves the groups.
    pub async fn shutdown(self, grace: Duration) {
        let stops = self.consumers.into_iter().map(|c| c.shutdown(grace));
        futures::future::join_all(stops).await;
    }
}
