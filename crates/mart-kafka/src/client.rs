use mart_manifest::KafkaConfig;
use rdkafka::ClientConfig;

/// Partitions for topics the host creates: enough for the two-host
/// consumer groups the tests run and for some parallelism per topic.
const DEFAULT_PARTITIONS: i32 = 4;

/// Where the brokers are and how to reach them, with templates already
/// rendered. Cheap to clone; each user builds its own librdkafka client.
#[derive(Debug, Clone)]
pub struct KafkaClient {
    config: KafkaConfig,
}

impl KafkaClient {
    /// `None` when no brokers are configured: the app then runs without
    /// Kafka (HTTP only), which `mart up` reports at start.
    pub fn new(config: KafkaConfig) -> Option<Self> {
        config
            .brokers
            .as_deref()
            .is_some_and(|b| !b.trim().is_empty())
            .then_some(Self { config })
    }

    pub fn brokers(&self) -> &str {
        self.config.brokers.as_deref().unwrap_or_default()
    }

    /// This host's stable identity in the consumer groups, for static
    /// membership.
    pub fn instance_id(&self) -> Option<&str> {
        self.config.instance_id.as_deref()
    }

    /// The outbox relay's server and databases, templates rendered.
    pub fn outbox(&self) -> Option<&mart_manifest::OutboxConfig> {
        self.config.outbox.as_ref()
    }

    pub fn partitions(&self) -> i32 {
        self.config.partitions.unwrap_or(DEFAULT_PARTITIONS)
    }

    pub fn replication_factor(&self) -> i32 {
        self.config.replication_factor.unwrap_or(1)
    }

    /// Settings every client shares: brokers, security, passthrough properties.
    pub fn base(&self, client_id: &str) -> ClientConfig {
        self.base_with_defaults(client_id, &[])
    }

    /// `base`, with `defaults` set before the manifest's `properties`, so
    /// that a deployment can tune them (e.g. `fetch.wait.max.ms` for a
    /// broker that answers fetches early) while Mart's own choices hold
    /// where nobody says otherwise.
    pub fn base_with_defaults(&self, client_id: &str, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.brokers())
            .set("client.id", client_id)
            // librdkafka logs through its own callback; keep it to what matters.
            .set("log_level", "4");
        let optional = [
            ("security.protocol", &self.config.security_protocol),
            ("sasl.mechanism", &self.config.sasl_mechanism),
            ("sasl.username", &self.config.sasl_username),
            ("sasl.password", &self.config.sasl_password),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                config.set(key, value);
            }
        }
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.config.properties {
            config.set(key, value);
        }
        config
    }
}

impl KafkaClient {
    /// Whether a broker answers a metadata request within `timeout`
    /// (readiness). Runs librdkafka's blocking call off the async threads.
    pub async fn ping(&self, timeout: std::time::Duration) -> Result<(), String> {
        let config = self.base("mart-readiness");
        let brokers = self.brokers().to_string();
        let check = tokio::task::spawn_blocking(move || {
            let producer: rdkafka::producer::BaseProducer =
                config.create().map_err(|e| e.to_string())?;
            let result = rdkafka::producer::Producer::client(&producer)
                .fetch_metadata(None, timeout)
                .map(|_| ())
                .map_err(|e| format!("{brokers}: {e}"));
            // Closing a producer that never produced is quick.
            drop(producer);
            result
        });
        check.await.map_err(|e| e.to_string())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifests_properties_win_over_marts_defaults() {
        let client = KafkaClient::new(KafkaConfig {
            brokers: Some("b:9092".into()),
            properties: [("fetch.wait.max.ms".to_string(), "500".to_string())].into(),
            ..KafkaConfig::default()
        })
        .unwrap();
        let defaults = [("fetch.wait.max.ms", "10"), ("session.timeout.ms", "10000")];
        let config = client.base_with_defaults("mart-test", &defaults);
        assert_eq!(
            config.get("fetch.wait.max.ms"),
            Some("500"),
            "tuned by the deployment"
        );
        assert_eq!(
            config.get("session.timeout.ms"),
            Some("10000"),
            "Mart's default"
        );
        assert_eq!(config.get("bootstrap.servers"), Some("b:9092"));
    }
}
