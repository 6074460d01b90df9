//! A realistic AWS fixture in the emulator, and the part of ECS the emulator does not play.
//!
//! [`Fixture::build`] creates, in moto's default VPC (looked up with EC2
//! `DescribeVpcs`/`DescribeSubnets`/`DescribeSecurityGroups`):
//! - one Application Load Balancer `web` with
//!   - listener :80 (production of app `web`) forwarding to target group `web-a`, with a
//!     rule (path `/canary/*`) also forwarding to `web-a`;
//!   - listener :9000 (test traffic of app `web`) forwarding to `web-a`;
//!   - listener :8080 (production of app `api`) forwarding to `api-a`;
//! - four IP target groups: `web-a`, `web-b`, `api-a`, `api-b`;
//! - cluster `prod` with
//!   - service pair `web-a` (2 tasks, on `web-a`) and `web-b` (0 tasks, on `web-b`), both
//!     running task definition `web:1` (containers `web` and `log-router`, awsvpc/Fargate,
//!     volumes, ephemeral storage, runtime platform, roles, tags);
//!   - service `api` with the EXTERNAL deployment controller, desired 2, and one PRIMARY
//!     task set (external id `initial`) of `api:1` on `api-a`;
//! - CloudWatch alarm `web-5xx` (state INSUFFICIENT_DATA until set).
//!
//! **Playing ECS.** moto never starts tasks or registers them in target groups, so
//! [`Fixture::reconcile_targets`] does it: every target group gets as many healthy IP
//! targets as the ECS side behind it should run (a service's desired count; for the
//! EXTERNAL service, its desired count for every non-draining task set), and loses the
//! rest. Call it after each write ([`super::ecs_player::PlaysEcs`] does, for in-process tests), or run it in
//! the background with `Fixture::spawn_ecs_player` (both in `ecs_player.rs`) when the controller runs in another
//! process — e.g. a SIGKILL crash-resume test of the service binary:
//!
//! ```ignore
//! let moto = Moto::start_or_skip("crash_resume").await?;       // AWS_ENDPOINT_URL = moto.endpoint
//! let fx = Fixture::build(&moto).await;
//! let _player = fx.spawn_ecs_player(Duration::from_millis(100));
//! let draft = fx.web_draft(Strategy::AllAtOnce);                 // or write a config from fx's ARNs
//! // … start `bluegreen serve` with AWS_ENDPOINT_URL, kill -9 it mid-way, restart, wait …
//! assert_eq!(fx.production_weights().await, (0, 100));
//! ```
//!
//! The fixture talks to moto with its own SDK clients, so its calls never count against
//! an adapter's call counters.

use aws_sdk_ecs::types as ecs;
use aws_sdk_elasticloadbalancingv2::types as elb;
use bluegreen_core::{
    Artifact, EnvironmentModel, HealthSpec, ListenerRef, Pacing, SpecDraft, Strategy, Timeouts,
};
use bluegreen_svc::cloud::aws::AwsCloud;

use super::cbor_bridge::CborBridge;
use super::moto::Moto;
use super::query::{Query, xml_values};

pub const CLUSTER: &str = "prod";
pub const WEB_SERVICES: [&str; 2] = ["web-a", "web-b"];
pub const API_SERVICE: &str = "api";
pub const CONTAINER: &str = "web";
pub const SIDECAR: &str = "log-router";
pub const ALARM: &str = "web-5xx";
/// Tasks the live side runs.
pub const BLUE_TASKS: u32 = 2;
/// The fixture's task-definition tags, kept on every copy.
pub const TEAM_TAG: (&str, &str) = ("team", "payments");

pub struct Fixture {
    pub endpoint: String,
    pub ecs: aws_sdk_ecs::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub query: Query,
    pub vpc: String,
    pub subnets: Vec<String>,
    pub security_group: String,
    pub load_balancer: String,
    /// `web-a`, `web-b`.
    pub web_target_groups: [String; 2],
    /// `api-a`, `api-b`.
    pub api_target_groups: [String; 2],
    pub web_listener: String,
    pub web_rule: String,
    pub web_test_listener: String,
    pub api_listener: String,
    pub web_task_definition: String,
    pub api_task_definition: String,
    pub api_task_set: String,
}

fn network(subnets: &[String], sg: &str) -> ecs::NetworkConfiguration {
    ecs::NetworkConfiguration::builder()
        .awsvpc_configuration(
            ecs::AwsVpcConfiguration::builder()
                .set_subnets(Some(subnets.iter().take(2).cloned().collect()))
                .security_groups(sg)
                .assign_public_ip(ecs::AssignPublicIp::Disabled)
                .build()
                .expect("awsvpc configuration"),
        )
        .build()
}

fn forward_to(tg: &str) -> elb::Action {
    elb::Action::builder()
        .r#type(elb::ActionTypeEnum::Forward)
        .forward_config(
            elb::ForwardActionConfig::builder()
                .target_groups(
                    elb::TargetGroupTuple::builder()
                        .target_group_arn(tg)
                        .weight(1)
                        .build(),
                )
                .build(),
        )
        .build()
}

impl Fixture {
    pub async fn build(moto: &Moto) -> Fixture {
        let config = moto.sdk_config().await;
        let ecs_client = aws_sdk_ecs::Client::new(&config);
        let elb_client = aws_sdk_elasticloadbalancingv2::Client::new(&config);
        let query = Query::new(&moto.endpoint);

        // The default VPC, its default-for-AZ subnets and default security group.
        let vpc = xml_values(
            &query
                .ec2(
                    "DescribeVpcs",
                    &[
                        ("Filter.1.Name", "is-default"),
                        ("Filter.1.Value.1", "true"),
                    ],
                )
                .await,
            "vpcId",
        )
        .into_iter()
        .next()
        .expect("the emulator has a default VPC");
        let subnets = xml_values(
            &query
                .ec2(
                    "DescribeSubnets",
                    &[("Filter.1.Name", "vpc-id"), ("Filter.1.Value.1", &vpc)],
                )
                .await,
            "subnetId",
        );
        assert!(
            subnets.len() >= 2,
            "the default VPC has subnets in two AZs: {subnets:?}"
        );
        let security_group = xml_values(
            &query
                .ec2(
                    "DescribeSecurityGroups",
                    &[
                        ("Filter.1.Name", "group-name"),
                        ("Filter.1.Value.1", "default"),
                        ("Filter.2.Name", "vpc-id"),
                        ("Filter.2.Value.1", &vpc),
                    ],
                )
                .await,
            "groupId",
        )
        .into_iter()
        .next()
        .expect("the default VPC has a default security group");

        let lb = elb_client
            .create_load_balancer()
            .name("web")
            .set_subnets(Some(subnets[..2].to_vec()))
            .security_groups(&security_group)
            .r#type(elb::LoadBalancerTypeEnum::Application)
            .send()
            .await
            .expect("create the load balancer");
        let load_balancer = lb.load_balancers()[0]
            .load_balancer_arn()
            .unwrap()
            .to_string();
        let mut tgs = Vec::new();
        for name in ["web-a", "web-b", "api-a", "api-b"] {
            let out = elb_client
                .create_target_group()
                .name(name)
                .protocol(elb::ProtocolEnum::Http)
                .port(80)
                .vpc_id(&vpc)
                .target_type(elb::TargetTypeEnum::Ip)
                .send()
                .await
                .expect("create a target group");
            tgs.push(
                out.target_groups()[0]
                    .target_group_arn()
                    .unwrap()
                    .to_string(),
            );
        }
        let listener = |port: i32, tg: String| {
            let elb_client = elb_client.clone();
            let load_balancer = load_balancer.clone();
            async move {
                let out = elb_client
                    .create_listener()
                    .load_balancer_arn(load_balancer)
                    .protocol(elb::ProtocolEnum::Http)
                    .port(port)
                    .default_actions(forward_to(&tg))
                    .send()
                    .await
                    .expect("create a listener");
                out.listeners()[0].listener_arn().unwrap().to_string()
            }
        };
        let web_listener = listener(80, tgs[0].clone()).await;
        let web_test_listener = listener(9000, tgs[0].clone()).await;
        let api_listener = listener(8080, tgs[2].clone()).await;
        let rule = elb_client
            .create_rule()
            .listener_arn(&web_listener)
            .priority(10)
            .conditions(
                elb::RuleCondition::builder()
                    .field("path-pattern")
                    .values("/canary/*")
                    .build(),
            )
            .actions(forward_to(&tgs[0]))
            .send()
            .await
            .expect("create a rule");
        let web_rule = rule.rules()[0].rule_arn().unwrap().to_string();

        ecs_client
            .create_cluster()
            .cluster_name(CLUSTER)
            .send()
            .await
            .expect("create the cluster");
        let web_task_definition = register(&ecs_client, "web", "web:initial").await;
        let api_task_definition = register(&ecs_client, "api", "api:initial").await;
        let net = network(&subnets, &security_group);
        for (i, name) in WEB_SERVICES.iter().enumerate() {
            let desired = if i == 0 { BLUE_TASKS } else { 0 };
            ecs_client
                .create_service()
                .cluster(CLUSTER)
                .service_name(*name)
                .task_definition(&web_task_definition)
                .desired_count(desired as i32)
                .launch_type(ecs::LaunchType::Fargate)
                .network_configuration(net.clone())
                .load_balancers(
                    ecs::LoadBalancer::builder()
                        .target_group_arn(&tgs[i])
                        .container_name(CONTAINER)
                        .container_port(80)
                        .build(),
                )
                .send()
                .await
                .expect("create a web service");
            // moto reports runningCount = desired only after an update.
            ecs_client
                .update_service()
                .cluster(CLUSTER)
                .service(*name)
                .desired_count(desired as i32)
                .send()
                .await
                .expect("settle a web service");
        }
        ecs_client
            .create_service()
            .cluster(CLUSTER)
            .service_name(API_SERVICE)
            .desired_count(BLUE_TASKS as i32)
            .deployment_controller(
                ecs::DeploymentController::builder()
                    .r#type(ecs::DeploymentControllerType::External)
                    .build()
                    .expect("deployment controller"),
            )
            .send()
            .await
            .expect("create the EXTERNAL service");
        let ts = ecs_client
            .create_task_set()
            .cluster(CLUSTER)
            .service(API_SERVICE)
            .task_definition(&api_task_definition)
            .external_id("initial")
            .launch_type(ecs::LaunchType::Fargate)
            .network_configuration(net)
            .load_balancers(
                ecs::LoadBalancer::builder()
                    .target_group_arn(&tgs[2])
                    .container_name(CONTAINER)
                    .container_port(80)
                    .build(),
            )
            .scale(
                ecs::Scale::builder()
                    .unit(ecs::ScaleUnit::Percent)
                    .value(100.0)
                    .build(),
            )
            .send()
            .await
            .expect("create blue's task set");
        let api_task_set = ts
            .task_set()
            .and_then(|t| t.task_set_arn())
            .unwrap()
            .to_string();
        ecs_client
            .update_service_primary_task_set()
            .cluster(CLUSTER)
            .service(API_SERVICE)
            .primary_task_set(&api_task_set)
            .send()
            .await
            .expect("make blue's task set primary");

        let fixture = Fixture {
            endpoint: moto.endpoint.clone(),
            ecs: ecs_client,
            elb: elb_client,
            query,
            vpc,
            subnets,
            security_group,
            load_balancer,
            web_target_groups: [tgs[0].clone(), tgs[1].clone()],
            api_target_groups: [tgs[2].clone(), tgs[3].clone()],
            web_listener,
            web_rule,
            web_test_listener,
            api_listener,
            web_task_definition,
            api_task_definition,
            api_task_set,
        };
        fixture.put_alarm(ALARM).await;
        fixture.reconcile_targets().await;
        fixture
    }

    /// An AWS adapter on the emulator: ECS and ELBv2 straight to moto, CloudWatch through
    /// `bridge` (see `cbor_bridge.rs`).
    pub async fn aws_cloud(&self, moto: &Moto, bridge: &CborBridge) -> AwsCloud {
        let config = moto.sdk_config().await;
        let cw_config = moto.sdk_config_at(&bridge.endpoint).await;
        AwsCloud::from_clients(
            aws_sdk_ecs::Client::new(&config),
            aws_sdk_elasticloadbalancingv2::Client::new(&config),
            aws_sdk_cloudwatch::Client::new(&cw_config),
        )
    }

    fn draft(
        &self,
        environment: EnvironmentModel,
        tgs: [String; 2],
        listener: ListenerRef,
        strategy: Strategy,
    ) -> SpecDraft {
        SpecDraft {
            app: "web".into(),
            cluster: CLUSTER.into(),
            environment,
            target_groups: tgs.map(bluegreen_core::Name::from),
            listener,
            test_listener: None,
            test_traffic_ms: 0,
            container: CONTAINER.into(),
            artifact: Artifact::Image("123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v2".into()),
            desired_count: None,
            strategy,
            bake_ms: 0,
            drain_ms: 0,
            approval_timeout_ms: None,
            health: HealthSpec::default(),
            circuit_breaker: Default::default(),
            alarms: vec![ALARM.into()].into(),
            metrics: vec![],
            hooks: vec![],
            timeouts: Timeouts::default(),
            pacing: Pacing {
                poll_interval_ms: 1_000,
                attempts_max: 3,
                retry_min_ms: 100,
                retry_max_ms: 1_000,
                signal_poll_ms: None,
            },
        }
    }

    /// App `web` on the service pair, production on listener :80, zero waits.
    pub fn web_draft(&self, strategy: Strategy) -> SpecDraft {
        self.draft(
            EnvironmentModel::ServicePair {
                services: WEB_SERVICES.map(bluegreen_core::Name::from),
            },
            self.web_target_groups.clone(),
            ListenerRef {
                listener_arn: self.web_listener.clone().into(),
                rule_arn: None,
            },
            strategy,
        )
    }

    /// App `api` on the EXTERNAL service's task sets, production on listener :8080.
    pub fn api_draft(&self, strategy: Strategy) -> SpecDraft {
        let mut d = self.draft(
            EnvironmentModel::TaskSet {
                service: API_SERVICE.into(),
            },
            self.api_target_groups.clone(),
            ListenerRef {
                listener_arn: self.api_listener.clone().into(),
                rule_arn: None,
            },
            strategy,
        );
        d.app = "api".into();
        d.alarms = Default::default();
        d.artifact = Artifact::Image("123456789012.dkr.ecr.us-east-1.amazonaws.com/api:v2".into());
        d
    }

    pub async fn put_alarm(&self, name: &str) {
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        self.query
            .cloudwatch(
                "PutMetricAlarm",
                &[
                    p("AlarmName", name),
                    p("MetricName", "HTTPCode_Target_5XX_Count"),
                    p("Namespace", "AWS/ApplicationELB"),
                    p("Statistic", "Sum"),
                    p("Period", "60"),
                    p("EvaluationPeriods", "1"),
                    p("Threshold", "10"),
                    p("ComparisonOperator", "GreaterThanThreshold"),
                ],
            )
            .await;
    }

    /// moto's `SetAlarmState` (alarms are never evaluated from data in the emulator).
    pub async fn set_alarm_state(&self, name: &str, state: &str, reason: &str) {
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        self.query
            .cloudwatch(
                "SetAlarmState",
                &[
                    p("AlarmName", name),
                    p("StateValue", state),
                    p("StateReason", reason),
                ],
            )
            .await;
    }

    /// (target group, weight) of a listener's default action or rule, as moto holds it.
    pub async fn weights(&self, listener: &str, rule: Option<&str>) -> Vec<(String, u32)> {
        let actions = match rule {
            None => self
                .elb
                .describe_listeners()
                .listener_arns(listener)
                .send()
                .await
                .expect("describe the listener")
                .listeners()[0]
                .default_actions()
                .to_vec(),
            Some(rule) => self
                .elb
                .describe_rules()
                .rule_arns(rule)
                .send()
                .await
                .expect("describe the rule")
                .rules()[0]
                .actions()
                .to_vec(),
        };
        actions
            .iter()
            .filter_map(|a| a.forward_config())
            .flat_map(|f| f.target_groups())
            .map(|t| {
                (
                    t.target_group_arn().unwrap_or_default().to_string(),
                    t.weight().unwrap_or(1) as u32,
                )
            })
            .collect()
    }

    /// Production weights of app `web` as (web-a, web-b).
    pub async fn production_weights(&self) -> (u32, u32) {
        let w = self.weights(&self.web_listener, None).await;
        let of = |tg: &str| w.iter().filter(|(t, _)| t == tg).map(|(_, w)| *w).sum();
        (
            of(&self.web_target_groups[0]),
            of(&self.web_target_groups[1]),
        )
    }

    /// Another caller (an autoscaler) sets a service's desired count.
    pub async fn set_desired(&self, name: &str, desired: u32) {
        self.ecs
            .update_service()
            .cluster(CLUSTER)
            .service(name)
            .desired_count(desired as i32)
            .send()
            .await
            .expect("update a service's desired count");
    }

    pub async fn service(&self, name: &str) -> ecs::Service {
        self.ecs
            .describe_services()
            .cluster(CLUSTER)
            .services(name)
            .send()
            .await
            .expect("describe a service")
            .services()[0]
            .clone()
    }

    /// A target group's tags as moto holds them.
    pub async fn tags(&self, arn: &str) -> std::collections::BTreeMap<String, String> {
        self.elb
            .describe_tags()
            .resource_arns(arn)
            .send()
            .await
            .expect("describe tags")
            .tag_descriptions()
            .iter()
            .flat_map(|d| d.tags())
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect()
    }

    pub async fn targets(&self, tg: &str) -> Vec<String> {
        self.elb
            .describe_target_health()
            .target_group_arn(tg)
            .send()
            .await
            .expect("describe target health")
            .target_health_descriptions()
            .iter()
            .filter_map(|d| d.target().and_then(|t| t.id()).map(str::to_string))
            .collect()
    }
}

async fn register(client: &aws_sdk_ecs::Client, family: &str, image: &str) -> String {
    let container = |name: &str, image: &str, essential: bool| {
        ecs::ContainerDefinition::builder()
            .name(name)
            .image(image)
            .memory(256)
            .essential(essential)
            .port_mappings(ecs::PortMapping::builder().container_port(80).build())
            .environment(
                ecs::KeyValuePair::builder()
                    .name("MODE")
                    .value("blue-green")
                    .build(),
            )
            .mount_points(
                ecs::MountPoint::builder()
                    .source_volume("scratch")
                    .container_path("/scratch")
                    .build(),
            )
            .build()
    };
    let out = client
        .register_task_definition()
        .family(family)
        .network_mode(ecs::NetworkMode::Awsvpc)
        .requires_compatibilities(ecs::Compatibility::Fargate)
        .cpu("256")
        .memory("512")
        .task_role_arn("arn:aws:iam::123456789012:role/web-task")
        .execution_role_arn("arn:aws:iam::123456789012:role/ecsTaskExecutionRole")
        .container_definitions(container(CONTAINER, image, true))
        .container_definitions(container(SIDECAR, "fluent/fluent-bit:3.0", false))
        .volumes(ecs::Volume::builder().name("scratch").build())
        .ephemeral_storage(ecs::EphemeralStorage::builder().size_in_gib(30).build())
        .runtime_platform(
            ecs::RuntimePlatform::builder()
                .cpu_architecture(ecs::CpuArchitecture::Arm64)
                .operating_system_family(ecs::OsFamily::Linux)
                .build(),
        )
        .tags(
            ecs::Tag::builder()
                .key(TEAM_TAG.0)
                .value(TEAM_TAG.1)
                .build(),
        )
        .send()
        .await
        .expect("register a task definition");
    out.task_definition()
        .and_then(|t| t.task_definition_arn())
        .unwrap()
        .to_string()
}
