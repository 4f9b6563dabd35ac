//! Keeping an aggregate's order across a dead letter ("parking" by key).
//!
//! A message's key names its aggregate (an order, a user), and the events of
//! one aggregate must be handled in the order they happened. Once a consumer
//! group dead-letters a message of key K from partition T/P, that group
//! handles no later message of K from T/P: each is dead-lettered too, as
//! "parked", without being invoked. Other keys of the partition go on.
//!
//! A parked key is released when its letters are resolved, oldest first:
//! `mart dead-letters --redrive` sends them back in order and each redriven
//! copy is handled only once no older letter of its key is unresolved (a
//! copy that arrives early is parked again); `--discard` sends back copies
//! that resolve their letter without being handled. Each resolution is
//! recorded in the dead-letter topic by a marker record, so that whoever
//! owns the partition next rebuilds the same parked keys from that topic.
//!
//! Messages without a key belong to no aggregate and are never parked.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use mart_kafka::{KafkaClient, Record};
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{Message as _, OwnedMessage};

use crate::dead_letter::{header, position, redriven_for, REDRIVE_DISCARD};
use crate::read::read_to_end;

/// On a marker record in a dead-letter topic: the position (original
/// offset) of the letter it resolves. It also carries `mart-dlq-topic`,
/// `mart-dlq-partition`, `mart-dlq-group` and the letter's key.
pub const RESOLVED: &str = "mart-dlq-resolved";

/// What a partition worker does with its next message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Run the handler.
    Handle,
    /// Finished without running the handler: a redriven copy for another
    /// group, or a message this group dead-lettered already (delivered
    /// again after a crash).
    PassOver,
    /// Dead-letter it unhandled: an older message of its key, at position
    /// `behind`, is dead-lettered and unresolved.
    Park { behind: i64 },
    /// A copy sent back to be dropped: resolve its letter, handle nothing.
    Discard,
}

/// The keys of one partition parked for one consumer group, with the
/// positions of their unresolved letters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parked {
    keys: HashMap<Vec<u8>, BTreeSet<i64>>,
}

impl Parked {
    pub fn disposition(&self, message: &OwnedMessage, group: &str) -> Disposition {
        let redriven = match redriven_for(message) {
            Some(for_group) if for_group != group.as_bytes() => return Disposition::PassOver,
            Some(_) => true,
            None => false,
        };
        if redriven && header(message, REDRIVE_DISCARD).is_some() {
            return Disposition::Discard;
        }
        let Some(unresolved) = message.key().and_then(|key| self.keys.get(key)) else {
            return Disposition::Handle;
        };
        let position = position(message);
        if !redriven && unresolved.contains(&position) {
            return Disposition::PassOver;
        }
        match unresolved.first() {
            Some(&oldest) if oldest < position => Disposition::Park { behind: oldest },
            _ => Disposition::Handle,
        }
    }

    /// Records that the message of `key` at `position` was dead-lettered.
    pub fn park(&mut self, key: Option<&[u8]>, position: i64) {
        if let Some(key) = key {
            self.keys.entry(key.to_vec()).or_default().insert(position);
        }
    }

    /// Whether resolving `position` of `key` changes anything (it was
    /// parked, so its resolution must be recorded).
    pub fn is_parked(&self, key: Option<&[u8]>, position: i64) -> bool {
        key.and_then(|k| self.keys.get(k))
            .is_some_and(|p| p.contains(&position))
    }

    /// Records that the letter of `key` at `position` was resolved.
    pub fn resolve(&mut self, key: Option<&[u8]>, position: i64) {
        let Some(key) = key else { return };
        if let Some(positions) = self.keys.get_mut(key) {
            positions.remove(&position);
            if positions.is_empty() {
                self.keys.remove(key);
            }
        }
    }

    /// Whether `key` has unresolved letters.
    pub fn holds(&self, key: Option<&[u8]>) -> bool {
        key.is_some_and(|k| self.keys.contains_key(k))
    }

    /// How many keys are parked.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Applies one record of the dead-letter topic, if it concerns `topic`,
    /// `partition` and `group`: a letter parks, a marker resolves.
    fn apply(&mut self, record: &OwnedMessage, topic: &str, partition: i32, group: &str) {
        let text = |name: &str| header(record, name).and_then(|v| std::str::from_utf8(v).ok());
        let ours = text("mart-dlq-topic") == Some(topic)
            && text("mart-dlq-partition") == Some(partition.to_string().as_str())
            && text("mart-dlq-group") == Some(group);
        if !ours {
            return;
        }
        if let Some(position) = text(RESOLVED).and_then(|p| p.parse().ok()) {
            self.resolve(record.key(), position);
        } else if let Some(position) = text("mart-dlq-offset").and_then(|p| p.parse().ok()) {
            self.park(record.key(), position);
        }
    }
}

/// The marker that records, in `dead_letter_topic`, that the letter of
/// `key` at `position` of `topic`/`partition` is resolved for `group`. Same
/// key as the letter, so it lands after it in the same partition.
pub fn resolved_record(
    dead_letter_topic: &str,
    (topic, partition): (&str, i32),
    group: &str,
    key: Option<&[u8]>,
    position: i64,
) -> Record {
    let headers = [
        (RESOLVED, position.to_string()),
        ("mart-dlq-topic", topic.to_string()),
        ("mart-dlq-partition", partition.to_string()),
        ("mart-dlq-group", group.to_string()),
        (
            "mart-dlq-time",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ),
    ];
    Record {
        topic: dead_letter_topic.to_string(),
        partition: None,
        key: key.map(<[u8]>::to_vec),
        value: Vec::new(),
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into_bytes()))
            .collect(),
    }
}

/// Reads dead-letter topics back to rebuild parked keys; one per trigger,
/// shared by its partition workers (one read at a time).
#[derive(Clone)]
pub struct Ledger {
    reader: Arc<Mutex<BaseConsumer>>,
}

impl Ledger {
    pub fn new(client: &KafkaClient, group: &str) -> anyhow::Result<Self> {
        // Assigned partitions only: it joins no group and commits nothing.
        let reader: BaseConsumer = client
            .base("mart-parking")
            .set("group.id", format!("mart.parking.{group}"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()
            .context("creating the dead-letter reader")?;
        Ok(Self {
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// The keys of `topic`/`partition` parked for `group`, from every record
    /// of `dead_letter_topic` up to its current end.
    pub async fn parked(
        &self,
        dead_letter_topic: &str,
        (topic, partition): (&str, i32),
        group: &str,
    ) -> anyhow::Result<Parked> {
        let reader = self.reader.clone();
        let (dlq, topic, group) = (
            dead_letter_topic.to_string(),
            topic.to_string(),
            group.to_string(),
        );
        tokio::task::spawn_blocking(move || {
            let reader = reader.lock().expect("not poisoned");
            let mut parked = Parked::default();
            // A topic that does not exist has no letters.
            read_to_end(
                &reader,
                &dlq,
                |_, low| low,
                |record| {
                    parked.apply(record, &topic, partition, &group);
                    Ok(())
                },
            )?;
            Ok(parked)
        })
        .await
        .context("reading the dead-letter topic")?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letter::{REDRIVEN_FROM, REDRIVE_FOR};
    use rdkafka::message::{Header, OwnedHeaders, Timestamp};

    const GROUP: &str = "mart.inventory-events";

    fn message(key: &str, offset: i64, headers: &[(&str, &str)]) -> OwnedMessage {
        let mut owned = OwnedHeaders::new();
        for (name, value) in headers {
            owned = owned.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        OwnedMessage::new(
            None,
            Some(key.as_bytes().to_vec()),
            "mart.orders".into(),
            Timestamp::NotAvailable,
            3,
            offset,
            Some(owned),
        )
    }

    fn redriven(key: &str, offset: i64, from: i64, group: &str) -> OwnedMessage {
        let from = format!("mart.orders/3@{from}");
        message(
            key,
            offset,
            &[(REDRIVE_FOR, group), (REDRIVEN_FROM, from.as_str())],
        )
    }

    #[test]
    fn later_messages_of_a_dead_lettered_key_are_parked_others_go_on() {
        let mut parked = Parked::default();
        parked.park(Some(b"order-1"), 5);
        assert_eq!(
            parked.disposition(&message("order-1", 9, &[]), GROUP),
            Disposition::Park { behind: 5 }
        );
        assert_eq!(
            parked.disposition(&message("order-2", 9, &[]), GROUP),
            Disposition::Handle
        );
        // Delivered again after a crash: it is in the dead-letter topic already.
        assert_eq!(
            parked.disposition(&message("order-1", 5, &[]), GROUP),
            Disposition::PassOver
        );
        parked.park(None, 11);
        assert!(parked.is_parked(Some(b"order-1"), 5) && parked.len() == 1);
    }

    #[test]
    fn redriven_copies_are_handled_oldest_first() {
        let mut parked = Parked::default();
        parked.park(Some(b"order-1"), 5);
        parked.park(Some(b"order-1"), 9);
        // The copy of 9 came back before the copy of 5: parked again.
        assert_eq!(
            parked.disposition(&redriven("order-1", 20, 9, GROUP), GROUP),
            Disposition::Park { behind: 5 }
        );
        assert_eq!(
            parked.disposition(&redriven("order-1", 21, 5, GROUP), GROUP),
            Disposition::Handle
        );
        parked.resolve(Some(b"order-1"), 5);
        assert_eq!(
            parked.disposition(&redriven("order-1", 22, 9, GROUP), GROUP),
            Disposition::Handle
        );
        parked.resolve(Some(b"order-1"), 9);
        assert!(parked.is_empty(), "released once every letter is resolved");
        assert_eq!(
            parked.disposition(&message("order-1", 23, &[]), GROUP),
            Disposition::Handle
        );
        // Another group's copy is passed over, parked or not.
        assert_eq!(
            parked.disposition(&redriven("order-1", 24, 5, "mart.other"), GROUP),
            Disposition::PassOver
        );
        let discard = message(
            "order-1",
            25,
            &[(REDRIVE_FOR, GROUP), (REDRIVE_DISCARD, "true")],
        );
        assert_eq!(parked.disposition(&discard, GROUP), Disposition::Discard);
    }

    #[test]
    fn the_dead_letter_topic_rebuilds_what_is_parked() {
        let letter = |key: &str, at: i64, group: &str, partition: &str| {
            message(
                key,
                100 + at,
                &[
                    ("mart-dlq-topic", "mart.orders"),
                    ("mart-dlq-partition", partition),
                    ("mart-dlq-group", group),
                    ("mart-dlq-offset", &at.to_string()),
                ],
            )
        };
        let marker = |key: &str, at: i64| {
            let record = resolved_record(
                "mart.orders.dlq",
                ("mart.orders", 3),
                GROUP,
                Some(key.as_bytes()),
                at,
            );
            let headers: Vec<(&str, &str)> = record
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), std::str::from_utf8(v).unwrap()))
                .collect();
            message(key, 200 + at, &headers)
        };
        let mut parked = Parked::default();
        for record in [
            letter("order-1", 5, GROUP, "3"),
            letter("order-1", 9, GROUP, "3"),
            letter("order-2", 7, GROUP, "3"),
            letter("order-3", 8, "mart.other", "3"),
            letter("order-4", 8, GROUP, "1"),
            marker("order-1", 5),
            letter("order-1", 9, GROUP, "3"), // parked again after an early redrive
            marker("order-2", 7),
        ] {
            parked.apply(&record, "mart.orders", 3, GROUP);
        }
        let mut expected = Parked::default();
        expected.park(Some(b"order-1"), 9);
        assert_eq!(parked, expected);
    }
}
