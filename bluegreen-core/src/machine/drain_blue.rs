//! drain-blue: hold the drain time (in-flight requests to blue finish; signals still
//! watched, abort still rolls back), then remove blue — service pair: scale blue's
//! service to zero (the slot stays for the next deployment); task set: make green primary
//! and delete blue's task set — and wait until blue holds no tasks.

use serde::{Deserialize, Serialize};

use super::exec::Cx;
use super::monitor::{Monitor, Watch};
use super::phase::{Phase, Step, tick_or_wait};
use crate::command::{CommandKind, Observe};
use crate::ids::CommandId;
use crate::io::{Reason, ReasonKind};
use crate::spec::EnvironmentModel;
use crate::time::{Timestamp, format_duration_ms};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainBlue {
    pub stage: DrainStage,
    pub monitor: Monitor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "stage")]
pub enum DrainStage {
    Waiting {
        until: Timestamp,
    },
    /// Task-set model: the primary swap is out.
    Promoting,
    /// The scale-down (or task-set delete) is out.
    Removing,
    Verifying {
        deadline: Timestamp,
    },
}

impl DrainBlue {
    pub(crate) fn new(cx: &Cx<'_>) -> Self {
        DrainBlue {
            stage: DrainStage::Waiting {
                until: cx.now.plus_ms(cx.spec.drain_ms),
            },
            monitor: Monitor::new(cx.now),
        }
    }

    /// Blue is still whole and a rollback still instant: the drain wait, and (task sets)
    /// the primary swap — blue's task set stands until it is deleted.
    pub fn is_waiting(&self) -> bool {
        matches!(
            self.stage,
            DrainStage::Waiting { .. } | DrainStage::Promoting
        )
    }

    /// Back to the end of the drain wait: blue's removal was not applied after all (its
    /// re-send found green dark), so blue is whole again as far as anyone knows.
    pub(crate) fn rewind(&mut self, now: Timestamp) {
        self.stage = DrainStage::Waiting { until: now };
    }

    pub fn extend(&mut self, ms: u64) {
        self.monitor.extend(ms);
        match &mut self.stage {
            DrainStage::Waiting { until } => *until = until.plus_ms(ms),
            DrainStage::Verifying { deadline } => *deadline = deadline.plus_ms(ms),
            _ => {}
        }
    }

    pub(crate) fn decide(&mut self, cx: &mut Cx<'_>) -> Step {
        let spec = cx.spec;
        match self.stage {
            DrainStage::Waiting { until } => {
                if let Some(Err(reason)) = self.monitor.collect(cx, Watch::LIVE) {
                    return Step::Rollback(reason);
                }
                if cx.now < until {
                    return tick_or_wait(&mut self.monitor, cx, Watch::LIVE, false, &[Some(until)]);
                }
                // Blue is about to lose its capacity for good: look at green once more
                // first. The last look may be a poll interval old, and a green that went
                // dark since must be rolled back from while blue is still whole.
                if !looked_just_now(cx) {
                    return self.look(cx);
                }
                match &spec.environment {
                    EnvironmentModel::ServicePair { services } => {
                        cx.k.blue_removal_at = Some(cx.now);
                        cx.issue(
                            "scale-down-blue",
                            CommandKind::ScaleEnvironment {
                                cluster: spec.cluster.clone(),
                                service: services[cx.sides.blue].clone(),
                                desired_count: 0,
                            },
                        );
                        self.stage = DrainStage::Removing;
                    }
                    EnvironmentModel::TaskSet { service } => {
                        let green = cx.k.green_task_set.clone();
                        let Some(green) = green else {
                            return Step::Rollback(Reason::new(
                                ReasonKind::Invariant,
                                "green's task set ARN is unknown at drain time",
                            ));
                        };
                        cx.issue(
                            "primary-green",
                            CommandKind::SetPrimaryTaskSet {
                                cluster: spec.cluster.clone(),
                                service: service.clone(),
                                task_set: green,
                            },
                        );
                        self.stage = DrainStage::Promoting;
                        // A fresh monitor: it looks at green once the swap is answered.
                        self.monitor = Monitor::new(cx.now);
                    }
                }
                Step::Issued
            }
            DrainStage::Promoting => {
                let (EnvironmentModel::TaskSet { service }, Some(blue)) =
                    (&spec.environment, &cx.sides.blue_task_set)
                else {
                    return Step::Broken(
                        "drain-blue promoting a task set without blue's task set".into(),
                    );
                };
                if let Some(Err(reason)) = self.monitor.collect(cx, Watch::LIVE) {
                    return Step::Rollback(reason);
                }
                // The swap took at least a round trip since the last look: look at green
                // again before deleting blue's task set.
                if !looked_just_now(cx) {
                    return self.look(cx);
                }
                cx.k.blue_removal_at = Some(cx.now);
                cx.issue(
                    "remove-blue",
                    CommandKind::DeleteEnvironment {
                        cluster: spec.cluster.clone(),
                        service: service.clone(),
                        task_set: blue.clone(),
                    },
                );
                self.stage = DrainStage::Removing;
                Step::Issued
            }
            DrainStage::Removing => {
                let deadline = cx.now.plus_ms(spec.timeouts.scale_down_ms);
                self.stage = DrainStage::Verifying { deadline };
                self.monitor = Monitor::new(cx.now);
                self.verify(cx, deadline)
            }
            DrainStage::Verifying { deadline } => self.verify(cx, deadline),
        }
    }

    /// One observation of green's targets, alone: nothing else in flight may hold up
    /// the decision its answer allows. The monitor judges it like any batch.
    fn look(&mut self, cx: &mut Cx<'_>) -> Step {
        let n = self.monitor.begin(cx);
        let target_group = cx.green_tg().clone();
        cx.issue(
            &format!("look-green-{n}"),
            CommandKind::Observe(Observe::TargetHealth { target_group }),
        );
        Step::Issued
    }

    fn verify(&mut self, cx: &mut Cx<'_>, deadline: Timestamp) -> Step {
        let blue_service = cx.blue_service().clone();
        if self.monitor.observing {
            self.monitor.observing = false;
            match blue_left(cx, &blue_service) {
                None => {
                    return Step::Goto(
                        Phase::Completed { at: cx.now },
                        "blue holds no tasks".into(),
                    );
                }
                Some(left) if cx.now >= deadline => {
                    return Step::Goto(
                        Phase::Failed {
                            at: cx.now,
                            reason: Reason::new(
                                ReasonKind::Timeout,
                                format!(
                                    "blue still holds {left} {} after scale-down",
                                    format_duration_ms(cx.spec.timeouts.scale_down_ms)
                                ),
                            ),
                            action_required: format!(
                                "green serves 100 % and is healthy; stop blue's remaining tasks by hand \
                                 (service {blue_service} in cluster {})",
                                cx.spec.cluster
                            ),
                        },
                        "blue did not empty in time".into(),
                    );
                }
                Some(_) => {}
            }
        }
        // At the deadline: one last look now, judged above when it is back.
        if self.monitor.due_by(cx.now, deadline) {
            let n = self.monitor.begin(cx);
            cx.issue_as(
                CommandId::numbered(cx.id, "verify-blue-", n, ""),
                CommandKind::Observe(Observe::Service {
                    cluster: cx.spec.cluster.clone(),
                    service: blue_service,
                    failures: None,
                    also: None,
                }),
            );
            return Step::Issued;
        }
        Step::WaitUntil(self.monitor.next_tick_at.min(deadline))
    }
}

/// Was green's health answered in this very turn? Blue's removal may only follow such a
/// look: one answered earlier (the last tick's, or one whose batch then waited on a
/// sibling's retry, or on a restart) can be seconds old.
fn looked_just_now(cx: &Cx<'_>) -> bool {
    cx.k.green_health(cx.spec, cx.sides)
        .is_some_and(|s| s.at == cx.now)
}

/// What blue still holds. Printed only when the drain times out; checked at every look.
enum BlueLeft<'a> {
    Tasks { tasks: u32, desired: u32 },
    TaskSet { id: &'a str, running: u32 },
}

impl core::fmt::Display for BlueLeft<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlueLeft::Tasks { tasks, desired } => {
                write!(f, "{tasks} task(s) (desired {desired})")
            }
            BlueLeft::TaskSet { id, running } => {
                write!(f, "task set {id} with {running} running")
            }
        }
    }
}

/// What blue still holds, or `None` when it holds nothing.
fn blue_left<'a>(cx: &'a Cx<'_>, blue_service: &str) -> Option<BlueLeft<'a>> {
    let s = &cx.k.services.get(blue_service)?.value;
    match &cx.spec.environment {
        EnvironmentModel::ServicePair { .. } => {
            let tasks = s.running_count + s.pending_count;
            (tasks > 0 || s.desired_count > 0).then_some(BlueLeft::Tasks {
                tasks,
                desired: s.desired_count,
            })
        }
        EnvironmentModel::TaskSet { .. } => {
            let blue = cx.sides.blue_task_set.as_deref()?;
            s.task_sets
                .iter()
                .find(|ts| ts.arn == blue)
                .map(|ts| BlueLeft::TaskSet {
                    id: &ts.id,
                    running: ts.running_count,
                })
        }
    }
}
