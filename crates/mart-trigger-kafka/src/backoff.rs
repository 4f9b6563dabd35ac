use std::time::Duration;

use mart_manifest::RetryPolicy;
use rand::Rng;

/// Delay before retry number `attempt` (1 = the first retry): exponential
/// growth from `initial_backoff_ms`, capped at `max_backoff_ms`, with full
/// jitter so that many failing partitions do not retry in lockstep.
pub fn delay(policy: &RetryPolicy, attempt: u32, rng: &mut impl Rng) -> Duration {
    let ceiling = ceiling_ms(policy, attempt);
    Duration::from_millis(rng.random_range(ceiling / 2..=ceiling))
}

/// The un-jittered delay: initial × 2^(attempt-1), capped.
fn ceiling_ms(policy: &RetryPolicy, attempt: u32) -> u64 {
    let exponent = attempt.saturating_sub(1).min(32);
    policy
        .initial_backoff_ms
        .saturating_mul(1u64 << exponent)
        .min(policy.max_backoff_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: Some(10),
        initial_backoff_ms: 100,
        max_backoff_ms: 1_000,
    };

    #[test]
    fn grows_exponentially_then_caps() {
        assert_eq!(ceiling_ms(&POLICY, 1), 100);
        assert_eq!(ceiling_ms(&POLICY, 2), 200);
        assert_eq!(ceiling_ms(&POLICY, 4), 800);
        assert_eq!(ceiling_ms(&POLICY, 5), 1_000);
        assert_eq!(ceiling_ms(&POLICY, u32::MAX), 1_000);
    }

    #[test]
    fn jitter_stays_between_half_and_the_ceiling_and_varies() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let delays: Vec<_> = (0..50).map(|_| delay(&POLICY, 3, &mut rng)).collect();
        assert!(delays
            .iter()
            .all(|d| (200..=400).contains(&(d.as_millis() as u64))));
        assert!(delays.iter().any(|d| *d != delays[0]), "no jitter");
    }
}
