//! Alarm events in the simulated world: CloudWatch announces a watched alarm's change
//! and the service hands it to the deployment (`Input::Alarm`), so production is back
//! on blue within the event's delivery delay instead of at the next poll; lost events
//! leave polling to find the alarm; the auditor checks every accepted event acts at once.

use bluegreen_core::{PhaseName, ReasonKind, Strategy};
use bluegreen_sim::harness::{AlarmEvents, AppPlan, app_draft};
use bluegreen_sim::world::{Forward, SpanMs};
use bluegreen_sim::{RunReport, Scenario, Sim, SimOptions, WorldProfile};

/// A canary on AWS timings with a 30 s poll; once green has its 10 %, the app's alarm
/// goes into ALARM (held for ten minutes) and the run goes on to the end.
fn canary_then_alarm(events: AlarmEvents) -> RunReport {
    let mut draft = app_draft("web");
    draft.strategy = Strategy::Canary {
        percent: 10,
        wait_ms: 1_800_000,
    };
    draft.pacing.poll_interval_ms = 30_000;
    let mut s = Scenario::quiet(7, WorldProfile::aws());
    s.apps
        .push(AppPlan::new(draft, &[(0, "registry.example/web:v2")]));
    s.alarm_events = events;
    let mut sim = Sim::new(s, SimOptions::default());
    let canary = sim.run_until(|s| {
        let a = &s.world.apps[0];
        let f = &s.world.elb.forwards[a.prod as usize].effective;
        Forward::weight_of(f, a.target_groups[1]) == 10
    });
    assert!(canary, "the canary never took traffic");
    let now = sim.now();
    assert!(sim.world.force_alarm("web-5xx", now, now.plus_ms(600_000)));
    let r = sim.run();
    assert!(r.ok(), "auditor violations: {:#?}", r.violations);
    let d = &r.deployments[0];
    assert_eq!(
        (d.outcome, d.reason),
        (Some(PhaseName::RolledBack), Some(ReasonKind::Alarm))
    );
    r
}

#[test]
fn an_alarm_event_puts_production_back_on_blue_within_its_delivery_delay() {
    let evented = canary_then_alarm(AlarmEvents::PROMPT);
    let polled = canary_then_alarm(AlarmEvents::LOST);
    let e = evented.deployments[0].alarm_to_blue_ms.expect("measured");
    let p = polled.deployments[0].alarm_to_blue_ms.expect("measured");
    assert_eq!(evented.alarm_events[2], 1, "one event acted on");
    assert_eq!(polled.alarm_events, [0, 1, 0], "the one event was lost");
    // The event: its delivery (≤ 1.5 s) plus the rollback's write crossing the network.
    assert!(e <= 1_500 + 1_000, "event-driven alarm → blue took {e} ms");
    // Polling: up to a poll interval (30 s, jittered) plus the alarm read's round trip.
    assert!(
        p > e,
        "polling ({p} ms) was not slower than the event ({e} ms)"
    );
    assert!(p <= 33_000 + 2_000, "poll-only alarm → blue took {p} ms");
}

#[test]
fn a_lost_event_leaves_polling_to_find_the_alarm() {
    let r = canary_then_alarm(AlarmEvents::LOST);
    assert_eq!(r.alarm_events[0], 0, "nothing delivered");
    assert!(r.alarm_events[1] >= 1, "the change was lost");
    let p = r.deployments[0].alarm_to_blue_ms.expect("measured");
    assert!(p <= 33_000 + 2_000, "polling found it: {p} ms");
}

#[test]
fn duplicated_and_late_events_are_harmless() {
    let noisy = AlarmEvents {
        duplicate: 1.0,
        late: 1.0,
        late_ms: SpanMs::new(60_000, 120_000),
        ..AlarmEvents::PROMPT
    };
    let r = canary_then_alarm(noisy);
    assert!(r.alarm_events[0] >= 3, "{:?}", r.alarm_events);
    assert_eq!(r.alarm_events[2], 1, "only the first one acted");
}

/// Over many seeds (strategies, alarm moments, every offset between CloudWatch's
/// evaluations and the deployment's polls): with events, production is back on blue
/// within the delivery delay plus a round trip; without, within one poll plus one call.
#[test]
fn alarm_to_blue_is_bounded_by_the_delivery_with_events_and_by_a_poll_without() {
    use bluegreen_sim::measure::{alarm_to_blue_ms, percentile};
    let seeds = 200;
    let run = |events: AlarmEvents| {
        let mut ms: Vec<u64> = (0..seeds)
            .map(|seed| {
                alarm_to_blue_ms(seed, events).unwrap_or_else(|| {
                    panic!(
                        "seed {seed}: no alarm rollback measured; reproduce: cargo run -p bluegreen-sim -- alarm-latency --from {seed} --seeds 1"
                    )
                })
            })
            .collect();
        ms.sort_unstable();
        ms
    };
    let evented = run(AlarmEvents::PROMPT);
    let polled = run(AlarmEvents::LOST);
    let delivery_max = AlarmEvents::PROMPT.delay_ms.hi;
    assert!(
        percentile(&evented, 99) <= delivery_max + 500,
        "event-driven p99 {} ms",
        percentile(&evented, 99)
    );
    // One poll (10 s, jitter ≤ 10 %) plus the alarm read and the write.
    assert!(
        polled.last().copied().unwrap_or(0) <= 11_000 + 1_000,
        "poll-only max {:?} ms",
        polled.last()
    );
    assert!(percentile(&evented, 50) * 3 < percentile(&polled, 50));
}

/// `pacing.signal_poll`: with alarm events wired, a hold reads green's health at every
/// poll and the slow signals (alarms, metrics, task counts) once a minute — a third of
/// the calls — and an alarm still puts production back on blue as fast.
#[test]
fn signal_poll_cuts_a_bakes_calls_to_a_third_and_alarm_rollbacks_stay_as_fast() {
    use bluegreen_sim::measure::{alarm_to_blue_ms_with, bake_calls_per_minute, percentile};
    const SEEDS: u64 = 40;
    let median = |poll: Option<u64>| {
        let mut v: Vec<f64> = (1..=SEEDS)
            .map(|seed| bake_calls_per_minute(seed, poll).expect("the deployment baked"))
            .collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let p99 = |poll: Option<u64>| {
        let mut v: Vec<u64> = (1..=SEEDS)
            .map(|seed| {
                alarm_to_blue_ms_with(seed, AlarmEvents::PROMPT, poll)
                    .unwrap_or_else(|| panic!("seed {seed}: no alarm rollback measured"))
            })
            .collect();
        v.sort_unstable();
        percentile(&v, 99)
    };
    let (every, slow) = (median(None), median(Some(60_000)));
    assert!(
        slow <= every / 3.0 + 0.01,
        "calls per minute of bake: {slow:.1} with signal_poll 60 s vs {every:.1}"
    );
    let (every_ms, slow_ms) = (p99(None), p99(Some(60_000)));
    // Within the events' own delivery delay (0.1–1.5 s) plus the rollback's first call,
    // and never slower than reading every signal at every poll.
    assert!(
        slow_ms <= 2_000.max(every_ms),
        "alarm → blue p99: {slow_ms} ms with signal_poll vs {every_ms} ms"
    );
}
