//! The app's key-value stores, resolved from the runtime config as Spin
//! 4.0.2 does (`crates/runtime-config`, `crates/factor-key-value`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use mart_manifest::{App, Grants, RuntimeConfig};
use serde::Deserialize;

use crate::Backend;

/// Spin's file name for the `default` store in the state directory.
const DEFAULT_FILE: &str = "sqlite_key_value.db";

/// Every store of the app, and who may open which.
#[derive(Default)]
pub struct Stores {
    by_label: HashMap<String, Arc<Backend>>,
    allowed: Grants,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpinStore {
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedisStore {
    url: String,
}

impl Stores {
    /// The stores `config` defines, with `default` in `state_dir` unless
    /// the config says otherwise. Relative paths are resolved against the
    /// runtime config's directory, as Spin resolves them. Fails if a
    /// component of `app` lists a label no store has, or a type this host
    /// lacks.
    pub fn resolve(
        app: &App,
        config: &RuntimeConfig,
        state_dir: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let base = config.dir.as_deref();
        let mut by_label = config
            .key_value_store
            .iter()
            .map(|(label, backend)| {
                let store = backend_of(backend, base)
                    .with_context(|| format!("runtime config [key_value_store.{label}]"))?;
                Ok((label.clone(), Arc::new(store)))
            })
            .collect::<anyhow::Result<HashMap<_, _>>>()?;
        by_label
            .entry("default".into())
            .or_insert_with(|| Arc::new(Backend::sqlite(state_dir.map(|d| d.join(DEFAULT_FILE)))));
        let allowed = Grants::resolve(
            app,
            |c| &c.key_value_stores,
            |label| by_label.contains_key(label),
            "key-value store",
            "key_value_store",
        )
        .map_err(anyhow::Error::msg)?;
        Ok(Self { by_label, allowed })
    }

    /// The labels `component` may open.
    pub fn allowed_for(&self, component: &str) -> Arc<BTreeSet<String>> {
        self.allowed.of(component)
    }

    pub fn get(&self, label: &str) -> Option<&Arc<Backend>> {
        self.by_label.get(label)
    }
}

fn backend_of(backend: &mart_manifest::Backend, base: Option<&Path>) -> anyhow::Result<Backend> {
    match backend.kind.as_str() {
        "spin" => {
            let spin: SpinStore = backend.settings().map_err(anyhow::Error::msg)?;
            let path = spin.path.map(|p| match base {
                Some(base) => base.join(p),
                None => p,
            });
            Ok(Backend::sqlite(path))
        }
        "redis" => {
            let redis: RedisStore = backend.settings().map_err(anyhow::Error::msg)?;
            Ok(Backend::redis(redis.url))
        }
        kind @ ("azure_cosmos" | "aws_dynamo") => anyhow::bail!(
            "type `{kind}` is not provided by Mart's host; use type `spin` (a local file) \
             or `redis`, or run the app under Spin"
        ),
        other => anyhow::bail!(
            "unknown key-value store type `{other}` (Spin knows `spin`, `redis`, \
             `azure_cosmos` and `aws_dynamo`)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(components: &str) -> App {
        let text = format!("spin_manifest_version = 2\n[application]\nname = \"t\"\n{components}");
        App::from_text(&text, Path::new(".")).unwrap()
    }

    #[test]
    fn labels_are_allowed_per_component_and_default_always_exists() {
        let config = RuntimeConfig::parse(
            "[key_value_store.cache]\ntype = \"redis\"\nurl = \"redis://127.0.0.1\"\n",
        )
        .unwrap();
        let app = app("[component.a]\nsource = \"a.wasm\"\nkey_value_stores = [\"cache\"]\n[component.b]\nsource = \"b.wasm\"\n");
        let stores = Stores::resolve(&app, &config, None).unwrap();
        assert!(stores.get("default").is_some());
        assert!(matches!(
            **stores.get("cache").unwrap(),
            Backend::Redis { .. }
        ));
        assert_eq!(
            *stores.allowed_for("a"),
            BTreeSet::from(["cache".to_string()])
        );
        assert!(stores.allowed_for("b").is_empty());
    }

    #[test]
    fn cloud_stores_are_refused_with_the_reason() {
        let config =
            RuntimeConfig::parse("[key_value_store.x]\ntype = \"aws_dynamo\"\ntable = \"t\"\n")
                .unwrap();
        let err = Stores::resolve(&app(""), &config, None).err().unwrap();
        assert!(
            format!("{err:#}").contains("[key_value_store.x]: type `aws_dynamo` is not provided"),
            "{err:#}"
        );
    }
}
