//! Per-token rate limits: one token bucket per credential (the API token, the webhook
//! token). A request over its token's rate is answered 429 with `Retry-After`.
//!
//! Buckets read the monotonic clock (`Instant`): a rate is about the real passage of
//! time, unlike deployment deadlines, which live in the runner's clock.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket: `burst` requests at once, refilled at `per_minute`.
#[derive(Debug)]
pub struct RateLimit {
    label: &'static str,
    burst: f64,
    per_ms: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimit {
    /// `per_minute` and `burst` are at least 1 (the config checks it).
    pub fn new(label: &'static str, per_minute: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimit {
            label,
            burst,
            per_ms: f64::from(per_minute.max(1)) / 60_000.0,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    pub fn label(&self) -> &'static str {
        self.label
    }

    /// Whether a token is there, without taking it: `Err` says how long until one is.
    pub fn check(&self) -> Result<(), Duration> {
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Result<(), Duration> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let tokens = self.refilled(*state, now);
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(self.wait_for_one(tokens))
        }
    }

    /// Take one request's token, or say how long until one is there.
    pub fn take(&self) -> Result<(), Duration> {
        self.take_at(Instant::now())
    }

    fn take_at(&self, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let tokens = self.refilled(*state, now);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            Ok(())
        } else {
            *state = (tokens, now);
            Err(self.wait_for_one(tokens))
        }
    }

    /// The tokens a bucket last at `(tokens, last)` holds at `now` (never above the burst).
    fn refilled(&self, (tokens, last): (f64, Instant), now: Instant) -> f64 {
        let elapsed_ms = now.saturating_duration_since(last).as_secs_f64() * 1000.0;
        (tokens + elapsed_ms * self.per_ms).min(self.burst)
    }

    /// How long until a bucket holding `tokens` (< 1) holds one.
    fn wait_for_one(&self, tokens: f64) -> Duration {
        Duration::from_millis(((1.0 - tokens) / self.per_ms).ceil() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_says_when_to_retry() {
        let limit = RateLimit::new("api", 60, 2);
        let t0 = Instant::now();
        assert_eq!(limit.take_at(t0), Ok(()));
        assert_eq!(limit.take_at(t0), Ok(()));
        let wait = limit.take_at(t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1), "60 a minute: one a second");
        assert_eq!(limit.take_at(t0 + Duration::from_millis(1000)), Ok(()));
        // Refill never exceeds the burst.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(limit.take_at(later), Ok(()));
        assert_eq!(limit.take_at(later), Ok(()));
        assert!(limit.take_at(later).is_err());
    }

    #[test]
    fn checking_a_bucket_takes_nothing() {
        let limit = RateLimit::new("login", 10, 1);
        let t0 = Instant::now();
        assert_eq!(limit.check_at(t0), Ok(()));
        assert_eq!(limit.check_at(t0), Ok(()), "a check leaves the token");
        assert_eq!(limit.take_at(t0), Ok(()));
        assert_eq!(limit.check_at(t0), Err(Duration::from_secs(6)));
    }
}
