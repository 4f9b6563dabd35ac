//! Running Mart's triggers as Fermyon Spin runs its trigger plugins.
//!
//! Spin cannot be installed here, so the tests play `spin up`'s part: they
//! write the locked app Spin 4 writes for this repository's spin.toml and
//! start `trigger-kafka` / `trigger-timer` with the environment and flags
//! `spin up` gives a plugin (`src/commands/up.rs` in Spin 4.0.2).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{broker, repo_root};

/// The lock Spin 4.0.2 wrote for spin.toml, recorded (see tests/fixtures).
const RECORDED_LOCK: &str = include_str!("../fixtures/spin-4.0.2-locked-app.json");

/// A plugin binary built next to `mart` (`trigger-kafka`, `trigger-timer`).
pub fn plugin_bin(name: &str) -> PathBuf {
    crate::mart_bin().with_file_name(name)
}

/// Writes `<working_dir>/spin.lock` as `spin up` does for spin.toml and
/// returns its `file://` URL.
///
/// It is the recorded lock with its paths moved here, plus what spin.toml
/// gained since it was recorded in the places a lock copies verbatim
/// (`[variables]`, `[application.trigger.*]` and each component's
/// `variables`, which Spin writes as the component's `config`). Components
/// and triggers are taken from the recording and must still match
/// spin.toml, so a change there fails here until the fixture is recorded
/// again.
pub fn write_lock(working_dir: &Path) -> String {
    let text = RECORDED_LOCK
        .replace("/srv/mart", repo_root().to_str().unwrap())
        .replace("/srv/spinup-work", working_dir.to_str().unwrap());
    let mut lock: Value = serde_json::from_str(&text).unwrap();
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo_root().join("spin.toml")).unwrap()).unwrap();
    assert_recording_matches(&lock, &manifest);
    lock["metadata"]["triggers"] =
        serde_json::to_value(&manifest["application"]["trigger"]).unwrap();
    for component in lock["components"].as_array_mut().unwrap() {
        let id = component["id"].as_str().unwrap().to_string();
        match manifest["component"][&id].get("variables") {
            Some(variables) => component["config"] = serde_json::to_value(variables).unwrap(),
            None => {
                component.as_object_mut().unwrap().remove("config");
            }
        }
    }
    lock["variables"] = manifest["variables"]
        .as_table()
        .unwrap()
        .iter()
        .map(|(name, decl)| {
            let mut v = json!({});
            if let Some(default) = decl.get("default") {
                v["default"] = default.as_str().unwrap().into();
            }
            if decl.get("secret").and_then(|s| s.as_bool()) == Some(true) {
                v["secret"] = true.into();
            }
            (name.clone(), v)
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    let path = working_dir.join("spin.lock");
    std::fs::write(&path, serde_json::to_vec_pretty(&lock).unwrap()).unwrap();
    format!("file://{}", path.display())
}

/// The recording's components and trigger tables are spin.toml's.
fn assert_recording_matches(lock: &Value, manifest: &toml::Table) {
    let stale = "spin.toml changed since tests/fixtures/spin-4.0.2-locked-app.json was \
                 recorded; record it again with Spin (see tests/fixtures/README.md)";
    let mut recorded: Vec<Value> = lock["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| json!([t["trigger_type"], t["trigger_config"]]))
        .collect();
    let mut current: Vec<Value> = manifest["trigger"]
        .as_table()
        .unwrap()
        .iter()
        .flat_map(|(kind, tables)| {
            tables
                .as_array()
                .unwrap()
                .iter()
                .map(move |t| json!([kind, serde_json::to_value(t).unwrap()]))
        })
        .collect();
    let key = |v: &Value| v.to_string();
    recorded.sort_by_key(key);
    current.sort_by_key(key);
    assert_eq!(recorded, current, "{stale}");
    for component in lock["components"].as_array().unwrap() {
        let id = component["id"].as_str().unwrap();
        assert!(
            manifest["component"].get(id).is_some(),
            "component `{id}`: {stale}"
        );
    }
    assert_eq!(
        lock["components"].as_array().unwrap().len(),
        manifest["component"].as_table().unwrap().len(),
        "{stale}"
    );
}

/// A trigger plugin process as `spin up` starts it, stopped when dropped.
pub struct Plugin {
    child: Child,
    log: PathBuf,
}

impl Plugin {
    /// Starts `name` for the lock at `locked_url`, from the app folder (as
    /// `spin up` runs from where spin.toml is), with the test cluster's
    /// variables and `env`, and `spin up`'s flags for a runtime config.
    pub fn start(
        name: &str,
        locked_url: &str,
        working_dir: &Path,
        env: &[(&str, String)],
    ) -> Plugin {
        let log = working_dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(plugin_bin(name));
        command
            .current_dir(repo_root())
            .args(["--runtime-config-file", "runtime-config.toml"])
            .args(["--state-dir", ""])
            .env("SPIN_LOCKED_URL", locked_url)
            .env("SPIN_WORKING_DIR", working_dir)
            .env("SPIN_LOCAL_APP_DIR", "")
            .env("SPIN_VERSION", "4.0.2")
            .env_remove("MART_KAFKA_BROKERS")
            .env("SPIN_VARIABLE_KAFKA_BROKERS", broker::broker().bootstrap());
        crate::with_app_environment(&mut command, log_file, env);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Plugin { child, log }
    }

    /// Waits until the plugin logged `needle` (it is up), or panics with its log.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        let started = Instant::now();
        loop {
            if self.log().contains(needle) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("plugin exited with {status}:\n{}", self.log());
            }
            assert!(
                started.elapsed() < timeout,
                "`{needle}` not logged within {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as `spin up` stops its triggers on Ctrl-C; the exit status.
    pub fn stop(mut self, timeout: Duration) -> std::process::ExitStatus {
        crate::stop_gracefully(&mut self.child, timeout)
            .unwrap_or_else(|| panic!("plugin did not stop:\n{}", self.log()))
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = crate::stop_gracefully(&mut self.child, Duration::from_secs(15));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("plugin log kept at {}:\n{}", self.log.display(), self.log());
        }
    }
}
