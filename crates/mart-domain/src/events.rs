//! Integration events: the one definition every producer and consumer uses.
//!
//! Transport: CloudEvents 1.0 over Kafka in binary mode. The event's
//! attributes travel as `ce_*` headers, the JSON data as the record value,
//! the aggregate id as the record key (so one order's events stay ordered on
//! one partition), and the topic is `mart.<aggregate type>`.
//!
//! Versioning: a type name is version 1 of that event; a change that breaks
//! consumers gets a new name with a suffix (`order.placed.v2`), published
//! alongside the old one until every consumer moved.

use serde::{Deserialize, Serialize};

use crate::orders::{OrderChanged, OrderPlaced};
use crate::payments::{PaymentChanged, RefundDue};

pub const SPEC_VERSION: &str = "1.0";
pub const CONTENT_TYPE: &str = "application/json";

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
    NotificationSent,
}

impl EventType {
    pub const ALL: [EventType; 20] = [
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
        EventType::NotificationSent,
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
            EventType::NotificationSent => "notification.sent",
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
            EventType::NotificationSent => "notifications",
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

/// A CloudEvent as it travels over Kafka (binary content mode).
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
    /// JSON.
    pub data: Vec<u8>,
}

/// Why a Kafka record is not a Mart event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    MissingHeader(&'static str),
    NotUtf8(&'static str),
    UnsupportedSpecVersion(String),
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
        }
    }
}

impl Envelope {
    /// Kafka headers for this event, binary mode.
    pub fn headers(&self) -> Vec<(String, Vec<u8>)> {
        [
            ("ce_specversion", SPEC_VERSION),
            ("ce_id", self.id.as_str()),
            ("ce_type", self.event_type.as_str()),
            ("ce_source", self.source.as_str()),
            ("ce_time", self.time.as_str()),
            ("ce_subject", self.subject.as_str()),
            ("content-type", CONTENT_TYPE),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
    }

    /// Reads an event back from a record's headers and value.
    pub fn from_record(headers: &[(String, Vec<u8>)], value: &[u8]) -> Result<Self, EnvelopeError> {
        let get = |name: &'static str| -> Result<String, EnvelopeError> {
            let raw = headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
                .ok_or(EnvelopeError::MissingHeader(name))?;
            String::from_utf8(raw.clone()).map_err(|_| EnvelopeError::NotUtf8(name))
        };
        let spec = get("ce_specversion")?;
        if spec != SPEC_VERSION {
            return Err(EnvelopeError::UnsupportedSpecVersion(spec));
        }
        Ok(Envelope {
            id: get("ce_id")?,
            event_type: get("ce_type")?,
            source: get("ce_source")?,
            time: get("ce_time")?,
            subject: get("ce_subject")?,
            data: value.to_vec(),
        })
    }

    pub fn data_as<T: for<'de> Deserialize<'de>>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.data)
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
/// its event type and its data type cannot disagree.
macro_rules! event_data {
    ($($variant:ident($data:ty)),* $(,)?) => {
        /// Every event's data, by type (the variant is named as its
        /// `EventType`). Products and notifications carry the resource as
        /// the API shows it (no consumer reads them yet), so they stay JSON.
        #[derive(Debug, Clone, PartialEq)]
        pub enum EventData {
            $($variant($data),)*
        }

        impl EventData {
            fn decode(kind: EventType, data: &[u8]) -> Result<EventData, DecodeError> {
                Ok(match kind {
                    $(EventType::$variant => EventData::$variant(parse(kind, data)?),)*
                })
            }

            pub fn event_type(&self) -> EventType {
                match self {
                    $(EventData::$variant(_) => EventType::$variant,)*
                }
            }

            /// The data as it travels (the record's JSON value).
            pub fn to_json(&self) -> serde_json::Value {
                match self {
                    $(EventData::$variant(data) => {
                        serde_json::to_value(data).expect("event data is plain data")
                    })*
                }
            }
        }
    };
}

event_data! {
    UserRegistered(UserRegistered),
    ProductCreated(serde_json::Value),
    ProductUpdated(serde_json::Value),
    ProductDeleted(serde_json::Value),
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
    NotificationSent(serde_json::Value),
}

fn parse<T: for<'de> Deserialize<'de>>(kind: EventType, data: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(data).map_err(|e| DecodeError::Malformed {
        event_type: kind.as_str(),
        error: e.to_string(),
    })
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
}

impl std::error::Error for DecodeError {}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::NotAnEvent(e) => write!(f, "not a Mart event: {e}"),
            DecodeError::Malformed { event_type, error } => {
                write!(f, "malformed {event_type} data: {error}")
            }
        }
    }
}

impl Event {
    /// Decodes an envelope's data by its type. `Ok(None)` for a type this
    /// version does not know (a newer producer's): consumers pass over it.
    pub fn decode(envelope: Envelope) -> Result<Option<Event>, DecodeError> {
        let Some(kind) = EventType::parse(&envelope.event_type) else {
            return Ok(None);
        };
        let data = EventData::decode(kind, &envelope.data)?;
        Ok(Some(Event {
            id: envelope.id,
            subject: envelope.subject,
            source: envelope.source,
            time: envelope.time,
            data,
        }))
    }

    /// Decodes a Kafka record (headers and value).
    pub fn from_record(
        headers: &[(String, Vec<u8>)],
        value: &[u8],
    ) -> Result<Option<Event>, DecodeError> {
        let envelope = Envelope::from_record(headers, value).map_err(DecodeError::NotAnEvent)?;
        Event::decode(envelope)
    }

    pub fn event_type(&self) -> EventType {
        self.data.event_type()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn envelope_round_trips_through_headers() {
        let data = serde_json::to_vec(&UserRegistered {
            user_id: "u1".into(),
            email: "a@b.co".into(),
            name: "A".into(),
        })
        .unwrap();
        let event = Envelope {
            id: "0b7c6f0e-5a8e-4e52-9c53-8f2f0f7d9a10".into(),
            event_type: EventType::UserRegistered.as_str().into(),
            source: "/mart/users".into(),
            time: "2026-11-22T10:00:00Z".into(),
            subject: "u1".into(),
            data,
        };
        let headers = event.headers();
        assert!(headers.contains(&("content-type".to_string(), b"application/json".to_vec())));
        let back = Envelope::from_record(&headers, &event.data).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.data_as::<UserRegistered>().unwrap().email, "a@b.co");
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
    }

    #[test]
    fn payloads_round_trip() {
        let changed = InventoryChanged {
            order_id: "o1".into(),
            status: "reserved".into(),
            lines: vec![ReservedLine {
                product_id: "p".into(),
                quantity: 2,
            }],
        };
        let json = serde_json::to_string(&changed).unwrap();
        assert_eq!(
            serde_json::from_str::<InventoryChanged>(&json).unwrap(),
            changed
        );
        let rejected = InventoryRejected {
            order_id: "o1".into(),
            reason: "short".into(),
        };
        assert_eq!(
            serde_json::from_value::<InventoryRejected>(serde_json::to_value(&rejected).unwrap())
                .unwrap(),
            rejected
        );
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
        (envelope.headers(), envelope.data)
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
        let rejected = EventData::InventoryRejected(InventoryRejected {
            order_id: "o1".into(),
            reason: "short".into(),
        });
        let json = serde_json::to_vec(&rejected.to_json()).unwrap();
        assert_eq!(
            EventData::decode(rejected.event_type(), &json).unwrap(),
            rejected
        );
    }

    #[test]
    fn every_type_decodes_to_its_own_variant() {
        for kind in EventType::ALL {
            // The JSON ones take any object; the others say what they miss.
            match EventData::decode(kind, b"{}") {
                Ok(data) => assert_eq!(data.event_type(), kind),
                Err(DecodeError::Malformed { event_type, .. }) => {
                    assert_eq!(event_type, kind.as_str())
                }
                Err(other) => panic!("{kind:?}: {other}"),
            }
        }
    }
}
