//! Measurements that are virtual-time outcomes, not CPU speed: how long from an alarm
//! going into ALARM to production back on 100 % blue, with alarm events delivered and
//! with polling alone, over many seeds (`bluegreen-sim alarm-latency`).

use bluegreen_core::Strategy;

use crate::harness::{AlarmEvents, AppPlan, app_draft};
use crate::rng::Rng;
use crate::world::Forward;
use crate::{Scenario, Sim, SimOptions, WorldProfile};

/// One seed's alarm → blue, in milliseconds of virtual time: `None` when the
/// deployment did not roll back because of that alarm (it cannot happen by
/// construction, and is counted if it does).
///
/// The seed draws the strategy (all-at-once, canary, linear), when the alarm fires
/// once green has production traffic (anywhere in the next three poll intervals), and
/// through the world, every network leg; the app polls every 10 s (the default).
pub fn alarm_to_blue_ms(seed: u64, events: AlarmEvents) -> Option<u64> {
    alarm_to_blue_ms_with(seed, events, None)
}

/// [`alarm_to_blue_ms`] with the app polling alarms only every `signal_poll_ms`
/// (`pacing.signal_poll`: events are wired, polling is the fallback).
pub fn alarm_to_blue_ms_with(
    seed: u64,
    events: AlarmEvents,
    signal_poll_ms: Option<u64>,
) -> Option<u64> {
    let mut r = Rng::derive(seed, 0xa1a7_b1e0);
    let mut draft = app_draft("web");
    let minute = 60_000;
    draft.strategy = match r.below(3) {
        0 => Strategy::AllAtOnce,
        1 => Strategy::Canary {
            percent: r.range(5, 50) as u8,
            wait_ms: 30 * minute,
        },
        _ => Strategy::Linear {
            step_percent: r.range(10, 50) as u8,
            interval_ms: 30 * minute,
        },
    };
    draft.bake_ms = 60 * minute;
    draft.pacing.signal_poll_ms = signal_poll_ms;
    let poll_ms = draft.pacing.poll_interval_ms;
    let mut s = Scenario::quiet(seed, WorldProfile::aws());
    s.apps
        .push(AppPlan::new(draft, &[(0, "registry.example/web:v2")]));
    s.alarm_events = events;
    // CloudWatch's evaluations and the deployment's polls keep their own grids: start
    // anywhere in ten minutes so the seeds see every offset between the two.
    s.start = s.start.plus_ms(r.range(0, 600_000));
    let mut sim = Sim::new(s, SimOptions::default());
    let live = sim.run_until(|s| {
        let a = &s.world.apps[0];
        let f = &s.world.elb.forwards[a.prod as usize].effective;
        Forward::weight_of(f, a.target_groups[1]) > 0
    });
    if !live {
        return None;
    }
    let fire_at = sim.now().plus_ms(r.range(0, 3 * poll_ms));
    sim.run_until(|s| s.now() >= fire_at);
    // From just after now: the evaluation that finds it is a later event (an evaluation
    // at this very instant may already have run).
    let from = sim.now().plus_ms(1);
    sim.world
        .force_alarm("web-5xx", from, from.plus_ms(3_600_000));
    let report = sim.run();
    if !report.ok() {
        return None;
    }
    report.deployments.first().and_then(|d| d.alarm_to_blue_ms)
}

/// The p-th percentile (0–100) of sorted values (nearest rank).
pub fn percentile(sorted: &[u64], p: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as u64).div_ceil(100).max(1) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// What one storm run measured (`bluegreen-sim api-storm`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StormReport {
    pub deployments: u64,
    pub violations: usize,
    /// The first few violations, as the auditor words them.
    pub violation_samples: Vec<String>,
    /// Calls AWS's buckets refused.
    pub throttled: u64,
    pub calls: u64,
    /// The plans' lower bound of calls, summed over deployments.
    pub plan_calls_min: u64,
    pub completed: u64,
    pub rolled_back: u64,
    pub failed: u64,
    /// Deployments that rolled back, and how long their rollback commands waited for
    /// the budget (sorted).
    pub rollback_waits_ms: Vec<u64>,
    /// Every deployment's total wait for the budget (sorted).
    pub waits_ms: Vec<u64>,
    /// Virtual time from the first push to the last outcome.
    pub span_ms: u64,
    /// Rollbacks and failures by (outcome, reason).
    pub reasons: std::collections::BTreeMap<(&'static str, &'static str), u64>,
}

impl StormReport {
    pub fn calls_per_plan(&self) -> f64 {
        self.calls as f64 / self.plan_calls_min.max(1) as f64
    }
}

/// `deployments` apps in one account on AWS's real buckets and timings, every push
/// within `window_ms`: all-at-once, canary and linear in turn. One app in twenty ships
/// an image that never gets healthy and one in twenty trips its alarm once green has
/// traffic, so rollbacks start in the middle of the storm. `budget`: the service's own
/// API budget, or none (every command at once, AWS throttles what it must).
pub fn api_storm(
    seed: u64,
    deployments: u32,
    window_ms: u64,
    budget: Option<bluegreen_core::budget::BudgetShape>,
) -> StormReport {
    let mut r = Rng::derive(seed, 0x5707_3000);
    let minute = 60_000;
    let mut s = Scenario::quiet(seed, WorldProfile::aws());
    s.latency_ms = crate::world::SpanMs::new(20, 200);
    s.budget = budget;
    let mut tripped = Vec::new();
    for i in 0..deployments {
        let name = format!("svc{i:04}");
        let mut draft = app_draft(&name);
        draft.strategy = match i % 3 {
            0 => Strategy::AllAtOnce,
            1 => Strategy::Canary {
                percent: 10,
                wait_ms: 2 * minute,
            },
            _ => Strategy::Linear {
                step_percent: 25,
                interval_ms: minute,
            },
        };
        draft.bake_ms = 2 * minute;
        let image = if i % 20 == 7 {
            format!("registry.example/{name}:v2-unhealthy")
        } else {
            if i % 20 == 13 {
                tripped.push(name.clone());
            }
            format!("registry.example/{name}:v2")
        };
        let at = r.range(0, window_ms.max(1));
        s.apps.push(AppPlan::new(draft, &[(at, image.as_str())]));
    }
    let mut sim = Sim::new(s, SimOptions::default());
    // The tripped apps' alarms go off a little after their green takes traffic.
    let mut armed = vec![false; tripped.len()];
    let start = sim.now();
    loop {
        let mut all = true;
        for (k, name) in tripped.iter().enumerate() {
            if armed[k] {
                continue;
            }
            all = false;
            let Some(a) = sim.world.apps.iter().position(|a| &a.name == name) else {
                armed[k] = true;
                continue;
            };
            let app = &sim.world.apps[a];
            let f = &sim.world.elb.forwards[app.prod as usize].effective;
            if Forward::weight_of(f, app.target_groups[1]) > 0 {
                let from = sim.now().plus_ms(1);
                sim.world
                    .force_alarm(&format!("{name}-5xx"), from, from.plus_ms(3_600_000));
                armed[k] = true;
            }
        }
        if all || !sim.step() {
            break;
        }
    }
    let report = sim.run();
    let mut out = StormReport {
        deployments: report.deployments.len() as u64,
        violations: report.violations.len(),
        violation_samples: report
            .violations
            .iter()
            .take(5)
            .map(|v| v.to_string())
            .collect(),
        throttled: report.calls.throttled.iter().sum(),
        calls: report.deployments.iter().map(|d| d.aws_calls).sum(),
        plan_calls_min: report.deployments.iter().map(|d| d.plan_calls_min).sum(),
        ..StormReport::default()
    };
    let mut last = start;
    for d in &report.deployments {
        if d.outcome != Some(bluegreen_core::PhaseName::Completed) {
            let outcome = d.outcome.map_or("unfinished", |o| o.as_str());
            let reason = d.reason.map_or("-", |r| r.as_str());
            *out.reasons.entry((outcome, reason)).or_default() += 1;
        }
        match d.outcome {
            Some(bluegreen_core::PhaseName::Completed) => out.completed += 1,
            Some(bluegreen_core::PhaseName::RolledBack) => {
                out.rolled_back += 1;
                out.rollback_waits_ms.push(d.rollback_budget_wait_ms);
            }
            _ => out.failed += 1,
        }
        out.waits_ms.push(d.budget_wait_ms);
        if let Some(end) = d.ended_at {
            last = last.max(end);
        }
    }
    out.rollback_waits_ms.sort_unstable();
    out.waits_ms.sort_unstable();
    out.span_ms = last.ms_since(start);
    out
}

/// AWS calls per minute of bake for one all-at-once deployment on AWS timings (10 s
/// poll, a ten-minute bake, one alarm, one metric check), with `signal_poll_ms` as its
/// `pacing.signal_poll`: the cost of a hold. `None` when the run never baked.
pub fn bake_calls_per_minute(seed: u64, signal_poll_ms: Option<u64>) -> Option<f64> {
    let mut draft = app_draft("web");
    draft.strategy = Strategy::AllAtOnce;
    draft.bake_ms = 10 * 60_000;
    draft.pacing.signal_poll_ms = signal_poll_ms;
    draft.metrics = vec![bluegreen_core::MetricCheck {
        name: "5xx".into(),
        metric: bluegreen_core::MetricKind::ErrorRate5xx,
        max: Some(5.0),
        max_ratio_to_blue: None,
        floor: 0.0,
        window_ms: 300_000,
    }];
    let mut s = Scenario::quiet(seed, WorldProfile::aws());
    s.apps
        .push(AppPlan::new(draft, &[(0, "registry.example/web:v2")]));
    s.alarm_events = AlarmEvents::PROMPT;
    let mut sim = Sim::new(s, SimOptions::default());
    let baking = |s: &Sim| s.phase_of(0) == Some(bluegreen_core::PhaseName::Bake);
    if !sim.run_until(baking) {
        return None;
    }
    let (t0, c0) = (sim.now(), sim.deps[0].aws_calls);
    sim.run_until(|s| !baking(s));
    let (t1, c1) = (sim.now(), sim.deps[0].aws_calls);
    let minutes = t1.ms_since(t0) as f64 / 60_000.0;
    (minutes > 0.0).then(|| (c1 - c0) as f64 / minutes)
}
