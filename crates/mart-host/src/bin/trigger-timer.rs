//! `trigger-timer`: Mart's timer trigger as a Spin trigger plugin. See
//! `mart_host::spin_plugin`.

fn main() -> std::process::ExitCode {
    mart_host::spin_plugin::main(mart_host::spin_plugin::TriggerType::Timer)
}
