//! The runner's clock: the one place in the service that reads the time.
//!
//! The machine is handed a [`Timestamp`] once per turn; everything else (the simulated
//! world's clock, deployment ids) asks the runner's clock rather than the system, so a
//! test or a demo can run the whole service on a faster clock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bluegreen_core::Timestamp;

/// A source of time for the runner.
pub trait Clock: Send + Sync + 'static {
    /// The current time, in milliseconds since the Unix epoch.
    fn now(&self) -> Timestamp;
    /// How long to sleep on the wall clock until `at` on this clock (zero if it passed).
    fn until(&self, at: Timestamp) -> Duration;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Timestamp::from_millis(ms)
    }

    fn until(&self, at: Timestamp) -> Duration {
        Duration::from_millis(at.ms_since(self.now()))
    }
}

/// A clock that runs `speed` times faster than the wall clock from a starting time: the
/// simulated world and the machine both see time fly, sleeps shrink by the same factor.
/// For demos and tests (`[cloud] speed` on the simulated cloud only).
#[derive(Clone, Debug)]
pub struct ScaledClock {
    origin: Instant,
    origin_ts: Timestamp,
    speed: u32,
}

/// Fastest supported speed-up (beyond it, sleeps round to nothing and turns busy-wait).
pub const SPEED_MAX: u32 = 1_000;

impl ScaledClock {
    pub fn new(origin_ts: Timestamp, speed: u32) -> Self {
        assert!(
            (1..=SPEED_MAX).contains(&speed),
            "speed {speed} out of 1..={SPEED_MAX}"
        );
        ScaledClock {
            origin: Instant::now(),
            origin_ts,
            speed,
        }
    }

    /// Starting now on the wall clock.
    pub fn starting_now(speed: u32) -> Self {
        Self::new(SystemClock.now(), speed)
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Timestamp {
        let wall_ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.origin_ts
            .plus_ms(wall_ms.saturating_mul(u64::from(self.speed)))
    }

    fn until(&self, at: Timestamp) -> Duration {
        let virtual_ms = at.ms_since(self.now());
        // Round up so a sleep never ends before `at` on this clock.
        Duration::from_millis(virtual_ms.div_ceil(u64::from(self.speed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_clock_runs_faster_and_shrinks_sleeps() {
        let c = ScaledClock::new(Timestamp::from_millis(1_000_000), 100);
        let t = c.now();
        assert!(t >= Timestamp::from_millis(1_000_000));
        let sleep = c.until(t.plus_ms(10_000));
        assert!(sleep <= Duration::from_millis(100), "{sleep:?}");
        assert_eq!(c.until(Timestamp::EPOCH), Duration::ZERO);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > Timestamp::from_millis(1_577_836_800_000));
    }
}
