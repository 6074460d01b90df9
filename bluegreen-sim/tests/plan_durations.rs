//! The plan's expected phase durations (`Plan::expected` with the world's timings)
//! against what the simulated world on AWS timings (DESIGN §4a) actually took: the median
//! of 31 seeds per strategy is within the stated tolerance of the estimate, and no seed
//! runs a phase past the plan's deadline for it.

use bluegreen_core::plan::{PhaseEstimate, Timings};
use bluegreen_core::{DeploymentSpec, PhaseName, Plan, Strategy};
use bluegreen_sim::harness::{AppPlan, app_draft};
use bluegreen_sim::{Scenario, Sim, SimOptions, WorldProfile};

const SEEDS: u64 = 31;

/// Per phase, the durations one run took (from the machine's own transitions).
fn run(seed: u64, strategy: Strategy) -> (DeploymentSpec, Vec<(PhaseName, u64)>) {
    let mut draft = app_draft("web");
    draft.strategy = strategy;
    let mut s = Scenario::quiet(seed, WorldProfile::aws());
    s.apps
        .push(AppPlan::new(draft, &[(0, "registry.example/web:v2")]));
    let mut sim = Sim::new(s, SimOptions::default());
    assert!(sim.run_until(Sim::all_done), "seed {seed} finished");
    let dep = &sim.deps[0];
    let d = dep.machine.as_ref().expect("the controller is up");
    assert_eq!(d.phase_name(), PhaseName::Completed, "seed {seed}");
    let mut out: Vec<(PhaseName, u64)> = Vec::new();
    let mut since = d.created_at();
    let mut phase = PhaseName::Preflight;
    for t in d.history() {
        let ms = t.at.ms_since(since);
        match out.last_mut() {
            Some((p, total)) if *p == phase => *total += ms,
            _ => out.push((phase, ms)),
        }
        since = t.at;
        phase = t.to;
    }
    (d.spec().clone(), out)
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// The tolerance stated for the estimate: a tenth of it, or one poll interval and five
/// seconds (the grid and the network), whichever is larger.
fn tolerance_ms(expected: u64, poll_ms: u64) -> u64 {
    (expected / 10).max(poll_ms + 5_000)
}

fn check(strategy: Strategy) {
    let runs: Vec<_> = (0..SEEDS).map(|seed| run(seed, strategy.clone())).collect();
    let spec = &runs[0].0;
    let timings: Timings = WorldProfile::aws().plan_timings();
    let (estimates, _) = Plan::compile(spec).expected(spec, &timings);
    let poll = spec.pacing.poll_interval_ms;
    for PhaseEstimate {
        phase,
        expected_ms,
        deadline_ms,
    } in &estimates
    {
        let took: Vec<u64> = runs
            .iter()
            .map(|(_, phases)| {
                phases
                    .iter()
                    .filter(|(p, _)| p == phase)
                    .map(|(_, ms)| *ms)
                    .sum()
            })
            .collect();
        let worst = took.iter().copied().max().unwrap_or(0);
        let m = median(took);
        let tol = tolerance_ms(*expected_ms, poll);
        eprintln!(
            "{} {phase}: expected {expected_ms} ms, simulated median {m} ms (tolerance ±{tol} ms), worst {worst} ms, deadline {deadline_ms:?}",
            strategy.name()
        );
        assert!(
            m.abs_diff(*expected_ms) <= tol,
            "{} {phase}: the plan expects {expected_ms} ms, the simulated world took {m} ms (median of {SEEDS} seeds)",
            strategy.name()
        );
        if let Some(deadline) = deadline_ms {
            assert!(
                worst <= *deadline,
                "{phase}: {worst} ms is past the plan's deadline {deadline} ms"
            );
        }
    }
}

#[test]
fn all_at_once_phases_take_what_the_plan_expects_on_aws_timings() {
    check(Strategy::AllAtOnce);
}

#[test]
fn canary_phases_take_what_the_plan_expects_on_aws_timings() {
    check(Strategy::Canary {
        percent: 10,
        wait_ms: 300_000,
    });
}

#[test]
fn linear_phases_take_what_the_plan_expects_on_aws_timings() {
    check(Strategy::Linear {
        step_percent: 25,
        interval_ms: 120_000,
    });
}
