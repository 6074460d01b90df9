//! The deployment state machine: `handle(now, input)`, then drain `poll(now)` until
//! `Output::Idle { wake_at }`.
//!
//! The driver here owns the error policy (retry with seeded backoff, resolve ambiguous
//! writes by observation, escalate to rollback — or to `Failed` when rollback itself
//! cannot go on), operator requests, and the invariant checks that run at the end of
//! every call. Phases (one file each) only decide what to do next.

mod approval;
mod bake;
mod create_green;
mod deploy;
mod drain_blue;
mod exec;
mod health_check;
mod hooks;
mod invariants;
mod knowledge;
mod metrics;
mod monitor;
mod paused;
mod phase;
mod preflight;
mod resolve;
mod retry;
mod rollback;
mod shift;
mod status;
mod test_traffic;

use serde::{Deserialize, Serialize};

pub use approval::Approval;
pub use bake::Bake;
pub use create_green::{CreateGreen, CreateStage};
pub use deploy::Deploy;
pub use drain_blue::{DrainBlue, DrainStage};
pub use exec::{Exec, IN_FLIGHT_MAX, InFlight, OUTBOX_MAX, Retry, Role};
pub use health_check::HealthCheck;
pub use hooks::HookRun;
pub use knowledge::{Knowledge, Sample, Sides};
pub use monitor::{HealthRule, Monitor, Watch};
pub use paused::Paused;
pub use phase::Phase;
pub use preflight::{Preflight, PreflightStage};
pub use retry::{poll_jitter_ms, retry_delay_ms};
pub use rollback::{Rollback, RollbackStage};
pub use shift::{Shift, ShiftStage};
pub use status::{SideView, Status};
pub use test_traffic::{TestStage, TestTraffic};

use exec::Cx;
use phase::Step;

use crate::command::{
    Command, CommandError, CommandKind, CommandResult, ErrorClass, HookVerdict, Observation,
    Observe,
};
use crate::ids::{CommandId, DeploymentId};
use crate::io::{
    Input, Notice, OperatorRequest, Output, PhaseName, Reason, ReasonKind, Refused, Transition,
};
use crate::spec::DeploymentSpec;
use crate::time::Timestamp;

fn snapshot_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if v != SNAPSHOT_VERSION {
        return Err(serde::de::Error::custom(format!(
            "deployment snapshot format {v} is not this build's format {SNAPSHOT_VERSION}: \
             finish or abort in-flight deployments with the build that started them"
        )));
    }
    Ok(v)
}

/// Most transitions kept in a deployment's history (the first is always kept).
pub const HISTORY_MAX: usize = 256;
/// Most decisions one `poll` makes before concluding the machine is looping.
const DECISIONS_PER_POLL_MAX: usize = 64;

/// The serialised form of a [`Deployment`]. Bumped whenever that form changes; a snapshot
/// of another format is refused with a clear error instead of being misread.
pub const SNAPSHOT_VERSION: u32 = 1;

/// One deployment: its spec and everything it has done and learned. Serialise it at any
/// point and deserialise it later (another process, or another build with the same
/// [`SNAPSHOT_VERSION`]): it continues exactly as it would have.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// First, so a reader meets it before anything whose shape may have changed.
    #[serde(default, deserialize_with = "snapshot_version")]
    version: u32,
    id: DeploymentId,
    spec: DeploymentSpec,
    created_at: Timestamp,
    /// The latest time handed in; time never runs backwards inside the machine.
    updated_at: Timestamp,
    phase: Phase,
    knowledge: Knowledge,
    exec: Exec,
    history: Vec<Transition>,
}

impl Deployment {
    /// A new deployment at `now`, in preflight. Nothing happens until it is polled.
    pub fn new(id: DeploymentId, spec: DeploymentSpec, now: Timestamp) -> Self {
        Deployment {
            version: SNAPSHOT_VERSION,
            id,
            spec,
            created_at: now,
            updated_at: now,
            phase: Phase::Preflight(Preflight::new()),
            knowledge: Knowledge::default(),
            exec: Exec::default(),
            history: Vec::new(),
        }
    }

    pub fn id(&self) -> &DeploymentId {
        &self.id
    }
    pub fn spec(&self) -> &DeploymentSpec {
        &self.spec
    }
    pub fn phase(&self) -> &Phase {
        &self.phase
    }
    pub fn phase_name(&self) -> PhaseName {
        self.phase.name()
    }
    pub fn is_terminal(&self) -> bool {
        self.phase.is_terminal()
    }
    pub fn knowledge(&self) -> &Knowledge {
        &self.knowledge
    }
    pub fn history(&self) -> &[Transition] {
        &self.history
    }
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    pub fn updated_at(&self) -> Timestamp {
        self.updated_at
    }
    /// Commands handed out and not yet answered.
    pub fn in_flight(&self) -> impl Iterator<Item = &Command> {
        self.exec.in_flight.iter().map(|f| &f.command)
    }
    /// Commands sent so far, retries included.
    pub fn commands_sent(&self) -> u64 {
        self.exec.commands_sent
    }
    /// Lower bound of the AWS API calls those commands made.
    pub fn aws_calls_min(&self) -> u64 {
        self.exec.aws_calls_min
    }

    /// The reason a finished deployment ended the way it did (`None` for `Completed` and
    /// while running).
    pub fn outcome_reason(&self) -> Option<&Reason> {
        match &self.phase {
            Phase::RolledBack { reason, .. }
            | Phase::Failed { reason, .. }
            | Phase::Rejected { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// Can `request` be applied now? (`Err` is what `handle` would refuse with: HTTP 409.)
    pub fn check_operator(&self, request: &OperatorRequest) -> Result<(), Refused> {
        self.phase
            .allows(request, self.updated_at)
            .map_err(|reason| Refused {
                request: request.name().to_string(),
                phase: self.phase.name(),
                reason,
            })
    }

    fn clock(&mut self, now: Timestamp) -> Timestamp {
        self.updated_at = self.updated_at.max(now);
        self.updated_at
    }

    /// Hand the machine an input. Operator requests the phase does not allow are refused
    /// (and change nothing); everything else is accepted. Drain [`Deployment::poll`] after.
    pub fn handle(&mut self, now: Timestamp, input: Input) -> Result<(), Refused> {
        let now = self.clock(now);
        let result = match input {
            Input::CommandDone { id, result } => {
                self.on_result(now, &id, result);
                Ok(())
            }
            Input::Wake => Ok(()),
            Input::Restarted => {
                self.on_restart(now);
                Ok(())
            }
            Input::Operator(request) => self.on_operator(now, request),
        };
        self.check_invariants(now);
        result
    }

    /// The next output. Call until it returns `Output::Idle`.
    pub fn poll(&mut self, now: Timestamp) -> Output {
        let now = self.clock(now);
        for _ in 0..DECISIONS_PER_POLL_MAX {
            if let Some(out) = self.exec.outbox.pop_front() {
                return out;
            }
            if self.phase.is_terminal() {
                return Output::Idle { wake_at: None };
            }
            if self.expire(now) {
                continue;
            }
            if let Some(deadline) = self.exec.in_flight.iter().map(|f| f.deadline).min() {
                return Output::Idle {
                    wake_at: Some(deadline),
                };
            }
            if self.resend_due_retries(now) {
                continue;
            }
            if let Some(at) = self.exec.retries.iter().map(|r| r.at).min() {
                return Output::Idle { wake_at: Some(at) };
            }
            if let Some(at) = self.exec.wait_until
                && now < at
            {
                return Output::Idle { wake_at: Some(at) };
            }
            self.exec.wait_until = None;
            self.decide(now);
            self.check_invariants(now);
        }
        // A phase that neither waits nor issues anything is a bug: stop loudly.
        self.fail_invariant(
            now,
            "the machine decided 64 times in one poll without waiting".into(),
        );
        self.exec
            .outbox
            .pop_front()
            .unwrap_or(Output::Idle { wake_at: None })
    }

    fn decide(&mut self, now: Timestamp) {
        let step = {
            let mut cx = Cx {
                id: &self.id,
                spec: &self.spec,
                now,
                k: &mut self.knowledge,
                exec: &mut self.exec,
            };
            self.phase.decide(&mut cx)
        };
        if let Some(violation) = self.exec.violation.take() {
            self.fail_invariant(now, violation);
            return;
        }
        match step {
            Step::Issued => {}
            Step::WaitUntil(at) => {
                debug_assert!(
                    at > now,
                    "a phase asked to wait until {at}, not after {now}"
                );
                self.exec.wait_until = Some(at.max(now.plus_ms(1)));
            }
            Step::Goto(next, why) => self.transition(now, next, why),
            Step::Rollback(reason) => self.escalate(now, reason),
        }
    }

    fn transition(&mut self, now: Timestamp, next: Phase, reason: String) {
        let from = self.phase.name();
        self.phase = next;
        let t = Transition {
            at: now,
            from,
            to: self.phase.name(),
            reason,
        };
        if self.history.len() >= HISTORY_MAX {
            self.history.remove(1);
        }
        self.history.push(t.clone());
        self.exec.notice(Notice::Transition(t));
        self.exec.wait_until = None;
        if self.phase.is_terminal() {
            self.exec.in_flight.clear();
            self.exec.retries.clear();
        }
    }

    /// Something demands a rollback (a signal, a fatal error, exhausted retries, an
    /// abort). Where rollback is impossible or already failing, the deployment ends
    /// `Rejected` (nothing changed yet) or `Failed` (with what an operator must do).
    fn escalate(&mut self, now: Timestamp, reason: Reason) {
        self.exec.retries.clear();
        self.exec.wait_until = None;
        let current = match &self.phase {
            Phase::Paused(p) => &*p.inner,
            other => other,
        };
        let next = match current {
            _ if current.is_terminal() => return,
            Phase::Preflight(_) => Phase::Rejected { at: now, reason },
            _ if self.knowledge.sides.is_none() => Phase::Rejected { at: now, reason },
            Phase::Rollback(r) => {
                let action_required = r.action_required(&self.id, &self.spec, &self.knowledge);
                Phase::Failed {
                    at: now,
                    reason: Reason::new(
                        reason.kind,
                        format!(
                            "rollback could not finish: {} (rolling back because {})",
                            reason.detail, r.reason
                        ),
                    ),
                    action_required,
                }
            }
            Phase::DrainBlue(d) if !d.is_waiting() => {
                let blue = self
                    .knowledge
                    .blue_service_name(&self.spec)
                    .unwrap_or_default()
                    .to_string();
                Phase::Failed {
                    at: now,
                    reason,
                    action_required: format!(
                        "green serves 100 % and is healthy; finish removing blue by hand \
                         (service {blue} in cluster {}: scale to 0, or delete blue's task set)",
                        self.spec.cluster
                    ),
                }
            }
            _ => Phase::Rollback(Rollback::new(reason.clone(), now)),
        };
        let why = match &next {
            Phase::Rollback(r) => r.reason.to_string(),
            Phase::Failed { reason, .. } | Phase::Rejected { reason, .. } => reason.to_string(),
            _ => unreachable!("escalation ends in rollback, failed or rejected"),
        };
        self.transition(now, next, why);
    }

    fn fail_invariant(&mut self, now: Timestamp, detail: String) {
        if self.phase.is_terminal() {
            return;
        }
        let w = self.knowledge.prod_weights;
        let next = Phase::Failed {
            at: now,
            reason: Reason::new(ReasonKind::Invariant, detail.clone()),
            action_required: format!(
                "the controller stopped itself; production weights were last blue {} % / green {} %: \
                 check listener {} and both environments by hand",
                w.blue, w.green, self.spec.listener.listener_arn
            ),
        };
        self.exec
            .outbox
            .retain(|o| !matches!(o, Output::Command(_)));
        self.transition(now, next, format!("invariant violated: {detail}"));
    }

    // ----- results and the error policy -----

    fn on_result(
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
            Err(e) => self.on_error(now, flight.command, flight.role, e),
        }
    }

    fn on_success(&mut self, now: Timestamp, flight: InFlight, result: CommandResult) {
        let kind = &flight.command.kind;
        match flight.role {
            Role::Plain => self.knowledge.absorb(&self.spec, kind, result, now),
            Role::Resolves(write) => {
                let made = resolve::applied(&write.kind, &result);
                self.knowledge.absorb(&self.spec, kind, result, now);
                match made {
                    Some(made) => self.knowledge.absorb(&self.spec, &write.kind, made, now),
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
                self.knowledge.absorb(&self.spec, kind, result, now);
                if healthy == 0 {
                    if exec::removes_blue(&self.spec, &self.knowledge, &write.kind) {
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

    fn on_error(&mut self, now: Timestamp, command: Command, role: Role, error: CommandError) {
        let write = command.kind.is_write() && role == Role::Plain;
        match error.class {
            ErrorClass::Fatal => self.give_up(now, &command, error, "failed"),
            ErrorClass::Ambiguous if write => self.resolve(now, command, error),
            ErrorClass::Retryable | ErrorClass::Ambiguous => {
                self.retry_or_escalate(now, command, role, error, false)
            }
        }
    }

    /// Send a command that did not come from a phase's decision (a retry, a re-send after
    /// resolution): it passes the same emission guards, and a write moving traffic onto
    /// green first gets a fresh look at green.
    fn send_checked(&mut self, now: Timestamp, command: Command, role: Role, prechecked: bool) {
        let command_ms = self.spec.timeouts.command_ms;
        // A write that moves traffic onto green and was out when the rollback began (its
        // answer retryable, or resolved as not applied) belongs to the abandoned phase:
        // re-sending it would roll forward before production is back on blue.
        if matches!(self.phase, Phase::Rollback(_))
            && exec::raises_green(&self.spec, &self.knowledge, &command.kind)
        {
            return;
        }
        if !prechecked
            && role == Role::Plain
            && exec::needs_fresh_look(&self.spec, &self.knowledge, &command.kind)
        {
            let since = self.exec.last_attempt_at.unwrap_or(Timestamp::EPOCH);
            let fresh = self
                .knowledge
                .green_health(&self.spec)
                .is_some_and(|s| s.at > since && s.value.healthy > 0);
            if !fresh {
                let sides = self
                    .knowledge
                    .sides
                    .as_ref()
                    .expect("sides known before any write");
                let green_tg = self.spec.target_groups[sides.green()].clone();
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
            && let Err(why) = exec::guard(&self.spec, &self.knowledge, now, &command.kind)
        {
            let detail = format!("refused to re-send {}: {why}", command.kind.name());
            self.fail_invariant(now, detail);
            return;
        }
        if exec::needs_fresh_look(&self.spec, &self.knowledge, &command.kind) {
            self.exec.last_attempt_at = Some(now);
        }
        self.exec.send(command, now, command_ms, role);
    }

    /// Observe before deciding anything else.
    fn resolve(&mut self, now: Timestamp, write: Command, error: CommandError) {
        self.exec.notice(Notice::Resolving {
            id: write.id.clone(),
            error,
        });
        let observe = Command {
            id: write.id.derived(&format!("resolve{}", write.attempt)),
            attempt: 1,
            kind: resolve::resolver(&write.kind),
        };
        let command_ms = self.spec.timeouts.command_ms;
        self.exec
            .send(observe, now, command_ms, Role::Resolves(Box::new(write)));
    }

    fn attempts_max(&self) -> u32 {
        let base = self.spec.pacing.attempts_max;
        // Rollback tries harder: giving up there leaves a human to finish the job.
        if matches!(self.phase, Phase::Rollback(_)) {
            base.saturating_mul(2)
        } else {
            base
        }
    }

    fn retry_or_escalate(
        &mut self,
        now: Timestamp,
        mut command: Command,
        role: Role,
        error: CommandError,
        immediately: bool,
    ) {
        if command.attempt >= self.attempts_max() {
            let what = format!("failed {} times", command.attempt);
            return self.give_up(now, &command, error, &what);
        }
        let delay_ms = if immediately {
            0
        } else {
            retry_delay_ms(
                &self.spec.pacing,
                self.id.seed(),
                command.id.as_str(),
                command.attempt,
            )
        };
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

    /// A command will not succeed. A hook's failure to answer is its verdict (fail); any
    /// other command's failure escalates.
    fn give_up(&mut self, now: Timestamp, command: &Command, error: CommandError, what: &str) {
        if let CommandKind::CallHook(call) = &command.kind {
            let verdict = HookVerdict::Fail {
                reason: format!("{what}: {} {}", error.code, error.message),
            };
            self.knowledge
                .absorb(&self.spec, &command.kind, CommandResult::Hook(verdict), now);
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

    fn resend_due_retries(&mut self, now: Timestamp) -> bool {
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
    fn expire(&mut self, now: Timestamp) -> bool {
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
            self.on_error(now, f.command, f.role, error);
        }
        true
    }

    /// The executor restarted: nothing in flight has an executor any more.
    fn on_restart(&mut self, now: Timestamp) {
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
                self.resolve(now, f.command, error);
            } else {
                self.exec.send(f.command, now, command_ms, f.role);
            }
        }
    }

    // ----- operators -----

    fn on_operator(&mut self, now: Timestamp, request: OperatorRequest) -> Result<(), Refused> {
        self.phase.allows(&request, now).map_err(|reason| Refused {
            request: request.name().to_string(),
            phase: self.phase.name(),
            reason,
        })?;
        self.exec.notice(Notice::Operator {
            request: request.clone(),
        });
        self.exec.wait_until = None;
        match request {
            OperatorRequest::Promote => self.phase.promote(now),
            OperatorRequest::Abort { reason } => {
                let detail = reason.unwrap_or_else(|| "aborted by an operator".to_string());
                self.escalate(now, Reason::new(ReasonKind::Aborted, detail));
            }
            OperatorRequest::Pause => {
                let inner = std::mem::replace(&mut self.phase, Phase::Completed { at: now });
                let from = inner.name();
                self.phase = Phase::Paused(Paused::new(inner, now));
                self.phase_changed(now, from, "paused by an operator".into());
            }
            OperatorRequest::Resume => {
                let Phase::Paused(p) =
                    std::mem::replace(&mut self.phase, Phase::Completed { at: now })
                else {
                    unreachable!("resume is only allowed when paused")
                };
                let mut inner = *p.inner;
                let paused_ms = now.ms_since(p.since);
                inner.extend(paused_ms);
                self.phase = inner;
                self.phase_changed(
                    now,
                    PhaseName::Paused,
                    format!(
                        "resumed after {}",
                        crate::time::format_duration_ms(paused_ms)
                    ),
                );
            }
        }
        Ok(())
    }

    fn phase_changed(&mut self, now: Timestamp, from: PhaseName, reason: String) {
        let t = Transition {
            at: now,
            from,
            to: self.phase.name(),
            reason,
        };
        if self.history.len() >= HISTORY_MAX {
            self.history.remove(1);
        }
        self.history.push(t.clone());
        self.exec.notice(Notice::Transition(t));
    }

    fn check_invariants(&mut self, now: Timestamp) {
        if let Some(violation) = invariants::violated(self) {
            self.fail_invariant(now, violation);
        }
    }
}
