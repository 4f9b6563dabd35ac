//! Timer components: Mart's own `mart:timer` interface (not Spin's; see
//! wit/mart-timer/timer.wit), ticked by `[[trigger.timer]]`.
//!
//! ```ignore
//! struct Sweep;
//! impl mart_guest::timer::Timer for Sweep {
//!     fn tick(scheduled_ms: i64) -> Result<(), String> { ... }
//! }
//! mart_guest::timer::export_timer_handler!(Sweep);
//! ```

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/mart-timer",
        world: "mart:timer/timer-handler",
        pub_export_macro: true,
        export_macro_name: "export_timer_handler",
        default_bindings_module: "mart_guest::timer::bindings",
    });
}

pub use bindings::export_timer_handler;
pub use bindings::exports::mart::timer::handler::Guest as Timer;
