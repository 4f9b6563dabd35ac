//! A Kafka-protocol broker (tansu, via scripts/broker.sh) on a loopback port,
//! and the small Kafka client the tests use to produce and read records.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Header, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::{free_port, repo_root};

pub struct Broker {
    pub port: u16,
    dir: PathBuf,
}

static SHARED: OnceLock<Broker> = OnceLock::new();

/// A broker shared by the tests of one test binary (they use distinct topics
/// and groups), stopped and deleted when the test process exits.
pub fn broker() -> &'static Broker {
    SHARED.get_or_init(Broker::start_new)
}

/// A record as read back from a topic.
#[derive(Debug, Clone)]
pub struct Received {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.value).expect("a JSON value")
    }

    /// The Mart event the record carries, in whichever format it is.
    pub fn event(&self) -> mart_domain::events::Event {
        let headers: Vec<(String, Vec<u8>)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        mart_domain::events::Event::from_record(&headers, &self.value)
            .unwrap_or_else(|e| panic!("{e}: {self:?}"))
            .unwrap_or_else(|| panic!("an event type this version knows: {self:?}"))
    }
}

fn script() -> PathBuf {
    repo_root().join("scripts/broker.sh")
}

impl Broker {
    /// A broker of its own (for tests that stop and restart it).
    pub fn start_new() -> Broker {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("mart-test-kafka-{}-{port}", std::process::id()));
        let broker = Broker { port, dir };
        broker.start();
        crate::stop_when_this_process_exits(&script(), &broker.dir);
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (or restarts) the broker on its port with its data.
    pub fn start(&self) {
        let status = Command::new(script())
            .args(["start", self.dir.to_str().unwrap(), &self.port.to_string()])
            .status()
            .expect("running scripts/broker.sh");
        assert!(status.success(), "the broker did not start");
    }

    pub fn stop(&self) {
        let status = Command::new(script())
            .args(["stop", self.dir.to_str().unwrap()])
            .status()
            .expect("running scripts/broker.sh");
        assert!(status.success(), "the broker did not stop");
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap());
        config
    }

    /// Produces records and waits for each acknowledgement.
    pub fn produce(&self, topic: &str, records: &[(&str, serde_json::Value)]) {
        let producer: FutureProducer = self
            .config()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .create()
            .expect("a producer");
        runtime().block_on(async {
            for (key, value) in records {
                let payload = serde_json::to_vec(value).unwrap();
                let headers = OwnedHeaders::new().insert(Header {
                    key: "test",
                    value: Some("yes"),
                });
                producer
                    .send(
                        FutureRecord::to(topic)
                            .key(*key)
                            .payload(&payload)
                            .headers(headers),
                        Duration::from_secs(30),
                    )
                    .await
                    .map_err(|(e, _)| e)
                    .expect("the broker acknowledged");
            }
        });
    }

    /// Reads every partition of `topic` from the start until `count`
    /// records arrived (or `timeout`, then panics saying what arrived).
    pub fn read(&self, topic: &str, count: usize, timeout: Duration) -> Vec<Received> {
        self.read_until(topic, &format!("{count} records"), timeout, |received| {
            received.len() >= count
        })
    }

    /// Reads every partition of `topic` from the start until a record that
    /// `is_it` arrives (or `timeout`, then panics saying what arrived): the
    /// test's own record on a topic other tests write to as well.
    pub fn read_one(
        &self,
        topic: &str,
        what: &str,
        timeout: Duration,
        is_it: impl Fn(&Received) -> bool,
    ) -> Received {
        self.read_until(topic, what, timeout, |received| received.iter().any(&is_it))
            .into_iter()
            .find(|record| is_it(record))
            .expect("read_until returns once the record is there")
    }

    /// Reads every partition of `topic` from the start until what arrived
    /// is `enough` (or `timeout`, then panics saying what arrived).
    pub fn read_until(
        &self,
        topic: &str,
        what: &str,
        timeout: Duration,
        enough: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", format!("test-reader-{}", free_port()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("a consumer");
        // The caller's whole timeout: a busy broker may answer slowly.
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .expect("topic metadata");
        let mut assignment = TopicPartitionList::new();
        for p in metadata.topics()[0].partitions() {
            assignment
                .add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).expect("assign");
        let mut received = Vec::new();
        let deadline = Instant::now() + timeout;
        while !enough(&received) {
            assert!(
                Instant::now() < deadline,
                "{what} did not arrive on {topic} within {timeout:?}; {} records did: \
                 {received:?}",
                received.len()
            );
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let m = message.expect("a record");
                received.push(Received {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: m.payload().unwrap_or_default().to_vec(),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (
                                        h.key.to_string(),
                                        String::from_utf8_lossy(h.value.unwrap_or_default())
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
        }
        // Closing can block inside librdkafka with some brokers; nothing waits on it.
        std::thread::spawn(move || drop(consumer));
        received
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
