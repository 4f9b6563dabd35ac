//! Mart's Kafka trigger configuration. Spin has no Kafka trigger: these
//! tables are Mart's own, placed where Spin puts a trigger's settings:
//! `[[trigger.kafka]]` per handler and `[application.trigger.kafka]` for the
//! trigger as a whole, both in `spin.toml`. Spin carries both into the locked
//! app it hands a trigger plugin (`trigger_config`, `metadata.triggers.kafka`);
//! its runtime config refuses keys it does not know, so nothing of Mart's
//! lives in `runtime-config.toml`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One `[[trigger.kafka]]` entry: which component handles which topics.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTrigger {
    pub component: String,
    pub topics: Vec<String>,
    /// Consumer group; defaults to `<application>.<component>`.
    #[serde(default)]
    pub group: Option<String>,
    /// Where a group with no committed offset starts.
    #[serde(default)]
    pub start: StartPosition,
    /// Messages of one partition handed to one invocation.
    #[serde(default = "defaults::batch_size")]
    pub batch_size: u32,
    /// How long a partial batch waits for more messages, in milliseconds.
    #[serde(default = "defaults::max_wait_ms")]
    pub max_wait_ms: u64,
    /// Invocations running at once for this trigger (partitions are processed
    /// concurrently, each partition in order).
    #[serde(default = "defaults::concurrency")]
    pub concurrency: u32,
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Where messages go when they cannot be processed; defaults to
    /// `<topic>.dlq` for each topic.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartPosition {
    #[default]
    Earliest,
    Latest,
}

impl StartPosition {
    pub fn as_str(self) -> &'static str {
        match self {
            StartPosition::Earliest => "earliest",
            StartPosition::Latest => "latest",
        }
    }
}

/// Retries of a retryable failure: exponential backoff with jitter, capped.
///
/// By default a retryable failure is retried for as long as it stays
/// retryable, holding its partition (as AWS Lambda's Kafka event source
/// does): a database restart or a provider outage longer than a few seconds
/// must delay the saga, never skip a step of it. Only a permanent failure
/// goes to the dead-letter topic, unless `max_attempts` bounds the retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 means no retry); none: retry
    /// retryable failures until they succeed or turn permanent.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default = "defaults::initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default = "defaults::max_backoff_ms")]
    pub max_backoff_ms: u64,
}

impl RetryPolicy {
    /// Whether a message that failed `attempts` times may be tried again.
    pub fn allows_another(&self, attempts: u32) -> bool {
        self.max_attempts.is_none_or(|max| attempts < max)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: None,
            initial_backoff_ms: defaults::initial_backoff_ms(),
            max_backoff_ms: defaults::max_backoff_ms(),
        }
    }
}

mod defaults {
    pub fn batch_size() -> u32 {
        1
    }
    pub fn max_wait_ms() -> u64 {
        5
    }
    pub fn concurrency() -> u32 {
        4
    }
    pub fn initial_backoff_ms() -> u64 {
        100
    }
    /// Long enough not to hammer a dependency that is down, short enough
    /// that the saga resumes soon after it is back.
    pub fn max_backoff_ms() -> u64 {
        30_000
    }
}

impl KafkaTrigger {
    pub fn group_id(&self, application: &str) -> String {
        self.group
            .clone()
            .unwrap_or_else(|| format!("{application}.{}", self.component))
    }

    pub fn dead_letter_topic_for(&self, topic: &str) -> String {
        self.dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{topic}.dlq"))
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let who = format!("Kafka trigger for component `{}`", self.component);
        if self.topics.is_empty() {
            return Err(format!("{who}: `topics` is empty"));
        }
        if let Some(bad) = self.topics.iter().find(|t| !is_topic_name(t)) {
            return Err(format!("{who}: `{bad}` is not a valid Kafka topic name"));
        }
        if self.batch_size == 0 || self.concurrency == 0 || self.retry.max_attempts == Some(0) {
            return Err(format!(
                "{who}: batch_size, concurrency and retry.max_attempts must be at least 1"
            ));
        }
        if self.retry.initial_backoff_ms > self.retry.max_backoff_ms {
            return Err(format!(
                "{who}: retry.initial_backoff_ms exceeds retry.max_backoff_ms"
            ));
        }
        Ok(())
    }
}

/// Kafka's rule: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn is_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `[application.trigger.kafka]` in `spin.toml`: where the brokers are, how to
/// talk to them, and which databases' outboxes the trigger relays. String
/// values may use `{{ variable }}` templates, so addresses and secrets come
/// from Spin variables (`SPIN_VARIABLE_*`) rather than the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list.
    #[serde(default)]
    pub brokers: Option<String>,
    /// Partitions for topics the host creates when they are missing.
    #[serde(default)]
    pub partitions: Option<i32>,
    #[serde(default)]
    pub replication_factor: Option<i32>,
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    #[serde(default)]
    pub security_protocol: Option<String>,
    #[serde(default)]
    pub sasl_mechanism: Option<String>,
    #[serde(default)]
    pub sasl_username: Option<String>,
    #[serde(default)]
    pub sasl_password: Option<String>,
    /// Further librdkafka properties, passed through as given.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// The outbox relay: the PostgreSQL server (a URL without a database)
    /// and the service databases on it whose outboxes go to Kafka.
    #[serde(default)]
    pub outbox: Option<OutboxConfig>,
    /// This host's stable identity in the consumer groups (static
    /// membership, KIP-345): a host restarted under the same identity takes
    /// its partitions back at once, without waiting for the broker to
    /// expire its old member. Per host, so not in the manifest: from
    /// `MART_KAFKA_INSTANCE_ID` (e.g. a StatefulSet pod's name).
    #[serde(skip)]
    pub instance_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    pub server: String,
    /// The databases whose `outbox` is relayed (each must have one).
    pub databases: Vec<String>,
    /// The databases whose event handlers' `processed_events` records are
    /// pruned after the retention (each must have the table), relayed or
    /// not. When left out: the relayed databases that have the table.
    #[serde(default)]
    pub processed_events: Option<Vec<String>>,
    /// The format a database's events go out in, by database, named by
    /// the records' content type: `application/json` (the default),
    /// `application/protobuf`, or `application/cloudevents+protobuf`.
    #[serde(default)]
    pub formats: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(toml_text: &str) -> Result<KafkaTrigger, String> {
        let t: KafkaTrigger = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        t.validate()?;
        Ok(t)
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let t = trigger("component = \"c\"\ntopics = [\"mart.orders\"]").unwrap();
        assert_eq!(t.batch_size, 1);
        assert_eq!(t.start, StartPosition::Earliest);
        assert_eq!(t.retry.max_attempts, None, "retry until permanent");
        assert!(t.retry.allows_another(1_000_000));
        assert_eq!(t.retry.max_backoff_ms, 30_000);
        let bounded =
            trigger("component = \"c\"\ntopics = [\"t\"]\nretry = { max_attempts = 3 }").unwrap();
        assert!(bounded.retry.allows_another(2) && !bounded.retry.allows_another(3));
        assert_eq!(t.group_id("mart"), "mart.c");
        assert_eq!(t.dead_letter_topic_for("mart.orders"), "mart.orders.dlq");
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let err = trigger("component = \"c\"\ntopics = []").unwrap_err();
        assert!(err.contains("`topics` is empty"), "{err}");
        let err = trigger("component = \"c\"\ntopics = [\"a b\"]").unwrap_err();
        assert!(
            err.contains("`a b` is not a valid Kafka topic name"),
            "{err}"
        );
        let err = trigger("component = \"c\"\ntopics = [\"t\"]\nbatch_size = 0").unwrap_err();
        assert!(err.contains("at least 1"), "{err}");
        let err = trigger("component = \"c\"\ntopics = [\"t\"]\nstart = \"middle\"").unwrap_err();
        assert!(err.contains("unknown variant"), "{err}");
        let err = trigger("component = \"c\"\ntopics = [\"t\"]\nretries = 3").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn topic_names_follow_kafka() {
        assert!(is_topic_name("mart.orders.dlq"));
        assert!(is_topic_name("a_b-C1"));
        assert!(!is_topic_name(".."));
        assert!(!is_topic_name("ü"));
        assert!(!is_topic_name(&"x".repeat(250)));
    }
}
