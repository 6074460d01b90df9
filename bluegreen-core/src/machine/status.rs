//! A summary of a deployment for APIs, CLIs and dashboards.

use serde::{Deserialize, Serialize};

use super::Deployment;
use super::drain_blue::DrainStage;
use super::phase::Phase;
use super::shift::ShiftStage;
use crate::command::{TargetHealth, Weights};
use crate::io::{PhaseName, Reason};
use crate::name::Name;
use crate::spec::{EnvironmentModel, Mode};
use crate::time::Timestamp;

/// One side as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideView {
    pub slot: usize,
    pub target_group: Name,
    pub service: Name,
    pub task_definition: Option<Name>,
}

/// What `GET /v1/deployments/{id}` and `bluegreen status` show.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub id: String,
    pub app: Name,
    pub mode: Mode,
    pub strategy: String,
    pub phase: PhaseName,
    /// When paused: the phase that was paused.
    pub paused_in: Option<PhaseName>,
    /// One line on where the phase is, e.g. "step 1/2: green 10 % until …".
    pub detail: String,
    pub weights: Weights,
    pub test_weights: Option<Weights>,
    pub blue: Option<SideView>,
    pub green: Option<SideView>,
    pub desired_count: Option<u32>,
    pub green_healthy_targets: Option<u32>,
    /// Green's targets as last observed: counts by state and ELBv2's reasons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub green_targets: Option<TargetHealth>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub reason: Option<Reason>,
    pub action_required: Option<String>,
    pub commands_sent: u64,
    pub aws_calls_min: u64,
}

impl Deployment {
    pub fn status(&self) -> Status {
        let spec = &self.spec;
        let k = &self.knowledge;
        let side = |slot: usize, td: Option<Name>| SideView {
            slot,
            target_group: spec.target_groups[slot].clone(),
            service: match &spec.environment {
                EnvironmentModel::ServicePair { services } => services[slot].clone(),
                EnvironmentModel::TaskSet { service } => service.clone(),
            },
            task_definition: td,
        };
        let (blue, green) = match &self.sides {
            Some(s) => (
                Some(side(s.blue, Some(s.blue_task_definition.clone()))),
                Some(side(s.green(), k.green_task_definition.clone())),
            ),
            None => (None, None),
        };
        let action_required = match &self.phase {
            Phase::Failed {
                action_required, ..
            } => Some(action_required.clone()),
            _ => None,
        };
        let green_targets = self
            .sides
            .as_ref()
            .and_then(|s| k.green_health(spec, s))
            .map(|s| s.value.clone());
        let detail = detail(&self.phase);
        Status {
            id: self.id.to_string(),
            app: spec.app.clone(),
            mode: spec.mode(),
            strategy: spec.strategy.name().to_string(),
            phase: self.phase.name(),
            paused_in: match &self.phase {
                Phase::Paused(p) => Some(p.inner.name()),
                _ => None,
            },
            detail,
            weights: k.prod_weights,
            test_weights: k.test_weights,
            blue,
            green,
            desired_count: self.sides.as_ref().map(|s| s.desired_count),
            green_healthy_targets: green_targets.as_ref().map(|h| h.healthy),
            green_targets,
            created_at: self.created_at,
            updated_at: self.updated_at,
            reason: self.outcome_reason().cloned(),
            action_required,
            commands_sent: self.exec.commands_sent,
            aws_calls_min: self.exec.aws_calls_min,
        }
    }
}

impl Deployment {
    /// After the outcome: the tags that say which slot is now live (`TagSlots`), for the
    /// executor to write once, best effort — `completed`: green's slot, `rolled-back`:
    /// blue's. `None` for other outcomes (a rejected deployment changed nothing; a failed
    /// one left an operator something to resolve) and before preflight read the sides.
    pub fn outcome_tags(&self) -> Option<crate::command::CommandKind> {
        let sides = self.sides.as_ref()?;
        let (live_slot, outcome) = match self.phase {
            Phase::Completed { .. } => (sides.green(), "completed"),
            Phase::RolledBack { .. } => (sides.blue, "rolled-back"),
            _ => return None,
        };
        Some(crate::command::CommandKind::TagSlots {
            target_groups: self.spec.target_groups.clone(),
            live_slot,
            deployment: self.id.as_str().into(),
            outcome: outcome.into(),
        })
    }
}

impl Deployment {
    /// Where the app's Application Auto Scaling target belongs now (service pair only):
    /// on green once it has all production traffic (bake, drain-blue, completed), on
    /// blue while rolling back and after. `None` before the shift completes, and in the
    /// task-set model (scale stays on the one service).
    pub fn scaling_placement(&self) -> Option<crate::command::CommandKind> {
        let sides = self.sides.as_ref()?;
        let EnvironmentModel::ServicePair { services } = &self.spec.environment else {
            return None;
        };
        let live_slot = match &self.phase {
            Phase::Bake(_) | Phase::DrainBlue(_) | Phase::Completed { .. } => sides.green(),
            Phase::Rollback(_) | Phase::RolledBack { .. } => sides.blue,
            Phase::Paused(p) => match p.inner.as_ref() {
                Phase::Bake(_) | Phase::DrainBlue(_) => sides.green(),
                _ => return None,
            },
            _ => return None,
        };
        Some(crate::command::CommandKind::PlaceScaling {
            cluster: self.spec.cluster.clone(),
            services: services.clone(),
            live_slot,
        })
    }
}

fn detail(phase: &Phase) -> String {
    match phase {
        Phase::Preflight(p) => match p.stage {
            crate::machine::PreflightStage::Start => "starting".into(),
            crate::machine::PreflightStage::Checking => "checking resources".into(),
            crate::machine::PreflightStage::Observing => "reading the listener and services".into(),
        },
        Phase::CreateGreen(p) => {
            let what = match p.stage {
                crate::machine::CreateStage::Start => "starting",
                crate::machine::CreateStage::Finding => "looking for the task-definition revision",
                crate::machine::CreateStage::Registering => {
                    "registering the task-definition revision"
                }
                crate::machine::CreateStage::Ensuring => "bringing up green",
            };
            format!("{what} (deadline {})", p.deadline)
        }
        Phase::Deploy(p) => format!("waiting for green to be steady (deadline {})", p.deadline),
        Phase::HealthCheck(p) => match &p.hooks {
            None => format!(
                "{} consecutive healthy observation(s) (deadline {})",
                p.consecutive_healthy, p.deadline
            ),
            Some(_) => "running green-ready hooks".into(),
        },
        Phase::TestTraffic(p) => match p.hold_until {
            Some(t) => format!("test traffic on green until {t}"),
            None => "test traffic on green; running test-traffic hooks".into(),
        },
        Phase::Approval(p) => format!("waiting for promote (until {})", p.deadline),
        Phase::Shift(p) => {
            let n = p.steps.len();
            let i = p.index + 1;
            let pct = p.steps.get(p.index).map(|s| s.green_percent).unwrap_or(100);
            match p.stage {
                ShiftStage::BeforeHooks => "running before-shift hooks".into(),
                ShiftStage::Guarding { .. } => {
                    format!("step {i}/{n}: checking green before {pct} %")
                }
                ShiftStage::Applying => format!("step {i}/{n}: setting green to {pct} %"),
                ShiftStage::Holding { until } => {
                    format!("step {i}/{n}: green {pct} % until {until}")
                }
            }
        }
        Phase::Bake(p) => match p.until {
            Some(t) => format!("baking until {t}"),
            None => "running after-shift hooks".into(),
        },
        Phase::DrainBlue(p) => match p.stage {
            DrainStage::Waiting { until } => format!("draining blue until {until}"),
            DrainStage::Promoting => "making green's task set primary".into(),
            DrainStage::Removing => "removing blue".into(),
            DrainStage::Verifying { deadline } => {
                format!("waiting for blue to empty (deadline {deadline})")
            }
        },
        Phase::Paused(p) => format!("paused since {} in {}", p.since, p.inner.name()),
        Phase::Rollback(r) => format!("{}; because {}", r.stage.describe(), r.reason),
        Phase::Completed { at } => format!("completed at {at}"),
        Phase::RolledBack { at, reason } => format!("rolled back at {at}: {reason}"),
        Phase::Failed { at, reason, .. } => format!("failed at {at}: {reason}"),
        Phase::Rejected { at, reason } => format!("rejected at {at}: {reason}"),
    }
}
