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
