//! A consumer group's lag on every partition of the topics it reads,
//! whichever member owns it (or none): the group's committed offset against
//! the partition's end. A member's own lag (`mart_kafka_consumer_lag`) shows
//! only its partitions; a partition the broker assigned to a member that no
//! longer exists (a host killed and restarted without a stable
//! `MART_KAFKA_INSTANCE_ID`, on a broker that keeps the dead member) shows
//! here only: its lag grows and its committed offset stays put.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use mart_metrics::Metrics;
use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

/// How often the group's lag is read from the broker.
const INTERVAL: Duration = Duration::from_secs(10);
/// Each request to the broker.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a partition may lag with its committed offset unmoved before
/// it is logged as a warning.
const STUCK_WARNING: Duration = Duration::from_secs(60);

/// One partition of a group: where the group is and where the partition ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The group's committed offset (the next message it will read), if any.
    pub committed: Option<i64>,
    /// The partition's first and next offsets.
    pub low: i64,
    pub high: i64,
}

impl PartitionLag {
    /// Messages the group has not consumed. A partition the group never
    /// committed on is read from its start (`earliest`) or only from what
    /// arrives once a member reads it (`latest`: nothing is waiting).
    pub fn lag(&self, earliest: bool) -> i64 {
        match self.committed {
            Some(committed) => (self.high - committed).max(0),
            None if earliest => (self.high - self.low).max(0),
            None => 0,
        }
    }
}

/// Every partition of `topics` for the consumer's group (its `group.id`).
pub fn read<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    topics: &[String],
    timeout: Duration,
) -> KafkaResult<Vec<PartitionLag>> {
    let mut wanted = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                wanted.add_partition(t.name(), p.id());
            }
        }
    }
    let committed = consumer.committed_offsets(wanted, timeout)?;
    let mut lags = Vec::new();
    for element in committed.elements() {
        let (low, high) =
            consumer.fetch_watermarks(element.topic(), element.partition(), timeout)?;
        lags.push(PartitionLag {
            topic: element.topic().to_string(),
            partition: element.partition(),
            committed: match element.offset() {
                Offset::Offset(offset) if offset >= 0 => Some(offset),
                _ => None,
            },
            low,
            high,
        });
    }
    Ok(lags)
}

/// Remembers, per partition, since when the group's lag has not moved.
#[derive(Default)]
pub struct Tracker {
    partitions: HashMap<(String, i32), Seen>,
}

struct Seen {
    committed: Option<i64>,
    /// Since when the partition has lagged with this committed offset.
    since: Instant,
    warned: bool,
}

/// A partition after a reading: its lag, and for how long it has lagged
/// without the group's committed offset moving (zero when it has none).
#[derive(Debug, PartialEq, Eq)]
pub struct Observed {
    pub lag: i64,
    pub stuck: Duration,
    /// True once per stuck spell, when it passes `STUCK_WARNING`.
    pub warn: bool,
}

impl Tracker {
    pub fn observe(&mut self, partition: &PartitionLag, earliest: bool, now: Instant) -> Observed {
        let lag = partition.lag(earliest);
        let key = (partition.topic.clone(), partition.partition);
        let seen = self.partitions.entry(key).or_insert(Seen {
            committed: partition.committed,
            since: now,
            warned: false,
        });
        if lag == 0 || seen.committed != partition.committed {
            *seen = Seen {
                committed: partition.committed,
                since: now,
                warned: false,
            };
        }
        let stuck = if lag > 0 {
            now.duration_since(seen.since)
        } else {
            Duration::ZERO
        };
        let warn = stuck >= STUCK_WARNING && !seen.warned;
        seen.warned |= warn;
        Observed { lag, stuck, warn }
    }
}

/// Reads the group's lag every `INTERVAL` on its own thread (the requests
/// block) through the member's consumer, until `stop` or the consumer is
/// gone, into `mart_kafka_group_lag` and `mart_kafka_group_lag_stuck_seconds`.
pub fn spawn_monitor<C>(
    consumer: Weak<rdkafka::consumer::BaseConsumer<C>>,
    group: String,
    topics: Vec<String>,
    earliest: bool,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>>
where
    C: ConsumerContext + 'static,
{
    std::thread::Builder::new()
        .name(format!("kafka-lag-{group}"))
        .spawn(move || {
            let mut tracker = Tracker::default();
            let mut failing = false;
            loop {
                let wake = Instant::now() + INTERVAL;
                while Instant::now() < wake {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let Some(consumer) = consumer.upgrade() else {
                    return;
                };
                let reading = read(&*consumer, &topics, TIMEOUT);
                let owned = consumer.assignment().ok();
                drop(consumer);
                let partitions = match reading {
                    Ok(partitions) => {
                        failing = false;
                        partitions
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(%group, error = %e, "reading the group's lag failed");
                        }
                        failing = true;
                        continue;
                    }
                };
                let now = Instant::now();
                for p in &partitions {
                    let seen = tracker.observe(p, earliest, now);
                    metrics.kafka_group_lag(&group, &p.topic, p.partition, seen.lag, seen.stuck);
                    if seen.warn {
                        let here = owned.as_ref().is_some_and(|list| {
                            list.find_partition(&p.topic, p.partition).is_some()
                        });
                        tracing::warn!(
                            %group,
                            topic = %p.topic,
                            partition = p.partition,
                            lag = seen.lag,
                            committed = ?p.committed,
                            owned_by_this_host = here,
                            "a partition has lagged for {}s without its committed offset moving; \
                             if no member is working on it, the broker may have given it to a \
                             member that no longer exists (hosts need a stable \
                             MART_KAFKA_INSTANCE_ID)",
                            seen.stuck.as_secs()
                        );
                    }
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(committed: Option<i64>, low: i64, high: i64) -> PartitionLag {
        PartitionLag {
            topic: "t".into(),
            partition: 0,
            committed,
            low,
            high,
        }
    }

    #[test]
    fn lag_is_the_end_past_the_committed_offset() {
        assert_eq!(partition(Some(4), 0, 10).lag(true), 6);
        assert_eq!(partition(Some(10), 0, 10).lag(true), 0);
        // Never committed: everything is waiting for an `earliest` group,
        // nothing for a `latest` one.
        assert_eq!(partition(None, 2, 10).lag(true), 8);
        assert_eq!(partition(None, 2, 10).lag(false), 0);
    }

    #[test]
    fn a_lag_whose_offset_does_not_move_is_stuck_and_warned_once() {
        let mut tracker = Tracker::default();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let first = tracker.observe(&partition(Some(4), 0, 10), true, at(0));
        assert_eq!(first.stuck, Duration::ZERO);
        let later = tracker.observe(&partition(Some(4), 0, 12), true, at(30));
        assert_eq!(
            (later.lag, later.stuck, later.warn),
            (8, at(30) - at(0), false)
        );
        let warned = tracker.observe(&partition(Some(4), 0, 12), true, at(61));
        assert!(warned.warn);
        assert!(
            !tracker
                .observe(&partition(Some(4), 0, 12), true, at(70))
                .warn
        );
        // Progress starts a new spell.
        let moved = tracker.observe(&partition(Some(5), 0, 12), true, at(80));
        assert_eq!((moved.stuck, moved.warn), (Duration::ZERO, false));
        // No lag is never stuck.
        let idle = tracker.observe(&partition(Some(12), 0, 12), true, at(200));
        assert_eq!((idle.lag, idle.stuck), (0, Duration::ZERO));
    }
}
