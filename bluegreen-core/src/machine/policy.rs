//! Applying the error policy: what the driver does with each command result.
//!
//! The decision itself is a pure value ([`super::error_policy`]): Retryable → the same
//! command again after a seeded backoff, bounded by the attempt limit (doubled in rollback
//! and drain-blue); Ambiguous writes → an observation that resolves them before anything
//! else is decided; Fatal → escalation. Here it is carried out. Re-sends of a write that
//! moves traffic onto green first take a fresh look at green. Commands past their deadline
//! are lost; after a restart, nothing in flight has an executor.

use std::sync::Arc;

use super::error_policy::{self, ErrorAction, Failure};
use super::exec::{self, InFlight, Retry, Role};
use super::phase::Phase;
use super::{Deployment, resolve};
use crate::command::{
    Command, CommandError, CommandKind, CommandResult, ErrorClass, HookVerdict, Observation,
    Observe,
};
use crate::ids::CommandId;
use crate::io::{Notice, Output, Reason, ReasonKind};
use crate::time::Timestamp;

impl Deployment {
    pub(super) fn on_result(
        &mut self,
        now: Timestamp,
        id: &CommandId,
        result: Result<CommandResult, CommandError>,
    ) {
        let Some(flight) = self.exec.take_in_flight(id) else {
            return; // a duplicate, or an answer to a command already given up on
        };
        if self.phase.is_terminal() {
            return;
        }
        let checked = result
            .and_then(|r| resolve::validate(&self.spec, &flight.command.kind, &r).map(|()| r));
        match checked {
            Ok(r) => self.on_success(now, flight, r),
            Err(e) => self.on_error(now, Arc::unwrap_or_clone(flight.command), flight.role, e),
        }
    }

    pub(super) fn on_success(&mut self, now: Timestamp, flight: InFlight, result: CommandResult) {
        let kind = &flight.command.kind;
        match flight.role {
            Role::Plain => {
                self.knowledge
                    .absorb(&self.spec, self.sides.as_ref(), kind, result, now)
            }
            Role::Resolves(write) => {
                let made = resolve::applied(&write.kind, &result);
                self.knowledge
                    .absorb(&self.spec, self.sides.as_ref(), kind, result, now);
                match made {
                    Some(made) => self.knowledge.absorb(
                        &self.spec,
                        self.sides.as_ref(),
                        &write.kind,
                        made,
                        now,
                    ),
                    None => {
                        // Not applied: send it again (same id, so the same idempotency token).
                        let error =
                            CommandError::retryable("NotApplied", "the write had not taken effect");
                        self.retry_or_escalate(now, *write, Role::Plain, error, true);
                    }
                }
            }
            Role::Prechecks(write) => {
                let healthy = match &result {
                    CommandResult::Observed(Observation::TargetHealth(h)) => h.healthy,
                    _ => 0,
                };
                self.knowledge
                    .absorb(&self.spec, self.sides.as_ref(), kind, result, now);
                if healthy == 0 {
                    if exec::removes_blue(&self.spec, self.sides.as_ref(), &write.kind) {
                        // The removal was not applied (that is why it is re-sent): blue is
                        // whole, so back to the drain wait, from where a rollback is plain.
                        if let Phase::DrainBlue(d) = &mut self.phase {
                            d.rewind(now);
                        }
                        self.knowledge.blue_removal_at = None;
                    }
                    let reason = Reason::new(
                        ReasonKind::Unhealthy,
                        format!(
                            "green has no healthy targets; not retrying {} ({})",
                            write.kind.name(),
                            write.id
                        ),
                    );
                    self.escalate(now, reason);
                } else {
                    self.send_checked(now, *write, Role::Plain, true);
                }
            }
        }
    }

    pub(super) fn on_error(
        &mut self,
        now: Timestamp,
        command: Command,
        role: Role,
        error: CommandError,
    ) {
        let failure = Failure {
            class: error.class,
            attempt: command.attempt,
            purpose: role.purpose(),
            write: command.kind.is_write(),
            phase: self.phase.name(),
        };
        let action = error_policy::on_failure(
            failure,
            &self.spec.pacing,
            self.id.seed(),
            command.id.as_str(),
            false,
        );
        self.apply(now, command, role, error, action);
    }

    /// Carry out the policy's decision on a failed command.
    fn apply(
        &mut self,
        now: Timestamp,
        mut command: Command,
        role: Role,
        error: CommandError,
        action: ErrorAction,
    ) {
        match action {
            ErrorAction::Fail => self.give_up(now, &command, error, "failed"),
            ErrorAction::Exhausted { attempts } => {
                self.give_up(now, &command, error, &format!("failed {attempts} times"))
            }
            ErrorAction::Resolve => self.resolve(now, command, error),
            ErrorAction::Retry { delay_ms } => {
                command.attempt += 1;
                let at = now.plus_ms(delay_ms);
                self.exec.notice(Notice::Retrying {
                    id: command.id.clone(),
                    attempt: command.attempt,
                    at,
                    error,
                });
                self.exec.schedule(Retry { command, at, role });
            }
        }
    }

    /// Send a command that did not come from a phase's decision (a retry, a re-send after
    /// resolution): it passes the same emission guards, and a write moving traffic onto
    /// green first gets a fresh look at green.
    pub(super) fn send_checked(
        &mut self,
        now: Timestamp,
        command: Command,
        role: Role,
        prechecked: bool,
    ) {
        let command_ms = self.spec.timeouts.command_ms;
        // A write that moves traffic onto green and was out when the rollback began (its
        // answer retryable, or resolved as not applied) belongs to the abandoned phase:
        // re-sending it would roll forward before production is back on blue.
        if matches!(self.phase, Phase::Rollback(_) | Phase::DrainBlue(_))
            && exec::raises_green(&self.spec, self.sides.as_ref(), &command.kind)
        {
            return;
        }
        // Only writes touching green or blue need the look, and those exist only once the
        // sides are known.
        if !prechecked
            && role == Role::Plain
            && let Some(sides) = &self.sides
            && exec::needs_fresh_look(&self.spec, Some(sides), &command.kind)
        {
            let since = self.exec.last_attempt_at.unwrap_or(Timestamp::EPOCH);
            let fresh = self
                .knowledge
                .green_health(&self.spec, sides)
                .is_some_and(|s| s.at > since && s.value.healthy > 0);
            if !fresh {
                let green_tg = sides.green_tg(&self.spec).clone();
                let check = Command {
                    id: command.id.derived(&format!("health{}", command.attempt)),
                    attempt: 1,
                    kind: CommandKind::Observe(Observe::TargetHealth {
                        target_group: green_tg,
                    }),
                };
                self.exec
                    .send(check, now, command_ms, Role::Prechecks(Box::new(command)));
                return;
            }
        }
        if command.kind.is_write()
            && let Err(why) = exec::guard(
                &self.spec,
                &self.knowledge,
                self.sides.as_ref(),
                now,
                &command.kind,
            )
        {
            let detail = format!("refused to re-send {}: {why}", command.kind.name());
            self.fail_invariant(now, detail);
            return;
        }
        if exec::needs_fresh_look(&self.spec, self.sides.as_ref(), &command.kind) {
            self.exec.last_attempt_at = Some(now);
        }
        self.exec.send(command, now, command_ms, role);
    }

    /// Observe before deciding anything else.
    pub(super) fn resolve(&mut self, now: Timestamp, write: Command, error: CommandError) {
        let Some(kind) = resolve::resolver(&write.kind) else {
            // A read has nothing to resolve (the policy never asks): it is retried.
            return self.retry_or_escalate(now, write, Role::Plain, error, false);
        };
        self.exec.notice(Notice::Resolving {
            id: write.id.clone(),
            error,
        });
        let observe = Command {
            id: write.id.derived(&format!("resolve{}", write.attempt)),
            attempt: 1,
            kind,
        };
        let command_ms = self.spec.timeouts.command_ms;
        self.exec
            .send(observe, now, command_ms, Role::Resolves(Box::new(write)));
    }

    pub(super) fn retry_or_escalate(
        &mut self,
        now: Timestamp,
        command: Command,
        role: Role,
        error: CommandError,
        immediately: bool,
    ) {
        let action = error_policy::retry(
            command.attempt,
            self.phase.name(),
            &self.spec.pacing,
            self.id.seed(),
            command.id.as_str(),
            immediately,
        );
        self.apply(now, command, role, error, action);
    }

    /// A command will not succeed. A hook's failure to answer is its verdict (fail); any
    /// other command's failure escalates.
    pub(super) fn give_up(
        &mut self,
        now: Timestamp,
        command: &Command,
        error: CommandError,
        what: &str,
    ) {
        if let CommandKind::CallHook(call) = &command.kind {
            let verdict = HookVerdict::Fail {
                reason: format!("{what}: {} {}", error.code, error.message),
            };
            self.knowledge.absorb(
                &self.spec,
                self.sides.as_ref(),
                &command.kind,
                CommandResult::Hook(verdict),
                now,
            );
            debug_assert!(!call.name.is_empty());
            return;
        }
        let kind = if error.class == ErrorClass::Fatal {
            ReasonKind::CommandFailed
        } else {
            ReasonKind::RetriesExhausted
        };
        let reason = Reason::new(
            kind,
            format!(
                "{} {what}: {} {}",
                command.kind.name(),
                error.code,
                error.message
            ),
        );
        self.escalate(now, reason);
    }

    pub(super) fn resend_due_retries(&mut self, now: Timestamp) -> bool {
        if !self.exec.retries.iter().any(|r| r.at <= now) {
            return false;
        }
        let (due, later): (Vec<Retry>, Vec<Retry>) = std::mem::take(&mut self.exec.retries)
            .into_iter()
            .partition(|r| r.at <= now);
        self.exec.retries = later;
        for r in due {
            self.send_checked(now, r.command, r.role, false);
        }
        true
    }

    /// Commands past their deadline are lost: writes become ambiguous, reads retryable.
    pub(super) fn expire(&mut self, now: Timestamp) -> bool {
        if !self.exec.in_flight.iter().any(|f| f.deadline <= now) {
            return false;
        }
        let (overdue, alive): (Vec<InFlight>, Vec<InFlight>) =
            std::mem::take(&mut self.exec.in_flight)
                .into_iter()
                .partition(|f| f.deadline <= now);
        self.exec.in_flight = alive;
        for f in overdue {
            let error = CommandError::ambiguous(
                "Timeout",
                format!("no answer within {} ms", self.spec.timeouts.command_ms),
            );
            self.on_error(now, Arc::unwrap_or_clone(f.command), f.role, error);
        }
        true
    }

    /// The executor restarted: nothing in flight has an executor any more.
    pub(super) fn on_restart(&mut self, now: Timestamp) {
        // Commands not yet drained are in `in_flight` too; they are re-sent below.
        self.exec
            .outbox
            .retain(|o| !matches!(o, Output::Command(_)));
        let lost: Vec<InFlight> = std::mem::take(&mut self.exec.in_flight);
        let command_ms = self.spec.timeouts.command_ms;
        for f in lost {
            if f.command.kind.is_write() && f.role == Role::Plain {
                let error = CommandError::ambiguous(
                    "Restarted",
                    "the executor restarted while this write was out",
                );
                self.resolve(now, Arc::unwrap_or_clone(f.command), error);
            } else {
                self.exec.send_shared(f.command, now, command_ms, f.role);
            }
        }
    }
}
