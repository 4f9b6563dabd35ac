//! A component written for the public `trigger-cron` Spin plugin: it exports
//! `spin:cron@3.0.0`'s async `handle-cron-event`, generated from the
//! plugin's WIT (wit/spin/cron@3.0.0) as the plugin's `#[cron_component]`
//! macro does. Each run records the metadata's timestamp (seconds) in the
//! `fired` table of the database named by the `db_url` variable.

mod bindings {
    spin_sdk::wit_bindgen::generate!({
        inline: r#"
            package mart-test:cron-probe;
            world cron-probe {
                import spin:postgres/postgres@4.0.0;
                import fermyon:spin/variables@2.0.0;
                include spin:cron/spin-cron@3.0.0;
            }
        "#,
        path: [
            "../../../wit/spin/postgres@4.0.0",
            "../../../wit/spin/variables@2.0.0",
            "../../../wit/spin/cron@3.0.0",
        ],
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        generate_all,
    });
}

use bindings::fermyon::spin::variables;
use bindings::spin::cron::cron_types::{Error, Metadata};
use bindings::spin::postgres::postgres::{Connection, ParameterValue};

struct Cron;

impl bindings::Guest for Cron {
    async fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        record(metadata.timestamp).map_err(Error::Other)
    }
}

bindings::export!(Cron with_types_in bindings);

fn record(timestamp: u64) -> Result<(), String> {
    let url = variables::get("db_url").map_err(|e| format!("db_url: {e:?}"))?;
    let db = Connection::open(&url).map_err(|e| format!("connecting: {e:?}"))?;
    let timestamp = i64::try_from(timestamp).map_err(|e| e.to_string())?;
    db.execute(
        "INSERT INTO fired (ts) VALUES ($1)",
        &[ParameterValue::Int64(timestamp)],
    )
    .map_err(|e| format!("{e:?}"))?;
    Ok(())
}
