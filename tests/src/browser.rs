//! The browser tests' runner: a script in tests/browser (playwright-core
//! driving Debian's Chromium; `make browser` installs both) run with node
//! against a running host. Screenshots go to target/test-artifacts/.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::repo_root;

/// Where the scripts put their screenshots.
pub fn artifacts() -> PathBuf {
    repo_root().join("target/test-artifacts")
}

/// A finished run of a script.
pub struct Run {
    /// What it printed (stdout, then stderr).
    pub output: String,
    started: SystemTime,
}

impl Run {
    /// Panics unless this run wrote every screenshot in `names` (not
    /// empty, and not one left from an earlier run).
    pub fn assert_screenshots(&self, names: &[&str]) {
        for name in names {
            let written = std::fs::metadata(artifacts().join(name))
                .ok()
                .filter(|m| m.len() > 10_000)
                .and_then(|m| m.modified().ok());
            assert!(
                written.is_some_and(|t| t >= self.started),
                "this run wrote no screenshot {name}:\n{}",
                self.output
            );
        }
    }
}

/// Runs `tests/browser/<script>` with `env` (plus `MART_ARTIFACTS`).
/// Panics with what it printed when it fails or does not finish within
/// `timeout` (then node and the Chromium it started are killed: they run
/// in a process group of their own).
pub fn run_script(script: &str, env: &[(&str, String)], timeout: Duration) -> Run {
    let dir = repo_root().join("tests/browser");
    // Output goes to files, which never fill up and block the script.
    let log = |stream: &str| {
        std::env::temp_dir().join(format!("mart-{script}-{}.{stream}", std::process::id()))
    };
    let (out_path, err_path) = (log("out"), log("err"));
    let started = SystemTime::now();
    let mut child = Command::new("node")
        .arg(dir.join(script))
        .current_dir(&dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("MART_ARTIFACTS", artifacts())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .process_group(0)
        .spawn()
        .expect("running node (make browser installs what the test needs)");
    let clock = Instant::now();
    let finished = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if clock.elapsed() > timeout {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let read = |path: &PathBuf| std::fs::read_to_string(path).unwrap_or_default();
    let output = read(&out_path) + &read(&err_path);
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    match finished {
        None => panic!("{script} did not finish within {timeout:?}:\n{output}"),
        Some(status) if !status.success() => panic!("{script} failed ({status}):\n{output}"),
        Some(_) => Run { output, started },
    }
}
