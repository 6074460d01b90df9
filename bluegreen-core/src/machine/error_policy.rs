//! The error policy as a value: what to do with a failed command, decided from the
//! error's class, the attempt, why the command was sent and the phase — nothing else.
//!
//! The driver ([`super::policy`]) applies the [`ErrorAction`] this returns; keeping the
//! decision pure lets a test table it row by row (`tests` below), and lets a reader see
//! the whole policy in one match.
//!
//! | class | write sent for its own sake | else |
//! |---|---|---|
//! | Fatal | give up ([`ErrorAction::Fail`]) | give up |
//! | Ambiguous | observe first ([`ErrorAction::Resolve`]) | retry |
//! | Retryable | retry | retry |
//! | Throttled | retry, [`throttled_attempts_max`]: 4× the attempts (16× in preflight) | same |
//!
//! A retry past the attempt limit gives up ([`ErrorAction::Exhausted`]). The limit is the
//! spec's `attempts_max`, doubled in rollback and drain-blue: neither has a safer way out
//! (drain-blue cannot go back once green serves everything and baked), so giving up there
//! leaves a human to finish the job. What giving up means for the deployment (roll back,
//! fail, reject) is [`escalation`]'s answer.

use serde::{Deserialize, Serialize};

use super::retry_delay_ms;
use crate::command::ErrorClass;
use crate::io::PhaseName;
use crate::spec::Pacing;

/// Why the failed command was sent (the data-free shape of [`super::Role`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purpose {
    /// For its own sake.
    Plain,
    /// An observation resolving an ambiguous write.
    Resolves,
    /// A fresh look at green before re-sending a write that moves traffic onto it.
    Prechecks,
}

/// One failed command, as the policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    pub class: ErrorClass,
    /// The attempt that failed (1 for the first send).
    pub attempt: u32,
    pub purpose: Purpose,
    /// Does the command change the world?
    pub write: bool,
    /// The phase the deployment is in (for a paused deployment: `Paused`).
    pub phase: PhaseName,
}

/// What to do with a failed command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorAction {
    /// Send it again, `delay_ms` from now, as attempt `attempt + 1`.
    Retry { delay_ms: u64 },
    /// Observe whether the write took effect before deciding anything else.
    Resolve,
    /// It cannot succeed: give up now.
    Fail,
    /// It kept failing: give up after this many attempts.
    Exhausted { attempts: u32 },
}

/// A throttled command gets this many times the phase's attempts: the account being
/// busy (many deployments, other callers) says nothing about this deployment, and the
/// backoff between attempts already spreads them out.
pub const THROTTLED_ATTEMPTS_FACTOR: u32 = 4;
/// In preflight nothing has changed yet: a deployment throttled there is waiting its
/// turn in a busy account (queued, in effect), not failing — a longer leash still.
pub const THROTTLED_PREFLIGHT_FACTOR: u32 = 16;

/// Attempts a throttled command gets in `phase`.
pub fn throttled_attempts_max(pacing: &Pacing, phase: PhaseName) -> u32 {
    let factor = match phase {
        PhaseName::Preflight => THROTTLED_PREFLIGHT_FACTOR,
        _ => THROTTLED_ATTEMPTS_FACTOR,
    };
    attempts_max(pacing, phase).saturating_mul(factor)
}

/// Attempts allowed for one command in `phase`.
pub fn attempts_max(pacing: &Pacing, phase: PhaseName) -> u32 {
    match phase {
        PhaseName::Rollback | PhaseName::DrainBlue => pacing.attempts_max.saturating_mul(2),
        _ => pacing.attempts_max,
    }
}

/// The error policy. `seed` and `key` (the command id) draw the retry's jitter;
/// `immediately` retries without backoff (a write found not applied by observation: the
/// observation itself was the wait).
pub fn on_failure(
    f: Failure,
    pacing: &Pacing,
    seed: u64,
    key: &str,
    immediately: bool,
) -> ErrorAction {
    let own_write = f.write && f.purpose == Purpose::Plain;
    match f.class {
        ErrorClass::Fatal => return ErrorAction::Fail,
        ErrorClass::Ambiguous if own_write => return ErrorAction::Resolve,
        ErrorClass::Throttled => {
            // Counted against the longer leash: attempt n of a throttled command is
            // worth 1/FACTOR of an attempt of a failing one.
            let limit = throttled_attempts_max(pacing, f.phase);
            if f.attempt >= limit {
                return ErrorAction::Exhausted {
                    attempts: f.attempt,
                };
            }
            let delay_ms = if immediately {
                0
            } else {
                retry_delay_ms(pacing, seed, key, f.attempt)
            };
            return ErrorAction::Retry { delay_ms };
        }
        ErrorClass::Retryable | ErrorClass::Ambiguous => {}
    }
    retry(f.attempt, f.phase, pacing, seed, key, immediately)
}

/// A retry of attempt `attempt`, or `Exhausted` past the phase's limit.
pub fn retry(
    attempt: u32,
    phase: PhaseName,
    pacing: &Pacing,
    seed: u64,
    key: &str,
    immediately: bool,
) -> ErrorAction {
    if attempt >= attempts_max(pacing, phase) {
        return ErrorAction::Exhausted { attempts: attempt };
    }
    let delay_ms = if immediately {
        0
    } else {
        retry_delay_ms(pacing, seed, key, attempt)
    };
    ErrorAction::Retry { delay_ms }
}

/// Where a deployment goes when something demands a rollback (a signal, a fatal error,
/// exhausted retries, an abort).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escalation {
    /// Already over: nothing changes.
    Stay,
    /// Nothing was changed yet (preflight, or sides never read): refuse to start.
    Reject,
    /// Roll back to blue.
    RollBack,
    /// Rollback itself cannot go on: stop, and say what an operator must do.
    FailRollback,
    /// Blue is being removed and green serves everything: going back is not possible;
    /// stop, and say what an operator must do.
    FailDrain,
}

/// Where escalation leads from `phase` (for a paused deployment, the phase it paused in).
/// `sides_known`: preflight has read which side is live. `removing_blue`: drain-blue has
/// finished waiting and is taking blue away.
pub fn escalation(phase: PhaseName, sides_known: bool, removing_blue: bool) -> Escalation {
    match phase {
        _ if phase.is_terminal() => Escalation::Stay,
        PhaseName::Preflight => Escalation::Reject,
        _ if !sides_known => Escalation::Reject,
        PhaseName::Rollback => Escalation::FailRollback,
        PhaseName::DrainBlue if removing_blue => Escalation::FailDrain,
        _ => Escalation::RollBack,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorAction::*;
    use ErrorClass::*;
    use PhaseName as P;
    use Purpose::*;

    const PACING: Pacing = Pacing {
        poll_interval_ms: 10_000,
        attempts_max: 4,
        retry_min_ms: 1_000,
        retry_max_ms: 8_000,
        signal_poll_ms: None,
    };

    fn act(
        class: ErrorClass,
        attempt: u32,
        purpose: Purpose,
        write: bool,
        phase: P,
    ) -> ErrorAction {
        let f = Failure {
            class,
            attempt,
            purpose,
            write,
            phase,
        };
        // A fixed delay stands for "retry" in the table; the delays are checked apart.
        match on_failure(f, &PACING, 7, "d/step", false) {
            Retry { .. } => Retry { delay_ms: 0 },
            other => other,
        }
    }

    const R: ErrorAction = Retry { delay_ms: 0 };

    /// (class, attempt, purpose, write, phase) → action: the whole policy, row by row.
    #[test]
    fn the_error_policy_table() {
        let rows: &[(ErrorClass, u32, Purpose, bool, P, ErrorAction)] = &[
            // Fatal gives up at once, whatever else holds.
            (Fatal, 1, Plain, true, P::Shift, Fail),
            (Fatal, 1, Plain, false, P::Deploy, Fail),
            (Fatal, 1, Resolves, false, P::Rollback, Fail),
            (Fatal, 1, Prechecks, false, P::DrainBlue, Fail),
            (Fatal, 3, Plain, true, P::Preflight, Fail),
            // Ambiguous: a write sent for its own sake is resolved by observation first...
            (Ambiguous, 1, Plain, true, P::CreateGreen, Resolve),
            (Ambiguous, 4, Plain, true, P::Shift, Resolve),
            (Ambiguous, 9, Plain, true, P::Rollback, Resolve),
            // ...a read, or an observation sent on a write's behalf, is retried.
            (Ambiguous, 1, Plain, false, P::Deploy, R),
            (Ambiguous, 1, Resolves, false, P::Shift, R),
            (Ambiguous, 1, Prechecks, false, P::Shift, R),
            (
                Ambiguous,
                4,
                Resolves,
                false,
                P::Shift,
                Exhausted { attempts: 4 },
            ),
            // Retryable retries below the limit...
            (Retryable, 1, Plain, true, P::Shift, R),
            (Retryable, 3, Plain, false, P::HealthCheck, R),
            (Retryable, 3, Resolves, false, P::Bake, R),
            // ...and gives up at it (attempts_max = 4)...
            (
                Retryable,
                4,
                Plain,
                true,
                P::Shift,
                Exhausted { attempts: 4 },
            ),
            (
                Retryable,
                4,
                Plain,
                false,
                P::Preflight,
                Exhausted { attempts: 4 },
            ),
            (
                Retryable,
                5,
                Plain,
                false,
                P::Deploy,
                Exhausted { attempts: 5 },
            ),
            (
                Retryable,
                4,
                Plain,
                true,
                P::Paused,
                Exhausted { attempts: 4 },
            ),
            // ...which rollback and drain-blue double.
            (Retryable, 4, Plain, true, P::Rollback, R),
            // Throttled: a busy account, not a broken deployment — four times the leash.
            (Throttled, 4, Plain, true, P::Preflight, R),
            (Throttled, 63, Plain, false, P::Preflight, R),
            (
                Throttled,
                64,
                Plain,
                false,
                P::Preflight,
                Exhausted { attempts: 64 },
            ),
            (Throttled, 8, Plain, false, P::HealthCheck, R),
            (Throttled, 15, Plain, true, P::Shift, R),
            (
                Throttled,
                16,
                Plain,
                true,
                P::Shift,
                Exhausted { attempts: 16 },
            ),
            (Throttled, 31, Plain, true, P::Rollback, R),
            (
                Throttled,
                32,
                Resolves,
                false,
                P::Rollback,
                Exhausted { attempts: 32 },
            ),
            (Retryable, 7, Plain, true, P::DrainBlue, R),
            (
                Retryable,
                8,
                Plain,
                true,
                P::Rollback,
                Exhausted { attempts: 8 },
            ),
            (
                Retryable,
                8,
                Plain,
                true,
                P::DrainBlue,
                Exhausted { attempts: 8 },
            ),
        ];
        for &(class, attempt, purpose, write, phase, want) in rows {
            assert_eq!(
                act(class, attempt, purpose, write, phase),
                want,
                "{class:?} attempt {attempt} {purpose:?} write={write} in {phase}"
            );
        }
    }

    #[test]
    fn retries_wait_the_seeded_backoff_unless_asked_to_go_at_once() {
        let f = Failure {
            class: Retryable,
            attempt: 2,
            purpose: Plain,
            write: true,
            phase: P::Shift,
        };
        let want = retry_delay_ms(&PACING, 7, "d/step", 2);
        assert!(want >= 2_000, "backoff grows from retry_min_ms: {want}");
        assert_eq!(
            on_failure(f, &PACING, 7, "d/step", false),
            Retry { delay_ms: want }
        );
        assert_eq!(
            on_failure(f, &PACING, 7, "d/step", true),
            Retry { delay_ms: 0 }
        );
        assert_eq!(
            retry(4, P::Shift, &PACING, 7, "d/step", true),
            Exhausted { attempts: 4 },
            "going at once does not lift the limit"
        );
    }

    #[test]
    fn attempt_limits_double_only_where_there_is_no_safer_way_out() {
        for phase in PhaseName::ALL {
            let want = match phase {
                P::Rollback | P::DrainBlue => 8,
                _ => 4,
            };
            assert_eq!(attempts_max(&PACING, phase), want, "{phase}");
        }
        let huge = Pacing {
            attempts_max: u32::MAX,
            ..PACING
        };
        assert_eq!(attempts_max(&huge, P::Rollback), u32::MAX, "saturates");
    }

    /// (phase, sides known, removing blue) → where escalation leads.
    #[test]
    fn the_escalation_table() {
        use Escalation::*;
        let rows: &[(P, bool, bool, Escalation)] = &[
            (P::Completed, true, false, Stay),
            (P::RolledBack, true, false, Stay),
            (P::Failed, false, false, Stay),
            (P::Rejected, false, false, Stay),
            (P::Preflight, false, false, Reject),
            (P::Preflight, true, false, Reject),
            (P::CreateGreen, false, false, Reject),
            (P::CreateGreen, true, false, RollBack),
            (P::Deploy, true, false, RollBack),
            (P::HealthCheck, true, false, RollBack),
            (P::TestTraffic, true, false, RollBack),
            (P::Approval, true, false, RollBack),
            (P::Shift, true, false, RollBack),
            (P::Bake, true, false, RollBack),
            (P::DrainBlue, true, false, RollBack),
            (P::DrainBlue, true, true, FailDrain),
            (P::Shift, true, true, RollBack),
            (P::Rollback, true, false, FailRollback),
            (P::Rollback, false, false, Reject),
        ];
        for &(phase, sides, removing, want) in rows {
            assert_eq!(
                escalation(phase, sides, removing),
                want,
                "{phase} sides={sides} removing={removing}"
            );
        }
    }
}
