//! What Mart's entry points share: `mart up` (every trigger in one process)
//! and the Spin trigger plugins `trigger-kafka` and `trigger-timer` (one
//! trigger type per process, as `spin up` runs them).

pub mod config;
pub mod event_map;
pub mod events;
pub mod spin_plugin;
