//! Servers the Spin interface tests talk to, from Debian's packages
//! (`make test-servers`): one Redis and one MQTT broker (Mosquitto) per
//! test process, each on a loopback port of its own and stopped when the
//! process exits.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{after_this_process_exits, free_port};

/// A server process started by the harness.
pub struct LocalServer {
    pub port: u16,
    pub pid: u32,
}

impl LocalServer {
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the server at once (SIGKILL), as a crash would, and waits
    /// until its port is free.
    pub fn kill(&self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "the server on {} did not stop",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The test process's Redis server (no persistence).
pub fn redis() -> &'static LocalServer {
    static REDIS: OnceLock<LocalServer> = OnceLock::new();
    REDIS.get_or_init(|| redis_on(free_port()))
}

/// A Redis server of the caller's own on `port` (no persistence), for a
/// test that stops it (`LocalServer::kill`) and starts another there.
pub fn redis_on(port: u16) -> LocalServer {
    let dir = scratch_dir("redis", port);
    start(
        "redis-server",
        Command::new(installed("redis-server"))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir),
        port,
        &dir,
    )
}

/// The test process's MQTT broker (anonymous clients, no persistence).
pub fn mosquitto() -> &'static LocalServer {
    static MOSQUITTO: OnceLock<LocalServer> = OnceLock::new();
    MOSQUITTO.get_or_init(|| {
        let port = free_port();
        let dir = scratch_dir("mosquitto", port);
        let config = dir.join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .expect("writing mosquitto.conf");
        start(
            "mosquitto",
            Command::new(installed("mosquitto")).arg("-c").arg(&config),
            port,
            &dir,
        )
    })
}

fn scratch_dir(name: &str, port: u16) -> PathBuf {
    static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "mart-test-{name}-{}-{port}-{n}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("server scratch directory");
    dir
}

/// The server binary, or a panic that says how to install it.
fn installed(binary: &str) -> PathBuf {
    ["/usr/bin", "/usr/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(binary))
        .find(|path| path.exists())
        .unwrap_or_else(|| {
            panic!(
                "{binary} is missing: run `make test-servers` (or `make test`), which installs it"
            )
        })
}

/// Starts `command`, stops it when this process exits, and waits until it
/// accepts connections on `port` (generously: the machine may be loaded).
// The server outlives its Child handle on purpose: the watchdog stops it.
#[allow(clippy::zombie_processes)]
fn start(name: &str, command: &mut Command, port: u16, dir: &Path) -> LocalServer {
    let log = std::fs::File::create(dir.join("server.log")).expect("server log");
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("server log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    let pid = child.id();
    after_this_process_exits(&format!("kill {pid}; rm -rf '{}'", dir.display()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{name} did not listen on {port} within 60 s: {}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    LocalServer { port, pid }
}

/// A one-shot HTTP server on a free loopback port answering "pong": the
/// port, and the thread serving it (join it to know it answered).
pub fn pong_once() -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = listener.local_addr().expect("a bound port").port();
    (port, pong_once_on(listener))
}

/// `pong_once` on a listener of the caller's (a port chosen earlier, e.g.
/// the one a component is allowed to reach).
pub fn pong_once_on(listener: std::net::TcpListener) -> std::thread::JoinHandle<()> {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("a connection");
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong");
    })
}
