//! Error classification: every failure an AWS call can meet becomes the right
//! `ErrorClass` (Retryable, Throttled, Ambiguous, Fatal), keeping AWS's code and message; and every
//! call is counted in `bluegreen_aws_calls_total`.

mod support;

use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
use aws_smithy_mocks::{Rule, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use bluegreen_core::{CommandKind, ErrorClass, Observe};
use bluegreen_svc::cloud::aws::AwsCloud;

use support::mock::*;

#[tokio::test]
async fn throttling_is_classed_throttled_whatever_the_call() {
    let ecs_rule = mock!(aws_sdk_ecs::Client::update_service).then_http_response(|| {
        http(
            400,
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        )
    });
    let elb_rule = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health).then_http_response(|| {
        http(
            400,
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>",
        )
    });
    let cw_rule = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_error(|| {
        aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsError::generic(
            ErrorMetadata::builder()
                .code("Throttling")
                .message("Rate exceeded")
                .build(),
        )
    });
    let c = cloud(&[&ecs_rule], &[&elb_rule], &[&cw_rule]);
    for kind in [
        scale_kind(),
        CommandKind::Observe(Observe::TargetHealth {
            target_group: tg("web-b").into(),
        }),
        CommandKind::Observe(Observe::Alarms {
            names: vec!["a".into()].into(),
        }),
    ] {
        let err = run(&c, kind).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Throttled, "{err}");
        assert!(err.code.starts_with("Throttling"), "{err}");
        assert!(err.message.contains("Rate exceeded"), "{err}");
    }
    assert_eq!(c.calls_total(), 3, "the SDK does not retry on its own");
}

#[tokio::test]
async fn server_errors_are_retryable_except_on_the_write_without_a_token() {
    let body = r#"{"__type":"ServerException","message":"internal"}"#;
    let rules = [
        mock!(aws_sdk_ecs::Client::update_service).then_http_response(move || http(500, body)),
        mock!(aws_sdk_ecs::Client::describe_services).then_http_response(move || http(503, body)),
        mock!(aws_sdk_ecs::Client::describe_task_definition)
            .then_output(|| task_definition_output("web:v1", vec![])),
        mock!(aws_sdk_ecs::Client::register_task_definition)
            .then_http_response(move || http(500, body)),
    ];
    let c = cloud(&refs(&rules), &[], &[]);
    let err = run(&c, scale_kind()).await.unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Retryable, "ServerException")
    );
    let observe = CommandKind::Observe(Observe::Service {
        cluster: "prod".into(),
        service: "web-a".into(),
        failures: None,
        also: None,
    });
    assert_eq!(
        run(&c, observe).await.unwrap_err().class,
        ErrorClass::Retryable
    );
    // RegisterTaskDefinition has no idempotency token: a 5xx may have registered it.
    let err = run(&c, register_kind()).await.unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Ambiguous, "ServerException"),
        "{err}"
    );
    assert_eq!(
        c.calls_by_operation().get("RegisterTaskDefinition"),
        Some(&1),
        "sent once"
    );
}

#[tokio::test]
async fn client_errors_are_fatal_and_keep_the_aws_code_and_message() {
    let rules = [
        mock!(aws_sdk_ecs::Client::update_service).then_http_response(|| {
            http(400, r#"{"__type":"ServiceNotFoundException","message":"Service not found."}"#)
        }),
        mock!(aws_sdk_ecs::Client::describe_services).then_http_response(|| {
            http(
                400,
                r#"{"__type":"AccessDeniedException","message":"User is not authorized to perform: ecs:DescribeServices"}"#,
            )
        }),
    ];
    let c = cloud(&refs(&rules), &[], &[]);
    let err = run(&c, scale_kind()).await.unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Fatal, "ServiceNotFoundException")
    );
    assert!(err.message.contains("Service not found."), "{err}");
    let observe = CommandKind::Observe(Observe::Service {
        cluster: "prod".into(),
        service: "web-a".into(),
        failures: None,
        also: None,
    });
    let err = run(&c, observe).await.unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Fatal, "AccessDeniedException")
    );
    assert!(
        err.message
            .contains("not authorized to perform: ecs:DescribeServices"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreadable_answer_to_a_write_is_ambiguous_and_to_a_read_retryable() {
    let rules = [
        mock!(aws_sdk_ecs::Client::update_service).then_http_response(|| http(200, "{not json")),
        mock!(aws_sdk_ecs::Client::describe_services).then_http_response(|| http(200, "{not json")),
    ];
    let c = cloud(&refs(&rules), &[], &[]);
    assert_eq!(
        run(&c, scale_kind()).await.unwrap_err().class,
        ErrorClass::Ambiguous
    );
    let observe = CommandKind::Observe(Observe::Service {
        cluster: "prod".into(),
        service: "web-a".into(),
        failures: None,
        also: None,
    });
    assert_eq!(
        run(&c, observe).await.unwrap_err().class,
        ErrorClass::Retryable
    );
}

#[tokio::test]
async fn lost_answers_make_writes_ambiguous_and_reads_retryable_while_refused_connections_are_retryable()
 {
    use transport::{Failing, Failure};
    for (failure, write_class, code) in [
        (Failure::ReadTimeout, ErrorClass::Ambiguous, "Timeout"),
        (Failure::Reset, ErrorClass::Ambiguous, "ConnectionLost"),
        (Failure::Refused, ErrorClass::Retryable, "ConnectionFailed"),
    ] {
        let ecs = aws_sdk_ecs::Client::from_conf(
            aws_sdk_ecs::Config::builder()
                .with_test_defaults_v2()
                .http_client(Failing(failure))
                .build(),
        );
        let c = AwsCloud::from_clients(
            ecs,
            mock_client!(aws_sdk_elasticloadbalancingv2, &[] as &[&Rule]),
            mock_client!(aws_sdk_cloudwatch, &[] as &[&Rule]),
        );
        let err = run(&c, scale_kind()).await.unwrap_err();
        assert_eq!(
            (err.class, err.code.as_str()),
            (write_class, code),
            "{failure:?} write: {err}"
        );
        let observe = CommandKind::Observe(Observe::Service {
            cluster: "prod".into(),
            service: "web-a".into(),
            failures: None,
            also: None,
        });
        let err = run(&c, observe).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Retryable, "{failure:?} read: {err}");
        assert_eq!(c.calls_total(), 2, "sent once each: SDK retries are off");
    }
}

#[test]
fn every_call_is_counted_in_the_metrics_by_operation_and_result() {
    let recorder = support::recorder::CountingRecorder::default();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let rules = [
                mock!(aws_sdk_ecs::Client::update_service).then_output(|| UpdateServiceOutput::builder().build()),
                mock!(aws_sdk_ecs::Client::describe_services).then_http_response(|| {
                    http(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#)
                }),
            ];
            let c = cloud(&refs(&rules), &[], &[]);
            run(&c, scale_kind()).await.unwrap();
            let observe = CommandKind::Observe(Observe::Service {
                cluster: "prod".into(),
                service: "web-a".into(),
                failures: None,
                also: None,
            });
            run(&c, observe).await.unwrap_err();
            let denied = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_listeners).then_http_response(|| {
                http(
                    403,
                    "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no</Message></Error><RequestId>1</RequestId></ErrorResponse>",
                )
            });
            let c2 = cloud(&[], &[&denied], &[]);
            let err = run(&c2, CommandKind::Observe(Observe::Listener(listener_ref(false)))).await.unwrap_err();
            assert_eq!((err.class, err.code.as_str()), (ErrorClass::Fatal, "AccessDenied"));
        });
    });
    let counts = recorder.counts();
    assert_eq!(
        counts.get("bluegreen_aws_calls_total{operation=UpdateService,result=ok}"),
        Some(&1),
        "{counts:?}"
    );
    assert_eq!(
        counts.get("bluegreen_aws_calls_total{operation=DescribeServices,result=throttled}"),
        Some(&1),
        "{counts:?}"
    );
    assert_eq!(
        counts.get("bluegreen_aws_calls_total{operation=DescribeListeners,result=error}"),
        Some(&1),
        "{counts:?}"
    );
}
