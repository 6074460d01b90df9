//! Shared by the benches and `examples/deploys.rs`: the strategies the simulator benches
//! time and one quiet deployment as they run it.

use bluegreen_core::{EnvironmentModel, Strategy};
use bluegreen_sim::harness::{AppPlan, app_draft};
use bluegreen_sim::{RunReport, Scenario, Sim, SimOptions, WorldProfile};

pub const STRATEGIES: [(&str, Strategy); 3] = [
    ("all-at-once", Strategy::AllAtOnce),
    (
        "canary",
        Strategy::Canary {
            percent: 10,
            wait_ms: 60_000,
        },
    ),
    (
        "linear",
        Strategy::Linear {
            step_percent: 25,
            interval_ms: 60_000,
        },
    ),
];

/// The strategies the core benches time (the built-in example spec's pacing: a finer
/// linear than the simulator's, so the core's steps per deployment span a wider range).
pub const CORE_STRATEGIES: [(&str, Strategy); 3] = [
    ("all-at-once", Strategy::AllAtOnce),
    (
        "canary",
        Strategy::Canary {
            percent: 10,
            wait_ms: 60_000,
        },
    ),
    (
        "linear",
        Strategy::Linear {
            step_percent: 10,
            interval_ms: 30_000,
        },
    ),
];

pub fn draft(strategy: &Strategy, task_set: bool) -> bluegreen_core::SpecDraft {
    let mut d = app_draft("web");
    d.strategy = strategy.clone();
    if task_set {
        d.environment = EnvironmentModel::TaskSet {
            service: "web".into(),
        };
    }
    d
}

/// One app, one push, no faults: a whole deployment from preflight to completed.
pub fn one_deployment(
    world: &WorldProfile,
    strategy: &Strategy,
    task_set: bool,
    plans: bool,
) -> RunReport {
    let mut s = Scenario::quiet(1, world.clone());
    s.apps.push(AppPlan::new(
        draft(strategy, task_set),
        &[(0, "registry.example/web:v2")],
    ));
    Sim::new(
        s,
        SimOptions {
            no_plans: !plans,
            ..SimOptions::default()
        },
    )
    .run()
}
