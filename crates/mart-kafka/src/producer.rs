use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};

use crate::bindings::mart::kafka::producer;
use crate::KafkaClient;

/// How long a guest's `publish` waits for the broker before giving up.
const GUEST_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

pub type Header = (String, Vec<u8>);

/// A record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    /// The partition, when it must be exactly this one (a redriven message
    /// goes back where it came from); otherwise the key's.
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<Header>,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the broker did not acknowledge the record: {0}")]
    Rejected(#[from] rdkafka::error::KafkaError),
    #[error("the producer shut down before the broker acknowledged the record")]
    Cancelled,
}

/// A producer that reports success only once the broker acknowledged the
/// record (`acks=all`), keeping records of one partition in order.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
}

impl Publisher {
    pub fn new(client: &KafkaClient, client_id: &str) -> anyhow::Result<Self> {
        // Defaults a deployment may override in `[application.trigger.kafka]
        // properties`. Order without idempotence: one request in flight per
        // broker, so a retried batch cannot be overtaken by the next one. The
        // idempotent producer would add only broker-side deduplication, which
        // the consumers already do on the event id, and it needs producer-id
        // state on the broker that a broker restart can confuse: librdkafka
        // bumps the epoch by itself after a failed batch, and tansu 0.6.0
        // (the test broker) then fails every later request of that broker
        // process (its storage task panics on an epoch it never issued),
        // which stalled the whole saga after a restart in faults_broker.rs.
        let tuning = [
            ("enable.idempotence", "false"),
            ("max.in.flight.requests.per.connection", "1"),
            // Low latency beats bigger batches for event hops.
            ("linger.ms", "1"),
        ];
        let producer = client
            .base_with_defaults(client_id, &tuning)
            // Not overridable: a record counts as published only once every
            // in-sync replica has it, ...
            .set("acks", "all")
            // ... and it is retried for as long as it takes: the outbox row
            // stays unsent until this resolves, so giving up early would only
            // re-send it later.
            .set("message.timeout.ms", "0")
            .create()
            .context("creating the Kafka producer")?;
        Ok(Self { producer })
    }

    /// Queues a record; the future resolves when the broker acknowledged it.
    /// Records queued in order reach their partition in that order.
    pub fn enqueue(&self, record: &Record) -> Result<DeliveryFuture, PublishError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(KafkaHeader {
                key,
                value: Some(value),
            });
        }
        let mut kafka_record = FutureRecord::<Vec<u8>, Vec<u8>>::to(&record.topic)
            .payload(&record.value)
            .headers(headers);
        if let Some(key) = &record.key {
            kafka_record = kafka_record.key(key);
        }
        if let Some(partition) = record.partition {
            kafka_record = kafka_record.partition(partition);
        }
        self.producer
            .send_result(kafka_record)
            .map_err(|(e, _)| PublishError::Rejected(e))
    }

    /// Publishes one record and waits for the acknowledgement:
    /// (partition, offset).
    pub async fn publish(&self, record: &Record) -> Result<(i32, i64), PublishError> {
        let delivery = self.enqueue(record)?;
        Self::acknowledged(delivery).await
    }

    pub async fn acknowledged(delivery: DeliveryFuture) -> Result<(i32, i64), PublishError> {
        match delivery.await {
            Ok(Ok(d)) => Ok((d.partition, d.offset)),
            Ok(Err((e, _))) => Err(PublishError::Rejected(e)),
            Err(_) => Err(PublishError::Cancelled),
        }
    }

    /// Waits up to `timeout` for queued records to be delivered.
    pub fn flush(&self, timeout: Duration) {
        let _ = self.producer.flush(timeout);
    }
}

/// The `mart:kafka/producer` host for one instance: publishing is allowed
/// only to the topics the component lists in `kafka_publish_topics`.
pub struct ProducerHost {
    publisher: Option<Publisher>,
    allowed_topics: Arc<BTreeSet<String>>,
}

impl ProducerHost {
    pub fn new(publisher: Option<Publisher>, allowed_topics: Arc<BTreeSet<String>>) -> Self {
        Self {
            publisher,
            allowed_topics,
        }
    }
}

impl producer::Host for ProducerHost {
    async fn publish(
        &mut self,
        topic: String,
        key: Option<Vec<u8>>,
        value: Vec<u8>,
        headers: Vec<producer::Header>,
    ) -> Result<(), String> {
        if !self.allowed_topics.contains(&topic) {
            return Err(format!(
                "topic `{topic}` is not in this component's kafka_publish_topics"
            ));
        }
        let Some(publisher) = &self.publisher else {
            return Err("no Kafka brokers are configured for this app".into());
        };
        let record = Record {
            topic,
            partition: None,
            key,
            value,
            headers: headers.into_iter().map(|h| (h.key, h.value)).collect(),
        };
        match tokio::time::timeout(GUEST_PUBLISH_TIMEOUT, publisher.publish(&record)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "the broker did not acknowledge within {} s; the record may still be delivered",
                GUEST_PUBLISH_TIMEOUT.as_secs()
            )),
        }
    }
}

/// Adds `mart:kafka/producer` to a linker.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut ProducerHost,
) -> wasmtime::Result<()> {
    producer::add_to_linker::<T, Producer>(linker, get)
}

struct Producer;

impl wasmtime::component::HasData for Producer {
    type Data<'a> = &'a mut ProducerHost;
}
