//! deploy: wait until green is steady (running == desired, nothing pending, on green's
//! task definition), with the task-failure circuit breaker armed, within the deploy timeout.

use serde::{Deserialize, Serialize};

use super::exec::Cx;
use super::health_check::HealthCheck;
use super::monitor::{Monitor, Watch};
use super::phase::{Phase, Step, tick_or_wait};
use crate::io::{Reason, ReasonKind};
use crate::spec::EnvironmentModel;
use crate::time::{Timestamp, format_duration_ms};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deploy {
    pub deadline: Timestamp,
    pub monitor: Monitor,
}

/// Green's task counts as last observed: (running, desired, pending, on green's revision).
pub(crate) fn green_counts(cx: &Cx<'_>) -> Option<(u32, u32, u32, bool)> {
    let spec = cx.spec;
    let k = &*cx.k;
    let td = k.green_task_definition.as_deref()?;
    match &spec.environment {
        EnvironmentModel::ServicePair { .. } => {
            let s = &k.services.get(cx.sides.green_service(spec))?.value;
            Some((
                s.running_count,
                s.desired_count,
                s.pending_count,
                s.task_definition == td,
            ))
        }
        EnvironmentModel::TaskSet { .. } => {
            let ts = k.green_task_set_status(spec, cx.sides, cx.id.as_str())?;
            let on_td = ts.task_definition == td && ts.stability_status == "STEADY_STATE";
            Some((
                ts.running_count,
                ts.computed_desired_count,
                ts.pending_count,
                on_td,
            ))
        }
    }
}

impl Deploy {
    pub fn new(now: Timestamp, deadline: Timestamp) -> Self {
        Deploy {
            deadline,
            monitor: Monitor::new(now),
        }
    }

    pub fn extend(&mut self, ms: u64) {
        self.deadline = self.deadline.plus_ms(ms);
        self.monitor.extend(ms);
    }

    pub(crate) fn decide(&mut self, cx: &mut Cx<'_>) -> Step {
        if let Some(verdict) = self.monitor.collect(cx, Watch::DEPLOY) {
            if let Err(reason) = verdict {
                return Step::Rollback(reason);
            }
            if let Some((running, desired, pending, on_td)) = green_counts(cx) {
                let wanted = match cx.spec.environment {
                    EnvironmentModel::ServicePair { .. } => cx.green_desired(),
                    // A task set's size is a share of the service's; ECS computes it.
                    EnvironmentModel::TaskSet { .. } => desired,
                };
                if on_td && desired == wanted && running == desired && pending == 0 {
                    return Step::Goto(
                        Phase::HealthCheck(HealthCheck::new(cx)),
                        format!("green steady: {running}/{desired} running"),
                    );
                }
            }
        }
        if cx.now >= self.deadline {
            let seen = green_counts(cx)
                .map(|(r, d, p, _)| format!("{r} of {d} running, {p} pending"))
                .unwrap_or_else(|| "green not seen yet".into());
            return Step::Rollback(Reason::new(
                ReasonKind::Timeout,
                format!(
                    "green not steady within {}: {seen}",
                    format_duration_ms(cx.spec.timeouts.deploy_ms)
                ),
            ));
        }
        tick_or_wait(
            &mut self.monitor,
            cx,
            Watch::DEPLOY,
            false,
            &[Some(self.deadline)],
        )
    }
}
