//! The app's SQLite databases, resolved from the runtime config as Spin
//! 4.0.2 does (`crates/sqlite`, `crates/factor-sqlite`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use mart_manifest::{App, Backend, Grants, RuntimeConfig};
use serde::Deserialize;

/// Spin's file name for the `default` database in the state directory.
const DEFAULT_FILE: &str = "sqlite_db.db";

/// Where a database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A fresh, private database for every `open` (Spin's behaviour when
    /// no state directory is set).
    InMemory,
    File(PathBuf),
}

/// One configured database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub location: Location,
    /// Whether statements may `ATTACH` other files (Spin: off by default;
    /// in-memory and temporary attachments are always allowed).
    pub allow_attach_file: bool,
}

/// Every database of the app, and who may open which.
#[derive(Debug, Default)]
pub struct Databases {
    by_label: HashMap<String, Database>,
    allowed: Grants,
}

/// `[sqlite_database.<label>]` with `type = "spin"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpinDatabase {
    path: Option<PathBuf>,
    #[serde(default)]
    allow_attach_file: bool,
}

impl Databases {
    /// The databases `config` defines, with `default` in `state_dir` unless
    /// the config says otherwise. Relative paths are resolved against the
    /// working directory, as Spin resolves them. Fails if a component of
    /// `app` lists a label no database has, or a type this host lacks.
    pub fn resolve(
        app: &App,
        config: &RuntimeConfig,
        state_dir: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let cwd = std::env::current_dir().context("the working directory")?;
        let mut by_label = config
            .sqlite_database
            .iter()
            .map(|(label, backend)| {
                let database = database(backend, &cwd)
                    .with_context(|| format!("runtime config [sqlite_database.{label}]"))?;
                Ok((label.clone(), database))
            })
            .collect::<anyhow::Result<HashMap<_, _>>>()?;
        by_label
            .entry("default".into())
            .or_insert_with(|| Database {
                location: match state_dir {
                    Some(dir) => Location::File(dir.join(DEFAULT_FILE)),
                    None => Location::InMemory,
                },
                allow_attach_file: false,
            });
        let allowed = Grants::resolve(
            app,
            |c| &c.sqlite_databases,
            |label| by_label.contains_key(label),
            "SQLite database",
            "sqlite_database",
        )
        .map_err(anyhow::Error::msg)?;
        Ok(Self { by_label, allowed })
    }

    /// The labels `component` may open.
    pub fn allowed_for(&self, component: &str) -> Arc<BTreeSet<String>> {
        self.allowed.of(component)
    }

    pub fn get(&self, label: &str) -> Option<&Database> {
        self.by_label.get(label)
    }
}

fn database(backend: &Backend, cwd: &Path) -> anyhow::Result<Database> {
    match backend.kind.as_str() {
        "spin" => {
            let spin: SpinDatabase = backend.settings().map_err(anyhow::Error::msg)?;
            Ok(Database {
                location: match spin.path {
                    Some(path) => Location::File(cwd.join(path)),
                    None => Location::InMemory,
                },
                allow_attach_file: spin.allow_attach_file,
            })
        }
        "libsql" => anyhow::bail!(
            "type `libsql` (a remote libSQL/Turso database) is not provided by Mart's host; \
             use type `spin` (a local file), or run the app under Spin"
        ),
        other => anyhow::bail!("unknown database type `{other}` (Spin knows `spin` and `libsql`)"),
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
    fn default_lives_in_the_state_directory_and_others_where_configured() {
        let config = RuntimeConfig::parse(
            "[sqlite_database.orders]\ntype = \"spin\"\npath = \"data/orders.db\"\n",
        )
        .unwrap();
        let app = app(
            "[component.a]\nsource = \"a.wasm\"\nsqlite_databases = [\"default\", \"orders\"]\n",
        );
        let dbs = Databases::resolve(&app, &config, Some(Path::new("/state"))).unwrap();
        assert_eq!(
            dbs.get("default").unwrap().location,
            Location::File("/state/sqlite_db.db".into())
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            dbs.get("orders").unwrap().location,
            Location::File(cwd.join("data/orders.db"))
        );
        assert_eq!(dbs.allowed_for("a").len(), 2);
        assert!(dbs.allowed_for("nobody").is_empty());
        let in_memory = Databases::resolve(&app, &config, None).unwrap();
        assert_eq!(
            in_memory.get("default").unwrap().location,
            Location::InMemory
        );
    }

    #[test]
    fn remote_databases_are_refused_with_the_reason() {
        let config = RuntimeConfig::parse(
            "[sqlite_database.x]\ntype = \"libsql\"\nurl = \"https://t\"\ntoken = \"k\"\n",
        )
        .unwrap();
        let err = Databases::resolve(&app(""), &config, None).unwrap_err();
        assert!(
            format!("{err:#}").contains("[sqlite_database.x]: type `libsql`"),
            "{err:#}"
        );
    }
}
