//! See the binaries: `mart-native-ref` (the native reference server),
//! `mart-overhead` (in-process cost of one request through the host),
//! `mart-breakdown` (where that request's instructions go) and
//! `mart-events-bench` (the Kafka trigger and the saga, with what an order
//! costs: `cost.rs`) and `mart-event-formats` (bytes and time per event in
//! each event format).

pub mod cost;
