use std::time::Duration;

use anyhow::Context as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::KafkaClient;

/// Creates the topics that do not exist yet. Brokers need not auto-create
/// topics (production clusters usually forbid it), so the host makes sure
/// every topic it consumes, publishes or dead-letters to is there.
pub async fn ensure_topics(client: &KafkaClient, topics: &[String]) -> anyhow::Result<()> {
    if topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = client
        .base("mart-admin")
        .create()
        .context("creating the Kafka admin client")?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                client.partitions(),
                TopicReplication::Fixed(client.replication_factor()),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = tokio::time::timeout(
        Duration::from_secs(30),
        admin.create_topics(&new_topics, &options),
    )
    .await
    .with_context(|| format!("Kafka at {} did not answer in 30 s", client.brokers()))?
    .with_context(|| format!("creating topics on {}", client.brokers()))?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(%topic, "created Kafka topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("cannot create Kafka topic `{topic}`: {code}"),
        }
    }
    Ok(())
}
