//! Operator requests (promote, pause, resume, abort), ambiguous writes, restarts,
//! preflight refusals and corrupted snapshots.

mod support;

use bluegreen_core::*;
use support::*;

fn advance_to(r: &mut Run, p: PhaseName) {
    r.until(|r| r.d.phase_name() == p || r.d.is_terminal());
    assert_eq!(r.d.phase_name(), p, "{:#?}", r.d.history());
}

// ----- promote -----

#[test]
fn promote_passes_the_approval_gate() {
    let mut r = Run::new(spec(|d| d.approval_timeout_ms = Some(3_600_000)));
    advance_to(&mut r, PhaseName::Approval);
    let waited_from = r.now;
    // Nothing moves while waiting for a human.
    r.until(|r| r.now.ms_since(waited_from) > 600_000);
    assert_eq!(r.d.phase_name(), PhaseName::Approval);
    assert!(r.prod_green_writes().is_empty());
    r.operator(OperatorRequest::Promote).unwrap();
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
}

#[test]
fn promote_ends_a_canary_hold_early() {
    let mut r = Run::new(spec(|d| {
        d.strategy = Strategy::Canary {
            percent: 10,
            wait_ms: 3_600_000,
        }
    }));
    r.until(|r| matches!(r.d.phase(), Phase::Shift(s) if matches!(s.stage, machine::ShiftStage::Holding { .. })));
    let held_from = r.now;
    r.operator(OperatorRequest::Promote).unwrap();
    r.until_phase(PhaseName::Bake);
    assert!(
        r.now.ms_since(held_from) < 60_000,
        "promote cut the hour-long hold short"
    );
}

#[test]
fn promote_ends_the_bake_early() {
    let mut r = Run::new(spec(|d| d.bake_ms = 3_600_000));
    r.until(|r| matches!(r.d.phase(), Phase::Bake(b) if b.until.is_some()));
    let from = r.now;
    r.operator(OperatorRequest::Promote).unwrap();
    r.until_phase(PhaseName::DrainBlue);
    assert!(r.now.ms_since(from) < 60_000);
}

#[test]
fn promote_ends_the_test_traffic_hold_early_but_not_while_its_hooks_run() {
    let mut r = Run::new(full_spec(|d| {
        d.test_traffic_ms = 3_600_000;
        d.approval_timeout_ms = None;
    }));
    advance_to(&mut r, PhaseName::TestTraffic);
    // The test-traffic hooks have not passed yet: there is no hold to end.
    let refused = r.operator(OperatorRequest::Promote).unwrap_err();
    assert_eq!(refused.phase, PhaseName::TestTraffic);
    r.until(|r| matches!(r.d.phase(), Phase::TestTraffic(t) if t.hold_until.is_some()));
    let held_from = r.now;
    r.operator(OperatorRequest::Promote).unwrap();
    r.until(|r| r.d.phase_name() != PhaseName::TestTraffic || r.d.is_terminal());
    assert!(
        r.now.ms_since(held_from) < 60_000,
        "promote cut the hour-long test hold short"
    );
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
}

#[test]
fn promote_at_the_instant_a_hold_ends_is_refused_as_there_is_nothing_left_to_end() {
    for want in [PhaseName::TestTraffic, PhaseName::Shift, PhaseName::Bake] {
        let mut r = Run::new(full_spec(|d| {
            d.test_traffic_ms = 600_000;
            d.bake_ms = 600_000;
            d.approval_timeout_ms = None;
        }));
        r.until(|r| {
            (r.d.phase_name() == want && clock_of(r.d.phase()).is_some()) || r.d.is_terminal()
        });
        let ends = clock_of(r.d.phase()).unwrap_or_else(|| panic!("{want} never held"));
        // The request arrives at the hold's last instant, before the machine's own wake.
        let a_moment_before = r.d.clone();
        let refused =
            r.d.handle(ends, Input::Operator(OperatorRequest::Promote))
                .unwrap_err();
        assert_eq!(refused.phase, want);
        let mut d = a_moment_before;
        assert_eq!(
            d.handle(
                Timestamp::from_millis(ends.as_millis() - 1),
                Input::Operator(OperatorRequest::Promote)
            ),
            Ok(()),
            "{want}: a millisecond earlier there is still a hold to end"
        );
    }
}

#[test]
fn promote_is_refused_where_there_is_nothing_to_end_early() {
    let mut r = Run::example();
    advance_to(&mut r, PhaseName::HealthCheck);
    let refused = r.operator(OperatorRequest::Promote).unwrap_err();
    assert_eq!(refused.phase, PhaseName::HealthCheck);
    assert_eq!(refused.request, "promote");
}

// ----- pause / resume -----

#[test]
fn a_pause_before_preflight_read_the_sides_waits_its_bound_then_gives_up() {
    let mut r = Run::new(spec(|d| d.timeouts.approval_ms = 600_000));
    r.operator(OperatorRequest::Pause).unwrap();
    assert_eq!(r.d.phase_name(), PhaseName::Paused);
    r.round();
    assert_eq!(r.d.phase_name(), PhaseName::Paused, "it waits for a resume");
    assert_eq!(r.wake_at, Some(START.plus_ms(600_000)), "until its bound");
    r.finish();
    let reason = r.d.outcome_reason().unwrap();
    assert_eq!(reason.kind, ReasonKind::Timeout);
    assert_eq!(reason.detail, "paused for longer than 10m without resume");
    assert!(r.commands().next().is_none(), "nothing was ever sent");
}

/// The reads (command id endings; "blue" for blue read in green's call) a paused
/// deployment makes over 30 s, paused where `stop` first holds.
fn reads_while_paused(stop: impl Fn(&Run) -> bool) -> std::collections::BTreeSet<String> {
    let mut r = Run::new(full_spec(|d| {
        d.approval_timeout_ms = None;
        d.test_traffic_ms = 600_000;
        d.bake_ms = 600_000;
        d.strategy = Strategy::Canary {
            percent: 10,
            wait_ms: 600_000,
        };
    }));
    r.until(|r| stop(r) || r.d.is_terminal());
    assert!(!r.d.is_terminal(), "{:#?}", r.d.history());
    r.operator(OperatorRequest::Pause).unwrap();
    let (from, paused_at) = (r.commands().count(), r.now);
    r.until(|r| r.now.ms_since(paused_at) >= 30_000);
    assert_eq!(r.d.phase_name(), PhaseName::Paused);
    r.commands()
        .skip(from)
        .flat_map(|c| {
            let word = c.id.as_str().rsplit('-').next().unwrap().to_string();
            let blue = matches!(
                &c.kind,
                CommandKind::Observe(Observe::Service { also: Some(_), .. })
            );
            std::iter::once(word).chain(blue.then(|| "blue".to_string()))
        })
        .collect()
}

#[test]
fn a_paused_deployment_keeps_watching_what_its_phase_watched() {
    let phase = |p: PhaseName| move |r: &Run| r.d.phase_name() == p;
    let set = |words: &[&str]| words.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        reads_while_paused(phase(PhaseName::Deploy)),
        set(&["blue", "service"])
    );
    assert_eq!(
        reads_while_paused(phase(PhaseName::HealthCheck)),
        set(&["blue", "health", "service"])
    );
    let ready = set(&["alarms", "blue", "health", "service"]);
    assert_eq!(reads_while_paused(phase(PhaseName::TestTraffic)), ready);
    // The shift before its first write (green has no production traffic yet) watches as
    // before it; once green has a share, its metrics count too.
    assert_eq!(reads_while_paused(phase(PhaseName::Shift)), ready);
    assert_eq!(
        reads_while_paused(|r| r.d.knowledge().prod_weights.green == 10),
        set(&["alarms", "blue", "health", "metrics", "service"])
    );
    assert_eq!(
        reads_while_paused(phase(PhaseName::Bake)),
        set(&["alarms", "health", "metrics", "service"]),
        "green is live: blue is no longer followed"
    );
}

/// The phase's own clock: the deadline or hold end a pause must push back.
fn clock_of(p: &Phase) -> Option<Timestamp> {
    match p {
        Phase::CreateGreen(c) => Some(c.deadline),
        Phase::Shift(sh) => match sh.stage {
            machine::ShiftStage::Holding { until } => Some(until),
            _ => None,
        },
        Phase::Deploy(d) => Some(d.deadline),
        Phase::HealthCheck(h) => Some(h.deadline),
        Phase::TestTraffic(t) => t.hold_until,
        Phase::Approval(a) => Some(a.deadline),
        Phase::Bake(b) => b.until,
        Phase::DrainBlue(d) => match d.stage {
            machine::DrainStage::Waiting { until } => Some(until),
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn a_resume_pushes_the_paused_phases_deadline_back_by_the_length_of_the_pause() {
    const PAUSE_MS: u64 = 3_600_000;
    for want in [
        PhaseName::CreateGreen,
        PhaseName::Deploy,
        PhaseName::HealthCheck,
        PhaseName::TestTraffic,
        PhaseName::Approval,
        PhaseName::Shift,
        PhaseName::Bake,
        PhaseName::DrainBlue,
    ] {
        let mut r = Run::new(full_spec(|d| {
            d.test_traffic_ms = 600_000;
            d.bake_ms = 600_000;
            // Only the approval case waits for a human.
            d.approval_timeout_ms = (want == PhaseName::Approval).then_some(600_000);
        }));
        r.until(|r| {
            (r.d.phase_name() == want && clock_of(r.d.phase()).is_some()) || r.d.is_terminal()
        });
        let before =
            clock_of(r.d.phase()).unwrap_or_else(|| panic!("{want} never started its clock"));
        r.operator(OperatorRequest::Pause).unwrap();
        let status = r.d.status();
        assert_eq!(
            (status.phase, status.paused_in),
            (PhaseName::Paused, Some(want))
        );
        r.now = r.now.plus_ms(PAUSE_MS);
        r.operator(OperatorRequest::Resume).unwrap();
        assert_eq!(r.d.phase_name(), want);
        assert_eq!(
            clock_of(r.d.phase()),
            Some(before.plus_ms(PAUSE_MS)),
            "{want}: the hour paused does not count against the phase"
        );
    }
}

#[test]
fn pause_stops_forward_progress_and_resume_continues_where_it_was() {
    let mut r = Run::new(spec(|d| {
        d.strategy = Strategy::Linear {
            step_percent: 50,
            interval_ms: 60_000,
        }
    }));
    r.until(|r| r.d.knowledge().prod_weights.green == 50);
    r.operator(OperatorRequest::Pause).unwrap();
    assert_eq!(r.d.phase_name(), PhaseName::Paused);
    let paused_at = r.now;
    r.until(|r| r.now.ms_since(paused_at) > 1_800_000);
    assert_eq!(r.d.phase_name(), PhaseName::Paused);
    assert_eq!(
        r.prod_green_writes(),
        vec![50],
        "no listener write while paused"
    );
    // The watch goes on while paused.
    assert!(r.outs.iter().any(|o| o.phase == PhaseName::Paused
        && matches!(&o.out, Output::Command(c) if c.kind.name() == "observe-target-health")));
    r.operator(OperatorRequest::Resume).unwrap();
    assert_eq!(r.d.phase_name(), PhaseName::Shift);
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
    assert_eq!(r.prod_green_writes(), vec![50, 100]);
}

#[test]
fn a_pause_does_not_eat_into_the_hold_it_interrupted() {
    let mut r = Run::new(spec(|d| {
        d.strategy = Strategy::Canary {
            percent: 10,
            wait_ms: 600_000,
        }
    }));
    r.until(|r| r.d.knowledge().prod_weights.green == 10);
    let shifted = r.now;
    r.until(|r| r.now.ms_since(shifted) >= 300_000);
    r.operator(OperatorRequest::Pause).unwrap();
    let paused = r.now;
    r.until(|r| r.now.ms_since(paused) >= 900_000);
    r.operator(OperatorRequest::Resume).unwrap();
    let resumed = r.now;
    r.until(|r| r.d.knowledge().prod_weights.green == 100);
    // 10 minutes of hold: 5 before the pause, the other 5 after it.
    assert!(
        r.now.ms_since(resumed) >= 290_000,
        "{}",
        r.now.ms_since(resumed)
    );
}

#[test]
fn an_alarm_while_paused_still_rolls_back() {
    let mut r = Run::example();
    r.until(|r| r.d.knowledge().prod_weights.green == 10);
    r.operator(OperatorRequest::Pause).unwrap();
    r.w.alarms_in_alarm.push("web-5xx".into());
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::RolledBack);
    assert_eq!(r.d.outcome_reason().unwrap().kind, ReasonKind::Alarm);
    assert_eq!(r.w.prod_weights(), (100, 0));
}

#[test]
fn a_pause_longer_than_the_approval_timeout_rolls_back() {
    let mut r = Run::new(spec(|d| d.timeouts.approval_ms = 60_000));
    advance_to(&mut r, PhaseName::HealthCheck);
    r.operator(OperatorRequest::Pause).unwrap();
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::RolledBack);
    assert!(
        r.d.outcome_reason()
            .unwrap()
            .detail
            .contains("paused for longer than 1m")
    );
}

#[test]
fn abort_while_paused_rolls_back() {
    let mut r = Run::example();
    advance_to(&mut r, PhaseName::HealthCheck);
    r.operator(OperatorRequest::Pause).unwrap();
    r.operator(OperatorRequest::Abort {
        reason: Some("bad build".into()),
    })
    .unwrap();
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::RolledBack);
    assert_eq!(r.d.outcome_reason().unwrap().detail, "bad build");
}

#[test]
fn once_blue_is_being_removed_it_is_too_late_to_pause_or_abort() {
    let mut r = Run::example();
    // Blue's tasks linger after the scale-down, so the removal is watched for a while.
    r.w.blue_left = Some((1, 0));
    r.until(|r| {
        matches!(r.d.phase(), Phase::DrainBlue(d) if matches!(d.stage, machine::DrainStage::Verifying { .. }))
    });
    let pause = r.operator(OperatorRequest::Pause).unwrap_err();
    let abort = r
        .operator(OperatorRequest::Abort { reason: None })
        .unwrap_err();
    assert_eq!(
        (pause.phase, abort.phase),
        (PhaseName::DrainBlue, PhaseName::DrainBlue)
    );
    assert_eq!(pause.reason, "blue is being removed; nothing left to hold");
    assert!(
        abort
            .reason
            .ends_with("deploy the previous image to go back"),
        "{}",
        abort.reason
    );
    r.w.blue_left = None;
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
}

#[test]
fn pause_resume_and_abort_are_refused_where_they_make_no_sense() {
    let mut r = Run::example();
    advance_to(&mut r, PhaseName::Deploy);
    assert_eq!(
        r.operator(OperatorRequest::Resume).unwrap_err().reason,
        "not paused"
    );
    r.operator(OperatorRequest::Pause).unwrap();
    assert_eq!(
        r.operator(OperatorRequest::Pause).unwrap_err().reason,
        "already paused"
    );
    assert_eq!(
        r.operator(OperatorRequest::Promote).unwrap_err().reason,
        "paused: resume first"
    );
    r.operator(OperatorRequest::Abort { reason: None }).unwrap();
    assert_eq!(
        r.operator(OperatorRequest::Abort { reason: None })
            .unwrap_err()
            .reason,
        "already rolling back"
    );
    r.finish();
    for req in [
        OperatorRequest::Promote,
        OperatorRequest::Abort { reason: None },
        OperatorRequest::Pause,
        OperatorRequest::Resume,
    ] {
        assert_eq!(
            r.d.check_operator(&req).unwrap_err().reason,
            "the deployment is over"
        );
    }
}

#[test]
fn abort_before_anything_changed_rejects_the_deployment() {
    let mut r = Run::example();
    assert_eq!(r.d.phase_name(), PhaseName::Preflight);
    r.operator(OperatorRequest::Abort { reason: None }).unwrap();
    assert_eq!(r.d.phase_name(), PhaseName::Rejected);
    assert!(r.commands().all(|c| !c.kind.is_write()));
}

// ----- ambiguous writes and restarts -----

#[test]
fn an_ambiguous_listener_write_is_observed_before_anything_else_and_not_repeated_if_applied() {
    let mut r = Run::new(spec(|d| d.strategy = Strategy::AllAtOnce));
    r.w.fault(
        "set-listener-weights",
        Fault::AppliedThen(err(ErrorClass::Ambiguous, "RequestTimeout")),
    );
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
    let cmds: Vec<&Command> = r.commands().collect();
    let write = cmds
        .iter()
        .position(|c| c.kind.name() == "set-listener-weights")
        .unwrap();
    let next = cmds[write + 1];
    assert_eq!(
        next.kind.name(),
        "observe-listener",
        "the very next command resolves the write"
    );
    assert_eq!(next.id.as_str(), "web-1/shift-0~resolve1");
    assert_eq!(
        r.prod_green_writes(),
        vec![100],
        "applied: not written again"
    );
}

#[test]
fn an_ambiguous_listener_write_that_did_not_apply_is_sent_again_with_the_same_id() {
    let mut r = Run::new(spec(|d| d.strategy = Strategy::AllAtOnce));
    r.w.fault(
        "set-listener-weights",
        Fault::Error(err(ErrorClass::Ambiguous, "RequestTimeout")),
    );
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
    let shifts: Vec<&Command> = r
        .commands()
        .filter(|c| c.kind.name() == "set-listener-weights")
        .collect();
    assert_eq!(shifts.len(), 2);
    assert_eq!(shifts[0].id, shifts[1].id);
    assert_eq!(shifts[1].attempt, 2);
}

#[test]
fn a_lost_task_set_create_is_found_by_its_external_id_and_never_duplicated() {
    let mut r = Run::new(spec(task_set_model));
    r.w.fault(
        "ensure-green",
        Fault::AppliedThen(err(ErrorClass::Ambiguous, "ConnectionReset")),
    );
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
    let creates = r
        .commands()
        .filter(|c| c.kind.name() == "ensure-green")
        .count();
    assert_eq!(creates, 1, "resolved by observation, not re-sent");
    assert!(
        r.d.knowledge()
            .green_task_set
            .as_deref()
            .unwrap()
            .ends_with("ts-2")
    );
}

#[test]
fn a_lost_registration_is_found_instead_of_registered_twice() {
    let mut r = Run::example();
    r.w.fault(
        "register-task-definition",
        Fault::AppliedThen(err(ErrorClass::Ambiguous, "RequestTimeout")),
    );
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
    assert_eq!(
        r.w.log
            .iter()
            .filter(|c| c.kind.name() == "register-task-definition")
            .count(),
        1
    );
    assert_eq!(
        r.w.log
            .iter()
            .filter(|c| c.kind.name() == "find-task-definition")
            .count(),
        2
    );
}

#[test]
fn a_command_with_no_answer_times_out_as_ambiguous() {
    let mut r = Run::new(spec(|d| d.strategy = Strategy::AllAtOnce));
    r.until(|r| matches!(r.d.phase(), Phase::Shift(s) if s.stage == machine::ShiftStage::Applying));
    // Lose the answer to the in-flight write (the executor hung).
    let lost = r.d.in_flight().next().unwrap().clone();
    assert_eq!(lost.kind.name(), "set-listener-weights");
    r.inbox
        .retain(|i| !matches!(i, Input::CommandDone { id, .. } if *id == lost.id));
    let t0 = r.now;
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
    let resolved = r
        .commands()
        .find(|c| c.id.as_str().ends_with("~resolve1"))
        .unwrap();
    assert_eq!(resolved.kind.name(), "observe-listener");
    let at = r
        .outs
        .iter()
        .find(|o| matches!(&o.out, Output::Command(c) if c.id == resolved.id))
        .unwrap()
        .at;
    assert!(at.ms_since(t0) >= r.d.spec().timeouts.command_ms);
}

#[test]
fn a_restart_resolves_writes_that_were_in_flight_and_re_sends_reads() {
    let mut r = Run::new(spec(|d| d.strategy = Strategy::AllAtOnce));
    r.until(|r| matches!(r.d.phase(), Phase::Shift(s) if s.stage == machine::ShiftStage::Applying));
    // The write reached AWS, then the controller died before recording the answer.
    let snapshot = serde_json::to_string(&r.d).unwrap();
    r.inbox.clear();
    r.d = serde_json::from_str(&snapshot).unwrap();
    r.inbox.push(Input::Restarted);
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
    assert_eq!(r.prod_green_writes(), vec![100], "no second shift");
    assert!(
        r.commands()
            .any(|c| c.id.as_str() == "web-1/shift-0~resolve1")
    );
}

#[test]
fn stale_and_duplicate_results_are_ignored() {
    let mut r = Run::example();
    advance_to(&mut r, PhaseName::HealthCheck);
    let before = serde_json::to_value(&r.d).unwrap();
    r.d.handle(
        r.now,
        Input::CommandDone {
            id: CommandId::new(r.d.id(), "ensure-green"),
            result: Ok(CommandResult::GreenEnsured { task_set: None }),
        },
    )
    .unwrap();
    assert_eq!(serde_json::to_value(&r.d).unwrap(), before);
}

#[test]
fn a_result_of_the_wrong_kind_is_a_bad_response_not_a_panic() {
    let mut r = Run::example();
    r.round();
    let pending = r.d.in_flight().next().unwrap().id.clone();
    r.inbox.clear();
    r.d.handle(
        r.now,
        Input::CommandDone {
            id: pending,
            result: Ok(CommandResult::Scaled),
        },
    )
    .unwrap();
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Rejected);
    assert!(r.d.outcome_reason().unwrap().detail.contains("BadResponse"));
}

#[test]
fn a_listener_that_reads_back_other_weights_is_retried() {
    let mut r = Run::new(spec(|d| d.strategy = Strategy::AllAtOnce));
    r.until(|r| matches!(r.d.phase(), Phase::Shift(s) if s.stage == machine::ShiftStage::Applying));
    let write = r.d.in_flight().next().unwrap().clone();
    r.inbox.clear();
    let wrong = ListenerState {
        forwards: vec![TargetWeight {
            target_group: r.d.spec().target_groups[0].clone(),
            weight: 1,
        }],
    };
    r.d.handle(
        r.now,
        Input::CommandDone {
            id: write.id.clone(),
            result: Ok(CommandResult::WeightsSet(wrong)),
        },
    )
    .unwrap();
    assert!(r.d.in_flight().next().is_none());
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
    assert!(
        r.notices().any(
            |n| matches!(n, Notice::Retrying { error, .. } if error.code == "ReadBackMismatch")
        )
    );
}

// ----- preflight -----

fn rejected_with(setup: impl FnOnce(&mut Run)) -> Reason {
    let mut r = Run::example();
    setup(&mut r);
    rejected(r)
}

/// Run `r` to its end: preflight rejects it, and nothing was written.
fn rejected(mut r: Run) -> Reason {
    r.finish();
    r.assert_phase(PhaseName::Rejected);
    assert!(
        r.commands().all(|c| !c.kind.is_write()),
        "a rejected deployment changed nothing"
    );
    r.d.outcome_reason().unwrap().clone()
}

#[test]
fn a_listener_left_mid_shift_refuses_to_start() {
    let reason = rejected_with(|r| {
        let tgs = r.d.spec().target_groups.clone();
        let listener = r.d.spec().listener.clone();
        let _ = r.w.by_hand(CommandKind::SetListenerWeights {
            listener,
            weights: vec![
                TargetWeight {
                    target_group: tgs[0].clone(),
                    weight: 90,
                },
                TargetWeight {
                    target_group: tgs[1].clone(),
                    weight: 10,
                },
            ],
        });
    });
    assert_eq!(reason.kind, ReasonKind::ListenerNotAtRest);
    assert!(
        reason.detail.contains("weight 90") && reason.detail.contains("weight 10"),
        "{}",
        reason.detail
    );
}

#[test]
fn a_missing_alarm_refuses_to_start() {
    let reason = rejected_with(|r| r.w.missing_alarms.push("web-5xx".into()));
    assert_eq!(reason.kind, ReasonKind::Preflight);
    assert!(reason.detail.contains("web-5xx"));
}

#[test]
fn a_preflight_failure_refuses_to_start_naming_the_resource() {
    let reason = rejected_with(|r| {
        r.w.fault(
            "preflight",
            Fault::Error(CommandError::fatal(
                "TargetGroupNotAttached",
                "target group web-b is not attached to service web-b",
            )),
        )
    });
    assert_eq!(reason.kind, ReasonKind::CommandFailed);
    assert!(
        reason
            .detail
            .contains("target group web-b is not attached to service web-b")
    );
}

#[test]
fn a_live_service_with_no_tasks_refuses_to_start() {
    let reason = rejected_with(|r| {
        let _ = r.w.by_hand(CommandKind::ScaleEnvironment {
            cluster: "prod".into(),
            service: "web-a".into(),
            desired_count: 0,
        });
    });
    assert!(
        reason.detail.contains("nothing to roll back to"),
        "{}",
        reason.detail
    );
}

// ----- corrupted state -----

#[test]
fn a_corrupted_snapshot_that_breaks_an_invariant_fails_loudly_instead_of_continuing() {
    let mut r = Run::example();
    advance_to(&mut r, PhaseName::HealthCheck);
    let mut v = serde_json::to_value(&r.d).unwrap();
    v["knowledge"]["prod_weights"] = serde_json::json!({"blue": 50, "green": 50});
    r.d = serde_json::from_value(v).unwrap();
    r.inbox.clear();
    // Wake when the health check's next look is due: the broken state must stop it.
    r.now = r.wake_at.expect("the bake waits for its next look");
    let sent_before = r.commands().count();
    r.d.handle(r.now, Input::Wake).unwrap();
    assert_eq!(r.d.phase_name(), PhaseName::Failed);
    r.drain();
    assert_eq!(
        r.commands().count(),
        sent_before,
        "nothing is sent once an invariant failed"
    );
    assert!(
        r.notices()
            .any(|n| matches!(n, Notice::Transition(t) if t.to == PhaseName::Failed)),
        "the failure is announced"
    );
    let Phase::Failed {
        reason,
        action_required,
        ..
    } = r.d.phase()
    else {
        unreachable!()
    };
    assert_eq!(reason.kind, ReasonKind::Invariant);
    assert!(
        action_required.contains("blue 50 % / green 50 %"),
        "{action_required}"
    );
}

#[test]
fn deserialising_an_invalid_spec_is_refused() {
    let mut v = serde_json::to_value(plan::example_spec()).unwrap();
    v["strategy"] = serde_json::json!({"kind": "canary", "percent": 0, "wait": "1m"});
    let err = serde_json::from_value::<DeploymentSpec>(v).unwrap_err();
    assert!(err.to_string().contains("strategy.percent"), "{err}");
}

#[test]
fn a_snapshot_of_another_format_is_refused_with_a_clear_error() {
    let mut r = Run::example();
    r.round();
    let mut v = serde_json::to_value(&r.d).unwrap();
    assert_eq!(v["version"], machine::SNAPSHOT_VERSION);
    v["version"] = serde_json::json!(0);
    let err = serde_json::from_value::<Deployment>(v)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "snapshot format 0 is not this build's format {}",
            machine::SNAPSHOT_VERSION
        )),
        "{err}"
    );
    // And the field comes first in what this build writes.
    assert!(
        serde_json::to_string(&r.d)
            .unwrap()
            .starts_with(&format!("{{\"version\":{},", machine::SNAPSHOT_VERSION))
    );
}

// ----- failures outside the machine -----

#[test]
fn a_controller_failure_ends_the_deployment_and_nothing_more_goes_out() {
    let mut r = Run::new(full_spec(|d| {
        d.bake_ms = 600_000;
        d.approval_timeout_ms = None;
    }));
    advance_to(&mut r, PhaseName::Bake);
    // The bake's next look is due and handed over when the driver around the machine
    // fails.
    let mut handed_over = false;
    for _ in 0..8 {
        r.now = r.wake_at.expect("the bake waits for its next look");
        r.d.handle(r.now, Input::Wake).unwrap();
        match (0..8)
            .map(|_| r.d.poll(r.now))
            .find(|o| !matches!(o, Output::Notice(_)))
        {
            Some(Output::Command(_)) => {
                handed_over = true;
                break;
            }
            Some(Output::Idle { wake_at }) => r.wake_at = wake_at,
            other => panic!("{other:?}"),
        }
    }
    assert!(handed_over, "the look went out");
    assert!(r.d.in_flight().next().is_some());
    r.d.fail_externally(r.now, "the driver panicked".into());
    assert_eq!(r.d.phase_name(), PhaseName::Failed);
    let reason = r.d.outcome_reason().unwrap();
    assert_eq!(
        (reason.kind, reason.detail.as_str()),
        (ReasonKind::Invariant, "the driver panicked")
    );
    assert!(r.d.in_flight().next().is_none(), "nothing is waited for");
    let status = r.d.status();
    assert!(
        status
            .action_required
            .as_deref()
            .is_some_and(|a| a.starts_with("the controller failed while driving this deployment")),
        "{status:?}"
    );
    assert_eq!(r.d.status().paused_in, None);
    for _ in 0..8 {
        match r.d.poll(r.now) {
            Output::Command(c) => panic!("{} went out after the failure", c.id),
            Output::Notice(_) => {}
            Output::Idle { wake_at } => {
                assert_eq!(wake_at, None, "a failed deployment never wakes");
                break;
            }
        }
    }
    // A second report on a finished deployment changes nothing.
    r.d.fail_externally(r.now, "again".into());
    assert_eq!(r.d.outcome_reason().unwrap().detail, "the driver panicked");
}

#[test]
fn a_failed_weight_write_is_resent_only_after_a_newer_look_at_green() {
    let mut r = Run::example();
    r.w.fault(
        "set-listener-weights",
        Fault::Error(err(ErrorClass::Retryable, "ServiceUnavailable")),
    );
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
    let seq: Vec<(String, u32, Timestamp)> = r
        .outs
        .iter()
        .filter_map(|o| match &o.out {
            Output::Command(c) => Some((c.id.to_string(), c.attempt, o.at)),
            _ => None,
        })
        .collect();
    let first = seq
        .iter()
        .position(|(id, attempt, _)| id.ends_with("shift-0") && *attempt == 1)
        .unwrap_or_else(|| panic!("{seq:#?}"));
    let again = seq
        .iter()
        .position(|(id, attempt, _)| id.ends_with("shift-0") && *attempt == 2)
        .unwrap_or_else(|| panic!("{:#?}", &seq[first..]));
    let looks: Vec<&(String, u32, Timestamp)> = seq[first + 1..again]
        .iter()
        .filter(|(id, _, at)| {
            id.starts_with("web-1/shift-0") && id.contains("health") && *at > seq[first].2
        })
        .collect();
    assert_eq!(
        looks.len(),
        1,
        "one fresh look between: {:#?}",
        &seq[first..=again]
    );
}

/// Point the test listener of a full spec with these weights, by hand.
fn test_listener_set(r: &mut Run, weights: Vec<TargetWeight>) {
    let listener = r.d.spec().test_listener.clone().unwrap();
    let _ =
        r.w.by_hand(CommandKind::SetListenerWeights { listener, weights });
}

#[test]
fn a_test_listener_sending_traffic_elsewhere_refuses_to_start_but_a_zero_weight_does_not() {
    let foreign = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/other/1";
    let run = |weight: u32| {
        let mut r = Run::new(full_spec(|d| d.approval_timeout_ms = None));
        let tgs = r.d.spec().target_groups.clone();
        test_listener_set(
            &mut r,
            vec![
                TargetWeight {
                    target_group: tgs[0].clone(),
                    weight: 100,
                },
                TargetWeight {
                    target_group: foreign.into(),
                    weight,
                },
            ],
        );
        r.finish();
        r
    };
    let r = run(5);
    assert_eq!(r.d.phase_name(), PhaseName::Rejected);
    let reason = r.d.outcome_reason().unwrap();
    assert_eq!(reason.kind, ReasonKind::ListenerNotAtRest);
    assert_eq!(
        reason.detail,
        "the test listener forwards to other, which is neither of this app's target groups"
    );
    assert_eq!(
        run(0).d.phase_name(),
        PhaseName::Completed,
        "a zero weight sends nothing"
    );
}

#[test]
fn a_task_set_left_over_from_an_earlier_deployment_refuses_to_start() {
    let mut r = Run::new(spec(task_set_model));
    r.w.task_set_by_hand("web-0");
    let reason = rejected(r);
    assert!(
        reason
            .detail
            .contains("(external id web-0) on web-b is left over from an earlier deployment"),
        "{reason}"
    );
}

/// Blue's task set as the ideal world reports it, copied under another id and status
/// onto the same target group.
fn another_blue_task_set(s: &ServiceStatus, id: &str, status: &str) -> TaskSetStatus {
    let mut ts = s.task_sets[0].clone();
    assert_eq!(ts.status, "PRIMARY", "the ideal world's blue: {ts:?}");
    ts.id = id.into();
    ts.arn = format!("arn:aws:ecs:us-east-1:123456789012:task-set/prod/web/{id}").into();
    ts.external_id = Some("someone-else".into());
    ts.status = status.into();
    ts
}

#[test]
fn with_two_task_sets_serving_the_live_target_group_the_primary_is_blue_and_the_other_is_left_over()
{
    let mut r = Run::new(spec(task_set_model));
    r.w.edit_service = Some(|s| {
        if !s.task_sets.is_empty() {
            let stray = another_blue_task_set(s, "ecs-svc-stray", "ACTIVE");
            s.task_sets.insert(0, stray);
        }
    });
    let detail = &rejected(r).detail;
    assert!(
        detail
            .starts_with("task set ecs-svc-stray (external id someone-else) on web-a is left over"),
        "the ACTIVE one is named, not the PRIMARY one: {detail}"
    );
}

#[test]
fn a_draining_task_set_on_the_live_target_group_is_neither_blue_nor_left_over() {
    let mut r = Run::new(spec(task_set_model));
    // No PRIMARY: blue is the ACTIVE task set, listed after one that is draining away.
    r.w.edit_service = Some(|s| {
        if s.task_sets.first().is_some_and(|t| t.status == "PRIMARY") {
            let draining = another_blue_task_set(s, "ecs-svc-old", "DRAINING");
            s.task_sets[0].status = "ACTIVE".into();
            s.task_sets.insert(0, draining);
        }
    });
    r.until(|r| r.d.phase_name() != PhaseName::Preflight);
    assert!(
        !matches!(r.d.phase_name(), PhaseName::Rejected),
        "preflight refused: {:?}",
        r.d.outcome_reason()
    );
}

// ----- a batch of commands cut short -----

/// The machine after preflight passed: it has queued preflight's four reads at once and
/// the caller has taken only the first. Returns the machine, the time, and the ids of
/// the whole batch.
fn mid_batch() -> (Deployment, Timestamp, Vec<CommandId>) {
    let mut r = Run::example();
    let now = r.now;
    let Output::Command(pre) = r.d.poll(now) else {
        panic!("preflight first")
    };
    assert_eq!(pre.kind.name(), "preflight");
    let result = r.w.respond(&pre);
    r.d.handle(
        now,
        Input::CommandDone {
            id: pre.id.clone(),
            result,
        },
    )
    .unwrap();
    let Output::Command(first) = r.d.poll(now) else {
        panic!("a read after preflight")
    };
    // Everything queued is in flight already (the machine counts a command out as it
    // queues it); the first is among them.
    let mut batch: Vec<CommandId> = r.d.in_flight().map(|c| c.id.clone()).collect();
    batch.sort();
    assert!(batch.contains(&first.id));
    assert!(batch.len() >= 3, "a batch of reads: {batch:?}");
    (r.d, now, batch)
}

/// Every command the machine hands over until it says it is idle.
fn drained(d: &mut Deployment, now: Timestamp) -> Vec<CommandId> {
    let mut ids = vec![];
    for _ in 0..POLLS_PER_DRAIN_MAX {
        match d.poll(now) {
            Output::Command(c) => ids.push(c.id.clone()),
            Output::Notice(_) => {}
            Output::Idle { .. } => return ids,
        }
    }
    panic!("the machine never went idle")
}

#[test]
fn a_restart_in_the_middle_of_a_batch_resends_each_command_once() {
    let (mut d, now, batch) = mid_batch();
    d.handle(now, Input::Restarted).unwrap();
    let mut resent = drained(&mut d, now);
    resent.sort();
    assert_eq!(
        resent, batch,
        "the taken command and the ones still queued, each exactly once"
    );
}

#[test]
fn a_controller_failure_in_the_middle_of_a_batch_sends_nothing_more() {
    let (mut d, now, _) = mid_batch();
    d.fail_externally(now, "the executor lost its store".into());
    assert_eq!(d.phase_name(), PhaseName::Failed);
    assert_eq!(
        drained(&mut d, now),
        Vec::<CommandId>::new(),
        "commands still queued are dropped"
    );
}
