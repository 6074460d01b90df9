//! Alarm events (`Input::Alarm`): an `ALARM` for a watched alarm starts the rollback at
//! once — its first write is the very next output, at the same instant — while repeats,
//! `OK`, unknown alarms, blind phases and stale redeliveries change nothing and say why.

mod support;

use bluegreen_core::command::AlarmState;
use bluegreen_core::machine::{AlarmVerdict, IgnoredAlarm};
use bluegreen_core::{
    AlarmEvent, CommandKind, Input, Notice, Output, PhaseName, ReasonKind, Timestamp,
};
use support::*;

fn advance_to(r: &mut Run, p: PhaseName) {
    r.until(|r| r.d.phase_name() == p || r.d.is_terminal());
    assert_eq!(r.d.phase_name(), p, "{:#?}", r.d.history());
}

fn event(name: &str, state: AlarmState, at: Timestamp) -> AlarmEvent {
    AlarmEvent {
        name: name.into(),
        state,
        reason: "Threshold Crossed: 1 datapoint [12.0] was greater than 5.0".into(),
        at,
    }
}

/// A bake of ten minutes with a one-minute poll: without the event, the alarm would be
/// read up to a minute late.
fn long_bake() -> Run {
    Run::new(spec(|d| {
        d.bake_ms = 600_000;
        d.pacing.poll_interval_ms = 60_000;
    }))
}

fn ignored(r: &Run) -> Vec<String> {
    r.notices()
        .filter_map(|n| match n {
            Notice::AlarmEvent {
                ignored: Some(why), ..
            } => Some(why.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_alarm_event_sends_the_rollbacks_first_write_at_once() {
    let mut r = long_bake();
    advance_to(&mut r, PhaseName::Bake);
    // Let the bake's first poll go out and come back, so the machine is idle, waiting.
    r.round();
    let before = r.outs.len();
    let at = r.now;
    let e = event("web-5xx", AlarmState::Alarm, at);
    assert_eq!(r.d.alarm_verdict(&e), AlarmVerdict::RollsBack);
    r.d.handle(r.now, Input::Alarm(e)).unwrap();
    r.drain();
    assert_eq!(r.d.phase_name(), PhaseName::Rollback);
    let first_command = r.outs[before..]
        .iter()
        .find_map(|rec| match &rec.out {
            Output::Command(c) => Some((rec.at, c.kind.clone())),
            _ => None,
        })
        .expect("the rollback issues a command at once");
    assert_eq!(
        first_command.0, at,
        "no wait: the same instant as the event"
    );
    assert!(
        matches!(first_command.1, CommandKind::SetListenerWeights { .. }),
        "traffic goes back to blue first: {:?}",
        first_command.1
    );
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::RolledBack);
    let reason = r.d.outcome_reason().unwrap();
    assert_eq!(reason.kind, ReasonKind::Alarm);
    assert!(
        reason
            .detail
            .starts_with("alarm web-5xx went into ALARM at")
            && reason.detail.contains("(event): Threshold Crossed"),
        "{reason}"
    );
    assert_eq!(r.w.prod_weights().1, 0, "production is all blue again");
}

#[test]
fn a_repeat_an_ok_and_an_unknown_alarm_change_nothing() {
    let mut r = long_bake();
    advance_to(&mut r, PhaseName::Bake);
    r.round();
    let now = r.now;
    for (e, why) in [
        (
            event("web-5xx", AlarmState::Ok, now),
            IgnoredAlarm::NotAlarm(AlarmState::Ok),
        ),
        (
            event("web-5xx", AlarmState::InsufficientData, now),
            IgnoredAlarm::NotAlarm(AlarmState::InsufficientData),
        ),
        (
            event("someone-elses-alarm", AlarmState::Alarm, now),
            IgnoredAlarm::NotWatched,
        ),
    ] {
        assert_eq!(r.d.alarm_verdict(&e), AlarmVerdict::Ignored(why));
        r.d.handle(r.now, Input::Alarm(e)).unwrap();
        r.drain();
        assert_eq!(r.d.phase_name(), PhaseName::Bake);
    }
    assert_eq!(ignored(&r).len(), 3, "each one recorded with its reason");
    // The first ALARM rolls back; its repeat is harmless.
    r.d.handle(
        r.now,
        Input::Alarm(event("web-5xx", AlarmState::Alarm, now)),
    )
    .unwrap();
    let repeat = event("web-5xx", AlarmState::Alarm, now);
    assert_eq!(
        r.d.alarm_verdict(&repeat),
        AlarmVerdict::Ignored(IgnoredAlarm::AlreadyRollingBack)
    );
    r.d.handle(r.now, Input::Alarm(repeat)).unwrap();
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::RolledBack);
    let after = event("web-5xx", AlarmState::Alarm, r.now);
    assert_eq!(
        r.d.alarm_verdict(&after),
        AlarmVerdict::Ignored(IgnoredAlarm::Over)
    );
}

#[test]
fn phases_without_traffic_on_green_do_not_act_on_alarm_events() {
    let mut r = long_bake();
    advance_to(&mut r, PhaseName::Deploy);
    let e = event("web-5xx", AlarmState::Alarm, r.now);
    assert_eq!(
        r.d.alarm_verdict(&e),
        AlarmVerdict::Ignored(IgnoredAlarm::PhaseDoesNotWatch(PhaseName::Deploy))
    );
    r.d.handle(r.now, Input::Alarm(e)).unwrap();
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
}

#[test]
fn a_late_redelivery_of_a_passed_alarm_is_stale() {
    let mut r = long_bake();
    advance_to(&mut r, PhaseName::Bake);
    let changed_at = r.now;
    // The bake's poll reads the alarm (OK) after the event's time.
    r.until(|r| {
        r.d.knowledge()
            .alarms
            .as_ref()
            .is_some_and(|a| a.at > changed_at)
    });
    let late = event("web-5xx", AlarmState::Alarm, changed_at);
    let read_at = r.d.knowledge().alarms.as_ref().unwrap().at;
    assert_eq!(
        r.d.alarm_verdict(&late),
        AlarmVerdict::Ignored(IgnoredAlarm::Stale { read_at })
    );
    // An event older than the deployment itself (EventBridge retries for up to a day).
    let ancient = event("web-5xx", AlarmState::Alarm, Timestamp::EPOCH);
    assert!(matches!(
        r.d.alarm_verdict(&ancient),
        AlarmVerdict::Ignored(IgnoredAlarm::BeforeDeployment { .. })
    ));
    r.d.handle(r.now, Input::Alarm(late)).unwrap();
    r.d.handle(r.now, Input::Alarm(ancient)).unwrap();
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
}

#[test]
fn a_paused_deployment_still_rolls_back_on_an_alarm_event() {
    let mut r = long_bake();
    advance_to(&mut r, PhaseName::Bake);
    r.operator(bluegreen_core::OperatorRequest::Pause).unwrap();
    let e = event("web-5xx", AlarmState::Alarm, r.now);
    assert_eq!(r.d.alarm_verdict(&e), AlarmVerdict::RollsBack);
    r.d.handle(r.now, Input::Alarm(e)).unwrap();
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::RolledBack);
}

#[test]
fn green_ready_hooks_run_under_the_alarm_watch_but_the_health_check_before_them_does_not() {
    let mut r = Run::new(full_spec(|d| {
        d.pacing.poll_interval_ms = 60_000;
    }));
    advance_to(&mut r, PhaseName::HealthCheck);
    let e = event("web-5xx", AlarmState::Alarm, r.now);
    assert_eq!(
        r.d.alarm_verdict(&e),
        AlarmVerdict::Ignored(IgnoredAlarm::PhaseDoesNotWatch(PhaseName::HealthCheck)),
        "green has no traffic yet"
    );
    r.until(|r| matches!(r.d.phase(), bluegreen_core::machine::Phase::HealthCheck(h) if h.hooks.is_some()));
    let e = event("web-5xx", AlarmState::Alarm, r.now);
    assert_eq!(r.d.alarm_verdict(&e), AlarmVerdict::RollsBack);
    r.d.handle(r.now, Input::Alarm(e)).unwrap();
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::RolledBack);
}

#[test]
fn an_ignored_alarm_says_why_in_words() {
    let t = Timestamp::from_millis(1_000);
    for (why, text) in [
        (
            IgnoredAlarm::NotWatched,
            "the deployment does not watch this alarm",
        ),
        (
            IgnoredAlarm::NotAlarm(AlarmState::Ok),
            "state Ok is not ALARM",
        ),
        (IgnoredAlarm::Over, "the deployment is over"),
        (IgnoredAlarm::AlreadyRollingBack, "already rolling back"),
        (
            IgnoredAlarm::PhaseDoesNotWatch(PhaseName::Deploy),
            "phase deploy does not watch alarms",
        ),
    ] {
        assert_eq!(why.to_string(), text);
    }
    let before = IgnoredAlarm::BeforeDeployment { created_at: t }.to_string();
    assert!(
        before.starts_with("stale: the event is older than the deployment ("),
        "{before}"
    );
    let stale = IgnoredAlarm::Stale { read_at: t }.to_string();
    assert!(
        stale.starts_with("stale: the alarm was read at "),
        "{stale}"
    );
    assert!(
        stale.ends_with(", after the event, and was not in ALARM"),
        "{stale}"
    );
}

#[test]
fn an_event_newer_than_the_last_read_rolls_back_even_though_that_read_said_ok() {
    let mut r = long_bake();
    advance_to(&mut r, PhaseName::Bake);
    r.until(|r| r.d.knowledge().alarms.is_some());
    let read_at = r.d.knowledge().alarms.as_ref().unwrap().at;
    // The read saw the alarm OK; the alarm changed a millisecond after it.
    let e = event("web-5xx", AlarmState::Alarm, read_at.plus_ms(1));
    assert_eq!(r.d.alarm_verdict(&e), AlarmVerdict::RollsBack);
    // A read after the event that saw the alarm *in* ALARM confirms it: not stale.
    let mut v = serde_json::to_value(&r.d).unwrap();
    v["knowledge"]["alarms"]["value"]["alarms"][0]["state"] = serde_json::json!("ALARM");
    let confirmed: bluegreen_core::Deployment = serde_json::from_value(v).unwrap();
    let older = event(
        "web-5xx",
        AlarmState::Alarm,
        Timestamp::from_millis(read_at.as_millis() - 1),
    );
    assert_eq!(confirmed.alarm_verdict(&older), AlarmVerdict::RollsBack);
    // An event from the very instant the deployment was created is not before it.
    let mut v = serde_json::to_value(&r.d).unwrap();
    v["knowledge"]["alarms"] = serde_json::Value::Null;
    let d: bluegreen_core::Deployment = serde_json::from_value(v).unwrap();
    let at_creation = event("web-5xx", AlarmState::Alarm, d.created_at());
    assert_eq!(d.alarm_verdict(&at_creation), AlarmVerdict::RollsBack);
    let a_moment_before = event(
        "web-5xx",
        AlarmState::Alarm,
        Timestamp::from_millis(d.created_at().as_millis() - 1),
    );
    assert_eq!(
        d.alarm_verdict(&a_moment_before),
        AlarmVerdict::Ignored(IgnoredAlarm::BeforeDeployment {
            created_at: d.created_at()
        })
    );
}
