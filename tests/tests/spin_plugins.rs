//! Mart's Kafka and timer triggers as Fermyon Spin trigger plugins, started
//! as `spin up` starts them (Spin's environment, Spin's flags, the locked app
//! Spin writes), with the HTTP side served by a separate `mart up` on the
//! HTTP-only manifest, as Spin's own HTTP trigger would serve it. A test
//! binary of its own: its plugins are the only consumers of the app's groups.

mod saga_support;

use std::process::Command;
use std::time::Duration;

use mart_integration_tests::spin::{plugin_bin, write_lock, Plugin};
use mart_integration_tests::{eventually, mart_bin, postgres, repo_root, Host};
use saga_support::*;

const PLUGINS: [&str; 2] = ["trigger-kafka", "trigger-timer"];
const STARTUP: Duration = Duration::from_secs(180);

#[test]
fn plugins_answer_spins_launch_queries_without_an_app() {
    for name in PLUGINS {
        // `spin up` of a multi-trigger app first asks for the flags to forward.
        let out = Command::new(plugin_bin(name))
            .arg("--launch-metadata-only")
            .env_remove("SPIN_LOCKED_URL")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {out:?}");
        assert!(out.stdout.is_empty(), "{name}: the metadata goes to stderr");
        let meta: serde_json::Value = serde_json::from_slice(&out.stderr)
            .unwrap_or_else(|e| panic!("{name}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        let longs: Vec<&str> = meta["all_flags"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["long"].as_str())
            .collect();
        assert!(
            longs.contains(&"--runtime-config-file"),
            "{name}: {longs:?}"
        );
        assert!(longs.contains(&"--state-dir"), "{name}: {longs:?}");
        assert!(
            !longs.contains(&"--listen"),
            "{name}: --listen is the HTTP trigger's"
        );

        // `spin up --help` shows each trigger's flags.
        let out = Command::new(plugin_bin(name))
            .arg("--help-args-only")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("--runtime-config-file"));

        // Started by hand, it says what is missing instead of failing obscurely.
        let out = Command::new(plugin_bin(name))
            .env_remove("SPIN_LOCKED_URL")
            .env_remove("SPIN_WORKING_DIR")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("SPIN_LOCKED_URL is not set"),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn make_spin_plugins_writes_manifests_spin_plugins_install_accepts() {
    // The packaging script on this build's binaries (`make spin-plugins`
    // runs it on release builds).
    let out = tempfile_dir("spin-plugin-packages");
    let bins = plugin_bin("trigger-kafka").parent().unwrap().to_path_buf();
    let status = Command::new(repo_root().join("scripts/spin-plugins.sh"))
        .arg(&bins)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let host_crate: toml::Table = toml::from_str(
        &std::fs::read_to_string(repo_root().join("crates/mart-host/Cargo.toml")).unwrap(),
    )
    .unwrap();
    let version = host_crate["package"]["version"].as_str().unwrap();
    for name in PLUGINS {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(format!("{name}.json"))).unwrap())
                .unwrap();
        // The fields Spin 4's `PluginManifest` requires (camelCase).
        assert_eq!(manifest["name"], name);
        assert_eq!(manifest["version"], version);
        assert_eq!(manifest["spinCompatibility"], ">=4.0");
        assert_eq!(manifest["license"], "Apache-2.0");
        let package = &manifest["packages"][0];
        assert_eq!(package["os"], "linux");
        assert!(["amd64", "aarch64"].contains(&package["arch"].as_str().unwrap()));
        let tarball = package["url"]
            .as_str()
            .unwrap()
            .strip_prefix("file://")
            .unwrap();
        let bytes = std::fs::read(tarball).unwrap();
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        assert_eq!(
            package["sha256"],
            sha.as_str(),
            "Spin compares the exact hash"
        );
        // Spin unpacks the tarball and runs `<name>` from its root.
        let unpacked = out.join(format!("{name}-unpacked"));
        std::fs::create_dir_all(&unpacked).unwrap();
        let status = Command::new("tar")
            .args(["-xzf", tarball, "-C"])
            .arg(&unpacked)
            .status()
            .unwrap();
        assert!(status.success());
        let meta = Command::new(unpacked.join(name))
            .arg("--launch-metadata-only")
            .output()
            .unwrap();
        assert!(meta.status.success(), "{name} from the tarball runs");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn the_checkout_runs_on_the_spin_plugins() {
    // The HTTP side: the HTTP-only manifest (`make spin-manifest`), which has
    // no Kafka or timer trigger and relays nothing.
    let status = Command::new(mart_bin())
        .current_dir(repo_root())
        .args([
            "spin-manifest",
            "--from",
            "spin.toml",
            "--out",
            "spin.http.toml",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let http = Host::start("spin.http.toml", &[]);
    let work = tempfile_dir("spin-plugins");
    let lock = write_lock(&work);

    // The timer plugin alone: an order nobody moves is expired by it.
    let mut timer = Plugin::start(
        "trigger-timer",
        &lock,
        &work,
        &[
            ("SPIN_VARIABLE_ORDER_DEADLINE_SECS", "2".into()),
            ("SPIN_VARIABLE_ORDER_SWEEP_SECS", "1".into()),
        ],
    );
    timer.wait_for_log("Timer: orders-expiry every 1 s", STARTUP);
    let user = customer(&http);
    let stale = place_items(&http, &user, &product(&http, 500, 3), 1, "tok_visa");
    let order = wait_for(&http, &user, &stale, "cancelled");
    assert_eq!(order["history"][1]["reason"], "payment timed out");
    assert!(
        timer.stop(Duration::from_secs(30)).success(),
        "a clean stop on SIGTERM"
    );

    // Both plugins, as `spin up` runs them: the whole saga moves.
    let mut kafka = Plugin::start("trigger-kafka", &lock, &work, &[]);
    let mut timer = Plugin::start("trigger-timer", &lock, &work, &[]);
    kafka.wait_for_log("outbox relay for databases", STARTUP);
    timer.wait_for_log("Timer: orders-expiry every 30 s", STARTUP);
    let item = product(&http, 1250, 5);
    let id = place_items(&http, &user, &item, 2, "tok_visa");
    let paid = wait_for(&http, &user, &id, "paid");
    assert_paths(
        &paid,
        &[&["pending", "reserved", "paid"], &["pending", "paid"]],
    );
    eventually(WAIT, "two units to leave the shelf, once", || {
        (stock(&http, &item) == (3, 0)).then_some(())
    });
    let charges: i64 = postgres().query(
        "payments",
        &format!("SELECT count(*) FROM payments WHERE order_id = '{id}' AND status = 'succeeded'"),
    )[0]
    .get(0);
    assert_eq!(charges, 1);
    eventually(WAIT, "the order_paid notification", || {
        let notes = http.get_as(&user, "/notifications").json();
        notes["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "order_paid")
            .then_some(())
    });
    assert!(
        kafka.stop(Duration::from_secs(60)).success(),
        "a clean stop on SIGTERM"
    );
    let _ = std::fs::remove_dir_all(&work);
}

fn tempfile_dir(prefix: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mart-{prefix}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
