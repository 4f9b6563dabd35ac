//! The three ways an event travels as a Kafka record (CloudEvents' Kafka
//! binding), writing and reading:
//!
//! | format | mode | `content-type` | value |
//! |---|---|---|---|
//! | JSON | binary | `application/json` | the data as JSON |
//! | Protobuf | binary | `application/protobuf` | the type's message |
//! | CloudEvents Protobuf | structured | `application/cloudevents+protobuf` | an `io.cloudevents.v1.CloudEvent` with the type's message in `proto_data` |
//!
//! In binary mode the attributes are `ce_*` headers; in structured mode
//! they are inside the value. A record without `content-type` is JSON (what
//! Mart wrote before the header was set).

use std::collections::HashMap;

use prost::Message as _;
use prost_types::{Any, Timestamp};

use super::proto::cloudevents::cloud_event::{
    cloud_event_attribute_value::Attr, CloudEventAttributeValue,
};
use super::proto::cloudevents::{cloud_event, CloudEvent};
use super::{DataFormat, DecodeError, Envelope, EnvelopeError, EventData, EventType, SPEC_VERSION};

/// The format of a producing service's event records, chosen per service
/// in the manifest (`[application.trigger.kafka] outbox.formats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EventFormat {
    #[default]
    Json,
    Protobuf,
    CloudEventsProtobuf,
}

impl EventFormat {
    pub const ALL: [EventFormat; 3] = [
        EventFormat::Json,
        EventFormat::Protobuf,
        EventFormat::CloudEventsProtobuf,
    ];

    /// The records' `content-type`, which is also how the manifest names it.
    pub fn content_type(self) -> &'static str {
        match self {
            EventFormat::Json => "application/json",
            EventFormat::Protobuf => "application/protobuf",
            EventFormat::CloudEventsProtobuf => "application/cloudevents+protobuf",
        }
    }

    /// The format the manifest names by its content type, exactly.
    pub fn named(name: &str) -> Option<EventFormat> {
        EventFormat::ALL
            .into_iter()
            .find(|f| f.content_type() == name)
    }

    /// The format a content type names (case and parameters such as
    /// `charset` aside). `application/x-protobuf` is the older name.
    pub fn from_content_type(text: &str) -> Option<EventFormat> {
        let media_type = text.split(';').next().unwrap_or_default().trim();
        let media_type = media_type.to_ascii_lowercase();
        match media_type.as_str() {
            "application/json" => Some(EventFormat::Json),
            "application/protobuf" | "application/x-protobuf" => Some(EventFormat::Protobuf),
            "application/cloudevents+protobuf" => Some(EventFormat::CloudEventsProtobuf),
            _ => None,
        }
    }
}

/// An event as a Kafka record's headers and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    pub headers: Vec<(String, Vec<u8>)>,
    pub value: Vec<u8>,
}

const CONTENT_TYPE: &str = "content-type";

impl Envelope {
    /// This event, whose data is JSON (the outbox's payload), as a record
    /// in `format`. The Protobuf formats need the data typed, so an event
    /// of a type this version does not know, or whose data does not fit
    /// its type, is refused; JSON never is.
    pub fn encode(&self, format: EventFormat) -> Result<EncodedEvent, DecodeError> {
        Ok(match format {
            EventFormat::Json => EncodedEvent {
                headers: self.binary_headers(format),
                value: self.data.clone(),
            },
            EventFormat::Protobuf => EncodedEvent {
                headers: self.binary_headers(format),
                value: self.typed()?.to_protobuf(),
            },
            EventFormat::CloudEventsProtobuf => EncodedEvent {
                headers: vec![(CONTENT_TYPE.into(), format.content_type().into())],
                value: self.structured(&self.typed()?).encode_to_vec(),
            },
        })
    }

    fn typed(&self) -> Result<EventData, DecodeError> {
        let kind = EventType::parse(&self.event_type)
            .ok_or_else(|| DecodeError::UnknownType(self.event_type.clone()))?;
        EventData::from_json(kind, &self.data)
    }

    fn binary_headers(&self, format: EventFormat) -> Vec<(String, Vec<u8>)> {
        [
            ("ce_specversion", SPEC_VERSION),
            ("ce_id", self.id.as_str()),
            ("ce_type", self.event_type.as_str()),
            ("ce_source", self.source.as_str()),
            ("ce_time", self.time.as_str()),
            ("ce_subject", self.subject.as_str()),
            (CONTENT_TYPE, format.content_type()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
    }

    fn structured(&self, data: &EventData) -> CloudEvent {
        let attributes = HashMap::from([
            ("time".to_string(), time_attribute(&self.time)),
            ("subject".to_string(), string_attribute(&self.subject)),
            (
                "datacontenttype".to_string(),
                string_attribute(EventFormat::Protobuf.content_type()),
            ),
        ]);
        CloudEvent {
            id: self.id.clone(),
            source: self.source.clone(),
            spec_version: SPEC_VERSION.into(),
            r#type: self.event_type.clone(),
            attributes,
            data: Some(cloud_event::Data::ProtoData(Any {
                type_url: data.event_type().type_url(),
                value: data.to_protobuf(),
            })),
        }
    }

    /// Reads an event back from a record in any of the formats: its
    /// attributes, and its data with the format the data is written in.
    pub fn from_record(
        headers: &[(String, Vec<u8>)],
        value: &[u8],
    ) -> Result<(Envelope, DataFormat), EnvelopeError> {
        let format = match header(headers, CONTENT_TYPE)? {
            None => EventFormat::Json,
            Some(text) => EventFormat::from_content_type(&text)
                .ok_or(EnvelopeError::UnsupportedContentType(text))?,
        };
        match format {
            EventFormat::Json => Ok((Envelope::from_binary(headers, value)?, DataFormat::Json)),
            EventFormat::Protobuf => {
                Ok((Envelope::from_binary(headers, value)?, DataFormat::Protobuf))
            }
            EventFormat::CloudEventsProtobuf => Envelope::from_structured(value),
        }
    }

    fn from_binary(headers: &[(String, Vec<u8>)], value: &[u8]) -> Result<Envelope, EnvelopeError> {
        let get = |name: &'static str| -> Result<String, EnvelopeError> {
            header(headers, name)?.ok_or(EnvelopeError::MissingHeader(name))
        };
        check_spec_version(get("ce_specversion")?)?;
        Ok(Envelope {
            id: get("ce_id")?,
            event_type: get("ce_type")?,
            source: get("ce_source")?,
            time: get("ce_time")?,
            subject: get("ce_subject")?,
            data: value.to_vec(),
        })
    }

    fn from_structured(value: &[u8]) -> Result<(Envelope, DataFormat), EnvelopeError> {
        let mut event =
            CloudEvent::decode(value).map_err(|e| EnvelopeError::NotACloudEvent(e.to_string()))?;
        check_spec_version(event.spec_version)?;
        let mut attribute = |name: &'static str| -> Result<String, EnvelopeError> {
            let value = event
                .attributes
                .remove(name)
                .ok_or(EnvelopeError::MissingAttribute(name))?;
            value
                .attr
                .and_then(attribute_text)
                .ok_or(EnvelopeError::WrongAttributeType(name))
        };
        let time = attribute("time")?;
        let subject = attribute("subject")?;
        let content_type = attribute("datacontenttype").ok();
        let (data, format) = structured_data(event.data, content_type.as_deref(), &event.r#type)?;
        Ok((
            Envelope {
                id: event.id,
                event_type: event.r#type,
                source: event.source,
                time,
                subject,
                data,
            },
            format,
        ))
    }
}

/// The data of a structured event and its format: a Protobuf message in
/// `proto_data` (of the event's type), JSON in `text_data`, or bytes in
/// `binary_data` as `datacontenttype` says.
fn structured_data(
    data: Option<cloud_event::Data>,
    content_type: Option<&str>,
    event_type: &str,
) -> Result<(Vec<u8>, DataFormat), EnvelopeError> {
    let not_data = |what: String| EnvelopeError::NotACloudEvent(what);
    match data {
        Some(cloud_event::Data::ProtoData(any)) => {
            if let Some(kind) = EventType::parse(event_type) {
                if any.type_url != kind.type_url() {
                    return Err(not_data(format!(
                        "a {event_type} event carries a `{}` message, not `{}`",
                        any.type_url,
                        kind.type_url()
                    )));
                }
            }
            Ok((any.value, DataFormat::Protobuf))
        }
        Some(cloud_event::Data::TextData(text)) => match data_format(content_type)? {
            DataFormat::Json => Ok((text.into_bytes(), DataFormat::Json)),
            DataFormat::Protobuf => Err(EnvelopeError::UnsupportedContentType(format!(
                "{} as text",
                EventFormat::Protobuf.content_type()
            ))),
        },
        Some(cloud_event::Data::BinaryData(bytes)) => Ok((bytes, data_format(content_type)?)),
        None => Err(not_data("the event has no data".into())),
    }
}

/// The format `datacontenttype` names for data: JSON when it names none.
fn data_format(content_type: Option<&str>) -> Result<DataFormat, EnvelopeError> {
    match content_type.map(|t| (t, EventFormat::from_content_type(t))) {
        None | Some((_, Some(EventFormat::Json))) => Ok(DataFormat::Json),
        Some((_, Some(EventFormat::Protobuf))) => Ok(DataFormat::Protobuf),
        Some((text, _)) => Err(EnvelopeError::UnsupportedContentType(text.into())),
    }
}

fn check_spec_version(version: String) -> Result<(), EnvelopeError> {
    if version == SPEC_VERSION {
        Ok(())
    } else {
        Err(EnvelopeError::UnsupportedSpecVersion(version))
    }
}

/// A header's text, `None` if the record has no such header.
fn header(
    headers: &[(String, Vec<u8>)],
    name: &'static str,
) -> Result<Option<String>, EnvelopeError> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| String::from_utf8(v.clone()).map_err(|_| EnvelopeError::NotUtf8(name)))
        .transpose()
}

pub(super) fn string_attribute(text: &str) -> CloudEventAttributeValue {
    CloudEventAttributeValue {
        attr: Some(Attr::CeString(text.into())),
    }
}

/// `time` as a Protobuf timestamp, which is how the format carries it; a
/// time that is not RFC 3339 (never written by Mart) travels as text.
fn time_attribute(time: &str) -> CloudEventAttributeValue {
    let Ok(parsed) = chrono::DateTime::parse_from_rfc3339(time) else {
        return string_attribute(time);
    };
    CloudEventAttributeValue {
        attr: Some(Attr::CeTimestamp(Timestamp {
            seconds: parsed.timestamp(),
            nanos: parsed.timestamp_subsec_nanos() as i32,
        })),
    }
}

/// An attribute as text, as the binary mode's headers carry it. Times are
/// written as the outbox relay writes them (RFC 3339, UTC, microseconds).
fn attribute_text(value: Attr) -> Option<String> {
    match value {
        Attr::CeString(text) | Attr::CeUri(text) | Attr::CeUriRef(text) => Some(text),
        Attr::CeTimestamp(t) => {
            chrono::DateTime::from_timestamp(t.seconds, t.nanos.try_into().ok()?)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        }
        Attr::CeBoolean(_) | Attr::CeInteger(_) | Attr::CeBytes(_) => None,
    }
}
