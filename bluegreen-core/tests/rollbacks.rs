//! Every rollback trigger from every phase where it applies. Each case checks the
//! outcome, the reason, that production went back to 100 % blue *first*, that blue was
//! never scaled, and that green holds nothing at the end.

mod support;

use bluegreen_core::*;
use support::*;

/// Drive until phase `p` (promoting through an approval gate on the way).
fn advance_to(r: &mut Run, p: PhaseName) {
    for _ in 0..4 {
        r.until(|r| {
            r.d.phase_name() == p || r.d.phase_name() == PhaseName::Approval || r.d.is_terminal()
        });
        if r.d.phase_name() == PhaseName::Approval && p != PhaseName::Approval {
            r.operator(OperatorRequest::Promote).unwrap();
            r.until(|r| r.d.phase_name() != PhaseName::Approval);
            continue;
        }
        break;
    }
    assert_eq!(
        r.d.phase_name(),
        p,
        "never reached {p}: {:#?}",
        r.d.history()
    );
}

#[derive(Clone, Copy, Debug)]
enum Trigger {
    Alarm,
    CircuitBreaker,
    NoHealthyTargets,
    MetricBreach,
    Abort,
}

fn inject(r: &mut Run, t: Trigger) {
    match t {
        Trigger::Alarm => r.w.alarms_in_alarm.push("web-5xx".into()),
        Trigger::CircuitBreaker => r.w.failed_tasks = 3,
        Trigger::NoHealthyTargets => r.w.green_healthy = Some(0),
        Trigger::MetricBreach => {
            // 5xx rate 10 % on green (limit 5 %), blue has no data.
            r.w.metrics.insert("m0ga".into(), vec![10.0]);
            r.w.metrics.insert("m0gb".into(), vec![100.0]);
        }
        Trigger::Abort => r
            .operator(OperatorRequest::Abort {
                reason: Some("operator test".into()),
            })
            .expect("abort allowed"),
    }
}

fn expected_kind(t: Trigger, phase: PhaseName) -> ReasonKind {
    match (t, phase) {
        (Trigger::Alarm, _) => ReasonKind::Alarm,
        (Trigger::CircuitBreaker, _) => ReasonKind::CircuitBreaker,
        (Trigger::NoHealthyTargets, _) => ReasonKind::Unhealthy,
        (Trigger::MetricBreach, _) => ReasonKind::Metric,
        (Trigger::Abort, _) => ReasonKind::Aborted,
    }
}

fn assert_clean_rollback(r: &Run, from: PhaseName, kind: ReasonKind) {
    r.assert_phase(PhaseName::RolledBack);
    assert_eq!(
        r.d.outcome_reason().unwrap().kind,
        kind,
        "{:?}",
        r.d.outcome_reason()
    );
    assert_eq!(r.rolled_back_from(), Some(from));
    let cmds = r.rollback_commands();
    assert_eq!(
        cmds.first(),
        Some(&"set-listener-weights"),
        "production first: {cmds:?}"
    );
    // The first rollback write restores production to 100 % blue.
    let first = r
        .outs
        .iter()
        .filter(|o| o.phase == PhaseName::Rollback)
        .find_map(|o| match &o.out {
            Output::Command(c) => Some(c),
            _ => None,
        })
        .unwrap();
    let CommandKind::SetListenerWeights { listener, weights } = &first.kind else {
        unreachable!()
    };
    assert_eq!(listener, &r.d.spec().listener);
    assert_eq!(weights[0].weight, 100);
    assert_eq!(weights[1].weight, 0);
    assert_eq!(r.w.prod_weights(), (100, 0));
    assert_eq!(r.w.tasks(0), 3, "blue untouched");
    assert_eq!(r.w.tasks(1), 0, "green removed");
    assert!(
        !r.commands().any(|c| matches!(&c.kind, CommandKind::ScaleEnvironment { service, .. } if service == "web-a")),
        "blue was never scaled"
    );
}

fn rollback_case(t: Trigger, phase: PhaseName) {
    let mut r = Run::new(full_spec(|d| {
        d.bake_ms = 30_000;
        d.drain_ms = 30_000;
        d.strategy = Strategy::Canary {
            percent: 10,
            wait_ms: 30_000,
        };
    }));
    advance_to(&mut r, phase);
    inject(&mut r, t);
    r.finish();
    assert_clean_rollback(&r, phase, expected_kind(t, phase));
}

macro_rules! cases {
    ($($name:ident: $t:ident in $p:ident;)*) => {
        $(#[test] fn $name() { rollback_case(Trigger::$t, PhaseName::$p) })*
    };
}

cases! {
    alarm_during_test_traffic_rolls_back: Alarm in TestTraffic;
    alarm_during_approval_rolls_back: Alarm in Approval;
    alarm_during_shift_rolls_back: Alarm in Shift;
    alarm_during_bake_rolls_back: Alarm in Bake;
    alarm_during_drain_wait_rolls_back: Alarm in DrainBlue;
    circuit_breaker_during_health_check_rolls_back: CircuitBreaker in HealthCheck;
    circuit_breaker_during_test_traffic_rolls_back: CircuitBreaker in TestTraffic;
    circuit_breaker_during_approval_rolls_back: CircuitBreaker in Approval;
    circuit_breaker_during_shift_rolls_back: CircuitBreaker in Shift;
    circuit_breaker_during_bake_rolls_back: CircuitBreaker in Bake;
    circuit_breaker_during_drain_wait_rolls_back: CircuitBreaker in DrainBlue;
    no_healthy_targets_during_health_check_times_out_into_rollback: NoHealthyTargets in HealthCheck;
    no_healthy_targets_during_test_traffic_rolls_back: NoHealthyTargets in TestTraffic;
    no_healthy_targets_during_approval_rolls_back: NoHealthyTargets in Approval;
    no_healthy_targets_during_shift_rolls_back: NoHealthyTargets in Shift;
    no_healthy_targets_during_bake_rolls_back: NoHealthyTargets in Bake;
    no_healthy_targets_during_drain_wait_rolls_back: NoHealthyTargets in DrainBlue;
    metric_breach_during_shift_rolls_back: MetricBreach in Shift;
    metric_breach_during_bake_rolls_back: MetricBreach in Bake;
    metric_breach_during_drain_wait_rolls_back: MetricBreach in DrainBlue;
    abort_during_create_green_rolls_back: Abort in CreateGreen;
    abort_during_deploy_rolls_back: Abort in Deploy;
    abort_during_health_check_rolls_back: Abort in HealthCheck;
    abort_during_test_traffic_rolls_back: Abort in TestTraffic;
    abort_during_approval_rolls_back: Abort in Approval;
    abort_during_shift_rolls_back: Abort in Shift;
    abort_during_bake_rolls_back: Abort in Bake;
    abort_during_drain_wait_rolls_back: Abort in DrainBlue;
}

#[test]
fn alarms_are_not_watched_before_green_has_traffic() {
    // A production alarm already firing must not block a deploy (it may be the fix):
    // alarms matter once green takes test or production traffic.
    let mut r = Run::new(full_spec(|_| {}));
    r.w.alarms_in_alarm.push("web-5xx".into());
    advance_to(&mut r, PhaseName::TestTraffic);
    r.finish();
    assert_eq!(r.rolled_back_from(), Some(PhaseName::TestTraffic));
}

#[test]
fn green_that_never_becomes_healthy_rolls_back_at_the_health_timeout() {
    let mut r = Run::new(spec(|d| d.timeouts.health_ms = 60_000));
    r.w.green_healthy = Some(2);
    advance_to(&mut r, PhaseName::HealthCheck);
    let entered = r.now;
    r.finish();
    assert_clean_rollback(&r, PhaseName::HealthCheck, ReasonKind::Unhealthy);
    let reason = &r.d.outcome_reason().unwrap().detail;
    assert!(reason.contains("2 of 3 targets healthy"), "{reason}");
    let at =
        r.d.history()
            .iter()
            .find(|t| t.to == PhaseName::Rollback)
            .unwrap()
            .at;
    assert!(at.ms_since(entered) >= 60_000);
}

#[test]
fn unhealthy_targets_reset_the_consecutive_healthy_count() {
    let mut r = Run::new(spec(|d| d.health.healthy_observations_min = 3));
    advance_to(&mut r, PhaseName::HealthCheck);
    r.w.green_unhealthy = 1;
    r.until(|r| {
        r.w.log
            .iter()
            .filter(|c| c.kind.name() == "observe-target-health")
            .count()
            >= 5
    });
    let Phase::HealthCheck(h) = r.d.phase() else {
        panic!("{:?}", r.d.phase_name())
    };
    assert_eq!(h.consecutive_healthy, 0);
    r.w.green_unhealthy = 0;
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
}

#[test]
fn degraded_green_rolls_back_after_the_configured_streak_not_before() {
    let mut r = Run::new(spec(|d| {
        d.health.degraded_observations_max = 3;
        d.strategy = Strategy::Canary {
            percent: 10,
            wait_ms: 600_000,
        };
    }));
    advance_to(&mut r, PhaseName::Shift);
    r.until(|r| r.d.knowledge().prod_weights.green == 10);
    r.w.green_healthy = Some(2);
    let before =
        r.w.log
            .iter()
            .filter(|c| c.kind.name() == "observe-target-health")
            .count();
    r.finish();
    let after =
        r.w.log
            .iter()
            .filter(|c| c.kind.name() == "observe-target-health")
            .count();
    assert_clean_rollback(&r, PhaseName::Shift, ReasonKind::Unhealthy);
    assert_eq!(
        r.d.outcome_reason().unwrap().detail,
        "green had 2 of 3 targets healthy for 3 observations in a row",
        "the watch's streak ends it, not the shift's own check before its next step"
    );
    assert!(
        after - before >= 3,
        "rolled back after {} degraded observations",
        after - before
    );
}

#[test]
fn the_relative_metric_limit_compares_green_with_blue() {
    let mut r = Run::new(full_spec(|d| {
        d.metrics[0].max = None;
        d.metrics[0].max_ratio_to_blue = Some(2.0);
        d.metrics[0].floor = 0.5;
    }));
    advance_to(&mut r, PhaseName::Shift);
    // green 3 %, blue 1 %: 3 > 2 × 1 and above the floor.
    r.w.metrics.insert("m0ga".into(), vec![3.0]);
    r.w.metrics.insert("m0gb".into(), vec![100.0]);
    r.w.metrics.insert("m0ba".into(), vec![1.0]);
    r.w.metrics.insert("m0bb".into(), vec![100.0]);
    r.finish();
    assert_clean_rollback(&r, PhaseName::Shift, ReasonKind::Metric);
    assert!(r.d.outcome_reason().unwrap().detail.contains("× blue"));
}

#[test]
fn a_relative_breach_below_the_floor_is_noise() {
    let mut r = Run::new(full_spec(|d| {
        d.metrics[0].max = None;
        d.metrics[0].floor = 1.0;
    }));
    r.w.metrics.insert("m0ga".into(), vec![0.5]);
    r.w.metrics.insert("m0gb".into(), vec![100.0]);
    r.w.metrics.insert("m0ba".into(), vec![0.01]);
    r.w.metrics.insert("m0bb".into(), vec![100.0]);
    advance_to(&mut r, PhaseName::Shift);
    r.until(|r| r.d.phase_name() == PhaseName::Approval || r.d.is_terminal());
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
}

#[test]
fn deploy_timeout_rolls_back_when_green_never_gets_steady() {
    let mut r = Run::new(spec(|d| d.timeouts.deploy_ms = 30_000));
    r.w.green_running = Some(1);
    advance_to(&mut r, PhaseName::Deploy);
    r.finish();
    assert_clean_rollback(&r, PhaseName::Deploy, ReasonKind::Timeout);
    assert!(
        r.d.outcome_reason()
            .unwrap()
            .detail
            .contains("1 of 3 running")
    );
}

#[test]
fn circuit_breaker_during_deploy_rolls_back() {
    let mut r = Run::example();
    r.w.green_running = Some(1);
    advance_to(&mut r, PhaseName::Deploy);
    r.w.failed_tasks = 3;
    r.finish();
    assert_clean_rollback(&r, PhaseName::Deploy, ReasonKind::CircuitBreaker);
}

#[test]
fn failed_tasks_below_the_breaker_limit_do_not_roll_back() {
    let mut r = Run::example();
    r.w.failed_tasks = 2;
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
}

#[test]
fn approval_without_promote_rolls_back_at_the_timeout() {
    let mut r = Run::new(spec(|d| d.approval_timeout_ms = Some(120_000)));
    advance_to(&mut r, PhaseName::Approval);
    let entered = r.now;
    r.finish();
    assert_clean_rollback(&r, PhaseName::Approval, ReasonKind::Timeout);
    assert!(r.now.ms_since(entered) >= 120_000);
}

#[test]
fn a_failing_hook_rolls_back_from_its_stage() {
    for (hook, phase) in [
        ("ready", PhaseName::HealthCheck),
        ("test", PhaseName::TestTraffic),
        ("before", PhaseName::Shift),
        ("after", PhaseName::Bake),
    ] {
        let mut r = Run::new(full_spec(|_| {}));
        r.w.hooks.insert(
            hook.into(),
            [Ok(HookVerdict::Fail {
                reason: "smoke test failed".into(),
            })]
            .into(),
        );
        advance_to(&mut r, phase);
        r.finish();
        assert_clean_rollback(&r, phase, ReasonKind::Hook);
        assert!(r.d.outcome_reason().unwrap().detail.contains(hook));
    }
}

/// A full deployment whose green-ready hook says "not yet" twice, then passes.
fn ready_hook_passing_on_its_third_call() -> Run {
    let mut r = Run::new(full_spec(|_| {}));
    r.w.hooks.insert(
        "ready".into(),
        [
            Ok(HookVerdict::NotYet),
            Ok(HookVerdict::NotYet),
            Ok(HookVerdict::Pass),
        ]
        .into(),
    );
    r
}

#[test]
fn a_hook_answering_not_yet_is_called_again_until_it_passes() {
    let mut r = ready_hook_passing_on_its_third_call();
    advance_to(&mut r, PhaseName::TestTraffic);
    let calls: Vec<(String, u32)> = r
        .commands()
        .filter_map(|c| match &c.kind {
            CommandKind::CallHook(h) if h.name == "ready" => {
                Some((c.id.to_string(), h.payload.call))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("web-1/hook-ready-1".to_string(), 1),
            ("web-1/hook-ready-2".to_string(), 2),
            ("web-1/hook-ready-3".to_string(), 3)
        ],
        "each call numbered, in its id and its payload"
    );
}

#[test]
fn a_pause_while_a_hook_says_not_yet_does_not_count_against_its_deadline() {
    let mut r = ready_hook_passing_on_its_third_call();
    r.until(|r| {
        r.commands()
            .any(|c| matches!(&c.kind, CommandKind::CallHook(h) if h.name == "ready"))
    });
    r.round();
    r.operator(OperatorRequest::Pause).unwrap();
    // An hour paused: far past the hook's 30 s deadline, counted from its first call.
    r.now = r.now.plus_ms(3_600_000);
    r.operator(OperatorRequest::Resume).unwrap();
    advance_to(&mut r, PhaseName::TestTraffic);
}

#[test]
fn a_hook_that_never_decides_fails_at_its_deadline() {
    let mut r = Run::new(full_spec(|_| {}));
    r.w.hooks.insert(
        "ready".into(),
        std::iter::repeat_n(Ok(HookVerdict::NotYet), 1000).collect(),
    );
    r.finish();
    assert_clean_rollback(&r, PhaseName::HealthCheck, ReasonKind::Hook);
    assert!(
        r.d.outcome_reason()
            .unwrap()
            .detail
            .contains("no verdict within 30s")
    );
}

#[test]
fn an_unreachable_hook_is_retried_then_fails_its_stage() {
    let mut r = Run::new(full_spec(|_| {}));
    r.w.hooks.insert(
        "before".into(),
        std::iter::repeat_n(Err(err(ErrorClass::Retryable, "ConnectionRefused")), 100).collect(),
    );
    advance_to(&mut r, PhaseName::Shift);
    r.finish();
    assert_clean_rollback(&r, PhaseName::Shift, ReasonKind::Hook);
    let calls = r
        .commands()
        .filter(|c| matches!(&c.kind, CommandKind::CallHook(h) if h.name == "before"))
        .count();
    assert_eq!(calls, r.d.spec().pacing.attempts_max as usize);
}

#[test]
fn a_failing_rollback_hook_is_recorded_and_the_rollback_still_finishes() {
    let mut r = Run::new(full_spec(|_| {}));
    r.w.hooks.insert(
        "on-rollback".into(),
        [Ok(HookVerdict::Fail {
            reason: "pager down".into(),
        })]
        .into(),
    );
    advance_to(&mut r, PhaseName::Bake);
    r.operator(OperatorRequest::Abort { reason: None }).unwrap();
    r.finish();
    assert_clean_rollback(&r, PhaseName::Bake, ReasonKind::Aborted);
    assert!(
        r.notices()
            .any(|n| matches!(n, Notice::RollbackHookFailed { name, .. } if name == "on-rollback"))
    );
    assert_eq!(
        r.commands()
            .filter(|c| matches!(&c.kind, CommandKind::CallHook(h) if h.name == "on-rollback"))
            .count(),
        1,
        "a failed rollback hook is not called again: the rollback moves past it"
    );
    // Order: production, test listener, hook, then green.
    let cmds = r.rollback_commands();
    let pos = |k: &str| cmds.iter().position(|c| *c == k).unwrap();
    assert!(pos("set-listener-weights") < pos("call-hook"));
    assert!(pos("call-hook") < pos("scale-environment"));
    assert_eq!(
        cmds.iter()
            .filter(|c| **c == "set-listener-weights")
            .count(),
        2,
        "production and test"
    );
}

#[test]
fn rollback_restores_the_test_listener_to_blue_after_production() {
    let mut r = Run::new(full_spec(|_| {}));
    advance_to(&mut r, PhaseName::Approval);
    r.operator(OperatorRequest::Abort { reason: None }).unwrap();
    r.finish();
    let writes: Vec<&ListenerRef> = r
        .outs
        .iter()
        .filter(|o| o.phase == PhaseName::Rollback)
        .filter_map(|o| match &o.out {
            Output::Command(c) => match &c.kind {
                CommandKind::SetListenerWeights { listener, .. } => Some(listener),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(
        writes,
        [
            &r.d.spec().listener,
            r.d.spec().test_listener.as_ref().unwrap()
        ]
    );
}

#[test]
fn abort_is_refused_once_blue_is_being_removed() {
    let mut r = Run::new(spec(|d| d.strategy = Strategy::AllAtOnce));
    r.until(|r| matches!(r.d.phase(), Phase::DrainBlue(d) if !d.is_waiting()));
    let refused = r
        .operator(OperatorRequest::Abort { reason: None })
        .unwrap_err();
    assert_eq!(refused.phase, PhaseName::DrainBlue);
    assert!(
        refused.reason.contains("deploy the previous image"),
        "{}",
        refused.reason
    );
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
}

#[test]
fn a_fatal_error_on_a_forward_write_rolls_back_naming_the_command() {
    let mut r = Run::example();
    r.w.fault(
        "ensure-green",
        Fault::Error(err(ErrorClass::Fatal, "AccessDeniedException")),
    );
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::RolledBack);
    let reason = r.d.outcome_reason().unwrap();
    assert_eq!(reason.kind, ReasonKind::CommandFailed);
    assert!(
        reason.detail.contains("ensure-green") && reason.detail.contains("AccessDeniedException")
    );
}

#[test]
fn retries_are_bounded_and_exhausting_them_rolls_back() {
    let mut r = Run::example();
    advance_to(&mut r, PhaseName::Shift);
    for _ in 0..100 {
        r.w.fault(
            "set-listener-weights",
            Fault::Error(err(ErrorClass::Retryable, "ThrottlingException")),
        );
    }
    r.until(|r| r.d.phase_name() == PhaseName::Rollback);
    assert_eq!(r.d.outcome_reason(), None);
    let Phase::Rollback(rb) = r.d.phase() else {
        unreachable!()
    };
    assert_eq!(rb.reason.kind, ReasonKind::RetriesExhausted);
    let last_shift = r
        .commands()
        .filter(|c| c.id.as_str().contains("/shift-"))
        .last()
        .unwrap();
    assert_eq!(last_shift.attempt, 8, "attempts_max");
    let same_step = r.commands().filter(|c| c.id == last_shift.id).count();
    assert_eq!(same_step, 8, "every attempt reuses the step's id");
    // The rollback's own writes keep being throttled: it tries harder (2×), then fails
    // with what an operator must do.
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Failed);
    let Phase::Failed {
        action_required, ..
    } = r.d.phase()
    else {
        unreachable!()
    };
    assert!(
        action_required.contains("forward 100 %"),
        "{action_required}"
    );
    let rollback_attempts = r
        .commands()
        .filter(|c| c.id.as_str().ends_with("/rollback-production"))
        .count();
    assert_eq!(rollback_attempts, 16);
}

/// Drain-blue has no safer way out than forward (green serves everything and baked), so a
/// throttled removal of blue gets the rollback's doubled attempt limit, not a forward
/// phase's.
#[test]
fn a_throttled_blue_removal_keeps_trying_past_the_forward_attempt_limit_and_completes() {
    let mut r = Run::example();
    advance_to(&mut r, PhaseName::DrainBlue);
    let limit = r.d.spec().pacing.attempts_max;
    for _ in 0..limit + 2 {
        r.w.fault(
            "scale-environment",
            Fault::Error(err(ErrorClass::Retryable, "ThrottlingException")),
        );
    }
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
    let last = r
        .commands()
        .filter(|c| c.id.as_str().ends_with("/scale-down-blue"))
        .map(|c| c.attempt)
        .max()
        .unwrap();
    assert!(last > limit, "attempt {last} of a forward limit {limit}");
}

#[test]
fn a_blue_removal_throttled_beyond_twice_the_limit_fails_as_retries_exhausted() {
    let mut r = Run::example();
    advance_to(&mut r, PhaseName::DrainBlue);
    let limit = r.d.spec().pacing.attempts_max;
    for _ in 0..100 {
        r.w.fault(
            "scale-environment",
            Fault::Error(err(ErrorClass::Retryable, "ThrottlingException")),
        );
    }
    r.finish();
    let Phase::Failed { reason, .. } = r.d.phase() else {
        panic!("expected failed, got {:?}", r.d.phase_name())
    };
    assert_eq!(reason.kind, ReasonKind::RetriesExhausted);
    let last = r
        .commands()
        .filter(|c| c.id.as_str().ends_with("/scale-down-blue"))
        .map(|c| c.attempt)
        .max()
        .unwrap();
    assert_eq!(last, 2 * limit);
}

#[test]
fn retry_delays_grow_between_attempts() {
    let mut r = Run::example();
    for _ in 0..3 {
        r.w.fault(
            "preflight",
            Fault::Error(err(ErrorClass::Retryable, "ThrottlingException")),
        );
    }
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
    let times: Vec<Timestamp> = r
        .outs
        .iter()
        .filter(|o| matches!(&o.out, Output::Command(c) if c.kind.name() == "preflight"))
        .map(|o| o.at)
        .collect();
    assert_eq!(times.len(), 4);
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1].ms_since(w[0])).collect();
    // retry_min 100 ms doubling, each plus < 100 % jitter.
    assert!((100..200).contains(&gaps[0]), "{gaps:?}");
    assert!((200..400).contains(&gaps[1]), "{gaps:?}");
    assert!((400..800).contains(&gaps[2]), "{gaps:?}");
}

/// A green that never empties after the rollback: at the scale-down deadline the machine
/// takes one last look at once — even when the deadline falls between two ticks of its
/// poll grid and no look is out (found by replaying an emulator journal in the simulated
/// world: it used to ask to wait until "now") — and then fails with what is left.
#[test]
fn a_green_that_never_empties_fails_the_rollback_with_a_last_look_at_the_deadline() {
    for scale_down_ms in [30_000, 30_500, 31_700, 45_123] {
        let mut r = Run::new(spec(|d| {
            d.timeouts.scale_down_ms = scale_down_ms;
            d.pacing.poll_interval_ms = 7_000;
        }));
        advance_to(&mut r, PhaseName::HealthCheck);
        r.operator(OperatorRequest::Abort { reason: None }).unwrap();
        let aborted_at = r.now;
        r.w.green_stuck = Some(2);
        r.finish();
        let failed_at = r.d.history().last().unwrap().at;
        assert!(
            failed_at.ms_since(aborted_at) >= scale_down_ms,
            "{scale_down_ms}: not before green had its whole time to empty"
        );
        assert_eq!(r.d.phase_name(), PhaseName::Failed, "{:#?}", r.d.history());
        let reason = r.d.outcome_reason().unwrap();
        assert!(
            reason.detail.contains("green still holds"),
            "{scale_down_ms}: {reason}"
        );
        // The last look went out no later than the deadline's instant.
        let last_look = r
            .outs
            .iter()
            .rev()
            .find(
                |o| matches!(&o.out, Output::Command(c) if c.id.as_str().contains("verify-green")),
            )
            .map(|o| o.at)
            .unwrap();
        assert!(last_look <= failed_at);
    }
}

#[test]
fn create_green_that_cannot_finish_in_time_rolls_back_on_its_own_clock() {
    let mut r = Run::new(spec(|d| {
        d.timeouts.deploy_ms = 30_000;
        d.pacing.retry_max_ms = 5_000;
    }));
    // ECS throttles the registration for longer than the create's 30 s, then takes it:
    // the answer comes too late, and the create stops there (it does not go on to
    // create a green it no longer has time to finish).
    for _ in 0..20 {
        r.w.fault(
            "register-task-definition",
            Fault::Error(err(ErrorClass::Throttled, "ThrottlingException")),
        );
    }
    r.finish();
    assert_clean_rollback(&r, PhaseName::CreateGreen, ReasonKind::Timeout);
    let reason = r.d.outcome_reason().unwrap();
    assert!(
        reason.detail.contains("green was not created within"),
        "{reason}"
    );
    assert!(
        !r.commands().any(|c| c.kind.name() == "ensure-green"),
        "no green environment is started once the create's time is up"
    );
}

#[test]
fn a_green_task_set_that_never_reports_steady_state_times_out_in_deploy() {
    let mut r = Run::new(spec(|d| {
        d.timeouts.deploy_ms = 30_000;
        task_set_model(d);
    }));
    // Every count is right, but ECS never calls the task set steady.
    r.w.green_stabilizing = true;
    r.finish();
    assert_clean_rollback(&r, PhaseName::Deploy, ReasonKind::Timeout);
    let reason = r.d.outcome_reason().unwrap();
    assert!(
        reason.detail.starts_with("green not steady within"),
        "{reason}"
    );
}

#[test]
fn a_blue_that_never_empties_after_its_scale_down_fails_with_what_it_still_holds() {
    let mut r = Run::example();
    r.w.blue_left = Some((1, 1));
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Failed, "{:#?}", r.d.history());
    let reason = r.d.outcome_reason().unwrap();
    assert_eq!(reason.kind, ReasonKind::Timeout);
    assert!(
        reason
            .detail
            .starts_with("blue still holds 2 task(s) (desired 0) ")
            && reason.detail.ends_with(" after scale-down"),
        "running and pending both count: {reason}"
    );
}

#[test]
fn a_blue_that_empties_after_its_first_verify_completes() {
    for left in [(1, 0), (0, 1)] {
        let mut r = Run::example();
        r.w.blue_left = Some(left);
        r.until(|r| r.commands().any(|c| c.id.as_str().contains("verify-blue")));
        // The first look still sees blue's tasks; they are gone by the next.
        r.w.blue_left = None;
        r.finish();
        assert_eq!(
            r.d.phase_name(),
            PhaseName::Completed,
            "{left:?}: {:#?}",
            r.d.history()
        );
        let verifies = r
            .commands()
            .filter(|c| c.id.as_str().contains("verify-blue"))
            .count();
        assert!(
            verifies >= 2,
            "{left:?}: looked again after the first ({verifies})"
        );
    }
}

#[test]
fn a_green_task_set_short_of_tasks_times_out_in_deploy() {
    let mut r = Run::new(spec(|d| {
        d.timeouts.deploy_ms = 30_000;
        task_set_model(d);
    }));
    // One of three running and none pending: tasks that failed to place.
    r.w.green_running = Some(1);
    r.finish();
    assert_clean_rollback(&r, PhaseName::Deploy, ReasonKind::Timeout);
}

#[test]
fn a_failed_blue_removal_that_finds_green_dark_before_its_resend_rolls_back_cleanly() {
    let mut r = Run::example();
    r.w.fault(
        "scale-environment",
        Fault::Error(err(ErrorClass::Retryable, "ServiceUnavailable")),
    );
    r.until(|r| {
        r.commands()
            .any(|c| c.id.as_str().contains("scale-down-blue"))
    });
    // The scale-down was refused unapplied; by its re-send green has gone dark.
    r.w.green_healthy = Some(0);
    r.finish();
    // A plain rollback from the drain wait (blue is whole), not a failure that needs an
    // operator, though a scale-down of blue was sent once.
    r.assert_phase(PhaseName::RolledBack);
    assert_eq!(r.rolled_back_from(), Some(PhaseName::DrainBlue));
    assert_eq!(r.w.prod_weights(), (100, 0));
    assert_eq!(r.w.tasks(0), 3, "blue was never scaled down");
    assert_eq!(r.w.tasks(1), 0, "green removed");
    let reason = r.d.outcome_reason().unwrap();
    assert_eq!(reason.kind, ReasonKind::Unhealthy);
    assert!(
        reason
            .detail
            .starts_with("green has no healthy targets; not retrying scale-environment"),
        "{reason}"
    );
}

#[test]
fn a_rollback_that_cannot_restore_the_test_listener_says_production_is_back_and_what_is_left() {
    let mut r = Run::new(full_spec(|d| d.approval_timeout_ms = None));
    advance_to(&mut r, PhaseName::Bake);
    // Production's restore goes through; the test listener's, next, is refused.
    r.w.fault("set-listener-weights", Fault::Pass);
    r.w.fault(
        "set-listener-weights",
        Fault::Error(err(ErrorClass::Fatal, "AccessDenied")),
    );
    r.operator(OperatorRequest::Abort { reason: None }).unwrap();
    r.finish();
    let Phase::Failed {
        action_required, ..
    } = r.d.phase()
    else {
        panic!("{:#?}", r.d.history())
    };
    assert_eq!(
        action_required,
        "production is back on web-a; set the test listener to forward 100 % to web-a, \
         then scale service web-b to 0"
    );
    assert_eq!(r.w.prod_weights(), (100, 0));
}

#[test]
fn a_task_set_rollback_removes_only_this_deployments_task_sets() {
    let mut r = Run::new(spec(task_set_model));
    advance_to(&mut r, PhaseName::HealthCheck);
    // Someone else's task set appears on the same service meanwhile.
    let foreign = r.w.task_set_by_hand("other-1");
    r.operator(OperatorRequest::Abort { reason: None }).unwrap();
    r.finish();
    r.assert_phase(PhaseName::RolledBack);
    let deleted: Vec<Name> = r
        .commands()
        .filter_map(|c| match &c.kind {
            CommandKind::DeleteEnvironment { task_set, .. } => Some(task_set.clone()),
            _ => None,
        })
        .collect();
    let ours =
        r.d.knowledge()
            .green_task_set
            .clone()
            .expect("green was created");
    assert_eq!(
        deleted,
        [ours],
        "neither blue's nor someone else's ({foreign})"
    );
}

/// Task-set model, aborted in the health check: run until the rollback's find (its one
/// read of the service) has been answered. Returns the time of that answer, which is also
/// when the rollback's verification starts (the ideal world answers at once).
fn aborted_until_found() -> (Run, Timestamp) {
    let mut r = Run::new(spec(task_set_model));
    advance_to(&mut r, PhaseName::HealthCheck);
    r.operator(OperatorRequest::Abort { reason: None }).unwrap();
    r.until(|r| {
        r.w.log
            .iter()
            .any(|c| c.id.as_str().ends_with("rollback-find-green"))
    });
    let at = r.now;
    (r, at)
}

/// When the command deleting `task_set` went out.
fn deleted_at(r: &Run, task_set: &str) -> Option<Timestamp> {
    r.outs.iter().find_map(|rec| match &rec.out {
        Output::Command(c) => match &c.kind {
            CommandKind::DeleteEnvironment { task_set: t, .. } if t == task_set => Some(rec.at),
            _ => None,
        },
        _ => None,
    })
}

/// A task set of deployment `web-1` on green's target group that the ideal cloud never
/// made (a create answered late), reported with `status`. `DRAINING`: deleted, but its
/// tasks never stop, so it never goes away.
fn ours_unseen(r: &Run, id: &str, status: &str) -> TaskSetStatus {
    TaskSetStatus {
        id: id.into(),
        arn: format!("arn:aws:ecs:us-east-1:123456789012:task-set/prod/web/{id}").into(),
        status: status.into(),
        external_id: Some("web-1".into()),
        task_definition: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2".into(),
        target_groups: [r.d.spec().target_groups[1].clone()].into(),
        computed_desired_count: 0,
        running_count: 1,
        pending_count: 0,
        stability_status: "STEADY_STATE".into(),
    }
}

/// The rollback failed at its verification deadline with green still holding `what`.
fn assert_green_still_holds(r: &Run, what: &str) {
    assert_eq!(r.d.phase_name(), PhaseName::Failed, "{:#?}", r.d.history());
    let reason = r.d.outcome_reason().unwrap();
    let words = format!("but green still holds {what} after ");
    assert!(reason.detail.contains(&words), "{reason}");
}

/// As `aborted_until_found`, with a task set of ours that never finishes draining.
fn aborted_with_a_stuck_task_set() -> (Run, Timestamp) {
    let (mut r, found_at) = aborted_until_found();
    let stuck = ours_unseen(&r, "ecs-svc-stuck", "DRAINING");
    r.w.extra_task_sets.push(stuck);
    (r, found_at)
}

#[test]
fn a_task_set_of_ours_created_after_the_rollbacks_find_is_deleted_at_once() {
    let (mut r, found_at) = aborted_until_found();
    // A create of this deployment's, answered only now: known by its external id alone.
    let late = ours_unseen(&r, "ecs-svc-late", "ACTIVE");
    r.w.extra_task_sets.push(late.clone());
    let late = late.arn;
    r.finish();
    r.assert_phase(PhaseName::RolledBack);
    let at = deleted_at(&r, &late).expect("the late task set is deleted");
    assert_eq!(
        at, found_at,
        "at the first look that shows it, not at the deadline"
    );
}

#[test]
fn a_task_set_of_ours_that_never_finishes_draining_fails_the_rollback_at_its_deadline() {
    let (mut r, found_at) = aborted_with_a_stuck_task_set();
    r.finish();
    assert_green_still_holds(&r, "1 task set(s)");
    let failed_at = r.d.history().last().expect("transitions").at;
    let deadline = found_at.plus_ms(r.d.spec().timeouts.scale_down_ms);
    assert_eq!(failed_at, deadline, "neither earlier nor re-armed");
}

#[test]
fn a_task_set_first_seen_at_the_rollbacks_deadline_is_reported_not_chased() {
    let (mut r, found_at) = aborted_with_a_stuck_task_set();
    let deadline = found_at.plus_ms(r.d.spec().timeouts.scale_down_ms);
    // Up to the moment the machine waits for its last look, at the deadline.
    r.until(|r| r.wake_at == Some(deadline) && r.inbox.is_empty());
    assert!(!r.d.is_terminal(), "{:#?}", r.d.history());
    let late = ours_unseen(&r, "ecs-svc-late", "ACTIVE");
    r.w.extra_task_sets.push(late.clone());
    let late = late.arn;
    r.finish();
    assert_green_still_holds(&r, "2 task set(s)");
    assert_eq!(
        deleted_at(&r, &late),
        None,
        "the deadline bounds the rollback"
    );
}

#[test]
fn green_with_tasks_still_pending_after_its_scale_down_is_not_empty() {
    let mut r = Run::example();
    advance_to(&mut r, PhaseName::HealthCheck);
    r.operator(OperatorRequest::Abort { reason: None }).unwrap();
    // Green's scale-down to zero took, but two tasks are still pending (none running).
    r.w.green_left = Some((0, 2));
    r.finish();
    assert_green_still_holds(&r, "2 task(s) (desired 0)");
}

#[test]
fn a_scale_to_zero_that_never_took_counts_as_not_emptied_even_with_no_task_left() {
    // Blue: its desired count stays at 3 after the scale-down, with no task running.
    let mut r = Run::example();
    r.w.blue_keeps_desired = Some(3);
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Failed, "{:#?}", r.d.history());
    let reason = r.d.outcome_reason().unwrap();
    assert!(
        reason
            .detail
            .starts_with("blue still holds 0 task(s) (desired 3) "),
        "{reason}"
    );
    // Green, in a rollback: the same.
    let mut r = Run::example();
    advance_to(&mut r, PhaseName::HealthCheck);
    r.operator(OperatorRequest::Abort { reason: None }).unwrap();
    r.w.green_keeps_desired = Some(3);
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Failed, "{:#?}", r.d.history());
    let reason = r.d.outcome_reason().unwrap();
    assert!(
        reason
            .detail
            .contains("green still holds 0 task(s) (desired 3)"),
        "{reason}"
    );
}

/// Linear in two 50 % steps a minute apart, polled every 10 s with a 60 s health timeout,
/// run to green's 50 %: from now green has 2 of its 3 targets healthy, so the second
/// step's guard waits (and times out). The degraded streak (100 looks) outlasts it.
fn second_step_guard_will_wait() -> Run {
    let mut r = Run::new(spec(|d| {
        d.pacing.poll_interval_ms = 10_000;
        d.timeouts.health_ms = 60_000;
        d.health.degraded_observations_max = 100;
        d.strategy = Strategy::Linear {
            step_percent: 50,
            interval_ms: 60_000,
        };
    }));
    advance_to(&mut r, PhaseName::Shift);
    r.until(|r| r.d.knowledge().prod_weights.green == 50);
    r.w.green_healthy = Some(2);
    r
}

/// The shift guard's wait for a fully healthy green is a clock like any other: a pause
/// while it waits pushes its health deadline back by the pause, so a resume does not
/// roll back at once for time spent paused.
#[test]
fn a_pause_while_the_shift_guard_waits_pushes_back_its_health_deadline() {
    let mut r = second_step_guard_will_wait();
    let guarding = |r: &Run| match r.d.phase() {
        Phase::Shift(s) if s.index == 1 => match s.stage {
            machine::ShiftStage::Guarding { since } => Some(since),
            _ => None,
        },
        _ => None,
    };
    r.until(|r| guarding(r).is_some() || r.d.is_terminal());
    let since = guarding(&r).expect("the second step's guard is waiting");
    r.operator(OperatorRequest::Pause).unwrap();
    let paused_at = r.now;
    let pause_ms = 120_000; // twice the health timeout
    r.until(|r| r.now.ms_since(paused_at) >= pause_ms || r.d.is_terminal());
    assert_eq!(
        r.d.phase_name(),
        PhaseName::Paused,
        "{:?}",
        r.d.outcome_reason()
    );
    r.operator(OperatorRequest::Resume).unwrap();
    let resumed_at = r.now;
    assert_eq!(r.d.phase_name(), PhaseName::Shift, "resumed into the guard");
    r.finish();
    assert_clean_rollback(&r, PhaseName::Shift, ReasonKind::Unhealthy);
    let reason = &r.d.outcome_reason().unwrap().detail;
    assert!(reason.contains("before shift step 2"), "{reason}");
    let rolled_at =
        r.d.history()
            .iter()
            .find(|t| t.to == PhaseName::Rollback)
            .unwrap()
            .at;
    // What was left of the guard's minute when the pause began, counted from the resume.
    let left_ms = 60_000 - paused_at.ms_since(since);
    assert!(
        rolled_at.ms_since(resumed_at) >= left_ms,
        "rolled back {} ms after the resume; {left_ms} ms of the guard were left",
        rolled_at.ms_since(resumed_at)
    );
}

#[test]
fn a_weight_write_retried_after_green_went_dark_looks_first_and_rolls_back_unwritten() {
    let mut r = Run::new(spec(|d| {
        d.pacing.retry_min_ms = 30_000;
        d.pacing.retry_max_ms = 30_000;
    }));
    r.w.fault(
        "set-listener-weights",
        Fault::Error(err(ErrorClass::Retryable, "ThrottlingException")),
    );
    r.until(|r| {
        r.w.log
            .iter()
            .any(|c| c.kind.name() == "set-listener-weights")
    });
    assert_eq!(r.d.phase_name(), PhaseName::Shift);
    // Green goes dark while the first shift write waits for its retry.
    r.w.green_healthy = Some(0);
    r.finish();
    r.assert_phase(PhaseName::RolledBack);
    let reason = r.d.outcome_reason().unwrap();
    assert_eq!(reason.kind, ReasonKind::Unhealthy, "{reason}");
    assert!(
        reason
            .detail
            .starts_with("green has no healthy targets; not retrying set-listener-weights"),
        "{reason}"
    );
    assert_eq!(
        r.prod_green_writes(),
        [10, 0],
        "the failed attempt, then the rollback's: the retry never went out"
    );
}

#[test]
fn a_shift_guard_that_times_out_gives_elbv2s_reasons_for_the_targets_not_healthy() {
    for with_reasons in [false, true] {
        // One of green's targets is still registering when the second step's guard looks.
        let mut r = second_step_guard_will_wait();
        if with_reasons {
            r.w.edit_green_health = Some(|h| {
                h.initial += 1;
                h.note_reason(
                    "initial",
                    "Elb.RegistrationInProgress",
                    Some("Target registration is in progress".into()),
                    1,
                );
            });
        }
        r.finish();
        assert_clean_rollback(&r, PhaseName::Shift, ReasonKind::Unhealthy);
        let reason = &r.d.outcome_reason().unwrap().detail;
        assert!(
            reason.contains("before shift step 2 (2 of 3 healthy, 0 unhealthy"),
            "{reason}"
        );
        assert_eq!(
            reason.contains(
                "; targets: 2 healthy, 1 initial (1× Elb.RegistrationInProgress: Target registration is in progress)"
            ),
            with_reasons,
            "{reason}"
        );
    }
}

#[test]
fn the_next_shift_step_waits_for_a_look_at_green_taken_after_the_hold_ended() {
    // A 65 s hold ends between two 10 s polls: the last look is 5 s old by then.
    let mut r = Run::new(spec(|d| {
        d.strategy = Strategy::Linear {
            step_percent: 50,
            interval_ms: 65_000,
        };
    }));
    advance_to(&mut r, PhaseName::Shift);
    r.finish();
    r.assert_phase(PhaseName::Completed);
    let sent: Vec<(Timestamp, &'static str, String)> = r
        .outs
        .iter()
        .filter_map(|o| match &o.out {
            Output::Command(c) => Some((o.at, c.kind.name(), c.id.to_string())),
            _ => None,
        })
        .collect();
    let (i, (at, _, _)) = sent
        .iter()
        .enumerate()
        .find(|(_, c)| c.2.ends_with("/shift-1"))
        .expect("the second step's write");
    let looked = sent[..i]
        .iter()
        .rev()
        .take_while(|c| c.0 == *at)
        .any(|c| c.1 == "observe-target-health");
    assert!(
        looked,
        "a look in the same instant, before the write: {sent:#?}"
    );
}
