//! The plan (`bluegreen plan`): each step's deadline follows from the spec, and its waits
//! and AWS calls are what the real machine does against a cloud where everything is
//! healthy at once — checked against a real run of the same spec and id.

mod support;

use std::collections::BTreeMap;

use bluegreen_core::*;
use support::*;

fn id() -> DeploymentId {
    DeploymentId::new("web-1").unwrap()
}

fn canary(d: &mut SpecDraft) {
    d.strategy = Strategy::Canary {
        percent: 10,
        wait_ms: 60_000,
    };
}

#[test]
fn every_step_carries_the_deadline_its_phase_and_hooks_allow() {
    // Every hook stage has one hook with a 30 s deadline.
    let hook_ms = 30_000;
    let s = full_spec(|d| {
        d.strategy = Strategy::Linear {
            step_percent: 50,
            interval_ms: 60_000,
        };
    });
    let t = s.timeouts;
    let plan = Plan::for_deployment(&id(), &s);
    let rows: Vec<(PhaseName, Option<u64>, Weights)> = plan
        .steps
        .iter()
        .map(|p| (p.phase, p.deadline_ms, p.weights))
        .collect();
    let blue = Weights::ALL_BLUE;
    let green = Weights::ALL_GREEN;
    assert_eq!(
        rows,
        [
            (PhaseName::Preflight, None, blue),
            (PhaseName::CreateGreen, Some(t.deploy_ms), blue),
            (PhaseName::Deploy, Some(t.deploy_ms), blue),
            (PhaseName::HealthCheck, Some(t.health_ms + hook_ms), blue),
            (
                PhaseName::TestTraffic,
                Some(s.test_traffic_ms + hook_ms),
                blue
            ),
            (PhaseName::Approval, s.approval_timeout_ms, blue),
            // The first step also waits for the before-shift hook.
            (
                PhaseName::Shift,
                Some(t.health_ms + 60_000 + hook_ms),
                Weights::green(50)
            ),
            (PhaseName::Shift, Some(t.health_ms), green),
            (PhaseName::Bake, Some(s.bake_ms + hook_ms), green),
            (
                PhaseName::DrainBlue,
                Some(s.drain_ms + t.scale_down_ms),
                green
            ),
        ]
    );
    // Forward: every deadline (a command's for preflight), create-green and deploy
    // sharing one. Back: the listener write and its read-back, the rollback hook, the
    // scale-down.
    let forward: u64 = rows.iter().map(|r| r.1.unwrap_or(t.command_ms)).sum();
    assert_eq!(plan.worst_case_ms, forward - t.deploy_ms);
    assert_eq!(
        plan.rollback_worst_case_ms,
        2 * t.command_ms + hook_ms + t.scale_down_ms
    );
    // Each step says what it does, with its hooks by name.
    let actions: Vec<&str> = plan.steps.iter().map(|p| p.action.as_str()).collect();
    assert!(actions[3].ends_with("; hooks: ready"), "{}", actions[3]);
    assert!(
        actions[4].contains("hold 5s; hooks: test"),
        "{}",
        actions[4]
    );
    assert_eq!(actions[6], "step 1/2: green 50 %, hold 1m; hooks: before");
    assert_eq!(actions[7], "step 2/2: green 100 %");
    assert!(actions[8].ends_with("; hooks: after"), "{}", actions[8]);
    assert!(
        actions[9].contains("scale blue's service to 0"),
        "{}",
        actions[9]
    );
}

#[test]
fn the_plans_waits_and_calls_are_a_real_runs_phase_by_phase() {
    for s in [
        spec(canary),
        spec(|d| {
            d.strategy = Strategy::Linear {
                step_percent: 25,
                interval_ms: 30_000,
            };
        }),
        spec(|d| {
            canary(d);
            task_set_model(d);
        }),
    ] {
        let plan = Plan::for_deployment(&id(), &s);
        let mut r = Run::new(s.clone());
        r.finish();
        assert_eq!(r.d.phase_name(), PhaseName::Completed);
        assert_eq!(
            plan.happy_path_ms,
            r.d.updated_at().ms_since(r.d.created_at()),
            "{plan}"
        );
        // Time spent in each phase: from entering it to entering the next.
        let mut real_ms: BTreeMap<PhaseName, u64> = BTreeMap::new();
        let mut entered = (PhaseName::Preflight, r.d.created_at());
        for t in r.d.history() {
            *real_ms.entry(entered.0).or_default() += t.at.ms_since(entered.1);
            entered = (t.to, t.at);
        }
        let mut real_calls: BTreeMap<PhaseName, u64> = BTreeMap::new();
        for rec in &r.outs {
            if let Output::Command(c) = &rec.out {
                *real_calls.entry(rec.phase).or_default() += u64::from(c.kind.aws_calls_min());
            }
        }
        let mut plan_ms: BTreeMap<PhaseName, u64> = BTreeMap::new();
        let mut plan_calls: BTreeMap<PhaseName, u64> = BTreeMap::new();
        for p in &plan.steps {
            *plan_ms.entry(p.phase).or_default() += p.wait_ms;
            *plan_calls.entry(p.phase).or_default() += p.aws_calls_min;
        }
        real_ms.retain(|_, ms| *ms > 0);
        plan_ms.retain(|_, ms| *ms > 0);
        assert_eq!(plan_ms, real_ms, "{plan}");
        assert_eq!(plan_calls, real_calls, "{plan}");
        assert_eq!(
            plan.steps.iter().map(|p| p.wait_ms).sum::<u64>(),
            plan.happy_path_ms,
            "the steps' waits add up to the whole"
        );
        // A step with a hold waits at least its hold.
        for (p, step) in plan
            .steps
            .iter()
            .filter(|p| p.phase == PhaseName::Shift)
            .zip(s.strategy.steps())
        {
            assert!(p.wait_ms >= step.hold_ms, "{plan}");
        }
    }
}

#[test]
fn the_printed_plan_has_a_header_and_one_row_per_step() {
    let s = spec(canary);
    let plan = Plan::for_deployment(&id(), &s);
    let text = plan.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "Plan for web (service-pair, canary), polling every 1s"
    );
    assert!(lines[1].contains("phase") && lines[1].contains("AWS calls"));
    for (i, step) in plan.steps.iter().enumerate() {
        let row = lines[2 + i];
        assert!(
            row.trim_start().starts_with(&format!("{} ", i + 1)),
            "{row}"
        );
        assert!(row.contains(step.phase.as_str()), "{row}");
        assert!(row.ends_with(&step.action), "{row}");
        assert!(
            row.contains(&format!("{}/{}", step.weights.blue, step.weights.green)),
            "{row}"
        );
    }
    assert_eq!(
        lines[2 + plan.steps.len()],
        format!(
            "happy path {}; worst case {} forward, then rollback up to {}; at least {} AWS calls",
            time::format_duration_human(plan.happy_path_ms),
            time::format_duration_human(plan.worst_case_ms),
            time::format_duration_human(plan.rollback_worst_case_ms),
            plan.aws_calls_min
        )
    );
}

/// `Plan::expected` as rows of (phase, expected ms, deadline ms).
fn estimates(
    plan: &Plan,
    s: &DeploymentSpec,
    t: &plan::Timings,
) -> Vec<(PhaseName, u64, Option<u64>)> {
    let (rows, total) = plan.expected(s, t);
    assert_eq!(
        total,
        rows.iter().map(|r| r.expected_ms).sum::<u64>(),
        "the whole is the sum"
    );
    rows.into_iter()
        .map(|r| (r.phase, r.expected_ms, r.deadline_ms))
        .collect()
}

#[test]
fn expected_durations_add_the_accounts_waits_to_the_ideal_runs_phase_by_phase() {
    // Two shift steps (50 %, 100 %), so one phase spans two plan steps.
    let s = spec(|d| {
        d.strategy = Strategy::Linear {
            step_percent: 50,
            interval_ms: 60_000,
        };
        d.desired_count = Some(3);
    });
    let plan = Plan::for_deployment(&id(), &s);
    let poll = s.pacing.poll_interval_ms;
    let k = u64::from(s.health.healthy_observations_min);
    let instant = plan::Timings {
        task_start_ms: (0, 0),
        health_interval_ms: 0,
        healthy_threshold: 1,
        deregistration_delay_ms: 0,
        api_ms: 0,
    };
    let base = estimates(&plan, &s, &instant);

    // One row per run of consecutive steps of a phase, in the plan's order.
    let mut phases: Vec<PhaseName> = plan.steps.iter().map(|p| p.phase).collect();
    phases.dedup();
    assert_eq!(base.iter().map(|r| r.0).collect::<Vec<_>>(), phases);
    assert!(
        plan.steps
            .iter()
            .filter(|p| p.phase == PhaseName::Shift)
            .count()
            == 2,
        "{:#?}",
        plan.steps
    );
    let steps_of = |phase| {
        plan.steps
            .iter()
            .filter(move |p: &&plan::PlanStep| p.phase == phase)
    };

    // An account that takes no time: the ideal run's own waits, plus the half poll on
    // average before an observation sees green steady, healthy or blue empty; the health
    // check also waits out its consecutive healthy observations. Deadlines add up.
    for &(phase, ms, deadline) in &base {
        let waits: u64 = steps_of(phase).map(|p| p.wait_ms).sum();
        let want = match phase {
            PhaseName::Deploy => poll / 2,
            PhaseName::HealthCheck => poll * (k - 1) + poll / 2,
            PhaseName::DrainBlue => waits + poll / 2,
            _ => waits,
        };
        assert_eq!(ms, want, "{phase}");
        let deadlines: Option<u64> = steps_of(phase).map(|p| p.deadline_ms).sum();
        assert_eq!(deadline, deadlines, "{phase}");
    }
    let shift = base.iter().find(|r| r.0 == PhaseName::Shift).unwrap();
    assert_eq!(
        shift.1, 60_000,
        "one hold at 50 %; at 100 % the bake takes over"
    );

    // Each of the account's waits lands on its own phase, and only there.
    let delta = |t: plan::Timings| -> Vec<(PhaseName, u64)> {
        estimates(&plan, &s, &t)
            .iter()
            .zip(&base)
            .map(|(after, before)| (after.0, after.1 - before.1))
            .filter(|&(_, d)| d > 0)
            .collect()
    };
    // The last of 3 task starts, uniform over 20–90 s: 20 + 70 · 3/4 s.
    assert_eq!(
        delta(plan::Timings {
            task_start_ms: (20_000, 90_000),
            ..instant
        }),
        [(PhaseName::Deploy, 72_500)]
    );
    // The first check within half an interval, then four more 30 s apart.
    assert_eq!(
        delta(plan::Timings {
            health_interval_ms: 30_000,
            healthy_threshold: 5,
            ..instant
        }),
        [(PhaseName::HealthCheck, 15_000 + 4 * 30_000)]
    );
    assert_eq!(
        delta(plan::Timings {
            deregistration_delay_ms: 300_000,
            ..instant
        }),
        [(PhaseName::DrainBlue, 300_000)]
    );
    // Every call's round trip, on the phase that makes it.
    let calls: Vec<(PhaseName, u64)> = base
        .iter()
        .map(|r| (r.0, steps_of(r.0).map(|p| p.aws_calls_min * 60).sum()))
        .filter(|&(_, d)| d > 0)
        .collect();
    assert!(calls.len() >= 6, "{calls:?}");
    assert_eq!(
        delta(plan::Timings {
            api_ms: 60,
            ..instant
        }),
        calls
    );

    // A phase with no deadline in one of its steps has none.
    let mut open = plan.clone();
    for p in open
        .steps
        .iter_mut()
        .filter(|p| p.phase == PhaseName::Shift)
        .take(1)
    {
        p.deadline_ms = None;
    }
    let shift = estimates(&open, &s, &instant)
        .into_iter()
        .find(|r| r.0 == PhaseName::Shift)
        .unwrap();
    assert_eq!(shift.2, None);
}
