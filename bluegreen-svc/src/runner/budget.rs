//! The account's API budget as this replica spends it (DESIGN §5 "API budget"): core's
//! [`Budget`] behind a lock, on the runner's clock. Every command takes its cost before
//! it goes out — a rollback's may use the reserve — and waits, without holding a
//! command slot, until the budget says it can go: AWS sees a paced caller instead of a
//! throttled one retrying with backoff. The live replicas split the account's share
//! (each scan tells the budget how many there are).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bluegreen_core::CommandKind;
use bluegreen_core::budget::{Budget, BudgetShape, Cost, Rates, Role};

use super::Clock;

/// Waits one command may do before it goes anyway (each wait ends when the budget
/// said the tokens would be there; only other callers taking them first repeat it).
const WAITS_PER_COMMAND_MAX: u32 = 64;

pub struct SharedBudget {
    budget: Mutex<Budget>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBudget").finish_non_exhaustive()
    }
}

impl SharedBudget {
    pub fn new(shape: BudgetShape, clock: Arc<dyn Clock>) -> SharedBudget {
        SharedBudget {
            budget: Mutex::new(Budget::new(Rates::AWS, shape, clock.now())),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Budget> {
        self.budget
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `n` live replicas share the account now.
    pub fn set_replicas(&self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let now = self.clock.now();
        let mut b = self.lock();
        if b.replicas() != n.max(1) {
            b.set_replicas(now, n);
            metrics::gauge!("bluegreen_api_budget_replicas").set(f64::from(b.replicas()));
        }
    }

    /// Take what `kind` costs for `role`, waiting as long as the budget says. Returns
    /// the time waited.
    pub async fn acquire(&self, kind: &CommandKind, role: Role) -> Duration {
        let cost = Cost::of_command(kind);
        if cost.total() == 0 {
            return Duration::ZERO;
        }
        let started = self.clock.now();
        let waited = |now: bluegreen_core::Timestamp| Duration::from_millis(now.ms_since(started));
        for attempt in 0..WAITS_PER_COMMAND_MAX {
            let now = self.clock.now();
            let ready_at = match self.lock().try_take(now, cost, role) {
                Ok(()) => {
                    if attempt == 0 {
                        return Duration::ZERO;
                    }
                    let waited = waited(now).max(Duration::from_millis(1));
                    {
                        metrics::counter!("bluegreen_api_budget_waits_total", "role" => role.name())
                            .increment(1);
                        metrics::histogram!("bluegreen_api_budget_wait_seconds", "role" => role.name())
                            .record(waited.as_secs_f64());
                    }
                    return waited;
                }
                Err(at) => at,
            };
            tokio::time::sleep(self.clock.until(ready_at).max(Duration::from_millis(1))).await;
        }
        tracing::warn!(
            command = kind.name(),
            role = role.name(),
            "the API budget stayed short after {WAITS_PER_COMMAND_MAX} waits; sending anyway"
        );
        waited(self.clock.now())
    }

    /// Tokens left per bucket, for `/v1/status`-style views and tests.
    pub fn tokens(&self, bucket: bluegreen_core::budget::ApiBucket) -> u64 {
        self.lock().tokens(bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bluegreen_core::Timestamp;
    use bluegreen_core::budget::ApiBucket;

    /// A clock that jumps to whatever time a waiter asks for (no real waiting).
    struct JumpClock(Mutex<u64>);
    impl Clock for JumpClock {
        fn now(&self) -> Timestamp {
            Timestamp::from_millis(*self.0.lock().unwrap())
        }
        fn until(&self, at: Timestamp) -> Duration {
            let mut now = self.0.lock().unwrap();
            *now = (*now).max(at.as_millis());
            Duration::ZERO
        }
    }

    fn clock_ms(b: &SharedBudget) -> u64 {
        b.clock.now().as_millis()
    }

    fn tag() -> CommandKind {
        CommandKind::TagSlots {
            target_groups: ["a".into(), "b".into()],
            live_slot: 0,
            deployment: "d".into(),
            outcome: "completed".into(),
        }
    }

    #[tokio::test]
    async fn forward_commands_wait_for_the_budget_and_a_rollback_goes_through_the_reserve() {
        let clock = Arc::new(JumpClock(Mutex::new(1_000_000)));
        let budget = SharedBudget::new(BudgetShape::DEFAULT, clock);
        // ELBv2 writes: 20 × 0.8 = 16 tokens, 3.2 kept; a tag costs 2.
        let mut at_once = 0;
        while budget.acquire(&tag(), Role::Forward).await.is_zero() {
            at_once += 1;
            assert!(at_once < 20);
        }
        assert_eq!(at_once, 6, "12 tokens above the reserve: six tags at once");
        // The seventh waited for 1.2 tokens at 4/s: 0.3 s on the clock.
        assert_eq!(clock_ms(&budget), 1_000_300);
        let rollback = budget.acquire(&tag(), Role::Rollback).await;
        assert!(rollback.is_zero(), "the reserve serves a rollback at once");
        assert!(budget.tokens(ApiBucket::ElbModify) < 3);
    }
}
