//! The one `Phase` enum: every variant carries its own data, no bundle of flags.

use serde::{Deserialize, Serialize};

use super::approval::Approval;
use super::bake::Bake;
use super::create_green::CreateGreen;
use super::deploy::Deploy;
use super::drain_blue::DrainBlue;
use super::exec::Cx;
use super::health_check::HealthCheck;
use super::monitor::{Monitor, Watch};
use super::paused::Paused;
use super::preflight::Preflight;
use super::reasons::RefusalReason;
use super::rollback::Rollback;
use super::shift::Shift;
use super::test_traffic::TestTraffic;
use crate::io::{OperatorRequest, PhaseName, Reason};
use crate::time::Timestamp;

/// Where a deployment is. Terminal variants: `Completed`, `RolledBack`, `Failed`,
/// `Rejected`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum Phase {
    Preflight(Preflight),
    CreateGreen(CreateGreen),
    Deploy(Deploy),
    HealthCheck(HealthCheck),
    TestTraffic(TestTraffic),
    Approval(Approval),
    Shift(Shift),
    Bake(Bake),
    DrainBlue(DrainBlue),
    Paused(Paused),
    Rollback(Rollback),
    /// Green serves 100 %, blue holds no tasks.
    Completed {
        at: Timestamp,
    },
    /// Blue serves 100 %, green holds no tasks.
    RolledBack {
        at: Timestamp,
        reason: Reason,
    },
    /// Even rollback could not finish: `action_required` says what an operator must do.
    Failed {
        at: Timestamp,
        reason: Reason,
        action_required: String,
    },
    /// Refused to start; nothing was changed.
    Rejected {
        at: Timestamp,
        reason: Reason,
    },
}

/// What a phase decided.
pub(crate) enum Step {
    /// Commands were issued; decide again when they are all answered.
    Issued,
    /// Nothing to do before this time (or an earlier answer / operator request).
    WaitUntil(Timestamp),
    /// Move on.
    Goto(Phase, String),
    Rollback(Reason),
    /// The machine found itself in a state its own rules rule out: it stops, through the
    /// invariant path (never a panic).
    Broken(String),
}

impl Phase {
    pub fn name(&self) -> PhaseName {
        match self {
            Phase::Preflight(_) => PhaseName::Preflight,
            Phase::CreateGreen(_) => PhaseName::CreateGreen,
            Phase::Deploy(_) => PhaseName::Deploy,
            Phase::HealthCheck(_) => PhaseName::HealthCheck,
            Phase::TestTraffic(_) => PhaseName::TestTraffic,
            Phase::Approval(_) => PhaseName::Approval,
            Phase::Shift(_) => PhaseName::Shift,
            Phase::Bake(_) => PhaseName::Bake,
            Phase::DrainBlue(_) => PhaseName::DrainBlue,
            Phase::Paused(_) => PhaseName::Paused,
            Phase::Rollback(_) => PhaseName::Rollback,
            Phase::Completed { .. } => PhaseName::Completed,
            Phase::RolledBack { .. } => PhaseName::RolledBack,
            Phase::Failed { .. } => PhaseName::Failed,
            Phase::Rejected { .. } => PhaseName::Rejected,
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.name().is_terminal()
    }

    /// Decide, in a phase after preflight (preflight decides with its own context).
    pub(crate) fn decide(&mut self, cx: &mut Cx<'_>) -> Step {
        match self {
            Phase::Preflight(_) => {
                Step::Broken("preflight asked to decide with sides already known".into())
            }
            Phase::CreateGreen(p) => p.decide(cx),
            Phase::Deploy(p) => p.decide(cx),
            Phase::HealthCheck(p) => p.decide(cx),
            Phase::TestTraffic(p) => p.decide(cx),
            Phase::Approval(p) => p.decide(cx),
            Phase::Shift(p) => p.decide(cx),
            Phase::Bake(p) => p.decide(cx),
            Phase::DrainBlue(p) => p.decide(cx),
            Phase::Paused(p) => p.decide(cx),
            Phase::Rollback(p) => p.decide(cx),
            Phase::Completed { .. }
            | Phase::RolledBack { .. }
            | Phase::Failed { .. }
            | Phase::Rejected { .. } => Step::Broken(format!(
                "the finished phase {} asked to decide",
                self.name()
            )),
        }
    }

    /// What this phase watches while paused (None: nothing exists to watch yet).
    pub(crate) fn watch(&self, cx: &Cx<'_>) -> Option<Watch> {
        match self {
            Phase::Deploy(_) => Some(Watch::DEPLOY),
            Phase::HealthCheck(_) => Some(Watch::HEALTH_CHECK),
            Phase::TestTraffic(_) | Phase::Approval(_) => Some(Watch::READY),
            Phase::Shift(_) if cx.k.prod_weights.green == 0 => Some(Watch::READY),
            Phase::Shift(_) => Some(Watch::SHIFT),
            Phase::Bake(_) | Phase::DrainBlue(_) => Some(Watch::LIVE),
            _ => None,
        }
    }

    /// Push every deadline and wait of the phase `ms` later (resume after a pause: a
    /// paused deployment must not time out, or cut its bake short, because of the pause).
    pub(crate) fn extend(&mut self, ms: u64) {
        match self {
            Phase::CreateGreen(p) => p.deadline = p.deadline.plus_ms(ms),
            Phase::Deploy(p) => p.extend(ms),
            Phase::HealthCheck(p) => p.extend(ms),
            Phase::TestTraffic(p) => p.extend(ms),
            Phase::Approval(p) => p.extend(ms),
            Phase::Shift(p) => p.extend(ms),
            Phase::Bake(p) => p.extend(ms),
            Phase::DrainBlue(p) => p.extend(ms),
            _ => {}
        }
    }

    /// Guard for operator requests: `Err(reason)` when this phase does not allow it.
    pub(crate) fn allows(
        &self,
        request: &OperatorRequest,
        now: Timestamp,
    ) -> Result<(), RefusalReason> {
        use OperatorRequest as R;
        use RefusalReason as No;
        if self.is_terminal() {
            return Err(No::Over);
        }
        match (request, self) {
            (R::Resume, Phase::Paused(_)) => Ok(()),
            (R::Resume, _) => Err(No::NotPaused),
            (_, Phase::Rollback(_)) => Err(No::AlreadyRollingBack),
            (R::Pause, Phase::Paused(_)) => Err(No::AlreadyPaused),
            (R::Pause, Phase::DrainBlue(d)) if !d.is_waiting() => Err(No::BlueBeingRemoved),
            (R::Pause, _) => Ok(()),
            (R::Abort { .. }, Phase::Paused(p)) => p.inner.allows(request, now),
            (R::Abort { .. }, Phase::DrainBlue(d)) if !d.is_waiting() => Err(No::TooLateToAbort),
            (R::Abort { .. }, _) => Ok(()),
            (R::Promote, Phase::Approval(_)) => Ok(()),
            (R::Promote, Phase::TestTraffic(p)) => p.can_promote(now),
            (R::Promote, Phase::Shift(p)) => p.can_promote(now),
            (R::Promote, Phase::Bake(p)) => p.can_promote(now),
            (R::Promote, Phase::Paused(_)) => Err(No::PausedResumeFirst),
            (R::Promote, _) => Err(No::NothingToPromote),
        }
    }

    /// Apply an allowed promote.
    pub(crate) fn promote(&mut self, now: Timestamp) {
        match self {
            Phase::Approval(p) => p.promoted_at = Some(now),
            Phase::TestTraffic(p) => p.hold_until = Some(now),
            Phase::Shift(p) => p.end_hold(now),
            Phase::Bake(p) => p.until = Some(now),
            _ => debug_assert!(false, "promote applied to a phase that does not allow it"),
        }
    }
}

/// After health-check: test traffic if configured, else approval if configured, else shift.
pub(crate) fn after_health(cx: &Cx<'_>) -> Phase {
    if cx.spec.test_listener.is_some() {
        Phase::TestTraffic(TestTraffic::new(cx.now))
    } else {
        after_test(cx)
    }
}

/// After test traffic: approval if configured, else shift.
pub(crate) fn after_test(cx: &Cx<'_>) -> Phase {
    match cx.spec.approval_timeout_ms {
        Some(timeout_ms) => Phase::Approval(Approval::new(cx.now, timeout_ms)),
        None => Phase::Shift(Shift::new(cx.spec, cx.now)),
    }
}

/// The common tail of a waiting phase's decision: issue a monitor batch when due; else
/// wait for the earliest of the monitor and `wake`.
pub(crate) fn tick_or_wait(
    monitor: &mut Monitor,
    cx: &mut Cx<'_>,
    watch: Watch,
    issued: bool,
    wake: &[Option<Timestamp>],
) -> Step {
    if monitor.due(cx.now) {
        monitor.tick(cx, watch);
        return Step::Issued;
    }
    if issued {
        return Step::Issued;
    }
    let at = wake
        .iter()
        .flatten()
        .copied()
        .fold(monitor.next_tick_at, Timestamp::min);
    Step::WaitUntil(at)
}
