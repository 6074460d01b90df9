//! paused: an operator stopped forward progress. Rollback signals are still watched (a
//! pause never hides an alarm); deadlines of the paused phase are pushed back by the time
//! spent paused on resume. A pause is bounded by the approval timeout (both wait for a
//! human): past it, the deployment rolls back.

use serde::{Deserialize, Serialize};

use super::exec::Cx;
use super::monitor::Monitor;
use super::phase::{Phase, Step, tick_or_wait};
use crate::io::{Reason, ReasonKind};
use crate::spec::DeploymentSpec;
use crate::time::{Timestamp, format_duration_ms};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Paused {
    pub since: Timestamp,
    pub inner: Box<Phase>,
    pub monitor: Monitor,
}

impl Paused {
    pub fn new(inner: Phase, now: Timestamp) -> Self {
        Paused {
            since: now,
            inner: Box::new(inner),
            monitor: Monitor::new(now),
        }
    }

    /// Paused during preflight: nothing exists to watch yet; only the pause's bound runs.
    pub(crate) fn decide_before_sides(&self, spec: &DeploymentSpec, now: Timestamp) -> Step {
        let limit = self.since.plus_ms(spec.timeouts.approval_ms);
        if now >= limit {
            return Step::Rollback(too_long(spec));
        }
        Step::WaitUntil(limit)
    }

    pub(crate) fn decide(&mut self, cx: &mut Cx<'_>) -> Step {
        let limit = self.since.plus_ms(cx.spec.timeouts.approval_ms);
        let watch = self.inner.watch(cx);
        if let Some(watch) = watch
            && let Some(Err(reason)) = self.monitor.collect(cx, watch)
        {
            return Step::Rollback(reason);
        }
        if cx.now >= limit {
            return Step::Rollback(too_long(cx.spec));
        }
        match watch {
            Some(watch) => tick_or_wait(&mut self.monitor, cx, watch, false, &[Some(limit)]),
            None => Step::WaitUntil(limit),
        }
    }
}

fn too_long(spec: &DeploymentSpec) -> Reason {
    Reason::new(
        ReasonKind::Timeout,
        format!(
            "paused for longer than {} without resume",
            format_duration_ms(spec.timeouts.approval_ms)
        ),
    )
}
