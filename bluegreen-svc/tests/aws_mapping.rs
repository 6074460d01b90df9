//! Mapping tests: every command's AWS requests and the parsing of their answers, with
//! aws-smithy-mocks (no network). CloudWatch is proven here: the emulator cannot speak
//! the current CloudWatch protocol (RPC v2 CBOR). Error classes: `aws_errors.rs`.

mod support;

use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::types as cw;
use aws_sdk_ecs::operation::create_task_set::CreateTaskSetOutput;
use aws_sdk_ecs::operation::delete_task_set::DeleteTaskSetOutput;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_task_definitions::ListTaskDefinitionsOutput;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
use aws_sdk_ecs::operation::update_service_primary_task_set::UpdateServicePrimaryTaskSetOutput;
use aws_sdk_ecs::types as ecs;
use aws_sdk_elasticloadbalancingv2::operation::describe_target_groups::DescribeTargetGroupsOutput;
use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthOutput;
use aws_sdk_elasticloadbalancingv2::operation::modify_listener::ModifyListenerOutput;
use aws_sdk_elasticloadbalancingv2::operation::modify_rule::ModifyRuleOutput;
use aws_sdk_elasticloadbalancingv2::types as elb;
use aws_smithy_mocks::mock;
use aws_smithy_types::DateTime;
use bluegreen_core::{
    AlarmState, Cloud, CommandKind, CommandResult, EnsureGreen, ErrorClass, FailureFilter,
    HookCall, HookPayload, HookStage, MetricQuery, MetricRequest, Mode, Observation, Observe,
    TargetWeight, Timestamp, Weights,
};

use support::mock::*;

#[tokio::test]
async fn preflight_passes_with_exactly_the_calls_the_core_budgets() {
    for (mode, rule) in [
        (Mode::ServicePair, false),
        (Mode::ServicePair, true),
        (Mode::TaskSet, false),
    ] {
        let out = match mode {
            Mode::ServicePair => services(vec![
                service("web-a", Some("web-a"), ecs::DeploymentControllerType::Ecs),
                service("web-b", Some("web-b"), ecs::DeploymentControllerType::Ecs),
            ]),
            Mode::TaskSet => {
                let mut s = service("api", None, ecs::DeploymentControllerType::External);
                s.task_sets = Some(vec![task_set(BLUE_TS, "initial", "PRIMARY", "web-a")]);
                services(vec![s])
            }
        };
        let (e, l) = preflight_rules(out);
        let c = cloud(&refs(&e), &refs(&l), &[]);
        let kind = CommandKind::Preflight(Box::new(preflight(mode, rule)));
        let budget = kind.aws_calls_min();
        assert_eq!(
            run(&c, kind).await,
            Ok(CommandResult::PreflightPassed),
            "{mode:?} rule={rule}"
        );
        assert_eq!(
            c.calls_total(),
            u64::from(budget),
            "{:?}",
            c.calls_by_operation()
        );
    }
}

#[tokio::test]
async fn preflight_names_each_mismatched_resource() {
    let pair = |a: Option<&str>, b: Option<&str>, ctl: ecs::DeploymentControllerType| {
        services(vec![
            service("web-a", a, ctl.clone()),
            service("web-b", b, ctl),
        ])
    };
    let cases: Vec<(DescribeServicesOutput, Mode, &str, &str)> = vec![
        (
            pair(
                Some("web-a"),
                Some("web-a"),
                ecs::DeploymentControllerType::Ecs,
            ),
            Mode::ServicePair,
            "TargetGroupNotAttached",
            "target group web-b is not attached to service web-b",
        ),
        (
            pair(
                Some("web-a"),
                Some("web-b"),
                ecs::DeploymentControllerType::External,
            ),
            Mode::ServicePair,
            "ServiceNotSupported",
            "service web-a uses the EXTERNAL deployment controller",
        ),
        (
            services(vec![service(
                "api",
                Some("web-a"),
                ecs::DeploymentControllerType::Ecs,
            )]),
            Mode::TaskSet,
            "ServiceNotSupported",
            "task-set mode needs the EXTERNAL controller",
        ),
        (
            DescribeServicesOutput::builder()
                .services(service(
                    "web-a",
                    Some("web-a"),
                    ecs::DeploymentControllerType::Ecs,
                ))
                .failures(
                    ecs::Failure::builder()
                        .arn("arn:aws:ecs:us-east-1:123456789012:service/prod/web-b")
                        .reason("MISSING")
                        .build(),
                )
                .build(),
            Mode::ServicePair,
            "ServiceNotFoundException",
            "service web-b not found in cluster prod (MISSING)",
        ),
    ];
    for (out, mode, code, text) in cases {
        let (e, l) = preflight_rules(out);
        let c = cloud(&refs(&e), &refs(&l), &[]);
        let err = run(&c, CommandKind::Preflight(Box::new(preflight(mode, false))))
            .await
            .unwrap_err();
        assert_eq!(
            (err.class, err.code.as_str()),
            (ErrorClass::Fatal, code),
            "{err}"
        );
        assert!(err.message.contains(text), "{err}");
    }

    // A container the live task definition does not have.
    let (e, l) = preflight_rules(pair(
        Some("web-a"),
        Some("web-b"),
        ecs::DeploymentControllerType::Ecs,
    ));
    let c = cloud(&refs(&e), &refs(&l), &[]);
    let mut p = preflight(Mode::ServicePair, false);
    p.container = "worker".into();
    let err = run(&c, CommandKind::Preflight(Box::new(p)))
        .await
        .unwrap_err();
    assert_eq!(err.code, "ContainerNotFound");
    assert!(
        err.message
            .contains("container worker is not in the live task definition"),
        "{err}"
    );
    assert!(err.message.contains("web, envoy"), "{err}");

    // A target group attached to another load balancer.
    let (e, _) = preflight_rules(pair(
        Some("web-a"),
        Some("web-b"),
        ecs::DeploymentControllerType::Ecs,
    ));
    let l = [
        describe_listener(vec![forward(&[("web-a", 1)])]),
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_groups).then_output(|| {
            let mut other = target_group("web-b");
            other.load_balancer_arns = Some(vec![format!("{ACCOUNT}:loadbalancer/app/other/1")]);
            DescribeTargetGroupsOutput::builder()
                .target_groups(target_group("web-a"))
                .target_groups(other)
                .build()
        }),
    ];
    let c = cloud(&refs(&e), &refs(&l), &[]);
    let err = run(
        &c,
        CommandKind::Preflight(Box::new(preflight(Mode::ServicePair, false))),
    )
    .await
    .unwrap_err();
    assert!(
        err.message
            .contains("target group web-b belongs to load balancer"),
        "{err}"
    );

    // A missing target group is named (one call per group, on this failure path only).
    let l = [
        describe_listener(vec![forward(&[("web-a", 1)])]),
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_groups)
            .match_requests(|r| r.target_group_arns() == [tg("web-a")])
            .then_output(|| DescribeTargetGroupsOutput::builder().target_groups(target_group("web-a")).build()),
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_groups).then_http_response(|| {
            http(
                400,
                "<ErrorResponse><Error><Type>Sender</Type><Code>TargetGroupNotFound</Code><Message>One or more target groups not found</Message></Error><RequestId>1</RequestId></ErrorResponse>",
            )
        }),
    ];
    let c = cloud(&[], &refs(&l), &[]);
    let err = run(
        &c,
        CommandKind::Preflight(Box::new(preflight(Mode::ServicePair, false))),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, "TargetGroupNotFound");
    assert!(err.message.contains("target group web-b"), "{err}");

    // A rule of another listener.
    let mut p = preflight(Mode::ServicePair, true);
    p.listener.rule_arn = Some(RULE.replace("f2f7dc8efc522ab2", "0000000000000000").into());
    let l = [describe_listener(vec![forward(&[("web-a", 1)])])];
    let c = cloud(&[], &refs(&l), &[]);
    let err = run(&c, CommandKind::Preflight(Box::new(p)))
        .await
        .unwrap_err();
    assert!(err.message.contains("does not belong to listener"), "{err}");
}

#[tokio::test]
async fn find_task_definition_returns_the_base_or_a_tagged_copy_newer_than_it() {
    let tags_of =
        |base: &str, image: &str| vec![tag("bluegreen:base", base), tag("bluegreen:image", image)];
    let rules = [
        mock!(aws_sdk_ecs::Client::describe_task_definition)
            .match_requests(|r| {
                r.task_definition() == Some(TD1) && r.include() == [ecs::TaskDefinitionField::Tags]
            })
            .then_output(|| task_definition_output("web:v1", vec![])),
        mock!(aws_sdk_ecs::Client::list_task_definitions)
            .match_requests(|r| {
                r.family_prefix() == Some("web")
                    && r.sort() == Some(&ecs::SortOrder::Desc)
                    && r.status() == Some(&ecs::TaskDefinitionStatus::Active)
            })
            .then_output(|| {
                ListTaskDefinitionsOutput::builder()
                    .task_definition_arns(TD2)
                    .task_definition_arns(TD1)
                    .build()
            }),
        mock!(aws_sdk_ecs::Client::describe_task_definition)
            .match_requests(|r| {
                r.task_definition() == Some(TD2) && r.include() == [ecs::TaskDefinitionField::Tags]
            })
            .then_output(move || {
                let mut out = task_definition_output(IMAGE, tags_of(TD1, IMAGE));
                out.task_definition.as_mut().unwrap().task_definition_arn = Some(TD2.into());
                out
            }),
    ];
    let find = |base: &str, image: &str| CommandKind::FindTaskDefinition {
        base: base.into(),
        container: "web".into(),
        image: image.into(),
    };
    let c = cloud(&refs(&rules), &[], &[]);
    assert_eq!(
        run(&c, find(TD1, IMAGE)).await,
        Ok(CommandResult::TaskDefinitionFound {
            arn: Some(TD2.into())
        })
    );
    assert_eq!(
        c.calls_total(),
        3,
        "the base, the list, the one newer revision"
    );

    let c = cloud(&refs(&rules), &[], &[]);
    assert_eq!(
        run(&c, find(TD1, "web:v3")).await,
        Ok(CommandResult::TaskDefinitionFound { arn: None })
    );

    // Redeploying the image the base already runs: the base itself, one call.
    let c = cloud(&refs(&rules), &[], &[]);
    assert_eq!(
        run(&c, find(TD1, "web:v1")).await,
        Ok(CommandResult::TaskDefinitionFound {
            arn: Some(TD1.into())
        })
    );
    assert_eq!(c.calls_total(), 1);

    // The base is the newest revision (the usual first deployment of an image): nothing
    // newer can be a copy of it — the base and the list, the core's budget.
    let c = cloud(&refs(&rules), &[], &[]);
    let kind = find(TD2, "web:v9");
    let budget = kind.aws_calls_min();
    assert_eq!(
        run(&c, kind).await,
        Ok(CommandResult::TaskDefinitionFound { arn: None })
    );
    assert_eq!(c.calls_total(), u64::from(budget));
}

#[tokio::test]
async fn register_copies_every_field_and_replaces_only_the_named_image() {
    let rules = [
        mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(|| {
            task_definition_output(
                "web:v1",
                vec![tag("team", "payments"), tag("bluegreen:image", "old")],
            )
        }),
        mock!(aws_sdk_ecs::Client::register_task_definition)
            .match_requests(|r| {
                let base = task_definition_output("web:v1", vec![])
                    .task_definition
                    .unwrap();
                let web = r
                    .container_definitions()
                    .iter()
                    .find(|c| c.name() == Some("web"))
                    .unwrap();
                let envoy = r
                    .container_definitions()
                    .iter()
                    .find(|c| c.name() == Some("envoy"))
                    .unwrap();
                let mut expected_web = base.container_definitions()[0].clone();
                expected_web.image = Some(IMAGE.into());
                let tags: Vec<(&str, &str)> = r
                    .tags()
                    .iter()
                    .map(|t| (t.key().unwrap(), t.value().unwrap()))
                    .collect();
                *web == expected_web
                    && *envoy == base.container_definitions()[1]
                    && r.family() == Some("web")
                    && r.task_role_arn() == base.task_role_arn()
                    && r.execution_role_arn() == base.execution_role_arn()
                    && r.network_mode() == base.network_mode()
                    && r.requires_compatibilities() == base.requires_compatibilities()
                    && r.cpu() == base.cpu()
                    && r.memory() == base.memory()
                    && r.volumes() == base.volumes()
                    && r.ephemeral_storage() == base.ephemeral_storage()
                    && r.runtime_platform() == base.runtime_platform()
                    && r.proxy_configuration() == base.proxy_configuration()
                    && r.pid_mode() == base.pid_mode()
                    && tags
                        == [
                            ("team", "payments"),
                            ("bluegreen:base", TD1),
                            ("bluegreen:image", IMAGE),
                        ]
            })
            .then_output(|| {
                RegisterTaskDefinitionOutput::builder()
                    .task_definition(
                        ecs::TaskDefinition::builder()
                            .task_definition_arn(TD2)
                            .build(),
                    )
                    .build()
            }),
    ];
    let c = cloud(&refs(&rules), &[], &[]);
    let register = |container: &str| CommandKind::RegisterTaskDefinition {
        base: TD1.into(),
        container: container.into(),
        image: IMAGE.into(),
    };
    let kind = register("web");
    let budget = kind.aws_calls_min();
    assert_eq!(
        run(&c, kind).await,
        Ok(CommandResult::TaskDefinitionRegistered { arn: TD2.into() })
    );
    assert_eq!(c.calls_total(), u64::from(budget));
    let err = run(&c, register("worker")).await.unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Fatal, "ContainerNotFound")
    );
}

#[tokio::test]
async fn service_pair_writes_are_update_service_calls() {
    let rules = [
        mock!(aws_sdk_ecs::Client::update_service)
            .match_requests(|r| {
                r.cluster() == Some("prod")
                    && r.service() == Some("web-b")
                    && r.task_definition() == Some(TD2)
                    && r.desired_count() == Some(3)
            })
            .then_output(|| UpdateServiceOutput::builder().build()),
        mock!(aws_sdk_ecs::Client::update_service)
            .match_requests(|r| {
                r.service() == Some("web-a")
                    && r.task_definition().is_none()
                    && r.desired_count() == Some(0)
            })
            .then_output(|| UpdateServiceOutput::builder().build()),
    ];
    let c = cloud(&refs(&rules), &[], &[]);
    let green = CommandKind::EnsureGreen(EnsureGreen::Service {
        cluster: "prod".into(),
        service: "web-b".into(),
        task_definition: TD2.into(),
        desired_count: 3,
    });
    assert_eq!(
        run(&c, green).await,
        Ok(CommandResult::GreenEnsured { task_set: None })
    );
    let scale = CommandKind::ScaleEnvironment {
        cluster: "prod".into(),
        service: "web-a".into(),
        desired_count: 0,
    };
    assert_eq!(run(&c, scale).await, Ok(CommandResult::Scaled));
    assert_eq!(c.calls_total(), 2);
}

#[tokio::test]
async fn task_set_commands_copy_blue_and_carry_the_client_token() {
    let green = command(
        "ensure-green",
        CommandKind::EnsureGreen(EnsureGreen::TaskSet {
            cluster: "prod".into(),
            service: "api".into(),
            task_definition: TD2.into(),
            target_group: tg("web-b").into(),
            like_task_set: BLUE_TS.into(),
            external_id: "web-1".into(),
        }),
    );
    let token = green.id.client_token();
    let blue_only = || {
        let mut s = service("api", None, ecs::DeploymentControllerType::External);
        s.task_sets = Some(vec![task_set(BLUE_TS, "initial", "PRIMARY", "web-a")]);
        services(vec![s])
    };
    let rules = [
        mock!(aws_sdk_ecs::Client::describe_services).then_output(blue_only),
        mock!(aws_sdk_ecs::Client::create_task_set)
            .match_requests(move |r| {
                let lbs = r.load_balancers();
                r.client_token() == Some(token.as_str())
                    && r.external_id() == Some("web-1")
                    && r.task_definition() == Some(TD2)
                    && lbs.len() == 1
                    && lbs[0].target_group_arn() == Some(tg("web-b").as_str())
                    && lbs[0].container_name() == Some("web")
                    && lbs[0].container_port() == Some(8080)
                    && r.network_configuration() == Some(&network())
                    && r.launch_type() == Some(&ecs::LaunchType::Fargate)
                    && r.platform_version() == Some("1.4.0")
                    && r.scale()
                        == Some(
                            &ecs::Scale::builder()
                                .unit(ecs::ScaleUnit::Percent)
                                .value(100.0)
                                .build(),
                        )
            })
            .then_output(|| {
                CreateTaskSetOutput::builder()
                    .task_set(ecs::TaskSet::builder().task_set_arn(GREEN_TS).build())
                    .build()
            }),
    ];
    let c = cloud(&refs(&rules), &[], &[]);
    assert_eq!(
        c.execute(&green).await,
        Ok(CommandResult::GreenEnsured {
            task_set: Some(GREEN_TS.into())
        })
    );
    assert_eq!(c.calls_total(), u64::from(green.kind.aws_calls_min()));

    // A retry after a lost answer finds the task set instead of creating another.
    let with_green = || {
        let mut s = service("api", None, ecs::DeploymentControllerType::External);
        let mut g = task_set(GREEN_TS, "web-1", "ACTIVE", "web-b");
        g.task_definition = Some(TD2.into());
        s.task_sets = Some(vec![task_set(BLUE_TS, "initial", "PRIMARY", "web-a"), g]);
        services(vec![s])
    };
    let rules = [mock!(aws_sdk_ecs::Client::describe_services).then_output(with_green)];
    let c = cloud(&refs(&rules), &[], &[]);
    assert_eq!(
        c.execute(&green).await,
        Ok(CommandResult::GreenEnsured {
            task_set: Some(GREEN_TS.into())
        })
    );
    assert_eq!(c.calls_by_operation().get("CreateTaskSet"), None);

    let rules = [
        mock!(aws_sdk_ecs::Client::update_service_primary_task_set)
            .match_requests(|r| r.primary_task_set() == Some(GREEN_TS) && r.service() == Some("api"))
            .then_output(|| UpdateServicePrimaryTaskSetOutput::builder().build()),
        mock!(aws_sdk_ecs::Client::delete_task_set)
            .match_requests(|r| r.task_set() == Some(BLUE_TS) && r.force() == Some(true))
            .then_output(|| DeleteTaskSetOutput::builder().build()),
        mock!(aws_sdk_ecs::Client::delete_task_set)
            .match_requests(|r| r.task_set() == Some(GREEN_TS))
            .then_http_response(|| {
                http(400, r#"{"__type":"TaskSetNotFoundException","message":"The specified task set does not exist."}"#)
            }),
    ];
    let c = cloud(&refs(&rules), &[], &[]);
    let primary = CommandKind::SetPrimaryTaskSet {
        cluster: "prod".into(),
        service: "api".into(),
        task_set: GREEN_TS.into(),
    };
    assert_eq!(run(&c, primary).await, Ok(CommandResult::PrimarySet));
    let delete = |ts: &str| CommandKind::DeleteEnvironment {
        cluster: "prod".into(),
        service: "api".into(),
        task_set: ts.into(),
    };
    assert_eq!(run(&c, delete(BLUE_TS)).await, Ok(CommandResult::Deleted));
    assert_eq!(
        run(&c, delete(GREEN_TS)).await,
        Ok(CommandResult::Deleted),
        "already gone is deleted"
    );
}

#[tokio::test]
async fn weights_are_written_as_a_weighted_forward_and_read_back() {
    let written = vec![oidc(), forward(&[("web-a", 90), ("web-b", 10)])];
    let rules = [
        describe_listener(vec![oidc(), forward(&[("web-a", 1)])]),
        mock!(aws_sdk_elasticloadbalancingv2::Client::modify_listener)
            .match_requests(move |r| {
                r.listener_arn() == Some(LISTENER) && r.default_actions() == written
            })
            .then_output(|| ModifyListenerOutput::builder().build()),
    ];
    let c = cloud(&[], &refs(&rules), &[]);
    let weights = vec![
        TargetWeight {
            target_group: tg("web-a").into(),
            weight: 90,
        },
        TargetWeight {
            target_group: tg("web-b").into(),
            weight: 10,
        },
    ];
    let set = CommandKind::SetListenerWeights {
        listener: listener_ref(false),
        weights: weights.clone(),
    };
    // The mock's read-back still shows 100/0: the adapter reports what AWS holds.
    let Ok(CommandResult::WeightsSet(held)) = run(&c, set.clone()).await else {
        panic!("weights set")
    };
    assert_eq!(held.weight_of(&tg("web-a")), 1);
    // Cold (no read of this listener yet): read + write + read-back.
    assert_eq!(c.calls_total(), 3, "{:?}", c.calls_by_operation());

    // Warm (preflight or an observation read it): write + read-back = the core's budget.
    let c = cloud(&[], &refs(&rules), &[]);
    let observed = run(
        &c,
        CommandKind::Observe(Observe::Listener(listener_ref(false))),
    )
    .await;
    let Ok(CommandResult::Observed(Observation::Listener(state))) = observed else {
        panic!("observed")
    };
    assert_eq!(
        state.forwards,
        vec![TargetWeight {
            target_group: tg("web-a").into(),
            weight: 1
        }]
    );
    let before = c.calls_total();
    run(&c, set.clone()).await.unwrap();
    assert_eq!(c.calls_total() - before, u64::from(set.aws_calls_min()));

    // On a rule: ModifyRule + DescribeRules, read back what the rule holds.
    let read_back = vec![forward(&[("web-a", 90), ("web-b", 10)])];
    let rules = [
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_rules)
            .then_output(move || rule_output(read_back.clone())),
        mock!(aws_sdk_elasticloadbalancingv2::Client::modify_rule)
            .match_requests(|r| {
                r.rule_arn() == Some(RULE)
                    && r.actions() == [forward(&[("web-a", 90), ("web-b", 10)])]
            })
            .then_output(|| ModifyRuleOutput::builder().build()),
    ];
    let c = cloud(&[], &refs(&rules), &[]);
    let on_rule = CommandKind::SetListenerWeights {
        listener: listener_ref(true),
        weights,
    };
    let Ok(CommandResult::WeightsSet(held)) = run(&c, on_rule).await else {
        panic!("weights set on the rule")
    };
    assert_eq!(
        (held.weight_of(&tg("web-a")), held.weight_of(&tg("web-b"))),
        (90, 10)
    );
}

#[tokio::test]
async fn service_observation_counts_only_green_failures_since_the_start() {
    let since = Timestamp::from_millis(1_800_000_000_000);
    let at = |offset_s: i64| DateTime::from_millis(1_800_000_000_000 + offset_s * 1000);
    let task = |td: &str, code: ecs::TaskStopCode, reason: &str, stopped: DateTime| {
        ecs::Task::builder()
            .task_arn(format!(
                "arn:aws:ecs:us-east-1:123456789012:task/prod/{reason}"
            ))
            .task_definition_arn(td)
            .stop_code(code)
            .stopped_reason(reason)
            .stopped_at(stopped)
            .build()
    };
    let rules = [
        mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
            services(vec![service(
                "web-b",
                Some("web-b"),
                ecs::DeploymentControllerType::Ecs,
            )])
        }),
        mock!(aws_sdk_ecs::Client::list_tasks)
            .match_requests(|r| {
                r.service_name() == Some("web-b")
                    && r.desired_status() == Some(&ecs::DesiredStatus::Stopped)
            })
            .then_output(|| {
                ListTasksOutput::builder()
                    .task_arns("t1")
                    .task_arns("t2")
                    .build()
            }),
        mock!(aws_sdk_ecs::Client::describe_tasks).then_output(move || {
            DescribeTasksOutput::builder()
                .tasks(task(
                    TD2,
                    ecs::TaskStopCode::EssentialContainerExited,
                    "crash",
                    at(10),
                ))
                .tasks(task(
                    TD2,
                    ecs::TaskStopCode::TaskFailedToStart,
                    "pull",
                    at(20),
                ))
                .tasks(task(
                    TD2,
                    ecs::TaskStopCode::ServiceSchedulerInitiated,
                    "Task failed ELB health checks",
                    at(30),
                ))
                .tasks(task(
                    TD2,
                    ecs::TaskStopCode::ServiceSchedulerInitiated,
                    "Scaling activity initiated",
                    at(40),
                ))
                .tasks(task(
                    TD1,
                    ecs::TaskStopCode::EssentialContainerExited,
                    "blue crash",
                    at(50),
                ))
                .tasks(task(
                    TD2,
                    ecs::TaskStopCode::EssentialContainerExited,
                    "before green",
                    at(-60),
                ))
                .build()
        }),
    ];
    let c = cloud(&refs(&rules), &[], &[]);
    let kind = CommandKind::Observe(Observe::Service {
        cluster: "prod".into(),
        service: "web-b".into(),
        failures: Some(FailureFilter {
            task_definition: TD2.into(),
            since,
            started_by: None,
        }),
        also: None,
    });
    let Ok(CommandResult::Observed(Observation::Service(s))) = run(&c, kind.clone()).await else {
        panic!("observed")
    };
    assert_eq!(
        s.failed_tasks, 3,
        "crash, failed to start, failed health checks"
    );
    assert_eq!(
        (s.desired_count, s.running_count, s.task_definition.as_str()),
        (3, 3, TD1)
    );
    assert_eq!(s.target_groups[..], [tg("web-b")]);
    assert_eq!(
        c.calls_total(),
        u64::from(kind.aws_calls_min()) + 1,
        "DescribeTasks only because tasks stopped"
    );

    // Task sets: ListTasks by the task set's id (startedBy alone), and task sets parsed.
    let rules = [
        mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
            let mut s = service("api", None, ecs::DeploymentControllerType::External);
            s.task_sets = Some(vec![task_set(BLUE_TS, "initial", "PRIMARY", "web-a")]);
            services(vec![s])
        }),
        mock!(aws_sdk_ecs::Client::list_tasks)
            .match_requests(|r| r.started_by() == Some("ecs-svc/222") && r.service_name().is_none())
            .then_output(|| ListTasksOutput::builder().build()),
    ];
    let c = cloud(&refs(&rules), &[], &[]);
    let kind = CommandKind::Observe(Observe::Service {
        cluster: "prod".into(),
        service: "api".into(),
        failures: Some(FailureFilter {
            task_definition: TD2.into(),
            since,
            started_by: Some(GREEN_TS.into()),
        }),
        also: None,
    });
    let Ok(CommandResult::Observed(Observation::Service(s))) = run(&c, kind.clone()).await else {
        panic!("observed")
    };
    assert_eq!(c.calls_total(), u64::from(kind.aws_calls_min()));
    assert_eq!(s.failed_tasks, 0);
    assert_eq!(s.task_definition, "");
    let ts = &s.task_sets[0];
    assert_eq!(
        (
            ts.arn.as_str(),
            ts.id.as_str(),
            ts.status.as_str(),
            ts.stability_status.as_str()
        ),
        (BLUE_TS, "ecs-svc/111", "PRIMARY", "STEADY_STATE")
    );
    assert_eq!(ts.target_groups[..], [tg("web-a")]);
}

#[tokio::test]
async fn target_health_is_counted_by_state() {
    let state = |s: elb::TargetHealthStateEnum| {
        elb::TargetHealthDescription::builder()
            .target_health(elb::TargetHealth::builder().state(s).build())
            .build()
    };
    let rules = [
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health)
            .match_requests(|r| r.target_group_arn() == Some(tg("web-b").as_str()))
            .then_output(move || {
                DescribeTargetHealthOutput::builder()
                    .target_health_descriptions(state(elb::TargetHealthStateEnum::Healthy))
                    .target_health_descriptions(state(elb::TargetHealthStateEnum::Healthy))
                    .target_health_descriptions(state(elb::TargetHealthStateEnum::Unhealthy))
                    .target_health_descriptions(state(elb::TargetHealthStateEnum::Initial))
                    .target_health_descriptions(state(elb::TargetHealthStateEnum::Draining))
                    .target_health_descriptions(state(elb::TargetHealthStateEnum::Unused))
                    .build()
            }),
    ];
    let c = cloud(&[], &refs(&rules), &[]);
    let Ok(CommandResult::Observed(Observation::TargetHealth(h))) = run(
        &c,
        CommandKind::Observe(Observe::TargetHealth {
            target_group: tg("web-b").into(),
        }),
    )
    .await
    else {
        panic!("observed")
    };
    assert_eq!(
        (h.healthy, h.unhealthy, h.initial, h.draining, h.other),
        (2, 1, 1, 1, 1)
    );
}

#[tokio::test]
async fn target_health_keeps_elbv2_reasons_grouped_and_bounded() {
    let failing = |code: &str, reason: elb::TargetHealthReasonEnum| {
        elb::TargetHealthDescription::builder()
            .target_health(
                elb::TargetHealth::builder()
                    .state(elb::TargetHealthStateEnum::Unhealthy)
                    .reason(reason)
                    .description(format!("Health checks failed with these codes: [{code}]"))
                    .build(),
            )
            .build()
    };
    let rules = [
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health).then_output(
            move || {
                let mut out = DescribeTargetHealthOutput::builder()
                    // Two targets with one reason are one entry counting two.
                    .target_health_descriptions(failing(
                        "502",
                        elb::TargetHealthReasonEnum::ResponseCodeMismatch,
                    ))
                    .target_health_descriptions(failing(
                        "502",
                        elb::TargetHealthReasonEnum::ResponseCodeMismatch,
                    ))
                    // A healthy target gives no reason even when AWS sends one.
                    .target_health_descriptions(
                        elb::TargetHealthDescription::builder()
                            .target_health(
                                elb::TargetHealth::builder()
                                    .state(elb::TargetHealthStateEnum::Healthy)
                                    .reason(elb::TargetHealthReasonEnum::InitialHealthChecking)
                                    .build(),
                            )
                            .build(),
                    );
                // Forty distinct codes: only the first few are kept, every target counted.
                for code in 0..40 {
                    out = out.target_health_descriptions(failing(
                        &format!("5{code:02}"),
                        elb::TargetHealthReasonEnum::FailedHealthChecks,
                    ));
                }
                out.build()
            },
        ),
    ];
    let c = cloud(&[], &refs(&rules), &[]);
    let Ok(CommandResult::Observed(Observation::TargetHealth(h))) = run(
        &c,
        CommandKind::Observe(Observe::TargetHealth {
            target_group: tg("web-b").into(),
        }),
    )
    .await
    else {
        panic!("observed")
    };
    assert_eq!((h.healthy, h.unhealthy), (1, 42));
    assert_eq!(h.reasons.len(), bluegreen_core::TargetHealth::REASONS_MAX);
    let first = &h.reasons[0];
    assert_eq!(
        (
            first.state.as_ref(),
            first.reason.as_ref(),
            first.description.as_deref(),
            first.targets
        ),
        (
            "unhealthy",
            "Target.ResponseCodeMismatch",
            Some("Health checks failed with these codes: [502]"),
            2
        )
    );
    assert!(
        h.summary()
            .starts_with("1 healthy, 42 unhealthy (2× Target.ResponseCodeMismatch: Health checks failed with these codes: [502]; 1× Target.FailedHealthChecks"),
        "{}",
        h.summary()
    );
}

#[tokio::test]
async fn alarms_are_read_100_names_a_call_and_missing_ones_listed() {
    let names: Vec<String> = (0..150).map(|i| format!("alarm-{i:03}")).collect();
    let rules = [mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .match_requests(|r| {
            let n = r.alarm_names().len();
            n <= 100
                && r.alarm_types() == [cw::AlarmType::MetricAlarm, cw::AlarmType::CompositeAlarm]
        })
        .then_compute_output(|r| {
            // Every asked-for alarm exists except alarm-149; alarm-007 is in ALARM.
            let mut out = DescribeAlarmsOutput::builder();
            for name in r.alarm_names().iter().filter(|n| *n != "alarm-149") {
                let state = if name == "alarm-007" {
                    cw::StateValue::Alarm
                } else {
                    cw::StateValue::Ok
                };
                out = out.metric_alarms(
                    cw::MetricAlarm::builder()
                        .alarm_name(name)
                        .state_value(state)
                        .state_reason(format!("{name} reason"))
                        .build(),
                );
            }
            out.build()
        })];
    let c = cloud(&[], &[], &refs(&rules));
    let kind = CommandKind::Observe(Observe::Alarms {
        names: names.iter().map(bluegreen_core::Name::from).collect(),
    });
    let Ok(CommandResult::Observed(Observation::Alarms(a))) = run(&c, kind.clone()).await else {
        panic!("observed")
    };
    assert_eq!(c.calls_total(), u64::from(kind.aws_calls_min()));
    assert_eq!(c.calls_total(), 2);
    assert_eq!(a.missing, vec!["alarm-149".to_string()]);
    assert_eq!(a.alarms.len(), 149);
    assert_eq!(a.alarms[7].state, AlarmState::Alarm);
    assert_eq!(a.alarms[7].reason, "alarm-007 reason");
    assert!(
        a.alarms.iter().map(|x| &x.name).eq(names[..149].iter()),
        "in the order asked"
    );
}

#[tokio::test]
async fn metric_data_is_requested_per_query_and_merged_across_pages() {
    let request = MetricRequest {
        start: Timestamp::from_millis(1_800_000_000_000),
        end: Timestamp::from_millis(1_800_000_300_000),
        queries: vec![
            MetricQuery {
                id: "m0ga".into(),
                namespace: "AWS/ApplicationELB".into(),
                metric_name: "HTTPCode_Target_5XX_Count".into(),
                dimensions: vec![("TargetGroup".into(), "targetgroup/web-b/1".into())],
                stat: "Sum".into(),
                period_s: 60,
            },
            MetricQuery {
                id: "m1ga".into(),
                namespace: "AWS/ApplicationELB".into(),
                metric_name: "TargetResponseTime".into(),
                dimensions: vec![],
                stat: "p99".into(),
                period_s: 60,
            },
        ],
    };
    let rules = [
        mock!(aws_sdk_cloudwatch::Client::get_metric_data)
            .match_requests(|r| {
                let q = &r.metric_data_queries()[0];
                let stat = q.metric_stat().unwrap();
                let metric = stat.metric().unwrap();
                r.next_token().is_none()
                    && r.start_time() == Some(&DateTime::from_millis(1_800_000_000_000))
                    && r.end_time() == Some(&DateTime::from_millis(1_800_000_300_000))
                    && r.scan_by() == Some(&cw::ScanBy::TimestampAscending)
                    && q.id() == Some("m0ga")
                    && stat.stat() == Some("Sum")
                    && stat.period() == Some(60)
                    && metric.metric_name() == Some("HTTPCode_Target_5XX_Count")
                    && metric.dimensions()[0].value() == Some("targetgroup/web-b/1")
                    && r.metric_data_queries()[1].metric_stat().unwrap().stat() == Some("p99")
            })
            .then_output(|| {
                GetMetricDataOutput::builder()
                    .metric_data_results(
                        cw::MetricDataResult::builder()
                            .id("m0ga")
                            .values(1.0)
                            .values(2.0)
                            .build(),
                    )
                    .next_token("page-2")
                    .build()
            }),
        mock!(aws_sdk_cloudwatch::Client::get_metric_data)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .then_output(|| {
                GetMetricDataOutput::builder()
                    .metric_data_results(
                        cw::MetricDataResult::builder()
                            .id("m0ga")
                            .values(3.0)
                            .build(),
                    )
                    .build()
            }),
    ];
    let c = cloud(&[], &[], &refs(&rules));
    let Ok(CommandResult::Observed(Observation::Metrics(data))) =
        run(&c, CommandKind::Observe(Observe::Metrics(request))).await
    else {
        panic!("observed")
    };
    assert_eq!(data.series[0].id, "m0ga");
    assert_eq!(data.series[0].values, vec![1.0, 2.0, 3.0]);
    assert_eq!(data.series[1].id, "m1ga");
    assert!(
        data.series[1].values.is_empty(),
        "no data is an empty series"
    );
    assert_eq!(c.calls_total(), 2);
}

#[tokio::test]
async fn hooks_are_not_the_adapters_job() {
    let c = cloud(&[], &[], &[]);
    let hook = CommandKind::CallHook(Box::new(HookCall {
        name: "smoke".into(),
        url: "https://example.com/hook".into(),
        timeout_ms: 1000,
        payload: HookPayload {
            deployment: "web-1".into(),
            app: "web".into(),
            stage: HookStage::GreenReady,
            image: None,
            task_definition: None,
            weights: Weights::ALL_BLUE,
            green_target_group: None,
            call: 1,
        },
    }));
    let err = run(&c, hook).await.unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Fatal, "UnsupportedCommand")
    );
    assert_eq!(c.calls_total(), 0);
}

#[tokio::test]
async fn tag_slots_tags_each_target_group_with_its_own_live_value() {
    use aws_sdk_elasticloadbalancingv2::operation::add_tags::AddTagsOutput;
    let tag = |r: &aws_sdk_elasticloadbalancingv2::operation::add_tags::AddTagsInput, k: &str| {
        r.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value().map(str::to_string))
    };
    let rules = [
        mock!(aws_sdk_elasticloadbalancingv2::Client::add_tags)
            .match_requests(move |r| {
                r.resource_arns() == [tg("web-a")]
                    && tag(r, "bluegreen:live").as_deref() == Some("false")
                    && tag(r, "bluegreen:slot").as_deref() == Some("a")
            })
            .then_output(|| AddTagsOutput::builder().build()),
        mock!(aws_sdk_elasticloadbalancingv2::Client::add_tags)
            .match_requests(move |r| {
                r.resource_arns() == [tg("web-b")]
                    && tag(r, "bluegreen:live").as_deref() == Some("true")
                    && tag(r, "bluegreen:deployment").as_deref() == Some("web-7")
                    && tag(r, "bluegreen:outcome").as_deref() == Some("completed")
            })
            .then_output(|| AddTagsOutput::builder().build()),
    ];
    let c = cloud(&[], &refs(&rules), &[]);
    let r = run(
        &c,
        CommandKind::TagSlots {
            target_groups: [tg("web-a").into(), tg("web-b").into()],
            live_slot: 1,
            deployment: "web-7".into(),
            outcome: "completed".into(),
        },
    )
    .await;
    assert_eq!(r, Ok(CommandResult::Tagged));
    assert_eq!(c.calls_total(), 2, "one AddTags per target group");
}

/// Many deployments reading services of one cluster at once share `DescribeServices`
/// calls (ten services a call, AWS's limit), and each gets its own service's status.
#[tokio::test]
async fn concurrent_service_reads_in_one_cluster_share_describe_services_calls() {
    let names: Vec<String> = (0..12).map(|i| format!("svc-{i:02}")).collect();
    let all = names.clone();
    let rule = mock!(aws_sdk_ecs::Client::describe_services).then_output(move || {
        DescribeServicesOutput::builder()
            .set_services(Some(
                all.iter()
                    .enumerate()
                    .map(|(i, n)| {
                        let mut s = service(n, None, ecs::DeploymentControllerType::Ecs);
                        s.desired_count = i as i32;
                        s
                    })
                    .collect(),
            ))
            .build()
    });
    let c = cloud(&[&rule], &[], &[]);
    let mut reads = tokio::task::JoinSet::new();
    for name in &names {
        let (c, name) = (c.clone(), name.clone());
        reads.spawn(async move {
            let kind = CommandKind::Observe(Observe::Service {
                cluster: "prod".into(),
                service: name.clone().into(),
                failures: None,
                also: None,
            });
            (name, run(&c, kind).await)
        });
    }
    let mut answered = 0;
    while let Some(done) = reads.join_next().await {
        let (name, result) = done.unwrap();
        let Ok(CommandResult::Observed(Observation::Service(s))) = result else {
            panic!("{name}: {result:?}");
        };
        let i: u32 = name[4..].parse().unwrap();
        assert_eq!((s.service.as_str(), s.desired_count), (name.as_str(), i));
        answered += 1;
    }
    assert_eq!(answered, 12);
    let calls = c.calls_by_operation()["DescribeServices"];
    assert!(
        (2..=3).contains(&calls),
        "12 reads at once: {calls} DescribeServices calls (ten a call)"
    );
}

/// Deployments reading their alarms at once share `DescribeAlarms` calls (a hundred
/// names a call); each gets exactly its own alarms back, missing ones named.
#[tokio::test]
async fn concurrent_alarm_reads_share_describe_alarms_calls() {
    let rules = [mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .match_requests(|r| r.alarm_names().len() <= 100)
        .then_compute_output(|r| {
            let mut out = DescribeAlarmsOutput::builder();
            // Every alarm exists except the fifth deployment's last one.
            for name in r.alarm_names().iter().filter(|n| *n != "d4-alarm-29") {
                out = out.metric_alarms(
                    cw::MetricAlarm::builder()
                        .alarm_name(name)
                        .state_value(cw::StateValue::Ok)
                        .build(),
                );
            }
            out.build()
        })];
    let c = cloud(&[], &[], &refs(&rules));
    let mut reads = tokio::task::JoinSet::new();
    for d in 0..5 {
        let c = c.clone();
        reads.spawn(async move {
            let names: Vec<String> = (0..30).map(|i| format!("d{d}-alarm-{i:02}")).collect();
            let kind = CommandKind::Observe(Observe::Alarms {
                names: names.iter().map(bluegreen_core::Name::from).collect(),
            });
            (d, names, run(&c, kind).await)
        });
    }
    while let Some(done) = reads.join_next().await {
        let (d, names, result) = done.unwrap();
        let Ok(CommandResult::Observed(Observation::Alarms(a))) = result else {
            panic!("deployment {d}: {result:?}");
        };
        let got: Vec<&bluegreen_core::Name> = a.alarms.iter().map(|x| &x.name).collect();
        if d == 4 {
            assert_eq!(a.missing, vec!["d4-alarm-29".to_string()]);
            assert!(got.iter().copied().eq(names[..29].iter()));
        } else {
            assert!(a.missing.is_empty(), "{:?}", a.missing);
            assert!(
                got.iter().copied().eq(names.iter()),
                "only its own alarms, in order"
            );
        }
    }
    // 150 names: two calls at best, five (one per deployment) without batching.
    let calls = c.calls_by_operation()["DescribeAlarms"];
    assert!((2..=3).contains(&calls), "{calls} DescribeAlarms calls");
}
