//! The plan: a spec compiled into the concrete steps a deployment will take — weights,
//! waits, deadlines, worst-case duration and the AWS calls each step makes at the
//! configured poll interval. `bluegreen plan` prints it.
//!
//! Waits and AWS calls come from a dry run of the real machine against an
//! [`IdealCloud`] (everything healthy at once), so they are the *lower bound* a real
//! deployment meets (fewer only if it rolls back): slower tasks, unhealthy targets and
//! retries only add. Deadlines and the worst case come from the spec's timeouts.

mod example;
mod ideal;
mod timings;

use core::fmt;

use serde::{Deserialize, Serialize};

pub use example::{example_draft, example_spec};
pub use ideal::{Drive, IDEAL_BLUE_TASKS, IdealCloud, drive};
pub use timings::{PhaseEstimate, Timings};

use crate::command::Weights;
use crate::ids::DeploymentId;
use crate::io::Output;
use crate::io::PhaseName;
use crate::machine::{Deployment, Phase};
use crate::name::Name;
use crate::spec::{DeploymentSpec, HookStage};
use crate::time::{Timestamp, format_duration_human, format_duration_ms};

/// Bound on machine steps in a plan's dry run (a linear 1 % strategy with day-long
/// holds and a 100 ms poll is far below it).
const DRY_RUN_STEPS_MAX: u64 = 50_000_000;

/// One step of the plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanStep {
    pub phase: PhaseName,
    pub action: String,
    /// Production weights once the step is done.
    pub weights: Weights,
    /// Time the step takes when everything is healthy at once.
    pub wait_ms: u64,
    /// The most the step may take before it rolls back (excluding command retries).
    pub deadline_ms: Option<u64>,
    /// AWS API calls the step makes when everything is healthy at once.
    pub aws_calls_min: u64,
}

/// A compiled plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub app: Name,
    pub mode: String,
    pub strategy: String,
    pub poll_interval_ms: u64,
    pub steps: Vec<PlanStep>,
    /// Duration when everything is healthy at once (and approval is given at once).
    pub happy_path_ms: u64,
    /// Longest a deployment can run forward before it must roll back or finish
    /// (excluding command retries).
    pub worst_case_ms: u64,
    /// Longest the rollback itself can take.
    pub rollback_worst_case_ms: u64,
    /// Sum of the steps' AWS calls: the lower bound for a successful deployment.
    pub aws_calls_min: u64,
}

/// The step a machine output belongs to.
fn step_key(phase: &Phase) -> (PhaseName, usize) {
    match phase {
        Phase::Shift(s) => (PhaseName::Shift, s.index),
        other => (other.name(), 0),
    }
}

impl Plan {
    /// The plan for a spec (dry-run with a placeholder deployment id; the poll jitter of
    /// a real id can move a wait by up to a tenth of a poll interval).
    pub fn compile(spec: &DeploymentSpec) -> Plan {
        let id = DeploymentId::new("plan").expect("a valid id");
        Self::for_deployment(&id, spec)
    }

    /// The plan for a spec as deployment `id` will run it.
    pub fn for_deployment(id: &DeploymentId, spec: &DeploymentSpec) -> Plan {
        let start = Timestamp::EPOCH;
        let mut d = Deployment::new(id.clone(), spec.clone(), start);
        let mut cloud = IdealCloud::new(spec);
        // (phase, shift index) → (first seen, last seen, aws calls)
        let mut seen: Vec<((PhaseName, usize), Timestamp, Timestamp, u64)> = Vec::new();
        drive(
            &mut d,
            &mut cloud,
            start,
            true,
            DRY_RUN_STEPS_MAX,
            |phase, out, now| {
                let key = step_key(phase);
                if seen.last().map(|s| s.0) != Some(key) {
                    seen.push((key, now, now, 0));
                }
                let last = seen.last_mut().expect("just pushed");
                last.2 = now;
                if let Output::Command(c) = out {
                    last.3 += u64::from(c.kind.aws_calls_min());
                }
            },
        );
        let calls_of = |phase: PhaseName, index: usize| -> u64 {
            seen.iter()
                .filter(|s| s.0 == (phase, index))
                .map(|s| s.3)
                .sum()
        };
        let span_of = |phase: PhaseName, index: usize| -> u64 {
            let first = seen.iter().position(|s| s.0 == (phase, index));
            let Some(first) = first else { return 0 };
            let begin = seen[first].1;
            // A step lasts until the next step begins.
            let end = seen
                .iter()
                .skip(first + 1)
                .find(|s| s.0 != (phase, index))
                .map(|s| s.1)
                .unwrap_or(seen[first].2);
            end.ms_since(begin)
        };

        let t = &spec.timeouts;
        let hooks_ms =
            |stage: HookStage| -> u64 { spec.hooks_at(stage).map(|(_, h)| h.deadline_ms).sum() };
        let mut steps = Vec::new();
        let mut push = |phase: PhaseName,
                        index: usize,
                        action: String,
                        weights: Weights,
                        deadline_ms: Option<u64>| {
            steps.push(PlanStep {
                phase,
                action,
                weights,
                wait_ms: span_of(phase, index),
                deadline_ms,
                aws_calls_min: calls_of(phase, index),
            });
        };
        let blue = Weights::ALL_BLUE;
        push(
            PhaseName::Preflight,
            0,
            "check resources; read the live side from the production listener".into(),
            blue,
            None,
        );
        push(
            PhaseName::CreateGreen,
            0,
            match &spec.artifact {
                crate::spec::Artifact::Image(image) => format!(
                    "register a revision of blue's task definition with {} = {image} (or reuse one); bring up green on the idle target group",
                    spec.container
                ),
                crate::spec::Artifact::TaskDefinition(td) => {
                    format!("bring up green on the idle target group running {td}")
                }
            },
            blue,
            Some(t.deploy_ms),
        );
        push(
            PhaseName::Deploy,
            0,
            format!(
                "wait until green is steady (circuit breaker: {} failed tasks)",
                spec.circuit_breaker.failed_tasks_max
            ),
            blue,
            Some(t.deploy_ms),
        );
        push(
            PhaseName::HealthCheck,
            0,
            format!(
                "every green target healthy for {} consecutive observations{}",
                spec.health.healthy_observations_min,
                hook_note(spec, HookStage::GreenReady)
            ),
            blue,
            Some(t.health_ms + hooks_ms(HookStage::GreenReady)),
        );
        if spec.test_listener.is_some() {
            push(
                PhaseName::TestTraffic,
                0,
                format!(
                    "test listener → 100 % green; hold {}{}",
                    format_duration_ms(spec.test_traffic_ms),
                    hook_note(spec, HookStage::TestTraffic)
                ),
                blue,
                Some(spec.test_traffic_ms + hooks_ms(HookStage::TestTraffic)),
            );
        }
        if let Some(timeout) = spec.approval_timeout_ms {
            push(
                PhaseName::Approval,
                0,
                "wait for an operator's promote".into(),
                blue,
                Some(timeout),
            );
        }
        let shift_steps = spec.strategy.steps();
        let n = shift_steps.len();
        for (i, s) in shift_steps.iter().enumerate() {
            let before = if i == 0 {
                hook_note(spec, HookStage::BeforeShift)
            } else {
                String::new()
            };
            push(
                PhaseName::Shift,
                i,
                if s.hold_ms > 0 {
                    format!(
                        "step {}/{n}: green {} %, hold {}{before}",
                        i + 1,
                        s.green_percent,
                        format_duration_ms(s.hold_ms)
                    )
                } else {
                    format!("step {}/{n}: green {} %{before}", i + 1, s.green_percent)
                },
                Weights::green(s.green_percent),
                Some(
                    t.health_ms
                        + s.hold_ms
                        + if i == 0 {
                            hooks_ms(HookStage::BeforeShift)
                        } else {
                            0
                        },
                ),
            );
        }
        push(
            PhaseName::Bake,
            0,
            format!(
                "hold {} with blue still whole{}",
                format_duration_ms(spec.bake_ms),
                hook_note(spec, HookStage::AfterShift)
            ),
            Weights::ALL_GREEN,
            Some(spec.bake_ms + hooks_ms(HookStage::AfterShift)),
        );
        push(
            PhaseName::DrainBlue,
            0,
            format!(
                "wait {} for in-flight requests, then {}; wait until blue holds no tasks",
                format_duration_ms(spec.drain_ms),
                match spec.mode() {
                    crate::spec::Mode::ServicePair => "scale blue's service to 0",
                    crate::spec::Mode::TaskSet => "make green's task set primary and delete blue's",
                }
            ),
            Weights::ALL_GREEN,
            Some(spec.drain_ms + t.scale_down_ms),
        );
        let worst_case_ms = steps
            .iter()
            .map(|s| s.deadline_ms.unwrap_or(t.command_ms))
            .fold(0u64, u64::saturating_add)
            // create-green and deploy share one deadline
            .saturating_sub(t.deploy_ms);
        let rollback_worst_case_ms =
            2 * t.command_ms + hooks_ms(HookStage::Rollback) + t.scale_down_ms;
        let happy_path_ms = d.updated_at().ms_since(start);
        debug_assert_eq!(
            d.phase_name(),
            PhaseName::Completed,
            "the ideal dry run completes"
        );
        let aws_calls_min = steps.iter().map(|s| s.aws_calls_min).sum();
        Plan {
            app: spec.app.clone(),
            mode: spec.mode().as_str().to_string(),
            strategy: spec.strategy.name().to_string(),
            poll_interval_ms: spec.pacing.poll_interval_ms,
            steps,
            happy_path_ms,
            worst_case_ms,
            rollback_worst_case_ms,
            aws_calls_min,
        }
    }
}

fn hook_note(spec: &DeploymentSpec, stage: HookStage) -> String {
    let names: Vec<&str> = spec.hooks_at(stage).map(|(_, h)| h.name.as_str()).collect();
    if names.is_empty() {
        String::new()
    } else {
        format!("; hooks: {}", names.join(", "))
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Plan for {} ({}, {}), polling every {}",
            self.app,
            self.mode,
            self.strategy,
            format_duration_human(self.poll_interval_ms)
        )?;
        writeln!(
            f,
            "{:>2}  {:<13} {:>10}  {:>9}  {:>9}  {:>9}  action",
            "#", "phase", "blue/green", "wait", "deadline", "AWS calls"
        )?;
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(
                f,
                "{:>2}  {:<13} {:>5}/{:<4}  {:>9}  {:>9}  {:>9}  {}",
                i + 1,
                s.phase.as_str(),
                s.weights.blue,
                s.weights.green,
                format_duration_human(s.wait_ms),
                s.deadline_ms
                    .map(format_duration_human)
                    .unwrap_or_else(|| "-".into()),
                s.aws_calls_min,
                s.action
            )?;
        }
        writeln!(
            f,
            "happy path {}; worst case {} forward, then rollback up to {}; at least {} AWS calls",
            format_duration_human(self.happy_path_ms),
            format_duration_human(self.worst_case_ms),
            format_duration_human(self.rollback_worst_case_ms),
            self.aws_calls_min
        )
    }
}
