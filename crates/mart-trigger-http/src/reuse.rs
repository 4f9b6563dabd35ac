//! How long a WASIp3 instance lives: Spin 4's four options
//! (`crates/trigger-http/src/lib.rs` at v4.0.2), with its defaults and its
//! value syntax. A WASIp2 instance serves one request, as in Spin.
//!
//! Each option is a value (`8`, `1s`) or a range (`1..8`, `1..8s`) from
//! which every new instance draws its own, so that instances made at the
//! same moment do not all retire at the same moment.
//!
//! Two differences from Spin 4.0.2, both in what is accepted:
//! - Spin reads `100ms` as seconds with the `s` suffix stripped and fails;
//!   here the suffixes its help lists (`s`, `ms`, `us`, `μs`, `ns`) all work.
//! - Spin panics on an empty range (`8..8`) when the first instance draws
//!   from it; here it is refused when the option is read.

use std::time::Duration;

use rand::distr::uniform::SampleUniform;
use rand::Rng as _;

/// Requests one p3 instance serves before it is retired.
pub const DEFAULT_MAX_INSTANCE_REUSE_COUNT: usize = 128;
/// Requests one p3 instance serves at once.
pub const DEFAULT_MAX_INSTANCE_CONCURRENT_REUSE_COUNT: usize = 16;
/// How long an instance with nothing to do is kept for the next request.
pub const DEFAULT_IDLE_INSTANCE_TIMEOUT: Duration = Duration::from_secs(1);

/// A value, or the bounds (`start..end`, end excluded) each new instance
/// draws its own value from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range<T> {
    Value(T),
    Bounds(T, T),
}

impl<T: SampleUniform + PartialOrd + Copy> Range<T> {
    /// The value for one new instance.
    pub fn draw(&self) -> T {
        match *self {
            Range::Value(value) => value,
            Range::Bounds(start, end) => rand::rng().random_range(start..end),
        }
    }
}

/// How the HTTP trigger reuses p3 instances (`mart up --max-instance-reuse-count`
/// and the others, named as Spin names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceReuse {
    /// Requests an instance serves in all; 1 turns reuse off.
    pub max_instance_reuse_count: Range<usize>,
    /// Requests an instance serves at once.
    pub max_instance_concurrent_reuse_count: Range<usize>,
    /// How long a request may take; `None`: the component's own deadline
    /// (`timeout_ms`, or the host's default). Spin has no default here;
    /// Mart keeps the deadline every component already has.
    pub request_timeout: Option<Range<Duration>>,
    /// How long an idle instance waits for another request.
    pub idle_instance_timeout: Range<Duration>,
}

impl Default for InstanceReuse {
    fn default() -> Self {
        Self {
            max_instance_reuse_count: Range::Value(DEFAULT_MAX_INSTANCE_REUSE_COUNT),
            max_instance_concurrent_reuse_count: Range::Value(
                DEFAULT_MAX_INSTANCE_CONCURRENT_REUSE_COUNT,
            ),
            request_timeout: None,
            idle_instance_timeout: Range::Value(DEFAULT_IDLE_INSTANCE_TIMEOUT),
        }
    }
}

/// `8` or `1..8`: a count of requests, at least 1.
pub fn parse_count_range(text: &str) -> Result<Range<usize>, String> {
    let range = parse_range(text, |s| s.parse::<usize>().map_err(|e| e.to_string()))?;
    let smallest = match range {
        Range::Value(v) | Range::Bounds(v, _) => v,
    };
    if smallest == 0 {
        return Err(format!("expected at least 1 request; got {text:?}"));
    }
    Ok(range)
}

/// `1s`, `250ms`, `1..8s`: a duration (a bare number is seconds). In a
/// range, a suffix on the end applies to a start that has none.
pub fn parse_duration_range(text: &str) -> Result<Range<Duration>, String> {
    let unit = text
        .rsplit("..")
        .next()
        .map(|end| end.trim_start_matches(|c: char| c.is_ascii_digit()))
        .unwrap_or_default();
    parse_range(text, |s| {
        let with_unit = if s.bytes().all(|b| b.is_ascii_digit()) && !unit.is_empty() {
            format!("{s}{unit}")
        } else {
            s.to_string()
        };
        parse_duration(&with_unit)
    })
}

fn parse_range<T: PartialOrd + Copy>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Range<T>, String> {
    let error = |e: String| format!("expected a value or a range like 1..8; got {text:?}: {e}");
    match text.split_once("..") {
        None => parse(text).map(Range::Value).map_err(error),
        Some((start, end)) => {
            let (start, end) = (parse(start).map_err(error)?, parse(end).map_err(error)?);
            if start >= end {
                return Err(format!(
                    "the range {text:?} is empty: its start must be below its end (which is excluded)"
                ));
            }
            Ok(Range::Bounds(start, end))
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits = text.trim_end_matches(|c: char| !c.is_ascii_digit());
    let unit = &text[digits.len()..];
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("expected a whole number with s, ms, us, μs or ns; got {text:?}"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(number)),
        "ms" => Ok(Duration::from_millis(number)),
        "us" | "μs" => Ok(Duration::from_micros(number)),
        "ns" => Ok(Duration::from_nanos(number)),
        other => Err(format!(
            "unknown unit {other:?} in {text:?} (s, ms, us, μs or ns)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_values_or_ranges_of_at_least_one() {
        assert_eq!(parse_count_range("128"), Ok(Range::Value(128)));
        assert_eq!(parse_count_range("1..8"), Ok(Range::Bounds(1, 8)));
        assert!(parse_count_range("0").unwrap_err().contains("at least 1"));
        assert!(parse_count_range("8..8").unwrap_err().contains("empty"));
        assert!(parse_count_range("many").unwrap_err().contains("\"many\""));
    }

    #[test]
    fn durations_take_spins_suffixes() {
        let value = |t| parse_duration_range(t).unwrap();
        assert_eq!(value("1"), Range::Value(Duration::from_secs(1)));
        assert_eq!(value("2s"), Range::Value(Duration::from_secs(2)));
        assert_eq!(value("250ms"), Range::Value(Duration::from_millis(250)));
        assert_eq!(value("7us"), Range::Value(Duration::from_micros(7)));
        assert_eq!(value("7μs"), Range::Value(Duration::from_micros(7)));
        assert_eq!(value("9ns"), Range::Value(Duration::from_nanos(9)));
        assert_eq!(
            value("1..8s"),
            Range::Bounds(Duration::from_secs(1), Duration::from_secs(8))
        );
        assert_eq!(
            value("100ms..2s"),
            Range::Bounds(Duration::from_millis(100), Duration::from_secs(2))
        );
        assert!(parse_duration_range("5m")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration_range("2s..1s")
            .unwrap_err()
            .contains("empty"));
    }

    #[test]
    fn each_instance_draws_within_the_bounds() {
        let range = Range::Bounds(3usize, 6);
        for _ in 0..200 {
            assert!((3..6).contains(&range.draw()));
        }
        assert_eq!(Range::Value(4usize).draw(), 4);
    }
}
