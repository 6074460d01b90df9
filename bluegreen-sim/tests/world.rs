//! The simulated world behaves like the AWS account it stands for: it rejects what AWS
//! rejects with the same error classes and codes, and its dynamics (tasks starting,
//! health checks, draining, listener changes reaching traffic, metrics, alarms, token
//! buckets) follow the profile's timings.

use bluegreen_core::{
    AlarmState, Command, CommandId, CommandKind, CommandResult, DeploymentId, EnsureGreen,
    EnvironmentModel, ErrorClass, FailureFilter, ListenerRef, MetricQuery, MetricRequest, Name,
    Observation, Observe, TargetWeight, Timestamp,
};
use bluegreen_sim::harness::app_draft;
use bluegreen_sim::world::{ApiCall, Forward, HookBehaviour, TaskStatus};
use bluegreen_sim::{World, WorldProfile};

const T0: u64 = 1_800_000_000_000;

fn world(profile: WorldProfile) -> World {
    World::seeded(&[app_draft("web")], &profile, 9, Timestamp::from_millis(T0))
}

fn cmd(step: &str, kind: CommandKind) -> Command {
    Command {
        id: CommandId::new(&DeploymentId::new("web-1").unwrap(), step),
        attempt: 1,
        kind,
    }
}

fn run(w: &mut World, kind: CommandKind) -> Result<CommandResult, bluegreen_core::CommandError> {
    w.execute(&cmd("x", kind))
}

fn advance(w: &mut World, ms: u64) {
    let t = w.now().plus_ms(ms);
    w.advance_to(t, &mut ());
}

fn tg(w: &World, slot: usize) -> Name {
    w.elb.target_groups[w.apps[0].target_groups[slot] as usize]
        .arn
        .clone()
}

fn listener() -> ListenerRef {
    app_draft("web").listener
}

fn weights(w: &World, pairs: &[(usize, u32)]) -> CommandKind {
    CommandKind::SetListenerWeights {
        listener: listener(),
        weights: pairs
            .iter()
            .map(|(slot, weight)| TargetWeight {
                target_group: tg(w, *slot),
                weight: *weight,
            })
            .collect(),
    }
}

fn set_weights(
    w: &mut World,
    pairs: &[(usize, u32)],
) -> Result<CommandResult, bluegreen_core::CommandError> {
    let kind = weights(w, pairs);
    run(w, kind)
}

fn fatal_code(r: Result<CommandResult, bluegreen_core::CommandError>) -> String {
    let e = r.expect_err("AWS rejects this");
    assert_eq!(e.class, ErrorClass::Fatal, "{e}");
    e.code
}

fn green_up(w: &mut World, image: &str) -> Name {
    let base = w.ecs.task_def_arn(0).clone();
    let Ok(CommandResult::TaskDefinitionRegistered { arn }) = run(
        w,
        CommandKind::RegisterTaskDefinition {
            base,
            container: "app".into(),
            image: image.into(),
        },
    ) else {
        panic!("register")
    };
    run(
        w,
        CommandKind::EnsureGreen(EnsureGreen::Service {
            cluster: "prod".into(),
            service: "web-b".into(),
            task_definition: arn.clone(),
            desired_count: 3,
        }),
    )
    .unwrap();
    arn
}

#[test]
fn unknown_resources_are_fatal_with_aws_error_codes() {
    let mut w = world(WorldProfile::fast());
    let tg_missing = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/nope/0";
    let health = |t: &str| {
        CommandKind::Observe(Observe::TargetHealth {
            target_group: t.into(),
        })
    };
    assert_eq!(
        fatal_code(run(&mut w, health(tg_missing))),
        "TargetGroupNotFound"
    );
    let service = |c: &str, s: &str| {
        CommandKind::Observe(Observe::Service {
            cluster: c.into(),
            service: s.into(),
            failures: None,
            also: None,
        })
    };
    assert_eq!(
        fatal_code(run(&mut w, service("prod", "nope"))),
        "ServiceNotFoundException"
    );
    assert_eq!(
        fatal_code(run(&mut w, service("nope", "web-a"))),
        "ClusterNotFoundException"
    );
    let mut l = listener();
    l.listener_arn = format!("{}9", l.listener_arn).into();
    assert_eq!(
        fatal_code(run(&mut w, CommandKind::Observe(Observe::Listener(l)))),
        "ListenerNotFound"
    );
    let mut r = listener();
    r.rule_arn = Some(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/1/2/3".into(),
    );
    assert_eq!(
        fatal_code(run(&mut w, CommandKind::Observe(Observe::Listener(r)))),
        "RuleNotFound"
    );
    let find = CommandKind::FindTaskDefinition {
        base: "arn:aws:ecs:us-east-1:123456789012:task-definition/nope:1".into(),
        container: "app".into(),
        image: "x".into(),
    };
    assert_eq!(fatal_code(run(&mut w, find)), "ClientException");
    let missing_ts = CommandKind::SetPrimaryTaskSet {
        cluster: "prod".into(),
        service: "web-a".into(),
        task_set: "arn:aws:ecs:us-east-1:123456789012:task-set/prod/web/nope".into(),
    };
    assert_eq!(
        fatal_code(run(&mut w, missing_ts)),
        "TaskSetNotFoundException"
    );
}

#[test]
fn forward_weights_outside_alb_limits_are_rejected() {
    let mut w = world(WorldProfile::fast());
    assert_eq!(
        fatal_code(set_weights(&mut w, &[(0, 1000), (1, 0)])),
        "ValidationError"
    );
    assert_eq!(
        fatal_code(set_weights(&mut w, &[(0, 0), (1, 0)])),
        "ValidationError"
    );
    assert_eq!(
        fatal_code(set_weights(&mut w, &[(0, 1), (0, 1)])),
        "ValidationError"
    );
    let six = set_weights(&mut w, &[(0, 1), (1, 1), (0, 1), (1, 1), (0, 1), (1, 1)]);
    assert_eq!(fatal_code(six), "ValidationError");
    let f = &w.elb.forwards[w.apps[0].prod as usize];
    assert_eq!(
        f.config,
        vec![
            (w.apps[0].target_groups[0], 1),
            (w.apps[0].target_groups[1], 0)
        ],
        "unchanged"
    );
    assert!(set_weights(&mut w, &[(0, 999), (1, 0)]).is_ok());
}

#[test]
fn deleting_a_scaled_service_without_force_is_rejected() {
    let mut w = world(WorldProfile::fast());
    let svc = w.apps[0].services[0];
    let e = w.delete_service(svc, false).unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Fatal, "InvalidParameterException")
    );
    assert!(w.delete_service(svc, true).is_ok());
    let idle = w.apps[0].services[1];
    assert!(
        w.delete_service(idle, false).is_ok(),
        "an idle service deletes without force"
    );
}

#[test]
fn find_task_definition_finds_what_register_made_and_the_base_itself() {
    let mut w = world(WorldProfile::fast());
    let base = w.ecs.task_def_arn(0).clone();
    let find = |image: &str| CommandKind::FindTaskDefinition {
        base: base.clone(),
        container: "app".into(),
        image: image.into(),
    };
    let found = |r| match r {
        Ok(CommandResult::TaskDefinitionFound { arn }) => arn,
        other => panic!("{other:?}"),
    };
    assert_eq!(found(run(&mut w, find("registry.example/web:v2"))), None);
    let arn = green_up(&mut w, "registry.example/web:v2");
    assert_eq!(
        found(run(&mut w, find("registry.example/web:v2"))),
        Some(arn)
    );
    assert_eq!(found(run(&mut w, find("web:initial"))), Some(base.clone()));
    let td = &w.ecs.task_defs[1];
    assert_eq!(td.tags, Some((base, "registry.example/web:v2".into())));
    assert_eq!(td.revision, 2);
}

#[test]
fn tasks_start_after_a_drawn_delay_and_targets_turn_healthy_after_their_checks() {
    let mut w = world(WorldProfile::aws());
    green_up(&mut w, "registry.example/web:v2");
    let green = w.apps[0].services[1] as usize;
    let tg1 = w.apps[0].target_groups[1];
    assert_eq!(
        w.ecs
            .counts(bluegreen_sim::world::Env::Service(green as u32)),
        (0, 3),
        "pending"
    );
    advance(&mut w, 19_000);
    assert_eq!(
        w.elb.target_groups[tg1 as usize].health.total(),
        0,
        "no task starts in under 20 s"
    );
    advance(&mut w, 72_000);
    assert_eq!(
        w.ecs
            .counts(bluegreen_sim::world::Env::Service(green as u32)),
        (3, 0),
        "running by 90 s"
    );
    let h = w.elb.target_groups[tg1 as usize].health.clone();
    assert_eq!(h.initial + h.healthy, 3);
    advance(&mut w, 150_000);
    assert_eq!(w.elb.healthy(tg1), 3, "healthy after 5 checks 30 s apart");
}

#[test]
fn a_listener_change_reaches_traffic_a_few_seconds_after_the_call() {
    let mut w = world(WorldProfile::aws());
    set_weights(&mut w, &[(0, 90), (1, 10)]).unwrap();
    let f = w.apps[0].prod as usize;
    let green = w.apps[0].target_groups[1];
    assert_eq!(Forward::weight_of(&w.elb.forwards[f].config, green), 10);
    assert_eq!(
        Forward::weight_of(&w.elb.forwards[f].effective, green),
        0,
        "not yet"
    );
    advance(&mut w, 5_001);
    assert_eq!(Forward::weight_of(&w.elb.forwards[f].effective, green), 10);
}

#[test]
fn draining_keeps_tasks_running_for_the_deregistration_delay() {
    let mut w = world(WorldProfile::aws());
    let blue = w.apps[0].services[0];
    run(
        &mut w,
        CommandKind::ScaleEnvironment {
            cluster: "prod".into(),
            service: "web-a".into(),
            desired_count: 0,
        },
    )
    .unwrap();
    let tg0 = w.apps[0].target_groups[0] as usize;
    assert_eq!(w.elb.target_groups[tg0].health.draining, 3);
    advance(&mut w, 299_000);
    assert_eq!(
        w.ecs.counts(bluegreen_sim::world::Env::Service(blue)),
        (3, 0)
    );
    advance(&mut w, 2_000);
    assert_eq!(
        w.ecs.counts(bluegreen_sim::world::Env::Service(blue)),
        (0, 0)
    );
    assert_eq!(w.elb.target_groups[tg0].health.total(), 0);
}

#[test]
fn crash_looping_tasks_fail_and_are_replaced() {
    let mut w = world(WorldProfile::aws());
    let td = green_up(&mut w, "registry.example/web:v2-crashloop");
    advance(&mut w, 10 * 60_000);
    let service = CommandKind::Observe(Observe::Service {
        cluster: "prod".into(),
        service: "web-b".into(),
        failures: Some(FailureFilter {
            task_definition: td,
            since: Timestamp::from_millis(T0),
            started_by: None,
        }),
        also: None,
    });
    let Ok(CommandResult::Observed(Observation::Service(s))) = run(&mut w, service) else {
        panic!()
    };
    assert!(s.failed_tasks >= 6, "{} failures in 10 min", s.failed_tasks);
    assert_eq!(s.desired_count, 3);
    assert_eq!(
        w.elb.healthy(w.apps[0].target_groups[1]),
        0,
        "crashes before 5 passing checks"
    );
    assert!(
        w.api.stats.of(ApiCall::DescribeTasks) == 1,
        "stopped tasks cost a DescribeTasks"
    );
}

#[test]
fn task_sets_are_created_once_per_client_token_and_drain_when_deleted() {
    let mut draft = app_draft("web");
    draft.environment = EnvironmentModel::TaskSet {
        service: "web".into(),
    };
    let mut w = World::seeded(
        &[draft],
        &WorldProfile::fast(),
        9,
        Timestamp::from_millis(T0),
    );
    let create = CommandKind::EnsureGreen(EnsureGreen::TaskSet {
        cluster: "prod".into(),
        service: "web".into(),
        task_definition: w.ecs.task_def_arn(0).to_string().into(),
        target_group: tg(&w, 1),
        like_task_set: w.ecs.task_sets[0].arn.clone(),
        external_id: "web-1".into(),
    });
    let a = w.execute(&cmd("ensure-green", create.clone())).unwrap();
    let b = w.execute(&cmd("ensure-green", create.clone())).unwrap();
    assert_eq!(a, b, "the same client token returns the same task set");
    assert_eq!(w.ecs.task_sets.len(), 2);
    let CommandResult::GreenEnsured {
        task_set: Some(arn),
    } = a
    else {
        panic!()
    };
    advance(&mut w, 10_000);
    let delete = CommandKind::DeleteEnvironment {
        cluster: "prod".into(),
        service: "web".into(),
        task_set: arn.clone(),
    };
    assert_eq!(run(&mut w, delete.clone()), Ok(CommandResult::Deleted));
    let ts = &w.ecs.task_sets[1];
    assert_eq!((ts.state.as_str(), ts.gone), ("DRAINING", false));
    advance(&mut w, 2_001);
    assert!(w.ecs.task_sets[1].gone, "gone once its tasks drained");
    assert_eq!(
        run(&mut w, delete),
        Ok(CommandResult::Deleted),
        "deleting it again succeeds"
    );
}

#[test]
fn the_token_buckets_throttle_and_refill() {
    let mut w = world(WorldProfile::fast());
    let base = w.ecs.task_def_arn(0).clone();
    let register = |i: u32| CommandKind::RegisterTaskDefinition {
        base: base.clone(),
        container: "app".into(),
        image: format!("registry.example/web:v{i}").into(),
    };
    for i in 0..20 {
        run(&mut w, register(i)).unwrap();
    }
    let e = run(&mut w, register(20)).unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Throttled, "ThrottlingException")
    );
    advance(&mut w, 1_000);
    assert!(run(&mut w, register(21)).is_ok(), "one token a second");
}

#[test]
fn a_read_back_throttled_after_the_write_leaves_the_write_applied_and_says_so() {
    let mut w = world(WorldProfile::fast());
    w.api.consume(ApiCall::DescribeListeners, 1_000);
    let e = set_weights(&mut w, &[(0, 50), (1, 50)]).unwrap_err();
    assert_eq!(e.class, ErrorClass::Ambiguous);
    let f = &w.elb.forwards[w.apps[0].prod as usize];
    assert_eq!(
        Forward::weight_of(&f.config, w.apps[0].target_groups[1]),
        50,
        "applied"
    );
}

#[test]
fn requests_follow_the_weights_and_5xx_follows_the_image() {
    let mut w = world(WorldProfile::fast());
    green_up(&mut w, "registry.example/web:v2-5xx");
    advance(&mut w, 30_000);
    set_weights(&mut w, &[(0, 50), (1, 50)]).unwrap();
    advance(&mut w, 4 * 60_000);
    let q = |id: &str, slot: usize, metric: &str| MetricQuery {
        id: id.into(),
        namespace: "AWS/ApplicationELB".into(),
        metric_name: metric.into(),
        dimensions: vec![(
            "TargetGroup".into(),
            w.elb.target_groups[w.apps[0].target_groups[slot] as usize]
                .dimension
                .clone(),
        )],
        stat: "Sum".into(),
        period_s: 60,
    };
    let end = Timestamp::from_millis((w.now().as_millis() / 60_000) * 60_000);
    let req = MetricRequest {
        start: Timestamp::from_millis(end.as_millis() - 120_000),
        end,
        queries: vec![
            q("b", 0, "RequestCount"),
            q("g", 1, "RequestCount"),
            q("e", 1, "HTTPCode_Target_5XX_Count"),
        ],
    };
    let Ok(CommandResult::Observed(Observation::Metrics(m))) =
        run(&mut w, CommandKind::Observe(Observe::Metrics(req)))
    else {
        panic!()
    };
    let sum = |i: usize| m.series[i].values.iter().sum::<f64>();
    assert!(!m.series[0].values.is_empty());
    let share = sum(1) / (sum(0) + sum(1));
    assert!(
        (0.4..0.6).contains(&share),
        "green's share of requests {share}"
    );
    assert!(sum(2) / sum(1) > 0.05, "the 5xx image errors");
    let Ok(CommandResult::Observed(Observation::Alarms(a))) = run(
        &mut w,
        CommandKind::Observe(Observe::Alarms {
            names: vec!["web-5xx".into()].into(),
        }),
    ) else {
        panic!()
    };
    assert_eq!(
        a.alarms[0].state,
        AlarmState::Alarm,
        "{}",
        a.alarms[0].reason
    );
}

#[test]
fn hooks_answer_as_the_scenario_says() {
    let mut w = world(WorldProfile::fast());
    w.hooks.set("smoke", HookBehaviour::NotYet(2));
    let call = |name: &str| {
        CommandKind::CallHook(Box::new(bluegreen_core::HookCall {
            name: name.into(),
            url: "https://hooks.example/x".into(),
            timeout_ms: 1_000,
            payload: bluegreen_core::HookPayload {
                deployment: "web-1".into(),
                app: "web".into(),
                stage: bluegreen_core::HookStage::GreenReady,
                image: None,
                task_definition: None,
                weights: bluegreen_core::Weights::ALL_BLUE,
                green_target_group: None,
                call: 1,
            },
        }))
    };
    let verdict = |r| match r {
        Ok(CommandResult::Hook(v)) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        verdict(run(&mut w, call("smoke"))),
        bluegreen_core::HookVerdict::NotYet
    );
    assert_eq!(
        verdict(run(&mut w, call("smoke"))),
        bluegreen_core::HookVerdict::NotYet
    );
    assert_eq!(
        verdict(run(&mut w, call("smoke"))),
        bluegreen_core::HookVerdict::Pass
    );
    w.hooks.set("gate", HookBehaviour::Unreachable(u32::MAX));
    assert_eq!(
        run(&mut w, call("gate")).unwrap_err().class,
        ErrorClass::Retryable
    );
    assert_eq!(
        verdict(run(&mut w, call("other"))),
        bluegreen_core::HookVerdict::Pass,
        "default: pass"
    );
}

#[test]
fn a_world_replays_identically_from_its_seed() {
    let go = || {
        let mut w = world(WorldProfile::aws());
        green_up(&mut w, "registry.example/web:v2-crashloop");
        advance(&mut w, 15 * 60_000);
        let tasks: Vec<(TaskStatus, Option<Timestamp>)> = w
            .ecs
            .tasks
            .iter()
            .map(|t| (t.status, t.stopped_at))
            .collect();
        (tasks, w.transitions)
    };
    assert_eq!(go(), go());
}

/// The world finds a resource by the very name its draft carried (by address), by the
/// same text in another allocation, and by the resource's ARN — and reads by any of
/// them answer alike; an unknown name is still ServiceNotFound / TargetGroupNotFound.
#[test]
fn resources_are_found_by_the_drafts_name_a_copy_of_it_or_the_arn() {
    let draft = app_draft("web");
    let w = World::seeded(
        std::slice::from_ref(&draft),
        &WorldProfile::fast(),
        9,
        Timestamp::from_millis(T0),
    );
    let EnvironmentModel::ServicePair { services } = &draft.environment else {
        panic!("app_draft is a service pair");
    };
    let cluster = w
        .ecs
        .cluster_named(&draft.cluster)
        .expect("by the draft's name");
    let copy = Name::from(draft.cluster.as_str().to_string());
    assert_eq!(w.ecs.cluster_named(&copy), Some(cluster));
    let arn = Name::from(format!(
        "arn:aws:ecs:us-east-1:123456789012:cluster/{}",
        draft.cluster
    ));
    assert_eq!(w.ecs.cluster_named(&arn), Some(cluster));
    for (i, service) in services.iter().enumerate() {
        let s = w
            .ecs
            .service_named(cluster, service)
            .expect("by the draft's name");
        assert_eq!(w.ecs.services[s as usize].name, *service, "service {i}");
        let copy = Name::from(service.as_str().to_string());
        assert_eq!(w.ecs.service_named(cluster, &copy), Some(s));
        let arn = Name::from(World::service_arn(&draft.cluster, service));
        assert_eq!(w.ecs.service_named(cluster, &arn), Some(s));
    }
    assert_eq!(w.ecs.service_named(cluster, &Name::from("web-c")), None);
    for (slot, arn) in draft.target_groups.iter().enumerate() {
        let tg = w.elb.target_group(arn).expect("by the draft's ARN");
        assert_eq!(tg, w.apps[0].target_groups[slot]);
        let copy = Name::from(arn.as_str().to_string());
        assert_eq!(w.elb.target_group(&copy), Some(tg));
        assert_eq!(
            &w.elb.target_groups[tg as usize].arn_list[..],
            std::slice::from_ref(arn)
        );
    }
    assert_eq!(w.elb.target_group(&Name::from("arn:nope")), None);

    // Through `execute`, a read naming the service by a copy or by its ARN answers as
    // a read by the draft's own name does.
    let mut w = w;
    let read = |service: Name| {
        CommandKind::Observe(Observe::Service {
            cluster: draft.cluster.clone(),
            service,
            failures: None,
            also: None,
        })
    };
    let by_name = run(&mut w, read(services[0].clone())).unwrap();
    let by_copy = run(&mut w, read(Name::from(services[0].as_str().to_string()))).unwrap();
    let by_arn = run(
        &mut w,
        read(Name::from(World::service_arn(&draft.cluster, &services[0]))),
    )
    .unwrap();
    assert_eq!(by_name, by_copy);
    assert_eq!(by_name, by_arn);
    let err = run(&mut w, read(Name::from("web-c"))).unwrap_err();
    assert_eq!(err.code, "ServiceNotFoundException");
}
