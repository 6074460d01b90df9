//! create-green: the task-definition revision (found or registered), then green itself on
//! the idle target group, sized like blue.

use serde::{Deserialize, Serialize};

use super::deploy::Deploy;
use super::exec::Cx;
use super::phase::{Phase, Step};
use crate::command::{CommandKind, EnsureGreen};
use crate::io::{Reason, ReasonKind};
use crate::spec::{Artifact, DeploymentSpec, EnvironmentModel};
use crate::time::{Timestamp, format_duration_ms};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGreen {
    pub stage: CreateStage,
    /// create-green and deploy share the deploy timeout.
    pub deadline: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CreateStage {
    Start,
    /// Looking for a revision registered before with this image.
    Finding,
    Registering,
    /// `EnsureGreen` is out.
    Ensuring,
}

impl CreateGreen {
    pub(crate) fn new(now: Timestamp, spec: &DeploymentSpec) -> Self {
        CreateGreen {
            stage: CreateStage::Start,
            deadline: now.plus_ms(spec.timeouts.deploy_ms),
        }
    }

    pub(crate) fn decide(&mut self, cx: &mut Cx<'_>) -> Step {
        if cx.now >= self.deadline && self.stage != CreateStage::Ensuring {
            return Step::Rollback(Reason::new(
                ReasonKind::Timeout,
                format!(
                    "green was not created within {}",
                    format_duration_ms(cx.spec.timeouts.deploy_ms)
                ),
            ));
        }
        let spec = cx.spec;
        match self.stage {
            CreateStage::Start => match &spec.artifact {
                Artifact::Image(image) => {
                    let base = cx.sides().blue_task_definition.clone();
                    cx.issue(
                        "find-task-definition",
                        CommandKind::FindTaskDefinition {
                            base,
                            container: spec.container.clone(),
                            image: image.clone(),
                        },
                    );
                    self.stage = CreateStage::Finding;
                    Step::Issued
                }
                Artifact::TaskDefinition(arn) => {
                    cx.k.green_task_definition = Some(arn.clone());
                    self.ensure(cx)
                }
            },
            CreateStage::Finding => match (&cx.k.green_task_definition, &spec.artifact) {
                (Some(_), _) => self.ensure(cx),
                (None, Artifact::Image(image)) => {
                    let base = cx.sides().blue_task_definition.clone();
                    cx.issue(
                        "register-task-definition",
                        CommandKind::RegisterTaskDefinition {
                            base,
                            container: spec.container.clone(),
                            image: image.clone(),
                        },
                    );
                    self.stage = CreateStage::Registering;
                    Step::Issued
                }
                (None, Artifact::TaskDefinition(_)) => {
                    Step::Broken("green's task definition, set at start, is gone".into())
                }
            },
            CreateStage::Registering => self.ensure(cx),
            CreateStage::Ensuring => {
                let why = match &cx.k.green_task_set {
                    Some(ts) => format!("green task set {} created", crate::arn::short_name(ts)),
                    None => "green service updated".to_string(),
                };
                Step::Goto(Phase::Deploy(Deploy::new(cx.now, self.deadline)), why)
            }
        }
    }

    fn ensure(&mut self, cx: &mut Cx<'_>) -> Step {
        let spec = cx.spec;
        let Some(td) = cx.k.green_task_definition.clone() else {
            return Step::Rollback(Reason::new(
                ReasonKind::Invariant,
                "no task definition for green after registration",
            ));
        };
        cx.k.green_since.get_or_insert(cx.now);
        let sides = cx.sides;
        let command = match &spec.environment {
            EnvironmentModel::ServicePair { services } => EnsureGreen::Service {
                cluster: spec.cluster.clone(),
                service: services[sides.green()].clone(),
                task_definition: td,
                desired_count: sides.desired_count,
            },
            EnvironmentModel::TaskSet { service } => EnsureGreen::TaskSet {
                cluster: spec.cluster.clone(),
                service: service.clone(),
                task_definition: td,
                target_group: spec.target_groups[sides.green()].clone(),
                like_task_set: match &sides.blue_task_set {
                    Some(blue) => blue.clone(),
                    None => {
                        return Step::Broken(
                            "task-set model without blue's task set after preflight".into(),
                        );
                    }
                },
                external_id: cx.id.as_str().into(),
            },
        };
        cx.issue("ensure-green", CommandKind::EnsureGreen(command));
        self.stage = CreateStage::Ensuring;
        Step::Issued
    }
}
