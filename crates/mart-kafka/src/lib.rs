//! Kafka plumbing shared by the host's Kafka trigger, its outbox relay and the
//! `mart:kafka/producer` host interface: client settings from
//! `runtime-config.toml`, topic creation, a publisher that waits for the
//! broker's acknowledgement, and the bindings of Mart's own `mart:kafka` WIT.
//!
//! The host speaks plain Kafka protocol through librdkafka and relies on
//! nothing broker-specific (no transactions), so it runs against Apache
//! Kafka in production and against `tansu` in tests.

mod admin;
pub mod bindings;
mod client;
mod part;
mod producer;

pub use admin::ensure_topics;
pub use client::KafkaClient;
pub use part::ProducerPart;
pub use producer::{add_to_linker, Header, ProducerHost, PublishError, Publisher, Record};
