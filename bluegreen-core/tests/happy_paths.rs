//! Deployments that succeed: the phases they pass, the weights they write, the state they
//! leave the world in, for every strategy and both environment models.

mod support;

use bluegreen_core::*;
use support::*;

fn completes(spec: DeploymentSpec) -> Run {
    let mut r = Run::new(spec);
    r.until(|r| r.d.phase_name() == PhaseName::Approval || r.d.is_terminal());
    if r.d.phase_name() == PhaseName::Approval {
        r.operator(OperatorRequest::Promote).unwrap();
    }
    r.finish();
    r.assert_phase(PhaseName::Completed);
    r
}

#[test]
fn canary_writes_the_canary_weight_then_100_and_leaves_green_alone_at_rest() {
    let r = completes(spec(|_| {}));
    assert_eq!(r.prod_green_writes(), vec![10, 100]);
    assert_eq!(r.w.prod_weights(), (0, 100));
    assert_eq!(r.w.tasks(0), 0, "blue scaled to zero");
    assert_eq!(r.w.tasks(1), 3, "green sized like blue");
    let phases: Vec<PhaseName> = r.d.history().iter().map(|t| t.to).collect();
    assert_eq!(
        phases,
        [
            PhaseName::CreateGreen,
            PhaseName::Deploy,
            PhaseName::HealthCheck,
            PhaseName::Shift,
            PhaseName::Bake,
            PhaseName::DrainBlue,
            PhaseName::Completed
        ]
    );
}

#[test]
fn all_at_once_writes_a_single_100_percent_shift() {
    let r = completes(spec(|d| d.strategy = Strategy::AllAtOnce));
    assert_eq!(r.prod_green_writes(), vec![100]);
}

#[test]
fn linear_writes_every_step_in_order() {
    let r = completes(spec(|d| {
        d.strategy = Strategy::Linear {
            step_percent: 30,
            interval_ms: 5_000,
        }
    }));
    assert_eq!(r.prod_green_writes(), vec![30, 60, 90, 100]);
}

#[test]
fn canary_holds_the_canary_weight_for_the_configured_wait() {
    let r = completes(spec(|d| {
        d.strategy = Strategy::Canary {
            percent: 20,
            wait_ms: 120_000,
        }
    }));
    let writes: Vec<Timestamp> = r
        .outs
        .iter()
        .filter(|o| matches!(&o.out, Output::Command(c) if matches!(c.kind, CommandKind::SetListenerWeights{..})))
        .map(|o| o.at)
        .collect();
    assert_eq!(writes.len(), 2);
    assert!(
        writes[1].ms_since(writes[0]) >= 120_000,
        "held {} ms",
        writes[1].ms_since(writes[0])
    );
}

#[test]
fn bake_and_drain_wait_their_full_time_before_blue_is_scaled_down() {
    let r = completes(spec(|d| {
        d.strategy = Strategy::AllAtOnce;
        d.bake_ms = 300_000;
        d.drain_ms = 60_000;
    }));
    let at = |f: &dyn Fn(&CommandKind) -> bool| {
        r.outs
            .iter()
            .find(|o| matches!(&o.out, Output::Command(c) if f(&c.kind)))
            .map(|o| o.at)
            .unwrap()
    };
    let shifted = at(&|k| matches!(k, CommandKind::SetListenerWeights { .. }));
    let scaled =
        at(&|k| matches!(k, CommandKind::ScaleEnvironment { service, .. } if service == "web-a"));
    assert!(
        scaled.ms_since(shifted) >= 360_000,
        "blue scaled {} ms after the shift",
        scaled.ms_since(shifted)
    );
}

#[test]
fn the_deployment_counts_what_it_sent_and_remembers_when_it_began() {
    let r = completes(spec(|_| {}));
    assert_eq!(r.d.created_at(), START);
    assert!(r.d.updated_at() > START);
    let sent = r.commands().count() as u64;
    assert!(sent > 10, "{sent}");
    assert_eq!(
        r.d.commands_sent(),
        sent,
        "no retries on a clean run: one per command"
    );
    let calls: u64 = r
        .commands()
        .map(|c| u64::from(c.kind.aws_calls_min()))
        .sum();
    assert!(calls > sent, "a preflight alone makes several calls");
    assert_eq!(r.d.aws_calls_min(), calls);
}

#[test]
fn blue_is_removed_only_in_the_instant_of_a_fresh_look_at_green() {
    for task_sets in [false, true] {
        let r = completes(spec(|d| {
            // A poll cadence that does not land on the end of the drain wait: the last
            // routine look is seconds old when blue's removal comes due.
            d.pacing.poll_interval_ms = 7_000;
            d.drain_ms = 30_000;
            if task_sets {
                task_set_model(d);
            }
        }));
        let green_tg = r.d.spec().target_groups[1].clone();
        let removal = r
            .outs
            .iter()
            .position(|o| {
                matches!(&o.out, Output::Command(c) if matches!(&c.kind,
                    CommandKind::ScaleEnvironment { service, desired_count: 0, .. } if service == "web-a")
                    || matches!(c.kind, CommandKind::DeleteEnvironment { .. }))
            })
            .expect("blue was removed");
        let last_look = r.outs[..removal]
            .iter()
            .rev()
            .find(|o| {
                matches!(&o.out, Output::Command(c) if matches!(&c.kind,
                    CommandKind::Observe(Observe::TargetHealth { target_group }) if *target_group == green_tg))
            })
            .expect("green was looked at");
        assert_eq!(
            last_look.at, r.outs[removal].at,
            "task sets: {task_sets}: the look before blue's removal is from the same instant"
        );
    }
}

#[test]
fn task_set_model_creates_a_task_set_swaps_primary_and_deletes_blue() {
    let r = completes(spec(task_set_model));
    let kinds: Vec<&str> = r
        .commands()
        .map(|c| c.kind.name())
        .filter(|k| !k.starts_with("observe"))
        .collect();
    assert_eq!(
        kinds,
        [
            "preflight",
            "find-task-definition",
            "register-task-definition",
            "ensure-green",
            "set-listener-weights",
            "set-listener-weights",
            "set-primary-task-set",
            "delete-environment"
        ]
    );
    assert_eq!(r.w.tasks(0), 0);
    assert_eq!(r.w.tasks(1), 3);
    let create = r
        .commands()
        .find(|c| {
            matches!(
                c.kind,
                CommandKind::EnsureGreen(EnsureGreen::TaskSet { .. })
            )
        })
        .unwrap();
    let CommandKind::EnsureGreen(EnsureGreen::TaskSet {
        external_id,
        like_task_set,
        ..
    }) = &create.kind
    else {
        unreachable!()
    };
    assert_eq!(external_id, "web-1");
    assert!(like_task_set.ends_with("ts-blue"));
}

#[test]
fn a_full_deployment_passes_every_phase_and_every_hook_stage_in_order() {
    let mut r = completes(full_spec(|_| {}));
    r.finish();
    let phases: Vec<PhaseName> = r.d.history().iter().map(|t| t.to).collect();
    assert_eq!(
        phases,
        [
            PhaseName::CreateGreen,
            PhaseName::Deploy,
            PhaseName::HealthCheck,
            PhaseName::TestTraffic,
            PhaseName::Approval,
            PhaseName::Shift,
            PhaseName::Bake,
            PhaseName::DrainBlue,
            PhaseName::Completed
        ]
    );
    let hooks: Vec<Name> = r
        .commands()
        .filter_map(|c| match &c.kind {
            CommandKind::CallHook(h) => Some(h.name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(hooks, ["ready", "test", "before", "after"]);
    let status = r.d.status();
    assert_eq!(
        status.test_weights,
        Some(Weights::ALL_GREEN),
        "the test listener follows production"
    );
}

#[test]
fn the_live_side_is_read_from_the_listener_so_a_second_deployment_goes_back_to_slot_0() {
    // First deployment: slot 0 → slot 1.
    let spec1 = spec(|d| d.strategy = Strategy::AllAtOnce);
    let mut r = completes(spec1.clone());
    // Second deployment with a new image, against the same world.
    let mut d2 = spec1.into_draft();
    d2.artifact = Artifact::Image(format!("web@sha256:{}", "cd".repeat(32)).into());
    let spec2 = DeploymentSpec::new(d2).unwrap();
    r.d = Deployment::new(DeploymentId::new("web-2").unwrap(), spec2, r.now);
    r.inbox = vec![Input::Wake];
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
    assert_eq!(r.d.sides().unwrap().blue, 1, "slot 1 was live");
    assert_eq!(r.w.prod_weights(), (100, 0));
    assert_eq!(r.w.tasks(1), 0);
}

#[test]
fn the_same_image_twice_reuses_its_task_definition_revision() {
    let spec1 = spec(|d| d.strategy = Strategy::AllAtOnce);
    let mut r = completes(spec1.clone());
    r.d = Deployment::new(DeploymentId::new("web-2").unwrap(), spec1, r.now);
    r.inbox = vec![Input::Wake];
    r.finish();
    let registrations =
        r.w.log
            .iter()
            .filter(|c| matches!(c.kind, CommandKind::RegisterTaskDefinition { .. }))
            .count();
    assert_eq!(
        registrations, 1,
        "the second deployment found the first one's revision"
    );
}

#[test]
fn an_existing_task_definition_is_deployed_without_registering() {
    let r = completes(spec(|d| {
        d.artifact = Artifact::TaskDefinition(
            "arn:aws:ecs:us-east-1:123456789012:task-definition/web:7".into(),
        )
    }));
    assert!(r.commands().all(|c| !matches!(
        c.kind,
        CommandKind::RegisterTaskDefinition { .. } | CommandKind::FindTaskDefinition { .. }
    )));
    assert_eq!(
        r.d.status().green.unwrap().task_definition.as_deref(),
        Some("arn:aws:ecs:us-east-1:123456789012:task-definition/web:7")
    );
}

#[test]
fn an_explicit_desired_count_sizes_green() {
    let r = completes(spec(|d| d.desired_count = Some(5)));
    assert_eq!(r.w.tasks(1), 5);
}

#[test]
fn every_command_id_is_derived_from_the_deployment_id() {
    let r = completes(spec(|_| {}));
    assert!(r.commands().all(|c| c.id.as_str().starts_with("web-1/")));
    let ensure = r
        .commands()
        .find(|c| c.kind.name() == "ensure-green")
        .unwrap();
    assert_eq!(ensure.id.as_str(), "web-1/ensure-green");
}

#[test]
fn the_plan_is_a_lower_bound_of_the_calls_a_healthy_deployment_makes() {
    for s in [
        spec(|_| {}),
        spec(|d| d.strategy = Strategy::AllAtOnce),
        spec(|d| {
            d.strategy = Strategy::Linear {
                step_percent: 25,
                interval_ms: 10_000,
            }
        }),
        full_spec(|_| {}),
    ] {
        let plan = Plan::for_deployment(&DeploymentId::new("web-1").unwrap(), &s);
        let r = completes(s);
        assert_eq!(plan.aws_calls_min, r.d.aws_calls_min(), "{plan}");
        assert_eq!(plan.steps.last().unwrap().weights, Weights::ALL_GREEN);
    }
}

/// After the outcome the machine names the tags that say which slot is live: green's
/// after a completion, blue's after a rollback; nothing for a rejection.
#[test]
fn the_outcome_names_the_live_slot_for_the_target_groups_tags() {
    let r = completes(spec(|_| {}));
    let blue = r.d.sides().unwrap().blue;
    match r.d.outcome_tags() {
        Some(CommandKind::TagSlots {
            target_groups,
            live_slot,
            deployment,
            outcome,
        }) => {
            assert_eq!(live_slot, 1 - blue, "green is live");
            assert_eq!(target_groups, r.d.spec().target_groups);
            assert_eq!(deployment, r.d.id().as_str());
            assert_eq!(outcome, "completed");
        }
        other => panic!("{other:?}"),
    }
    let mut rolled = Run::example();
    rolled.until(|r| r.d.phase_name() == PhaseName::HealthCheck);
    rolled
        .operator(OperatorRequest::Abort { reason: None })
        .unwrap();
    rolled.finish();
    assert_eq!(rolled.d.phase_name(), PhaseName::RolledBack);
    assert!(matches!(
        rolled.d.outcome_tags(),
        Some(CommandKind::TagSlots { live_slot, ref outcome, .. })
            if live_slot == rolled.d.sides().unwrap().blue && outcome == "rolled-back"
    ));
    let mut rejected = Run::example();
    rejected
        .operator(OperatorRequest::Abort { reason: None })
        .unwrap();
    rejected.finish();
    assert_eq!(rejected.d.phase_name(), PhaseName::Rejected);
    assert_eq!(rejected.d.outcome_tags(), None);
}

/// Issue 11's "green follows blue": an autoscaler that scales blue out while green holds
/// a canary share makes green as large; once green has all the traffic, blue (idle,
/// scaling in) is no longer followed.
#[test]
fn green_follows_blue_scaling_out_during_a_canary_hold_but_not_once_live() {
    let mut r = Run::example();
    r.until(|r| r.d.phase_name() == PhaseName::Shift && r.w.prod_weights().1 > 0);
    assert_eq!(
        r.d.phase_name(),
        PhaseName::Shift,
        "reached the canary hold"
    );
    let green_service = match &r.w.spec.environment {
        EnvironmentModel::ServicePair { services } => services[1].clone(),
        EnvironmentModel::TaskSet { .. } => unreachable!("the example is a service pair"),
    };
    let scaled_to = |r: &Run, n: u32| {
        r.outs
            .iter()
            .filter_map(|rec| match &rec.out {
                Output::Command(c) => match &c.kind {
                    CommandKind::ScaleEnvironment {
                        service,
                        desired_count,
                        ..
                    } if *service == green_service && *desired_count == n => Some(rec.phase),
                    _ => None,
                },
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    r.w.blue_desired = Some(7);
    r.until(|r| r.d.phase_name() == PhaseName::Bake);
    assert_eq!(
        scaled_to(&r, 7),
        [PhaseName::Shift],
        "green scaled to blue's 7 in the hold"
    );
    assert_eq!(r.w.tasks(1), 7, "green runs 7 tasks");
    r.w.blue_desired = Some(12);
    r.until(|r| r.d.phase_name() == PhaseName::DrainBlue);
    // Blue is removed from here on: the autoscaler no longer holds it up.
    r.w.blue_desired = None;
    r.finish();
    assert_eq!(r.d.phase_name(), PhaseName::Completed);
    assert!(
        scaled_to(&r, 12).is_empty(),
        "blue is not followed once green is live"
    );
}

#[test]
fn deployments_with_different_ids_do_not_poll_in_lockstep() {
    // Many apps deploying at once must not hit the AWS APIs on the same millisecond:
    // each deployment's poll grid is offset by a jitter drawn from its own id.
    let poll_times = |id: &str| {
        let spec = spec(|d| d.pacing.poll_interval_ms = 10_000);
        let mut r = Run::new(spec.clone());
        r.d = Deployment::new(DeploymentId::new(id).unwrap(), spec, START);
        r.finish();
        assert_eq!(r.d.phase_name(), PhaseName::Completed);
        r.outs
            .iter()
            .filter(|o| matches!(&o.out, Output::Command(c) if c.kind.name() == "observe-target-health"))
            .map(|o| o.at.ms_since(START) % 10_000)
            .collect::<Vec<_>>()
    };
    let (a, b) = (poll_times("web-1"), poll_times("web-2"));
    assert!(!a.is_empty() && !b.is_empty());
    assert_ne!(a, b, "the same offsets on the poll grid");
}

#[test]
fn the_next_step_follows_the_end_of_a_hold_at_once_not_at_the_next_poll() {
    let r = completes(spec(|d| {
        d.pacing.poll_interval_ms = 60_000;
        d.strategy = Strategy::Canary {
            percent: 10,
            wait_ms: 30_000,
        };
    }));
    let written = |step: &str| {
        r.outs
            .iter()
            .find(|o| matches!(&o.out, Output::Command(c) if c.id.as_str().ends_with(step)))
            .map(|o| o.at)
            .unwrap()
    };
    let hold_ended = written("shift-0").plus_ms(30_000);
    let next = written("shift-1");
    assert!(
        next >= hold_ended && next.ms_since(hold_ended) < 1_000,
        "the 100 % write came {} ms after the hold (a fresh look at once, not the 60 s grid)",
        next.ms_since(hold_ended)
    );
}

#[test]
fn metrics_are_read_only_once_green_has_production_traffic() {
    let r = completes(full_spec(|d| d.approval_timeout_ms = None));
    let first_shift = r
        .outs
        .iter()
        .position(|o| matches!(&o.out, Output::Command(c) if c.id.as_str().ends_with("shift-0")))
        .unwrap();
    let early_metrics: Vec<String> = r.outs[..first_shift]
        .iter()
        .filter_map(|o| match &o.out {
            Output::Command(c) if c.kind.name() == "observe-metrics" => {
                Some(format!("{} in {}", c.id, o.phase))
            }
            _ => None,
        })
        .collect();
    assert!(early_metrics.is_empty(), "{early_metrics:?}");
    assert!(
        r.outs[first_shift..]
            .iter()
            .any(|o| matches!(&o.out, Output::Command(c) if c.kind.name() == "observe-metrics")),
        "and are read after"
    );
}

#[test]
fn the_scaling_target_follows_production_traffic_phase_by_phase() {
    let live_slot = |r: &Run| match r.d.scaling_placement() {
        Some(CommandKind::PlaceScaling { live_slot, .. }) => Some(live_slot),
        None => None,
        other => panic!("{other:?}"),
    };
    let mut r = Run::new(spec(|d| d.bake_ms = 600_000));
    r.until(|r| r.d.phase_name() == PhaseName::Shift);
    assert_eq!(
        live_slot(&r),
        None,
        "before the shift completes: where it was"
    );
    r.until(|r| r.d.phase_name() == PhaseName::Bake);
    assert_eq!(live_slot(&r), Some(1), "green (slot b) serves everything");
    r.operator(OperatorRequest::Pause).unwrap();
    assert_eq!(live_slot(&r), Some(1), "a paused bake is still green's");
    r.operator(OperatorRequest::Resume).unwrap();
    r.finish();
    assert_eq!(live_slot(&r), Some(1));

    let mut r = Run::new(spec(|d| d.bake_ms = 600_000));
    r.until(|r| r.d.phase_name() == PhaseName::Bake);
    r.operator(OperatorRequest::Abort { reason: None }).unwrap();
    assert_eq!(r.d.phase_name(), PhaseName::Rollback);
    assert_eq!(live_slot(&r), Some(0), "rolling back: blue's again");
    r.finish();
    assert_eq!(live_slot(&r), Some(0));

    let mut r = Run::new(spec(task_set_model));
    r.finish();
    assert_eq!(live_slot(&r), None, "task sets share one service's scaling");
}

#[test]
fn the_status_says_in_words_where_the_deployment_is() {
    let mut r = Run::new(spec(|d| d.bake_ms = 600_000));
    r.until(|r| matches!(r.d.phase(), Phase::Shift(s) if matches!(s.stage, machine::ShiftStage::Holding { .. })));
    let detail = r.d.status().detail;
    assert!(
        detail.starts_with("step 1/2: green 10 % until "),
        "{detail}"
    );
    r.until(|r| matches!(r.d.phase(), Phase::Bake(b) if b.until.is_some()));
    let detail = r.d.status().detail;
    assert!(detail.starts_with("baking until "), "{detail}");
    r.finish();
    assert!(r.d.status().detail.starts_with("completed at "));
}
