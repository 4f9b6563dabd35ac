//! The event side of an app: Mart's Kafka triggers, the outbox relay and the
//! producer components publish through. `mart up` and the `trigger-kafka`
//! Spin plugin start it the same way.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use mart_domain::events::EventFormat;
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
                let databases = relayed_databases(outbox)?;
                let (processed_events, listed) = handler_databases(outbox)?;
                mart_outbox_relay::check_databases(
                    &databases,
                    if listed { &processed_events } else { &[] },
                )
                .await?;
                let relayed = databases
                    .iter()
                    .map(|db| match db.format {
                        EventFormat::Json => db.name.clone(),
                        format => format!("{} ({})", db.name, format.content_type()),
                    })
                    .collect();
                let relay = mart_outbox_relay::OutboxRelay::start(
                    databases,
                    publisher.clone(),
                    runtime.metrics().clone(),
                    mart_outbox_relay::RelayOptions {
                        retention: options.retention,
                        processed_events,
                        ..Default::default()
                    },
                );
                (Some(relay), relayed)
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

/// Checks `outbox.formats`: each names a relayed database and an event
/// format. Run when the settings are read, before anything starts.
pub fn check_outbox_formats(outbox: &mart_manifest::OutboxConfig) -> anyhow::Result<()> {
    for name in outbox.formats.keys() {
        anyhow::ensure!(
            outbox.databases.contains(name),
            "[application.trigger.kafka] outbox.formats names `{name}`, which is not in \
             outbox.databases"
        );
        outbox_format(outbox, name)?;
    }
    Ok(())
}

/// The format `database`'s events go out in: its `outbox.formats` entry,
/// JSON when it has none.
fn outbox_format(
    outbox: &mart_manifest::OutboxConfig,
    database: &str,
) -> anyhow::Result<EventFormat> {
    let Some(format) = outbox.formats.get(database) else {
        return Ok(EventFormat::default());
    };
    EventFormat::named(format).with_context(|| {
        format!(
            "[application.trigger.kafka] outbox.formats.{database}: `{format}` is not an event \
             format; use one of {}",
            EventFormat::ALL.map(EventFormat::content_type).join(", ")
        )
    })
}

/// The databases whose outboxes are relayed, each with the format its
/// events go out in (`outbox.formats`, JSON when not listed).
fn relayed_databases(
    outbox: &mart_manifest::OutboxConfig,
) -> anyhow::Result<Vec<mart_outbox_relay::Database>> {
    outbox
        .databases
        .iter()
        .map(|name| {
            Ok(mart_outbox_relay::Database {
                url: mart_migrate::database_url(&outbox.server, name)?,
                name: name.clone(),
                format: outbox_format(outbox, name)?,
            })
        })
        .collect()
}

/// The databases whose `processed_events` the retention prunes:
/// `outbox.processed_events`, or when it is left out the relayed ones
/// (those without the table are passed over). `true` when listed.
fn handler_databases(
    outbox: &mart_manifest::OutboxConfig,
) -> anyhow::Result<(Vec<mart_outbox_relay::HandlerDatabase>, bool)> {
    let names = outbox
        .processed_events
        .as_ref()
        .unwrap_or(&outbox.databases);
    let databases = names
        .iter()
        .map(|name| {
            Ok(mart_outbox_relay::HandlerDatabase {
                url: mart_migrate::database_url(&outbox.server, name)?,
                name: name.clone(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((databases, outbox.processed_events.is_some()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(formats: &[(&str, &str)]) -> mart_manifest::OutboxConfig {
        mart_manifest::OutboxConfig {
            server: "postgres://mart@127.0.0.1:5432".into(),
            databases: vec!["orders".into(), "users".into()],
            processed_events: None,
            formats: formats
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn each_database_goes_out_in_its_format_json_by_default() {
        let chosen = outbox(&[("orders", "application/cloudevents+protobuf")]);
        check_outbox_formats(&chosen).unwrap();
        let formats: Vec<(String, EventFormat)> = relayed_databases(&chosen)
            .unwrap()
            .into_iter()
            .map(|db| (db.name, db.format))
            .collect();
        assert_eq!(
            formats,
            [
                ("orders".to_string(), EventFormat::CloudEventsProtobuf),
                ("users".to_string(), EventFormat::Json)
            ]
        );
    }

    #[test]
    fn a_format_must_be_one_of_the_three_for_a_relayed_database() {
        let error = check_outbox_formats(&outbox(&[("orders", "application/xml")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "[application.trigger.kafka] outbox.formats.orders: `application/xml` is not an \
             event format; use one of application/json, application/protobuf, \
             application/cloudevents+protobuf"
        );
        let error =
            check_outbox_formats(&outbox(&[("carts", "application/protobuf")])).unwrap_err();
        assert!(
            error.to_string().contains("`carts`, which is not in"),
            "{error}"
        );
    }
}
