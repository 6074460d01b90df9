//! Deterministic schedules: retry backoff and poll jitter, drawn from the deployment's
//! seed so the same deployment id makes the same decisions at the same virtual times.
//!
//! backon's builders are plain iterators of durations with a seedable jitter; nothing here
//! sleeps or reads a clock.

use core::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::ids::{mix64, stable_hash64_with};
use crate::spec::Pacing;

/// Delay before attempt `attempt + 1` of the command with `key`, after `attempt` failed
/// (attempt ≥ 1). Exponential from `retry_min_ms`, doubling, capped at `retry_max_ms`,
/// plus a seeded jitter of up to 100 %.
pub fn retry_delay_ms(pacing: &Pacing, seed: u64, key: &str, attempt: u32) -> u64 {
    debug_assert!(attempt >= 1);
    let stream = stable_hash64_with(key.as_bytes(), seed);
    let mut backoff = ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(pacing.retry_min_ms))
        .with_max_delay(Duration::from_millis(pacing.retry_max_ms))
        .with_factor(2.0)
        .with_jitter()
        .with_jitter_seed(stream)
        .without_max_times()
        .build();
    // Bounded: attempt <= attempts_max <= 100 (validated), doubled for rollback.
    let nth = attempt.saturating_sub(1).min(256) as usize;
    backoff
        .nth(nth)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(pacing.retry_max_ms)
}

/// Jitter added to the `n`th poll of a monitor: 0 to 10 % of the interval, so many
/// deployments started together do not poll AWS in lockstep.
pub fn poll_jitter_ms(interval_ms: u64, seed: u64, n: u64) -> u64 {
    let tenth = interval_ms / 10;
    if tenth == 0 {
        return 0;
    }
    mix64(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) % tenth
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_are_capped_and_are_deterministic() {
        let p = Pacing {
            poll_interval_ms: 10_000,
            attempts_max: 8,
            retry_min_ms: 1_000,
            retry_max_ms: 8_000,
            signal_poll_ms: None,
        };
        let ds: Vec<u64> = (1..=6).map(|a| retry_delay_ms(&p, 42, "d/x", a)).collect();
        // base 1s,2s,4s,8s,8s,8s plus jitter in [0, base)
        for (d, base) in ds.iter().zip([1_000, 2_000, 4_000, 8_000, 8_000, 8_000]) {
            assert!((base..2 * base).contains(d), "{d} vs {base}");
        }
        let again: Vec<u64> = (1..=6).map(|a| retry_delay_ms(&p, 42, "d/x", a)).collect();
        assert_eq!(ds, again);
        let other_seed: Vec<u64> = (1..=6).map(|a| retry_delay_ms(&p, 43, "d/x", a)).collect();
        assert_ne!(ds, other_seed);
    }

    #[test]
    fn poll_jitter_stays_within_a_tenth_of_the_interval() {
        for n in 0..1000 {
            assert!(poll_jitter_ms(10_000, 7, n) < 1_000);
        }
        assert_eq!(poll_jitter_ms(5, 7, 1), 0);
    }

    /// The grid a deployment polls on is a pure function of its id's seed and the tick
    /// number, the same in every build: a deployment restored from a snapshot by a newer
    /// replica keeps its schedule, and a simulated seed replays. Pinned here.
    const PINNED: [u64; 5] = [604, 533, 561, 961, 12];

    #[test]
    fn poll_jitter_is_pinned_per_seed_and_tick() {
        let got: Vec<u64> = [(7, 0), (7, 1), (7, 2), (0xdead_beef, 1), (u64::MAX, 3)]
            .iter()
            .map(|&(seed, n)| poll_jitter_ms(10_000, seed, n))
            .collect();
        assert_eq!(got, PINNED);
    }
}
