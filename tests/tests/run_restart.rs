//! `make run` (scripts/run.sh) survives being stopped and started: killed
//! outright (SIGKILL to the script and its host, as a killed terminal job)
//! and started again at once, the host takes its partitions back at once
//! (static membership under the stable instance id run.sh keeps in its
//! state folder), so orders placed right after are paid in the usual time;
//! Ctrl-C stops the host before the broker and PostgreSQL; a start that
//! fails stops the broker and PostgreSQL it started.
//!
//! Runs scripts/run.sh itself, with its own state folder and ports (its
//! own PostgreSQL cluster and broker, not the test binary's).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mart_integration_tests::{
    admin_token, free_port, http, repo_root, unique, JWT_PRIVATE_KEY, JWT_PUBLIC_KEY,
};
use serde_json::{json, Value};

/// The ports and state folder every run of the test shares.
struct Setup {
    dir: PathBuf,
    pg_port: u16,
    kafka_port: u16,
    port: u16,
    admin_port: u16,
    log: PathBuf,
}

/// One `scripts/run.sh mart`, in a process group of its own (as a
/// terminal's job).
struct Run {
    child: Child,
}

impl Setup {
    fn new() -> Setup {
        let dir = std::env::temp_dir().join(format!("mart-run-restart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let setup = Setup {
            log: dir.join("run.log"),
            dir,
            pg_port: free_port(),
            kafka_port: free_port(),
            port: free_port(),
            admin_port: free_port(),
        };
        // Whatever happens to this test, its broker and cluster go.
        watchdog(&format!(
            "'{root}/scripts/broker.sh' stop '{dir}/kafka'; \
             '{root}/scripts/postgres.sh' stop '{dir}/pg'; \
             [ -n \"$MART_TEST_KEEP_LOGS\" ] || rm -rf '{dir}'",
            root = repo_root().display(),
            dir = setup.dir.display(),
        ));
        setup
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&self) -> Run {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = Command::new(repo_root().join("scripts/run.sh"));
        command
            .arg("mart")
            .current_dir(repo_root())
            // What a developer's shell may hold must not leak in.
            .env_remove("MART_DATABASE_URL")
            .env_remove("MART_KAFKA_BROKERS")
            .env_remove("MART_KAFKA_INSTANCE_ID")
            .env_remove("MART_STATE_DIR")
            .env_remove("SPIN_VARIABLE_KAFKA_BROKERS")
            .env_remove("SPIN_VARIABLE_PG_PORT")
            .env("MART_RUN_DIR", &self.dir)
            .env("MART_PG_PORT", self.pg_port.to_string())
            .env("MART_KAFKA_PORT", self.kafka_port.to_string())
            .env("MART_LISTEN", format!("127.0.0.1:{}", self.port))
            .env(
                "MART_ADMIN_LISTEN",
                format!("127.0.0.1:{}", self.admin_port),
            )
            .env("MART_CACHE_DIR", repo_root().join("target/mart-test-cache"))
            // The test's keys, so that it can act as the admin.
            .env("SPIN_VARIABLE_JWT_PRIVATE_KEY", JWT_PRIVATE_KEY)
            .env("SPIN_VARIABLE_JWT_PUBLIC_KEY", JWT_PUBLIC_KEY)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0);
        let child = command.spawn().expect("starting scripts/run.sh");
        watchdog(&format!(
            "kill -TERM -{pg} 2>/dev/null; sleep 10; kill -KILL -{pg} 2>/dev/null",
            pg = child.id()
        ));
        Run { child }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the run's host answers, or panics with the log.
    fn wait_ready(&self, run: &mut Run, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = run.child.try_wait().unwrap() {
                panic!("run.sh exited with {status}:\n{}", self.log());
            }
            let health = http()
                .get(&format!("{}/.well-known/spin/health", self.base()))
                .timeout(Duration::from_secs(2))
                .call();
            if health.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "run.sh's host was not ready within {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn broker_pid(&self) -> u32 {
        pid_in(&self.dir.join("kafka/tansu.pid"))
    }

    fn postgres_pid(&self) -> u32 {
        pid_in(&self.dir.join("pg/postmaster.pid"))
    }

    fn host_pid(&self) -> u32 {
        pid_in(&self.dir.join("host.pid"))
    }

    fn metrics(&self) -> String {
        http()
            .get(&format!("http://127.0.0.1:{}/metrics", self.admin_port))
            .timeout(Duration::from_secs(30))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .unwrap_or_default()
    }
}

impl Run {
    fn signal_group(&self, signal: &str) {
        let status = Command::new("kill")
            .args([
                &format!("-{signal}"),
                "--",
                &format!("-{}", self.child.id()),
            ])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} of run.sh's process group");
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

/// Runs `then` in a shell once this test process has exited.
fn watchdog(then: &str) {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {then}",
        pid = std::process::id()
    );
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("a watchdog");
}

fn pid_in(file: &Path) -> u32 {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.lines().next().unwrap().trim().parse().unwrap()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// The shop's API at `base`, as the saga tests use it.
struct Shop {
    base: String,
}

impl Shop {
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Value {
        let mut request = http()
            .request(method, &format!("{}{path}", self.base))
            .timeout(Duration::from_secs(60));
        if let Some(token) = token {
            request = request.set("authorization", &format!("Bearer {token}"));
        }
        if method == "POST" && path == "/orders" {
            request = request.set("idempotency-key", &unique("k"));
        }
        let response = match body {
            Some(body) => request.send_json(body.clone()),
            None => request.call(),
        };
        match response {
            Ok(r) => r.into_json().unwrap_or(Value::Null),
            Err(ureq::Error::Status(status, r)) => {
                panic!("{method} {path}: {status} {}", r.into_string().unwrap())
            }
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    fn customer(&self) -> String {
        let email = format!("{}@example.com", unique("restart"));
        let password = "correct horse battery";
        self.call(
            "POST",
            "/users",
            None,
            Some(&json!({"email": email, "name": "Buyer", "password": password})),
        );
        let token = self.call(
            "POST",
            "/auth/token",
            None,
            Some(&json!({"email": email, "password": password})),
        );
        token["access_token"].as_str().unwrap().to_string()
    }

    fn product(&self, on_hand: i32) -> String {
        let admin = admin_token();
        let body = json!({"name": unique("teapot"), "description": "d", "category": "restart", "price_minor": 700, "currency": "EUR"});
        let product = self.call("POST", "/products", Some(&admin), Some(&body));
        let id = product["id"].as_str().unwrap().to_string();
        self.call(
            "PUT",
            &format!("/inventory/{id}"),
            Some(&admin),
            Some(&json!({ "on_hand": on_hand })),
        );
        id
    }

    fn place(&self, user: &str, product: &str) -> String {
        let body = json!({
            "items": [{"product_id": product, "quantity": 1}],
            "shipping_address": {"name": "Buyer", "line1": "1 Tea Street", "city": "Berlin", "postal_code": "10115", "country": "DE"},
            "payment": {"provider": "fake", "token": "tok_visa"}
        });
        let order = self.call("POST", "/orders", Some(user), Some(&body));
        order["id"].as_str().unwrap().to_string()
    }

    /// Waits until every order is paid; how long that took.
    fn wait_paid(&self, orders: &[(String, String)], timeout: Duration) -> Duration {
        let started = Instant::now();
        for (user, order) in orders {
            loop {
                let last = self.call("GET", &format!("/orders/{order}"), Some(user), None);
                if last["status"] == "paid" {
                    break;
                }
                assert!(
                    started.elapsed() < timeout,
                    "order {order} was not paid within {timeout:?} of the restart: {last}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        started.elapsed()
    }
}

/// `(group, topic, partition) -> lag` from `mart_kafka_group_lag`.
fn group_lags(metrics: &str) -> Vec<((String, String, String), i64)> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("mart_kafka_group_lag{"))
        .filter_map(|rest| {
            let (labels, value) = rest.split_once("} ")?;
            let label = |name: &str| {
                labels
                    .split(',')
                    .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                    .map(|v| v.trim_end_matches('"').to_string())
            };
            Some((
                (label("group")?, label("topic")?, label("partition")?),
                value.trim().parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn make_run_killed_and_started_again_at_once_pays_orders_in_the_usual_time() {
    let setup = Setup::new();
    let shop = Shop { base: setup.base() };

    // A first run, with its groups formed: an order goes through the saga.
    let mut first = setup.start();
    setup.wait_ready(&mut first, Duration::from_secs(600));
    let product = shop.product(100);
    let user = shop.customer();
    let warm_up = vec![(user.clone(), shop.place(&user, &product))];
    shop.wait_paid(&warm_up, Duration::from_secs(180));
    let (broker, postgres, host) = (setup.broker_pid(), setup.postgres_pid(), setup.host_pid());

    // Killed outright, script and host (a killed terminal job): nothing is
    // cleaned up. The broker and PostgreSQL run in sessions of their own,
    // so they are still there, with the dead host's group members.
    first.signal_group("KILL");
    first
        .wait_exit(Duration::from_secs(30))
        .expect("run.sh killed");
    let killed = Instant::now();
    while alive(host) {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the host outlived SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(alive(broker), "the broker is not in run.sh's process group");
    assert!(
        alive(postgres),
        "PostgreSQL is not in run.sh's process group"
    );

    // Started again at once: it reuses the broker and the cluster, and its
    // host is the same static member as the dead one.
    let mut second = setup.start();
    setup.wait_ready(&mut second, Duration::from_secs(600));
    let restart = killed.elapsed();
    assert_eq!(setup.broker_pid(), broker, "the running broker is reused");
    let log = setup.log();
    assert!(log.contains("tansu already running"), "{log}");

    // Orders placed right after, from several customers (keys spread over
    // the partitions), are paid in the usual time. Without static
    // membership the broker keeps the dead member, which holds half of
    // every group's partitions, and these orders stay pending for minutes.
    let users: Vec<String> = (0..4).map(|_| shop.customer()).collect();
    let mut placed = Vec::new();
    for user in &users {
        for _ in 0..2 {
            placed.push((user.clone(), shop.place(user, &product)));
        }
    }
    let paid_in = shop.wait_paid(&placed, Duration::from_secs(120));
    eprintln!(
        "restart (kill to ready) took {restart:?}; 8 orders placed after it were paid in {paid_in:?}"
    );

    // Every partition of every group's topics is visible in the metrics,
    // from the committed offsets, and none is left behind.
    let lags = mart_integration_tests::eventually(
        Duration::from_secs(120),
        "the group lag of every partition, all caught up",
        || {
            let lags = group_lags(&setup.metrics());
            let topics: std::collections::BTreeSet<_> = lags
                .iter()
                .map(|((g, t, _), _)| (g.clone(), t.clone()))
                .collect();
            let every_partition = !topics.is_empty()
                && topics.iter().all(|(g, t)| {
                    lags.iter()
                        .filter(|((lg, lt, _), _)| lg == g && lt == t)
                        .count()
                        >= 4
                });
            // The monitor reports each group as it first reads its
            // offsets: wait for the saga's groups, not only the first.
            let saga_seen = topics
                .iter()
                .any(|(g, t)| g.ends_with("inventory-events") && t == "mart.orders");
            (saga_seen && every_partition && lags.iter().all(|(_, lag)| *lag == 0)).then_some(lags)
        },
    );
    assert!(
        lags.iter()
            .any(|((g, t, _), _)| g.ends_with("inventory-events") && t == "mart.orders"),
        "{lags:?}"
    );

    // Ctrl-C (SIGINT to the terminal's process group): the host stops
    // first, while the broker is still there, then the broker and PostgreSQL.
    let before_stop = setup.log().len();
    second.signal_group("INT");
    let status = second
        .wait_exit(Duration::from_secs(180))
        .unwrap_or_else(|| panic!("run.sh did not stop on Ctrl-C:\n{}", setup.log()));
    let log = setup.log()[before_stop..].to_string();
    let host_done = log
        .rfind("Kafka trigger stopped")
        .unwrap_or_else(|| panic!("the host stopped its triggers:\n{log}"));
    let broker_stop = log
        .find("stopping the Kafka broker")
        .unwrap_or_else(|| panic!("run.sh stopped the broker:\n{log}"));
    assert!(
        host_done < broker_stop,
        "the host first, then the broker:\n{log}"
    );
    eventually_dead(broker, "the broker");
    eventually_dead(postgres, "PostgreSQL");
    eprintln!("run.sh exited with {status} after Ctrl-C");

    // A start that fails (the HTTP port is taken) stops the broker and the
    // cluster it started.
    let taken = std::net::TcpListener::bind(("127.0.0.1", setup.port)).unwrap();
    let before_start = setup.log().len();
    let mut failed = setup.start();
    let status = failed
        .wait_exit(Duration::from_secs(600))
        .unwrap_or_else(|| panic!("run.sh kept running with its port taken:\n{}", setup.log()));
    assert!(!status.success(), "{}", setup.log());
    drop(taken);
    let log = setup.log()[before_start..].to_string();
    let stopped = |line: &str| {
        log.find(line)
            .unwrap_or_else(|| panic!("the failed start logs `{line}`:\n{log}"))
    };
    assert!(
        stopped("stopping the Kafka broker") < stopped("stopping PostgreSQL"),
        "{log}"
    );
    for (port, what) in [
        (setup.kafka_port, "the broker"),
        (setup.pg_port, "PostgreSQL"),
    ] {
        mart_integration_tests::eventually(
            Duration::from_secs(60),
            &format!("{what} of the failed start stopped"),
            || {
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .is_err()
                    .then_some(())
            },
        );
    }
}

fn eventually_dead(pid: u32, what: &str) {
    mart_integration_tests::eventually(Duration::from_secs(60), &format!("{what} stopped"), || {
        (!alive(pid)).then_some(())
    });
}
