//! Dead-letter records: the original message, plus headers saying why it
//! failed, how often it was tried and where it came from; and the
//! operator's tools to inspect them and send them back (`mart dead-letters`).

use anyhow::Context as _;
use mart_kafka::{KafkaClient, Publisher, Record};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Headers as _, Message as _, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

use crate::read::{read_to_end, REQUEST_TIMEOUT};

/// On a redriven message: the only consumer group that handles it (the one
/// that dead-lettered it); every other group of the topic passes over it.
pub const REDRIVE_FOR: &str = "mart-redrive-for";
/// On a redriven message: `topic/partition@offset` of the original.
pub const REDRIVEN_FROM: &str = "mart-redriven-from";
/// On a redriven message: the group is to drop it, not handle it (its
/// letter is resolved, and its key released if it was the last).
pub const REDRIVE_DISCARD: &str = "mart-redrive-discard";

/// The value of a message's header.
pub fn header<'m>(message: &'m OwnedMessage, name: &str) -> Option<&'m [u8]> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
}

/// The group a redriven copy is meant for; `None` for an original message.
pub fn redriven_for(message: &OwnedMessage) -> Option<&[u8]> {
    header(message, REDRIVE_FOR)
}

/// Where a message stands in its partition's order: its offset, or for a
/// redriven copy the offset of the original (however often redriven).
pub fn position(message: &OwnedMessage) -> i64 {
    header(message, REDRIVEN_FROM)
        .and_then(|from| std::str::from_utf8(from).ok())
        .and_then(|from| {
            let (source, offset) = from.rsplit_once('@')?;
            let here = format!("{}/{}", message.topic(), message.partition());
            (source == here).then(|| offset.parse().ok()).flatten()
        })
        .unwrap_or_else(|| message.offset())
}

/// Headers the trigger adds to a dead-lettered record.
pub const DLQ_HEADERS: [&str; 8] = [
    "mart-dlq-error",
    "mart-dlq-attempts",
    "mart-dlq-topic",
    "mart-dlq-partition",
    "mart-dlq-offset",
    "mart-dlq-component",
    "mart-dlq-group",
    "mart-dlq-time",
];

/// A message that could not be processed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
    pub attempts: u32,
    pub component: String,
    pub group: String,
    pub time: String,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    /// The original headers (without the `mart-dlq-*` ones).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl DeadLetter {
    pub fn new(
        message: &OwnedMessage,
        reason: &str,
        attempts: u32,
        component: &str,
        group: &str,
    ) -> Self {
        Self {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: position(message),
            reason: reason.to_string(),
            attempts,
            component: component.to_string(),
            group: group.to_string(),
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().unwrap_or_default().to_vec(),
            headers: headers_of(message)
                .into_iter()
                .filter(|(k, _)| !k.starts_with("mart-dlq-"))
                .collect(),
        }
    }

    /// The record for the dead-letter topic: same key (so it keeps its
    /// partition's order there too), value and headers, plus `mart-dlq-*`.
    pub fn record(&self, dead_letter_topic: &str) -> Record {
        let mut headers = self.headers.clone();
        let ours = [
            self.reason.clone(),
            self.attempts.to_string(),
            self.topic.clone(),
            self.partition.to_string(),
            self.offset.to_string(),
            self.component.clone(),
            self.group.clone(),
            self.time.clone(),
        ];
        headers.extend(
            DLQ_HEADERS
                .iter()
                .zip(ours)
                .map(|(k, v)| (k.to_string(), v.into_bytes())),
        );
        Record {
            topic: dead_letter_topic.to_string(),
            partition: None,
            key: self.key.clone(),
            value: self.value.clone(),
            headers,
        }
    }

    /// Where the message came from: `topic/partition@offset`.
    pub fn source(&self) -> String {
        format!("{}/{}@{}", self.topic, self.partition, self.offset)
    }

    /// The letter as `mart dead-letters` lists it, one line, every field
    /// from the headers `printable`.
    pub fn line(&self) -> String {
        format!(
            "{}\tgroup={}\tattempts={}\tcomponent={}\tat={}\terror={}",
            printable(&self.source()),
            printable(&self.group),
            self.attempts,
            printable(&self.component),
            printable(&self.time),
            printable(&self.reason)
        )
    }

    /// Reads a dead-letter record back.
    pub fn parse(message: &OwnedMessage) -> anyhow::Result<Self> {
        let all = headers_of(message);
        let get = |name: &str| -> anyhow::Result<String> {
            let value = all
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
                .with_context(|| {
                    format!(
                        "record {}/{} at offset {} has no `{name}` header; is it a dead letter?",
                        message.topic(),
                        message.partition(),
                        message.offset()
                    )
                })?;
            String::from_utf8(value.clone()).with_context(|| format!("`{name}` is not UTF-8"))
        };
        Ok(Self {
            topic: get("mart-dlq-topic")?,
            partition: get("mart-dlq-partition")?.parse()?,
            offset: get("mart-dlq-offset")?.parse()?,
            reason: get("mart-dlq-error")?,
            attempts: get("mart-dlq-attempts")?.parse()?,
            component: get("mart-dlq-component")?,
            group: get("mart-dlq-group")?,
            time: get("mart-dlq-time")?,
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().unwrap_or_default().to_vec(),
            headers: all
                .into_iter()
                .filter(|(k, _)| !k.starts_with("mart-dlq-"))
                .collect(),
        })
    }

    /// The record that sends this message back to where it came from (its
    /// topic and partition), for the group that dead-lettered it only: the
    /// other groups of the topic handled it already and pass over it. A
    /// copy to `discard` is dropped by that group instead of handled; it
    /// still travels the partition, so that its key is released in order.
    pub fn redrive_record(&self, discard: bool) -> Record {
        let mut headers: Vec<_> = self
            .headers
            .iter()
            .filter(|(k, _)| ![REDRIVE_FOR, REDRIVEN_FROM, REDRIVE_DISCARD].contains(&k.as_str()))
            .cloned()
            .collect();
        if discard {
            headers.push((REDRIVE_DISCARD.into(), b"true".to_vec()));
        }
        headers.push((REDRIVEN_FROM.into(), self.source().into_bytes()));
        headers.push((REDRIVE_FOR.into(), self.group.clone().into_bytes()));
        Record {
            topic: self.topic.clone(),
            partition: Some(self.partition),
            key: self.key.clone(),
            value: self.value.clone(),
            headers,
        }
    }
}

fn headers_of(message: &OwnedMessage) -> Vec<(String, Vec<u8>)> {
    message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default()
}

/// The redrive consumer group of a dead-letter topic: its committed offsets
/// say how far the topic has been sent back, so nothing is redriven twice.
fn redrive_group(dead_letter_topic: &str) -> String {
    format!("mart.redrive.{dead_letter_topic}")
}

/// What `mart dead-letters` does with the letters not yet redriven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Only list them.
    List,
    /// Send every one back (all at once, in order, so that the redrive
    /// group's offsets say what is done): the letters named in `discard`
    /// (`topic/partition@offset`) to be dropped by their group, the others
    /// to be handled again. A letter `Origins` refuses is never sent: the
    /// whole redrive is refused unless it is named in `discard`, and then
    /// it is skipped. `dry_run`: check everything, send and record nothing.
    Redrive { discard: Vec<String>, dry_run: bool },
}

/// Where the letters of one dead-letter topic may go back to: the source
/// topics (and their consumer groups) whose failures the app writes into
/// it. A letter's headers are only data someone wrote to the dead-letter
/// topic; without this check a forged `mart-dlq-topic` would have the
/// operator's redrive publish anything to any topic (a `payment.succeeded`
/// to `mart.payments`, say) under the operator's Kafka identity.
#[derive(Debug, Clone)]
pub struct Origins {
    dead_letter_topic: String,
    /// Every (topic, dead-letter topic, group) of the app's triggers.
    routes: Vec<(String, String, String)>,
}

impl Origins {
    /// The routes of `app`'s `[[trigger.kafka]]` entries into
    /// `dead_letter_topic`.
    pub fn of(app: &mart_manifest::App, dead_letter_topic: &str) -> anyhow::Result<Self> {
        let application = &app.manifest.application.name;
        let mut routes = Vec::new();
        for trigger in app.manifest.kafka_triggers().map_err(anyhow::Error::msg)? {
            for topic in &trigger.topics {
                routes.push((
                    topic.clone(),
                    trigger.dead_letter_topic_for(topic),
                    trigger.group_id(application),
                ));
            }
        }
        Ok(Self {
            dead_letter_topic: dead_letter_topic.to_string(),
            routes,
        })
    }

    /// Why `letter` must not be sent back, if it must not: its source is a
    /// topic whose failures do not go to this dead-letter topic, or a group
    /// that does not read it. A topic the app's triggers do not read (the
    /// manifest at hand describes another app) is checked against the
    /// triggers' default: `<topic>.dlq`.
    pub fn refusal(&self, letter: &DeadLetter) -> Option<String> {
        let readers: Vec<_> = self
            .routes
            .iter()
            .filter(|(topic, _, _)| *topic == letter.topic)
            .collect();
        let here = &self.dead_letter_topic;
        if readers.is_empty() {
            if format!("{}.dlq", letter.topic) == *here {
                return None;
            }
            return Some(format!(
                "its source topic `{}` does not dead-letter to `{here}`",
                printable(&letter.topic)
            ));
        }
        if !readers.iter().any(|(_, dlq, _)| dlq == here) {
            return Some(format!(
                "its source topic `{}` does not dead-letter to `{here}`",
                printable(&letter.topic)
            ));
        }
        if !readers
            .iter()
            .any(|(_, dlq, group)| dlq == here && *group == letter.group)
        {
            return Some(format!(
                "group `{}` does not read `{}` into `{here}`",
                printable(&letter.group),
                printable(&letter.topic)
            ));
        }
        None
    }
}

/// `text` safe to print on a terminal: control characters (escape
/// sequences, carriage returns, bells) and the invisible bidirectional
/// overrides that reorder what is shown become `\u{…}` escapes, and a
/// backslash is doubled so that an escape cannot be faked. A letter's
/// headers are written by whoever wrote to the topic.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c == '\\' {
            out.push_str("\\\\");
        } else if c.is_control() || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Lists the dead letters not yet redriven, or sends them back as
/// `resolution` says and records that. Returns the letters seen.
pub async fn redrive(
    client: &KafkaClient,
    dead_letter_topic: &str,
    resolution: &Resolution,
    origins: &Origins,
) -> anyhow::Result<Vec<DeadLetter>> {
    let client_owned = client.clone();
    let topic = dead_letter_topic.to_string();
    let (letters, consumer, positions) =
        tokio::task::spawn_blocking(move || read_pending(&client_owned, &topic))
            .await
            .context("reading the dead-letter topic")??;
    if let Resolution::Redrive { discard, dry_run } = resolution {
        if let Some(unknown) = discard
            .iter()
            .find(|d| !letters.iter().any(|l| &l.source() == *d))
        {
            anyhow::bail!(
                "no pending dead letter from `{}` in `{dead_letter_topic}`; \
                 nothing was sent back (list them with `mart dead-letters {dead_letter_topic}`)",
                printable(unknown)
            );
        }
        let refused: Vec<String> = letters
            .iter()
            .filter(|l| !discard.contains(&l.source()))
            .filter_map(|l| {
                let why = origins.refusal(l)?;
                Some(format!("`{}`: {why}", printable(&l.source())))
            })
            .collect();
        if !refused.is_empty() {
            anyhow::bail!(
                "refusing to redrive `{dead_letter_topic}`, nothing was sent back: {}. \
                 Inspect such a letter, then skip it with --discard <its source>",
                refused.join("; ")
            );
        }
        if *dry_run {
            std::thread::spawn(move || drop(consumer));
            return Ok(letters);
        }
        let publisher = Publisher::new(client, "mart-redrive")?;
        for letter in &letters {
            let discarded = discard.contains(&letter.source());
            if discarded && origins.refusal(letter).is_some() {
                // Not from here: sent nowhere, not even as a discard.
                continue;
            }
            let record = letter.redrive_record(discarded);
            publisher
                .publish(&record)
                .await
                .with_context(|| format!("sending a dead letter back to `{}`", letter.topic))?;
        }
        consumer
            .commit(&positions, rdkafka::consumer::CommitMode::Sync)
            .context("recording how far the dead-letter topic was redriven")?;
    }
    // Dropping a consumer can block inside librdkafka for a long time with
    // some brokers; it holds nothing we need, so let a thread finish it.
    std::thread::spawn(move || drop(consumer));
    Ok(letters)
}

type Pending = (Vec<DeadLetter>, BaseConsumer, TopicPartitionList);

/// Reads every partition of the topic from the redrive group's committed
/// offset (or the beginning) up to its current end.
fn read_pending(client: &KafkaClient, topic: &str) -> anyhow::Result<Pending> {
    let consumer: BaseConsumer = client
        .base("mart-redrive")
        .set("group.id", redrive_group(topic))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .context("creating the dead-letter reader")?;
    let mut all = TopicPartitionList::new();
    let partitions = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .with_context(|| format!("reading metadata of `{topic}`"))?;
    for t in partitions.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            all.add_partition(topic, p.id());
        }
    }
    let committed = consumer
        .committed_offsets(all, REQUEST_TIMEOUT)
        .context("reading the redrive group's offsets")?;
    let redriven_up_to = |partition| match committed.find_partition(topic, partition) {
        Some(e) => match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        },
        None => 0,
    };
    let mut letters = Vec::new();
    let ends = read_to_end(
        &consumer,
        topic,
        |p, _| redriven_up_to(p),
        |message| {
            // Markers record resolutions for the trigger (see parking.rs).
            if header(message, crate::parking::RESOLVED).is_none() {
                letters.push(DeadLetter::parse(message)?);
            }
            Ok(())
        },
    )?
    .with_context(|| format!("topic `{topic}` does not exist"))?;
    let mut positions = TopicPartitionList::new();
    for (p, high) in ends {
        positions.add_partition_offset(topic, p, Offset::Offset(high))?;
    }
    Ok((letters, consumer, positions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{Header, OwnedHeaders, Timestamp};

    fn letter(headers: Vec<(String, Vec<u8>)>) -> DeadLetter {
        DeadLetter {
            topic: "mart.orders".into(),
            partition: 3,
            offset: 41,
            reason: "poison".into(),
            attempts: 1,
            component: "inventory-events".into(),
            group: "mart.inventory-events".into(),
            time: "2026-12-01T00:00:00.000Z".into(),
            key: Some(b"order-1".to_vec()),
            value: b"{}".to_vec(),
            headers,
        }
    }

    fn message(headers: &[(&str, &[u8])]) -> OwnedMessage {
        let mut owned = OwnedHeaders::new();
        for (key, value) in headers {
            owned = owned.insert(Header {
                key,
                value: Some(*value),
            });
        }
        OwnedMessage::new(
            None,
            None,
            "mart.orders".into(),
            Timestamp::NotAvailable,
            3,
            42,
            Some(owned),
        )
    }

    #[test]
    fn a_redriven_message_goes_back_to_its_partition_for_its_group_only() {
        // Redriven once already: the old addressing is replaced, not stacked.
        let record = letter(vec![
            ("ce_id".into(), b"e1".to_vec()),
            (REDRIVE_FOR.into(), b"mart.old".to_vec()),
            (REDRIVEN_FROM.into(), b"mart.orders/3@7".to_vec()),
        ])
        .redrive_record(false);
        assert_eq!(record.topic, "mart.orders");
        assert_eq!(record.partition, Some(3));
        assert_eq!(record.key.as_deref(), Some(&b"order-1"[..]));
        let header = |name: &str| -> Vec<&[u8]> {
            record
                .headers
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_slice())
                .collect()
        };
        assert_eq!(header(REDRIVE_FOR), [&b"mart.inventory-events"[..]]);
        assert_eq!(header(REDRIVEN_FROM), [&b"mart.orders/3@41"[..]]);
        assert_eq!(header("ce_id"), [&b"e1"[..]]);
        assert!(header(REDRIVE_DISCARD).is_empty());
    }

    #[test]
    fn terminal_control_characters_are_escaped() {
        assert_eq!(printable("plain text: ü"), "plain text: ü");
        assert_eq!(
            printable("a\u{1b}[2Jb\rc\u{7}\u{202e}d\\u{1b}"),
            "a\\u{1b}[2Jb\\u{d}c\\u{7}\\u{202e}d\\\\u{1b}"
        );
        let mut forged = letter(vec![]);
        forged.reason = "ok\n\u{1b}]0;pwned\u{7}".into();
        assert!(!forged.line().contains('\u{1b}') && !forged.line().contains('\n'));
    }

    #[test]
    fn a_letter_goes_back_only_where_its_dead_letter_topic_comes_from() {
        let origins = Origins {
            dead_letter_topic: "mart.orders.dlq".into(),
            routes: vec![
                (
                    "mart.orders".into(),
                    "mart.orders.dlq".into(),
                    "mart.inventory-events".into(),
                ),
                (
                    "mart.payments".into(),
                    "mart.payments.dlq".into(),
                    "mart.orders-events".into(),
                ),
            ],
        };
        assert_eq!(origins.refusal(&letter(vec![])), None);
        let mut elsewhere = letter(vec![]);
        elsewhere.topic = "mart.payments".into();
        elsewhere.group = "mart.orders-events".into();
        assert!(origins
            .refusal(&elsewhere)
            .unwrap()
            .contains("does not dead-letter to `mart.orders.dlq`"));
        let mut other_group = letter(vec![]);
        other_group.group = "mart.payments-events".into();
        assert!(origins.refusal(&other_group).unwrap().contains("group"));
        // A topic this app does not read: the default naming decides.
        let mut unknown = letter(vec![]);
        unknown.topic = "test.other".into();
        assert!(origins.refusal(&unknown).is_some());
        let test_dlq = Origins {
            dead_letter_topic: "test.other.dlq".into(),
            routes: vec![],
        };
        assert_eq!(test_dlq.refusal(&unknown), None);
    }

    #[test]
    fn a_copy_keeps_the_position_of_its_original() {
        assert_eq!(position(&message(&[])), 42);
        assert_eq!(
            position(&message(&[(REDRIVEN_FROM, b"mart.orders/3@7")])),
            7
        );
        // Not from this partition (never written so by us): its own offset.
        assert_eq!(
            position(&message(&[(REDRIVEN_FROM, b"mart.carts/3@7")])),
            42
        );
        let letter = DeadLetter::new(
            &message(&[(REDRIVEN_FROM, b"mart.orders/3@7")]),
            "poison",
            1,
            "inventory-events",
            "mart.inventory-events",
        );
        assert_eq!(letter.offset, 7, "a letter again names the original");
        let discard = letter.redrive_record(true);
        assert!(discard
            .headers
            .contains(&(REDRIVE_DISCARD.to_string(), b"true".to_vec())));
    }
}
