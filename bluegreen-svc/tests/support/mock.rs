//! Mapping-test support: aws-smithy-mocks clients behind an [`AwsCloud`], AWS answers
//! as the SDK models them, and an HTTP client that fails the way networks do.

use aws_sdk_ecs::operation::describe_clusters::DescribeClustersOutput;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::types as ecs;
use aws_sdk_elasticloadbalancingv2::operation::describe_listeners::DescribeListenersOutput;
use aws_sdk_elasticloadbalancingv2::operation::describe_rules::DescribeRulesOutput;
use aws_sdk_elasticloadbalancingv2::operation::describe_target_groups::DescribeTargetGroupsOutput;
use aws_sdk_elasticloadbalancingv2::types as elb;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use bluegreen_core::{
    Cloud, Command, CommandError, CommandId, CommandKind, CommandResult, DeploymentId, ListenerRef,
    Mode, Preflight,
};
use bluegreen_svc::cloud::aws::AwsCloud;

pub const ACCOUNT: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012";
pub const LISTENER: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2";
pub const RULE: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";
pub const LB: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";
pub const TD1: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1";
pub const TD2: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2";
pub const BLUE_TS: &str = "arn:aws:ecs:us-east-1:123456789012:task-set/prod/api/ecs-svc/111";
pub const GREEN_TS: &str = "arn:aws:ecs:us-east-1:123456789012:task-set/prod/api/ecs-svc/222";
pub const IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v2";

pub fn tg(name: &str) -> String {
    format!("{ACCOUNT}:targetgroup/{name}/0123456789abcdef")
}

pub fn listener_ref(rule: bool) -> ListenerRef {
    ListenerRef {
        listener_arn: LISTENER.into(),
        rule_arn: rule.then(|| RULE.into()),
    }
}

pub fn cloud(ecs_rules: &[&Rule], elb_rules: &[&Rule], cw_rules: &[&Rule]) -> AwsCloud {
    AwsCloud::from_clients(
        mock_client!(aws_sdk_ecs, RuleMode::MatchAny, ecs_rules),
        mock_client!(
            aws_sdk_elasticloadbalancingv2,
            RuleMode::MatchAny,
            elb_rules
        ),
        mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, cw_rules),
    )
}

pub fn command(step: &str, kind: CommandKind) -> Command {
    Command {
        id: CommandId::new(&DeploymentId::new("web-1").unwrap(), step),
        attempt: 1,
        kind,
    }
}

pub async fn run(cloud: &AwsCloud, kind: CommandKind) -> Result<CommandResult, CommandError> {
    cloud.execute(&command("step", kind)).await
}

// ----- ELBv2 fixtures -----

pub fn forward(weights: &[(&str, i32)]) -> elb::Action {
    elb::Action::builder()
        .r#type(elb::ActionTypeEnum::Forward)
        .order(2)
        .forward_config(
            elb::ForwardActionConfig::builder()
                .set_target_groups(Some(
                    weights
                        .iter()
                        .map(|(t, w)| {
                            elb::TargetGroupTuple::builder()
                                .target_group_arn(tg(t))
                                .weight(*w)
                                .build()
                        })
                        .collect(),
                ))
                .target_group_stickiness_config(
                    elb::TargetGroupStickinessConfig::builder()
                        .enabled(true)
                        .duration_seconds(300)
                        .build(),
                )
                .build(),
        )
        .build()
}

pub fn oidc() -> elb::Action {
    elb::Action::builder()
        .r#type(elb::ActionTypeEnum::AuthenticateOidc)
        .order(1)
        .authenticate_oidc_config(
            elb::AuthenticateOidcActionConfig::builder()
                .issuer("https://idp.example")
                .authorization_endpoint("https://idp.example/auth")
                .token_endpoint("https://idp.example/token")
                .user_info_endpoint("https://idp.example/user")
                .client_id("web")
                .build(),
        )
        .build()
}

pub fn listener(actions: Vec<elb::Action>) -> DescribeListenersOutput {
    DescribeListenersOutput::builder()
        .listeners(
            elb::Listener::builder()
                .listener_arn(LISTENER)
                .load_balancer_arn(LB)
                .protocol(elb::ProtocolEnum::Https)
                .port(443)
                .set_default_actions(Some(actions))
                .build(),
        )
        .build()
}

pub fn describe_listener(actions: Vec<elb::Action>) -> Rule {
    mock!(aws_sdk_elasticloadbalancingv2::Client::describe_listeners)
        .match_requests(|r| r.listener_arns() == [LISTENER.to_string()])
        .then_output(move || listener(actions.clone()))
}

pub fn rule_output(actions: Vec<elb::Action>) -> DescribeRulesOutput {
    DescribeRulesOutput::builder()
        .rules(
            elb::Rule::builder()
                .rule_arn(RULE)
                .priority("10")
                .is_default(false)
                .set_actions(Some(actions))
                .build(),
        )
        .build()
}

pub fn target_group(name: &str) -> elb::TargetGroup {
    elb::TargetGroup::builder()
        .target_group_arn(tg(name))
        .target_group_name(name)
        .load_balancer_arns(LB)
        .build()
}

// ----- ECS fixtures -----

pub fn lb(name: &str) -> ecs::LoadBalancer {
    ecs::LoadBalancer::builder()
        .target_group_arn(tg(name))
        .container_name("web")
        .container_port(8080)
        .build()
}

pub fn network() -> ecs::NetworkConfiguration {
    ecs::NetworkConfiguration::builder()
        .awsvpc_configuration(
            ecs::AwsVpcConfiguration::builder()
                .subnets("subnet-1")
                .subnets("subnet-2")
                .security_groups("sg-1")
                .build()
                .unwrap(),
        )
        .build()
}

pub fn task_set(arn: &str, external_id: &str, status: &str, target_group: &str) -> ecs::TaskSet {
    ecs::TaskSet::builder()
        .id(arn.rsplit("/api/").next().unwrap())
        .task_set_arn(arn)
        .external_id(external_id)
        .status(status)
        .task_definition(TD1)
        .computed_desired_count(3)
        .running_count(3)
        .pending_count(0)
        .stability_status(ecs::StabilityStatus::SteadyState)
        .launch_type(ecs::LaunchType::Fargate)
        .platform_version("1.4.0")
        .network_configuration(network())
        .load_balancers(lb(target_group))
        .build()
}

pub fn service(
    name: &str,
    target_group: Option<&str>,
    controller: ecs::DeploymentControllerType,
) -> ecs::Service {
    ecs::Service::builder()
        .service_name(name)
        .service_arn(format!(
            "arn:aws:ecs:us-east-1:123456789012:service/prod/{name}"
        ))
        .status("ACTIVE")
        .desired_count(3)
        .running_count(3)
        .pending_count(0)
        .set_task_definition(target_group.map(|_| TD1.to_string()))
        .set_load_balancers(target_group.map(|t| vec![lb(t)]))
        .deployment_controller(
            ecs::DeploymentController::builder()
                .r#type(controller)
                .build()
                .unwrap(),
        )
        .build()
}

pub fn services(list: Vec<ecs::Service>) -> DescribeServicesOutput {
    DescribeServicesOutput::builder()
        .set_services(Some(list))
        .build()
}

pub fn task_definition_output(image: &str, tags: Vec<ecs::Tag>) -> DescribeTaskDefinitionOutput {
    DescribeTaskDefinitionOutput::builder()
        .task_definition(
            ecs::TaskDefinition::builder()
                .task_definition_arn(TD1)
                .family("web")
                .revision(1)
                .task_role_arn("arn:aws:iam::123456789012:role/web")
                .execution_role_arn("arn:aws:iam::123456789012:role/exec")
                .network_mode(ecs::NetworkMode::Awsvpc)
                .requires_compatibilities(ecs::Compatibility::Fargate)
                .cpu("512")
                .memory("1024")
                .container_definitions(
                    ecs::ContainerDefinition::builder()
                        .name("web")
                        .image(image)
                        .memory(512)
                        .environment(ecs::KeyValuePair::builder().name("A").value("1").build())
                        .build(),
                )
                .container_definitions(
                    ecs::ContainerDefinition::builder()
                        .name("envoy")
                        .image("envoy:1.30")
                        .build(),
                )
                .volumes(ecs::Volume::builder().name("data").build())
                .ephemeral_storage(ecs::EphemeralStorage::builder().size_in_gib(40).build())
                .runtime_platform(
                    ecs::RuntimePlatform::builder()
                        .cpu_architecture(ecs::CpuArchitecture::Arm64)
                        .build(),
                )
                .proxy_configuration(
                    ecs::ProxyConfiguration::builder()
                        .container_name("envoy")
                        .build()
                        .unwrap(),
                )
                .pid_mode(ecs::PidMode::Task)
                .build(),
        )
        .set_tags(Some(tags))
        .build()
}

pub fn tag(k: &str, v: &str) -> ecs::Tag {
    ecs::Tag::builder().key(k).value(v).build()
}

pub fn preflight(mode: Mode, rule: bool) -> Preflight {
    Preflight {
        cluster: "prod".into(),
        mode,
        services: match mode {
            Mode::ServicePair => vec!["web-a".into(), "web-b".into()],
            Mode::TaskSet => vec!["api".into()],
        },
        target_groups: [tg("web-a").into(), tg("web-b").into()],
        listener: listener_ref(rule),
        test_listener: None,
        container: "web".into(),
    }
}

pub fn preflight_rules(services_out: DescribeServicesOutput) -> (Vec<Rule>, Vec<Rule>) {
    let elb_rules = vec![
        describe_listener(vec![forward(&[("web-a", 1)])]),
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_rules)
            .match_requests(|r| r.rule_arns() == [RULE.to_string()])
            .then_output(|| rule_output(vec![forward(&[("web-a", 1)])])),
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_groups)
            .match_requests(|r| r.target_group_arns() == [tg("web-a"), tg("web-b")])
            .then_output(|| {
                DescribeTargetGroupsOutput::builder()
                    .target_groups(target_group("web-a"))
                    .target_groups(target_group("web-b"))
                    .build()
            }),
    ];
    let ecs_rules = vec![
        mock!(aws_sdk_ecs::Client::describe_clusters)
            .match_requests(|r| r.clusters() == ["prod".to_string()])
            .then_output(|| {
                DescribeClustersOutput::builder()
                    .clusters(
                        ecs::Cluster::builder()
                            .cluster_name("prod")
                            .status("ACTIVE")
                            .build(),
                    )
                    .build()
            }),
        mock!(aws_sdk_ecs::Client::describe_services).then_output(move || services_out.clone()),
        mock!(aws_sdk_ecs::Client::describe_task_definition)
            .match_requests(|r| r.task_definition() == Some(TD1))
            .then_output(|| task_definition_output("web:v1", vec![])),
    ];
    (ecs_rules, elb_rules)
}

pub fn refs(rules: &[Rule]) -> Vec<&Rule> {
    rules.iter().collect()
}

pub fn http(
    status: u16,
    body: &'static str,
) -> aws_smithy_runtime_api::client::orchestrator::HttpResponse {
    aws_smithy_runtime_api::client::orchestrator::HttpResponse::new(
        aws_smithy_runtime_api::http::StatusCode::try_from(status).unwrap(),
        aws_smithy_types::body::SdkBody::from(body),
    )
}

pub fn scale_kind() -> CommandKind {
    CommandKind::ScaleEnvironment {
        cluster: "prod".into(),
        service: "web-a".into(),
        desired_count: 0,
    }
}

pub fn register_kind() -> CommandKind {
    CommandKind::RegisterTaskDefinition {
        base: TD1.into(),
        container: "web".into(),
        image: IMAGE.into(),
    }
}

pub mod transport {
    //! Failures below HTTP: an HTTP client that fails the way a network does.

    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

    #[derive(Clone, Copy, Debug)]
    pub enum Failure {
        /// Sent, then the answer did not come in time.
        ReadTimeout,
        /// Sent, then the connection broke.
        Reset,
        /// Never connected.
        Refused,
    }

    #[derive(Clone, Debug)]
    pub struct Failing(pub Failure);

    impl HttpConnector for Failing {
        fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
            let err = match self.0 {
                Failure::ReadTimeout => {
                    ConnectorError::timeout("HTTP read timeout occurred after 20s".into())
                }
                Failure::Reset => ConnectorError::io(
                    std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "connection reset by peer",
                    )
                    .into(),
                ),
                Failure::Refused => ConnectorError::io(
                    std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "connection refused",
                    )
                    .into(),
                ),
            };
            HttpConnectorFuture::ready(Err(err))
        }
    }

    impl HttpClient for Failing {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            SharedHttpConnector::new(self.clone())
        }
    }
}
