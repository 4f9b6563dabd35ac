use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::message::{Header as KafkaHeader, Message as _, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::ClientContext;
use tokio::sync::oneshot;

use crate::bindings::mart::kafka::producer;
use crate::KafkaClient;

/// How long a guest's `publish` waits for the broker before giving up.
const GUEST_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one poll of the producer's queue may wait for an event. Each
/// poll ends with up to a millisecond of busy polling (rdkafka rounds the
/// time left down to whole milliseconds, so its last turns wait 0 ms); at
/// rdkafka's own 100 ms that was 1 % of a core per idle producer.
/// Acknowledgements are delivered as they arrive, whatever this is; it
/// only bounds how long the thread takes to notice its producer is gone.
const POLL_WAIT: Duration = Duration::from_secs(2);

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

/// The broker's answer for one record: where it was written (partition,
/// offset), or why it was not.
type Acknowledgement = Result<(i32, i64), rdkafka::error::KafkaError>;

/// Resolves when the broker acknowledged a queued record (see
/// `Publisher::acknowledged`).
pub type Delivery = oneshot::Receiver<Acknowledgement>;

/// A producer that reports success only once the broker acknowledged the
/// record (`acks=all`), keeping records of one partition in order.
#[derive(Clone)]
pub struct Publisher {
    producer: Arc<Polled>,
    client: KafkaClient,
    client_id: Arc<str>,
}

/// The producer and the thread that polls it for acknowledgements; the
/// thread stops when the last `Publisher` clone is dropped.
struct Polled {
    producer: Arc<BaseProducer<Acknowledgements>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Polled {
    fn drop(&mut self) {
        // Not joined: the thread notices within POLL_WAIT, and nobody
        // should wait that long for a drop.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Hands each acknowledgement (or final failure) to the record's `Delivery`.
struct Acknowledgements;

impl ClientContext for Acknowledgements {}

impl ProducerContext for Acknowledgements {
    type DeliveryOpaque = Box<oneshot::Sender<Acknowledgement>>;

    fn delivery(&self, result: &DeliveryResult<'_>, delivery: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(message) => Ok((message.partition(), message.offset())),
            Err((error, _)) => Err(error.clone()),
        };
        // The publisher may have stopped waiting (a guest's timeout).
        let _ = delivery.send(outcome);
    }
}

impl Publisher {
    pub fn new(client: &KafkaClient, client_id: &str) -> anyhow::Result<Self> {
        let producer: BaseProducer<Acknowledgements> = client
            .base(client_id)
            .set("acks", "all")
            // Idempotence keeps a partition's records in order and free of
            // broker-side duplicates across internal retries, with up to 5
            // requests in flight.
            .set("enable.idempotence", "true")
            // Retry for as long as it takes: the outbox row stays unsent until
            // this resolves, so giving up early would only re-send it later.
            .set("message.timeout.ms", "0")
            // Low latency beats bigger batches for event hops.
            .set("linger.ms", "1")
            .create_with_context(Acknowledgements)
            .context("creating the Kafka producer")?;
        let producer = Arc::new(producer);
        let stop = Arc::new(AtomicBool::new(false));
        let (polled, stopped) = (producer.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("mart-producer-{client_id}"))
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    polled.poll(POLL_WAIT);
                }
            })
            .context("starting the Kafka producer's poll thread")?;
        Ok(Self {
            producer: Arc::new(Polled { producer, stop }),
            client: client.clone(),
            client_id: client_id.into(),
        })
    }

    /// A new producer with the same settings: a new producer id, so fresh
    /// sequence numbers. For a caller whose records the broker keeps
    /// refusing: a test broker restarted while records were in flight
    /// (tansu) can refuse every later record of the idempotent producer it
    /// knew, with an unknown error from which librdkafka does not recover.
    pub fn renewed(&self) -> anyhow::Result<Self> {
        Self::new(&self.client, &self.client_id)
    }

    /// Queues a record; the `Delivery` resolves when the broker acknowledged
    /// it. Records queued in order reach their partition in that order.
    pub fn enqueue(&self, record: &Record) -> Result<Delivery, PublishError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(KafkaHeader {
                key,
                value: Some(value),
            });
        }
        let (acknowledge, delivery) = oneshot::channel();
        let mut kafka_record =
            BaseRecord::<Vec<u8>, Vec<u8>, _>::with_opaque_to(&record.topic, Box::new(acknowledge))
                .payload(&record.value)
                .headers(headers);
        if let Some(key) = &record.key {
            kafka_record = kafka_record.key(key);
        }
        if let Some(partition) = record.partition {
            kafka_record = kafka_record.partition(partition);
        }
        self.producer
            .producer
            .send(kafka_record)
            .map_err(|(e, _)| PublishError::Rejected(e))?;
        Ok(delivery)
    }

    /// Publishes one record and waits for the acknowledgement:
    /// (partition, offset).
    pub async fn publish(&self, record: &Record) -> Result<(i32, i64), PublishError> {
        let delivery = self.enqueue(record)?;
        Self::acknowledged(delivery).await
    }

    pub async fn acknowledged(delivery: Delivery) -> Result<(i32, i64), PublishError> {
        match delivery.await {
            Ok(Ok(acknowledged)) => Ok(acknowledged),
            Ok(Err(e)) => Err(PublishError::Rejected(e)),
            Err(_) => Err(PublishError::Cancelled),
        }
    }

    /// Waits up to `timeout` for queued records to be delivered.
    pub fn flush(&self, timeout: Duration) {
        let _ = self.producer.producer.flush(timeout);
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
