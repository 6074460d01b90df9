//! rollback: production back to 100 % blue first (blue is still whole until drain-blue
//! removes it), then the test listener, then the `rollback` hooks (recorded, never
//! blocking), then green removed, then wait until green holds no tasks.
//!
//! Every write is unconditional and idempotent — the machine does not trust its memory
//! of what the forward phases managed to do (a create may have been applied while its
//! answer was lost).

use serde::{Deserialize, Serialize};

use super::exec::Cx;
use super::hooks::{HookRun, HookStep};
use super::knowledge::Sides;
use super::knowledge::forwards;
use super::monitor::Monitor;
use super::phase::{Phase, Step};
use crate::command::{CommandKind, Observe, Weights};
use crate::ids::DeploymentId;
use crate::io::{Notice, Reason};
use crate::name::Name;
use crate::spec::DeploymentSpec;
use crate::spec::{EnvironmentModel, HookStage};
use crate::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rollback {
    pub reason: Reason,
    pub started_at: Timestamp,
    pub stage: RollbackStage,
    pub hooks: HookRun,
    pub monitor: Monitor,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "stage")]
pub enum RollbackStage {
    Start,
    /// Production → 100 % blue is out.
    RestoringProduction,
    /// Test listener → 100 % blue is out.
    RestoringTest,
    Hooks,
    /// Task-set model: reading the service to find every task set of this deployment.
    FindingGreen,
    /// Green's removal is out; `remaining` task sets still to delete.
    RemovingGreen {
        remaining: Vec<Name>,
    },
    Verifying {
        deadline: Timestamp,
    },
}

impl RollbackStage {
    pub fn describe(&self) -> String {
        match self {
            RollbackStage::Start => "starting rollback".into(),
            RollbackStage::RestoringProduction => "restoring production to 100 % blue".into(),
            RollbackStage::RestoringTest => "restoring the test listener to blue".into(),
            RollbackStage::Hooks => "running rollback hooks".into(),
            RollbackStage::FindingGreen => "finding green's task sets".into(),
            RollbackStage::RemovingGreen { .. } => "removing green".into(),
            RollbackStage::Verifying { deadline } => {
                format!("waiting for green to empty (deadline {deadline})")
            }
        }
    }
}

impl Rollback {
    pub fn new(reason: Reason, now: Timestamp) -> Self {
        Rollback {
            reason,
            started_at: now,
            stage: RollbackStage::Start,
            hooks: HookRun::new(HookStage::Rollback, now),
            monitor: Monitor::new(now),
        }
    }

    /// What an operator must do if the rollback cannot finish from where it is.
    pub(crate) fn action_required(
        &self,
        id: &DeploymentId,
        spec: &DeploymentSpec,
        sides: Option<&Sides>,
    ) -> String {
        let Some(sides) = sides else {
            return "nothing was changed".into();
        };
        let blue_tg = crate::arn::short_name(sides.blue_tg(spec));
        let green_tg = crate::arn::short_name(sides.green_tg(spec));
        let green_env = match &spec.environment {
            EnvironmentModel::ServicePair { services } => {
                format!("scale service {} to 0", services[sides.green()])
            }
            EnvironmentModel::TaskSet { service } => {
                format!("delete the task sets of service {service} with external id {id}")
            }
        };
        match self.stage {
            RollbackStage::Start | RollbackStage::RestoringProduction => format!(
                "set listener {} to forward 100 % to {blue_tg} (0 to {green_tg}), then {green_env}",
                spec.listener.listener_arn
            ),
            RollbackStage::RestoringTest => format!(
                "production is back on {blue_tg}; set the test listener to forward 100 % to {blue_tg}, then {green_env}"
            ),
            _ => format!("production is back on {blue_tg}; {green_env}"),
        }
    }

    pub(crate) fn decide(&mut self, cx: &mut Cx<'_>) -> Step {
        let spec = cx.spec;
        // Bounded: each arm either returns or moves to a later stage.
        for _ in 0..8 {
            match &mut self.stage {
                RollbackStage::Start => {
                    let weights = forwards(cx.blue_tg(), cx.green_tg(), Weights::ALL_BLUE);
                    cx.issue(
                        "rollback-production",
                        CommandKind::SetListenerWeights {
                            listener: spec.listener.clone(),
                            weights,
                        },
                    );
                    self.stage = RollbackStage::RestoringProduction;
                    return Step::Issued;
                }
                RollbackStage::RestoringProduction => {
                    if let Some(test) = &spec.test_listener {
                        let weights = forwards(cx.blue_tg(), cx.green_tg(), Weights::ALL_BLUE);
                        cx.issue(
                            "rollback-test",
                            CommandKind::SetListenerWeights {
                                listener: test.clone(),
                                weights,
                            },
                        );
                        self.stage = RollbackStage::RestoringTest;
                        return Step::Issued;
                    }
                    self.stage = RollbackStage::Hooks;
                }
                RollbackStage::RestoringTest => self.stage = RollbackStage::Hooks,
                RollbackStage::Hooks => match self.hooks.step(cx) {
                    HookStep::Done => {
                        self.stage = match spec.environment {
                            EnvironmentModel::ServicePair { .. } => {
                                RollbackStage::RemovingGreen { remaining: vec![] }
                            }
                            EnvironmentModel::TaskSet { .. } => RollbackStage::FindingGreen,
                        };
                        return self.remove_green(cx, true);
                    }
                    HookStep::Failed(reason) => {
                        // A rollback hook cannot stop the rollback: record it, go on.
                        let name = spec
                            .hooks_at(HookStage::Rollback)
                            .nth(self.hooks.position)
                            .map(|(_, h)| h.name.to_string())
                            .unwrap_or_default();
                        cx.exec.notice(Notice::RollbackHookFailed {
                            name,
                            reason: reason.detail,
                        });
                        self.hooks.position += 1;
                        self.hooks.started_at = None;
                        self.hooks.calling = false;
                        self.hooks.next_call_at = cx.now;
                    }
                    HookStep::Called => return Step::Issued,
                    HookStep::WaitUntil(at) => return Step::WaitUntil(at),
                },
                RollbackStage::FindingGreen | RollbackStage::RemovingGreen { .. } => {
                    return self.remove_green(cx, false);
                }
                RollbackStage::Verifying { deadline } => {
                    let deadline = *deadline;
                    return self.verify(cx, deadline);
                }
            }
        }
        Step::Broken("rollback advanced 8 stages in one decision".into())
    }

    /// Service pair: scale green to zero. Task set: find every task set this deployment
    /// created (by ARN and by external id) and delete them one at a time.
    fn remove_green(&mut self, cx: &mut Cx<'_>, first: bool) -> Step {
        let spec = cx.spec;
        match (&spec.environment, &mut self.stage) {
            (EnvironmentModel::ServicePair { services }, RollbackStage::RemovingGreen { .. }) => {
                if first {
                    cx.issue(
                        "rollback-scale-green",
                        CommandKind::ScaleEnvironment {
                            cluster: spec.cluster.clone(),
                            service: services[cx.sides.green()].clone(),
                            desired_count: 0,
                        },
                    );
                    return Step::Issued;
                }
                self.start_verify(cx)
            }
            (EnvironmentModel::TaskSet { service }, RollbackStage::FindingGreen) => {
                if first {
                    cx.issue(
                        "rollback-find-green",
                        CommandKind::Observe(Observe::Service {
                            cluster: spec.cluster.clone(),
                            service: service.clone(),
                            failures: None,
                            also: None,
                        }),
                    );
                    return Step::Issued;
                }
                let remaining = ours(cx, false);
                self.stage = RollbackStage::RemovingGreen { remaining };
                self.remove_green(cx, false)
            }
            (EnvironmentModel::TaskSet { service }, RollbackStage::RemovingGreen { remaining }) => {
                match remaining.pop() {
                    Some(task_set) => {
                        let n = remaining.len();
                        cx.issue(
                            &format!("rollback-delete-green-{n}"),
                            CommandKind::DeleteEnvironment {
                                cluster: spec.cluster.clone(),
                                service: service.clone(),
                                task_set,
                            },
                        );
                        Step::Issued
                    }
                    None => self.start_verify(cx),
                }
            }
            (_, stage) => Step::Broken(format!("removing green in rollback stage {stage:?}")),
        }
    }

    fn green_did_not_empty<L: std::fmt::Display>(&self, cx: &Cx<'_>, left: &L) -> Step {
        Step::Goto(
            Phase::Failed {
                at: cx.now,
                reason: Reason::new(
                    crate::io::ReasonKind::Timeout,
                    format!(
                        "rolled back ({}), but green still holds {left} after {}",
                        self.reason,
                        crate::time::format_duration_ms(cx.spec.timeouts.scale_down_ms)
                    ),
                ),
                action_required: self.action_required(cx.id, cx.spec, Some(cx.sides)),
            },
            "green did not empty in time".into(),
        )
    }

    fn start_verify(&mut self, cx: &mut Cx<'_>) -> Step {
        let deadline = cx.now.plus_ms(cx.spec.timeouts.scale_down_ms);
        self.stage = RollbackStage::Verifying { deadline };
        self.monitor = Monitor::new(cx.now);
        self.verify(cx, deadline)
    }

    fn verify(&mut self, cx: &mut Cx<'_>, deadline: Timestamp) -> Step {
        let spec = cx.spec;
        let green_service = cx.green_service().clone();
        if self.monitor.observing {
            self.monitor.observing = false;
            let left = green_left(cx, &green_service);
            if left.is_empty() {
                return Step::Goto(
                    Phase::RolledBack {
                        at: cx.now,
                        reason: self.reason.clone(),
                    },
                    format!("blue serves 100 %, green removed ({})", self.reason),
                );
            }
            if matches!(spec.environment, EnvironmentModel::TaskSet { .. }) {
                // A task set appeared after the find (a late create): delete it too.
                let late: Vec<Name> = ours(cx, false);
                if !late.is_empty() && cx.now < deadline {
                    self.stage = RollbackStage::RemovingGreen { remaining: late };
                    return self.remove_green(cx, false);
                }
            }
            if cx.now >= deadline {
                return self.green_did_not_empty(cx, &left);
            }
        }
        // At the deadline: one last look now, judged above when it is back.
        if self.monitor.due_by(cx.now, deadline) {
            let n = self.monitor.begin(cx);
            cx.issue(
                &format!("verify-green-{n}"),
                CommandKind::Observe(Observe::Service {
                    cluster: spec.cluster.clone(),
                    service: green_service,
                    failures: None,
                    also: None,
                }),
            );
            return Step::Issued;
        }
        Step::WaitUntil(self.monitor.next_tick_at.min(deadline))
    }
}

/// Task sets this deployment created, by ARN and by external id; `DRAINING` ones (already
/// deleted, tasks still stopping) only when `draining` is set.
fn ours(cx: &Cx<'_>, draining: bool) -> Vec<Name> {
    let spec = cx.spec;
    let Some(s) = cx.k.services.get(cx.sides.green_service(spec)) else {
        return vec![];
    };
    let blue = cx.sides.blue_task_set.as_ref();
    s.value
        .task_sets
        .iter()
        .filter(|ts| {
            Some(&ts.arn) != blue
                && (draining || ts.status != "DRAINING")
                && (ts.external_id.as_deref() == Some(cx.id.as_str())
                    || Some(&ts.arn) == cx.k.green_task_set.as_ref())
        })
        .map(|ts| ts.arn.clone())
        .collect()
}

/// What green still holds ("" when nothing).
fn green_left(cx: &Cx<'_>, green_service: &str) -> String {
    let Some(s) = cx.k.services.get(green_service) else {
        return "an unobserved service".into();
    };
    let s = &s.value;
    match &cx.spec.environment {
        EnvironmentModel::ServicePair { .. } => {
            let tasks = s.running_count + s.pending_count;
            if tasks > 0 || s.desired_count > 0 {
                format!("{tasks} task(s) (desired {})", s.desired_count)
            } else {
                String::new()
            }
        }
        EnvironmentModel::TaskSet { .. } => {
            let n = ours(cx, true).len();
            if n > 0 {
                format!("{n} task set(s)")
            } else {
                String::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rollback_stage_describes_itself_for_the_status_page() {
        let t = Timestamp::from_millis(0);
        let texts: Vec<String> = [
            RollbackStage::Start,
            RollbackStage::RestoringProduction,
            RollbackStage::RestoringTest,
            RollbackStage::Hooks,
            RollbackStage::FindingGreen,
            RollbackStage::RemovingGreen { remaining: vec![] },
            RollbackStage::Verifying { deadline: t },
        ]
        .iter()
        .map(RollbackStage::describe)
        .collect();
        assert_eq!(
            texts[..6],
            [
                "starting rollback",
                "restoring production to 100 % blue",
                "restoring the test listener to blue",
                "running rollback hooks",
                "finding green's task sets",
                "removing green",
            ]
        );
        assert!(
            texts[6].starts_with("waiting for green to empty (deadline "),
            "{}",
            texts[6]
        );
    }
}
