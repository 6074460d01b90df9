//! The real `bluegreen` binary on the AWS adapter against the local emulator (moto; the
//! test plays ECS's part): the app's Application Auto Scaling target and its policy
//! follow the live slot — moved to green once the shift completes, and back to blue when
//! a rollback starts after the move; a move cut short is finished by the next one.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_applicationautoscaling::types::{
    MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ServiceNamespace,
    TargetTrackingScalingPolicyConfiguration,
};
use bluegreen_core::{Cloud, Command, CommandId, CommandKind, CommandResult, DeploymentId};
use support::cbor_bridge::CborBridge;
use support::fixture::{ALARM, CLUSTER, Fixture, WEB_SERVICES};
use support::moto::Moto;
use support::serve::{WebServe, deploy, wait_deployment};

const WAIT: Duration = Duration::from_secs(180);
const POLICY: &str = "web-cpu-60";

fn resource(service: &str) -> String {
    format!("service/{CLUSTER}/{service}")
}

/// Which slots' services hold a scalable target: (min, max) per slot.
async fn targets(aas: &aws_sdk_applicationautoscaling::Client) -> [Option<(i32, i32)>; 2] {
    let out = aas
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .send()
        .await
        .expect("describe scalable targets");
    let of = |svc: &str| {
        out.scalable_targets()
            .iter()
            .find(|t| t.resource_id() == resource(svc))
            .map(|t| (t.min_capacity(), t.max_capacity()))
    };
    [of(WEB_SERVICES[0]), of(WEB_SERVICES[1])]
}

async fn policies(aas: &aws_sdk_applicationautoscaling::Client, service: &str) -> Vec<String> {
    aas.describe_scaling_policies()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id(resource(service))
        .send()
        .await
        .expect("describe scaling policies")
        .scaling_policies()
        .iter()
        .map(|p| p.policy_name().to_string())
        .collect()
}

/// Until the scalable target sits on `slot` alone (bounded).
async fn until_on(aas: &aws_sdk_applicationautoscaling::Client, slot: usize, what: &str) {
    let since = Instant::now();
    loop {
        let t = targets(aas).await;
        if t[slot].is_some() && t[1 - slot].is_none() {
            return;
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "{what}: the scalable target never moved to slot {slot}: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Register a 2–10 task scalable target on `service`, with the CPU policy when `policy`.
async fn autoscale(aas: &aws_sdk_applicationautoscaling::Client, service: &str, policy: bool) {
    aas.register_scalable_target()
        .service_namespace(ServiceNamespace::Ecs)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .resource_id(resource(service))
        .min_capacity(2)
        .max_capacity(10)
        .send()
        .await
        .expect("register the scalable target");
    if !policy {
        return;
    }
    aas.put_scaling_policy()
        .service_namespace(ServiceNamespace::Ecs)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .resource_id(resource(service))
        .policy_name(POLICY)
        .policy_type(PolicyType::TargetTrackingScaling)
        .target_tracking_scaling_policy_configuration(
            TargetTrackingScalingPolicyConfiguration::builder()
                .target_value(60.0)
                .predefined_metric_specification(
                    PredefinedMetricSpecification::builder()
                        .predefined_metric_type(MetricType::EcsServiceAverageCpuUtilization)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("put the scaling policy");
}

/// A move cut short after the target was registered on the live slot but before the
/// idle slot's was deregistered (a crash, a lost lease): the next placement finishes
/// it, and placing again changes nothing.
#[tokio::test]
async fn a_move_cut_short_is_finished_by_the_next_placement() {
    let Some(moto) = Moto::start_or_skip("aws_scaling_cut_short").await else {
        return;
    };
    let fx = Fixture::build(&moto).await;
    let bridge = CborBridge::start(&moto.endpoint).await;
    let aas = aws_sdk_applicationautoscaling::Client::new(&moto.sdk_config().await);
    let cloud = fx
        .aws_cloud(&moto, &bridge)
        .await
        .with_autoscaling(aas.clone());
    let place = |live_slot: usize| Command {
        id: CommandId::new(&DeploymentId::new("web-1").unwrap(), "place-scaling"),
        attempt: 1,
        kind: CommandKind::PlaceScaling {
            cluster: CLUSTER.into(),
            services: [WEB_SERVICES[0].into(), WEB_SERVICES[1].into()],
            live_slot,
        },
    };
    // Nothing registered: nothing to move.
    let r = cloud.execute(&place(1)).await.unwrap();
    assert_eq!(r, CommandResult::ScalingPlaced { moved: false });
    // The idle slot (a) still has the target and its policy; the live one (b) already
    // has the target, not yet the policy.
    autoscale(&aas, WEB_SERVICES[0], true).await;
    autoscale(&aas, WEB_SERVICES[1], false).await;
    let r = cloud.execute(&place(1)).await.unwrap();
    assert_eq!(r, CommandResult::ScalingPlaced { moved: true });
    assert_eq!(targets(&aas).await, [None, Some((2, 10))]);
    assert_eq!(
        policies(&aas, WEB_SERVICES[1]).await,
        vec![POLICY.to_string()]
    );
    let r = cloud.execute(&place(1)).await.unwrap();
    assert_eq!(r, CommandResult::ScalingPlaced { moved: false });
    assert_eq!(targets(&aas).await, [None, Some((2, 10))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scalable_target_follows_the_live_slot_and_goes_back_on_rollback() {
    let Some(moto) = Moto::start_or_skip("aws_scaling").await else {
        return;
    };
    moto.manual_task_transitions().await;
    let fx = Arc::new(Fixture::build(&moto).await);
    let bridge = CborBridge::start(&moto.endpoint).await;
    let _player = fx.spawn_ecs_player(Duration::from_millis(100));
    let aas = aws_sdk_applicationautoscaling::Client::new(&moto.sdk_config().await);
    // Blue (slot a) autoscales 2–10 tasks on CPU.
    autoscale(&aas, WEB_SERVICES[0], true).await;
    assert_eq!(targets(&aas).await, [Some((2, 10)), None]);

    let served = WebServe::start("scaling", &moto, &fx, &bridge, "8s", "1s").await;
    let (http, base) = (&served.http, served.base.as_str());
    let image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web";

    // 1. Completed: the target (range and policy) is on slot b, the new live slot.
    let id = deploy(http, base, &format!("{image}:v2")).await;
    let url = format!("{base}/v1/deployments/{id}");
    let done = wait_deployment(http, &url, "the deployment", WAIT, |v| {
        v["state"] == "finished"
    })
    .await;
    assert_eq!(done["phase"], "completed", "{done}");
    until_on(&aas, 1, "after completing").await;
    assert_eq!(targets(&aas).await, [None, Some((2, 10))]);
    assert_eq!(
        policies(&aas, WEB_SERVICES[1]).await,
        vec![POLICY.to_string()]
    );

    // 2. Green is slot a now: the target moves there once the shift completes (the
    // bake), and back to slot b when the alarm rolls the deployment back.
    let id = deploy(http, base, &format!("{image}:v3")).await;
    let url = format!("{base}/v1/deployments/{id}");
    wait_deployment(http, &url, "the bake", WAIT, |v| v["phase"] == "bake").await;
    until_on(&aas, 0, "in the bake").await;
    assert_eq!(
        policies(&aas, WEB_SERVICES[0]).await,
        vec![POLICY.to_string()]
    );
    fx.set_alarm_state(ALARM, "ALARM", "Threshold Crossed: 5xx above 10")
        .await;
    let done = wait_deployment(http, &url, "the rollback", WAIT, |v| {
        v["state"] == "finished"
    })
    .await;
    assert_eq!(done["phase"], "rolled-back", "{done}");
    until_on(&aas, 1, "after the rollback").await;
    assert_eq!(targets(&aas).await, [None, Some((2, 10))]);
    assert_eq!(
        policies(&aas, WEB_SERVICES[1]).await,
        vec![POLICY.to_string()]
    );
}
