//! Test harness: a throwaway PostgreSQL cluster per test binary and `mart`
//! host processes per test, all on loopback ports, all cleaned up.
//!
//! Run through `make test`, which builds the host and the components first.

pub mod broker;
pub mod browser;
pub mod fake_http;
pub mod kong;
pub mod otlp;
pub mod servers;
pub mod spin;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository root (spin.toml, migrations/, target/).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The HTTP client of every test: one connection per request, none kept.
///
/// Why: ureq's default agent keeps idle connections in a pool shared by the
/// whole test binary and closes them when it chooses, and the host closes
/// idle ones after its header timeout. A kept connection holds one of the
/// host's connection slots for an unknown time (a test of the cap failed
/// on that), and one closed by the host just as it is reused fails a POST,
/// which ureq does not retry.
pub fn http() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::AgentBuilder::new()
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .build()
    })
}

/// The `mart` binary built by `make test` (or `MART_BIN`).
pub fn mart_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("MART_BIN") {
        return bin.into();
    }
    // target/<profile>/deps/<test> -> target/<profile>/mart
    let exe = std::env::current_exe().expect("current test executable");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("mart");
    assert!(
        bin.exists(),
        "{} is missing: run `make test` (it builds the host first)",
        bin.display()
    );
    bin
}

/// `prefix-<process>-<n>`: a name no other call of this test process (and
/// no other test process on the machine) returns, for emails, categories
/// and keys that must not collide in the test binary's shared database.
pub fn unique(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

/// A PostgreSQL cluster shared by the tests of one test binary.
pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
}

static POSTGRES: OnceLock<Postgres> = OnceLock::new();

/// Starts the cluster on first use and migrates it. A watchdog process stops
/// and deletes the cluster when this test process exits, however it exits.
pub fn postgres() -> &'static Postgres {
    POSTGRES.get_or_init(|| {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("mart-test-pg-{}-{port}", std::process::id()));
        let script = repo_root().join("scripts/postgres.sh");
        let status = Command::new(&script)
            .args(["start", dir.to_str().unwrap(), &port.to_string()])
            .status()
            .expect("running scripts/postgres.sh");
        assert!(status.success(), "PostgreSQL did not start");
        stop_when_this_process_exits(&script, &dir);
        let pg = Postgres { port, dir };
        pg.migrate();
        pg
    })
}

/// Starts a watchdog that runs `script stop dir` and deletes `dir` once
/// this test process has exited, however it exits.
pub fn stop_when_this_process_exits(script: &Path, dir: &Path) {
    after_this_process_exits(&format!(
        "'{script}' stop '{dir}'; rm -rf '{dir}'",
        script = script.display(),
        dir = dir.display(),
    ));
}

/// Deletes `dir` once this test process has exited, however it exits.
pub fn remove_when_this_process_exits(dir: &Path) {
    after_this_process_exits(&format!("rm -rf '{}'", dir.display()));
}

/// Runs the shell command `then` once this test process has exited.
pub(crate) fn after_this_process_exits(then: &str) {
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {then}",
        pid = std::process::id(),
    );
    // Deliberately never waited for: it must outlive this process.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting a watchdog");
}

impl Postgres {
    pub fn server_url(&self) -> String {
        format!("postgres://mart@127.0.0.1:{}/postgres", self.port)
    }

    pub fn database_url(&self, database: &str) -> String {
        format!("postgres://mart@127.0.0.1:{}/{database}", self.port)
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `mart migrate` against this cluster.
    pub fn migrate(&self) -> std::process::Output {
        let output = Command::new(mart_bin())
            .args([
                "migrate",
                "--database-url",
                &self.server_url(),
                "--migrations",
            ])
            .arg(repo_root().join("migrations"))
            .output()
            .expect("running mart migrate");
        assert!(
            output.status.success(),
            "mart migrate failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Runs a script of several statements (no results).
    pub fn execute_script(&self, database: &str, sql: &str) {
        self.with_client(database, async |client| client.batch_execute(sql).await)
    }

    /// Runs one SQL statement, for checks the API cannot make.
    pub fn query(&self, database: &str, sql: &str) -> Vec<tokio_postgres::Row> {
        self.with_client(database, async |client| client.query(sql, &[]).await)
    }

    /// Runs a script on `database` as `role` (the cluster trusts loopback,
    /// so only privileges decide); the server's message if it fails.
    pub fn execute_as(&self, role: &str, database: &str, sql: &str) -> Result<(), String> {
        self.try_with_client(role, database, async |client| {
            client.batch_execute(sql).await
        })
    }

    /// A connection to `database` for one piece of work; panics on errors.
    fn with_client<T>(
        &self,
        database: &str,
        work: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
    ) -> T {
        self.try_with_client("mart", database, work)
            .unwrap_or_else(|e| panic!("{database}: {e}"))
    }

    /// A connection to `database` as `role` for one piece of work.
    fn try_with_client<T>(
        &self,
        role: &str,
        database: &str,
        work: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, String> {
        let url = format!("postgres://{role}@127.0.0.1:{}/{database}", self.port);
        let message = |e: tokio_postgres::Error| {
            e.as_db_error()
                .map_or(e.to_string(), |db| db.message().to_string())
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(message)?;
            tokio::spawn(conn);
            work(&client).await.map_err(message)
        })
    }
}

/// The test-only signing key pair (also used by mart-domain's unit tests).
pub const JWT_PRIVATE_KEY: &str = include_str!("../../crates/mart-domain/testdata/jwt-private.pem");
pub const JWT_PUBLIC_KEY: &str = include_str!("../../crates/mart-domain/testdata/jwt-public.pem");
/// A key the app does not trust, for forged tokens.
pub const JWT_OTHER_PRIVATE_KEY: &str =
    include_str!("../../crates/mart-domain/testdata/jwt-other-private.pem");

/// A token as the users service would issue it, minted directly.
pub fn token(user_id: &str, role: mart_domain::auth::Role) -> String {
    let signer = mart_domain::auth::Signer::new(JWT_PRIVATE_KEY, "mart-1", "mart", 900).unwrap();
    signer
        .sign(user_id, role, 0, mart_domain::auth::now())
        .unwrap()
}

pub fn admin_token() -> String {
    token(
        "00000000-0000-4000-8000-00000000a0a0",
        mart_domain::auth::Role::Admin,
    )
}

/// Sends SIGTERM to `pid` (a graceful stop, as in production).
/// SIGTERM to `pid`; quiet if it has already exited (a host stopped
/// twice: by a test, then by its drop).
fn signal_term(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// SIGTERM, then waits up to `timeout` for `child` to exit; `None` if it
/// is still running then.
pub fn stop_gracefully(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    signal_term(child.id());
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What every process running the app gets in these tests, after what its
/// caller set: the test cluster's port, the signing keys, the fake payment
/// provider, its output into `log`, and last the test's own `env`.
pub(crate) fn with_app_environment(
    command: &mut Command,
    log: std::fs::File,
    env: &[(&str, String)],
) {
    command
        .env("SPIN_VARIABLE_PG_PORT", postgres().port.to_string())
        .env("SPIN_VARIABLE_JWT_PRIVATE_KEY", JWT_PRIVATE_KEY)
        .env("SPIN_VARIABLE_JWT_PUBLIC_KEY", JWT_PUBLIC_KEY)
        // The manifest enables no provider (it fails closed); tests pay with
        // the fake one, which needs the development switch, unless they say
        // otherwise in `env`.
        .env("SPIN_VARIABLE_PAYMENT_PROVIDERS", "fake")
        .env("SPIN_VARIABLE_ALLOW_FAKE_PAYMENTS", "true")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("a second handle on the log"))
        .stderr(log);
    for (k, v) in env {
        command.env(k, v);
    }
}

/// The app's spin.toml changed by `edit`, in a file of its own outside the
/// repository (removed when the test process exits), with its Wasm sources
/// pointing back here. Components that mount files (the static sites) are
/// left out, with their triggers: an app mounts files only from inside its
/// own folder, as on Spin.
pub fn app_manifest_with(name: &str, edit: impl FnOnce(&mut toml::Table)) -> PathBuf {
    let text = std::fs::read_to_string(repo_root().join("spin.toml")).expect("spin.toml");
    let mut manifest: toml::Table = toml::from_str(&text).expect("spin.toml parses");
    let components = manifest["component"].as_table_mut().unwrap();
    components.retain(|_, c| c.get("files").is_none());
    for (_, component) in components.iter_mut() {
        let source = component["source"].as_str().unwrap();
        component["source"] = repo_root().join(source).display().to_string().into();
    }
    let kept: Vec<String> = components.keys().cloned().collect();
    for (_, triggers) in manifest["trigger"].as_table_mut().unwrap().iter_mut() {
        triggers
            .as_array_mut()
            .unwrap()
            .retain(|t| kept.iter().any(|k| t["component"].as_str() == Some(k)));
    }
    edit(&mut manifest);
    let dir = std::env::temp_dir().join(format!("mart-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    remove_when_this_process_exits(&dir);
    let path = dir.join("spin.toml");
    std::fs::write(&path, toml::to_string(&manifest).unwrap()).unwrap();
    path
}

/// A running `mart up`, stopped when dropped.
pub struct Host {
    child: Child,
    pub base: String,
    /// The admin listener (`/healthz`, `/readyz`, `/metrics`).
    pub admin: String,
    log: PathBuf,
}

impl Host {
    /// Starts the app in `manifest` (relative to the repo root) against the
    /// test cluster, with extra environment variables.
    pub fn start(manifest: &str, env: &[(&str, String)]) -> Host {
        Host::start_with(manifest, &[], env)
    }

    /// `start`, with more arguments for `mart up` (e.g. `--component-id`).
    pub fn start_with(manifest: &str, args: &[&str], env: &[(&str, String)]) -> Host {
        // Ports are picked free and then given to the host, so another
        // process may take one in between: then the host cannot listen and
        // is started again on others.
        for attempt in 1.. {
            let mut host = Host::spawn(manifest, args, env);
            match host.wait_ready(Duration::from_secs(120)) {
                Ok(()) => return host,
                Err(log) if attempt < 3 && log.contains("Address already in use") => continue,
                Err(log) => panic!("{log}"),
            }
        }
        unreachable!()
    }

    fn spawn(manifest: &str, args: &[&str], env: &[(&str, String)]) -> Host {
        let pg = postgres();
        let port = free_port();
        let admin_port = free_port();
        let log = std::env::temp_dir().join(format!("mart-host-{}-{port}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).expect("host log file");
        let mut command = Command::new(mart_bin());
        command
            .current_dir(repo_root())
            .args([
                "up",
                "--from",
                manifest,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--cache-dir")
            .arg(repo_root().join("target/mart-test-cache"))
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .args(args)
            .env("MART_DATABASE_URL", pg.server_url())
            // The app's Kafka triggers and outbox relay need a broker; tests
            // that want their own pass MART_KAFKA_BROKERS in `env`.
            .env("MART_KAFKA_BROKERS", broker::broker().bootstrap());
        with_app_environment(&mut command, log_file, env);
        let child = command.spawn().expect("starting mart up");
        Host {
            child,
            base: format!("http://127.0.0.1:{port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            log,
        }
    }

    /// One host for the whole test binary, started by the first caller (with
    /// its `env`; every caller in a binary must pass the same) and stopped
    /// with SIGTERM when the test process exits.
    ///
    /// Why: hosts that come and go in the same consumer groups make the
    /// broker rebalance, and the test broker (tansu 0.6) can leave a member
    /// that joins while another leaves without partitions for a minute or
    /// more. Tests of a binary that share one host cause no such churn.
    pub fn shared(manifest: &str, env: &[(&str, String)]) -> &'static Host {
        static SHARED: OnceLock<(Host, String)> = OnceLock::new();
        let config = format!("{manifest} {env:?}");
        let (host, started_with) = SHARED.get_or_init(|| {
            let host = Host::start(manifest, env);
            eprintln!("shared host log: {}", host.log.display());
            // The log stays (this process cannot tell the watchdog whether a
            // test failed); it is small, and a fresh CI machine starts empty.
            after_this_process_exits(&format!(
                "kill -TERM {host}; \
                 for _ in $(seq 100); do kill -0 {host} 2>/dev/null || break; sleep 0.1; done; \
                 kill -KILL {host} 2>/dev/null",
                host = host.pid(),
            ));
            (host, config.clone())
        });
        assert_eq!(
            *started_with, config,
            "every test of a binary must ask for the same shared host"
        );
        host
    }

    /// `Err` with what the host printed if it exited first.
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("mart up exited with {status}:\n{}", self.log()));
            }
            if let Ok(r) = http()
                .get(&format!("{}/.well-known/spin/health", self.base))
                .timeout(Duration::from_secs(1))
                .call()
            {
                if r.status() == 200 {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mart up was not ready within {timeout:?}:\n{}", self.log());
    }

    /// The admin listener's Prometheus text (`/metrics`).
    pub fn metrics(&self) -> String {
        let response = http()
            .get(&format!("{}/metrics", self.admin))
            .timeout(Duration::from_secs(30))
            .call()
            .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
        response
            .into_string()
            .unwrap_or_else(|e| panic!("GET /metrics: {e}"))
    }

    /// The value of one unlabelled series (e.g. `mart_instances_active`) in
    /// the admin listener's Prometheus text, if it is exported.
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.metrics().lines().find_map(|line| {
            let (name, value) = line.split_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
    }

    /// What the host printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process outright (SIGKILL): no cleanup of any kind.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        stop_gracefully(&mut self.child, timeout)
            .unwrap_or_else(|| panic!("mart did not stop within {timeout:?}"))
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let mut request = http()
            .request(method, &format!("{}{path}", self.base))
            .timeout(Duration::from_secs(60));
        for (k, v) in headers {
            request = request.set(k, v);
        }
        let result = match body {
            Some(body) => request.send_bytes(body),
            None => request.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}\n{}", self.log()),
        };
        Resp::read(response)
    }

    /// POSTs JSON from the loopback address `source` (127.0.0.0/8 is all
    /// loopback), so a test can play several clients: returns the status and
    /// the body. One request per connection, read to its end.
    pub fn post_json_from(
        &self,
        source: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, String) {
        let addr: std::net::SocketAddr = self.base.trim_start_matches("http://").parse().unwrap();
        let body = serde_json::to_vec(body).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let answer = rt.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
            let mut stream = socket.connect(addr).await.unwrap();
            stream.write_all(head.as_bytes()).await.unwrap();
            stream.write_all(&body).await.unwrap();
            let mut answer = Vec::new();
            tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer))
                .await
                .expect("an answer within 60 s")
                .unwrap();
            String::from_utf8_lossy(&answer).into_owned()
        });
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"));
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], None)
    }

    pub fn send_json(&self, method: &str, path: &str, body: &serde_json::Value) -> Resp {
        let bytes = serde_json::to_vec(body).unwrap();
        self.request(
            method,
            path,
            &[("content-type", "application/json")],
            Some(&bytes),
        )
    }

    /// `send_json` with `Authorization: Bearer <token>`.
    pub fn send_json_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> Resp {
        let bytes = serde_json::to_vec(body).unwrap();
        let auth = format!("Bearer {token}");
        self.request(
            method,
            path,
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            Some(&bytes),
        )
    }

    pub fn get_as(&self, token: &str, path: &str) -> Resp {
        let auth = format!("Bearer {token}");
        self.request("GET", path, &[("authorization", &auth)], None)
    }

    /// Registers a customer (asserting 201).
    pub fn sign_up(&self, email: &str, name: &str, password: &str) {
        let r = self.send_json(
            "POST",
            "/users",
            &serde_json::json!({"email": email, "name": name, "password": password}),
        );
        assert_eq!(r.status, 201, "signing up {email}: {}", r.text());
    }

    /// Logs in (asserting 200): the whole answer, tokens and lifetimes.
    pub fn log_in(&self, email: &str, password: &str) -> serde_json::Value {
        let r = self.send_json(
            "POST",
            "/auth/token",
            &serde_json::json!({"email": email, "password": password}),
        );
        assert_eq!(r.status, 200, "logging in {email}: {}", r.text());
        r.json()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Graceful, as in production: the host leaves its consumer groups
        // (so the broker need not wait for its session to expire) and
        // finishes what it started. Killed only if it does not stop in time.
        let _ = stop_gracefully(&mut self.child, Duration::from_secs(15));
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() || std::env::var_os("MART_TEST_KEEP_LOGS").is_some() {
            // Kept for the post-mortem; the path is in the test's output.
            eprintln!("host log kept at {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    fn read(r: ureq::Response) -> Resp {
        let status = r.status();
        let content_type = r.header("content-type").unwrap_or_default().to_string();
        let headers = r
            .headers_names()
            .into_iter()
            .map(|n| {
                let v = r.header(&n).unwrap_or_default().to_string();
                (n, v)
            })
            .collect();
        let mut body = Vec::new();
        r.into_reader()
            .take(64 << 20)
            .read_to_end(&mut body)
            .unwrap();
        Resp {
            status,
            content_type,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an RFC 9457 problem with this status; returns its JSON.
    pub fn problem(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(
            self.content_type,
            "application/problem+json",
            "body: {}",
            self.text()
        );
        let json = self.json();
        assert_eq!(json["status"], status);
        assert!(
            json["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{json}"
        );
        json
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after
/// `timeout` naming `what` (and the last state `check` saw, via `describe`).
pub fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
