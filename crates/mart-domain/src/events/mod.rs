//! Integration events: the one definition every producer and consumer uses.
//!
//! Transport: CloudEvents 1.0 over Kafka, the aggregate id as the record
//! key (so one order's events stay ordered on one partition), and the topic
//! `mart.<aggregate type>`. Each producing service picks its records'
//! format (`format::EventFormat`): JSON or Protobuf data in binary mode
//! (attributes as `ce_*` headers), or the CloudEvents Protobuf format in
//! structured mode. Consumers read all three, by the record's
//! `content-type`, so a topic can change format without downtime.
//!
//! Versioning: a type name is version 1 of that event; a change that breaks
//! consumers gets a new name with a suffix (`order.placed.v2`), published
//! alongside the old one until every consumer moved.

mod format;
mod proto;
#[cfg(any(test, feature = "samples"))]
pub mod samples;

use prost::{Message as _, Name as _};
use serde::{Deserialize, Serialize};

use crate::catalog::{Product, ProductDeleted};
use crate::orders::{OrderChanged, OrderPlaced};
use crate::payments::{PaymentChanged, RefundDue};
use proto::v1;

pub use format::{EncodedEvent, EventFormat};

pub const SPEC_VERSION: &str = "1.0";

/// Every event type, with the aggregate (and so the topic) it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    UserRegistered,
    ProductCreated,
    ProductUpdated,
    ProductDeleted,
    OrderPlaced,
    OrderPaid,
    OrderCancelled,
    OrderShipped,
    OrderDelivered,
    OrderRefunded,
    InventoryReserved,
    InventoryRejected,
    InventoryReleased,
    InventoryCommitted,
    PaymentSucceeded,
    PaymentFailed,
    PaymentRefunded,
    /// The buyer must finish paying on the provider's page (PayFast).
    PaymentActionRequired,
    /// Money the provider took that must go back (a second payment for
    /// one order); payments' own handler refunds it, with retries.
    PaymentRefundDue,
}

impl EventType {
    pub const ALL: [EventType; 19] = [
        EventType::UserRegistered,
        EventType::ProductCreated,
        EventType::ProductUpdated,
        EventType::ProductDeleted,
        EventType::OrderPlaced,
        EventType::OrderPaid,
        EventType::OrderCancelled,
        EventType::OrderShipped,
        EventType::OrderDelivered,
        EventType::OrderRefunded,
        EventType::InventoryReserved,
        EventType::InventoryRejected,
        EventType::InventoryReleased,
        EventType::InventoryCommitted,
        EventType::PaymentSucceeded,
        EventType::PaymentFailed,
        EventType::PaymentRefunded,
        EventType::PaymentActionRequired,
        EventType::PaymentRefundDue,
    ];

    /// The CloudEvents `type` (`ce_type` header).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserRegistered => "user.registered",
            EventType::ProductCreated => "product.created",
            EventType::ProductUpdated => "product.updated",
            EventType::ProductDeleted => "product.deleted",
            EventType::OrderPlaced => "order.placed",
            EventType::OrderPaid => "order.paid",
            EventType::OrderCancelled => "order.cancelled",
            EventType::OrderShipped => "order.shipped",
            EventType::OrderDelivered => "order.delivered",
            EventType::OrderRefunded => "order.refunded",
            EventType::InventoryReserved => "inventory.reserved",
            EventType::InventoryRejected => "inventory.rejected",
            EventType::InventoryReleased => "inventory.released",
            EventType::InventoryCommitted => "inventory.committed",
            EventType::PaymentSucceeded => "payment.succeeded",
            EventType::PaymentFailed => "payment.failed",
            EventType::PaymentRefunded => "payment.refunded",
            EventType::PaymentActionRequired => "payment.action_required",
            EventType::PaymentRefundDue => "payment.refund_due",
        }
    }

    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// The aggregate type: the outbox's `aggregate_type` and the topic suffix.
    pub fn aggregate(self) -> &'static str {
        match self {
            EventType::UserRegistered => "users",
            EventType::ProductCreated | EventType::ProductUpdated | EventType::ProductDeleted => {
                "catalog"
            }
            EventType::OrderPlaced
            | EventType::OrderPaid
            | EventType::OrderCancelled
            | EventType::OrderShipped
            | EventType::OrderDelivered
            | EventType::OrderRefunded => "orders",
            EventType::InventoryReserved
            | EventType::InventoryRejected
            | EventType::InventoryReleased
            | EventType::InventoryCommitted => "inventory",
            EventType::PaymentSucceeded
            | EventType::PaymentFailed
            | EventType::PaymentRefunded
            | EventType::PaymentActionRequired
            | EventType::PaymentRefundDue => "payments",
        }
    }

    pub fn topic(self) -> String {
        topic(self.aggregate())
    }
}

/// The events one Kafka handler component takes: the one definition its
/// handler's `handling` reads and `mart events` prints (with the topics
/// `spin.toml` subscribes it to, which must carry them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub component: &'static str,
    pub takes: &'static [EventType],
}

/// Every handler component of the app and what it takes.
pub const SUBSCRIPTIONS: [Subscription; 5] = [
    Subscription {
        component: "orders-events",
        takes: &[
            EventType::InventoryReserved,
            EventType::InventoryRejected,
            EventType::PaymentSucceeded,
            EventType::PaymentFailed,
            EventType::PaymentRefunded,
            EventType::PaymentActionRequired,
        ],
    },
    Subscription {
        component: "inventory-events",
        takes: &[
            EventType::OrderPlaced,
            EventType::OrderCancelled,
            EventType::OrderPaid,
            EventType::OrderRefunded,
        ],
    },
    Subscription {
        component: "payments-events",
        takes: &[
            EventType::OrderPlaced,
            EventType::InventoryReserved,
            EventType::OrderCancelled,
            EventType::OrderRefunded,
            EventType::PaymentSucceeded,
            EventType::PaymentRefundDue,
        ],
    },
    Subscription {
        component: "carts-events",
        takes: &[EventType::OrderPlaced],
    },
    Subscription {
        component: "notifications-events",
        takes: &[
            EventType::UserRegistered,
            EventType::OrderPaid,
            EventType::OrderCancelled,
            EventType::OrderRefunded,
            EventType::OrderShipped,
        ],
    },
];

/// Whether handler `component` takes events of type `event`.
pub fn takes(component: &str, event: EventType) -> bool {
    SUBSCRIPTIONS
        .iter()
        .any(|s| s.component == component && s.takes.contains(&event))
}

/// `mart.<aggregate type>`: one topic per aggregate type.
pub fn topic(aggregate_type: &str) -> String {
    format!("mart.{aggregate_type}")
}

/// Whether the outbox of service database `database` may carry an event of
/// `event_type` about an aggregate of `aggregate_type`: a service publishes
/// only its own aggregates (to `mart.<database>`), and a Mart event type
/// only with the aggregate it belongs to. The relay refuses anything else,
/// so whoever can write one service's outbox cannot publish another
/// service's events (a `payment.succeeded` from the orders database).
pub fn check_origin(database: &str, aggregate_type: &str, event_type: &str) -> Result<(), String> {
    if aggregate_type != database {
        return Err(format!(
            "the {database} database's outbox holds a `{aggregate_type}` event ({event_type}): \
             a service publishes only its own aggregates"
        ));
    }
    match EventType::parse(event_type) {
        Some(known) if known.aggregate() != aggregate_type => Err(format!(
            "`{event_type}` is a {} event, not a {aggregate_type} one",
            known.aggregate()
        )),
        _ => Ok(()),
    }
}

/// A CloudEvent's attributes and its data, as bytes in one of the formats
/// (`DataFormat`): what the outbox holds (JSON) and what a record carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Unique per event; consumers dedupe on it.
    pub id: String,
    pub event_type: String,
    /// The producing service, e.g. `/mart/users`.
    pub source: String,
    /// RFC 3339 UTC.
    pub time: String,
    /// The aggregate id; also the Kafka key.
    pub subject: String,
    pub data: Vec<u8>,
}

/// How an event's data is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    Json,
    /// The event type's own message in `proto/mart/events/v1`.
    Protobuf,
}

/// Why a Kafka record is not a Mart event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    MissingHeader(&'static str),
    NotUtf8(&'static str),
    UnsupportedSpecVersion(String),
    UnsupportedContentType(String),
    /// A structured-mode record that is not a CloudEvents Protobuf message.
    NotACloudEvent(String),
    /// A structured-mode event without a required attribute.
    MissingAttribute(&'static str),
    /// A structured-mode attribute that is neither text nor a timestamp.
    WrongAttributeType(&'static str),
}

impl std::error::Error for EnvelopeError {}

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvelopeError::MissingHeader(h) => write!(f, "the record has no `{h}` header"),
            EnvelopeError::NotUtf8(h) => write!(f, "the `{h}` header is not UTF-8"),
            EnvelopeError::UnsupportedSpecVersion(v) => {
                write!(f, "CloudEvents spec version {v} is not supported")
            }
            EnvelopeError::UnsupportedContentType(t) => write!(
                f,
                "content type `{t}` is not an event format (expected one of {})",
                EventFormat::ALL.map(EventFormat::content_type).join(", ")
            ),
            EnvelopeError::NotACloudEvent(e) => {
                write!(f, "the value is not a CloudEvents Protobuf message: {e}")
            }
            EnvelopeError::MissingAttribute(a) => write!(f, "the event has no `{a}` attribute"),
            EnvelopeError::WrongAttributeType(a) => {
                write!(f, "the `{a}` attribute is neither text nor a timestamp")
            }
        }
    }
}

/// `user.registered`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistered {
    pub user_id: String,
    pub email: String,
    pub name: String,
}

/// A line of a reservation (`inventory.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedLine {
    pub product_id: String,
    pub quantity: i32,
}

/// `inventory.reserved`, `inventory.released`, `inventory.committed`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryChanged {
    pub order_id: String,
    pub status: String,
    pub lines: Vec<ReservedLine>,
}

/// `inventory.rejected`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryRejected {
    pub order_id: String,
    pub reason: String,
}

/// A Mart event, decoded once: its envelope's attributes beside its data,
/// typed by its event type.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique per event; consumers dedupe on it.
    pub id: String,
    /// The aggregate id (the Kafka key).
    pub subject: String,
    pub source: String,
    pub time: String,
    pub data: EventData,
}

/// Declares `EventData` and its conversions from one list, so the variant,
/// its event type, its data type and its Protobuf message cannot disagree.
macro_rules! event_data {
    ($($variant:ident($data:ty)),* $(,)?) => {
        /// Every event's data, by type (the variant is named as its
        /// `EventType`, and so is its Protobuf message).
        #[derive(Debug, Clone, PartialEq)]
        pub enum EventData {
            $($variant($data),)*
        }

        impl EventData {
            pub fn from_json(kind: EventType, data: &[u8]) -> Result<EventData, DecodeError> {
                Ok(match kind {
                    $(EventType::$variant => EventData::$variant(from_json(kind, data)?),)*
                })
            }

            pub fn from_protobuf(kind: EventType, data: &[u8]) -> Result<EventData, DecodeError> {
                Ok(match kind {
                    $(EventType::$variant => {
                        EventData::$variant(from_protobuf::<v1::$variant, _>(kind, data)?)
                    })*
                })
            }

            pub fn event_type(&self) -> EventType {
                match self {
                    $(EventData::$variant(_) => EventType::$variant,)*
                }
            }

            /// The data as JSON (the outbox's payload, a JSON record's value).
            pub fn to_json(&self) -> serde_json::Value {
                match self {
                    $(EventData::$variant(data) => {
                        serde_json::to_value(data).expect("event data is plain data")
                    })*
                }
            }

            /// The data as its type's Protobuf message.
            pub fn to_protobuf(&self) -> Vec<u8> {
                match self {
                    $(EventData::$variant(data) => v1::$variant::from(data).encode_to_vec(),)*
                }
            }
        }

        impl EventType {
            /// The URL naming its Protobuf message in a `google.protobuf.Any`
            /// (`type.googleapis.com/mart.events.v1.OrderPlaced`).
            pub fn type_url(self) -> String {
                match self {
                    $(EventType::$variant => v1::$variant::type_url(),)*
                }
            }
        }
    };
}

event_data! {
    UserRegistered(UserRegistered),
    ProductCreated(Product),
    ProductUpdated(Product),
    ProductDeleted(ProductDeleted),
    OrderPlaced(OrderPlaced),
    OrderPaid(OrderChanged),
    OrderCancelled(OrderChanged),
    OrderShipped(OrderChanged),
    OrderDelivered(OrderChanged),
    OrderRefunded(OrderChanged),
    InventoryReserved(InventoryChanged),
    InventoryRejected(InventoryRejected),
    InventoryReleased(InventoryChanged),
    InventoryCommitted(InventoryChanged),
    PaymentSucceeded(PaymentChanged),
    PaymentFailed(PaymentChanged),
    PaymentRefunded(PaymentChanged),
    PaymentActionRequired(PaymentChanged),
    PaymentRefundDue(RefundDue),
}

fn from_json<T: for<'de> Deserialize<'de>>(kind: EventType, data: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(data).map_err(|e| DecodeError::malformed(kind, e))
}

/// Decodes `kind`'s message `M` and converts it to the domain's `T`.
fn from_protobuf<M, T>(kind: EventType, data: &[u8]) -> Result<T, DecodeError>
where
    M: prost::Message + Default,
    T: TryFrom<M, Error = String>,
{
    let message = M::decode(data).map_err(|e| DecodeError::malformed(kind, e))?;
    T::try_from(message).map_err(|e| DecodeError::malformed(kind, e))
}

/// Why a record could not be decoded into an event: it will never decode,
/// so a consumer gives up on it at once (a dead letter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    NotAnEvent(EnvelopeError),
    /// The data does not fit its type's shape.
    Malformed {
        event_type: &'static str,
        error: String,
    },
    /// Encoding only: typed data (Protobuf) needs a type this version knows.
    UnknownType(String),
}

impl DecodeError {
    fn malformed(kind: EventType, error: impl std::fmt::Display) -> Self {
        DecodeError::Malformed {
            event_type: kind.as_str(),
            error: error.to_string(),
        }
    }
}

impl std::error::Error for DecodeError {}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::NotAnEvent(e) => write!(f, "not a Mart event: {e}"),
            DecodeError::Malformed { event_type, error } => {
                write!(f, "malformed {event_type} data: {error}")
            }
            DecodeError::UnknownType(t) => {
                write!(f, "`{t}` is not an event type this version knows")
            }
        }
    }
}

impl From<EnvelopeError> for DecodeError {
    fn from(e: EnvelopeError) -> Self {
        DecodeError::NotAnEvent(e)
    }
}

impl Event {
    /// Decodes an envelope's data, written in `format`, by its type.
    /// `Ok(None)` for a type this version does not know (a newer
    /// producer's): consumers pass over it.
    pub fn decode(envelope: Envelope, format: DataFormat) -> Result<Option<Event>, DecodeError> {
        let Some(kind) = EventType::parse(&envelope.event_type) else {
            return Ok(None);
        };
        let data = match format {
            DataFormat::Json => EventData::from_json(kind, &envelope.data)?,
            DataFormat::Protobuf => EventData::from_protobuf(kind, &envelope.data)?,
        };
        Ok(Some(Event {
            id: envelope.id,
            subject: envelope.subject,
            source: envelope.source,
            time: envelope.time,
            data,
        }))
    }

    /// Decodes a Kafka record (headers and value) in any of the formats.
    pub fn from_record(
        headers: &[(String, Vec<u8>)],
        value: &[u8],
    ) -> Result<Option<Event>, DecodeError> {
        let (envelope, format) = Envelope::from_record(headers, value)?;
        Event::decode(envelope, format)
    }

    pub fn event_type(&self) -> EventType {
        self.data.event_type()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_outbox_carries_only_its_own_aggregates_events() {
        assert!(check_origin("payments", "payments", "payment.succeeded").is_ok());
        assert!(check_origin("orders", "orders", "order.placed").is_ok());
        // Types this version does not know travel on their own topic.
        assert!(check_origin("orders", "orders", "order.gift_wrapped").is_ok());
        let forged = check_origin("orders", "payments", "payment.succeeded").unwrap_err();
        assert!(forged.contains("only its own aggregates"), "{forged}");
        let mislabelled = check_origin("orders", "orders", "payment.succeeded").unwrap_err();
        assert!(mislabelled.contains("is a payments event"), "{mislabelled}");
    }

    #[test]
    fn every_type_round_trips_and_has_a_topic() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert!(t
                .as_str()
                .starts_with(t.as_str().split('.').next().unwrap()));
            assert!(t.topic().starts_with("mart."));
        }
        assert_eq!(EventType::OrderPlaced.topic(), "mart.orders");
        assert_eq!(EventType::InventoryReserved.topic(), "mart.inventory");
        assert_eq!(EventType::parse("order.exploded"), None);
    }

    #[test]
    fn aggregates_match_the_outbox_writers() {
        assert_eq!(EventType::UserRegistered.aggregate(), "users");
        assert_eq!(EventType::InventoryCommitted.aggregate(), "inventory");
    }

    #[test]
    fn every_type_has_its_own_protobuf_message() {
        assert_eq!(
            EventType::PaymentActionRequired.type_url(),
            "type.googleapis.com/mart.events.v1.PaymentActionRequired"
        );
        let mut urls: Vec<String> = EventType::ALL.map(EventType::type_url).to_vec();
        urls.sort();
        urls.dedup();
        assert_eq!(urls.len(), EventType::ALL.len());
    }

    /// Every type's sample as a record in `format`, decoded back.
    fn through(format: EventFormat, kind: EventType) -> Event {
        let record = samples::envelope(kind).encode(format).unwrap();
        Event::from_record(&record.headers, &record.value)
            .unwrap_or_else(|e| panic!("{kind:?} in {format:?}: {e}"))
            .unwrap()
    }

    #[test]
    fn every_type_round_trips_in_every_format() {
        for format in EventFormat::ALL {
            for kind in EventType::ALL {
                let envelope = samples::envelope(kind);
                let event = through(format, kind);
                assert_eq!(event.data, samples::data(kind), "{kind:?} in {format:?}");
                assert_eq!(
                    (&event.id, &event.source, &event.time, &event.subject),
                    (
                        &envelope.id,
                        &envelope.source,
                        &envelope.time,
                        &envelope.subject
                    ),
                    "{kind:?} in {format:?}"
                );
            }
        }
    }

    #[test]
    fn every_format_says_what_it_is() {
        for format in EventFormat::ALL {
            let record = samples::envelope(EventType::OrderPaid)
                .encode(format)
                .unwrap();
            let content_type = record
                .headers
                .iter()
                .find(|(k, _)| k == "content-type")
                .map(|(_, v)| String::from_utf8(v.clone()).unwrap());
            assert_eq!(content_type.as_deref(), Some(format.content_type()));
            assert_eq!(
                EventFormat::from_content_type(format.content_type()),
                Some(format)
            );
            let binary = record.headers.iter().any(|(k, _)| k == "ce_id");
            assert_eq!(binary, format != EventFormat::CloudEventsProtobuf);
        }
        assert_eq!(
            EventFormat::from_content_type("Application/JSON; charset=utf-8"),
            Some(EventFormat::Json)
        );
        assert_eq!(EventFormat::from_content_type("text/xml"), None);
    }

    /// What a service changing format looks like to its consumers: the
    /// same events, whichever format each record is in.
    #[test]
    fn a_consumer_sees_the_same_event_in_every_format() {
        for kind in EventType::ALL {
            let json = through(EventFormat::Json, kind);
            for format in [EventFormat::Protobuf, EventFormat::CloudEventsProtobuf] {
                assert_eq!(through(format, kind), json, "{kind:?} in {format:?}");
            }
        }
    }

    #[test]
    fn protobuf_is_smaller_than_json() {
        for kind in EventType::ALL {
            let envelope = samples::envelope(kind);
            let json = envelope.encode(EventFormat::Json).unwrap().value.len();
            let protobuf = envelope.encode(EventFormat::Protobuf).unwrap().value.len();
            assert!(protobuf < json, "{kind:?}: {protobuf} >= {json} bytes");
        }
    }

    #[test]
    fn a_record_without_content_type_is_json() {
        let record = samples::envelope(EventType::OrderPaid)
            .encode(EventFormat::Json)
            .unwrap();
        let headers: Vec<_> = record
            .headers
            .into_iter()
            .filter(|(k, _)| k != "content-type")
            .collect();
        let event = Event::from_record(&headers, &record.value)
            .unwrap()
            .unwrap();
        assert_eq!(event.data, samples::data(EventType::OrderPaid));
    }

    #[test]
    fn only_known_well_formed_events_are_encoded_as_protobuf() {
        let mut unknown = samples::envelope(EventType::OrderPaid);
        unknown.event_type = "order.exploded".into();
        assert_eq!(
            unknown.encode(EventFormat::Protobuf),
            Err(DecodeError::UnknownType("order.exploded".into()))
        );
        assert!(
            unknown.encode(EventFormat::Json).is_ok(),
            "JSON passes it on"
        );
        let mut malformed = samples::envelope(EventType::OrderPaid);
        malformed.data = br#"{"order_id": 7}"#.to_vec();
        let error = malformed
            .encode(EventFormat::CloudEventsProtobuf)
            .unwrap_err();
        assert!(error.to_string().starts_with("malformed order.paid data: "));
    }

    #[test]
    fn envelope_errors_name_the_header() {
        let mut headers = vec![("ce_specversion".to_string(), b"1.0".to_vec())];
        assert_eq!(
            Envelope::from_record(&headers, b"{}").unwrap_err(),
            EnvelopeError::MissingHeader("ce_id")
        );
        headers[0].1 = b"0.3".to_vec();
        assert!(matches!(
            Envelope::from_record(&headers, b"{}"),
            Err(EnvelopeError::UnsupportedSpecVersion(_))
        ));
        headers[0].1 = vec![0xff];
        assert_eq!(
            Envelope::from_record(&headers, b"{}").unwrap_err(),
            EnvelopeError::NotUtf8("ce_specversion")
        );
        let xml = [("content-type".to_string(), b"text/xml".to_vec())];
        let error = Envelope::from_record(&xml, b"<a/>").unwrap_err();
        assert_eq!(
            error.to_string(),
            "content type `text/xml` is not an event format (expected one of \
             application/json, application/protobuf, application/cloudevents+protobuf)"
        );
    }

    fn structured(value: &[u8]) -> Result<Option<Event>, DecodeError> {
        let headers = [(
            "content-type".to_string(),
            b"application/cloudevents+protobuf".to_vec(),
        )];
        Event::from_record(&headers, value)
    }

    #[test]
    fn a_structured_event_must_be_whole_and_of_its_own_type() {
        use proto::cloudevents::{cloud_event, CloudEvent};
        let record = samples::envelope(EventType::OrderPaid)
            .encode(EventFormat::CloudEventsProtobuf)
            .unwrap();
        let event = CloudEvent::decode(record.value.as_slice()).unwrap();

        assert!(matches!(
            structured(b"\xff\xff"),
            Err(DecodeError::NotAnEvent(EnvelopeError::NotACloudEvent(_)))
        ));
        let mut no_subject = event.clone();
        no_subject.attributes.remove("subject");
        assert_eq!(
            structured(&no_subject.encode_to_vec()),
            Err(DecodeError::NotAnEvent(EnvelopeError::MissingAttribute(
                "subject"
            )))
        );
        let mut wrong_type = event.clone();
        wrong_type.attributes.insert(
            "time".into(),
            proto::cloudevents::cloud_event::CloudEventAttributeValue {
                attr: Some(
                    proto::cloudevents::cloud_event::cloud_event_attribute_value::Attr::CeInteger(
                        7,
                    ),
                ),
            },
        );
        assert_eq!(
            structured(&wrong_type.encode_to_vec()),
            Err(DecodeError::NotAnEvent(EnvelopeError::WrongAttributeType(
                "time"
            )))
        );
        let mut other_message = event.clone();
        if let Some(cloud_event::Data::ProtoData(any)) = &mut other_message.data {
            any.type_url = EventType::OrderCancelled.type_url();
        }
        let error = structured(&other_message.encode_to_vec()).unwrap_err();
        assert!(error.to_string().contains("carries a"), "{error}");
        // The same event with its data as JSON text decodes the same, once
        // its datacontenttype says JSON.
        let mut as_text = event;
        as_text.data = Some(cloud_event::Data::TextData(
            serde_json::to_string(&samples::data(EventType::OrderPaid).to_json()).unwrap(),
        ));
        assert!(
            structured(&as_text.encode_to_vec()).is_err(),
            "text is not Protobuf data"
        );
        as_text.attributes.insert(
            "datacontenttype".into(),
            format::string_attribute("application/json"),
        );
        assert_eq!(
            structured(&as_text.encode_to_vec()).unwrap().unwrap().data,
            samples::data(EventType::OrderPaid)
        );
    }

    #[test]
    fn protobuf_data_that_breaks_its_type_is_named() {
        let mut headers = samples::envelope(EventType::OrderPaid)
            .encode(EventFormat::Protobuf)
            .unwrap()
            .headers;
        let unknown_status = v1::OrderPaid {
            order: Some(v1::OrderChanged {
                status: 42,
                ..Default::default()
            }),
        };
        let error = Event::from_record(&headers, &unknown_status.encode_to_vec()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "malformed order.paid data: `status` 42 is not an order status"
        );
        let error =
            Event::from_record(&headers, &v1::OrderPaid::default().encode_to_vec()).unwrap_err();
        assert!(error.to_string().ends_with("`order` is missing"), "{error}");
        let error = Event::from_record(&headers, b"\x0a\xff").unwrap_err();
        assert!(
            error.to_string().starts_with("malformed order.paid data: "),
            "{error}"
        );
        // A type this version does not know is passed over in any format.
        for (key, value) in headers.iter_mut() {
            if key == "ce_type" {
                *value = b"order.exploded".to_vec();
            }
        }
        assert_eq!(Event::from_record(&headers, b"\x0a\xff"), Ok(None));
    }

    fn record(event_type: &str, data: serde_json::Value) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
        let envelope = Envelope {
            id: "e1".into(),
            event_type: event_type.into(),
            source: "/mart/orders".into(),
            time: "2026-12-01T00:00:00Z".into(),
            subject: "o1".into(),
            data: serde_json::to_vec(&data).unwrap(),
        };
        let record = envelope.encode(EventFormat::Json).unwrap();
        (record.headers, record.value)
    }

    #[test]
    fn a_record_decodes_once_into_its_typed_event() {
        let (headers, value) = record(
            "inventory.rejected",
            serde_json::json!({"order_id": "o1", "reason": "out of stock"}),
        );
        let event = Event::from_record(&headers, &value).unwrap().unwrap();
        assert_eq!(event.id, "e1");
        assert_eq!(event.subject, "o1");
        assert_eq!(event.event_type(), EventType::InventoryRejected);
        assert_eq!(
            event.data,
            EventData::InventoryRejected(InventoryRejected {
                order_id: "o1".into(),
                reason: "out of stock".into()
            })
        );
    }

    #[test]
    fn unknown_types_are_passed_over_and_malformed_data_named() {
        let (headers, value) = record("order.exploded", serde_json::json!({}));
        assert_eq!(Event::from_record(&headers, &value), Ok(None));
        let (headers, value) = record("order.paid", serde_json::json!({"order_id": 7}));
        let error = Event::from_record(&headers, &value).unwrap_err();
        assert!(
            error.to_string().starts_with("malformed order.paid data: "),
            "{error}"
        );
        let error = Event::from_record(&[], b"{}").unwrap_err();
        assert_eq!(
            error,
            DecodeError::NotAnEvent(EnvelopeError::MissingHeader("ce_specversion"))
        );
    }

    #[test]
    fn data_travels_as_the_json_it_decodes_from() {
        for kind in EventType::ALL {
            let data = samples::data(kind);
            let json = serde_json::to_vec(&data.to_json()).unwrap();
            assert_eq!(EventData::from_json(kind, &json).unwrap(), data);
            assert_eq!(
                EventData::from_protobuf(kind, &data.to_protobuf()).unwrap(),
                data
            );
        }
    }
}
