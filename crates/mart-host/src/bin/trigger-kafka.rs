//! `trigger-kafka`: Mart's Kafka trigger (with the outbox relay) as a Spin
//! trigger plugin. See `mart_host::spin_plugin`.

fn main() -> std::process::ExitCode {
    mart_host::spin_plugin::main(mart_host::spin_plugin::TriggerType::Kafka)
}
