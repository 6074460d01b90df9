//! The deployment state machine: `handle(now, input)`, then drain `poll(now)` until
//! `Output::Idle { wake_at }`.
//!
//! The driver here owns the error policy (retry with seeded backoff, resolve ambiguous
//! writes by observation, escalate to rollback — or to `Failed` when rollback itself
//! cannot go on), operator requests, and the invariant checks that run at the end of
//! every call. Phases (one file each) only decide what to do next.

mod alarm_event;
mod approval;
mod bake;
mod create_green;
mod deploy;
mod drain_blue;
mod error_policy;
mod exec;
mod external;
mod health_check;
mod hooks;
mod invariants;
mod knowledge;
mod metrics;
mod monitor;
mod operator;
mod paused;
mod phase;
mod policy;
mod preflight;
mod reasons;
mod resolve;
mod retry;
mod rollback;
mod shift;
mod status;
mod test_traffic;

use serde::{Deserialize, Serialize};

pub use alarm_event::{AlarmVerdict, IgnoredAlarm};
pub use approval::Approval;
pub use bake::Bake;
pub use create_green::{CreateGreen, CreateStage};
pub use deploy::Deploy;
pub use drain_blue::{DrainBlue, DrainStage};
pub use error_policy::{
    ErrorAction, Escalation, Failure, Purpose, attempts_max, escalation, on_failure,
};
pub use exec::{Exec, IN_FLIGHT_MAX, InFlight, OUTBOX_MAX, Retry, Role};
pub use health_check::HealthCheck;
pub use hooks::HookRun;
pub use knowledge::{Knowledge, Sample, Sides};
pub use monitor::{HealthRule, Monitor, Watch};
pub use paused::Paused;
pub use phase::Phase;
pub use preflight::{Preflight, PreflightStage};
pub use reasons::{GuardRefusal, RefusalReason};
pub use retry::{poll_jitter_ms, retry_delay_ms};
pub use rollback::{Rollback, RollbackStage};
pub use shift::{Shift, ShiftStage};
pub use status::{SideView, Status};
pub use test_traffic::{TestStage, TestTraffic};

use exec::{Cx, PreflightCx};
use phase::Step;

use crate::command::Command;
use crate::ids::DeploymentId;
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
///
/// 2: the sides preflight read moved from `knowledge.sides` to the deployment's own
/// `sides`, beside the phase (every phase after preflight decides with them in hand).
pub const SNAPSHOT_VERSION: u32 = 2;

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
    /// Which side is live, as preflight read it; `None` only before that (and in a
    /// deployment rejected by preflight).
    sides: Option<Sides>,
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
            sides: None,
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
    /// Which side is live, once preflight has read it.
    pub fn sides(&self) -> Option<&Sides> {
        self.sides.as_ref()
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
        self.exec.in_flight.iter().map(|f| &*f.command)
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
                reason: reason.to_string(),
            })
    }

    pub(super) fn clock(&mut self, now: Timestamp) -> Timestamp {
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
            Input::Alarm(event) => {
                self.on_alarm_event(now, event);
                Ok(())
            }
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

    pub(super) fn decide(&mut self, now: Timestamp) {
        let step = match (&mut self.phase, &mut self.sides) {
            (Phase::Preflight(p), found) => p.decide(&mut PreflightCx {
                id: &self.id,
                spec: &self.spec,
                now,
                k: &mut self.knowledge,
                exec: &mut self.exec,
                found,
            }),
            (Phase::Paused(p), None) => p.decide_before_sides(&self.spec, now),
            (phase, Some(sides)) => phase.decide(&mut Cx {
                id: &self.id,
                spec: &self.spec,
                now,
                k: &mut self.knowledge,
                exec: &mut self.exec,
                sides,
            }),
            (phase, None) => Step::Broken(format!(
                "{} decided before preflight read which side is live",
                phase.name()
            )),
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
                    "{} asked to wait until {at}, not after {now}",
                    self.phase.name()
                );
                self.exec.wait_until = Some(at.max(now.plus_ms(1)));
            }
            Step::Goto(next, why) => self.transition(now, next, why),
            Step::Rollback(reason) => self.escalate(now, reason),
            Step::Broken(detail) => self.fail_invariant(now, detail),
        }
    }

    pub(super) fn transition(&mut self, now: Timestamp, next: Phase, reason: String) {
        let from = self.phase.name();
        self.phase = next;
        self.record_transition(now, from, reason);
        self.exec.wait_until = None;
        if self.phase.is_terminal() {
            self.exec.in_flight.clear();
            self.exec.retries.clear();
        }
    }

    /// History (bounded, the first entry kept) and a notice for a change to the current phase.
    pub(super) fn record_transition(&mut self, now: Timestamp, from: PhaseName, reason: String) {
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

    /// Something demands a rollback (a signal, a fatal error, exhausted retries, an
    /// abort). Where rollback is impossible or already failing, the deployment ends
    /// `Rejected` (nothing changed yet) or `Failed` (with what an operator must do).
    pub(super) fn escalate(&mut self, now: Timestamp, reason: Reason) {
        self.exec.retries.clear();
        self.exec.wait_until = None;
        let current = match &self.phase {
            Phase::Paused(p) => &*p.inner,
            other => other,
        };
        let removing_blue = matches!(current, Phase::DrainBlue(d) if !d.is_waiting());
        let (next, why) = match (
            error_policy::escalation(current.name(), self.sides.is_some(), removing_blue),
            current,
        ) {
            (Escalation::Stay, _) => return,
            (Escalation::Reject, _) => {
                let why = reason.to_string();
                (Phase::Rejected { at: now, reason }, why)
            }
            (Escalation::FailRollback, Phase::Rollback(r)) => {
                let action_required = r.action_required(&self.id, &self.spec, self.sides.as_ref());
                let reason = Reason::new(
                    reason.kind,
                    format!(
                        "rollback could not finish: {} (rolling back because {})",
                        reason.detail, r.reason
                    ),
                );
                let why = reason.to_string();
                let failed = Phase::Failed {
                    at: now,
                    reason,
                    action_required,
                };
                (failed, why)
            }
            (Escalation::FailDrain, _) => {
                let blue = self
                    .sides
                    .as_ref()
                    .map(|s| s.blue_service(&self.spec).to_string())
                    .unwrap_or_default();
                let why = reason.to_string();
                let failed = Phase::Failed {
                    at: now,
                    reason,
                    action_required: format!(
                        "green serves 100 % and is healthy; finish removing blue by hand \
                         (service {blue} in cluster {}: scale to 0, or delete blue's task set)",
                        self.spec.cluster
                    ),
                };
                (failed, why)
            }
            // `FailRollback` only ever answers for a rollback phase (matched above).
            (Escalation::RollBack | Escalation::FailRollback, _) => {
                let why = reason.to_string();
                (Phase::Rollback(Rollback::new(reason, now)), why)
            }
        };
        self.transition(now, next, why);
    }

    pub(super) fn fail_invariant(&mut self, now: Timestamp, detail: String) {
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

    fn check_invariants(&mut self, now: Timestamp) {
        if let Some(violation) = invariants::violated(self) {
            self.fail_invariant(now, violation);
        }
    }
}
