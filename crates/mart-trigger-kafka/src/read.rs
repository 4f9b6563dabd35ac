//! Reading a topic up to where it ends now (dead-letter topics: to list
//! them, and to rebuild parked keys from them).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Message as _, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

/// How long one metadata or offsets request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reading a topic to its end may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Calls `each` with every record of `topic` from `start(partition, low
/// watermark)` up to the partition's end as it is now (later records are
/// left for the next reader). Returns each partition's end, or `None` when
/// the topic does not exist.
pub fn read_to_end(
    reader: &BaseConsumer,
    topic: &str,
    start: impl Fn(i32, i64) -> i64,
    mut each: impl FnMut(&OwnedMessage) -> anyhow::Result<()>,
) -> anyhow::Result<Option<HashMap<i32, i64>>> {
    let metadata = reader
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .with_context(|| format!("reading metadata of `{topic}`"))?;
    let Some(found) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
    else {
        return Ok(None);
    };
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    let mut remaining = HashMap::new();
    for p in found.partitions() {
        let (low, high) = reader.fetch_watermarks(topic, p.id(), REQUEST_TIMEOUT)?;
        ends.insert(p.id(), high);
        // Records below `low` are gone (retention); start at what exists.
        let from = start(p.id(), low).max(low);
        if from < high {
            assignment.add_partition_offset(topic, p.id(), Offset::Offset(from))?;
            remaining.insert(p.id(), high);
        }
    }
    if remaining.is_empty() {
        return Ok(Some(ends));
    }
    reader.assign(&assignment)?;
    let deadline = Instant::now() + READ_TIMEOUT;
    while !remaining.is_empty() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out reading `{topic}` to its end"
        );
        let Some(message) = reader.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?.detach();
        let (p, offset) = (message.partition(), message.offset());
        if ends.get(&p).is_none_or(|high| offset >= *high) {
            continue;
        }
        each(&message)?;
        if remaining.get(&p).is_some_and(|high| offset + 1 >= *high) {
            remaining.remove(&p);
        }
    }
    reader.unassign()?;
    Ok(Some(ends))
}
