use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::{App, Component};

/// The labelled resources (key-value stores, SQLite databases) each
/// component may open: what its manifest lists, e.g. `key_value_stores`.
#[derive(Debug, Default)]
pub struct Grants(HashMap<String, Arc<BTreeSet<String>>>);

impl Grants {
    /// Each component's list, picked by `listed`. As Spin, refuses the app
    /// if a label is not `defined`; the error names the component, the
    /// `kind` of resource and the runtime config `section` that defines one.
    pub fn resolve(
        app: &App,
        listed: impl Fn(&Component) -> &[String],
        defined: impl Fn(&str) -> bool,
        kind: &str,
        section: &str,
    ) -> Result<Self, String> {
        let mut grants = HashMap::new();
        for (id, component) in &app.manifest.component {
            let labels: BTreeSet<String> = listed(component).iter().cloned().collect();
            if let Some(unknown) = labels.iter().find(|l| !defined(l)) {
                return Err(format!(
                    "component `{id}` uses {kind} `{unknown}`, which is not defined: check \
                     the spelling, or define it in the runtime config as [{section}.{unknown}]"
                ));
            }
            grants.insert(id.clone(), Arc::new(labels));
        }
        Ok(Self(grants))
    }

    /// The labels `component` may open (none for a component not in the app).
    pub fn of(&self, component: &str) -> Arc<BTreeSet<String>> {
        self.0.get(component).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(components: &str) -> App {
        let text = format!("spin_manifest_version = 2\n[application]\nname = \"t\"\n{components}");
        App::from_text(&text, std::path::Path::new(".")).unwrap()
    }

    #[test]
    fn each_component_may_open_what_it_lists() {
        let app = app(
            "[component.a]\nsource = \"a.wasm\"\nkey_value_stores = [\"default\", \"cache\"]\n\
             [component.b]\nsource = \"b.wasm\"\n",
        );
        let grants =
            Grants::resolve(&app, |c| &c.key_value_stores, |_| true, "store", "s").unwrap();
        assert_eq!(
            *grants.of("a"),
            BTreeSet::from(["cache".into(), "default".into()])
        );
        assert!(grants.of("b").is_empty());
        assert!(grants.of("nobody").is_empty());
    }

    #[test]
    fn a_label_nothing_defines_refuses_the_app_naming_it() {
        let app = app("[component.a]\nsource = \"a.wasm\"\nsqlite_databases = [\"ordres\"]\n");
        let err = Grants::resolve(
            &app,
            |c| &c.sqlite_databases,
            |l| l == "default",
            "SQLite database",
            "sqlite_database",
        )
        .unwrap_err();
        assert!(
            err.contains("component `a` uses SQLite database `ordres`"),
            "{err}"
        );
        assert!(err.contains("[sqlite_database.ordres]"), "{err}");
    }
}
