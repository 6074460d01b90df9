//! shift: move production weights blue → green step by step (all-at-once, canary,
//! linear). Before every step, green must be observed fully healthy *after* the previous
//! listener write; during every hold, the rollback signals are watched.

use super::reasons::RefusalReason;
use serde::{Deserialize, Serialize};

use super::bake::Bake;
use super::exec::Cx;
use super::hooks::{HookRun, HookStep};
use super::knowledge::forwards;
use super::monitor::{Monitor, Watch};
use super::phase::{Phase, Step, tick_or_wait};
use crate::command::{CommandKind, Weights};
use crate::io::{Reason, ReasonKind};
use crate::spec::{DeploymentSpec, HookStage, ShiftStep};
use crate::time::{Timestamp, format_duration_ms};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shift {
    pub steps: Vec<ShiftStep>,
    /// The step being guarded, applied or held.
    pub index: usize,
    pub stage: ShiftStage,
    pub monitor: Monitor,
    /// `before-shift` hooks, run before the first step.
    pub hooks: HookRun,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "stage")]
pub enum ShiftStage {
    BeforeHooks,
    /// Waiting for an observation of green, newer than `since`, with every target healthy.
    Guarding {
        since: Timestamp,
    },
    /// The listener write is out.
    Applying,
    Holding {
        until: Timestamp,
    },
}

impl Shift {
    pub(crate) fn new(spec: &DeploymentSpec, now: Timestamp) -> Self {
        Shift {
            steps: spec.strategy.steps(),
            index: 0,
            stage: ShiftStage::BeforeHooks,
            monitor: Monitor::new(now),
            hooks: HookRun::new(HookStage::BeforeShift, now),
        }
    }

    pub fn extend(&mut self, ms: u64) {
        self.monitor.extend(ms);
        self.hooks.extend(ms);
        match &mut self.stage {
            ShiftStage::Guarding { since } => *since = since.plus_ms(ms),
            ShiftStage::Holding { until } => *until = until.plus_ms(ms),
            _ => {}
        }
    }

    pub(crate) fn can_promote(&self, now: Timestamp) -> Result<(), RefusalReason> {
        match self.stage {
            ShiftStage::Holding { until } if until > now => Ok(()),
            _ => Err(RefusalReason::NoShiftHold),
        }
    }

    pub(crate) fn end_hold(&mut self, now: Timestamp) {
        if let ShiftStage::Holding { until } = &mut self.stage {
            *until = now;
        }
    }

    fn guard(&mut self, now: Timestamp) {
        self.stage = ShiftStage::Guarding { since: now };
        // A fresh observation at once: the guard needs one newer than `since`.
        if !self.monitor.observing {
            self.monitor.next_tick_at = now;
        }
    }

    pub(crate) fn decide(&mut self, cx: &mut Cx<'_>) -> Step {
        let watch = if cx.k.prod_weights.green > 0 {
            Watch::SHIFT
        } else {
            Watch::READY
        };
        if let Some(Err(reason)) = self.monitor.collect(cx, watch) {
            return Step::Rollback(reason);
        }
        match self.stage {
            ShiftStage::BeforeHooks => match self.hooks.step(cx) {
                HookStep::Done => {
                    self.guard(cx.now);
                    self.decide_guard(cx, watch)
                }
                HookStep::Failed(reason) => Step::Rollback(reason),
                HookStep::Called => tick_or_wait(&mut self.monitor, cx, watch, true, &[]),
                HookStep::WaitUntil(at) => {
                    tick_or_wait(&mut self.monitor, cx, watch, false, &[Some(at)])
                }
            },
            ShiftStage::Guarding { .. } => self.decide_guard(cx, watch),
            ShiftStage::Applying => {
                let step = self.steps[self.index];
                if step.green_percent == 100 {
                    return Step::Goto(Phase::Bake(Bake::new(cx.now)), "green serves 100 %".into());
                }
                let until = cx.now.plus_ms(step.hold_ms);
                self.stage = ShiftStage::Holding { until };
                // Observe the effect of the new weights at once.
                self.monitor.next_tick_at = cx.now;
                tick_or_wait(&mut self.monitor, cx, Watch::SHIFT, false, &[Some(until)])
            }
            ShiftStage::Holding { until } => {
                if cx.now >= until {
                    self.index += 1;
                    debug_assert!(self.index < self.steps.len(), "the last step has no hold");
                    self.guard(cx.now);
                    return self.decide_guard(cx, watch);
                }
                tick_or_wait(&mut self.monitor, cx, watch, false, &[Some(until)])
            }
        }
    }

    fn decide_guard(&mut self, cx: &mut Cx<'_>, watch: Watch) -> Step {
        let ShiftStage::Guarding { since } = self.stage else {
            return Step::Broken(format!("shift guard in stage {:?}", self.stage));
        };
        let desired = cx.green_desired();
        let fresh =
            cx.k.green_health(cx.spec, cx.sides)
                .filter(|s| s.at >= since && !self.monitor.observing)
                .map(|s| s.value.clone());
        if let Some(h) = &fresh
            && h.healthy >= desired
            && h.unhealthy == 0
        {
            let step = self.steps[self.index];
            let listener = cx.spec.listener.clone();
            let weights = forwards(
                cx.blue_tg(),
                cx.green_tg(),
                Weights::green(step.green_percent),
            );
            cx.issue(
                &format!("shift-{}", self.index),
                CommandKind::SetListenerWeights { listener, weights },
            );
            self.stage = ShiftStage::Applying;
            return Step::Issued;
        }
        let stalled_ms = cx.now.ms_since(since);
        if stalled_ms >= cx.spec.timeouts.health_ms {
            let seen = fresh
                .map(|h| {
                    let mut seen = format!(
                        "{} of {desired} healthy, {} unhealthy",
                        h.healthy, h.unhealthy
                    );
                    // ELBv2's reasons, when it gave any: what the operator needs at 3 a.m.
                    if !h.reasons.is_empty() {
                        seen.push_str(&format!("; targets: {}", h.summary()));
                    }
                    seen
                })
                .unwrap_or_else(|| "no observation".into());
            return Step::Rollback(Reason::new(
                ReasonKind::Unhealthy,
                format!(
                    "green not fully healthy for {} before shift step {} ({seen})",
                    format_duration_ms(stalled_ms),
                    self.index + 1
                ),
            ));
        }
        let deadline = since.plus_ms(cx.spec.timeouts.health_ms);
        tick_or_wait(&mut self.monitor, cx, watch, false, &[Some(deadline)])
    }
}
