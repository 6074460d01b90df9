//! What a deployment's phases are expected to take on a real account: the plan's ideal
//! dry run (everything at once) plus a model of the waits AWS adds — tasks starting,
//! health checks passing, targets draining, API round trips. Checked against the
//! simulated world on AWS timings (`bluegreen-sim/tests/plan_durations.rs`).

use serde::{Deserialize, Serialize};

use super::Plan;
use crate::io::PhaseName;
use crate::spec::DeploymentSpec;

/// How the account behaves, as far as durations go (defaults: DESIGN §4a).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// A task from PENDING to RUNNING (image pull included): fastest and slowest.
    pub task_start_ms: (u64, u64),
    /// ALB health check interval and the consecutive successes that make a target
    /// healthy.
    pub health_interval_ms: u64,
    pub healthy_threshold: u32,
    /// Target-group deregistration delay: blue's tasks stop this long after they are
    /// deregistered.
    pub deregistration_delay_ms: u64,
    /// One API call's round trip.
    pub api_ms: u64,
}

impl Timings {
    /// DESIGN §4a: Fargate tasks start in 20–90 s; health checks every 30 s, 5 to pass;
    /// 300 s deregistration delay; ~60 ms a call.
    pub const AWS: Timings = Timings {
        task_start_ms: (20_000, 90_000),
        health_interval_ms: 30_000,
        healthy_threshold: 5,
        deregistration_delay_ms: 300_000,
        api_ms: 60,
    };
}

/// One phase's expected duration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseEstimate {
    pub phase: PhaseName,
    pub expected_ms: u64,
    /// The most it may take before it rolls back (the plan's deadlines), if bounded.
    pub deadline_ms: Option<u64>,
}

impl Plan {
    /// Expected duration of each phase of a successful deployment on an account that
    /// behaves like `t` (approval given at once), and of the whole.
    pub fn expected(&self, spec: &DeploymentSpec, t: &Timings) -> (Vec<PhaseEstimate>, u64) {
        let poll = spec.pacing.poll_interval_ms;
        let tasks = u64::from(spec.desired_count.unwrap_or(super::IDEAL_BLUE_TASKS).max(1));
        // The last of `tasks` independent starts, uniform over the span:
        // lo + (hi − lo)·n/(n + 1).
        let (lo, hi) = t.task_start_ms;
        let all_running = lo + (hi.saturating_sub(lo)) * tasks / (tasks + 1);
        let interval = t.health_interval_ms;
        let mut out: Vec<PhaseEstimate> = Vec::new();
        for s in &self.steps {
            let calls = s.aws_calls_min * t.api_ms;
            let model = match s.phase {
                // Until green is steady: its tasks start, then the next observation sees it
                // (half a poll on average).
                PhaseName::Deploy => all_running + poll / 2 + calls,
                // The first check lands within the first interval, then threshold − 1
                // more; then K consecutive healthy observations, a poll apart.
                PhaseName::HealthCheck => {
                    interval / 2
                        + interval * u64::from(t.healthy_threshold.saturating_sub(1))
                        + poll * u64::from(spec.health.healthy_observations_min.saturating_sub(1))
                        + poll / 2
                        + calls
                }
                // The drain wait, then blue's tasks stop once their targets have drained;
                // the next observation sees blue empty.
                PhaseName::DrainBlue => s.wait_ms + t.deregistration_delay_ms + poll / 2 + calls,
                // Holds, bake, the approval given at once: the ideal run's own waits.
                _ => s.wait_ms + calls,
            };
            match out.last_mut() {
                Some(last) if last.phase == s.phase => {
                    last.expected_ms += model;
                    last.deadline_ms = match (last.deadline_ms, s.deadline_ms) {
                        (Some(a), Some(b)) => Some(a + b),
                        _ => None,
                    };
                }
                _ => out.push(PhaseEstimate {
                    phase: s.phase,
                    expected_ms: model,
                    deadline_ms: s.deadline_ms,
                }),
            }
        }
        let total = out.iter().map(|p| p.expected_ms).sum();
        (out, total)
    }
}
