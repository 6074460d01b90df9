//! Green follows blue's scale: an autoscaler that scales blue out during a deployment
//! (service pair) makes green at least as large before it takes all traffic; blue
//! scaling in as its traffic leaves never shrinks green; a pinned size stays pinned.

use bluegreen_core::{PhaseName, Strategy};
use bluegreen_sim::harness::{AppPlan, app_draft};
use bluegreen_sim::{Scenario, Sim, SimOptions, WorldProfile};

struct Outcome {
    phase: PhaseName,
    /// Blue's desired count before the deployment.
    blue_before: u32,
    /// The new live service's (desired, running) at the end.
    green: (u32, u32),
}

/// One canary deployment of `web` (blue `web-a`, green `web-b`); when it first reaches
/// `at`, an outside caller (an autoscaler) sets blue's desired count to `blue_to`.
fn deploy_with_autoscale(at: PhaseName, blue_to: u32, pin: Option<u32>) -> Outcome {
    let mut draft = app_draft("web");
    draft.strategy = Strategy::Canary {
        percent: 25,
        wait_ms: 60_000,
    };
    draft.desired_count = pin;
    let mut s = Scenario::quiet(7, WorldProfile::fast());
    s.apps
        .push(AppPlan::new(draft, &[(0, "registry.example/web:v2")]));
    let mut sim = Sim::new(s, SimOptions::default());
    let blue_before = sim.world.service_counts("prod", "web-a").expect("blue").0;
    assert!(
        sim.run_until(|s| s.phase_of(0) == Some(at)),
        "the deployment never reached {at:?}"
    );
    assert!(sim.world.autoscale("prod", "web-a", blue_to));
    sim.run_until(|s| s.all_done());
    let green = sim.world.service_counts("prod", "web-b").expect("green");
    let report = sim.run();
    assert!(report.ok(), "{:#?}", report.violations);
    Outcome {
        phase: report.deployments[0].outcome.expect("finished"),
        blue_before,
        green,
    }
}

#[test]
fn a_scale_out_of_blue_during_the_health_check_makes_green_as_large() {
    let o = deploy_with_autoscale(PhaseName::HealthCheck, 8, None);
    assert!(o.blue_before < 8, "blue started at {}", o.blue_before);
    assert_eq!(o.phase, PhaseName::Completed);
    assert_eq!(o.green, (8, 8), "green, now live, ends at blue's new size");
}

#[test]
fn a_scale_out_during_the_canary_hold_is_followed_too() {
    let o = deploy_with_autoscale(PhaseName::Shift, 9, None);
    assert_eq!(o.phase, PhaseName::Completed);
    assert_eq!(o.green, (9, 9));
}

#[test]
fn blue_scaling_in_as_its_traffic_leaves_never_shrinks_green() {
    let o = deploy_with_autoscale(PhaseName::Shift, 1, None);
    assert_eq!(o.phase, PhaseName::Completed);
    assert_eq!(
        o.green.0, o.blue_before,
        "green keeps the size it started with"
    );
}

#[test]
fn a_pinned_desired_count_does_not_follow_blue() {
    let o = deploy_with_autoscale(PhaseName::HealthCheck, 8, Some(3));
    assert_eq!(o.phase, PhaseName::Completed);
    assert_eq!(o.green.0, 3);
}
