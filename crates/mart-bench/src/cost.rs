//! What the shop costs the machine, read from Linux's `/proc`: CPU seconds
//! and resident memory of the host, PostgreSQL (the postmaster and its
//! backends) and the broker, and the host's own counters (Kafka messages,
//! outbox rows, HTTP requests) from its metrics.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// `/proc/<pid>/stat` counts CPU time in these ticks (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The processes whose cost is measured.
#[derive(Debug, Clone, Copy)]
pub struct Processes {
    pub host: u32,
    pub postgres: u32,
    pub broker: u32,
}

/// CPU seconds used so far, per process (PostgreSQL with its backends).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub host: f64,
    pub postgres: f64,
    pub broker: f64,
}

impl Cpu {
    pub fn now(processes: Processes) -> std::io::Result<Self> {
        Ok(Self {
            host: cpu_seconds(processes.host)?,
            postgres: tree_cpu_seconds(processes.postgres)?,
            broker: cpu_seconds(processes.broker)?,
        })
    }

    /// What was used between `earlier` and `self`.
    pub fn since(&self, earlier: &Cpu) -> Cpu {
        Cpu {
            host: self.host - earlier.host,
            postgres: self.postgres - earlier.postgres,
            broker: self.broker - earlier.broker,
        }
    }
}

/// utime + stime of `pid` (its threads included), in seconds.
pub fn cpu_seconds(pid: u32) -> std::io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    Ok(stat_field(&stat, 14) + stat_field(&stat, 15))
}

/// CPU seconds of `pid` and of every living process below it (PostgreSQL's
/// backends are children of the postmaster), plus what its finished
/// children used (cutime, cstime).
pub fn tree_cpu_seconds(pid: u32) -> std::io::Result<f64> {
    let stats = all_stats()?;
    let mut total = 0.0;
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        if let Some(stat) = stats.get(&p) {
            total += stat_field(stat, 14) + stat_field(stat, 15);
            if p == pid {
                total += stat_field(stat, 16) + stat_field(stat, 17);
            }
        }
        stack.extend(
            stats
                .iter()
                .filter(|(_, s)| stat_field(s, 4) as u32 == p)
                .map(|(child, _)| *child),
        );
    }
    Ok(total)
}

/// CPU seconds of `pid`'s living threads, summed per kind of thread (see
/// `thread_kind`). A thread that has exited is not listed, though its time
/// stays in `cpu_seconds`.
pub fn thread_cpu_seconds(pid: u32) -> std::io::Result<BTreeMap<&'static str, f64>> {
    let mut kinds = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(stat) = std::fs::read_to_string(entry?.path().join("stat")) else {
            continue; // exited meanwhile
        };
        let name = stat
            .split_once('(')
            .and_then(|(_, rest)| rest.rsplit_once(')'))
            .map_or("", |(name, _)| name);
        *kinds.entry(thread_kind(name)).or_insert(0.0) +=
            stat_field(&stat, 14) + stat_field(&stat, 15);
    }
    Ok(kinds)
}

/// What a host thread does, from its name (Linux keeps 15 bytes of it).
pub fn thread_kind(name: &str) -> &'static str {
    match name {
        // tokio names its workers and blocking threads `tokio-rt-worker`
        // (older releases: `tokio-runtime-worker`).
        n if n.starts_with("tokio-") => "tokio's threads (every trigger's tasks)",
        n if n.starts_with("rdk:") => "librdkafka's threads",
        n if n.starts_with("kafka-") => "Kafka consumers' poll threads",
        // rdkafka's threaded producer: "producer polling thread".
        n if n.starts_with("producer poll") => "Kafka producers' poll threads",
        n if n.starts_with("tracing-append") => "log writer",
        "mart-epoch" => "epoch ticker (deadlines)",
        _ => "other threads (the main thread)",
    }
}

/// Resident memory of `pid`, in MiB (`VmRSS`).
pub fn rss_mib(pid: u32) -> std::io::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    Ok(kib / 1024.0)
}

fn all_stats() -> std::io::Result<HashMap<u32, String>> {
    let mut stats = HashMap::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(stat) =
            std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat"))
        {
            stats.insert(pid, stat);
        }
    }
    Ok(stats)
}

/// Field `n` (1-based, as in proc(5)) of a `/proc/<pid>/stat` line; times
/// are converted to seconds by the caller's choice of field. The command
/// name (field 2) may hold spaces, so fields are counted after its `)`.
fn stat_field(stat: &str, n: usize) -> f64 {
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let value = after_name
        .split_whitespace()
        .nth(n - 3)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    match n {
        14..=17 => value / TICKS_PER_SECOND,
        _ => value,
    }
}

/// The Prometheus text a host's admin listener exposes (`<admin>/metrics`).
pub fn metrics(admin: &str) -> anyhow::Result<String> {
    Ok(ureq::get(&format!("{admin}/metrics"))
        .call()?
        .into_string()?)
}

/// The sum of the samples of `metric` in a Prometheus text exposition
/// whose labels contain `labels` (`""`: every label set), e.g. every Kafka
/// message handled, or those with `outcome="ok"`.
pub fn metric_sum(text: &str, metric: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        let stat = "42 (tokio worker 1) S 7 42 42 0 -1 4194304 100 0 0 0 250 50 3 1 20 0 9 0";
        assert_eq!(stat_field(stat, 4), 7.0, "the parent");
        assert_eq!(stat_field(stat, 14), 2.5, "utime in seconds");
        assert_eq!(stat_field(stat, 15), 0.5, "stime in seconds");
    }

    #[test]
    fn this_process_uses_cpu_and_memory() {
        let me = std::process::id();
        let start = cpu_seconds(me).unwrap();
        // Busy until the kernel has counted a tick (10 ms), however loaded
        // the machine; the bound only stops a broken reading from hanging.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while cpu_seconds(me).unwrap() <= start && std::time::Instant::now() < deadline {
            let mut x = 0u64;
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_add(i));
            }
        }
        let own = cpu_seconds(me).unwrap();
        assert!(own > start, "busy work is counted");
        // Read after `own`: other tests run on this process's threads and
        // keep adding CPU time, so the tree read first could be the smaller.
        let tree = tree_cpu_seconds(me).unwrap();
        assert!(
            tree >= own,
            "the tree ({tree} s) includes the process ({own} s)"
        );
        assert!(rss_mib(me).unwrap() > 1.0);
    }

    #[test]
    fn a_threads_cpu_is_counted_under_the_kind_its_name_says() {
        let kind = "Kafka consumers' poll threads";
        let (report, reported) = std::sync::mpsc::channel();
        let busy = std::thread::Builder::new()
            .name("kafka-probe".into())
            .spawn(move || {
                // Busy until the kernel has counted a tick of this thread
                // (10 ms), however loaded the machine; bounded so that a
                // broken reading fails instead of hanging.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                let counted = || {
                    thread_cpu_seconds(std::process::id())
                        .unwrap()
                        .get(kind)
                        .copied()
                };
                while counted().unwrap_or(0.0) == 0.0 && std::time::Instant::now() < deadline {
                    std::hint::black_box((0..1_000_000u64).sum::<u64>());
                }
                let _ = report.send(counted());
            })
            .unwrap();
        let seen = reported.recv().unwrap();
        assert!(seen.is_some_and(|s| s > 0.0), "{seen:?}");
        busy.join().unwrap();
        assert_eq!(thread_kind("rdk:broker1"), "librdkafka's threads");
        assert_eq!(
            thread_kind("kafka-inventory"),
            "Kafka consumers' poll threads"
        );
        assert_eq!(
            thread_kind("tokio-rt-worker"),
            "tokio's threads (every trigger's tasks)"
        );
        assert_eq!(thread_kind("mart"), "other threads (the main thread)");
    }

    #[test]
    fn metric_sums_cover_every_label_set_and_only_that_metric() {
        let text = "# HELP x\nmart_outbox_published_total{database=\"orders\"} 3\n\
                    mart_outbox_published_total{database=\"payments\"} 4\n\
                    mart_outbox_published_totals 100\nmart_other 9\n";
        assert_eq!(metric_sum(text, "mart_outbox_published_total", ""), 7.0);
        let only = "database=\"orders\"";
        assert_eq!(metric_sum(text, "mart_outbox_published_total", only), 3.0);
    }
}
