//! The AWS adapter over the wire against the local emulator (moto): every ECS and ELBv2
//! command against a realistic fixture, and CloudWatch alarms through the CBOR bridge.
//! Full deployments are in `aws_deployments.rs`. Skipped with a message when the emulator
//! is not installed (a failure under CI=true); `scripts/test` installs it.

mod support;

use bluegreen_core::{
    AlarmState, Cloud, Command, CommandId, CommandKind, CommandResult, DeploymentId, EnsureGreen,
    ErrorClass, FailureFilter, ListenerRef, Mode, Observation, Observe, Preflight, TargetWeight,
    Timestamp,
};
use bluegreen_svc::cloud::aws::AwsCloud;
use support::env::env;
use support::fixture::{self, Fixture};

fn command(step: &str, kind: CommandKind) -> Command {
    Command {
        id: CommandId::new(&DeploymentId::new("web-1").unwrap(), step),
        attempt: 1,
        kind,
    }
}

async fn run(
    aws: &AwsCloud,
    kind: CommandKind,
) -> Result<CommandResult, bluegreen_core::CommandError> {
    aws.execute(&command("step", kind)).await
}

fn web_preflight(fx: &Fixture) -> Preflight {
    Preflight {
        cluster: fixture::CLUSTER.into(),
        mode: Mode::ServicePair,
        services: fixture::WEB_SERVICES
            .map(bluegreen_core::Name::from)
            .to_vec(),
        target_groups: fx.web_target_groups.clone().map(bluegreen_core::Name::from),
        listener: ListenerRef {
            listener_arn: fx.web_listener.clone().into(),
            rule_arn: Some(fx.web_rule.clone().into()),
        },
        test_listener: Some(ListenerRef {
            listener_arn: fx.web_test_listener.clone().into(),
            rule_arn: None,
        }),
        container: fixture::CONTAINER.into(),
    }
}

#[tokio::test]
async fn preflight_passes_on_the_fixture_and_names_what_is_wrong() {
    let Some(env) = env("preflight_passes_on_the_fixture_and_names_what_is_wrong").await else {
        return;
    };
    let (fx, aws) = (env.fx.clone(), env.aws.clone());
    let ok = CommandKind::Preflight(Box::new(web_preflight(&fx)));
    let budget = ok.aws_calls_min();
    assert_eq!(run(&aws, ok).await, Ok(CommandResult::PreflightPassed));
    assert_eq!(
        aws.calls_total(),
        u64::from(budget),
        "{:?}",
        aws.calls_by_operation()
    );

    let task_sets = Preflight {
        mode: Mode::TaskSet,
        services: vec![fixture::API_SERVICE.into()],
        target_groups: fx.api_target_groups.clone().map(bluegreen_core::Name::from),
        listener: ListenerRef {
            listener_arn: fx.api_listener.clone().into(),
            rule_arn: None,
        },
        test_listener: None,
        ..web_preflight(&fx)
    };
    assert_eq!(
        run(&aws, CommandKind::Preflight(Box::new(task_sets.clone()))).await,
        Ok(CommandResult::PreflightPassed)
    );

    let fails = |p: Preflight, text: &'static str| {
        let aws = aws.clone();
        async move {
            let err = run(&aws, CommandKind::Preflight(Box::new(p)))
                .await
                .unwrap_err();
            assert_eq!(err.class, ErrorClass::Fatal, "{err}");
            assert!(err.message.contains(text), "expected {text:?} in: {err}");
        }
    };
    let mut swapped = web_preflight(&fx);
    swapped.target_groups.swap(0, 1);
    fails(
        swapped,
        "target group web-b is not attached to service web-a",
    )
    .await;
    let mut missing = web_preflight(&fx);
    missing.services[1] = "web-c".into();
    fails(missing, "service web-c not found in cluster prod").await;
    let mut cluster = web_preflight(&fx);
    cluster.cluster = "staging".into();
    fails(cluster, "cluster staging not found").await;
    let mut container = web_preflight(&fx);
    container.container = "worker".into();
    fails(
        container,
        "container worker is not in the live task definition",
    )
    .await;
    let mut listener = web_preflight(&fx);
    listener.listener.listener_arn = format!("{}0", fx.web_listener).into();
    listener.listener.rule_arn = None;
    fails(listener, "listener arn:").await;
    let mut pair_on_external = task_sets.clone();
    pair_on_external.mode = Mode::ServicePair;
    pair_on_external.services = vec![fixture::API_SERVICE.into(), fixture::WEB_SERVICES[1].into()];
    fails(
        pair_on_external,
        "service api uses the EXTERNAL deployment controller",
    )
    .await;
    let mut external_needed = task_sets;
    external_needed.services = vec![fixture::WEB_SERVICES[0].into()];
    fails(
        external_needed,
        "task-set mode needs the EXTERNAL controller",
    )
    .await;
}

#[tokio::test]
async fn task_definitions_are_copied_with_only_the_image_replaced_and_found_again() {
    let Some(env) =
        env("task_definitions_are_copied_with_only_the_image_replaced_and_found_again").await
    else {
        return;
    };
    let (fx, aws) = (env.fx.clone(), env.aws.clone());
    let image =
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:".to_string() + &"ab".repeat(32);
    let find = CommandKind::FindTaskDefinition {
        base: fx.web_task_definition.clone().into(),
        container: fixture::CONTAINER.into(),
        image: image.clone().into(),
    };
    let before = aws.calls_total();
    assert_eq!(
        run(&aws, find.clone()).await,
        Ok(CommandResult::TaskDefinitionFound { arn: None })
    );
    assert_eq!(aws.calls_total() - before, u64::from(find.aws_calls_min()));
    let register = CommandKind::RegisterTaskDefinition {
        base: fx.web_task_definition.clone().into(),
        container: fixture::CONTAINER.into(),
        image: image.clone().into(),
    };
    let Ok(CommandResult::TaskDefinitionRegistered { arn }) = run(&aws, register).await else {
        panic!("registered")
    };
    assert!(arn.ends_with("task-definition/web:2"), "{arn}");

    let describe = |td: String| {
        let ecs = fx.ecs.clone();
        async move {
            ecs.describe_task_definition()
                .task_definition(td)
                .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
                .send()
                .await
                .unwrap()
        }
    };
    let base = describe(fx.web_task_definition.clone()).await;
    let copy = describe(arn.to_string()).await;
    let (b, c) = (
        base.task_definition().unwrap(),
        copy.task_definition().unwrap(),
    );
    let mut expected = b.container_definitions().to_vec();
    expected[0].image = Some(image.clone());
    assert_eq!(
        c.container_definitions(),
        expected,
        "only the web container's image changes"
    );
    assert_eq!(
        c.container_definitions()[1].image(),
        Some("fluent/fluent-bit:3.0")
    );
    assert_eq!(c.family(), b.family());
    assert_eq!(c.network_mode(), b.network_mode());
    assert_eq!(c.requires_compatibilities(), b.requires_compatibilities());
    assert_eq!((c.cpu(), c.memory()), (b.cpu(), b.memory()));
    assert_eq!(c.task_role_arn(), b.task_role_arn());
    assert_eq!(c.execution_role_arn(), b.execution_role_arn());
    assert_eq!(c.volumes(), b.volumes());
    assert_eq!(c.ephemeral_storage(), b.ephemeral_storage());
    assert_eq!(c.runtime_platform(), b.runtime_platform());
    let tags: Vec<(&str, &str)> = copy
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(
        tags,
        [
            fixture::TEAM_TAG,
            ("bluegreen:base", fx.web_task_definition.as_str()),
            ("bluegreen:image", image.as_str())
        ]
    );

    assert_eq!(
        run(&aws, find).await,
        Ok(CommandResult::TaskDefinitionFound { arn: Some(arn) })
    );
    let redeploy = CommandKind::FindTaskDefinition {
        base: fx.web_task_definition.clone().into(),
        container: fixture::CONTAINER.into(),
        image: "web:initial".into(),
    };
    assert_eq!(
        run(&aws, redeploy).await,
        Ok(CommandResult::TaskDefinitionFound {
            arn: Some(fx.web_task_definition.clone().into())
        }),
        "the base already runs that image"
    );
    let other = CommandKind::FindTaskDefinition {
        base: fx.web_task_definition.clone().into(),
        container: fixture::CONTAINER.into(),
        image: "web:v3".into(),
    };
    assert_eq!(
        run(&aws, other).await,
        Ok(CommandResult::TaskDefinitionFound { arn: None })
    );
    let wrong = CommandKind::RegisterTaskDefinition {
        base: fx.web_task_definition.clone().into(),
        container: "worker".into(),
        image: image.into(),
    };
    assert_eq!(
        run(&aws, wrong).await.unwrap_err().code,
        "ContainerNotFound"
    );
}

#[tokio::test]
async fn service_pair_commands_update_scale_and_observe_services() {
    let Some(env) = env("service_pair_commands_update_scale_and_observe_services").await else {
        return;
    };
    let (fx, aws) = (env.fx.clone(), env.aws.clone());
    let green = CommandKind::EnsureGreen(EnsureGreen::Service {
        cluster: fixture::CLUSTER.into(),
        service: "web-b".into(),
        task_definition: fx.web_task_definition.clone().into(),
        desired_count: 3,
    });
    assert_eq!(
        run(&aws, green).await,
        Ok(CommandResult::GreenEnsured { task_set: None })
    );
    let observe = |service: &str, failures: Option<FailureFilter>| {
        CommandKind::Observe(Observe::Service {
            cluster: fixture::CLUSTER.into(),
            service: service.into(),
            failures,
            also: None,
        })
    };
    let filter = FailureFilter {
        task_definition: fx.web_task_definition.clone().into(),
        since: Timestamp::from_millis(0),
        started_by: None,
    };
    let before = aws.calls_total();
    let kind = observe("web-b", Some(filter.clone()));
    let Ok(CommandResult::Observed(Observation::Service(s))) = run(&aws, kind.clone()).await else {
        panic!("observed")
    };
    assert_eq!(aws.calls_total() - before, u64::from(kind.aws_calls_min()));
    assert_eq!(
        (
            s.status.as_str(),
            s.desired_count,
            s.running_count,
            s.failed_tasks
        ),
        ("ACTIVE", 3, 3, 0)
    );
    assert_eq!(s.task_definition, fx.web_task_definition);
    assert_eq!(s.target_groups[..], [fx.web_target_groups[1].clone()]);
    assert_eq!(s.also, None);
    // Blue read with green: one DescribeServices for both, the failure count green's.
    let before = aws.calls_total();
    let mut both = observe("web-b", Some(filter.clone()));
    if let CommandKind::Observe(Observe::Service { also, .. }) = &mut both {
        *also = Some("web-a".into());
    }
    let Ok(CommandResult::Observed(Observation::Service(s))) = run(&aws, both.clone()).await else {
        panic!("observed")
    };
    assert_eq!(aws.calls_total() - before, u64::from(both.aws_calls_min()));
    assert_eq!((s.service.as_str(), s.desired_count), ("web-b", 3));
    let blue = s.also.expect("blue read in green's call");
    assert_eq!(blue.service.as_str(), "web-a");
    assert_eq!(blue.status.as_str(), "ACTIVE");
    assert_eq!(blue.target_groups[..], [fx.web_target_groups[0].clone()]);
    assert_eq!(blue.also, None);

    let scale = CommandKind::ScaleEnvironment {
        cluster: fixture::CLUSTER.into(),
        service: "web-b".into(),
        desired_count: 0,
    };
    assert_eq!(run(&aws, scale).await, Ok(CommandResult::Scaled));
    assert_eq!(fx.service("web-b").await.desired_count(), 0);
    let err = run(&aws, observe("web-z", None)).await.unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Fatal, "ServiceNotFoundException"),
        "{err}"
    );
}

#[tokio::test]
async fn task_set_commands_create_once_promote_by_arn_and_delete() {
    let Some(env) = env("task_set_commands_create_once_promote_by_arn_and_delete").await else {
        return;
    };
    let (fx, aws) = (env.fx.clone(), env.aws.clone());
    let green = command(
        "ensure-green",
        CommandKind::EnsureGreen(EnsureGreen::TaskSet {
            cluster: fixture::CLUSTER.into(),
            service: fixture::API_SERVICE.into(),
            task_definition: fx.api_task_definition.clone().into(),
            target_group: fx.api_target_groups[1].clone().into(),
            like_task_set: fx.api_task_set.clone().into(),
            external_id: "web-1".into(),
        }),
    );
    let Ok(CommandResult::GreenEnsured {
        task_set: Some(arn),
    }) = aws.execute(&green).await
    else {
        panic!("created")
    };
    // Sent again (a lost answer): the same task set, not a second one.
    assert_eq!(
        aws.execute(&green).await,
        Ok(CommandResult::GreenEnsured {
            task_set: Some(arn.clone())
        })
    );
    let svc = fx.service(fixture::API_SERVICE).await;
    assert_eq!(svc.task_sets().len(), 2, "blue and one green");
    let ts = svc
        .task_sets()
        .iter()
        .find(|t| t.task_set_arn() == Some(arn.as_str()))
        .unwrap();
    let blue = svc
        .task_sets()
        .iter()
        .find(|t| t.task_set_arn() == Some(fx.api_task_set.as_str()))
        .unwrap();
    assert_eq!(ts.external_id(), Some("web-1"));
    let lb = &ts.load_balancers()[0];
    assert_eq!(
        lb.target_group_arn(),
        Some(fx.api_target_groups[1].as_str())
    );
    assert_eq!(
        (lb.container_name(), lb.container_port()),
        (Some(fixture::CONTAINER), Some(80))
    );
    assert_eq!(ts.network_configuration(), blue.network_configuration());
    assert_eq!(ts.launch_type(), blue.launch_type());

    let primary = CommandKind::SetPrimaryTaskSet {
        cluster: fixture::CLUSTER.into(),
        service: fixture::API_SERVICE.into(),
        task_set: arn.clone(),
    };
    assert_eq!(run(&aws, primary).await, Ok(CommandResult::PrimarySet));
    let Ok(CommandResult::Observed(Observation::Service(s))) = run(
        &aws,
        CommandKind::Observe(Observe::Service {
            cluster: fixture::CLUSTER.into(),
            service: fixture::API_SERVICE.into(),
            failures: None,
            also: None,
        }),
    )
    .await
    else {
        panic!("observed")
    };
    let status = |a: &str| {
        s.task_sets
            .iter()
            .find(|t| t.arn == a)
            .map(|t| t.status.clone())
    };
    assert_eq!(status(&arn).as_deref(), Some("PRIMARY"));
    assert_eq!(status(&fx.api_task_set).as_deref(), Some("ACTIVE"));

    let delete = CommandKind::DeleteEnvironment {
        cluster: fixture::CLUSTER.into(),
        service: fixture::API_SERVICE.into(),
        task_set: fx.api_task_set.clone().into(),
    };
    assert_eq!(run(&aws, delete.clone()).await, Ok(CommandResult::Deleted));
    assert_eq!(
        run(&aws, delete).await,
        Ok(CommandResult::Deleted),
        "already gone"
    );
    assert_eq!(fx.service(fixture::API_SERVICE).await.task_sets().len(), 1);
}

#[tokio::test]
async fn listener_weights_are_written_read_back_and_keep_stickiness() {
    let Some(env) = env("listener_weights_are_written_read_back_and_keep_stickiness").await else {
        return;
    };
    let (fx, aws) = (env.fx.clone(), env.aws.clone());
    let [a, b] = fx.web_target_groups.clone();
    // An operator's stickiness setting on the production listener must survive.
    fx.elb
        .modify_listener()
        .listener_arn(&fx.web_listener)
        .default_actions(
            aws_sdk_elasticloadbalancingv2::types::Action::builder()
                .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::Forward)
                .forward_config(
                    aws_sdk_elasticloadbalancingv2::types::ForwardActionConfig::builder()
                        .target_groups(
                            aws_sdk_elasticloadbalancingv2::types::TargetGroupTuple::builder()
                                .target_group_arn(&a)
                                .weight(1)
                                .build(),
                        )
                        .target_group_stickiness_config(
                            aws_sdk_elasticloadbalancingv2::types::TargetGroupStickinessConfig::builder()
                                .enabled(true)
                                .duration_seconds(120)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let weights = |wa: u32, wb: u32| {
        vec![
            TargetWeight {
                target_group: a.clone().into(),
                weight: wa,
            },
            TargetWeight {
                target_group: b.clone().into(),
                weight: wb,
            },
        ]
    };
    let prod = ListenerRef {
        listener_arn: fx.web_listener.clone().into(),
        rule_arn: None,
    };
    let observe = CommandKind::Observe(Observe::Listener(prod.clone()));
    let Ok(CommandResult::Observed(Observation::Listener(state))) = run(&aws, observe).await else {
        panic!("observed")
    };
    assert_eq!(state.weight_of(&a), 1);
    let set = CommandKind::SetListenerWeights {
        listener: prod.clone(),
        weights: weights(90, 10),
    };
    let before = aws.calls_total();
    let Ok(CommandResult::WeightsSet(held)) = run(&aws, set.clone()).await else {
        panic!("set")
    };
    assert_eq!(aws.calls_total() - before, u64::from(set.aws_calls_min()));
    assert_eq!((held.weight_of(&a), held.weight_of(&b)), (90, 10));
    assert_eq!(fx.production_weights().await, (90, 10));
    let actions = fx
        .elb
        .describe_listeners()
        .listener_arns(&fx.web_listener)
        .send()
        .await
        .unwrap()
        .listeners()[0]
        .default_actions()
        .to_vec();
    let stickiness = actions[0]
        .forward_config()
        .unwrap()
        .target_group_stickiness_config()
        .unwrap();
    assert_eq!(
        (stickiness.enabled(), stickiness.duration_seconds()),
        (Some(true), Some(120))
    );

    // On a rule.
    let rule = ListenerRef {
        listener_arn: fx.web_listener.clone().into(),
        rule_arn: Some(fx.web_rule.clone().into()),
    };
    let Ok(CommandResult::WeightsSet(held)) = run(
        &aws,
        CommandKind::SetListenerWeights {
            listener: rule,
            weights: weights(0, 100),
        },
    )
    .await
    else {
        panic!("set on the rule")
    };
    assert_eq!((held.weight_of(&a), held.weight_of(&b)), (0, 100));
    let on_rule = fx.weights(&fx.web_listener, Some(&fx.web_rule)).await;
    assert!(on_rule.contains(&(b.clone(), 100)), "{on_rule:?}");
    assert_eq!(
        fx.production_weights().await,
        (90, 10),
        "the default action is untouched"
    );

    // Target health: the fixture registered two targets for web-a's two tasks.
    let Ok(CommandResult::Observed(Observation::TargetHealth(h))) = run(
        &aws,
        CommandKind::Observe(Observe::TargetHealth {
            target_group: a.clone().into(),
        }),
    )
    .await
    else {
        panic!("observed")
    };
    assert_eq!(
        (h.healthy, h.total()),
        (fixture::BLUE_TASKS, fixture::BLUE_TASKS)
    );
}

#[tokio::test]
async fn alarms_are_read_through_the_cbor_bridge() {
    let Some(env) = env("alarms_are_read_through_the_cbor_bridge").await else {
        return;
    };
    let (fx, aws) = (env.fx.clone(), env.aws.clone());
    let names = [fixture::ALARM.to_string(), "no-such-alarm".to_string()];
    let observe = CommandKind::Observe(Observe::Alarms {
        names: names.iter().map(bluegreen_core::Name::from).collect(),
    });
    let Ok(CommandResult::Observed(Observation::Alarms(a))) = run(&aws, observe.clone()).await
    else {
        panic!("observed")
    };
    assert_eq!(a.missing, vec!["no-such-alarm".to_string()]);
    assert_ne!(
        a.alarms[0].state,
        AlarmState::Alarm,
        "a new alarm is not in ALARM"
    );
    fx.set_alarm_state(fixture::ALARM, "ALARM", "5xx above 10 for 1 minute")
        .await;
    let Ok(CommandResult::Observed(Observation::Alarms(a))) = run(&aws, observe).await else {
        panic!("observed")
    };
    assert_eq!(a.alarms[0].state, AlarmState::Alarm);
    assert_eq!(a.alarms[0].reason, "5xx above 10 for 1 minute");
}
