//! Where an event goes (`mart events`): every event type with its topic,
//! the components whose database's outbox writes it, and the handlers that
//! take it. Read from `spin.toml` (which component reaches which database,
//! which handler reads which topics) and the event contracts in
//! `mart_domain::events` (what each handler takes), so the README's table
//! is generated and checked, not written by hand.

use std::collections::BTreeSet;

use mart_domain::events::{EventType, SUBSCRIPTIONS};
use mart_manifest::App;

/// One event type's way through the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub event: EventType,
    pub topic: String,
    /// Components on the database whose outbox carries it.
    pub writers: Vec<String>,
    /// Handler components that take it.
    pub handlers: Vec<String>,
}

/// Every event type's route through `app`.
pub fn routes(app: &App) -> anyhow::Result<Vec<Route>> {
    let triggers = app.manifest.kafka_triggers().map_err(anyhow::Error::msg)?;
    let reads = |component: &str, topic: &str| {
        triggers
            .iter()
            .any(|t| t.component == component && t.topics.iter().any(|t| t == topic))
    };
    Ok(EventType::ALL
        .into_iter()
        .map(|event| {
            let topic = event.topic();
            let writers = app
                .manifest
                .component
                .iter()
                .filter(|(_, c)| {
                    c.variables.get("db_url").and_then(|u| database_of(u))
                        == Some(event.aggregate())
                })
                .map(|(id, _)| id.clone())
                .collect();
            let handlers = SUBSCRIPTIONS
                .iter()
                .filter(|s| s.takes.contains(&event) && reads(s.component, &topic))
                .map(|s| s.component.to_string())
                .collect();
            Route {
                event,
                topic,
                writers,
                handlers,
            }
        })
        .collect())
}

/// Where the contracts and the manifest disagree: a handler that takes an
/// event its trigger never reads (it would wait for ever), or that the
/// manifest does not have.
pub fn problems(app: &App) -> anyhow::Result<Vec<String>> {
    let triggers = app.manifest.kafka_triggers().map_err(anyhow::Error::msg)?;
    let mut problems = Vec::new();
    for subscription in SUBSCRIPTIONS {
        let topics: BTreeSet<&str> = triggers
            .iter()
            .filter(|t| t.component == subscription.component)
            .flat_map(|t| t.topics.iter().map(String::as_str))
            .collect();
        if topics.is_empty() {
            problems.push(format!(
                "`{}` takes events but has no [[trigger.kafka]] entry",
                subscription.component
            ));
            continue;
        }
        for event in subscription.takes {
            if !topics.contains(event.topic().as_str()) {
                problems.push(format!(
                    "`{}` takes {} but its trigger does not read {}",
                    subscription.component,
                    event.as_str(),
                    event.topic()
                ));
            }
        }
    }
    Ok(problems)
}

/// The routes as a Markdown table.
pub fn markdown(routes: &[Route]) -> String {
    let mut table = String::from(
        "| event | topic | written by (its database's outbox) | handled by |\n|---|---|---|---|\n",
    );
    let list = |names: &[String]| {
        if names.is_empty() {
            "—".to_string()
        } else {
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    for route in routes {
        table.push_str(&format!(
            "| `{}` | `{}` | {} | {} |\n",
            route.event.as_str(),
            route.topic,
            list(&route.writers),
            list(&route.handlers)
        ));
    }
    table
}

/// The database a `postgres://…/<database>` URL names (templates allowed).
fn database_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("postgres://")?;
    let (_, path) = rest.rsplit_once('/')?;
    Some(path.split('?').next().unwrap_or(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(name)
    }

    #[test]
    fn the_app_delivers_every_event_a_handler_takes() {
        let app = App::load(&repo_file("spin.toml")).unwrap();
        assert_eq!(problems(&app).unwrap(), Vec::<String>::new());
        let placed = routes(&app)
            .unwrap()
            .into_iter()
            .find(|r| r.event == EventType::OrderPlaced)
            .unwrap();
        assert_eq!(placed.topic, "mart.orders");
        assert!(placed.writers.contains(&"orders".to_string()), "{placed:?}");
        assert_eq!(
            placed.handlers,
            ["inventory-events", "payments-events", "carts-events"]
        );
    }

    #[test]
    fn the_readme_table_is_the_generated_one() {
        let app = App::load(&repo_file("spin.toml")).unwrap();
        let table = markdown(&routes(&app).unwrap());
        let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
        assert!(
            readme.contains(&table),
            "README.md's event table is out of date; `mart events` prints it:\n{table}"
        );
    }

    #[test]
    fn a_handler_whose_trigger_misses_a_topic_is_reported() {
        let dir = std::env::temp_dir().join(format!("mart-event-map-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = dir.join("spin.toml");
        std::fs::write(
            &manifest,
            r#"spin_manifest_version = 2
[application]
name = "t"
[[trigger.kafka]]
component = "orders-events"
topics = ["mart.inventory"]
[component.orders-events]
source = "x.wasm"
"#,
        )
        .unwrap();
        let found = problems(&App::load(&manifest).unwrap()).unwrap();
        assert!(
            found.contains(
                &"`orders-events` takes payment.succeeded but its trigger does not read mart.payments"
                    .to_string()
            ),
            "{found:?}"
        );
        assert!(
            found.contains(
                &"`carts-events` takes events but has no [[trigger.kafka]] entry".to_string()
            ),
            "{found:?}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn databases_are_read_from_urls() {
        assert_eq!(
            database_of("postgres://mart_orders:{{ p }}@{{ h }}:{{ port }}/orders"),
            Some("orders")
        );
        assert_eq!(database_of("postgres://h/db?sslmode=require"), Some("db"));
        assert_eq!(database_of("https://h/db"), None);
    }
}
