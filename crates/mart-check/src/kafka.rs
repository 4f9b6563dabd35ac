//! The consumer groups' lag, read from the broker: for every group, its
//! committed offset on every partition of each topic it has committed on
//! (whichever member owns the partition, or none) against the partition's
//! end. The host exports the same for its own groups
//! (`mart_kafka_group_lag`); this reads every group on the brokers.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Between the two readings: a partition a member is working on commits
/// several times meanwhile (the trigger commits every 200 ms).
pub const PAUSE: Duration = Duration::from_secs(2);
const TIMEOUT: Duration = Duration::from_secs(10);
/// Groups `mart dead-letters --redrive` keeps its place in: letters waiting
/// for an operator are not a partition nobody consumes.
const REDRIVE_GROUPS: &str = "mart.redrive.";

/// One group's standing on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPartition {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// The group's next offset there, if it ever committed one.
    pub committed: Option<i64>,
    /// The partition's first and next offsets.
    pub low: i64,
    pub high: i64,
}

impl GroupPartition {
    /// Messages waiting for the group; a partition it never committed on is
    /// counted from its start (Mart's triggers read from `earliest` unless
    /// told otherwise).
    fn lag(&self) -> i64 {
        (self.high - self.committed.unwrap_or(self.low)).max(0)
    }
}

/// Reads every group's partitions (on a blocking thread: librdkafka's calls
/// block).
pub async fn read_blocking(brokers: &str) -> anyhow::Result<Vec<GroupPartition>> {
    let brokers = brokers.to_string();
    tokio::task::spawn_blocking(move || read(&brokers))
        .await
        .context("reading the consumer groups")?
        .with_context(|| "reading the consumer groups' offsets from the Kafka brokers")
}

fn client(brokers: &str, group: Option<&str>) -> anyhow::Result<BaseConsumer> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "mart-check")
        .set("enable.auto.commit", "false")
        .set("log_level", "3");
    if let Some(group) = group {
        config.set("group.id", group);
    }
    Ok(config.create()?)
}

/// Closing a consumer can block inside librdkafka for a long time with some
/// brokers; nothing here waits for it.
fn close(consumer: BaseConsumer) {
    std::thread::spawn(move || drop(consumer));
}

fn read(brokers: &str) -> anyhow::Result<Vec<GroupPartition>> {
    let admin = client(brokers, None)?;
    let groups: Vec<String> = admin
        .fetch_group_list(None, TIMEOUT)
        .context("listing the consumer groups")?
        .groups()
        .iter()
        .map(|g| g.name().to_string())
        .filter(|name| !name.starts_with(REDRIVE_GROUPS))
        .collect();
    let metadata = admin
        .fetch_metadata(None, TIMEOUT)
        .context("listing the topics")?;
    let mut all = TopicPartitionList::new();
    for topic in metadata.topics() {
        if topic.name().starts_with("__") {
            continue; // the broker's own
        }
        for p in topic.partitions() {
            all.add_partition(topic.name(), p.id());
        }
    }
    let mut watermarks: HashMap<(String, i32), (i64, i64)> = HashMap::new();
    let mut found = Vec::new();
    for group in groups {
        let consumer = client(brokers, Some(&group))?;
        let committed = consumer
            .committed_offsets(all.clone(), TIMEOUT)
            .with_context(|| format!("the committed offsets of group {group}"));
        close(consumer);
        let committed: Vec<(String, i32, Option<i64>)> = committed?
            .elements()
            .iter()
            .map(|e| {
                let offset = match e.offset() {
                    Offset::Offset(o) if o >= 0 => Some(o),
                    _ => None,
                };
                (e.topic().to_string(), e.partition(), offset)
            })
            .collect();
        // The group's topics: those it committed on at least once (a group
        // that never committed, such as a reader's, reads nothing here).
        let mut topics: BTreeMap<&str, bool> = BTreeMap::new();
        for (topic, _, offset) in &committed {
            *topics.entry(topic.as_str()).or_default() |= offset.is_some();
        }
        for (topic, partition, offset) in &committed {
            if !topics[topic.as_str()] {
                continue;
            }
            let key = (topic.clone(), *partition);
            let (low, high) = match watermarks.get(&key) {
                Some(w) => *w,
                None => {
                    let w = admin
                        .fetch_watermarks(topic, *partition, TIMEOUT)
                        .with_context(|| format!("the end offsets of {topic}/{partition}"))?;
                    watermarks.insert(key, w);
                    w
                }
            };
            found.push(GroupPartition {
                group: group.clone(),
                topic: topic.clone(),
                partition: *partition,
                committed: *offset,
                low,
                high,
            });
        }
    }
    close(admin);
    Ok(found)
}

/// Partitions that lag in both readings with the group's committed offset
/// unmoved, one line each.
pub fn lagging(first: &[GroupPartition], second: &[GroupPartition]) -> Vec<String> {
    second
        .iter()
        .filter(|now| now.lag() > 0)
        .filter(|now| {
            first.iter().any(|before| {
                before.group == now.group
                    && before.topic == now.topic
                    && before.partition == now.partition
                    && before.committed == now.committed
                    && before.lag() > 0
            })
        })
        .map(|p| {
            format!(
                "partition {}/{} of group {}: {} message(s) past its committed offset ({}), \
                 no progress in {}s (is any member consuming it?)",
                p.topic,
                p.partition,
                p.group,
                p.lag(),
                p.committed
                    .map_or("none".to_string(), |offset| offset.to_string()),
                PAUSE.as_secs()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: i32, committed: Option<i64>, high: i64) -> GroupPartition {
        GroupPartition {
            group: "mart.orders-events".into(),
            topic: "mart.payments".into(),
            partition,
            committed,
            low: 0,
            high,
        }
    }

    #[test]
    fn a_partition_lagging_without_progress_is_reported_one_moving_is_not() {
        let first = [
            at(0, Some(5), 9), // stuck
            at(1, Some(5), 9), // moving
            at(2, Some(9), 9), // done
            at(3, None, 4),    // never read
        ];
        let second = [
            at(0, Some(5), 10),
            at(1, Some(7), 10),
            at(2, Some(9), 9),
            at(3, None, 4),
        ];
        let lines = lagging(&first, &second);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0]
                .starts_with("partition mart.payments/0 of group mart.orders-events: 5 message(s)"),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("mart.payments/3") && lines[1].contains("(none)"),
            "{lines:?}"
        );
    }

    #[test]
    fn lagging_partitions_are_unsettled_not_violations() {
        let report = crate::Report {
            lagging: vec!["partition t/0 of group g: 3 message(s)".into()],
            partitions: Some(4),
            ..crate::Report::default()
        };
        assert_eq!(report.exit_code(), 2);
        let text = report.to_string();
        assert!(
            text.contains("0 orders: 0 unsettled, 0 violation(s)"),
            "{text}"
        );
        assert!(
            text.contains("  unsettled: partition t/0 of group g"),
            "{text}"
        );
        assert_eq!(crate::Report::default().exit_code(), 0);
    }
}
