//! Application Auto Scaling: the app's scalable target (namespace `ecs`, dimension
//! `ecs:service:DesiredCount`) and its policies follow the live slot (`PlaceScaling`).
//!
//! A move copies, then removes: the target is registered on the live slot's service with
//! the same capacity range, suspension and role, each scaling policy is put there, and
//! only then is the other slot's target deregistered (which deletes its policies). Run
//! again at any point — after a crash in the middle, say — it finishes the job: the
//! target on the idle slot is what says a move is not done. Scheduled actions are not
//! moved (documented in docs/service.md).

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use bluegreen_core::{CommandError, CommandResult, Name};

use super::AwsCloud;
use super::errors::Effect;

/// `service/<cluster>/<service>`: Application Auto Scaling's id for an ECS service.
fn resource_id(cluster: &str, service: &str) -> String {
    format!(
        "service/{}/{}",
        super::short_name(cluster),
        super::short_name(service)
    )
}

pub(crate) async fn place(
    cloud: &AwsCloud,
    cluster: &str,
    services: &[Name; 2],
    live_slot: usize,
) -> Result<CommandResult, CommandError> {
    let Some(aas) = cloud.autoscaling.as_ref() else {
        // An adapter built without an Application Auto Scaling client (tests' mocks).
        return Ok(CommandResult::ScalingPlaced { moved: false });
    };
    let live_slot = live_slot.min(1);
    let ids = [
        resource_id(cluster, &services[0]),
        resource_id(cluster, &services[1]),
    ];
    let (live, idle) = (&ids[live_slot], &ids[1 - live_slot]);
    let out = cloud
        .call(
            "DescribeScalableTargets",
            Effect::Read,
            aas.describe_scalable_targets()
                .service_namespace(ServiceNamespace::Ecs)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .resource_ids(&ids[0])
                .resource_ids(&ids[1])
                .send(),
        )
        .await?;
    let Some(from) = out
        .scalable_targets()
        .iter()
        .find(|t| t.resource_id() == idle.as_str())
    else {
        // On the live slot already, or no autoscaling at all.
        return Ok(CommandResult::ScalingPlaced { moved: false });
    };
    let mut register = aas
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Ecs)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .resource_id(live)
        .min_capacity(from.min_capacity())
        .max_capacity(from.max_capacity())
        .set_suspended_state(from.suspended_state().cloned());
    if !from.role_arn().is_empty() {
        register = register.role_arn(from.role_arn());
    }
    cloud
        .call(
            "RegisterScalableTarget",
            Effect::IdempotentWrite,
            register.send(),
        )
        .await?;
    let policies = cloud
        .call(
            "DescribeScalingPolicies",
            Effect::Read,
            aas.describe_scaling_policies()
                .service_namespace(ServiceNamespace::Ecs)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .resource_id(idle)
                .send(),
        )
        .await?;
    for p in policies.scaling_policies() {
        cloud
            .call(
                "PutScalingPolicy",
                Effect::IdempotentWrite,
                aas.put_scaling_policy()
                    .service_namespace(ServiceNamespace::Ecs)
                    .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                    .resource_id(live)
                    .policy_name(p.policy_name())
                    .policy_type(p.policy_type().clone())
                    .set_target_tracking_scaling_policy_configuration(
                        p.target_tracking_scaling_policy_configuration().cloned(),
                    )
                    .set_step_scaling_policy_configuration(
                        p.step_scaling_policy_configuration().cloned(),
                    )
                    .set_predictive_scaling_policy_configuration(
                        p.predictive_scaling_policy_configuration().cloned(),
                    )
                    .send(),
            )
            .await?;
    }
    cloud
        .call(
            "DeregisterScalableTarget",
            Effect::IdempotentWrite,
            aas.deregister_scalable_target()
                .service_namespace(ServiceNamespace::Ecs)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .resource_id(idle)
                .send(),
        )
        .await?;
    tracing::info!(from = %idle, to = %live, policies = policies.scaling_policies().len(), "moved the app's scalable target to the live slot");
    Ok(CommandResult::ScalingPlaced { moved: true })
}

#[cfg(test)]
mod tests {
    #[test]
    fn resource_ids_use_short_names_whatever_the_spec_says() {
        assert_eq!(
            super::resource_id("arn:aws:ecs:us-east-1:1:cluster/prod", "web-a"),
            "service/prod/web-a"
        );
        assert_eq!(
            super::resource_id("prod", "arn:aws:ecs:us-east-1:1:service/prod/web-b"),
            "service/prod/web-b"
        );
    }
}
