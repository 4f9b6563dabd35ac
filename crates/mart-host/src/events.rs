//! The event side of an app: Mart's Kafka triggers, the outbox relay and the
//! producer components publish through. `mart up` and the `trigger-kafka`
//! Spin plugin start it the same way.

use std::sync::Arc;
use std::time::Duration;

use mart_kafka::KafkaClient;
use mart_manifest::App;
use mart_runtime::Runtime;

/// How long sent outbox rows and processed-event records are kept, unless
/// `mart up --event-retention-hours` says otherwise.
pub const DEFAULT_RETENTION_HOURS: u64 = 168;

/// How the event side runs in this process.
pub struct EventOptions {
    /// Relay the outboxes named in `[application.trigger.kafka] outbox`.
    pub relay: bool,
    /// How long sent outbox rows and processed-event records are kept.
    pub retention: Duration,
}

pub struct Events {
    triggers: Option<mart_trigger_kafka::KafkaTriggers>,
    relay: Option<mart_outbox_relay::OutboxRelay>,
    relayed: Vec<String>,
    publisher: Option<mart_kafka::Publisher>,
    brokers: Option<String>,
}

impl Events {
    /// Creates the topics the app uses, then starts consuming and relaying.
    /// Without brokers the app runs HTTP only, unless it has Kafka triggers.
    /// `producer`: the runtime's `mart:kafka/producer` part, given the
    /// publisher here.
    pub async fn start(
        app: &App,
        runtime: &Arc<Runtime>,
        kafka: Option<&KafkaClient>,
        producer: &mart_kafka::ProducerPart,
        options: &EventOptions,
    ) -> anyhow::Result<Self> {
        let has_triggers = !app
            .manifest
            .kafka_triggers()
            .map_err(anyhow::Error::msg)?
            .is_empty();
        let Some(kafka) = kafka else {
            anyhow::ensure!(
                !has_triggers,
                "the app has [[trigger.kafka]] entries but no Kafka brokers: set `brokers` \
                 in [application.trigger.kafka] (e.g. SPIN_VARIABLE_KAFKA_BROKERS for \
                 \"{{{{ kafka_brokers }}}}\"), or MART_KAFKA_BROKERS"
            );
            return Ok(Self {
                triggers: None,
                relay: None,
                relayed: Vec::new(),
                publisher: None,
                brokers: None,
            });
        };
        mart_kafka::ensure_topics(kafka, &topics_to_create(app)?).await?;
        let publisher = mart_kafka::Publisher::new(kafka, "mart-host")?;
        producer.set_publisher(publisher.clone());
        let triggers = mart_trigger_kafka::KafkaTriggers::start(app, runtime.clone(), kafka)?;
        let (relay, relayed) = match (kafka.outbox(), options.relay) {
            (Some(outbox), true) => {
                let databases = outbox
                    .databases
                    .iter()
                    .map(|name| {
                        Ok(mart_outbox_relay::Database {
                            url: mart_migrate::database_url(&outbox.server, name)?,
                            name: name.clone(),
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let relay = mart_outbox_relay::OutboxRelay::start(
                    databases,
                    publisher.clone(),
                    runtime.metrics().clone(),
                    mart_outbox_relay::RelayOptions {
                        retention: options.retention,
                        ..Default::default()
                    },
                );
                (Some(relay), outbox.databases.clone())
            }
            _ => (None, Vec::new()),
        };
        Ok(Self {
            triggers: Some(triggers),
            relay,
            relayed,
            publisher: Some(publisher),
            brokers: Some(kafka.brokers().to_string()),
        })
    }

    /// What runs, for the start-up table.
    pub fn print(&self) {
        let Some(brokers) = &self.brokers else {
            eprintln!("Kafka: not configured (HTTP only)");
            return;
        };
        let mut table = format!("Kafka at {brokers}\n");
        for t in self.triggers.iter().flat_map(|t| t.summary()) {
            table.push_str(&format!(
                "  {:<32} -> {} (group {})\n",
                t.topics.join(","),
                t.component,
                t.group
            ));
        }
        if !self.relayed.is_empty() {
            table.push_str(&format!(
                "  outbox relay for databases: {}\n",
                self.relayed.join(", ")
            ));
        }
        eprint!("{table}");
    }

    /// Stops consuming (running invocations finish and are committed),
    /// then the relay, then flushes what components published.
    pub async fn shutdown(self) {
        let grace = Duration::from_secs(10);
        if let Some(triggers) = self.triggers {
            triggers.shutdown(grace).await;
        }
        if let Some(relay) = self.relay {
            relay.shutdown(grace).await;
        }
        if let Some(publisher) = self.publisher {
            let _ = tokio::task::spawn_blocking(move || publisher.flush(grace)).await;
        }
    }
}

/// Every topic the app touches: one per aggregate type, what the triggers
/// read and dead-letter to, and what components may publish to.
pub fn topics_to_create(app: &App) -> anyhow::Result<Vec<String>> {
    let mut topics = mart_trigger_kafka::KafkaTriggers::topics(app)?;
    topics.extend(
        mart_domain::events::EventType::ALL
            .iter()
            .map(|t| t.topic()),
    );
    for component in app.manifest.component.values() {
        let settings = component.mart_settings().map_err(anyhow::Error::msg)?;
        topics.extend(settings.kafka_publish_topics);
    }
    topics.sort();
    topics.dedup();
    Ok(topics)
}
