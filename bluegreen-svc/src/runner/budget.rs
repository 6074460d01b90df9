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
use tokio::sync::Notify;

use super::Clock;

/// Waits one command may do before it goes anyway (each wait ends when the budget
/// said the tokens would be there; only other callers taking them first repeat it).
const WAITS_PER_COMMAND_MAX: u32 = 64;
/// Times a waiting command may be woken with an earlier one still ahead of it before it
/// stops keeping its place (the caller's hold limit ends the wait long before this).
const TURNS_PER_COMMAND_MAX: u32 = 4_096;
/// Longest a command behind another sleeps without being woken (a safety net: whoever
/// leaves the line wakes the others).
const BEHIND_SLEEP_MS_MAX: u64 = 250;

/// The budget and the forward commands waiting for it, in arrival order.
struct State {
    budget: Budget,
    line: Vec<(u64, Cost)>,
    next_ticket: u64,
}

pub struct SharedBudget {
    state: Mutex<State>,
    /// Woken whenever tokens are taken or a waiter leaves the line.
    moved: Notify,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBudget").finish_non_exhaustive()
    }
}

/// A forward command's place in line; leaving it (served, or given up by the caller's
/// hold limit dropping the wait) lets the next one try.
struct Place<'a> {
    budget: &'a SharedBudget,
    ticket: u64,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.budget
            .lock()
            .line
            .retain(|(ticket, _)| *ticket != self.ticket);
        self.budget.moved.notify_waiters();
    }
}

impl SharedBudget {
    pub fn new(shape: BudgetShape, clock: Arc<dyn Clock>) -> SharedBudget {
        SharedBudget {
            state: Mutex::new(State {
                budget: Budget::new(Rates::AWS, shape, clock.now()),
                line: Vec::new(),
                next_ticket: 0,
            }),
            moved: Notify::new(),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `n` live replicas share the account now.
    pub fn set_replicas(&self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let now = self.clock.now();
        let mut st = self.lock();
        if st.budget.replicas() != n.max(1) {
            st.budget.set_replicas(now, n);
            metrics::gauge!("bluegreen_api_budget_replicas").set(f64::from(st.budget.replicas()));
        }
    }

    /// Take what `kind` costs for `role`, waiting as long as the budget says. Returns
    /// the time waited.
    ///
    /// Forward commands are served in arrival order per bucket: one that has to wait
    /// takes a place in line, and a later one that takes from any of the same buckets
    /// waits behind it, so a large cost (a preflight's) is not starved by a stream of
    /// small ones (the monitors' polls), each of which would fit at once. A rollback's
    /// command never waits in line: it goes first, and may use the reserve.
    pub async fn acquire(&self, kind: &CommandKind, role: Role) -> Duration {
        let cost = Cost::of_command(kind);
        if cost.total() == 0 {
            return Duration::ZERO;
        }
        let started = self.clock.now();
        let waited = |now: bluegreen_core::Timestamp| Duration::from_millis(now.ms_since(started));
        let mut place: Option<Place<'_>> = None;
        let (mut waits, mut turns) = (0u32, 0u32);
        while waits < WAITS_PER_COMMAND_MAX {
            // Made before looking, so a wake between the look and the sleep is not lost.
            let moved = self.moved.notified();
            let now = self.clock.now();
            let step = {
                let mut st = self.lock();
                let mine = place.as_ref().map(|p| p.ticket);
                let behind = role == Role::Forward
                    && turns < TURNS_PER_COMMAND_MAX
                    && st
                        .line
                        .iter()
                        .take_while(|(ticket, _)| Some(*ticket) != mine)
                        .any(|(_, earlier)| earlier.shares_bucket_with(&cost));
                if behind {
                    None
                } else {
                    Some(st.budget.try_take(now, cost, role))
                }
            };
            match step {
                Some(Ok(())) => {
                    let served_at_once = waits == 0 && turns == 0 && place.is_none();
                    // Leaving the line wakes those behind (`Place::drop`); taking tokens
                    // alone unblocks nobody.
                    drop(place.take());
                    if served_at_once {
                        return Duration::ZERO;
                    }
                    let waited = waited(now).max(Duration::from_millis(1));
                    metrics::counter!("bluegreen_api_budget_waits_total", "role" => role.name())
                        .increment(1);
                    metrics::histogram!("bluegreen_api_budget_wait_seconds", "role" => role.name())
                        .record(waited.as_secs_f64());
                    return waited;
                }
                Some(Err(ready_at)) => {
                    waits += 1;
                    if role == Role::Forward && place.is_none() {
                        place = Some(self.take_place(cost));
                    }
                    let sleep = self.clock.until(ready_at).max(Duration::from_millis(1));
                    tokio::select! {
                        () = tokio::time::sleep(sleep) => {}
                        () = moved => {}
                    }
                }
                None => {
                    turns += 1;
                    if place.is_none() {
                        place = Some(self.take_place(cost));
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(BEHIND_SLEEP_MS_MAX)) => {}
                        () = moved => {}
                    }
                }
            }
        }
        tracing::warn!(
            command = kind.name(),
            role = role.name(),
            "the API budget stayed short after {WAITS_PER_COMMAND_MAX} waits; sending anyway"
        );
        waited(self.clock.now())
    }

    fn take_place(&self, cost: Cost) -> Place<'_> {
        let mut st = self.lock();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.line.push((ticket, cost));
        Place {
            budget: self,
            ticket,
        }
    }

    /// Tokens left per bucket, for `/v1/status`-style views and tests.
    pub fn tokens(&self, bucket: bluegreen_core::budget::ApiBucket) -> u64 {
        self.lock().budget.tokens(bucket)
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

    fn health() -> CommandKind {
        CommandKind::Observe(bluegreen_core::command::Observe::TargetHealth {
            target_group: "tg".into(),
        })
    }

    fn preflight() -> CommandKind {
        CommandKind::Preflight(Box::new(bluegreen_core::command::Preflight {
            cluster: "c".into(),
            mode: bluegreen_core::Mode::ServicePair,
            services: vec!["a".into(), "b".into()],
            target_groups: ["ta".into(), "tb".into()],
            listener: bluegreen_core::ListenerRef {
                listener_arn: "l".into(),
                rule_arn: None,
            },
            test_listener: None,
            container: "app".into(),
        }))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_waiting_preflight_keeps_its_place_against_later_polls_of_its_bucket() {
        let clock = Arc::new(JumpClock(Mutex::new(1_000_000)));
        let budget = Arc::new(SharedBudget::new(BudgetShape::DEFAULT, clock));
        // Polls of ELBv2 until one has to wait: the bucket is then empty.
        let mut polls = 0;
        while budget.acquire(&health(), Role::Forward).await.is_zero() {
            polls += 1;
            assert!(polls < 200, "the ELBv2 describe bucket never ran dry");
        }
        let served = Arc::new(Mutex::new(Vec::new()));
        let (b, log) = (budget.clone(), served.clone());
        let large = tokio::spawn(async move {
            b.acquire(&preflight(), Role::Forward).await;
            log.lock().unwrap().push("preflight");
        });
        // The preflight asks first and has to wait (4 ELBv2 tokens, none left).
        tokio::task::yield_now().await;
        assert!(served.lock().unwrap().is_empty());
        // A poll arriving now would fit the moment a token is back; it waits its turn.
        budget.acquire(&health(), Role::Forward).await;
        served.lock().unwrap().push("poll");
        large.await.unwrap();
        assert_eq!(*served.lock().unwrap(), ["preflight", "poll"]);
        // A rollback's read does not queue behind forward waiters.
        let waited = budget.acquire(&health(), Role::Rollback).await;
        assert!(waited.is_zero(), "the reserve serves a rollback at once");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_waiter_that_gives_up_leaves_the_line() {
        let clock = Arc::new(JumpClock(Mutex::new(1_000_000)));
        let budget = SharedBudget::new(BudgetShape::DEFAULT, clock);
        while budget.acquire(&health(), Role::Forward).await.is_zero() {}
        // The caller's hold limit drops the wait: its place must not block the line.
        let gave_up =
            tokio::time::timeout(Duration::ZERO, budget.acquire(&preflight(), Role::Forward)).await;
        assert!(gave_up.is_err());
        assert!(budget.lock().line.is_empty());
        budget.acquire(&health(), Role::Forward).await;
    }
}
