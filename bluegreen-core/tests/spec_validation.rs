//! A bad spec is a typed error naming the field: one case per rule.

use bluegreen_core::plan::example_draft;
use bluegreen_core::*;

/// A change to the example draft that must be rejected.
type Breakage = Box<dyn FnOnce(&mut SpecDraft)>;

fn field_of(f: impl FnOnce(&mut SpecDraft)) -> String {
    let mut d = example_draft();
    f(&mut d);
    DeploymentSpec::new(d).expect_err("must be rejected").field
}

/// The field the spec is refused for after `f` changes the example draft, if it is.
fn refused(f: impl FnOnce(&mut SpecDraft)) -> Option<String> {
    let mut d = example_draft();
    f(&mut d);
    DeploymentSpec::new(d).err().map(|e| e.field)
}

#[test]
fn the_example_is_valid() {
    assert!(DeploymentSpec::new(example_draft()).is_ok());
}

#[test]
fn each_rule_names_its_field() {
    let hook = |name: &str, stage, url: &str| HookSpec {
        name: name.into(),
        stage,
        url: url.into(),
        timeout_ms: 1_000,
        deadline_ms: 10_000,
        interval_ms: 1_000,
    };
    let cases: Vec<(&str, Breakage)> = vec![
        ("app", Box::new(|d| d.app = "".into())),
        ("app", Box::new(|d| d.app = "web app".into())),
        ("cluster", Box::new(|d| d.cluster = " ".into())),
        (
            "services",
            Box::new(|d| {
                d.environment = EnvironmentModel::ServicePair {
                    services: ["a".into(), "a".into()],
                }
            }),
        ),
        (
            "services[1]",
            Box::new(|d| {
                d.environment = EnvironmentModel::ServicePair {
                    services: ["a".into(), "".into()],
                }
            }),
        ),
        (
            "target_groups[0]",
            Box::new(|d| d.target_groups[0] = "web-a".into()),
        ),
        (
            "target_groups",
            Box::new(|d| d.target_groups[1] = d.target_groups[0].clone()),
        ),
        (
            "listener.listener_arn",
            Box::new(|d| {
                d.listener.listener_arn = "arn:aws:elasticloadbalancing:x:targetgroup/a/b".into()
            }),
        ),
        (
            "listener.rule_arn",
            Box::new(|d| d.listener.rule_arn = Some("rule-1".into())),
        ),
        (
            "test_listener",
            Box::new(|d| d.test_listener = Some(d.listener.clone())),
        ),
        ("test_traffic", Box::new(|d| d.test_traffic_ms = 1_000)),
        (
            "image",
            Box::new(|d| d.artifact = Artifact::Image("web@sha256:abc".into())),
        ),
        (
            "image",
            Box::new(|d| d.artifact = Artifact::Image("".into())),
        ),
        ("desired_count", Box::new(|d| d.desired_count = Some(0))),
        (
            "desired_count",
            Box::new(|d| {
                d.environment = EnvironmentModel::TaskSet {
                    service: "web".into(),
                };
                d.desired_count = Some(2);
            }),
        ),
        (
            "strategy.percent",
            Box::new(|d| {
                d.strategy = Strategy::Canary {
                    percent: 0,
                    wait_ms: 1,
                }
            }),
        ),
        (
            "strategy.step_percent",
            Box::new(|d| {
                d.strategy = Strategy::Linear {
                    step_percent: 100,
                    interval_ms: 1,
                }
            }),
        ),
        (
            "strategy.wait",
            Box::new(|d| {
                d.strategy = Strategy::Canary {
                    percent: 5,
                    wait_ms: 86_400_001,
                }
            }),
        ),
        ("bake", Box::new(|d| d.bake_ms = 86_400_001)),
        ("drain", Box::new(|d| d.drain_ms = 3_600_001)),
        ("approval", Box::new(|d| d.approval_timeout_ms = Some(0))),
        (
            "health.healthy_observations_min",
            Box::new(|d| d.health.healthy_observations_min = 0),
        ),
        (
            "circuit_breaker.failed_tasks_max",
            Box::new(|d| d.circuit_breaker.failed_tasks_max = 0),
        ),
        (
            "alarms[1]",
            Box::new(|d| d.alarms = vec!["a".into(), "a".into()].into()),
        ),
        (
            "alarms",
            Box::new(|d| d.alarms = (0..501).map(|i| format!("a{i}").into()).collect()),
        ),
        (
            "metrics[0].window",
            Box::new(|d| {
                d.metrics = vec![MetricCheck {
                    name: "m".into(),
                    metric: MetricKind::LatencyP99,
                    max: Some(1.0),
                    max_ratio_to_blue: None,
                    floor: 0.0,
                    window_ms: 1_000,
                }]
            }),
        ),
        (
            "hooks[0].url",
            Box::new(move |d| d.hooks = vec![hook("h", HookStage::GreenReady, "localhost:9")]),
        ),
        (
            "hooks[1].name",
            Box::new(move |d| {
                d.hooks = vec![
                    hook("h", HookStage::GreenReady, "http://x"),
                    hook("h", HookStage::BeforeShift, "http://x"),
                ]
            }),
        ),
        (
            "hooks[0].stage",
            Box::new(move |d| d.hooks = vec![hook("h", HookStage::TestTraffic, "http://x")]),
        ),
        ("timeouts.command", Box::new(|d| d.timeouts.command_ms = 0)),
        (
            "pacing.poll_interval",
            Box::new(|d| d.pacing.poll_interval_ms = 10),
        ),
        (
            "pacing.attempts_max",
            Box::new(|d| d.pacing.attempts_max = 0),
        ),
        (
            "pacing.retry_min",
            Box::new(|d| d.pacing.retry_min_ms = 10_000_000),
        ),
    ];
    for (field, f) in cases {
        assert_eq!(field_of(f), field);
    }
}

#[test]
fn a_spec_reads_from_the_config_shaped_json_with_human_durations() {
    let json = serde_json::json!({
        "app": "web", "cluster": "prod",
        "environment": {"mode": "service-pair", "services": ["web-a", "web-b"]},
        "target_groups": [
            "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-a/1",
            "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-b/2"],
        "listener": {"listener_arn": "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/web/1/2"},
        "container": "web",
        "artifact": {"image": "web:v2"},
        "strategy": {"kind": "linear", "step": 20, "interval": "2m"},
        "bake": "10m", "drain": "5m", "approval": "1h",
        "timeouts": {"deploy": "20m"},
        "pacing": {"poll_interval": "5s"}
    });
    let spec: DeploymentSpec = serde_json::from_value(json).unwrap();
    assert_eq!(spec.bake_ms, 600_000);
    assert_eq!(spec.approval_timeout_ms, Some(3_600_000));
    assert_eq!(spec.timeouts.deploy_ms, 1_200_000);
    assert_eq!(spec.timeouts.health_ms, Timeouts::default().health_ms);
    assert_eq!(spec.pacing.poll_interval_ms, 5_000);
    let back = serde_json::to_value(&spec).unwrap();
    assert_eq!(back["bake"], "10m");
}

#[test]
fn unknown_fields_are_rejected_not_ignored() {
    let mut v = serde_json::to_value(plan::example_spec()).unwrap();
    v["bake_time"] = serde_json::json!("5m");
    let err = serde_json::from_value::<DeploymentSpec>(v)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bake_time"), "{err}");
}

#[test]
fn a_mode_prints_as_the_spec_file_names_it() {
    for (mode, name) in [
        (Mode::ServicePair, "service-pair"),
        (Mode::TaskSet, "task-set"),
    ] {
        assert_eq!(mode.as_str(), name);
        assert_eq!(serde_json::to_string(&mode).unwrap(), format!("\"{name}\""));
    }
}

#[test]
fn cloudwatch_dimensions_come_from_the_listener_and_target_group_arns() {
    let listener = ListenerRef {
        listener_arn: "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2".into(),
        rule_arn: None,
    };
    assert_eq!(
        listener.load_balancer_dimension().as_deref(),
        Some("app/web/50dc6c495c0c9188")
    );
    let not_an_arn = ListenerRef {
        listener_arn: "web-listener".into(),
        rule_arn: None,
    };
    assert_eq!(not_an_arn.load_balancer_dimension(), None);
    assert_eq!(
        spec::target_group_dimension(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-a/73e2d6bc24d8a067"
        )
        .as_deref(),
        Some("targetgroup/web-a/73e2d6bc24d8a067")
    );
    assert_eq!(spec::target_group_dimension("web-a"), None);
}

#[test]
fn names_are_one_to_sixty_four_characters() {
    let valid = |name: String| refused(|d| d.app = name.into());
    assert_eq!(valid("a".repeat(64)), None);
    assert_eq!(valid("a".repeat(65)), Some("app".to_string()));
    assert_eq!(valid(String::new()), Some("app".to_string()));
}

#[test]
fn a_listener_must_be_an_elbv2_listener_arn_of_bounded_plain_text() {
    let lb = "arn:aws:elasticloadbalancing:us-east-1:123456789012";
    let good = format!("{lb}:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2");
    let accepted = |arn: &str| refused(|d| d.listener.listener_arn = arn.into());
    assert_eq!(accepted(&good), None);
    let longest = format!("{good}/{}", "x".repeat(2048 - good.len() - 1));
    assert_eq!(longest.len(), 2048);
    assert_eq!(accepted(&longest), None, "2,048 characters is AWS's limit");
    let field = Some("listener.listener_arn".to_string());
    for bad in [
        // Another service's ARN with a listener-shaped resource.
        "arn:aws:ecs:us-east-1:123456789012:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2"
            .to_string(),
        // An ELBv2 ARN of another kind.
        format!("{lb}:targetgroup/web-a/73e2d6bc24d8a067"),
        // A listener ARN with nothing after the type.
        format!("{lb}:listener/"),
        // Whitespace anywhere.
        format!("{good} "),
        // Longer than AWS's 2,048 characters.
        format!("{good}/{}", "x".repeat(2048)),
    ] {
        assert_eq!(accepted(&bad), field, "{bad:?}");
    }
}

/// Sets a limited field: at its edge (`false`) or one past it (`true`).
type Limit = Box<dyn Fn(&mut SpecDraft, bool)>;

/// Every limit holds at its edge and is refused one past it, naming its field.
#[test]
fn each_limit_accepts_its_edge_and_names_its_field_one_past_it() {
    use bluegreen_core::spec::{DESIRED_COUNT_MAX, DRAIN_MS_MAX, WAIT_MS_MAX};
    let with_test_listener = |d: &mut SpecDraft| {
        d.test_listener = Some(ListenerRef {
            listener_arn: "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/50dc6c495c0c9188/bbbbbbbbbbbbbbbb".into(),
            rule_arn: None,
        });
    };
    let cases: Vec<(&str, Limit)> = vec![
        (
            "cluster",
            Box::new(|d, past| d.cluster = "c".repeat(2048 + usize::from(past)).into()),
        ),
        (
            "image",
            Box::new(|d, past| {
                let repo = "registry.example/web:";
                let tag = "v".repeat(1024 - repo.len() + usize::from(past));
                d.artifact = Artifact::Image(format!("{repo}{tag}").into())
            }),
        ),
        (
            "test_traffic",
            Box::new(move |d, past| {
                with_test_listener(d);
                d.test_traffic_ms = WAIT_MS_MAX + u64::from(past);
            }),
        ),
        (
            "desired_count",
            Box::new(|d, past| d.desired_count = Some(DESIRED_COUNT_MAX + u32::from(past))),
        ),
        (
            "bake",
            Box::new(|d, past| d.bake_ms = WAIT_MS_MAX + u64::from(past)),
        ),
        (
            "drain",
            Box::new(|d, past| d.drain_ms = DRAIN_MS_MAX + u64::from(past)),
        ),
        (
            "approval",
            Box::new(|d, past| d.approval_timeout_ms = Some(7 * WAIT_MS_MAX + u64::from(past))),
        ),
        (
            "health.healthy_observations_min",
            Box::new(|d, past| d.health.healthy_observations_min = 100 + u32::from(past)),
        ),
        (
            "health.degraded_observations_max",
            Box::new(|d, past| d.health.degraded_observations_max = 100 + u32::from(past)),
        ),
        (
            "circuit_breaker.failed_tasks_max",
            Box::new(|d, past| d.circuit_breaker.failed_tasks_max = 1000 + u32::from(past)),
        ),
        (
            "alarms[0]",
            Box::new(|d, past| d.alarms = vec!["a".repeat(255 + usize::from(past)).into()].into()),
        ),
        (
            "timeouts.deploy",
            Box::new(|d, past| d.timeouts.deploy_ms = WAIT_MS_MAX + u64::from(past)),
        ),
        (
            "timeouts.command",
            Box::new(|d, past| d.timeouts.command_ms = 600_000 + u64::from(past)),
        ),
        (
            "timeouts.approval",
            Box::new(|d, past| d.timeouts.approval_ms = 7 * WAIT_MS_MAX + u64::from(past)),
        ),
        (
            "pacing.poll_interval",
            Box::new(|d, past| d.pacing.poll_interval_ms = 600_000 + u64::from(past)),
        ),
        (
            "pacing.signal_poll",
            Box::new(|d, past| d.pacing.signal_poll_ms = Some(3_600_000 + u64::from(past))),
        ),
        (
            "pacing.attempts_max",
            Box::new(|d, past| d.pacing.attempts_max = 100 + u32::from(past)),
        ),
        (
            "pacing.retry_min",
            Box::new(|d, past| {
                d.pacing.retry_min_ms = 1_000;
                d.pacing.retry_max_ms = 600_000 + u64::from(past);
            }),
        ),
    ];
    for (field, set) in &cases {
        let mut edge = example_draft();
        set(&mut edge, false);
        if let Err(e) = DeploymentSpec::new(edge) {
            panic!("{field} at its edge was refused: {e:?}");
        }
        let mut past = example_draft();
        set(&mut past, true);
        let err = DeploymentSpec::new(past).expect_err(field);
        assert_eq!(err.field, *field);
    }
}

#[test]
fn an_artifact_is_an_image_reference_or_a_task_definition() {
    let field_for = |artifact: Artifact| refused(|d| d.artifact = artifact);
    let td = |s: &str| Artifact::TaskDefinition(s.into());
    assert_eq!(
        field_for(td(
            "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3"
        )),
        None
    );
    assert_eq!(field_for(td("web:3")), None, "family:revision");
    assert_eq!(field_for(td("task-definition/web")), None);
    assert_eq!(
        field_for(td("web")),
        Some("task_definition".to_string()),
        "neither an ARN nor family:revision"
    );
    assert_eq!(
        field_for(Artifact::Image("registry.example/web:v2 beta".into())),
        Some("image".to_string()),
        "whitespace in an image reference"
    );
}

#[test]
fn lists_hold_up_to_their_limit_of_distinct_well_formed_entries() {
    use bluegreen_core::spec::{ALARMS_MAX, HOOKS_MAX, METRIC_CHECKS_MAX};
    let field = |f: &dyn Fn(&mut SpecDraft)| refused(f);
    let alarms = |n: usize| {
        (0..n)
            .map(|i| format!("alarm-{i}").into())
            .collect::<Vec<Name>>()
    };
    let metrics = |n: usize| {
        (0..n)
            .map(|i| MetricCheck {
                name: format!("m{i}").into(),
                metric: MetricKind::ErrorRate5xx,
                max: Some(5.0),
                max_ratio_to_blue: None,
                floor: 0.0,
                window_ms: 300_000,
            })
            .collect::<Vec<_>>()
    };
    let hooks = |n: usize| {
        (0..n)
            .map(|i| HookSpec {
                name: format!("h{i}").into(),
                stage: HookStage::GreenReady,
                url: format!("http://127.0.0.1:9/{i}").into(),
                timeout_ms: 1_000,
                deadline_ms: 10_000,
                interval_ms: 1_000,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(field(&|d| d.alarms = alarms(ALARMS_MAX).into()), None);
    assert_eq!(
        field(&|d| d.alarms = alarms(ALARMS_MAX + 1).into()),
        Some("alarms".into())
    );
    assert_eq!(
        field(&|d| d.alarms = vec!["".into()].into()),
        Some("alarms[0]".into())
    );
    assert_eq!(
        field(&|d| d.alarms = vec!["a".into(), "a".into()].into()),
        Some("alarms[1]".into())
    );
    assert_eq!(field(&|d| d.metrics = metrics(METRIC_CHECKS_MAX)), None);
    assert_eq!(
        field(&|d| d.metrics = metrics(METRIC_CHECKS_MAX + 1)),
        Some("metrics".into())
    );
    assert_eq!(field(&|d| d.hooks = hooks(HOOKS_MAX)), None);
    assert_eq!(
        field(&|d| d.hooks = hooks(HOOKS_MAX + 1)),
        Some("hooks".into())
    );
    // Metric checks read the load balancer from the listener ARN; without checks a
    // listener ARN that does not name one is fine.
    let bare = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/web";
    assert_eq!(field(&|d| d.listener.listener_arn = bare.into()), None);
    assert_eq!(
        field(&|d| {
            d.listener.listener_arn = bare.into();
            d.metrics = metrics(1);
        }),
        Some("listener.listener_arn".into())
    );
}

#[test]
fn retries_may_wait_one_fixed_time() {
    let mut d = example_draft();
    d.pacing.retry_min_ms = 5_000;
    d.pacing.retry_max_ms = 5_000;
    assert!(DeploymentSpec::new(d).is_ok(), "retry_min = retry_max");
    let mut d = example_draft();
    d.pacing.retry_min_ms = 5_001;
    d.pacing.retry_max_ms = 5_000;
    assert_eq!(
        DeploymentSpec::new(d).unwrap_err().field,
        "pacing.retry_min"
    );
}

/// The example draft with one metric check, changed by `f`.
fn with_metric(f: impl FnOnce(&mut MetricCheck)) -> impl FnOnce(&mut SpecDraft) {
    move |d| {
        let mut m = MetricCheck {
            name: "latency".into(),
            metric: MetricKind::Custom {
                namespace: "App".into(),
                metric_name: "Latency".into(),
                stat: "p99".into(),
                dimensions: vec![],
            },
            max: Some(5.0),
            max_ratio_to_blue: None,
            floor: 0.0,
            window_ms: 300_000,
        };
        f(&mut m);
        d.metrics = vec![m];
    }
}

fn custom(m: &mut MetricCheck) -> (&mut Name, &mut Name, &mut Name, &mut Vec<(Name, Name)>) {
    match &mut m.metric {
        MetricKind::Custom {
            namespace,
            metric_name,
            stat,
            dimensions,
        } => (namespace, metric_name, stat, dimensions),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_metric_checks_limits_and_statistic_are_refused_past_their_edges() {
    let ok = |f: fn(&mut MetricCheck)| assert_eq!(refused(with_metric(f)), None);
    let no = |f: fn(&mut MetricCheck), field: &str| {
        assert_eq!(refused(with_metric(f)).as_deref(), Some(field));
    };
    ok(|_| {});
    // Limits and the floor are finite and not negative; zero is a limit.
    ok(|m| m.max = Some(0.0));
    no(|m| m.max = Some(-0.001), "metrics[0].max");
    no(|m| m.max = Some(f64::INFINITY), "metrics[0].max");
    ok(|m| m.max_ratio_to_blue = Some(0.0));
    no(
        |m| m.max_ratio_to_blue = Some(f64::NAN),
        "metrics[0].max_ratio_to_blue",
    );
    no(|m| m.floor = -1.0, "metrics[0].floor");
    no(|m| m.floor = f64::NAN, "metrics[0].floor");
    no(|m| m.floor = f64::INFINITY, "metrics[0].floor");
    // A custom metric needs both its namespace and its name.
    no(|m| *custom(m).0 = "".into(), "metrics[0].metric");
    no(|m| *custom(m).1 = "".into(), "metrics[0].metric");
    // Percentiles strictly between 0 and 100.
    for stat in [
        "Sum",
        "Average",
        "Maximum",
        "Minimum",
        "SampleCount",
        "p50",
        "p0.1",
        "p99.9",
    ] {
        let mut d = example_draft();
        with_metric(|m| *custom(m).2 = stat.into())(&mut d);
        assert!(DeploymentSpec::new(d).is_ok(), "{stat}");
    }
    for stat in ["p0", "p100", "p", "pxx", "avg"] {
        let mut d = example_draft();
        with_metric(|m| *custom(m).2 = stat.into())(&mut d);
        let e = DeploymentSpec::new(d).expect_err(stat);
        assert_eq!(e.field, "metrics[0].metric.stat", "{stat}");
    }
    // At most 30 dimensions, as CloudWatch allows.
    let dims = |n: usize| -> Vec<(Name, Name)> {
        (0..n)
            .map(|i| (format!("D{i}").into(), "v".into()))
            .collect()
    };
    for (n, refusal) in [(30, None), (31, Some("metrics[0].metric.dimensions"))] {
        let mut d = example_draft();
        with_metric(|m| *custom(m).3 = dims(n))(&mut d);
        assert_eq!(
            DeploymentSpec::new(d).err().map(|e| e.field).as_deref(),
            refusal,
            "{n}"
        );
    }
}

#[test]
fn a_hooks_url_and_deadline_are_refused_past_their_edges() {
    use bluegreen_core::spec::WAIT_MS_MAX;
    let hook = |url: &str, timeout_ms: u64, deadline_ms: u64| {
        let url = Name::from(url);
        move |d: &mut SpecDraft| {
            d.hooks = vec![HookSpec {
                name: "smoke".into(),
                stage: HookStage::GreenReady,
                url,
                timeout_ms,
                deadline_ms,
                interval_ms: 10_000,
            }]
        }
    };
    let ok = "https://hooks.example/smoke";
    assert_eq!(refused(hook(ok, 10_000, 300_000)), None);
    assert_eq!(refused(hook("http://h", 10_000, 300_000)), None);
    for bad in [
        "https://",
        "http://",
        "ftp://h/x",
        "https://h/a b",
        "https://h/\tx",
        "h",
    ] {
        assert_eq!(
            refused(hook(bad, 10_000, 300_000)).as_deref(),
            Some("hooks[0].url"),
            "{bad:?}"
        );
    }
    // The deadline: at least one call's timeout, at most a day.
    assert_eq!(refused(hook(ok, 10_000, 10_000)), None);
    assert_eq!(
        refused(hook(ok, 10_000, 9_999)).as_deref(),
        Some("hooks[0].deadline")
    );
    assert_eq!(refused(hook(ok, 10_000, WAIT_MS_MAX)), None);
    assert_eq!(
        refused(hook(ok, 10_000, WAIT_MS_MAX + 1)).as_deref(),
        Some("hooks[0].deadline")
    );
}

#[test]
fn a_hook_left_at_its_defaults_waits_10s_a_call_5m_in_all_and_10s_between_calls() {
    let h: HookSpec = serde_json::from_value(serde_json::json!({
        "name": "smoke",
        "stage": "green-ready",
        "url": "https://hooks.example/smoke",
    }))
    .expect("a hook with only a name, a stage and a URL");
    assert_eq!(
        (h.timeout_ms, h.deadline_ms, h.interval_ms),
        (10_000, 300_000, 10_000)
    );
}

#[test]
fn each_hook_stage_names_itself_as_the_spec_file_does() {
    for (stage, text) in [
        (HookStage::GreenReady, "green-ready"),
        (HookStage::TestTraffic, "test-traffic"),
        (HookStage::BeforeShift, "before-shift"),
        (HookStage::AfterShift, "after-shift"),
        (HookStage::Rollback, "rollback"),
    ] {
        assert_eq!(stage.as_str(), text);
        assert_eq!(
            serde_json::to_value(stage).unwrap(),
            serde_json::json!(text)
        );
    }
}

#[test]
fn a_strategys_hold_may_last_a_day_and_no_longer() {
    use bluegreen_core::spec::WAIT_MS_MAX;
    for (strategy, field) in [
        (
            (|w| Strategy::Canary {
                percent: 10,
                wait_ms: w,
            }) as fn(u64) -> Strategy,
            "strategy.wait",
        ),
        (
            |w| Strategy::Linear {
                step_percent: 10,
                interval_ms: w,
            },
            "strategy.wait",
        ),
    ] {
        assert_eq!(refused(|d| d.strategy = strategy(WAIT_MS_MAX)), None);
        assert_eq!(
            refused(|d| d.strategy = strategy(WAIT_MS_MAX + 1)).as_deref(),
            Some(field)
        );
    }
}
