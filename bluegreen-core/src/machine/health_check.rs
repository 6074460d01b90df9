//! health-check: every green target healthy for K consecutive observations, then the
//! `green-ready` hooks.

use serde::{Deserialize, Serialize};

use super::exec::Cx;
use super::hooks::{HookRun, HookStep};
use super::monitor::{Monitor, Watch};
use super::phase::{Step, after_health, tick_or_wait};
use crate::io::{Reason, ReasonKind};
use crate::spec::HookStage;
use crate::time::{Timestamp, format_duration_ms};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub deadline: Timestamp,
    pub monitor: Monitor,
    pub consecutive_healthy: u32,
    /// Set once K consecutive healthy observations were seen.
    pub hooks: Option<HookRun>,
}

impl HealthCheck {
    pub(crate) fn new(cx: &Cx<'_>) -> Self {
        HealthCheck {
            deadline: cx.now.plus_ms(cx.spec.timeouts.health_ms),
            monitor: Monitor::new(cx.now),
            consecutive_healthy: 0,
            hooks: None,
        }
    }

    pub fn extend(&mut self, ms: u64) {
        self.deadline = self.deadline.plus_ms(ms);
        self.monitor.extend(ms);
        if let Some(h) = &mut self.hooks {
            h.extend(ms);
        }
    }

    /// Is green healthy in the latest observation? (The guard, without its reason:
    /// asked at every observation, and the reason is only wanted at the deadline.)
    fn is_healthy_now(cx: &Cx<'_>) -> bool {
        let desired = cx.green_desired();
        cx.k.green_health(cx.spec, cx.sides)
            .is_some_and(|s| s.value.healthy >= desired && s.value.unhealthy == 0)
    }

    /// The latest observation of green's health, for the reason a health check gives up
    /// with: "2 of 3 targets healthy (1 unhealthy, 0 initial)" and ELBv2's reasons. Said
    /// also when the last look was healthy (the streak was still too short).
    fn latest_health(cx: &Cx<'_>) -> String {
        let desired = cx.green_desired();
        match cx.k.green_health(cx.spec, cx.sides) {
            None => "green's target group not observed yet".into(),
            Some(s) => {
                let mut why = format!(
                    "{} of {desired} targets healthy ({} unhealthy, {} initial)",
                    s.value.healthy, s.value.unhealthy, s.value.initial
                );
                // ELBv2's own reasons (e.g. "Health checks failed with these codes:
                // [502]") say what to fix, not only that something is wrong.
                for r in &s.value.reasons {
                    why.push_str(&format!("; {}× {}", r.targets, r.reason));
                    if let Some(d) = &r.description {
                        why.push_str(&format!(": {d}"));
                    }
                }
                why
            }
        }
    }

    pub(crate) fn decide(&mut self, cx: &mut Cx<'_>) -> Step {
        let watch = if self.hooks.is_some() {
            Watch::READY
        } else {
            Watch::HEALTH_CHECK
        };
        if let Some(verdict) = self.monitor.collect(cx, watch) {
            if let Err(reason) = verdict {
                return Step::Rollback(reason);
            }
            if self.hooks.is_none() {
                if Self::is_healthy_now(cx) {
                    self.consecutive_healthy += 1;
                } else {
                    self.consecutive_healthy = 0;
                }
                if self.consecutive_healthy >= cx.spec.health.healthy_observations_min {
                    cx.k.green_healthy_at = Some(cx.now);
                    self.hooks = Some(HookRun::new(HookStage::GreenReady, cx.now));
                }
            }
        }
        let Some(hooks) = &mut self.hooks else {
            if cx.now >= self.deadline {
                let why = Self::latest_health(cx);
                return Step::Rollback(Reason::new(
                    ReasonKind::Unhealthy,
                    format!(
                        "green not healthy for {} consecutive observations within {}: {why}",
                        cx.spec.health.healthy_observations_min,
                        format_duration_ms(cx.spec.timeouts.health_ms)
                    ),
                ));
            }
            return tick_or_wait(&mut self.monitor, cx, watch, false, &[Some(self.deadline)]);
        };
        match hooks.step(cx) {
            HookStep::Done => {
                let next = after_health(cx);
                let why = format!(
                    "green healthy for {} consecutive observations",
                    self.consecutive_healthy
                );
                Step::Goto(next, why)
            }
            HookStep::Failed(reason) => Step::Rollback(reason),
            HookStep::Called => tick_or_wait(&mut self.monitor, cx, Watch::READY, true, &[]),
            HookStep::WaitUntil(at) => {
                tick_or_wait(&mut self.monitor, cx, Watch::READY, false, &[Some(at)])
            }
        }
    }
}
