//! Timer components: Mart's own `mart:timer/handler@0.2.0` (not Spin's;
//! see wit/mart-timer/timer@0.2.0), whose `tick` is async, ticked by
//! `[[trigger.timer]]`.
//!
//! ```ignore
//! struct Sweep;
//! impl mart_guest::timer::Timer for Sweep {
//!     async fn tick(scheduled_ms: i64) -> Result<(), String> { ... }
//! }
//! mart_guest::timer::export_timer_handler!(Sweep);
//! ```

#[doc(hidden)]
pub mod bindings {
    spin_sdk::wit_bindgen::generate!({
        path: "../../wit/mart-timer/timer@0.2.0",
        world: "mart:timer/timer-handler@0.2.0",
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        pub_export_macro: true,
        export_macro_name: "export_timer_handler",
        default_bindings_module: "mart_guest::timer::bindings",
    });
}

pub use bindings::export_timer_handler;
pub use bindings::exports::mart::timer::handler::Guest as Timer;
