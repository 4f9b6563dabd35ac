//! The browser tests' runner: a script in tests/browser (playwright-core
//! driving Debian's Chromium; `make browser` installs both) run with node
//! against a running host. Screenshots go to target/test-artifacts/.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::repo_root;

/// Where the scripts put their screenshots.
pub fn artifacts() -> PathBuf {
    repo_root().join("target/test-artifacts")
}

/// Runs `tests/browser/<script>` with `env` (plus `MART_ARTIFACTS`) and
/// returns what it printed. Panics with that output when it fails or does
/// not finish within `timeout`.
pub fn run_script(script: &str, env: &[(&str, String)], timeout: Duration) -> String {
    let dir = repo_root().join("tests/browser");
    let mut child = Command::new("node")
        .arg(dir.join(script))
        .current_dir(&dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("MART_ARTIFACTS", artifacts())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running node (make browser installs what the test needs)");
    let started = Instant::now();
    let finished = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match finished {
        None => panic!("{script} did not finish within {timeout:?}:\n{output}"),
        Some(status) if !status.success() => panic!("{script} failed ({status}):\n{output}"),
        Some(_) => output,
    }
}

/// Panics unless every screenshot in `names` was written and is not empty.
pub fn assert_screenshots(names: &[&str]) {
    for name in names {
        let size = std::fs::metadata(artifacts().join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 10_000, "screenshot {name} is missing or empty");
    }
}
